"""Upstream HPA unit-test vectors run against ``simulations.hpa``.

One pytest case per vector (id = the case name) in ``test_hpa_vectors``, so
``pytest -k hpa_vectors`` selects exactly these. The directory comes from the
environment variable ``HPA_VECTORS_DIR`` (default: the copy in ``tests/data/hpa-vectors``);
every ``*.json`` file in it with format ``hpa-vectors/1`` is loaded, so new cases of the
same format run without code changes. The format is described in that directory's
README.md; this file only translates each case kind into calls of the public API.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulations.hpa import (
    GO_ZERO_TIME,
    HorizontalController,
    MetricSample,
    MetricUnavailable,
    PodInfo,
    Recommendation,
    ReplicaResult,
    ScaleEvent,
    calc_external,
    calc_object,
    calc_pods_metric,
    calc_resource,
    calc_resource_average_value,
    convert_with_legacy_rules,
    count_ready_pods,
    default_scale_down_rules,
    default_scale_up_rules,
    group_pods,
    parse_behavior,
    replica_change_in_period,
    scale_down_limit,
    scale_up_limit,
)

_DEFAULT_DIR = Path(__file__).resolve().parents[1] / "data" / "hpa-vectors"


def _vector_dir() -> Path:
    return Path(os.environ.get("HPA_VECTORS_DIR", str(_DEFAULT_DIR)))


def _load() -> Iterator[Any]:
    directory = _vector_dir()
    files = sorted(directory.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no *.json vector files in {directory} (HPA_VECTORS_DIR)")
    for path in files:
        doc = json.loads(path.read_text())
        if doc.get("format") != "hpa-vectors/1":
            continue
        constants = doc.get("constants", {})
        for case in doc["cases"]:
            yield pytest.param(case, constants, id=case["name"])


# ---------------------------------------------------------------------------------------
# Missing-metrics cases of upstream's replica_calculator_test.go that the vector files
# lack, in the same case format (kind "replicas"). Inputs and expectations are copied by
# hand from the upstream tests (kubernetes/kubernetes pkg/controller/podautoscaler/
# replica_calculator_test.go); per-pod CPU is the sum of its 2 containers (upstream's
# numContainersPerPod), as in the vector files. Upstream checks the proposal, the
# utilization and the raw value. The last case is DERIVED, not upstream: none of
# upstream's cases tells a missing pod counted at 100 % of its request from one counted
# at 90 % (or at the target), so it applies upstream's rule (``fallbackUtilization :=
# max(100, targetUtilization)`` on a scale-down, then the integer utilization) to inputs
# chosen so that ceil() separates them; its notes give the arithmetic.
# ---------------------------------------------------------------------------------------

_UPSTREAM_CONSTANTS = {
    "tolerance": 0.1,
    "cpuInitializationPeriodSeconds": 120,
    "delayOfInitialReadinessStatusSeconds": 10,
    "metricWindowSeconds": 60,
}


def _cpu_case(
    name: str,
    current: int,
    target: int,
    requests_milli: list[int],
    usage_milli: list[int],
    expected: tuple[int, int, int],
    ready: list[bool] | None = None,
    notes: str = "",
) -> dict[str, Any]:
    """A ``Resource`` CPU ``Utilization`` case: one pod per request, the first
    ``len(usage_milli)`` pods report usage, the rest have no sample (missing)."""
    pods = [
        {
            "name": f"test-pod-{i}",
            "phase": "Running",
            "ready": True if ready is None else ready[i],
            "startSecondsAgo": None,
            "readyTransitionSecondsAgo": None,
            "deleting": False,
            "requestMilliCPU": request,
            "usageMilliCPU": usage_milli[i] if i < len(usage_milli) else None,
        }
        for i, request in enumerate(requests_milli)
    ]
    replicas, utilization, raw = expected
    return {
        "name": name,
        "source": f"replica_calculator_test.go {name.partition('/')[0]}",
        "kind": "replicas",
        "metricType": "Resource",
        "targetType": "Utilization",
        "target": target,
        "currentReplicas": current,
        "metricTimestampSecondsAgo": None,
        "resource": "cpu",
        "pods": pods,
        "expectError": False,
        "expectedReplicas": replicas,
        "expectedUtilization": utilization,
        "expectedRawValueMilli": raw,
        "notes": notes,
    }


_F, _T = False, True
_MISSING_METRICS_CASES: list[dict[str, Any]] = [
    # levels 400, 95 per container; pods 2 and 3 missing. 990/4000 -> 24 %; missing at
    # 100 %: 4990/8000 -> 62 % -> ceil(0.62 x 4) = 3.
    _cpu_case("TestReplicaCalcMissingMetrics", 4, 100, [2000] * 4, [800, 190], (3, 24, 495)),
    _cpu_case("TestReplicaCalcMissingMetricsNoChangeLt", 2, 100, [2000] * 2, [1200], (2, 60, 1200)),
    _cpu_case(
        "TestReplicaCalcMissingMetricsUnreadyChange",
        3,
        50,
        [2000] * 3,
        [200, 900],
        (3, 45, 900),
        ready=[_F, _T, _T],
    ),
    _cpu_case(
        "TestReplicaCalcMissingMetricsUnreadyScaleUp",
        3,
        50,
        [2000] * 3,
        [200, 4000],
        (4, 200, 4000),
        ready=[_F, _T, _T],
    ),
    _cpu_case(
        "TestReplicaCalcMissingMetricsUnreadyScaleDown",
        4,
        50,
        [2000] * 4,
        [200, 200, 200],
        (3, 10, 200),
        ready=[_F, _T, _T, _T],
    ),
    _cpu_case(
        "TestReplicaCalcMissingMetricsScaleDownTargetOver100",
        4,
        300,
        [2000, 2000, 4000, 4000],
        [400, 200, 200],
        (2, 6, 200),
        ready=[_F, _T, _T, _T],
    ),
    _cpu_case(
        "derived/MissingMetricsScaleDownCountsAMissingPodAt100Percent",
        4,
        50,
        [1000] * 4,
        [20, 20, 20],
        (3, 2, 20),
        notes=(
            "Not an upstream test: upstream's rule applied by hand. 60/3000 -> 2 % -> ratio "
            "0.04 (scale-down). Missing pod at max(100, 50) = 100 %: 1060/4000 -> 26 % -> "
            "0.52 -> ceil(0.52 x 4) = 3. At 90 % it would be 960/4000 -> 24 % -> ceil(1.92) = "
            "2; at the target (50 %) 560/4000 -> 14 % -> ceil(1.12) = 2."
        ),
    ),
    {
        "name": "TestPlainMetricReplicaCalcMissingMetricsNoChangeEq",
        "source": "replica_calculator_test.go TestPlainMetricReplicaCalcMissingMetricsNoChangeEq",
        "kind": "replicas",
        "metricType": "Pods",
        "targetType": "AverageValue",
        "targetMilli": 20000,
        "currentReplicas": 5,
        "metricTimestampSecondsAgo": None,
        "pods": [
            {"name": f"test-pod-{i}", "ready": True, "metricValueMilli": v}
            for i, v in enumerate([20000, 19000, 21000, None, None])
        ],
        "expectError": False,
        "expectedReplicas": 5,
        "expectedRawValueMilli": 20000,
        "notes": "Pods 3 and 4 have no sample; the average 20000m equals the target.",
    },
]

_CASES = list(_load()) + [
    pytest.param(case, _UPSTREAM_CONSTANTS, id=case["name"]) for case in _MISSING_METRICS_CASES
]


def _ago(seconds: float | None, now: float) -> float:
    """A ``...SecondsAgo`` field as an absolute time; ``null`` is Go's zero time."""
    return GO_ZERO_TIME if seconds is None else now - seconds


def _time(value: float | None) -> float:
    """A signed ``time`` field (relative to now = 0); ``null`` is Go's zero time."""
    return GO_ZERO_TIME if value is None else float(value)


def _controller(
    case: dict[str, Any], constants: dict[str, Any], behavior: Any
) -> HorizontalController:
    ctl = HorizontalController(
        min_replicas=1,
        max_replicas=1,
        behavior=behavior,
        downscale_stabilization_seconds=case.get(
            "downscaleStabilizationWindowSeconds",
            constants.get("downscaleStabilizationWindowSeconds", 300),
        ),
        legacy_scale_up_factor=constants.get("scaleUpLimitFactorInUpstreamTests", 2.0),
        legacy_scale_up_minimum=constants.get("scaleUpLimitMinimum", 4.0),
    )
    # Bounds as the case gives them, without the constructor's validation: upstream's
    # unit tests call the functions directly. A null bound is one the stage does not use.
    min_replicas = case.get("minReplicas")
    max_replicas = case.get("maxReplicas")
    ctl.min_replicas = 1 if min_replicas is None else min_replicas
    ctl.max_replicas = 2**31 - 1 if max_replicas is None else max_replicas
    ctl.recommendations = [
        Recommendation(_time(r["time"]), r["replicas"]) for r in case.get("recommendations", [])
    ]
    ctl.scale_up_events = [
        ScaleEvent(_time(e["time"]), e["replicaChange"], e.get("outdated", False))
        for e in case.get("scaleUpEvents", [])
    ]
    ctl.scale_down_events = [
        ScaleEvent(_time(e["time"]), e["replicaChange"], e.get("outdated", False))
        for e in case.get("scaleDownEvents", [])
    ]
    return ctl


# ---------------------------------------------------------------------------------------
# behavior.json kinds
# ---------------------------------------------------------------------------------------


def _check_normalize(case: dict[str, Any], constants: dict[str, Any]) -> None:
    # README: behavior null means the default rules for both directions.
    behavior = case["behavior"] if case["behavior"] is not None else {}
    ctl = _controller(case, constants, behavior)
    got = ctl.normalize(case["now"], case["currentReplicas"], case["prenormalizedDesiredReplicas"])
    assert got == case["expectedReplicas"]
    if "expectedCondition" in case:
        assert ctl.conditions["ScalingLimited"] == case["expectedCondition"]
    if "expectedAbleToScaleReason" in case:
        assert ctl.conditions["AbleToScale"] == case["expectedAbleToScaleReason"]


def _check_stabilize(case: dict[str, Any], constants: dict[str, Any]) -> None:
    # README: only the two windows matter here, used as written, 0 where unset (no
    # defaulting to the controller's 300 s).
    given = case["behavior"] or {}
    behavior = {
        direction: {
            "stabilizationWindowSeconds": (given.get(direction) or {}).get(
                "stabilizationWindowSeconds"
            )
            or 0
        }
        for direction in ("scaleUp", "scaleDown")
    }
    ctl = _controller(case, constants, behavior)
    got = ctl.stabilize(case["now"], case["currentReplicas"], case["prenormalizedDesiredReplicas"])
    assert got == case["expectedReplicas"]
    if "expectedRecommendationsAfter" in case:
        assert [r.replicas for r in ctl.recommendations] == case["expectedRecommendationsAfter"]
        # The new entry is stamped now, wherever it landed.
        assert any(
            r.time == case["now"] and r.replicas == case["prenormalizedDesiredReplicas"]
            for r in ctl.recommendations
        )


def _check_legacy_stabilize(case: dict[str, Any], constants: dict[str, Any]) -> None:
    ctl = _controller(case, constants, None)
    current = case["currentReplicas"] if case["currentReplicas"] is not None else 0
    got = ctl.stabilize(case["now"], current, case["prenormalizedDesiredReplicas"])
    assert got == case["expectedReplicas"]
    assert len(ctl.recommendations) == case["expectedRecommendationCountAfter"]


def _check_legacy_rules(case: dict[str, Any], constants: dict[str, Any]) -> None:
    got, reason = convert_with_legacy_rules(
        case["currentReplicas"],
        case["prenormalizedDesiredReplicas"],
        case["minReplicas"],
        case["maxReplicas"],
        case["scaleUpLimitFactor"],
        case["scaleUpLimitMinimum"],
    )
    assert got == case["expectedReplicas"]
    assert reason == case["expectedCondition"]


def _events(raw: list[dict[str, Any]]) -> list[ScaleEvent]:
    return [ScaleEvent(_time(e["time"]), e["replicaChange"], e.get("outdated", False)) for e in raw]


def _check_limit(case: dict[str, Any], constants: dict[str, Any]) -> None:
    up_events = _events(case.get("scaleUpEvents", []))
    down_events = _events(case.get("scaleDownEvents", []))
    if case["kind"] == "scaleUpLimit":
        rules = default_scale_up_rules(case["scalingRules"])
        got = scale_up_limit(case["currentReplicas"], up_events, down_events, rules, case["now"])
    else:
        rules = default_scale_down_rules(case["scalingRules"])
        got = scale_down_limit(case["currentReplicas"], up_events, down_events, rules, case["now"])
    assert got == case["expectedLimit"]


def _check_scale_events(case: dict[str, Any], constants: dict[str, Any]) -> None:
    now = case["now"]
    for direction, new_replicas in (("scaleUp", 15), ("scaleDown", 5)):
        rules = case["scalingRules"]
        behavior = None if rules is None else {direction: rules}
        ctl = _controller({}, constants, behavior)
        history = _events(case["previousEvents"])
        if direction == "scaleUp":
            ctl.scale_up_events = history
        else:
            ctl.scale_down_events = history
        assert (
            replica_change_in_period(60, history, now)
            == case["expectedReplicaChangeInLast60Seconds"]
        )
        ctl.store_scale_event(now, 10, new_replicas)
        after = ctl.scale_up_events if direction == "scaleUp" else ctl.scale_down_events
        assert [{"replicaChange": e.replica_change, "outdated": e.outdated} for e in after] == case[
            "expectedEventsAfter"
        ], direction
        if case["expectedEventsAfter"] and rules is not None:
            assert any(e.time == now and e.replica_change == case["replicaChange"] for e in after)


def _check_generate(case: dict[str, Any], constants: dict[str, Any]) -> None:
    if case["kind"] == "generateScaleUpRules":
        rules = default_scale_up_rules(case["input"])
    else:
        rules = default_scale_down_rules(case["input"])
    assert rules.to_dict() == case["expected"]
    # The same defaulting happens when the rules come inside a behavior object.
    direction = "scaleUp" if case["kind"] == "generateScaleUpRules" else "scaleDown"
    behavior = parse_behavior({direction: case["input"]})
    got = behavior.scale_up if direction == "scaleUp" else behavior.scale_down
    assert got == rules


def _check_out_of_range(case: dict[str, Any], constants: dict[str, Any]) -> None:
    # Metrics are not read on these paths; a proposal that would say otherwise must not
    # matter, so feed one that disagrees with the expected result.
    for behavior in (None, {}):
        ctl = _controller(case, constants, behavior)
        got = ctl.sync(case["now"], case["currentReplicas"], [case["currentReplicas"]])
        assert got == case["expectedReplicas"]
        if "expectedAbleToScaleReason" in case:
            assert ctl.conditions["AbleToScale"] == case["expectedAbleToScaleReason"]
        if "expectedScalingActiveReason" in case:
            assert ctl.conditions["ScalingActive"] == case["expectedScalingActiveReason"]


# ---------------------------------------------------------------------------------------
# replica-calculation.json kinds
# ---------------------------------------------------------------------------------------


def _pod(raw: dict[str, Any], now: float, window: float | None, metric_ts: float) -> PodInfo:
    return PodInfo(
        name=raw["name"],
        phase=raw.get("phase", "Running"),
        ready=None if raw.get("readyConditionMissing") else raw.get("ready"),
        start_time=None if raw.get("startTimeMissing") else _ago(raw.get("startSecondsAgo"), now),
        ready_transition_time=_ago(raw.get("readyTransitionSecondsAgo"), now),
        deleting=raw.get("deleting", False),
        request_milli_cpu=raw.get("requestMilliCPU"),
        usage_milli_cpu=raw.get("usageMilliCPU"),
        metric_timestamp=metric_ts,
        metric_window_seconds=0.0 if window is None else window,
        metric_value_milli=raw.get("metricValueMilli"),
    )


def _check_replicas(case: dict[str, Any], constants: dict[str, Any]) -> None:
    now = 0.0
    metric_ts = _ago(case.get("metricTimestampSecondsAgo"), now)
    window = case.get("metricWindowSeconds", constants.get("metricWindowSeconds"))
    pods = [_pod(p, now, window, metric_ts) for p in case["pods"]]
    tolerance = case.get("tolerance", constants.get("tolerance", 0.1))
    metric_type = case["metricType"]
    current = case["currentReplicas"]
    unmatched = {
        m["name"]: m["usageMilliCPU"] if "usageMilliCPU" in m else m["metricValueMilli"]
        for m in case.get("unmatchedPodMetrics", [])
    }

    def run() -> ReplicaResult:
        if metric_type in ("Resource", "ContainerResource") and case["targetType"] != "Utilization":
            return calc_resource_average_value(
                current,
                pods,
                case["targetMilli"],
                now,
                tolerance,
                resource=case.get("resource", "cpu"),
                unmatched_samples=unmatched,
                cpu_initialization_period=constants["cpuInitializationPeriodSeconds"],
                delay_of_initial_readiness_status=constants["delayOfInitialReadinessStatusSeconds"],
            )
        if metric_type in ("Resource", "ContainerResource"):
            return calc_resource(
                current,
                pods,
                int(case["target"]),
                now,
                tolerance,
                resource=case.get("resource", "cpu"),
                container=case.get("container"),
                unmatched_samples=unmatched,
                cpu_initialization_period=constants["cpuInitializationPeriodSeconds"],
                delay_of_initial_readiness_status=constants["delayOfInitialReadinessStatusSeconds"],
            )
        if metric_type == "Pods":
            return calc_pods_metric(
                current, pods, case["targetMilli"], now, tolerance, unmatched_samples=unmatched
            )
        if metric_type == "Object":
            return calc_object(
                current,
                case["objectValueMilli"],
                case["targetType"],
                case["targetMilli"],
                tolerance,
                ready_pods=count_ready_pods(pods),
            )
        if metric_type == "External":
            return calc_external(
                current,
                case["externalValuesMilli"],
                case["targetType"],
                case["targetMilli"],
                tolerance,
                ready_pods=count_ready_pods(pods),
            )
        raise AssertionError(f"unknown metricType {metric_type!r}")

    if case.get("expectError"):
        with pytest.raises(MetricUnavailable) as info:
            run()
        if case.get("expectedErrorContains"):
            assert case["expectedErrorContains"] in str(info.value)
        return
    result = run()
    assert result.replicas == case["expectedReplicas"]
    if "expectedRawValueMilli" in case:
        assert result.raw_milli == case["expectedRawValueMilli"]
    if "expectedUtilization" in case:
        assert result.utilization == case["expectedUtilization"]


def _check_group_pods(case: dict[str, Any], constants: dict[str, Any]) -> None:
    now = 0.0
    pods: list[PodInfo] = []
    samples: dict[str, MetricSample] = {}
    for raw in case["pods"]:
        pods.append(
            PodInfo(
                name=raw["name"],
                phase=raw.get("phase", "Running"),
                ready=None if raw.get("readyConditionMissing") else raw.get("ready"),
                start_time=(
                    None if raw.get("startTimeMissing") else _ago(raw.get("startSecondsAgo"), now)
                ),
                ready_transition_time=_ago(raw.get("readyTransitionSecondsAgo"), now),
                deleting=raw.get("deleting", False),
            )
        )
        metric = raw.get("metric")
        if metric is not None:
            samples[raw["name"]] = MetricSample(
                int(metric["value"]),
                _ago(metric.get("timestampSecondsAgo"), now),
                float(metric.get("windowSeconds") or 0),
            )
    groups = group_pods(
        pods,
        samples,
        case["resource"],
        now,
        constants["cpuInitializationPeriodSeconds"],
        constants["delayOfInitialReadinessStatusSeconds"],
    )
    assert groups.ready_count == case["expectedReadyPodCount"]
    assert sorted(groups.unready) == sorted(case["expectedUnreadyPods"])
    assert sorted(groups.missing) == sorted(case["expectedMissingPods"])
    assert sorted(groups.ignored) == sorted(case["expectedIgnoredPods"])


_CHECKS = {
    "normalize": _check_normalize,
    "stabilize": _check_stabilize,
    "legacyStabilize": _check_legacy_stabilize,
    "legacyRules": _check_legacy_rules,
    "scaleUpLimit": _check_limit,
    "scaleDownLimit": _check_limit,
    "scaleEvents": _check_scale_events,
    "generateScaleUpRules": _check_generate,
    "generateScaleDownRules": _check_generate,
    "outOfRange": _check_out_of_range,
    "replicas": _check_replicas,
    "groupPods": _check_group_pods,
}


@pytest.mark.parametrize(("case", "constants"), _CASES)
def test_hpa_vectors(case: dict[str, Any], constants: dict[str, Any]) -> None:
    check = _CHECKS.get(case["kind"])
    assert check is not None, f"unknown vector kind {case['kind']!r}"
    check(case, constants)
