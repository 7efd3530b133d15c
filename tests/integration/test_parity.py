"""Parity: the simulator's predictive rows are what the real controller decides.

One day of the bundled NASA trace, a PredictiveAutoscaler with a binding hard
CostBudget, and a 15-minute gap in the load data. Two runs:

* the simulator: ``Predictive`` in a ``SimWorld`` (trace-replay source, emulated
  cluster, simulated clock), as ``autoscaler simulate --objects`` runs it;
* the controller as ``autoscaler run`` builds it: the real ``PrometheusSource`` against
  a real Prometheus backfilled with the same samples (and the same gap), the objects
  in a ``StaticCluster`` whose target is set, tick by tick, to what the simulated
  cluster showed the simulated controller (replicas and Ready replicas), a ledger
  file, a ``SimClock`` stepped every 15 s.

Every tick must agree on the replicas decided, the value served and the owned HPA's
``maxReplicas``. The budget must bind and the gap must trigger the fallback, or the
test proves nothing; both are asserted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autoscaler.cli.simworld import controller_for
from autoscaler.controller import Controller
from autoscaler.kube.cluster import StaticCluster
from autoscaler.ledger_store import LedgerStore
from autoscaler.metrics import ControllerMetrics
from autoscaler.settings import load_settings
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.store import DecisionStore
from models.traces import bundled_traces_dir, load_trace
from policies.objects import TargetInfo
from simulations.clock import SimClock
from simulations.engine import demand_from_rate
from simulations.scenario import scale_to_peak
from simulations.strategies import Predictive, RunContext
from simulations.strategies.base import UserObjects
from simulations.workloads import custom_workload
from simulations.world import SimController, SimWorld
from tests.integration.promfixture import BackfillSeries, PrometheusServer

pytestmark = pytest.mark.integration

NS, NAME = "prod", "web"
REQUESTS = {"cpu": "500m", "memory": "1Gi"}
GAP_START_H, GAP_MINUTES = 10.0, 15


def _objects(hourly_limit: float) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "autoscaling.predictive.io/v1alpha1",
            "kind": "PredictiveAutoscaler",
            "metadata": {"name": NAME, "namespace": NS},
            "spec": {
                "targetRef": {"name": NAME},
                "query": "load",
                "capacityPerReplica": 20,
                "leadTimeSeconds": 105,
                "maxReplicas": 100,
            },
        },
        {
            "apiVersion": "autoscaling.predictive.io/v1alpha1",
            "kind": "CostBudget",
            "metadata": {"name": NS},
            "spec": {
                "environment": NS,
                "selector": {"namespaces": [NS]},
                "hourlyLimit": hourly_limit,
                "mode": "hard",
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": NS},
            "spec": {
                "replicas": 10,
                "template": {
                    "spec": {"containers": [{"name": "app", "resources": {"requests": REQUESTS}}]}
                },
            },
        },
    ]


@dataclasses.dataclass
class Recording:
    """What the simulated cluster showed the simulated controller, and what it decided."""

    seen: list[tuple[int, int | None]] = dataclasses.field(default_factory=list)
    decided: list[tuple[int, float, int, bool, bool]] = dataclasses.field(default_factory=list)


def recording_factory(rec: Recording) -> Any:
    def factory(world: SimWorld) -> SimController:
        inner = controller_for(world)

        class Recorder:
            def tick(self) -> Any:
                t = world.cluster.targets[(NS, NAME)]
                rec.seen.append((t.replicas, t.ready))
                out = inner.tick()
                r = out[0][f"{NS}/{NAME}"]
                rec.decided.append((r.replicas, r.served, r.ceiling, r.budget_clamped, r.fallback))
                return out

        return Recorder()

    return factory


@pytest.fixture(scope="module")
def day() -> Iterator[Any]:
    trace = load_trace(bundled_traces_dir() / "nasa_http_jul1995_1min.csv", "per-interval")
    rate = trace.rate_per_second["1995-07-05":"1995-07-05"]
    w = custom_workload(capacity_rps=20.0, startup_seconds=90.0, min_replicas=1, max_replicas=100)
    rate, _ = scale_to_peak(rate, w, 40)
    demand = demand_from_rate(rate, trace.step_seconds)
    t0 = demand.start
    gap = (demand.observed.index >= _at(t0 + GAP_START_H * 3600)) & (
        demand.observed.index < _at(t0 + GAP_START_H * 3600 + GAP_MINUTES * 60)
    )
    gapped = dataclasses.replace(demand, observed=demand.observed[~gap])
    yield w, gapped


def _at(seconds: float) -> Any:
    import pandas as pd

    return pd.Timestamp(seconds, unit="s", tz="UTC")


def test_simulator_rows_are_the_controllers_decisions(day: Any, tmp_path: Path) -> None:
    workload, demand = day
    price = workload.hourly_price
    docs = _objects(hourly_limit=round(22.5 * price, 6))  # peak needs ~40: it binds
    cluster = StaticCluster.from_documents(docs)
    pa = cluster.autoscalers[0]
    objects = UserObjects(pa, tuple(cluster.budgets), dict(REQUESTS), 10)

    # 1. The simulator, recording what its world showed the controller each tick.
    rec = Recording()
    ctx = RunContext(demand, workload, 0.85, None, None, recording_factory(rec), (), objects)
    timeline = Predictive().run(ctx)
    n = len(demand)
    assert len(rec.decided) == n
    assert np.array_equal(timeline.extra["desired"], [d[0] for d in rec.decided])

    # 2. The controller as `autoscaler run` builds it, against a real Prometheus.
    series = BackfillSeries("load", {"namespace": NS, "workload": NAME}, demand.observed, "gauge")
    # A 30-s lookback: a missing sample is missing at its own step (the default
    # 5 minutes would carry the last sample into the gap).
    with PrometheusServer.start(
        tmp_path / "prom", backfill=[series], extra_args=["--query.lookback-delta=30s"]
    ) as prom:
        settings = load_settings(
            None,
            prometheus={"url": prom.url},
            ledger={"path": tmp_path / "ledger.json"},
            shadow={"path": tmp_path / "shadow.jsonl"},
        )
        clock = SimClock(demand.start)
        real = Controller(
            settings,
            PrometheusSource(settings.prometheus),
            cluster,
            DecisionStore(),
            clock,
            ControllerMetrics(),
            LedgerStore(settings.ledger.path),
        )
        mismatches: list[str] = []
        for i in range(n):
            clock.advance_to(float(demand.times[i]))
            replicas, ready = rec.seen[i]
            cluster.targets[(NS, NAME)] = TargetInfo(replicas, dict(REQUESTS), ready)
            r = real.reconcile().by_key()[f"{NS}/{NAME}"]
            got = (
                r.decision.replicas,
                r.served,
                r.ceiling,
                r.decision.binding_constraint == "budget",
                r.decision.fallback,
            )
            want = rec.decided[i]
            assert cluster.hpas[pa.key] == r.ceiling  # what the owned HPA was given
            if got != want and len(mismatches) < 5:
                mismatches.append(f"tick {i} ({demand.times[i]:.0f}): real {got} != sim {want}")
        assert not mismatches, "\n".join(mismatches)

    decided = np.array([d[0] for d in rec.decided])
    clamped = np.array([d[3] for d in rec.decided])
    fallback = np.array([d[4] for d in rec.decided])
    assert clamped.sum() > 20, "the budget never bound: the test would prove nothing"
    gap_ticks = (demand.times >= demand.start + GAP_START_H * 3600) & (
        demand.times < demand.start + (GAP_START_H + 1) * 3600
    )
    assert fallback[gap_ticks].any(), "the gap never triggered the fallback"
    assert decided.max() <= int(22.5), "a hard budget of 22.5 replicas was exceeded"
