"""The reconcile loop against a REAL Prometheus (backfilled from the bundled NASA trace).

Time is a ``SimClock`` placed just after the backfilled data ends, so "fresh" and
"missing" data are exact moments, not sleeps. The cluster is a ``StaticCluster``
(objects as YAML documents would give them); the Kubernetes API itself is covered
in ``test_controller_kube.py`` against kmock.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from autoscaler.controller import Controller
from autoscaler.kube.cluster import StaticCluster, TargetInfo
from autoscaler.ledger_store import LedgerStore
from autoscaler.metrics import ControllerMetrics
from autoscaler.settings import ControllerSettings, load_settings
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.store import DecisionStore
from policies.decision import served_value
from simulations.clock import SimClock
from tests.integration.promfixture import (
    PrometheusServer,
)

QUERY = "rate(http_requests_total[2m])"
METRIC = "autoscaler_desired_replicas"


def pa_doc(namespace: str, name: str, target: str | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "targetRef": {"name": target or name},
        "query": QUERY,
        "capacityPerReplica": 0.5,
        # Given, as the API server stored it under the CRD's old default (omitted, the
        # controller would calibrate it: tests/controller/test_learning.py).
        "leadTimeSeconds": 105,
        "forecaster": "last",
        "maxReplicas": 200,
        "fallback": {"holdSeconds": 120},
    }
    body.update(spec)
    return {
        "apiVersion": "autoscaling.predictive.io/v1alpha1",
        "kind": "PredictiveAutoscaler",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": body,
    }


def deployment(namespace: str, name: str, replicas: int, cpu: str = "500m") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "app", "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}
                    ]
                }
            },
        },
        "status": {"replicas": replicas},
    }


def budget_doc(name: str, namespaces: list[str], hourly: float) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling.predictive.io/v1alpha1",
        "kind": "CostBudget",
        "metadata": {"name": name},
        "spec": {
            "environment": name,
            "selector": {"namespaces": namespaces},
            "hourlyLimit": hourly,
            "monthlyLimit": 10_000.0,
        },
    }


def make_settings(prom: PrometheusServer, tmp_path: Path) -> ControllerSettings:
    return load_settings(
        None,
        prometheus={"url": prom.url, "step_seconds": 60, "backfill_seconds": 6 * 3600},
        loop={"stale_after_seconds": 180},
        ledger={"path": tmp_path / "ledger.json"},
        shadow={"path": tmp_path / "shadow.jsonl"},
    )


def make_controller(
    prom: PrometheusServer, tmp_path: Path, docs: list[dict[str, Any]], start: float
) -> tuple[Controller, StaticCluster, DecisionStore, SimClock]:
    settings = make_settings(prom, tmp_path)
    cluster = StaticCluster.from_documents(docs)
    store = DecisionStore()
    clock = SimClock(start)
    ctl = Controller(
        settings,
        PrometheusSource(settings.prometheus),
        cluster,
        store,
        clock,
        ControllerMetrics(),
        LedgerStore(settings.ledger.path),
    )
    return ctl, cluster, store, clock


SHOP = [
    pa_doc("shop", "web"),
    pa_doc("shop", "api"),
    pa_doc("blog", "front"),
    deployment("shop", "web", 3),
    deployment("shop", "api", 3),
    deployment("blog", "front", 3),
]


def test_first_tick_backfills_in_one_batched_query(
    prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    ctl, cluster, store, clock = make_controller(prom, tmp_path, SHOP, end + 30)
    sent = ctl.source.requests_sent  # type: ignore[attr-defined]
    report = ctl.reconcile()
    assert report.queries == 1  # three workloads, one shared query
    assert ctl.source.requests_sent - sent == 1  # type: ignore[attr-defined]
    for key in ("shop/web", "shop/api", "blog/front"):
        r = report.by_key()[key]
        assert not r.decision.fallback, r.decision.reason
        assert r.forecast_load is not None and r.forecast_load > 0
        assert r.decision.replicas >= 1
        assert r.served == served_value(r.decision.replicas, 3)
        assert len(ctl.workloads[key].state.history) >= 300  # ~6 h at 60 s: not cold
    served = {v.labels["workload"]: v.value for v in store.query("shop", METRIC, None)}
    assert set(served) == {"web", "api"}
    labels = store.query("shop", METRIC, None)[0].labels
    assert set(labels) == {"workload", "predictiveautoscaler"}
    # 15 s later no new step can exist yet: no request at all.
    clock.sleep(15)
    sent = ctl.source.requests_sent  # type: ignore[attr-defined]
    assert ctl.reconcile().queries == 0
    assert ctl.source.requests_sent == sent  # type: ignore[attr-defined]
    # A step later it asks only for what is new: one request, a short window.
    clock.sleep(60)
    sent = ctl.source.requests_sent  # type: ignore[attr-defined]
    before = len(ctl.workloads["shop/web"].state.history)
    ctl.reconcile()
    assert ctl.source.requests_sent - sent == 1  # type: ignore[attr-defined]
    assert len(ctl.workloads["shop/web"].state.history) - before <= 1


@pytest.mark.parametrize("mode", ["CurrentReplicas", "Static", "Reactive"])
def test_missing_data_holds_then_falls_back_never_down(
    prom: PrometheusServer, end: int, tmp_path: Path, mode: str
) -> None:
    docs = [
        pa_doc("shop", "web", fallback={"holdSeconds": 120, "mode": mode, "staticReplicas": 1}),
        deployment("shop", "web", 3),
    ]
    ctl, cluster, store, clock = make_controller(prom, tmp_path, docs, end + 30)
    good = ctl.reconcile().by_key()["shop/web"].decision
    assert not good.fallback
    # Someone scaled up by hand (or the HPA did): 2x what we asked for is running.
    running = good.replicas * 2 + 5
    cluster.targets[("shop", "web")] = TargetInfo(running, {"cpu": "500m"})
    clock.advance_to(end + 400)  # newest sample 400 s old > 180 s: missing
    held = ctl.reconcile().by_key()["shop/web"]
    assert held.decision.fallback
    assert held.decision.replicas >= running  # never below what runs
    assert "missing" in held.decision.reason
    clock.advance_to(end + 400 + 200)  # past holdSeconds: the mode applies
    after = ctl.reconcile().by_key()["shop/web"]
    assert after.decision.fallback
    assert after.decision.replicas >= running
    assert mode in after.decision.reason
    # ... and with few replicas running, the hold serves the last good decision.
    cluster.targets[("shop", "web")] = TargetInfo(1, {"cpu": "500m"})
    ctl2, cluster2, _, clock2 = make_controller(prom, tmp_path / "b", docs, end + 30)
    good2 = ctl2.reconcile().by_key()["shop/web"].decision
    cluster2.targets[("shop", "web")] = TargetInfo(1, {"cpu": "500m"})
    clock2.advance_to(end + 400)
    hold = ctl2.reconcile().by_key()["shop/web"].decision
    assert hold.replicas == max(good2.replicas, 1)
    assert served_value(hold.replicas, 1) >= 1


def test_a_workload_without_any_data_holds_current(
    prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    docs = [pa_doc("old", "gone"), deployment("old", "gone", 4), pa_doc("nope", "none")]
    ctl, cluster, store, clock = make_controller(prom, tmp_path, docs, end + 30)
    report = ctl.reconcile().by_key()
    assert report["old/gone"].decision.fallback  # stopped an hour ago
    assert report["old/gone"].decision.replicas == 4
    assert report["old/gone"].served == 4.0
    assert report["nope/none"].decision.fallback  # never had data: min (nothing runs)
    assert report["nope/none"].decision.replicas >= 1


def test_a_bad_query_is_isolated(prom: PrometheusServer, end: int, tmp_path: Path) -> None:
    docs = [*SHOP, pa_doc("shop", "broken", "web", query="rate(http_requests_total[2m]")]
    ctl, cluster, store, clock = make_controller(prom, tmp_path, docs, end + 30)
    report = ctl.reconcile().by_key()
    assert report["shop/broken"].decision.fallback
    assert report["shop/broken"].data_error
    assert report["shop/broken"].decision.replicas == 3  # what runs
    assert not report["shop/web"].decision.fallback


def test_clamps_are_logged_and_counted(
    prom: PrometheusServer, end: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    docs = [pa_doc("shop", "web", minReplicas=150), deployment("shop", "web", 3)]
    ctl, cluster, store, clock = make_controller(prom, tmp_path, docs, end + 30)
    with caplog.at_level(logging.INFO, logger="autoscaler.controller"):
        r = ctl.reconcile().by_key()["shop/web"]
    assert r.decision.binding_constraint == "min"
    assert r.decision.replicas == 150
    clamp_logs = [rec for rec in caplog.records if getattr(rec, "event", "") == "clamp"]
    assert clamp_logs and clamp_logs[0].constraint == "min"  # type: ignore[attr-defined]
    value = ctl.metrics.registry.get_sample_value(
        "autoscaler_clamps_total",
        {"namespace": "shop", "workload": "web", "constraint": "min", "environment": "none"},
    )
    assert value == 1.0


#: OpenCost's default price of one replica requesting 1 vCPU and 1 GiB, $/h.
REPLICA_PRICE = 0.031611 + 0.004237


def test_budget_clamps_by_priority_and_the_ledger_survives_restart(
    prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    docs: list[dict[str, Any]] = [
        pa_doc("shop", "web", priority=10, capacityPerReplica=0.2),
        pa_doc("shop", "api", priority=0, capacityPerReplica=0.2),
        deployment("shop", "web", 3, cpu="1"),
        deployment("shop", "api", 3, cpu="1"),
    ]
    # What the two want without a budget, then a budget for half of it.
    free, *_ = make_controller(prom, tmp_path / "free", docs, end + 30)
    wanted = {k: r.decision.replicas for k, r in free.reconcile().by_key().items()}
    allowed = max(2, sum(wanted.values()) // 2)
    assert sum(wanted.values()) > allowed
    hourly = REPLICA_PRICE * allowed + 0.001
    docs.append(budget_doc("shop-prod", ["shop"], hourly=hourly))
    ctl, cluster, store, clock = make_controller(prom, tmp_path, docs, end + 30)
    report = ctl.reconcile()
    web, api = report.by_key()["shop/web"], report.by_key()["shop/api"]
    assert web.decision.replicas + api.decision.replicas <= allowed
    assert web.decision.replicas == min(wanted["shop/web"], allowed - 1)  # priority first
    assert api.decision.binding_constraint == "budget"  # the low-priority one pays
    assert api.ceiling == max(1, api.decision.replicas)  # hard: HPA maxReplicas = allocation
    if web.decision.binding_constraint != "budget":
        # not held down by the budget: maxReplicas stays the spec's (no HPA rewrite per
        # tick, the HPA's scale-down stabilisation intact)
        assert web.ceiling == ctl.workloads["shop/web"].spec.max_replicas
    (env,) = report.environments
    assert env.hourly_cap == pytest.approx(hourly)
    assert env.hourly_cost <= hourly + 1e-9
    assert "shop/api" in env.clamped
    text = ctl.explain("shop/api")
    assert "shop-prod" in text and "binding:    budget" in text
    # Spend accrues from what RAN (3 + 3 replicas) and is persisted after each tick.
    clock.sleep(3600)
    ctl.reconcile()
    spent = float(LedgerStore(tmp_path / "ledger.json").load()["shop-prod"].spent)
    assert spent == pytest.approx(6 * REPLICA_PRICE, rel=0.02)
    assert cluster.budget_statuses["shop-prod"].spend_dollars == pytest.approx(spent, rel=1e-6)
    # A restarted controller continues from the file: no spend is lost.
    ctl2, _, _, _ = make_controller(prom, tmp_path, docs, end + 30 + 3600 + 60)
    ctl2.reconcile()
    again = float(LedgerStore(tmp_path / "ledger.json").load()["shop-prod"].spent)
    assert again >= spent


def test_a_target_that_cannot_be_priced_is_held_under_a_budget(
    prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    """A budgeted workload whose target was never readable has no price: it is held at
    what runs (and says why) instead of being priced at $0 and escaping the budget. One
    whose target was read once keeps that price when the target becomes unreadable."""
    docs: list[dict[str, Any]] = [
        pa_doc("shop", "web", capacityPerReplica=0.2),
        pa_doc("shop", "api", capacityPerReplica=0.2),
        deployment("shop", "web", 1, cpu="1"),
        budget_doc("shop-prod", ["shop"], hourly=1000.0),
    ]
    ctl, cluster, _, clock = make_controller(prom, tmp_path, docs, end + 30)
    report = ctl.reconcile().by_key()
    web, api = report["shop/web"], report["shop/api"]  # shop/api has no Deployment
    assert web.decision.replicas > 1  # the load wants more than the one running
    assert api.decision.binding_constraint == "budget"
    assert api.decision.replicas == 1  # minReplicas: nothing runs that we can see
    assert "price per replica is unknown" in api.decision.reason
    assert "unknown" not in web.decision.reason
    # Read once, then unreadable: the last known requests still price it.
    del cluster.targets[("shop", "web")]
    clock.sleep(60)
    web2 = ctl.reconcile().by_key()["shop/web"]
    assert "unknown" not in web2.decision.reason
    assert web2.hourly_cost == pytest.approx(web2.decision.replicas * REPLICA_PRICE, rel=0.02)


def test_forecast_only_serves_nothing_and_records(
    prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    docs = [pa_doc("shop", "web", mode="ForecastOnly"), deployment("shop", "web", 3)]
    ctl, cluster, store, clock = make_controller(prom, tmp_path, docs, end + 30)
    r = ctl.reconcile().by_key()["shop/web"]
    assert r.served == 0.0 and r.decision.replicas >= 1
    assert store.query("shop", METRIC, None) == []
    assert "shop/web" not in cluster.hpas  # shadow mode creates no HPA
    lines = (tmp_path / "shadow.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert record["workload"] == "shop/web" and record["replicas"] == r.decision.replicas


def test_metric_names_are_exported(prom: PrometheusServer, end: int, tmp_path: Path) -> None:
    docs = [*SHOP, budget_doc("shop-prod", ["shop"], hourly=100.0)]
    ctl, cluster, store, clock = make_controller(prom, tmp_path, docs, end + 30)
    ctl.reconcile()
    text = generate_latest(ctl.metrics.registry).decode()
    for name in (
        "autoscaler_forecast_load",
        "autoscaler_observed_load",
        "autoscaler_workload_desired_replicas",
        "autoscaler_workload_served_replicas",
        "autoscaler_workload_current_replicas",
        "autoscaler_fallback_active",
        "autoscaler_budget_spend_dollars",
        "autoscaler_budget_projection_dollars",
        "autoscaler_budget_monthly_limit_dollars",
        "autoscaler_budget_hourly_cap_dollars",
        "autoscaler_budget_hourly_cost_dollars",
        "autoscaler_budget_infeasible",
        "autoscaler_decision_store_last_update_timestamp_seconds",
        "autoscaler_is_leader",
        "autoscaler_reconcile_duration_seconds_bucket",
    ):
        assert f"\n{name}" in text, name
    assert 'autoscaler_forecast_load{namespace="shop",quantile="0.9",workload="web"}' in text


def test_deleted_autoscaler_stops_being_served(
    prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    ctl, cluster, store, clock = make_controller(prom, tmp_path, SHOP, end + 30)
    ctl.reconcile()
    assert {v.labels["workload"] for v in store.query("shop", METRIC, None)} == {"web", "api"}
    cluster.autoscalers = [pa for pa in cluster.autoscalers if pa.metadata.name != "api"]
    clock.sleep(15)
    ctl.reconcile()
    assert {v.labels["workload"] for v in store.query("shop", METRIC, None)} == {"web"}
    assert "shop/api" not in ctl.workloads


def test_long_backfill_arrives_one_page_per_tick(
    prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    settings = load_settings(
        None,
        prometheus={"url": prom.url, "step_seconds": 60, "backfill_seconds": 2 * 86400},
        loop={
            "stale_after_seconds": 3600,
            "initial_backfill_seconds": 6 * 3600,
            "backfill_page_seconds": 12 * 3600,
        },
        ledger={"path": tmp_path / "ledger.json"},
        shadow={"path": tmp_path / "shadow.jsonl"},
    )
    clock = SimClock(end + 30)
    ctl = Controller(
        settings,
        PrometheusSource(settings.prometheus),
        StaticCluster.from_documents(SHOP),
        DecisionStore(),
        clock,
    )
    first = ctl.reconcile()
    assert first.queries == 1  # the initial 6 h only: a first tick stays cheap
    web = ctl.workloads["shop/web"]
    assert 300 <= len(web.state.history) <= 361
    lengths = [len(web.state.history)]
    queries = []
    fitted = []
    for _ in range(6):
        clock.sleep(60)
        report = ctl.reconcile()
        queries.append(report.queries)
        fitted.append(web.state.fitted_at)
        lengths.append(len(web.state.history))
        assert not report.by_key()["shop/web"].decision.fallback
    # 6 h + 12 h pages reach 2 days in 4 pages, one query per tick, then they stop.
    assert queries[:4] == [2, 2, 2, 2] and queries[4:] == [1, 1]
    assert lengths[4] >= 2 * 1440 - 2 and lengths[4] > lengths[1] > lengths[0]
    # No refit per page (a full refit per tick); one refit when the backfill completes.
    assert fitted[:3] == [end + 30] * 3 and fitted[3] == end + 30 + 4 * 60
    assert web.state.history.index.is_monotonic_increasing
    assert web.state.history.index.is_unique


def test_forecast_error_is_scored_one_lead_time_later(
    prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    docs = [pa_doc("shop", "web", leadTimeSeconds=120), deployment("shop", "web", 3)]
    ctl, cluster, store, clock = make_controller(prom, tmp_path, docs, end - 1800)
    labels = {"namespace": "shop", "workload": "web"}
    ctl.reconcile()
    assert ctl.metrics.registry.get_sample_value("autoscaler_forecast_error_ratio", labels) is None
    for _ in range(5):  # 5 minutes later the first forecasts' windows have been observed
        clock.sleep(60)
        ctl.reconcile()
    ratio = ctl.metrics.registry.get_sample_value("autoscaler_forecast_error_ratio", labels)
    assert ratio is not None and math.isfinite(ratio) and ratio > -1.0


def test_hpas_left_to_keda_when_not_managed(
    prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    """``loop.manage_hpas: false`` (the KEDA overlay): decisions are served, no HPA made."""
    docs = [pa_doc("shop", "web"), deployment("shop", "web", 3)]
    ctl, cluster, store, _ = make_controller(prom, tmp_path, docs, end + 30)
    ctl.settings.loop.manage_hpas = False
    r = ctl.reconcile().by_key()["shop/web"]
    assert r.served > 0.0
    assert store.query("shop", METRIC, None) != []
    assert "shop/web" not in cluster.hpas
    # and the default does create it
    ctl2, cluster2, _, _ = make_controller(prom, tmp_path / "b", docs, end + 30)
    ctl2.reconcile()
    assert "shop/web" in cluster2.hpas
