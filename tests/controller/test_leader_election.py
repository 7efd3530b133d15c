"""Leader election under the faults client-go's algorithm exists for, with real timing.

Electors run their real ``run`` loop on threads against the kmock API emulator over
HTTP (lease 3 s, renew deadline 2 s, retry 0.5 s). A sampler thread reads every
elector's ``is_leader()`` (what the controller calls before each write) every 5 ms
and counts the samples in which two said yes. Faults: wall clocks 20 s apart, an API
connection that freezes (a loopback proxy that stops forwarding), a renew call that
hangs past every timeout, candidates racing for one Lease.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

from autoscaler.clock import WallClock
from autoscaler.kube.client import KubeClient, KubeSettings, NotLeader
from autoscaler.kube.cluster import KubeCluster
from autoscaler.kube.events import emit_event
from autoscaler.kube.hpa import ensure_hpa
from autoscaler.kube.leader import LeaderElector, LeaderSettings
from policies.objects import PredictiveAutoscaler, PredictiveAutoscalerStatus
from tests.controller.kmockharness import KmockCluster, RaceAfterRead
from tests.controller.netfaults import FreezableProxy

LEASES = "coordination.k8s.io/v1/leases"
LEASE = LeaderSettings(
    namespace="ops",
    lease_duration_seconds=3.0,
    renew_deadline_seconds=2.0,
    retry_period_seconds=0.5,
)
#: Scheduling on a loaded 2-core machine; the bounds below are lease + retry + this.
SLACK = 1.0


@pytest.fixture()
def cluster() -> Iterator[KmockCluster]:
    c = KmockCluster()
    try:
        yield c
    finally:
        c.close()


def client(url: str, **kw: Any) -> KubeClient:
    # Default request timeout (10 s) and retries (3): the elector must bound its calls
    # by its own deadline, not by these.
    return KubeClient(KubeSettings(host=url, backoff_seconds=0.01, **kw))


class SkewedClock(WallClock):
    """A pod whose wall clock is ``skew`` seconds off."""

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def now(self) -> float:
        return time.time() + self.skew


def wait_for(predicate: Callable[[], bool], timeout: float) -> float:
    """Poll every 10 ms; the monotonic time it became true, or AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.01)
    raise AssertionError(f"not true within {timeout}s")


class Sampler:
    """Counts samples in which more than one elector says it is leader."""

    def __init__(self, electors: Mapping[str, LeaderElector]) -> None:
        self.electors = electors
        self.samples = 0
        self.overlaps: list[tuple[str, ...]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        end = time.monotonic() + 120  # bounded even if a test forgets to stop it
        while not self._stop.is_set() and time.monotonic() < end:
            leaders = tuple(n for n, e in self.electors.items() if e.is_leader())
            self.samples += 1
            if len(leaders) > 1:
                self.overlaps.append(leaders)
            self._stop.wait(0.005)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


class Running:
    """``elector.run`` on a thread; ``crash()`` stops it without releasing the lease."""

    def __init__(self, elector: LeaderElector) -> None:
        self.elector = elector
        self.stop = threading.Event()
        self.thread = threading.Thread(target=elector.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def crash(self) -> float:
        self.elector.release = lambda: None  # type: ignore[method-assign]
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        return time.monotonic()

    def halt(self, timeout: float = 5.0) -> bool:
        """Stop (with release); True if the thread ended within ``timeout``."""
        self.stop.set()
        self.thread.join(timeout)
        return not self.thread.is_alive()


@contextmanager
def running(*electors: LeaderElector) -> Iterator[list[Running]]:
    runs = [Running(e) for e in electors]
    try:
        yield runs
    finally:
        for r in runs:
            r.halt()


@pytest.mark.slow
@pytest.mark.parametrize("skew", [20.0, -20.0], ids=["ahead", "behind"])
def test_clock_skew_neither_splits_nor_delays_leadership(
    cluster: KmockCluster, skew: float
) -> None:
    """B's wall clock is 20 s ahead of (behind) A's: B must neither take a lease A is
    renewing (ahead) nor wait 20 s more after A crashes (behind)."""
    a = LeaderElector(client(cluster.url), LEASE, "a", WallClock())
    b = LeaderElector(client(cluster.url), LEASE, "b", SkewedClock(skew))
    with Sampler({"a": a, "b": b}) as sampler:
        with running(a) as (run_a,):
            wait_for(a.is_leader, 5)
            with running(b):
                time.sleep(2.0)  # four of B's polls while A renews
                assert a.is_leader() and not b.is_leader()
                killed = run_a.crash()
                took_over = wait_for(b.is_leader, LEASE.lease_duration_seconds + 5)
    takeover = took_over - killed
    print(f"skew {skew:+.0f}s: takeover {takeover:.2f}s, {sampler.samples} samples")
    assert sampler.overlaps == []
    assert sampler.samples > 100
    limit = LEASE.lease_duration_seconds + LEASE.retry_period_seconds + SLACK
    assert takeover <= limit


@pytest.mark.slow
def test_frozen_api_connection_leader_stops_before_anyone_takes_over(
    cluster: KmockCluster,
) -> None:
    """A reaches the API server through a connection that freezes (accepts, never
    answers). A must stop being leader by its renew deadline, B take over within
    lease + retry, never both; A's thread must not hang in the frozen calls."""
    port = int(cluster.url.rsplit(":", 1)[1])
    proxy = FreezableProxy(port)
    try:
        a = LeaderElector(client(proxy.url), LEASE, "a", WallClock())
        b = LeaderElector(client(cluster.url), LEASE, "b", WallClock())
        with Sampler({"a": a, "b": b}) as sampler, running(a) as (run_a,):
            wait_for(a.is_leader, 5)  # A first, so that the leader is the one frozen
            with running(b):
                time.sleep(1.0)
                assert not b.is_leader()
                proxy.freeze()
                frozen = time.monotonic()
                a_down = wait_for(lambda: not a.is_leader(), LEASE.renew_deadline_seconds + 5)
                b_up = wait_for(b.is_leader, LEASE.lease_duration_seconds + 5)
                # A's thread is not stuck: it ends (its release is bounded too).
                bound = LEASE.renew_deadline_seconds + LEASE.retry_period_seconds + 2
                assert run_a.halt(bound)
        print(
            f"frozen: A stepped down after {a_down - frozen:.2f}s, B took over after"
            f" {b_up - frozen:.2f}s"
        )
        assert sampler.overlaps == []
        assert a_down - frozen <= LEASE.renew_deadline_seconds + 0.5
        assert b_up - frozen <= LEASE.lease_duration_seconds + LEASE.retry_period_seconds + SLACK
        assert a_down < b_up
    finally:
        proxy.close()


def test_is_leader_turns_false_while_the_renew_call_hangs(cluster: KmockCluster) -> None:
    """The renew thread is stuck in a call that honours no timeout (e.g. a DNS or TLS
    hang); ``is_leader()`` must still turn False at the renew deadline by itself."""
    a = LeaderElector(client(cluster.url), LEASE, "a", WallClock())
    gate = threading.Event()
    real = a.client.request

    def hung(*args: Any, **kw: Any) -> Any:
        gate.wait(15)
        return real(*args, **kw)

    with running(a):
        wait_for(a.is_leader, 5)
        a.client.request = hung  # type: ignore[method-assign]
        hung_at = time.monotonic()
        try:
            down = wait_for(lambda: not a.is_leader(), LEASE.renew_deadline_seconds + 3)
        finally:
            gate.set()
    assert down - hung_at <= LEASE.renew_deadline_seconds + 0.3


@pytest.mark.slow
def test_candidates_racing_for_a_new_lease_one_wins(cluster: KmockCluster) -> None:
    electors = {n: LeaderElector(client(cluster.url), LEASE, n, WallClock()) for n in "abc"}
    with Sampler(electors) as sampler, running(*electors.values()):
        wait_for(lambda: any(e.is_leader() for e in electors.values()), 5)
        time.sleep(2.0)
        leaders = [n for n, e in electors.items() if e.is_leader()]
        lease = cluster.get(LEASES, "ops", LEASE.name)
    assert sampler.overlaps == []
    assert len(leaders) == 1
    assert lease is not None and lease["spec"]["holderIdentity"] == leaders[0]


def test_a_candidate_that_lost_the_race_after_its_read_is_not_leader(
    cluster: KmockCluster,
) -> None:
    """A and B both see an expired lease; B writes between A's read and A's write. A's
    write carries the resourceVersion it read, so it gets 409: one leader."""
    mono = [100.0]
    cluster.put(
        LEASES,
        "ops",
        LEASE.name,
        {
            "metadata": {"name": LEASE.name, "namespace": "ops"},
            "spec": {"holderIdentity": "dead", "leaseDurationSeconds": 3},
        },
    )
    racing = RaceAfterRead(KubeSettings(host=cluster.url))
    a = LeaderElector(racing, LEASE, "a", WallClock(), monotonic=lambda: mono[0])
    b = LeaderElector(client(cluster.url), LEASE, "b", WallClock(), monotonic=lambda: mono[0])
    assert not a.try_acquire_or_renew() and not b.try_acquire_or_renew()  # "dead" holds it
    mono[0] += LEASE.lease_duration_seconds + 0.1  # unchanged for a lease: expired
    racing.hook = b.try_acquire_or_renew
    a.try_acquire_or_renew()
    assert b.is_leader()
    assert not a.is_leader()
    lease = cluster.get(LEASES, "ops", LEASE.name)
    assert lease is not None and lease["spec"]["holderIdentity"] == "b"


def test_no_kubernetes_write_leaves_after_the_renew_deadline(cluster: KmockCluster) -> None:
    """With the client fenced by the elector (``client.fence = elector.seconds_left``),
    the HPA, status and Event writes are refused on our side from the renew deadline
    on, and none reaches the API server; the Lease's own calls are not fenced."""
    mono = [100.0]
    kube = client(cluster.url)
    a = LeaderElector(kube, LEASE, "a", WallClock(), monotonic=lambda: mono[0])
    kube.fence = a.seconds_left
    pa = PredictiveAutoscaler.parse(
        {
            "metadata": {"name": "web", "namespace": "shop", "uid": "uid-web"},
            "spec": {
                "targetRef": {"name": "web"},
                "query": "sum by (namespace, workload) (rate(x_total[1m]))",
                "capacityPerReplica": 10,
                "maxReplicas": 20,
            },
        }
    )

    def writes() -> int:
        return sum(1 for r in cluster.requests() if r.method.value in {"POST", "PATCH", "PUT"})

    before = writes()
    with pytest.raises(NotLeader):
        ensure_hpa(kube, pa, ceiling=5)  # not leader yet
    assert writes() == before
    assert a.try_acquire_or_renew()
    assert ensure_hpa(kube, pa, ceiling=5) == "created"
    mono[0] += LEASE.renew_deadline_seconds  # the deadline, and no renewal
    before = writes()
    with pytest.raises(NotLeader):
        ensure_hpa(kube, pa, ceiling=9)
    with pytest.raises(NotLeader):
        KubeCluster(kube).patch_status(pa, PredictiveAutoscalerStatus(replicas=9))
    assert not emit_event(kube, pa, "X", "y", now=1.7e9)
    assert writes() == before  # nothing was sent
    assert a.try_acquire_or_renew()  # the Lease still names "a": it renews
    assert ensure_hpa(kube, pa, ceiling=9) == "updated"
