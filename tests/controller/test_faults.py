"""Fault tests: the controller against a REAL Prometheus and the kmock Kubernetes API.

Every case shows the same three things: no wrong scale-down (no workload is ever
decided below what runs while data or the API is broken), no crash (``reconcile``
returns, errors are reported), and no lost spend (the ledger only grows, by what ran).

Prometheus faults: killed mid-run then restarted, answering slowly (a delaying proxy
past the source's timeout), answering garbage (an HTML page, broken JSON). API faults:
409, 500 and timeouts from kmock. Leadership: the leader dies, the follower takes
over within the lease (short test durations) and continues the ledger.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest

from autoscaler.clock import WallClock
from autoscaler.controller import Controller, ReconcileReport
from autoscaler.kube.client import KubeClient, KubeSettings
from autoscaler.kube.cluster import KubeCluster, StaticCluster, TargetInfo
from autoscaler.kube.leader import LeaderElector, LeaderSettings
from autoscaler.ledger_store import LedgerStore
from autoscaler.metrics import ControllerMetrics
from autoscaler.settings import ControllerSettings, load_settings
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.store import DecisionStore
from simulations.clock import SimClock
from tests.controller.kmockharness import KmockCluster
from tests.controller.test_controller import budget_doc, deployment, pa_doc
from tests.integration.promfixture import (
    LoopbackServer,
    PrometheusServer,
    aligned_now,
    require_prometheus,
    trace_counter,
)

PA = "autoscaling.predictive.io/v1alpha1/predictiveautoscalers"
CB = "autoscaling.predictive.io/v1alpha1/costbudgets"
HPA = "autoscaling/v2/horizontalpodautoscalers"
DEPLOY = "apps/v1/deployments"
METRIC = "autoscaler_desired_replicas"


def settings_for(
    url: str, tmp_path: Path, timeout: float = 2.0, stale: float = 180.0
) -> ControllerSettings:
    return load_settings(
        None,
        prometheus={
            "url": url,
            "step_seconds": 60,
            "backfill_seconds": 6 * 3600,
            "timeout_seconds": timeout,
        },
        loop={"stale_after_seconds": stale},
        ledger={"path": tmp_path / "ledger.json"},
        shadow={"path": tmp_path / "shadow.jsonl"},
    )


DOCS: list[dict[str, Any]] = [
    pa_doc("shop", "web", fallback={"holdSeconds": 30, "mode": "CurrentReplicas"}),
    pa_doc("shop", "api", fallback={"holdSeconds": 30, "mode": "Reactive"}),
    deployment("shop", "web", 3),
    deployment("shop", "api", 3),
    budget_doc("shop-prod", ["shop"], hourly=50.0),
]


class Loop:
    """A controller plus a mini closed loop: what runs follows what was decided."""

    def __init__(self, url: str, tmp_path: Path, start: float, timeout: float = 2.0) -> None:
        # The backfilled data ends at ``end``; a long stale limit makes the faults
        # (not the age of the data) the only reason for fallback here.
        self.settings = settings_for(url, tmp_path, timeout, stale=3600.0)
        self.cluster = StaticCluster.from_documents(DOCS)
        self.store = DecisionStore()
        self.clock = SimClock(start)
        self.ctl = Controller(
            self.settings,
            PrometheusSource(self.settings.prometheus),
            self.cluster,
            self.store,
            self.clock,
            ControllerMetrics(),
            LedgerStore(self.settings.ledger.path),
        )

    def tick(self, seconds: float = 60.0) -> ReconcileReport:
        running = {k: t.replicas for k, t in self.cluster.targets.items()}
        report = self.ctl.reconcile()
        for r in report.workloads:
            ran = running[(r.namespace, r.target)]
            if r.decision.fallback:
                # The invariant under test: missing data never scales down.
                assert r.decision.replicas >= ran, r.decision.reason
                assert r.served >= ran
            key = (r.namespace, r.target)
            self.cluster.targets[key] = TargetInfo(r.decision.replicas, {"cpu": "500m"})
        self.clock.sleep(seconds)
        return report

    def spent(self) -> float:
        return float(LedgerStore(self.settings.ledger.path).load()["shop-prod"].spent)


def _assert_spend_grows(loop: Loop, before: float) -> float:
    after = loop.spent()
    assert after > before  # time passed and replicas ran: spend grew, none was lost
    return after


@pytest.mark.parametrize(
    "fault",
    ["slow", "html_page", "broken_json", "http_500"],
)
def test_prometheus_faults_hold_and_recover(
    prom: PrometheusServer, end: int, tmp_path: Path, fault: str
) -> None:
    proxy = LoopbackServer(upstream=prom.url)
    try:
        loop = Loop(proxy.url, tmp_path, end + 15, timeout=1.0)
        healthy = loop.tick()
        assert not any(r.decision.fallback for r in healthy.workloads)
        loop.tick()
        spent = loop.spent()
        if fault == "slow":
            proxy.delay_s = 3.0  # > the 1-s timeout
        else:
            proxy.upstream = None
            proxy.status, proxy.content_type, proxy.body = {
                "html_page": (200, "text/html", b"<html><title>Login</title></html>"),
                "broken_json": (200, "application/json", b'{"status":"success","data":{'),
                "http_500": (500, "text/plain", b"internal error"),
            }[fault]
        started = time.monotonic()
        for _ in range(3):  # 45 s of fault: past holdSeconds (30 s)
            report = loop.tick()
            assert all(r.decision.fallback for r in report.workloads)
            assert all(r.data_error for r in report.workloads)
            spent = _assert_spend_grows(loop, spent)
        assert time.monotonic() - started < 3 * 3.0  # bounded by the timeout, not the fault
        events = [reason for _, reason, _ in loop.cluster.events]
        assert events.count("FallbackStarted") == 2  # once per workload, not per tick
        proxy.upstream, proxy.delay_s = prom.url, 0.0
        back = loop.tick()
        assert not any(r.decision.fallback for r in back.workloads)
        assert [r for _, r, _ in loop.cluster.events].count("FallbackEnded") == 2
        _assert_spend_grows(loop, spent)
        assert {v.labels["workload"] for v in loop.store.query("shop", METRIC, None)} == {
            "web",
            "api",
        }
    finally:
        proxy.stop()


@pytest.mark.slow
def test_prometheus_killed_mid_run_then_restarted(tmp_path: Path) -> None:
    require_prometheus()
    end = aligned_now(60) - 60
    backfill = [
        trace_counter(
            "nasa_http_jul1995_1min",
            {"namespace": "shop", "workload": w},
            points=12 * 60,
            end=end,
            offset=off,
        )
        for w, off in (("web", 10 * 1440), ("api", 20 * 1440))
    ]
    server = PrometheusServer.start(tmp_path / "prom", backfill=backfill)
    try:
        loop = Loop(server.url, tmp_path, end + 15, timeout=1.0)
        loop.tick()
        loop.tick()
        spent = loop.spent()
        served_before = {
            v.labels["workload"]: v.value for v in loop.store.query("shop", METRIC, None)
        }
        server.kill()
        for _ in range(3):
            report = loop.tick()  # connection refused: no crash, fallback, never down
            assert all(r.decision.fallback for r in report.workloads)
            spent = _assert_spend_grows(loop, spent)
        served = {v.labels["workload"]: v.value for v in loop.store.query("shop", METRIC, None)}
        assert all(served[w] >= served_before[w] for w in served_before)
        server.restart()
        back = loop.tick()
        assert not any(r.decision.fallback for r in back.workloads), [
            r.decision.reason for r in back.workloads
        ]
        _assert_spend_grows(loop, spent)
    finally:
        server.stop()


# ------------------------------------------------------------------ Kubernetes API


@pytest.fixture()
def cluster() -> Iterator[KmockCluster]:
    c = KmockCluster()
    try:
        for doc in DOCS:
            meta = doc["metadata"]
            resource = {"PredictiveAutoscaler": PA, "CostBudget": CB, "Deployment": DEPLOY}[
                doc["kind"]
            ]
            c.put(resource, meta.get("namespace"), meta["name"], doc)
        yield c
    finally:
        c.close()


def kube_controller(
    cluster: KmockCluster,
    prom: PrometheusServer,
    tmp_path: Path,
    clock: Any,
    *,
    write: bool = True,
    is_leader: Any = lambda: True,
    retries: int = 2,
    timeout: float = 2.0,
) -> Controller:
    settings = settings_for(prom.url, tmp_path)
    client = KubeClient(
        KubeSettings(
            host=cluster.url,
            retries=retries,
            backoff_seconds=0.01,
            request_timeout_seconds=timeout,
        )
    )
    return Controller(
        settings,
        PrometheusSource(settings.prometheus),
        KubeCluster(client, write=write),
        DecisionStore(),
        clock,
        ControllerMetrics(),
        LedgerStore(settings.ledger.path),
        is_leader=is_leader,
    )


def methods(cluster: KmockCluster, *names: str) -> int:
    return sum(1 for r in cluster.requests() if r.method.value in names)


def test_leader_writes_owned_hpa_status_and_events(
    cluster: KmockCluster, prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    clock = SimClock(end + 15)
    ctl = kube_controller(cluster, prom, tmp_path, clock)
    report = ctl.reconcile()
    assert report.errors == ()
    web = report.by_key()["shop/web"]
    hpa = cluster.get(HPA, "shop", "web")
    assert hpa is not None
    assert hpa["spec"]["maxReplicas"] == web.ceiling
    assert hpa["spec"]["scaleTargetRef"]["name"] == "web"
    pa = cluster.get(PA, "shop", "web")
    assert pa is not None and pa["status"]["replicas"] == web.decision.replicas
    assert pa["status"]["conditions"][0]["type"] == "Ready"
    budget = cluster.get(CB, None, "shop-prod")
    assert budget is not None and "spendDollars" in budget["status"]
    # Nothing changed 15 s later: no HPA or PA writes, only the budget's spend.
    writes = methods(cluster, "PATCH", "POST")
    gets = methods(cluster, "GET")
    clock.sleep(15)
    ctl.reconcile()
    assert methods(cluster, "PATCH", "POST") - writes == 1
    assert methods(cluster, "GET") - gets <= 4  # lists + targets, no per-HPA reads
    # Data goes missing: one FallbackStarted Event per workload.
    clock.advance_to(end + 400)
    ctl.reconcile()
    posts = [r.data for r in cluster.requests() if r.method.value == "POST"]
    reasons = [p.get("reason") for p in posts if p.get("kind") == "Event"]
    assert reasons.count("FallbackStarted") == 2
    pa = cluster.get(PA, "shop", "web")
    assert pa is not None and pa["status"]["fallbackActive"] is True


def test_dry_run_and_followers_write_nothing(
    cluster: KmockCluster, prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    before = methods(cluster, "POST", "PATCH", "PUT", "DELETE")
    dry = kube_controller(cluster, prom, tmp_path, SimClock(end + 15), write=False)
    dry.dry_run = True
    dry.reconcile()
    follower = kube_controller(
        cluster, prom, tmp_path / "f", SimClock(end + 15), is_leader=lambda: False
    )
    report = follower.reconcile()
    assert methods(cluster, "POST", "PATCH", "PUT", "DELETE") == before
    assert not (tmp_path / "ledger.json").exists() and not (tmp_path / "f/ledger.json").exists()
    # A follower still serves: the APIService may route any request to it.
    assert len(follower.store.query("shop", METRIC, None)) == 2
    assert len(report.workloads) == 2


@pytest.mark.parametrize("status", [409, 500])
def test_api_write_errors_do_not_stop_the_loop(
    cluster: KmockCluster, prom: PrometheusServer, end: int, tmp_path: Path, status: int
) -> None:
    clock = SimClock(end + 15)
    ctl = kube_controller(cluster, prom, tmp_path, clock)
    first = ctl.reconcile()
    spent = 0.0
    cluster.do(lambda: cluster.emulator["patch"] << status)
    for _ in range(2):
        clock.sleep(15)
        report = ctl.reconcile()
        assert report.errors  # reported, not raised
        assert len(ctl.store.query("shop", METRIC, None)) == 2  # still served
        for r in report.workloads:
            assert (
                r.decision.replicas >= first.by_key()[r.key].current_replicas
                or not r.decision.fallback
            )
        now_spent = float(LedgerStore(tmp_path / "ledger.json").load()["shop-prod"].spent)
        assert now_spent > spent
        spent = now_spent


def test_api_timeouts_keep_the_last_known_objects(
    cluster: KmockCluster, prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    clock = SimClock(end + 15)
    ctl = kube_controller(cluster, prom, tmp_path, clock, retries=1, timeout=0.3)
    ctl.reconcile()

    async def hang(request: Any) -> dict[str, Any]:
        await asyncio.sleep(2.0)
        return {}

    cluster.do(lambda: cluster.emulator["get", kmock.resource(PA)] << hang)
    cluster.do(lambda: cluster.emulator["get", kmock.resource(DEPLOY)] << hang)
    clock.sleep(15)
    started = time.monotonic()
    report = ctl.reconcile()
    assert time.monotonic() - started < 10
    assert any("list PredictiveAutoscalers" in e for e in report.errors)
    # The autoscalers are not forgotten (no value withdrawn because the API hung),
    # and without a fresh replica count nothing is decided below the last one seen.
    assert {r.key for r in report.workloads} == {"shop/web", "shop/api"}
    assert len(ctl.store.query("shop", METRIC, None)) == 2


FAST = LeaderSettings(
    namespace="ops",
    lease_duration_seconds=3.0,
    renew_deadline_seconds=2.0,
    retry_period_seconds=0.3,
)


@pytest.mark.slow
def test_leader_killed_follower_takes_over_and_keeps_the_ledger(
    cluster: KmockCluster, prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    clock = SimClock(end + 15)
    shared = tmp_path / "shared"  # the ledger volume both replicas mount
    electors: dict[str, LeaderElector] = {}
    ctls: dict[str, Controller] = {}
    stops = {name: threading.Event() for name in "ab"}
    threads: dict[str, threading.Thread] = {}
    for name in "ab":
        client = KubeClient(KubeSettings(host=cluster.url, backoff_seconds=0.01))
        electors[name] = LeaderElector(client, FAST, name, WallClock())
        el = electors[name]
        ctls[name] = kube_controller(cluster, prom, shared, clock, is_leader=el.is_leader)
    threads["a"] = threading.Thread(target=electors["a"].run, args=(stops["a"],), daemon=True)
    threads["a"].start()
    deadline = time.monotonic() + 5
    while not electors["a"].is_leader() and time.monotonic() < deadline:
        time.sleep(0.05)
    threads["b"] = threading.Thread(target=electors["b"].run, args=(stops["b"],), daemon=True)
    threads["b"].start()
    assert electors["a"].is_leader()
    ctls["a"].reconcile()
    ctls["b"].reconcile()
    clock.sleep(15)
    ctls["a"].reconcile()
    ctls["b"].reconcile()
    spent = float(LedgerStore(shared / "ledger.json").load()["shop-prod"].spent)
    assert spent > 0
    assert not electors["b"].is_leader()
    # Kill the leader: no release, no more reconciles (a crashed pod).
    electors["a"].release = lambda: None  # type: ignore[method-assign]
    stops["a"].set()
    killed = time.monotonic()
    while not electors["b"].is_leader() and time.monotonic() - killed < 30:
        time.sleep(0.05)
    takeover = time.monotonic() - killed
    print(f"leader failover took {takeover:.2f}s")
    assert electors["b"].is_leader() and takeover < 30
    patches = methods(cluster, "PATCH")
    clock.sleep(15)
    ctls["b"].reconcile()
    assert methods(cluster, "PATCH") > patches  # the new leader writes statuses
    after = float(LedgerStore(shared / "ledger.json").load()["shop-prod"].spent)
    assert after > spent  # continued from the old leader's spend, nothing lost
    stops["b"].set()
    for t in threads.values():
        t.join(3)
