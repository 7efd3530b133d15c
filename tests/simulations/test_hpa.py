"""Behaviours of the HPA emulation that the upstream vectors do not pin down.

Multi-sync runs (stabilization over time, rate limits over scale-event history), the
simulator checks S1-S5 of the reference (k8s-external-metrics-and-hpa.md §4), window
edges, data-edge rules and input validation, and a property test of normalization.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.errors import InputError
from simulations.hpa import (
    HorizontalController,
    MetricUnavailable,
    PodInfo,
    Recommendation,
    ScaleEvent,
    Tolerances,
    calc_pods_metric,
    calc_resource,
    calc_resource_average_value,
    default_scale_up_rules,
    replicas_from_cpu,
    replicas_from_external,
    scale_up_limit,
)

SYNC = 15.0


def _run(ctl: HorizontalController, start: int, proposals: Sequence[int]) -> list[int]:
    """Sync every 15 s from t = 0, feeding one proposal per sync; returns spec.replicas."""
    current = start
    out = []
    for i, proposal in enumerate(proposals):
        current = ctl.sync(i * SYNC, current, [proposal])
        out.append(current)
    return out


# ---------------------------------------------------------------------------------------
# Simulator checks S1-S5 (minReplicas 1, maxReplicas 10, tolerance 0.1)
# ---------------------------------------------------------------------------------------


def test_s1_value_within_tolerance_keeps_replicas() -> None:
    proposal = replicas_from_external(4, [105_000], "Value", 100_000)
    assert proposal == 4
    ctl = HorizontalController(1, 10)
    assert ctl.sync(0.0, 4, [proposal]) == 4
    assert ctl.conditions["ScalingLimited"] == "DesiredWithinRange"


def test_s2_legacy_and_default_behavior_differ() -> None:
    proposal = replicas_from_external(3, [250_000], "Value", 100_000, ready_pods=3)
    assert proposal == 8
    legacy = HorizontalController(1, 10)
    assert legacy.sync(0.0, 3, [proposal]) == 6  # max(2*3, 4)
    assert legacy.conditions["ScalingLimited"] == "ScaleUpLimit"
    defaults = HorizontalController(1, 10, behavior={})
    assert defaults.sync(0.0, 3, [proposal]) == 7  # max(3+4, ceil(3*2))
    assert defaults.conditions["ScalingLimited"] == "ScaleUpLimit"


def test_s3_average_value_ignores_current_size() -> None:
    assert replicas_from_external(5, [95_000], "AverageValue", 10_000, status_replicas=5) == 10
    # Same usage, any size: ceil(95/10).
    assert replicas_from_external(2, [95_000], "AverageValue", 10_000) == 10


@pytest.mark.parametrize("behavior", [None, {}])
def test_s4_scale_down_waits_out_the_stabilization_window(behavior: Any) -> None:
    ctl = HorizontalController(1, 10, behavior=behavior)
    # Proposal 10 until t = 45, then 4. The last 10 is stored at t = 45; it leaves the
    # 300 s window at t = 345 (an entry exactly 300 s old is outside).
    proposals = [10] * 4 + [4] * 30
    replicas = _run(ctl, 10, proposals)
    times = [i * SYNC for i in range(len(proposals))]
    by_time = dict(zip(times, replicas, strict=True))
    assert all(by_time[t] == 10 for t in times if t < 345)
    assert by_time[345.0] == 4


def test_s4_with_a_slow_scale_down_policy() -> None:
    behavior = {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    ctl = HorizontalController(1, 10, behavior=behavior)
    replicas = _run(ctl, 10, [10] * 4 + [4] * 40)
    by_time = {i * SYNC: r for i, r in enumerate(replicas)}
    # One pod per 60 s once the window has passed: an event at t leaves the period at t+60.
    assert by_time[330.0] == 10
    assert by_time[345.0] == 9
    assert by_time[390.0] == 9
    assert by_time[405.0] == 8
    assert by_time[465.0] == 7


def test_s5_an_invalid_metric_blocks_scale_down_but_not_scale_up() -> None:
    ctl = HorizontalController(1, 10)
    assert ctl.sync(0.0, 5, [3, None]) == 5
    assert ctl.conditions["ScalingActive"] == "FailedGetMetric"
    assert ctl.sync(15.0, 5, [None, None]) == 5
    assert ctl.sync(30.0, 5, [8, None]) == 8
    assert ctl.conditions["ScalingActive"] == "ValidMetricFound"


# ---------------------------------------------------------------------------------------
# Multi-sync behaviour
# ---------------------------------------------------------------------------------------


def test_first_sync_seeds_history_so_a_new_hpa_does_not_shrink_at_once() -> None:
    ctl = HorizontalController(1, 10)
    replicas = _run(ctl, 5, [3] * 22)
    assert replicas[:20] == [5] * 20  # t = 0 .. 285
    assert replicas[20] == 3  # t = 300: the seed (t = 0) is exactly 300 s old


def test_default_behavior_scale_up_rate() -> None:
    ctl = HorizontalController(1, 100, behavior={})
    # Pods 4 or Percent 100 per 15 s, whichever is more; last period's event expires.
    assert _run(ctl, 1, [100] * 7) == [5, 10, 20, 40, 80, 100, 100]
    # Every event is older than the longest policy period (15 s) at the next rescale, so
    # each one replaces the last: the history holds one event, the latest change.
    assert [(e.time, e.replica_change) for e in ctl.scale_up_events] == [(75.0, 20)]


def test_legacy_scale_up_rate_and_no_event_history() -> None:
    ctl = HorizontalController(1, 100)
    assert _run(ctl, 1, [100] * 7) == [4, 8, 16, 32, 64, 100, 100]
    assert ctl.scale_up_events == [] and ctl.scale_down_events == []


def test_disabled_scale_down_never_shrinks() -> None:
    ctl = HorizontalController(1, 10, behavior={"scaleDown": {"selectPolicy": "Disabled"}})
    assert _run(ctl, 6, [2] * 40)[-1] == 6
    assert ctl.conditions["ScalingLimited"] == "ScaleDownLimit"


def test_out_of_range_and_disabled_paths() -> None:
    ctl = HorizontalController(2, 5)
    assert ctl.sync(0.0, 0, [3]) == 0  # scaled to zero by hand: HPA disabled
    assert ctl.conditions["ScalingActive"] == "ScalingDisabled"
    assert ctl.sync(15.0, 9, [9]) == 5
    assert ctl.sync(30.0, 1, [1]) == 2
    zero_ok = HorizontalController(0, 5)
    # minReplicas 0 (scale to zero): from 0, a Value target proposes ceil(ratio).
    proposal = replicas_from_external(0, [250], "Value", 100)
    assert proposal == 3
    assert zero_ok.sync(0.0, 0, [proposal]) == 3


# ---------------------------------------------------------------------------------------
# Window edges (strict comparisons) and data-edge rules
# ---------------------------------------------------------------------------------------


def test_scale_event_exactly_one_period_old_does_not_count() -> None:
    rules = default_scale_up_rules(
        {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}
    )
    on_edge = [ScaleEvent(-60.0, 5)]
    inside = [ScaleEvent(-59.999, 5)]
    assert scale_up_limit(10, on_edge, [], rules, 0.0) == 12
    assert scale_up_limit(10, inside, [], rules, 0.0) == 7


def test_recommendation_exactly_on_the_window_edge_is_outside() -> None:
    behavior = {"scaleUp": {"stabilizationWindowSeconds": 60}, "scaleDown": {}}
    ctl = HorizontalController(1, 100, behavior=behavior)
    ctl.recommendations = [Recommendation(-60.0, 4)]
    assert ctl.stabilize(0.0, 2, 9) == 9
    ctl.recommendations = [Recommendation(-59.0, 4)]
    assert ctl.stabilize(0.0, 2, 9) == 4


def test_tolerance_band_is_inclusive() -> None:
    assert replicas_from_external(3, [1100], "Value", 1000) == 3  # ratio exactly 1.1
    assert replicas_from_external(3, [900], "Value", 1000) == 3  # exactly 0.9
    assert replicas_from_external(3, [1101], "Value", 1000) == 4


def test_value_target_multiplies_ready_pods_not_replicas() -> None:
    assert replicas_from_external(4, [3000], "Value", 1000, ready_pods=2) == 6
    assert replicas_from_external(4, [3000], "Value", 1000, ready_pods=0) == 0


def test_no_external_items_is_an_invalid_metric() -> None:
    with pytest.raises(MetricUnavailable, match="no metrics returned"):
        replicas_from_external(3, [], "Value", 1000)


def test_missing_pods_on_scale_down_count_at_a_target_above_100_percent() -> None:
    pods = [
        PodInfo("a", request_milli_cpu=1000, usage_milli_cpu=100),
        PodInfo("b", request_milli_cpu=1000, usage_milli_cpu=100),
        PodInfo("c", request_milli_cpu=1000, usage_milli_cpu=None),
    ]
    # Utilization 10 % of a 200 % target. The missing pod counts at 200 % of its
    # request: (100 + 100 + 2000) / 3000 = 73 % -> ratio 0.365 -> ceil(1.095) = 2.
    # (Counting it at 100 % would give 40 % -> ceil(0.6) = 1.)
    assert replicas_from_cpu(3, pods, 200, now=0.0) == 2


_pod_cpu = st.tuples(st.integers(100, 4000), st.integers(0, 4000))  # (request, usage) m


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    reporting=st.lists(_pod_cpu, min_size=1, max_size=8),
    missing=st.lists(st.integers(100, 4000), min_size=1, max_size=4),
    target=st.integers(10, 100),
)
def test_on_a_scale_down_a_missing_pod_counts_as_using_its_whole_request(
    reporting: list[tuple[int, int]], missing: list[int], target: int
) -> None:
    """Upstream: on a scale-down (ratio < 1) a pod without a sample counts at
    ``max(100, target)`` % of its request, so for targets up to 100 % exactly as if it
    had reported its request. Metamorphic check: wherever both runs scale down outside
    the tolerance, the proposal equals that of the same pods with the missing ones
    reporting usage = request."""
    pods = [
        PodInfo(f"r{i}", request_milli_cpu=r, usage_milli_cpu=u)
        for i, (r, u) in enumerate(reporting)
    ]
    absent = [
        PodInfo(f"m{i}", request_milli_cpu=r, usage_milli_cpu=None) for i, r in enumerate(missing)
    ]
    filled = [
        PodInfo(p.name, request_milli_cpu=p.request_milli_cpu, usage_milli_cpu=p.request_milli_cpu)
        for p in absent
    ]
    current = len(pods) + len(absent)
    with_missing = calc_resource(current, pods + absent, target, now=0.0)
    as_reported = calc_resource(current, pods + filled, target, now=0.0)
    assert with_missing.utilization is not None and as_reported.utilization is not None
    if with_missing.utilization < target and as_reported.utilization / target < 0.9:
        assert with_missing.replicas == as_reported.replicas


def test_pods_metric_average_truncates_toward_zero() -> None:
    pods = [PodInfo(n, metric_value_milli=v) for n, v in (("a", -5), ("b", -5), ("c", -6))]
    result = calc_pods_metric(3, pods, 10, now=0.0)
    assert result.raw_milli == -5  # -16 / 3 truncates to -5 (floor would give -6)


def test_cpu_warm_up_needs_one_metric_window_after_readiness() -> None:
    now = 1000.0

    def pod(transition_ago: float) -> PodInfo:
        return PodInfo(
            "p",
            start_time=now - 60.0,  # inside the 300 s CPU initialization period
            ready_transition_time=now - transition_ago,
            request_milli_cpu=1000,
            usage_milli_cpu=900,
            metric_window_seconds=15.0,  # the sample is taken at `now`
        )

    busy = PodInfo("q", request_milli_cpu=1000, usage_milli_cpu=100)
    # Freshly Ready (10 s < one 15 s window): its hot sample is not trusted.
    fresh = calc_resource(2, [pod(10.0), busy], 50, now)
    assert fresh.utilization == 10
    settled = calc_resource(2, [pod(20.0), busy], 50, now)
    assert settled.utilization == 50


def test_cpu_average_value_target_uses_plain_metric_rules() -> None:
    settled = [
        PodInfo(n, request_milli_cpu=500, usage_milli_cpu=u)
        for n, u in (("a", 300), ("b", 600), ("c", 900))
    ]
    # Average 600m against 400m: ratio 1.5 -> ceil(1.5 * 3) = 5.
    result = calc_resource_average_value(3, settled, 400, now=0.0)
    assert (result.replicas, result.raw_milli) == (5, 600)
    # A not-Ready pod is unready for CPU; on a scale-up it counts as 0:
    # (300 + 600 + 900 + 0) / 4 = 450 -> ratio 1.125 -> ceil(1.125 * 4) = 5.
    starting = PodInfo("d", ready=False, request_milli_cpu=500, usage_milli_cpu=2000)
    result = calc_resource_average_value(4, [*settled, starting], 400, now=0.0)
    assert (result.replicas, result.raw_milli) == (5, 600)


def test_per_direction_tolerance_from_behavior() -> None:
    ctl = HorizontalController(1, 10, behavior={"scaleUp": {"tolerance": "0.5"}})
    tol = ctl.tolerances()
    assert tol == Tolerances(scale_down=0.1, scale_up=0.5)
    assert replicas_from_external(4, [1300], "Value", 1000, tol) == 4
    assert replicas_from_external(4, [850], "Value", 1000, tol) == 4
    assert replicas_from_external(4, [800], "Value", 1000, tol) == 4  # ceil(0.8 * 4) = 4
    assert replicas_from_external(4, [700], "Value", 1000, tol) == 3


# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "behavior",
    [
        {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 0}]}},
        {"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}},
        {"scaleUp": {"policies": [{"type": "Nodes", "value": 1, "periodSeconds": 15}]}},
        {"scaleDown": {"selectPolicy": "Fastest"}},
        {"scaleDown": {"stabilizationWindowSeconds": 3601}},
        {"scaleSideways": {}},
        {"scaleUp": {"unknownField": 1}},
        {"scaleDown": {"policies": []}},  # the API requires at least one policy
    ],
)
def test_bad_behavior_is_an_input_error(behavior: Any) -> None:
    with pytest.raises(InputError):
        HorizontalController(1, 10, behavior=behavior)


def test_bad_bounds_and_calls_are_input_errors() -> None:
    with pytest.raises(InputError):
        HorizontalController(5, 3)
    with pytest.raises(InputError):
        HorizontalController(-1, 3)
    ctl = HorizontalController(1, 3)
    with pytest.raises(InputError):
        ctl.sync(0.0, 2, [])
    with pytest.raises(InputError):
        replicas_from_external(2, [1], "Utilization", 1000)
    with pytest.raises(InputError):
        replicas_from_external(2, [1], "Value", 0)


# ---------------------------------------------------------------------------------------
# Property: normalization never overshoots
# ---------------------------------------------------------------------------------------

_policy = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Pods", "Percent"]),
        "value": st.integers(1, 300),
        "periodSeconds": st.integers(1, 600),
    }
)
_rules = st.fixed_dictionaries(
    {},
    optional={
        "stabilizationWindowSeconds": st.integers(0, 600),
        "selectPolicy": st.sampled_from(["Max", "Min", "Disabled"]),
        "policies": st.lists(_policy, min_size=1, max_size=3),
    },
)
_behavior = st.one_of(
    st.none(), st.fixed_dictionaries({}, optional={"scaleUp": _rules, "scaleDown": _rules})
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    behavior=_behavior,
    bounds=st.tuples(st.integers(0, 20), st.integers(1, 60)).filter(lambda b: b[0] <= b[1]),
    proposals=st.lists(st.integers(0, 80), min_size=1, max_size=40),
)
def test_sync_stays_in_bounds_and_never_overshoots(
    behavior: Any, bounds: tuple[int, int], proposals: list[int]
) -> None:
    lo, hi = bounds
    ctl = HorizontalController(lo, hi, behavior=behavior)
    current = max(lo, 1)
    seen = [(0.0, current)]  # the history is seeded with the starting size
    for i, proposal in enumerate(proposals):
        now = i * SYNC
        seen.append((now, proposal))
        new = ctl.sync(now, current, [proposal])
        assert lo <= new <= hi
        target = min(max(proposal, lo), hi)
        assert new >= min(current, target)
        if behavior is not None:
            # Stabilization and rate limits only hold back: never past the proposal.
            assert new <= max(current, target)
        else:
            # Legacy: the max over the 300 s window applies in both directions, so an
            # older, higher proposal can pull the result up, but never above it.
            recent = max(p for t, p in seen if t > now - 300.0)
            assert new <= max(current, min(max(recent, lo), hi))
        current = new


def test_served_value_reaches_the_desired_count_through_the_emulated_hpa() -> None:
    """Contract with ``policies.decision.served_value``: the value we serve, read by
    the HPA as an External ``AverageValue`` target of 1, asks for the desired count, or,
    when that is inside the tolerance band, for the smallest count the HPA can reach
    (the first whole count above 1.1 x current: the band makes smaller steps up
    impossible), within what the HPA lets one sync do."""
    from policies.decision import HPA_TOLERANCE, served_value

    for current in range(1, 41):
        smallest_step_up = (current * 1100) // 1000 + 1  # first count > 1.1 x current
        for desired in range(current + 1, 81):
            value = served_value(desired, current, HPA_TOLERANCE)
            proposal = replicas_from_external(
                current, [round(value * 1000)], "AverageValue", 1000, HPA_TOLERANCE
            )
            assert proposal == max(desired, smallest_step_up), (current, desired)
            ctl = HorizontalController(1, 100)
            got = ctl.sync(0.0, current, [proposal])
            assert got == min(proposal, max(2 * current, 4)), (current, desired)
