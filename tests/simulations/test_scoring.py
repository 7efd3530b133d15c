"""Scoring functions on small arrays whose results are worked out by hand in comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.errors import InputError
from simulations.scoring import (
    cost_at_tau_u,
    cost_frontier,
    demand_units,
    elasticity_metrics,
    gap_closed,
    instability,
    jitter,
    latency_percentiles,
    refine_targets,
    replica_hours,
    score_run,
    slo_violation_minutes,
    supply_rps,
    tau_o,
    tau_u,
    theta_o,
    theta_u,
)

# Capacity 10 req/s per pod at SLO utilization 0.5: each ready pod supplies 5 req/s.
DEMAND = [10.0, 5.0, 20.0, 0.0]
READY = [2, 2, 2, 1]
DT = 60.0


def test_supply_and_the_under_provisioning_edge() -> None:
    np.testing.assert_allclose(supply_rps(READY, 10.0, 0.5), [10.0, 10.0, 10.0, 5.0])
    # Default slo_utilization 0.85: one pod of 10 req/s supplies 8.5 req/s.
    s = supply_rps([1, 1], 10.0)
    assert tau_u([8.5, 8.51], s, 1.0) == pytest.approx(50.0)  # equal is not under


def test_elasticity_by_hand() -> None:
    s = supply_rps(READY, 10.0, 0.5)  # [10, 10, 10, 5]
    # tick 0: d = s; tick 1: over by 5 = 100 % of d; tick 2: under by 10 = 50 % of d;
    # tick 3: d = 0, over (counts in tau_O, contributes 0 to theta).
    assert tau_u(DEMAND, s, DT) == pytest.approx(25.0)
    assert tau_o(DEMAND, s, DT) == pytest.approx(50.0)
    assert theta_u(DEMAND, s, DT) == pytest.approx(100 * 0.5 / 4)
    assert theta_o(DEMAND, s, DT) == pytest.approx(100 * 1.0 / 4)
    # Demand units ceil(d / 5) = [2, 1, 4, 0]: moves -, +, -; supply 2, 2, 2, 1 moves
    # 0, 0, -: directions differ in 2 of 3 steps.
    units = demand_units(DEMAND, 10.0, 0.5)
    np.testing.assert_array_equal(units, [2, 1, 4, 0])
    assert instability(units, READY, DT) == pytest.approx(200.0 / 3.0)
    # One supply change, three demand changes in 4 minutes: (1 - 3) / (1/15 h) = -30/h.
    assert jitter(units, READY, DT) == pytest.approx(-30.0)
    metrics = elasticity_metrics(DEMAND, READY, 10.0, DT, slo_utilization=0.5)
    assert metrics.tau_u == pytest.approx(25.0)
    assert metrics.instability == pytest.approx(200.0 / 3.0)


def test_tick_lengths_weigh_the_timeshares() -> None:
    s = [10.0, 10.0]
    # The under-provisioned tick lasts 3 of 4 minutes.
    assert tau_u([20.0, 5.0], s, [180.0, 60.0]) == pytest.approx(75.0)


def test_slo_minutes_replica_hours_and_latency_percentiles() -> None:
    p99 = [0.1, 0.6, math.inf, math.nan, 0.5]
    # 0.6 and inf violate; 0.5 is not above the SLO; NaN (no requests) is not counted.
    assert slo_violation_minutes(p99, 60.0) == pytest.approx(2.0)
    assert replica_hours([2, 3], 1800.0) == pytest.approx(2.5)
    assert latency_percentiles([1.0, 2.0, 3.0, 4.0]) == {
        "p50": 2.0,
        "p90": 4.0,
        "p99": 4.0,
        "p100": 4.0,
    }
    # Weighted by requests, the busy tick dominates.
    assert latency_percentiles([1.0, 2.0, 3.0, 4.0], [1, 1, 1, 97])["p50"] == 4.0
    assert latency_percentiles([math.nan, 1.0], [5, 1])["p50"] == 1.0


def test_score_run_collects_everything() -> None:
    score = score_run(
        DEMAND,
        READY,
        pods=[3, 3, 2, 1],
        p99_seconds=[0.1, 0.1, 0.9, math.nan],
        capacity_rps=10.0,
        dt=DT,
        replica_hourly_price=2.0,
        slo_utilization=0.5,
    )
    assert score.replica_hours == pytest.approx(9 / 60)
    assert score.cost == pytest.approx(2.0 * 9 / 60)
    assert score.slo_violation_minutes == pytest.approx(1.0)
    row = score.as_dict()
    assert row["tau_u"] == pytest.approx(25.0)
    assert row["latency_p100"] == pytest.approx(0.9)


def test_frontier_drops_dominated_points_and_interpolates() -> None:
    frontier = cost_frontier([10, 0, 5, 20, 5], [85, 100, 90, 50, 80])
    # Sorted: (0,100) (5,80) (5,90) (10,85) (20,50): (5,90) and (10,85) are dominated.
    assert frontier.tau_u == (0.0, 5.0, 20.0)
    assert frontier.cost == (100.0, 80.0, 50.0)
    assert cost_at_tau_u(frontier, 12.5) == pytest.approx(65.0)  # 80 - 30 * 7.5/15
    assert cost_at_tau_u(frontier, 5.0) == pytest.approx(80.0)
    assert math.isnan(cost_at_tau_u(frontier, -1.0))
    assert math.isnan(cost_at_tau_u(frontier, 25.0))
    assert cost_at_tau_u(frontier, -1.0, outside="clamp") == pytest.approx(100.0)
    assert cost_at_tau_u(frontier, 25.0, outside="clamp") == pytest.approx(50.0)
    # A dominated last point still extends the sampled range: the frontier is flat there.
    flat = cost_frontier([0.0, 10.0], [5.0, 5.0])
    assert flat.tau_u == (0.0,)
    assert cost_at_tau_u(flat, 4.0) == pytest.approx(5.0)
    assert math.isnan(cost_at_tau_u(flat, 10.5))


def test_refine_targets_fills_in_the_bracket_of_each_tau_u() -> None:
    sweep = {50: 0.0, 60: 0.0, 70: 0.07, 80: 6.2, 90: 44.0}
    # 0.5 % lies between 70 and 80: every integer target in between.
    assert refine_targets(sweep, [0.5]) == list(range(71, 80))
    # 0 lies on the flat part: only the pair where tau_U starts to rise (60-70) matters,
    # since between two runs of equal tau_U the dearer one is dominated.
    assert refine_targets(sweep, [0.0]) == list(range(61, 70))
    # Exactly at a run's tau_U above it: that run is the frontier there.
    assert refine_targets(sweep, [6.2]) == list(range(81, 90))
    # Outside the sweep, NaN, or already fine: nothing to add.
    assert refine_targets(sweep, [50.0, math.nan]) == []
    assert refine_targets({70: 0.1, 71: 0.3}, [0.2]) == []
    # Several policies, overlapping brackets, no duplicates, sorted.
    assert refine_targets(sweep, [0.5, 1.0, 0.01]) == list(range(61, 70)) + list(range(71, 80))


def test_gap_closed() -> None:
    assert gap_closed(100.0, 70.0, 40.0) == pytest.approx(0.5)
    assert gap_closed(100.0, 100.0, 40.0) == pytest.approx(0.0)
    assert gap_closed(100.0, 40.0, 40.0) == pytest.approx(1.0)
    assert gap_closed(100.0, 130.0, 40.0) == pytest.approx(-0.5)
    assert math.isnan(gap_closed(40.0, 30.0, 40.0))  # no gap to close
    assert math.isnan(gap_closed(math.nan, 30.0, 10.0))  # outside the HPA sweep


@pytest.mark.parametrize(
    "call",
    [
        lambda: tau_u([1.0, 2.0], [1.0], 1.0),
        lambda: tau_u([math.nan], [1.0], 1.0),
        lambda: tau_u([1.0], [1.0], 0.0),
        lambda: supply_rps([1], 10.0, 1.5),
        lambda: supply_rps([1], 0.0),
        lambda: cost_frontier([], []),
        lambda: cost_frontier([1.0], [1.0, 2.0]),
    ],
)
def test_bad_input_is_an_input_error(call: object) -> None:
    with pytest.raises(InputError):
        call()  # type: ignore[operator]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.floats(0, 100), st.floats(1, 1000)), min_size=1, max_size=12),
    st.lists(st.floats(0, 100), min_size=2, max_size=20),
)
def test_frontier_is_monotone_and_below_every_sweep_point(
    points: list[tuple[float, float]], queries: list[float]
) -> None:
    frontier = cost_frontier([t for t, _ in points], [c for _, c in points])
    queries = sorted(queries)
    values = [cost_at_tau_u(frontier, q, outside="clamp") for q in queries]
    # More under-provisioning is never dearer on the frontier...
    assert all(b <= a + 1e-9 for a, b in zip(values, values[1:], strict=False))
    # ...and at each sweep point's tau_U the frontier is no dearer than that point.
    for t, c in points:
        assert cost_at_tau_u(frontier, t) <= c + 1e-9
