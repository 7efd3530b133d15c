"""The decision path under data faults, and the cost guard without its ledger.

Pure ``policies.tick`` for the data rules (partial sums, sudden drops: each must hold
replicas, and each must let a real fall through after ``confirmSeconds``), and the
whole ``Controller`` for a corrupt ledger file (only the cost guard may stop).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from autoscaler.controller import Controller, scaling_spec
from autoscaler.kube.cluster import StaticCluster
from autoscaler.ledger_store import LedgerStore
from autoscaler.metrics import ControllerMetrics
from autoscaler.settings import load_settings
from autoscaler.store import DecisionStore
from policies.objects import PredictiveAutoscaler, TargetInfo
from policies.tick import LoopState, Observation, plan_tick
from simulations.clock import SimClock
from simulations.world import TraceSource

T0 = 1_767_225_600.0  # 2026-01-01T00:00Z
STEP = 60.0


def _pa(name: str = "web", ns: str = "shop", confirm: float = 180.0) -> PredictiveAutoscaler:
    return PredictiveAutoscaler.parse(
        {
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "targetRef": {"name": name},
                "query": "q",
                "capacityPerReplica": 10,
                "forecaster": "last",
                "fallback": {"confirmSeconds": confirm},
            },
        }
    )


def _series(values: list[float], counts: list[float], start: float) -> tuple[pd.Series, Any]:
    idx = pd.to_datetime(start + STEP * np.arange(len(values)), unit="s", utc=True)
    return pd.Series(values, index=idx, dtype=float), np.asarray(counts, dtype=float)


def _run(
    w: LoopState, minutes: list[tuple[float, float]], running: int, start: float = T0
) -> list[Any]:
    """One sample a minute, (load, series behind it); a tick every 15 s. Decisions."""
    out = []
    for i, (v, c) in enumerate(minutes):
        for k in range(4):
            now = start + i * STEP + 15 * k
            series, counts = _series([v], [c], start + i * STEP) if k == 0 else (None, None)
            obs = Observation(
                series, counts, "", TargetInfo(running, {"cpu": "1"}, running), running
            )
            plan = plan_tick(now, {w.key: w}, {w.key: obs}, {w.key: ""}, [], {}, 180.0)
            out.append(plan.workloads[w.key].decision)
    return out


def _state(pa: PredictiveAutoscaler) -> LoopState:
    return LoopState(pa=pa, spec=scaling_spec(pa, 3600.0, "last"))


def test_a_sum_that_halves_with_half_the_series_is_missing_data_until_confirmed() -> None:
    w = _state(_pa(confirm=180.0))
    calm = [(100.0, 4.0)] * 30
    partial = [(50.0, 2.0)] * 8
    decisions = _run(w, calm + partial, running=12)
    before = decisions[len(calm) * 4 - 1]
    assert not before.fallback and before.replicas >= 12
    held = decisions[len(calm) * 4 : len(calm) * 4 + 12]  # the first 3 minutes
    assert all(d.fallback and "partial data" in d.reason for d in held), held[0].reason
    assert all(d.replicas >= 12 for d in held)
    # After confirmSeconds the lower level is real: replicas follow it down.
    after = decisions[-1]
    assert not after.fallback and after.replicas < 12, after.reason


def test_fewer_series_with_the_load_holding_up_is_a_scale_in_not_partial() -> None:
    w = _state(_pa())
    decisions = _run(w, [(100.0, 12.0)] * 30 + [(100.0, 6.0)] * 5, running=12)
    assert not any(d.fallback for d in decisions[30 * 4 :])


def test_a_sudden_drop_holds_replicas_for_the_confirmation_period() -> None:
    w = _state(_pa(confirm=180.0))
    rng = np.random.default_rng(1)
    calm = [(100.0 + float(rng.normal(0, 2)), float("nan")) for _ in range(60)]
    decisions = _run(w, calm + [(20.0, float("nan"))] * 6, running=12)
    last_calm = decisions[60 * 4 - 1].replicas
    dropped = decisions[60 * 4 : 60 * 4 + 12]
    assert all(d.replicas >= min(12, last_calm) for d in dropped), [d.replicas for d in dropped]
    assert "sudden drop" in dropped[1].reason
    assert decisions[-1].replicas < last_calm  # confirmed: a real drop scales down


def test_no_confirmation_period_follows_a_drop_at_once() -> None:
    w = _state(_pa(confirm=0.0))
    rng = np.random.default_rng(1)
    calm = [(100.0 + float(rng.normal(0, 2)), 4.0) for _ in range(60)]
    decisions = _run(w, calm + [(20.0, 4.0)] * 2, running=12)
    assert decisions[60 * 4].replicas < decisions[60 * 4 - 1].replicas


def _docs() -> list[dict[str, Any]]:
    def pa(ns: str, name: str) -> dict[str, Any]:
        return {
            "apiVersion": "autoscaling.predictive.io/v1alpha1",
            "kind": "PredictiveAutoscaler",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"targetRef": {"name": name}, "query": "q", "capacityPerReplica": 10},
        }

    def deploy(ns: str, name: str) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "replicas": 3,
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
                        ]
                    }
                },
            },
            "status": {"replicas": 3, "readyReplicas": 3},
        }

    budget = {
        "apiVersion": "autoscaling.predictive.io/v1alpha1",
        "kind": "CostBudget",
        "metadata": {"name": "prod"},
        "spec": {"environment": "prod", "selector": {"namespaces": ["prod"]}, "hourlyLimit": 100},
    }
    return [
        pa("prod", "api"),
        deploy("prod", "api"),
        pa("dev", "web"),
        deploy("dev", "web"),
        budget,
    ]


@pytest.mark.parametrize("content", ['{"ledgers": {"prod": {"month": "2026-0', "garbage\x00"])
def test_a_corrupt_ledger_stops_only_the_cost_guard(tmp_path: Path, content: str) -> None:
    ledger = tmp_path / "ledger.json"
    ledger.write_text(content)
    settings = load_settings(
        None,
        prometheus={"url": "http://127.0.0.1:1"},
        ledger={"path": ledger},
        shadow={"path": tmp_path / "shadow.jsonl"},
    )
    idx = pd.to_datetime(T0 - 3600 + STEP * np.arange(61), unit="s", utc=True)
    load = pd.Series(np.full(61, 200.0), index=idx)  # needs 24 replicas at 85 %
    clock = SimClock(T0 + 5)
    source = TraceSource(load, clock, [("prod", "api"), ("dev", "web")])
    cluster = StaticCluster.from_documents(_docs())
    metrics = ControllerMetrics()
    store = DecisionStore()
    ctl = Controller(settings, source, cluster, store, clock, metrics, LedgerStore(ledger))
    report = ctl.reconcile()  # must not raise
    by = report.by_key()
    free, guarded = by["dev/web"], by["prod/api"]
    assert not free.decision.fallback and free.decision.replicas >= 24
    assert guarded.decision.replicas <= 3 and guarded.decision.binding_constraint == "budget"
    assert "cost guard cannot run" in guarded.decision.reason
    assert {v.labels["workload"] for v in store.all_values()} == {"web", "api"}
    value = metrics.registry.get_sample_value(
        "autoscaler_cost_guard_unavailable", {"environment": "prod"}
    )
    assert value == 1.0
    assert ledger.read_text() == content  # never overwritten with a fresh (zero) ledger
    assert any("ledger unreadable" in e for e in report.errors)
    # Nor the CostBudget's spend, which a new leader would seed its ledger from.
    assert "prod" not in cluster.budget_statuses


def test_a_budget_clamp_stops_the_price_of_a_miss_from_adapting() -> None:
    """The cost guard calls note_clamp: misses while a budget holds the workload down
    must not raise the price of a miss (the controller did not, before the shared tick)."""
    from policies.budget import CostBudget
    from policies.objects import Budget

    w = _state(_pa(ns="prod"))
    budget = Budget(
        "prod",
        CostBudget.model_validate(
            {"environment": "prod", "selector": {"namespaces": ["prod"]}, "hourlyLimit": 0.1}
        ),
    )
    target = TargetInfo(3, {"cpu": "1", "memory": "1Gi"}, 3)
    prices: list[float | None] = []
    for i in range(40):
        now = T0 + 15 * i
        series, counts = _series([100.0 + i], [4.0], now) if i % 4 == 0 else (None, None)
        obs = Observation(series, counts, "", target, 3)
        plan = plan_tick(now, {w.key: w}, {w.key: obs}, {w.key: "prod"}, [budget], {}, 180.0)
        d = plan.workloads[w.key].decision
        assert d.binding_constraint == "budget" and d.replicas <= 3
        assert w.state.clamped_at == now
        prices.append(w.state.log_price)
    # Every tick is a miss (100/s against 3 x 10 x 0.85), yet the price never rose.
    known = [p for p in prices if p is not None]
    assert known and max(known) <= known[0] + 1e-12


def test_a_sum_that_fades_before_the_series_vanish_is_still_partial() -> None:
    """rate() over a pod no longer scraped fades over its window before the series
    goes: the sum is already down to ~60 % when the count drops from 4 to 2 (seen with a
    real Prometheus at a 15-s step). Measured against the last value alone, 50 after 60
    would look like a scale-in; against the highest complete sum of the last 5 minutes
    it is partial."""
    w = _state(_pa(confirm=180.0))
    calm = [(100.0, 4.0)] * 30
    fading = [(90.6, 4.0), (75.0, 4.0), (59.4, 4.0)]
    decisions = _run(w, calm + fading + [(50.0, 2.0)] * 2, running=12)
    after = decisions[(len(calm) + len(fading)) * 4 :]
    assert all(d.fallback and "partial data" in d.reason for d in after), after[0].reason


def test_the_controller_status_metric_and_budget_report_project_the_same_month(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One month-end projection: what the controller's metric shows, what it writes into
    the CostBudget status (``kubectl get costbudgets``) and what ``budget report
    --ledger`` prints from the ledger the controller saved are one figure."""
    import datetime as dt

    from tests.policies.test_cli_budget import _budget_file, run

    ledger = tmp_path / "ledger.json"
    settings = load_settings(
        None,
        prometheus={"url": "http://127.0.0.1:1"},
        ledger={"path": ledger},
        shadow={"path": tmp_path / "shadow.jsonl"},
    )
    idx = pd.to_datetime(T0 - 3600 + STEP * np.arange(121), unit="s", utc=True)
    load = pd.Series(np.full(121, 200.0), index=idx)
    clock = SimClock(T0 - 3600 + 5)
    source = TraceSource(load, clock, [("prod", "api"), ("dev", "web")])
    docs = _docs()
    docs[-1]["spec"]["monthlyLimit"] = 2000
    cluster = StaticCluster.from_documents(docs)
    metrics = ControllerMetrics()
    ctl = Controller(
        settings, source, cluster, DecisionStore(), clock, metrics, LedgerStore(ledger)
    )
    for _ in range(12):
        report = ctl.reconcile()
        clock.sleep(15)
    (env,) = report.environments
    metric = metrics.registry.get_sample_value(
        "autoscaler_budget_projection_dollars", {"environment": "prod"}
    )
    status = cluster.budget_statuses["prod"]
    assert metric == pytest.approx(env.projection)
    assert status.projection_dollars == pytest.approx(env.projection, abs=1e-6)
    now = dt.datetime.fromtimestamp(report.time, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    budget = _budget_file(tmp_path, 2000)
    args = ["budget", "report", "--ledger", str(ledger), "--now", now, "--budget-file", str(budget)]
    code, out, err = run(args, capsys, monkeypatch)
    assert code == 0, err
    assert f"projected month-end ${env.projection:.2f} (" in out, (env.projection, out)
