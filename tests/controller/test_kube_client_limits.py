"""The client-side write rate limit (client-go's token bucket) and ``Retry-After``.

Against the kmock emulator over HTTP: writes beyond the burst are paced at ``qps``,
reads are not limited, the Lease is never held back by a burst of other writes, and a
429 / 503 that says ``Retry-After`` is retried no sooner than it says (and not at all
when it says more than ``retry_after_max_seconds``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import kmock
import pytest

from autoscaler.clock import WallClock
from autoscaler.kube.client import (
    KubeClient,
    KubeError,
    KubeSettings,
    RateLimited,
    TokenBucket,
    path_for,
    retry_after_seconds,
)
from autoscaler.kube.leader import LeaderElector, LeaderSettings
from autoscaler.settings import load_settings
from tests.controller.kmockharness import KmockCluster

EVENTS = path_for("v1", "events", "shop")
LEASES = "coordination.k8s.io/v1/leases"
LEASE_X = path_for("coordination.k8s.io/v1", "leases", "ops", "x")


@pytest.fixture()
def cluster() -> Iterator[KmockCluster]:
    c = KmockCluster()
    try:
        yield c
    finally:
        c.close()


def client_for(cluster: KmockCluster, **kw: Any) -> KubeClient:
    return KubeClient(KubeSettings(host=cluster.url, backoff_seconds=0.01, **kw))


def event(i: int) -> dict[str, Any]:
    return {"metadata": {"name": f"e{i}", "namespace": "shop"}, "reason": "X"}


def count(cluster: KmockCluster, method: str) -> int:
    return sum(1 for r in cluster.requests() if r.method.value == method)


def test_defaults_are_client_gos() -> None:
    s = load_settings()
    assert (s.kube.qps, s.kube.burst) == (5.0, 10)
    assert s.kube.retry_after_max_seconds == 10.0


def test_token_bucket_paces_after_the_burst() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(qps=5, burst=2, monotonic=lambda: now[0], sleep=sleep)
    assert bucket.acquire(10) and bucket.acquire(10)  # the burst: no wait
    assert slept == []
    assert bucket.acquire(10)
    assert slept == [pytest.approx(0.2)]  # then one token per 1/qps
    now[0] += 10  # idle: the bucket refills to the burst, not beyond
    for _ in range(2):
        assert bucket.acquire(10)
    assert len(slept) == 1
    assert not bucket.acquire(0.1)  # would wait 0.2 s: refused, nothing taken
    assert bucket.acquire(0.2)


def test_writes_are_rate_limited_reads_are_not(cluster: KmockCluster) -> None:
    client = client_for(cluster, qps=5, burst=2)
    started = time.monotonic()
    for i in range(6):
        client.create(EVENTS, event(i))
    writes = time.monotonic() - started
    assert writes >= (6 - 2) / 5 - 0.05  # 2 at once, then 4 at 5/s
    started = time.monotonic()
    for _ in range(10):
        client.list(EVENTS)
    assert time.monotonic() - started < 0.5
    assert count(cluster, "POST") == 6


def test_a_write_that_would_wait_too_long_fails_retryable(cluster: KmockCluster) -> None:
    client = client_for(cluster, qps=0.1, burst=1, rate_limit_wait_seconds=0.5)
    client.create(EVENTS, event(0))
    started = time.monotonic()
    with pytest.raises(RateLimited):
        client.create(EVENTS, event(1))
    assert time.monotonic() - started < 0.5  # refused at once, not after waiting
    assert count(cluster, "POST") == 1


def test_the_lease_is_not_held_back_by_other_writes(cluster: KmockCluster) -> None:
    client = client_for(cluster, qps=0.2, burst=1, rate_limit_wait_seconds=30)
    client.create(EVENTS, event(0))  # the bucket is empty for the next 5 s
    settings = LeaderSettings(
        namespace="ops",
        lease_duration_seconds=3.0,
        renew_deadline_seconds=2.0,
        retry_period_seconds=0.5,
    )
    elector = LeaderElector(client, settings, "a", WallClock())
    started = time.monotonic()
    assert elector.try_acquire_or_renew()  # create
    assert elector.try_acquire_or_renew()  # renew (a PATCH)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(cluster: KmockCluster, status: int) -> None:
    client = client_for(cluster, retries=3)
    cluster.put(LEASES, "ops", "x", {"metadata": {"name": "x", "namespace": "ops"}})
    cluster.do(
        lambda: (
            cluster.emulator["patch", kmock.resource(LEASES)][:1] << status << {"Retry-After": "1"}
        )
    )
    started = time.monotonic()
    client.merge_patch(LEASE_X, {"spec": {"holderIdentity": "a"}})
    waited = time.monotonic() - started
    assert count(cluster, "PATCH") == 2  # refused once, then accepted
    assert 1.0 <= waited < 2.0  # not before the server said, and not much later


def test_retry_after_beyond_the_bound_is_not_waited_for(cluster: KmockCluster) -> None:
    client = client_for(cluster, retries=3, retry_after_max_seconds=2)
    cluster.do(
        lambda: (
            cluster.emulator["post", kmock.resource("v1/events")] << 429 << {"Retry-After": "120"}
        )
    )
    started = time.monotonic()
    with pytest.raises(KubeError) as info:
        client.create(EVENTS, event(0))
    assert info.value.status == 429 and info.value.retry_after == 120
    assert time.monotonic() - started < 1.0
    assert count(cluster, "POST") == 1  # no retry sooner than the server allowed


def test_retry_after_forms() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("-1") == 0.0
    assert retry_after_seconds("Sun, 06 Dec 2026 00:00:10 GMT", now=1796515200.0) == 10.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
