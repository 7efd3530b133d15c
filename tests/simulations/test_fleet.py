"""``simulations.fleet``: several workloads, one controller.

With one workload of share 1 the fleet replay is the ``predictive`` strategy's run
(``simulate --objects``), tick for tick: same replicas, Ready pods, pods, served value
and HPA ceiling, under a binding hard budget and through a metrics outage. A share
scales the workload's demand and what its metric source shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autoscaler.cli.objects import load_user_fleet, load_user_objects
from autoscaler.cli.simworld import controller_for
from models.errors import InputError
from simulations.fleet import (
    Fleet,
    FleetMember,
    environment_of,
    priority_in,
    replay_fleet,
    score_fleet,
)
from simulations.report import score_timeline
from simulations.scenario import Prepared, Result, prepare, run_policy, scenario_from_dict
from simulations.strategies import Predictive
from simulations.strategies.base import UserObjects
from simulations.workloads import Workload
from simulations.world import Outage
from tests.simulations.test_cli_objects import OBJECTS, _trace

#: the acceptance objects with a cap that binds ($0.30/h: 14 replicas) at the peak.
TIGHT = OBJECTS.replace("hourlyLimit: 0.50", "hourlyLimit: 0.30")


def _prepared(
    tmp_path: Path, objects: str, days: float = 0.25
) -> tuple[Prepared, UserObjects, Workload, tuple[Outage, ...]]:
    (tmp_path / "o.yaml").write_text(objects)
    trace = _trace(tmp_path / "t.csv", days)
    user, workload = load_user_objects([tmp_path / "o.yaml"], 90.0)
    sc = scenario_from_dict(
        {
            "trace": str(trace),
            "value_unit": "per-second",
            "workload": workload.model_dump(),
            "policies": ["predictive"],
        },
        "test",
    )
    start = prepare(sc, None, workload=workload).demand.start
    outages = (Outage(start + 2 * 3600, 600),)
    prepared = prepare(
        sc, None, workload=workload, controller=controller_for, objects=user, outages=outages
    )
    return prepared, user, workload, outages


def test_one_workload_replays_exactly_as_simulate_objects(tmp_path: Path) -> None:
    prepared, user, workload, outages = _prepared(tmp_path, TIGHT)
    expected = run_policy(prepared, Predictive())
    member = FleetMember(user.autoscaler, workload, user.requests, user.replicas)
    fleet = Fleet((member,), tuple(user.budgets))
    demand = prepared.demand
    run = replay_fleet(demand, fleet, controller_for, outages=outages)
    got = run.timelines[member.key]
    assert expected.extra["budget_clamped"].any(), "the budget never bound"
    assert expected.extra["fallback"].any(), "the outage never reached the controller"
    for name in ("replicas", "ready", "alive", "demand", "times"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    for column in ("desired", "served_value", "hpa_max_replicas", "fallback", "budget_clamped"):
        np.testing.assert_array_equal(got.extra[column], expected.extra[column], err_msg=column)
    # ... and it scores as `simulate` scores it.
    want, _ = score_timeline(expected, Result(prepared, {"predictive": expected}))
    score = score_fleet(run, fleet, demand.tick_seconds)
    assert score.slo_violation_minutes == pytest.approx(want.slo_violation_minutes)
    assert score.tau_u_pct == pytest.approx(want.tau_u_pct)
    assert score.workloads[0].cost_usd == pytest.approx(want.cost_usd)
    assert score.average_hourly_cost * score.workloads[0].hours == pytest.approx(want.cost_usd)


TWO = (
    OBJECTS
    + """---
apiVersion: autoscaling.predictive.io/v1alpha1
kind: PredictiveAutoscaler
metadata: {name: batch, namespace: prod}
spec:
  targetRef: {name: batch}
  query: rate(jobs_total{workload="batch"}[2m])
  capacityPerReplica: 20
  leadTimeSeconds: 105
  maxReplicas: 100
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: batch, namespace: prod}
spec:
  template:
    spec:
      containers:
      - name: app
        resources:
          requests: {cpu: 500m, memory: 1Gi}
"""
)


def test_a_share_scales_the_demand_and_the_metric(tmp_path: Path) -> None:
    (tmp_path / "o.yaml").write_text(TWO)
    loaded, budgets = load_user_fleet([tmp_path / "o.yaml"], 90.0)
    assert [u.autoscaler.key for u, _ in loaded] == ["prod/refinory-ai", "prod/batch"]
    assert [b.name for b in budgets] == ["prod"]
    trace = _trace(tmp_path / "t.csv", 0.1)
    sc = scenario_from_dict(
        {"trace": str(trace), "value_unit": "per-second", "workload": loaded[0][1].model_dump()},
        "test",
    )
    demand = prepare(sc, None, workload=loaded[0][1]).demand
    members = tuple(
        FleetMember(u.autoscaler, w, u.requests, u.replicas, share)
        for (u, w), share in zip(loaded, (1.0, 0.25), strict=True)
    )
    run = replay_fleet(demand, Fleet(members), controller_for)  # no budget
    big, small = (run.timelines[m.key] for m in members)
    np.testing.assert_allclose(small.demand, big.demand * 0.25)
    # A quarter of the load needs about a quarter of the replicas.
    assert small.alive[-40:].mean() < 0.4 * big.alive[-40:].mean()
    assert np.nanmax(small.extra["served_value"]) < 0.4 * np.nanmax(big.extra["served_value"])


def test_fleet_refuses_duplicates_and_bad_shares(tmp_path: Path) -> None:
    (tmp_path / "o.yaml").write_text(OBJECTS)
    [(user, workload)], budgets = load_user_fleet([tmp_path / "o.yaml"], 90.0)
    m = FleetMember(user.autoscaler, workload, user.requests)
    with pytest.raises(InputError, match="given twice"):
        Fleet((m, m))
    with pytest.raises(InputError, match="share"):
        Fleet((FleetMember(user.autoscaler, workload, user.requests, share=-1.0),))
    with pytest.raises(InputError, match="no workloads"):
        Fleet(())
    assert environment_of(user.autoscaler, budgets) == "prod"
    assert priority_in(budgets[0].spec, user.autoscaler) == 0
