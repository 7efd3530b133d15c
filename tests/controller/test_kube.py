"""The Kubernetes wrapper, owned HPA, Events and leader election against kmock.

kmock is a real HTTP Kubernetes API emulator; faults (409, 500, timeouts) are its
reactions, so every request crosses the official client, urllib3 and a socket.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import kmock
import pytest

from autoscaler.clock import WallClock
from autoscaler.kube.client import KubeClient, KubeError, KubeSettings, path_for
from autoscaler.kube.events import emit_event
from autoscaler.kube.hpa import desired_hpa, ensure_hpa
from autoscaler.kube.leader import LeaderElector, LeaderSettings
from policies.objects import PredictiveAutoscaler
from tests.controller.kmockharness import KmockCluster

HPA = "autoscaling/v2/horizontalpodautoscalers"
LEASES = "coordination.k8s.io/v1/leases"


@pytest.fixture()
def cluster() -> Iterator[KmockCluster]:
    c = KmockCluster()
    try:
        yield c
    finally:
        c.close()


def client_for(cluster: KmockCluster, **kw: Any) -> KubeClient:
    settings = KubeSettings(host=cluster.url, backoff_seconds=0.01, **kw)
    return KubeClient(settings)


def make_pa(name: str = "web", max_replicas: int = 20) -> PredictiveAutoscaler:
    return PredictiveAutoscaler.parse(
        {
            "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}"},
            "spec": {
                "targetRef": {"name": f"{name}-deploy"},
                "query": "sum by (namespace, workload) (rate(x_total[1m]))",
                "capacityPerReplica": 10,
                "maxReplicas": max_replicas,
            },
        }
    )


def writes(cluster: KmockCluster, method: str) -> int:
    return sum(1 for r in cluster.requests() if r.method.value == method)


def test_hpa_created_owned_and_idempotent(cluster: KmockCluster) -> None:
    client = client_for(cluster)
    pa = make_pa()
    assert ensure_hpa(client, pa, ceiling=12) == "created"
    live = cluster.get(HPA, "shop", "web")
    assert live is not None
    owner = live["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "PredictiveAutoscaler",
        "uid-web",
        True,
    )
    metric = live["spec"]["metrics"][0]["external"]
    assert metric["metric"]["name"] == "autoscaler_desired_replicas"
    assert metric["metric"]["selector"]["matchLabels"] == {
        "workload": "web-deploy",
        "predictiveautoscaler": "web",
    }
    assert metric["target"] == {"type": "AverageValue", "averageValue": "1"}
    assert live["spec"]["maxReplicas"] == 12
    patches = writes(cluster, "PATCH")
    assert ensure_hpa(client, pa, ceiling=12) == "unchanged"
    assert writes(cluster, "PATCH") == patches  # no write when nothing changed
    assert ensure_hpa(client, pa, ceiling=5) == "updated"
    live = cluster.get(HPA, "shop", "web")
    assert live is not None and live["spec"]["maxReplicas"] == 5


def test_foreign_hpa_is_left_alone(cluster: KmockCluster) -> None:
    foreign = {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"maxReplicas": 3}}
    cluster.put(HPA, "shop", "web", foreign)
    before = cluster.get(HPA, "shop", "web")
    assert ensure_hpa(client_for(cluster), make_pa(), ceiling=12) == "foreign"
    assert cluster.get(HPA, "shop", "web") == before


def test_hpa_conflict_is_retried_with_a_fresh_read(cluster: KmockCluster) -> None:
    client = client_for(cluster)
    pa = make_pa()
    ensure_hpa(client, pa, ceiling=12)
    cluster.do(lambda: cluster.emulator["patch", kmock.resource(HPA)][:1] << 409)
    gets = writes(cluster, "GET")
    # kmock applies a write even when a reaction answers 409 (its documented
    # behaviour), so the fresh read may already show the change: both are right.
    assert ensure_hpa(client, pa, ceiling=7) in {"updated", "unchanged"}
    assert writes(cluster, "GET") >= gets + 2  # read, 409, read again
    live = cluster.get(HPA, "shop", "web")
    assert live is not None and live["spec"]["maxReplicas"] == 7


def test_server_errors_are_retried_then_reported(cluster: KmockCluster) -> None:
    client = client_for(cluster, retries=3)
    cluster.put(LEASES, "ns", "x", {"metadata": {"name": "x", "namespace": "ns"}, "spec": {}})
    path = path_for("coordination.k8s.io/v1", "leases", "ns", "x")
    cluster.do(lambda: cluster.emulator["get", kmock.resource(LEASES)][:2] << 500)
    assert client.get(path)["metadata"]["name"] == "x"  # 2 x 500, then 200
    cluster.do(lambda: cluster.emulator["get", kmock.resource(LEASES)] << 503)
    with pytest.raises(KubeError):
        client.get(path)


def test_timeouts_become_retryable_errors(cluster: KmockCluster) -> None:
    async def slow(request: Any) -> dict[str, Any]:
        await asyncio.sleep(2.0)
        return {}

    cluster.do(lambda: cluster.emulator["get", kmock.resource(LEASES)] << slow)
    client = client_for(cluster, retries=2, request_timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(KubeError):
        client.get(path_for("coordination.k8s.io/v1", "leases", "ns", "x"))
    assert time.monotonic() - started < 2.0  # bounded by the timeout, not the server


def test_event_names_the_object(cluster: KmockCluster) -> None:
    pa = make_pa()
    assert emit_event(client_for(cluster), pa, "FallbackStarted", "no data", now=1.7e9)
    events = [r for r in cluster.requests() if r.method.value == "POST"]
    body = events[-1].data
    assert body["involvedObject"]["name"] == "web"
    assert body["reason"] == "FallbackStarted"


def test_event_failure_does_not_raise(cluster: KmockCluster) -> None:
    cluster.do(lambda: cluster.emulator["post", kmock.resource("v1/events")] << 500)
    assert not emit_event(client_for(cluster, retries=1), make_pa(), "X", "y", now=1.7e9)


def test_hpa_spec_min_replicas_never_zero() -> None:
    pa = make_pa().model_copy(
        update={"spec": make_pa().spec.model_copy(update={"min_replicas": 0})}
    )
    assert desired_hpa(pa, ceiling=0)["spec"]["minReplicas"] == 1
    assert desired_hpa(pa, ceiling=0)["spec"]["maxReplicas"] == 1


FAST = LeaderSettings(
    namespace="ops",
    lease_duration_seconds=3.0,
    renew_deadline_seconds=2.0,
    retry_period_seconds=0.3,
)


def test_only_one_leader_at_a_time(cluster: KmockCluster) -> None:
    a = LeaderElector(client_for(cluster), FAST, "a", WallClock())
    b = LeaderElector(client_for(cluster), FAST, "b", WallClock())
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert a.try_acquire_or_renew()  # renew
    lease = cluster.get(LEASES, "ops", FAST.name)
    assert lease is not None and lease["spec"]["holderIdentity"] == "a"


@pytest.mark.slow
def test_follower_takes_over_when_the_leader_dies(cluster: KmockCluster) -> None:
    stop_a, stop_b = threading.Event(), threading.Event()
    a = LeaderElector(client_for(cluster), FAST, "a", WallClock())
    b = LeaderElector(client_for(cluster), FAST, "b", WallClock())
    ta = threading.Thread(target=a.run, args=(stop_a,), daemon=True)
    ta.start()
    deadline = time.monotonic() + 5
    while not a.is_leader() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert a.is_leader()
    tb = threading.Thread(target=b.run, args=(stop_b,), daemon=True)
    tb.start()
    time.sleep(1.0)
    assert not b.is_leader()
    # Kill the leader: it stops renewing and does NOT release (a crash, not a shutdown).
    a.release = lambda: None  # type: ignore[method-assign]
    stop_a.set()
    ta.join(2)
    killed = time.monotonic()
    while not b.is_leader() and time.monotonic() - killed < 30:
        time.sleep(0.05)
    takeover = time.monotonic() - killed
    stop_b.set()
    tb.join(3)
    assert b.is_leader() or takeover < 30
    print(f"failover took {takeover:.2f}s (lease {FAST.lease_duration_seconds}s)")
    assert takeover < FAST.lease_duration_seconds + 2 * FAST.retry_period_seconds + 1.0


def test_release_hands_over_at_once(cluster: KmockCluster) -> None:
    a = LeaderElector(client_for(cluster), FAST, "a", WallClock())
    b = LeaderElector(client_for(cluster), FAST, "b", WallClock())
    assert a.try_acquire_or_renew()
    a.release()
    assert not a.is_leader()
    assert b.try_acquire_or_renew()


def test_leader_steps_down_when_it_cannot_renew(cluster: KmockCluster) -> None:
    mono = [1000.0]
    a = LeaderElector(
        client_for(cluster, retries=1), FAST, "a", WallClock(), monotonic=lambda: mono[0]
    )
    assert a.try_acquire_or_renew()
    cluster.do(lambda: cluster.emulator["get", kmock.resource(LEASES)] << 500)
    mono[0] += 1.0
    assert a.try_acquire_or_renew()  # the renewal failed, but the deadline is 1 s away
    mono[0] += 1.0  # renew deadline (2 s) after the last successful renewal's start
    assert not a.is_leader()  # by itself, without another attempt
    assert not a.try_acquire_or_renew()


def test_target_info_reads_the_ready_count() -> None:
    """status.readyReplicas feeds the adaptive margin; the API server omits it at 0."""
    from autoscaler.kube.cluster import target_info

    spec = {"replicas": 5, "template": {"spec": {"containers": []}}}
    running = target_info({"spec": spec, "status": {"replicas": 5, "readyReplicas": 3}})
    assert (running.replicas, running.ready) == (5, 3)
    none_ready = target_info({"spec": spec, "status": {"replicas": 5}})
    assert (none_ready.replicas, none_ready.ready) == (5, 0)
    fresh = target_info({"spec": spec})
    assert (fresh.replicas, fresh.ready) == (5, None)
