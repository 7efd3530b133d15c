"""A PredictiveAutoscaler without capacityPerReplica or leadTimeSeconds, against a REAL
Prometheus holding the cluster's metrics of an unseen, seeded workload
(``tests/calibsynth.py``): the load, cAdvisor CPU, kube-state-metrics requests, pod
owners, and pod created / Ready times.

The first ticks hold the replicas running and say why; after the controller's own
calibration (through the Prometheus source it already has, on the load history it
already holds) the decision uses the learnt capacity, and the status, ``explain`` and
the metrics show it, its source and its interval. A workload with too little data
keeps holding (never a scale-down for lack of a capacity).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler.controller import Controller
from autoscaler.kube.cluster import StaticCluster
from autoscaler.ledger_store import LedgerStore
from autoscaler.metrics import ControllerMetrics
from autoscaler.settings import load_settings
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.store import DecisionStore
from simulations.clock import SimClock
from tests.calibsynth import Synth, synth_workload
from tests.controller.test_controller import deployment
from tests.integration.promfixture import (
    BackfillSeries,
    PrometheusServer,
    aligned_now,
    require_prometheus,
)
from tests.integration.test_calibrate import cluster_series

pytestmark = [pytest.mark.integration]

NS = "shop"
SEED = 20261206
QUERY = "rate(http_requests_total[2m])"
HOLD = "capacity not learnt yet"


def _with_workload_label(series: list[BackfillSeries], name: str) -> list[BackfillSeries]:
    """The load counter as the PA's query sees it: summed by (namespace, workload)."""
    return [
        dataclasses.replace(s, labels={"namespace": NS, "workload": name})
        if s.metric == "http_requests"
        else s
        for s in series
    ]


@pytest.fixture(scope="module")
def end() -> int:
    return aligned_now(60) - 60


@pytest.fixture(scope="module")
def synth(end: int) -> dict[str, Synth]:
    return {
        # Half a day, no release in it: one capacity to find (17.3/s at 100 % CPU).
        "web": synth_workload(seed=SEED, end=end, days=0.5, release_before_end_s=-1),
        # 20 minutes of data: fewer steps than a fit needs.
        "young": synth_workload(
            seed=SEED + 1, end=end, days=20 / 1440, name="young", release_before_end_s=-1
        ),
        # No kube_pod_status_ready_time at all: the start-up comes from pod conditions.
        "noready": synth_workload(
            seed=SEED + 2, end=end, days=0.5, name="noready", release_before_end_s=-1
        ),
    }


@pytest.fixture(scope="module")
def prom(
    tmp_path_factory: pytest.TempPathFactory, synth: dict[str, Synth]
) -> Iterator[PrometheusServer]:
    require_prometheus()
    backfill: list[BackfillSeries] = []
    for name, s in synth.items():
        series = cluster_series(s, NS, name, ready=name != "noready")
        backfill += _with_workload_label(series, name)
    server = PrometheusServer.start(tmp_path_factory.mktemp("prom-learn"), backfill=backfill)
    try:
        yield server
    finally:
        server.stop()


def _pa(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling.predictive.io/v1alpha1",
        "kind": "PredictiveAutoscaler",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"},
        # No capacityPerReplica, no leadTimeSeconds: the controller learns them.
        "spec": {"targetRef": {"name": name}, "query": QUERY, "forecaster": "last"},
    }


def _controller(
    prom: PrometheusServer, tmp_path: Path, start: float, docs: list[dict[str, Any]]
) -> tuple[Controller, StaticCluster, SimClock, ControllerMetrics]:
    settings = load_settings(
        None,
        prometheus={"url": prom.url, "step_seconds": 60, "backfill_seconds": 6 * 3600},
        ledger={"path": tmp_path / "ledger.json"},
        shadow={"path": tmp_path / "shadow.jsonl"},
    )
    cluster = StaticCluster.from_documents(docs)
    clock = SimClock(start)
    metrics = ControllerMetrics()
    ctl = Controller(
        settings,
        PrometheusSource(settings.prometheus),
        cluster,
        DecisionStore(),
        clock,
        metrics,
        LedgerStore(settings.ledger.path),
    )
    return ctl, cluster, clock, metrics


def test_holds_until_learnt_then_decides_with_the_learnt_capacity(
    prom: PrometheusServer, synth: dict[str, Synth], end: int, tmp_path: Path
) -> None:
    docs = [_pa("web"), _pa("young"), deployment(NS, "web", 3), deployment(NS, "young", 12)]
    ctl, cluster, clock, metrics = _controller(prom, tmp_path, end + 30, docs)
    sample = metrics.registry.get_sample_value
    web = {"namespace": NS, "workload": "web"}

    # Tick 1 (the cold fetch) and tick 2: history is in, no capacity yet: hold.
    for tick in range(2):
        report = ctl.reconcile()
        r = report.by_key()["shop/web"]
        assert r.decision.replicas == 3 and r.current_replicas == 3, r.decision.reason
        assert r.decision.reason.startswith(HOLD), r.decision.reason
        assert not r.decision.fallback  # data is fine; the capacity is what is missing
        assert len(ctl.workloads["shop/web"].state.history) > 300  # the load is in
        if tick == 0:
            assert r.capacity is not None and r.capacity.source == "none"
            assert r.lead_time is not None and r.lead_time.source == "default"
            status = cluster.statuses["shop/web"]
            assert status.capacity_per_replica is not None
            assert status.capacity_per_replica.source == "none"
            assert sample("autoscaler_capacity_per_replica", {**web, "source": "learnt"}) is None
            assert "capacity:   not known yet" in ctl.explain("shop/web")
        clock.sleep(15)

    # Calibrated after tick 2's decision: tick 3 decides with the learnt capacity.
    report = ctl.reconcile()
    r = report.by_key()["shop/web"]
    truth = synth["web"].capacity_before
    cap = r.capacity
    assert cap is not None and cap.source == "learnt" and cap.value is not None
    assert abs(cap.value / truth - 1) < 0.10, (cap, truth)
    assert cap.low is not None and cap.high is not None and cap.low <= cap.value <= cap.high
    d = r.decision
    assert HOLD not in d.reason and f"with {cap.value:g}/s per replica" in d.reason, d.reason
    # The reactive floor alone needs this many replicas at the learnt capacity.
    y_now = ctl.workloads["shop/web"].state.current_rate
    assert y_now is not None
    floor = math.ceil(y_now / (cap.value * 0.85) - 1e-9)
    assert d.desired_replicas >= floor > 3, (d.reason, floor)
    assert r.per_replica == pytest.approx(cap.value * 0.85)
    # The lead time: the pods' start-up p90 + one sync, learnt too.
    lead = r.lead_time
    _p50, p90 = synth["web"].startup_truth(end)
    assert lead is not None and lead.source == "learnt" and lead.value is not None
    assert lead.value == pytest.approx(p90 + 15, rel=0.2)
    assert ctl.workloads["shop/web"].spec.lead_seconds == lead.value

    # Status, explain and metrics show the values in use, their source and interval.
    status = cluster.statuses["shop/web"]
    assert status.capacity_per_replica is not None and status.lead_time_seconds is not None
    assert status.capacity_per_replica.source == "learnt"
    assert status.capacity_per_replica.value == pytest.approx(cap.value, rel=1e-6)
    assert status.capacity_per_replica.low == pytest.approx(cap.low, rel=1e-6)
    assert status.capacity_per_replica.high == pytest.approx(cap.high, rel=1e-6)
    assert status.lead_time_seconds.source == "learnt"
    assert status.wire()["capacityPerReplica"]["source"] == "learnt"
    text = ctl.explain("shop/web")
    assert f"capacity:   {cap.value:.4g}/s per replica (learnt, interval [" in text, text
    assert "lead time:  " in text and "(learnt; start-up p90" in text, text
    learnt = {**web, "source": "learnt"}
    assert sample("autoscaler_capacity_per_replica", learnt) == pytest.approx(cap.value)
    assert sample("autoscaler_capacity_per_replica_low", learnt) == pytest.approx(cap.low)
    assert sample("autoscaler_capacity_per_replica_high", learnt) == pytest.approx(cap.high)
    assert sample("autoscaler_lead_time_seconds", learnt) == pytest.approx(lead.value)
    assert sample("autoscaler_lead_time_seconds", {**web, "source": "default"}) is None

    # Too little data: the calibration's reason, the replicas held (12, more than the
    # load needs), never a scale-down for lack of a capacity.
    y = report.by_key()["shop/young"]
    assert y.decision.replicas == 12 and y.decision.reason.startswith(HOLD), y.decision.reason
    assert "steps have CPU, pods and load together" in y.decision.reason, y.decision.reason
    assert y.capacity is not None and y.capacity.source == "none"
    assert sample("autoscaler_capacity_per_replica", {"namespace": NS, "workload": "young",
                                                      "source": "learnt"}) is None  # fmt: skip

    # Learning is on a schedule: no calibration query before the hour is up.
    sent = ctl.source.requests_sent  # type: ignore[attr-defined]
    clock.sleep(15)
    ctl.reconcile()
    assert ctl.source.requests_sent == sent  # type: ignore[attr-defined]


def test_given_values_are_never_calibrated(
    prom: PrometheusServer, end: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both fields given: no calibration ever, source "spec" everywhere."""
    import autoscaler.controller.learning as learning

    def never(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("calibrated a workload whose spec gives both values")

    monkeypatch.setattr(learning, "calibrate_workload", never)
    pa = _pa("web")
    pa["spec"].update(capacityPerReplica=17.0, leadTimeSeconds=60)
    docs = [pa, deployment(NS, "web", 3)]
    ctl, cluster, clock, metrics = _controller(prom, tmp_path, end + 30, docs)
    for _ in range(4):
        r = ctl.reconcile().by_key()["shop/web"]
        clock.sleep(15)
    assert ctl.workloads["shop/web"].learnt is None
    assert r.capacity is not None and (r.capacity.value, r.capacity.source) == (17.0, "spec")
    assert r.lead_time is not None and (r.lead_time.value, r.lead_time.source) == (60.0, "spec")
    assert HOLD not in r.decision.reason
    labels = {"namespace": NS, "workload": "web", "source": "spec"}
    assert metrics.registry.get_sample_value("autoscaler_capacity_per_replica", labels) == 17.0
    assert cluster.statuses["shop/web"].capacity_per_replica.source == "spec"  # type: ignore[union-attr]


def _rfc3339(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_without_ready_time_series_the_start_up_comes_from_pod_conditions(
    prom: PrometheusServer, synth: dict[str, Synth], end: int, tmp_path: Path
) -> None:
    """kube-state-metrics without ``kube_pod_status_ready_time``: the lead time is
    learnt from the target's pods' Ready conditions (creationTimestamp ->
    lastTransitionTime), read through the cluster, as the issue asks."""
    s = synth["noready"]
    target = deployment(NS, "noready", 3)
    target["spec"]["selector"] = {"matchLabels": {"app": "noready"}}
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": p.name,
                "namespace": NS,
                "labels": {"app": "noready"},
                "creationTimestamp": _rfc3339(p.created),
            },
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": _rfc3339(p.ready)}
                ]
            },
        }
        for p in s.pod_list
        if p.ready <= end and p.deleted > end
    ]
    stranger = dict(pods[0], metadata={**pods[0]["metadata"], "labels": {"app": "other"}})
    docs = [_pa("noready"), target, *pods, stranger]
    ctl, cluster, clock, _metrics = _controller(prom, tmp_path, end + 30, docs)
    for _ in range(3):
        report = ctl.reconcile()
        clock.sleep(15)
    r = report.by_key()["shop/noready"]
    lead = r.lead_time
    ready_at = [(p.created, p.ready) for p in s.pod_list if p.ready <= end and p.deleted > end]
    import numpy as np

    p90 = float(np.quantile([b - a for a, b in ready_at], 0.9))
    assert lead is not None and lead.source == "learnt", lead
    assert lead.value == pytest.approx(p90 + 15, abs=2.0), (lead, p90)
    assert "Ready" in ctl.explain("shop/noready"), ctl.explain("shop/noready")
