"""An exact emulation of the Kubernetes HorizontalPodAutoscaler controller.

The simulator must predict what a real cluster would do with a policy's metric, so this
module reproduces the upstream controller (``pkg/controller/podautoscaler``, autoscaling/v2,
roughly Kubernetes v1.29-v1.33) step by step, in the same integer milli-units:

* the per-metric replica proposals (``replica_calculator.go``): ``Resource`` and
  ``ContainerResource`` utilization with the readiness, CPU warm-up and missing-metrics
  rules; ``Pods`` average values; ``Object`` and ``External`` metrics with ``Value`` and
  ``AverageValue`` targets; the tolerance band;
* one reconcile of one HPA (``horizontal.go``): the out-of-range early exits, the max over
  metric proposals (and what invalid metrics do), normalization on the legacy path (no
  ``behavior``) or the ``behavior`` path (stabilization windows, Pods/Percent rate
  policies over scale-event history, min/max), and the bookkeeping of recommendations and
  scale events that the next reconcile reads.

Reference: the project's HPA spec (``k8s-external-metrics-and-hpa.md`` §2, kept with
the shared design documents) and the upstream unit-test vectors in
``tests/data/hpa-vectors`` (run by ``tests/simulations/test_hpa_vectors.py``).

Time. Every time is in seconds on one clock (the simulator's; the vectors use ``now = 0``).
Go's zero ``time.Time`` (a timestamp the object has but nobody set) is
``GO_ZERO_TIME``, an instant far in the past that still orders and adds normally; it is
*not* the same as an absent timestamp (``None``). Window comparisons are strict like Go's
``After``/``Before``: a stored timestamp exactly ``W`` seconds old is outside a ``W``-second
window (upstream stamps inputs microseconds before it reads the clock).

Not emulated (out of the simulator's scope, said here so nobody relies on it): the
metrics pipeline itself (metrics-server resolution, adapter caching: callers pass the
samples the HPA would read); status writes, events and condition *messages* (only the
condition reasons are kept, and an invalid metric sets the generic ``FailedGetMetric``
rather than the per-type reason); selector checks (``AmbiguousSelector``); the
``HPAScaleToZero``-era ``ScaledToZero`` condition of the newest releases; jitter of the
sync period (callers choose when to sync).

Called by ``simulations.engine`` (one ``HorizontalController`` per simulated HPA, fed with
proposals from ``replicas_from_cpu`` / ``replicas_from_external`` every sync period).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from models.errors import AutoscalerError, InputError, validation_input_error

__all__ = [
    "GO_ZERO_TIME",
    "MAX_INT32",
    "Behavior",
    "GroupedPods",
    "HorizontalController",
    "MetricSample",
    "MetricUnavailable",
    "PodInfo",
    "Recommendation",
    "ReplicaResult",
    "ScaleEvent",
    "ScalingPolicy",
    "ScalingRules",
    "Tolerances",
    "calc_external",
    "calc_object",
    "calc_pods_metric",
    "calc_resource",
    "calc_resource_average_value",
    "convert_with_legacy_rules",
    "count_ready_pods",
    "default_scale_down_rules",
    "default_scale_up_rules",
    "group_pods",
    "parse_behavior",
    "replica_change_in_period",
    "replicas_from_cpu",
    "replicas_from_external",
    "scale_down_limit",
    "scale_up_limit",
]

# Go's zero time.Time (0001-01-01T00:00:00Z) in Unix seconds: "set, but never filled in".
GO_ZERO_TIME: float = -62135596800.0
MAX_INT32: int = 2**31 - 1
_MAX_INT64: int = 2**63 - 1

# Controller defaults (kube-controller-manager flags, config/v1alpha1/defaults.go).
DEFAULT_TOLERANCE: float = 0.1
DEFAULT_DOWNSCALE_STABILIZATION_SECONDS: float = 300.0
DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS: float = 300.0
DEFAULT_INITIAL_READINESS_DELAY_SECONDS: float = 30.0
# The legacy (no-behavior) path caps a scale-up at max(factor * current, minimum).
LEGACY_SCALE_UP_LIMIT_FACTOR: float = 2.0
LEGACY_SCALE_UP_LIMIT_MINIMUM: float = 4.0


class MetricUnavailable(AutoscalerError):
    """One metric could not give a proposal this sync (upstream returns an error).

    The controller treats such a metric as invalid (``ScalingActive=False``); see
    ``HorizontalController.sync`` for what invalid metrics do to the decision. The message
    carries the upstream error text, so tests can match it.
    """


# --------------------------------------------------------------------------------------
# Tolerance
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerances:
    """The no-change band around a usage ratio of 1: ``1 - down <= ratio <= 1 + up``.

    Inclusive on both edges (``Tolerances.isWithin`` upstream): a ratio of exactly 1.1 with
    tolerance 0.1 does not scale. Per-direction values come from KEP-4951
    (``behavior.scaleUp/scaleDown.tolerance``); both default to the global 0.1.
    """

    scale_down: float = DEFAULT_TOLERANCE
    scale_up: float = DEFAULT_TOLERANCE

    def is_within(self, ratio: float) -> bool:
        return (1.0 - self.scale_down) <= ratio <= (1.0 + self.scale_up)


def _tolerances(tolerance: float | Tolerances) -> Tolerances:
    if isinstance(tolerance, Tolerances):
        return tolerance
    if not math.isfinite(tolerance) or tolerance < 0:
        raise InputError("tolerance", f"must be a finite number >= 0, got {tolerance!r}", "")
    return Tolerances(float(tolerance), float(tolerance))


# --------------------------------------------------------------------------------------
# Integer helpers with Go semantics
# --------------------------------------------------------------------------------------


def _div_trunc(a: int, b: int) -> int:
    """Go's int64 ``a / b``: truncation toward zero (Python's ``//`` floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _ceil_int32(x: float) -> int:
    """``int32(math.Ceil(x))`` with the upstream cap at MaxInt32 for huge proposals."""
    if math.isnan(x):
        # Go converts NaN to an implementation-defined value; 0 is what amd64 gives and
        # the only sane proposal for "no information".
        return 0
    if x > MAX_INT32:
        return MAX_INT32
    if x < -MAX_INT32:
        return -MAX_INT32
    return math.ceil(x)


def _trunc_int32(x: float) -> int:
    """``int32(x)`` of a float64: truncation toward zero."""
    if x > MAX_INT32:
        return MAX_INT32
    if x < -MAX_INT32:
        return -MAX_INT32
    return int(x)


# --------------------------------------------------------------------------------------
# Pods and metric samples
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodInfo:
    """One pod that the HPA's selector matches, as the controller sees it.

    Times are absolute seconds on the simulation clock. ``start_time=None`` means the pod
    has no start time at all; ``GO_ZERO_TIME`` means the field is set to Go's zero time.
    ``ready=None`` means the pod has no Ready condition; ``ready_transition_time`` is that
    condition's last transition (``None`` is read as the zero time).

    CPU numbers are in millicores and already summed over the containers that count
    (for ``ContainerResource``: that one container). ``request_milli_cpu=None`` means a
    container has no CPU request (an error for CPU utilization targets);
    ``usage_milli_cpu=None`` means metrics-server returned no sample for the pod.
    ``metric_timestamp``/``metric_window_seconds`` describe that sample
    (``metric_timestamp=None`` means "taken at ``now``"). ``metric_value_milli`` is the
    pod's value of a ``Pods`` metric (``None``: no sample).
    """

    name: str
    phase: str = "Running"  # Pending | Running | Succeeded | Failed
    ready: bool | None = True
    start_time: float | None = GO_ZERO_TIME
    ready_transition_time: float | None = GO_ZERO_TIME
    deleting: bool = False
    request_milli_cpu: int | None = 0
    usage_milli_cpu: int | None = None
    metric_timestamp: float | None = None
    metric_window_seconds: float = 15.0
    metric_value_milli: int | None = None


class MetricSample(NamedTuple):
    """One per-pod sample (metrics-server or a custom metrics API), in milli-units.

    A NamedTuple rather than a dataclass: one is built per pod per sync, so cheap
    construction matters to the simulator's speed.
    """

    value: int
    timestamp: float = GO_ZERO_TIME
    window_seconds: float = 0.0


@dataclass(frozen=True)
class GroupedPods:
    """The classification of pods before the ratio is computed (upstream ``groupPods``)."""

    ready_count: int
    unready: frozenset[str]
    missing: frozenset[str]
    ignored: frozenset[str]


def group_pods(
    pods: Sequence[PodInfo],
    samples: Mapping[str, MetricSample],
    resource: str,
    now: float,
    cpu_initialization_period: float = DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS,
    delay_of_initial_readiness_status: float = DEFAULT_INITIAL_READINESS_DELAY_SECONDS,
) -> GroupedPods:
    """Sort pods into ready (counted), unready, missing (no sample) and ignored.

    * deleting or ``Failed``: ignored;
    * ``Pending``: unready;
    * no sample: missing;
    * CPU only: no Ready condition or no start time: unready; inside the CPU
      initialization period: unready if not Ready, or if the sample's window does not lie
      wholly after the last readiness transition; after it: unready if not Ready and the
      last transition came less than ``delay_of_initial_readiness_status`` after start
      (it has apparently never been ready).
    ``resource`` is ``"cpu"`` for CPU, anything else (``""`` for Pods metrics) skips the
    readiness rules.
    """
    ready_count = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            ignored.add(pod.name)
            continue
        if pod.phase == "Pending":
            unready.add(pod.name)
            continue
        sample = samples.get(pod.name)
        if sample is None:
            missing.add(pod.name)
            continue
        if resource == "cpu":
            if pod.ready is None or pod.start_time is None:
                is_unready = True
            else:
                transition = (
                    GO_ZERO_TIME if pod.ready_transition_time is None else pod.ready_transition_time
                )
                if pod.start_time + cpu_initialization_period > now:
                    is_unready = (not pod.ready) or (
                        sample.timestamp < transition + sample.window_seconds
                    )
                else:
                    is_unready = (not pod.ready) and (
                        pod.start_time + delay_of_initial_readiness_status > transition
                    )
            if is_unready:
                unready.add(pod.name)
                continue
        ready_count += 1
    return GroupedPods(ready_count, frozenset(unready), frozenset(missing), frozenset(ignored))


@dataclass(frozen=True)
class ReplicaResult:
    """A proposal and the figures upstream reports with it.

    ``utilization`` is the integer percent of request (Resource/ContainerResource only);
    ``raw_milli`` the usage figure in milli-units: average usage per counted pod
    (Resource, Pods), the summed value (Object/External ``Value``) or
    ``ceil(total / statusReplicas)`` (Object/External ``AverageValue``).
    """

    replicas: int
    raw_milli: int
    utilization: int | None = None


def _cpu_samples(pods: Sequence[PodInfo], now: float) -> dict[str, MetricSample]:
    samples: dict[str, MetricSample] = {}
    for pod in pods:
        if pod.usage_milli_cpu is not None:
            ts = now if pod.metric_timestamp is None else pod.metric_timestamp
            samples[pod.name] = MetricSample(pod.usage_milli_cpu, ts, pod.metric_window_seconds)
    return samples


def _utilization_ratio(
    metrics: Mapping[str, int], requests: Mapping[str, int], target_utilization: int
) -> tuple[float, int, int]:
    """Upstream ``GetResourceUtilizationRatio``: (ratio, integer percent, raw average)."""
    metrics_total = 0
    requests_total = 0
    entries = 0
    for name, value in metrics.items():
        request = requests.get(name)
        if request is None:
            # A sample without a known pod (an old pod's name): extraneous, skipped.
            continue
        metrics_total += value
        requests_total += request
        entries += 1
    if requests_total == 0:
        raise MetricUnavailable("no metrics returned matched known pods")
    utilization = _div_trunc(metrics_total * 100, requests_total)
    return utilization / target_utilization, utilization, _div_trunc(metrics_total, entries)


def _usable_samples(
    pods: Sequence[PodInfo],
    samples: Mapping[str, MetricSample],
    unmatched_samples: Mapping[str, int] | None,
    resource: str,
    now: float,
    cpu_initialization_period: float,
    delay_of_initial_readiness_status: float,
    no_samples_error: str,
) -> tuple[dict[str, int], GroupedPods]:
    """The samples that count, and the pod groups: upstream's shared preamble of
    ``GetResourceReplicas`` and ``calcPlainMetricReplicas``, with its errors in order.

    Unmatched samples count toward "were there any metrics" only; ignored and unready
    pods' samples are dropped.
    """
    metrics: dict[str, int] = {name: s.value for name, s in samples.items()}
    for name, value in (unmatched_samples or {}).items():
        metrics.setdefault(name, value)
    if not metrics:
        raise MetricUnavailable(no_samples_error)
    if not pods:
        raise MetricUnavailable("no pods returned by selector while calculating replica count")
    groups = group_pods(
        pods, samples, resource, now, cpu_initialization_period, delay_of_initial_readiness_status
    )
    for name in groups.ignored | groups.unready:
        metrics.pop(name, None)
    if not metrics:
        raise MetricUnavailable("did not receive metrics for targeted pods (pods might be unready)")
    return metrics, groups


def calc_resource(
    current_replicas: int,
    pods: Sequence[PodInfo],
    target_utilization: int,
    now: float,
    tolerance: float | Tolerances = DEFAULT_TOLERANCE,
    *,
    resource: str = "cpu",
    container: str | None = None,
    unmatched_samples: Mapping[str, int] | None = None,
    cpu_initialization_period: float = DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS,
    delay_of_initial_readiness_status: float = DEFAULT_INITIAL_READINESS_DELAY_SECONDS,
) -> ReplicaResult:
    """Replica proposal for a ``Resource``/``ContainerResource`` ``Utilization`` target.

    Upstream ``GetResourceReplicas``. ``unmatched_samples`` are samples whose pod name
    matches no listed pod (they count toward "were there any metrics" but never toward
    the ratio). ``container`` only names the container in error messages (the pods'
    numbers are already that container's). Raises ``MetricUnavailable`` where upstream
    returns an error.
    """
    if target_utilization <= 0:
        raise InputError("target.averageUtilization", f"must be > 0, got {target_utilization}", "")
    tol = _tolerances(tolerance)
    samples = _cpu_samples(pods, now)
    metrics, groups = _usable_samples(
        pods,
        samples,
        unmatched_samples,
        resource,
        now,
        cpu_initialization_period,
        delay_of_initial_readiness_status,
        f"unable to get metrics for resource {resource}: "
        "no metrics returned from resource metrics API",
    )

    # Requests are summed over every listed pod, ignored ones included (upstream order).
    requests: dict[str, int] = {}
    for pod in pods:
        if pod.request_milli_cpu is None:
            raise MetricUnavailable(
                f"missing request for {resource} in container {container or '(any)'}"
                f" of Pod {pod.name}"
            )
        requests[pod.name] = pod.request_milli_cpu

    ratio, utilization, raw = _utilization_ratio(metrics, requests, target_utilization)

    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tol.is_within(ratio):
            return ReplicaResult(current_replicas, raw, utilization)
        return ReplicaResult(_ceil_int32(ratio * groups.ready_count), raw, utilization)

    if groups.missing:
        if ratio < 1.0:
            # Scale-down: a missing pod is assumed busy, at 100 % of its request (or the
            # target when that is above 100 %), so a scale-down is never overstated.
            fallback = max(100, target_utilization)
            for name in groups.missing:
                metrics[name] = _div_trunc(requests[name] * fallback, 100)
        elif ratio > 1.0:
            # Scale-up: a missing pod is assumed idle, so a scale-up is never overstated.
            for name in groups.missing:
                metrics[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            metrics[name] = 0

    new_ratio, _, _ = _utilization_ratio(metrics, requests, target_utilization)
    if tol.is_within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return ReplicaResult(current_replicas, raw, utilization)
    new_replicas = _ceil_int32(new_ratio * len(metrics))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (
        new_ratio > 1.0 and new_replicas < current_replicas
    ):
        return ReplicaResult(current_replicas, raw, utilization)
    return ReplicaResult(new_replicas, raw, utilization)


def replicas_from_cpu(
    current_replicas: int,
    pods: Sequence[PodInfo],
    target_utilization: int,
    now: float,
    tolerance: float | Tolerances = DEFAULT_TOLERANCE,
    *,
    unmatched_samples: Mapping[str, int] | None = None,
    cpu_initialization_period: float = DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS,
    delay_of_initial_readiness_status: float = DEFAULT_INITIAL_READINESS_DELAY_SECONDS,
) -> int:
    """The replica proposal of a CPU ``Utilization`` target (see ``calc_resource``)."""
    return calc_resource(
        current_replicas,
        pods,
        target_utilization,
        now,
        tolerance,
        resource="cpu",
        unmatched_samples=unmatched_samples,
        cpu_initialization_period=cpu_initialization_period,
        delay_of_initial_readiness_status=delay_of_initial_readiness_status,
    ).replicas


def _usage_ratio(metrics: Mapping[str, int], target_milli: int) -> tuple[float, int]:
    """Upstream ``GetMetricUsageRatio``: the truncated average over samples, / target."""
    total = sum(metrics.values())
    usage = _div_trunc(total, len(metrics))
    return usage / target_milli, usage


def _calc_plain(
    current_replicas: int,
    pods: Sequence[PodInfo],
    samples: Mapping[str, MetricSample],
    target_milli: int,
    now: float,
    tol: Tolerances,
    resource: str,
    unmatched_samples: Mapping[str, int] | None,
    cpu_initialization_period: float,
    delay_of_initial_readiness_status: float,
    no_samples_error: str,
) -> ReplicaResult:
    """Upstream ``calcPlainMetricReplicas``: an average per pod against a target.

    As for utilization, but the ratio is the (truncated) average sample over the target,
    and on a scale-down a missing pod counts as using exactly the target.
    """
    metrics, groups = _usable_samples(
        pods,
        samples,
        unmatched_samples,
        resource,
        now,
        cpu_initialization_period,
        delay_of_initial_readiness_status,
        no_samples_error,
    )
    ratio, usage = _usage_ratio(metrics, target_milli)

    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tol.is_within(ratio):
            return ReplicaResult(current_replicas, usage)
        return ReplicaResult(_ceil_int32(ratio * groups.ready_count), usage)

    if groups.missing:
        if ratio < 1.0:
            for name in groups.missing:
                metrics[name] = target_milli
        elif ratio > 1.0:
            for name in groups.missing:
                metrics[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            metrics[name] = 0

    new_ratio, _ = _usage_ratio(metrics, target_milli)
    if tol.is_within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return ReplicaResult(current_replicas, usage)
    new_replicas = _ceil_int32(new_ratio * len(metrics))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (
        new_ratio > 1.0 and new_replicas < current_replicas
    ):
        return ReplicaResult(current_replicas, usage)
    return ReplicaResult(new_replicas, usage)


def calc_pods_metric(
    current_replicas: int,
    pods: Sequence[PodInfo],
    target_milli: int,
    now: float,
    tolerance: float | Tolerances = DEFAULT_TOLERANCE,
    *,
    unmatched_samples: Mapping[str, int] | None = None,
) -> ReplicaResult:
    """Replica proposal for a ``Pods`` metric (``AverageValue`` per pod, milli-units).

    Each pod's sample is ``PodInfo.metric_value_milli``. Readiness and start time play no
    part (only ``Pending`` pods are unready); see ``_calc_plain``.
    """
    if target_milli <= 0:
        raise InputError("target.averageValue", f"must be > 0, got {target_milli}m", "")
    samples = {
        p.name: MetricSample(p.metric_value_milli) for p in pods if p.metric_value_milli is not None
    }
    return _calc_plain(
        current_replicas,
        pods,
        samples,
        target_milli,
        now,
        _tolerances(tolerance),
        "",
        unmatched_samples,
        DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS,
        DEFAULT_INITIAL_READINESS_DELAY_SECONDS,
        "unable to get metric: no metrics returned from custom metrics API",
    )


def calc_resource_average_value(
    current_replicas: int,
    pods: Sequence[PodInfo],
    target_milli: int,
    now: float,
    tolerance: float | Tolerances = DEFAULT_TOLERANCE,
    *,
    resource: str = "cpu",
    unmatched_samples: Mapping[str, int] | None = None,
    cpu_initialization_period: float = DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS,
    delay_of_initial_readiness_status: float = DEFAULT_INITIAL_READINESS_DELAY_SECONDS,
) -> ReplicaResult:
    """Replica proposal for a ``Resource``/``ContainerResource`` ``AverageValue`` target.

    Upstream ``GetRawResourceReplicas``: the plain-metric rules of ``_calc_plain`` on the
    pods' usage samples, with the CPU readiness rules of ``group_pods`` (for CPU).
    """
    if target_milli <= 0:
        raise InputError("target.averageValue", f"must be > 0, got {target_milli}m", "")
    return _calc_plain(
        current_replicas,
        pods,
        _cpu_samples(pods, now),
        target_milli,
        now,
        _tolerances(tolerance),
        resource,
        unmatched_samples,
        cpu_initialization_period,
        delay_of_initial_readiness_status,
        f"unable to get metrics for resource {resource}: "
        "no metrics returned from resource metrics API",
    )


def _value_target_replicas(
    current_replicas: int, ready_pods: int, ratio: float, tol: Tolerances
) -> int:
    """Upstream ``getUsageRatioReplicaCount`` (Object/External ``Value`` targets)."""
    if current_replicas != 0:
        if tol.is_within(ratio):
            return current_replicas
        # Multiplies by *ready* pods, not replicas: with none Ready the proposal is 0.
        return _ceil_int32(ratio * ready_pods)
    # Scale from zero (HPAScaleToZero): no tolerance, no pod count.
    return _ceil_int32(ratio)


def _average_value_target(
    usage: int, target_milli: int, status_replicas: int, tol: Tolerances
) -> ReplicaResult:
    """Upstream ``Get{Object,External}PerPodMetricReplicas`` (``AverageValue`` targets)."""
    replicas = status_replicas
    if status_replicas == 0:
        # Go's float division gives Inf/NaN here, never "within": scale from the total.
        within = False
    else:
        within = tol.is_within(usage / (target_milli * status_replicas))
    if not within:
        replicas = _ceil_int32(usage / target_milli)
    if usage >= _MAX_INT64:
        raw = _MAX_INT64
    elif status_replicas == 0:
        raw = usage  # Go would report Inf; the total is the honest figure for zero pods
    else:
        raw = math.ceil(usage / status_replicas)
    return ReplicaResult(replicas, raw)


def _check_target(target_type: str, target_milli: int, where: str) -> None:
    if target_type not in ("Value", "AverageValue"):
        raise InputError(
            f"{where}.target.type",
            f"{target_type!r} is not a target type for this metric",
            "use Value or AverageValue",
        )
    if target_milli <= 0:
        raise InputError(f"{where}.target", f"must be > 0, got {target_milli}m", "")


def calc_external(
    current_replicas: int,
    values_milli: Sequence[int],
    target_type: str,
    target_milli: int,
    tolerance: float | Tolerances = DEFAULT_TOLERANCE,
    *,
    ready_pods: int | None = None,
    status_replicas: int | None = None,
) -> ReplicaResult:
    """Replica proposal for an ``External`` metric; ``values_milli`` are all items returned.

    The items are summed (saturating at MaxInt64); no items is an error, as upstream
    (``no metrics returned from external metrics API``). ``Value``: ratio = sum / target,
    proposal ``ceil(ratio * ready_pods)`` outside the tolerance band. ``AverageValue``:
    ratio = sum / (target * status_replicas), proposal ``ceil(sum / target)``.
    ``ready_pods`` (Running and Ready) and ``status_replicas`` default to
    ``current_replicas``.
    """
    _check_target(target_type, target_milli, "external")
    tol = _tolerances(tolerance)
    if not values_milli:
        raise MetricUnavailable("no metrics returned from external metrics API")
    usage = 0
    for value in values_milli:
        if value > 0 and usage > _MAX_INT64 - value:
            usage = _MAX_INT64
            break
        usage += value
    ready = current_replicas if ready_pods is None else ready_pods
    status = current_replicas if status_replicas is None else status_replicas
    if target_type == "Value":
        return ReplicaResult(
            _value_target_replicas(current_replicas, ready, usage / target_milli, tol), usage
        )
    return _average_value_target(usage, target_milli, status, tol)


def replicas_from_external(
    current_replicas: int,
    values_milli: Sequence[int],
    target_type: str,
    target_milli: int,
    tolerance: float | Tolerances = DEFAULT_TOLERANCE,
    *,
    ready_pods: int | None = None,
    status_replicas: int | None = None,
) -> int:
    """The replica proposal of an ``External`` metric (see ``calc_external``)."""
    return calc_external(
        current_replicas,
        values_milli,
        target_type,
        target_milli,
        tolerance,
        ready_pods=ready_pods,
        status_replicas=status_replicas,
    ).replicas


def calc_object(
    current_replicas: int,
    value_milli: int,
    target_type: str,
    target_milli: int,
    tolerance: float | Tolerances = DEFAULT_TOLERANCE,
    *,
    ready_pods: int | None = None,
    status_replicas: int | None = None,
) -> ReplicaResult:
    """Replica proposal for an ``Object`` metric: one value, same rules as External."""
    _check_target(target_type, target_milli, "object")
    tol = _tolerances(tolerance)
    ready = current_replicas if ready_pods is None else ready_pods
    status = current_replicas if status_replicas is None else status_replicas
    if target_type == "Value":
        return ReplicaResult(
            _value_target_replicas(current_replicas, ready, value_milli / target_milli, tol),
            value_milli,
        )
    return _average_value_target(value_milli, target_milli, status, tol)


def count_ready_pods(pods: Sequence[PodInfo]) -> int:
    """Pods that are ``Running`` with Ready=True (what Value targets multiply by)."""
    return sum(1 for p in pods if p.phase == "Running" and p.ready is True)


# --------------------------------------------------------------------------------------
# behavior: the autoscaling/v2 scaling rules and their defaulting
# --------------------------------------------------------------------------------------


class ScalingPolicy(BaseModel):
    """One rate policy: at most ``value`` pods (or percent) per ``periodSeconds``."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0, description="pods, or percent of the replicas at period start")
    period_seconds: int = Field(
        alias="periodSeconds", ge=1, le=1800, description="seconds the policy looks back"
    )


class ScalingRules(BaseModel):
    """``HPAScalingRules`` of one direction, already defaulted field by field.

    ``stabilization_window_seconds=None`` (only possible for scale-down) means "use the
    controller's ``--horizontal-pod-autoscaler-downscale-stabilization``" (300 s).
    ``tolerance`` (KEP-4951) is the per-direction tolerance; ``None`` = the global one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    stabilization_window_seconds: int | None = Field(
        default=None, alias="stabilizationWindowSeconds", ge=0, le=3600
    )
    select_policy: Literal["Max", "Min", "Disabled"] = Field(default="Max", alias="selectPolicy")
    policies: tuple[ScalingPolicy, ...] = Field(default=(), min_length=1)
    tolerance: float | None = Field(default=None, ge=0)

    @field_validator("tolerance", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Any:
        # The API field is a Quantity: accept "0.05" or "50m" as well as a number.
        if isinstance(value, str):
            text = value.strip()
            scale = Decimal(1)
            if text.endswith("m"):
                text, scale = text[:-1], Decimal("0.001")
            try:
                return float(Decimal(text) * scale)
            except InvalidOperation as err:
                raise ValueError(f"not a quantity: {value!r}") from err
        return value

    def to_dict(self) -> dict[str, Any]:
        """The rules in Kubernetes field names (unset window as ``None``)."""
        return {
            "stabilizationWindowSeconds": self.stabilization_window_seconds,
            "selectPolicy": self.select_policy,
            "policies": [
                {"type": p.type, "value": p.value, "periodSeconds": p.period_seconds}
                for p in self.policies
            ],
        }


_DEFAULT_SCALE_UP: dict[str, Any] = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
_DEFAULT_SCALE_DOWN: dict[str, Any] = {
    "stabilizationWindowSeconds": None,
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def _validation_to_input_error(err: ValidationError, where: str) -> InputError:
    fix = "see the autoscaling/v2 HorizontalPodAutoscalerBehavior reference"
    return validation_input_error(err, where, fix, dotted=True)


def _defaulted_rules(
    given: Mapping[str, Any] | None, defaults: Mapping[str, Any], where: str
) -> ScalingRules:
    merged: dict[str, Any] = dict(defaults)
    if given is not None:
        if not isinstance(given, Mapping):
            raise InputError(where, f"must be a mapping, got {type(given).__name__}", "")
        # Each field the user set wins; a given policies list replaces the default list.
        merged.update({k: v for k, v in given.items() if v is not None})
    try:
        return ScalingRules.model_validate(merged)
    except ValidationError as err:
        raise _validation_to_input_error(err, where) from err


def default_scale_up_rules(given: Mapping[str, Any] | None = None) -> ScalingRules:
    """API defaulting of ``behavior.scaleUp`` (upstream ``GenerateHPAScaleUpRules``)."""
    return _defaulted_rules(given, _DEFAULT_SCALE_UP, "behavior.scaleUp")


def default_scale_down_rules(given: Mapping[str, Any] | None = None) -> ScalingRules:
    """API defaulting of ``behavior.scaleDown`` (upstream ``GenerateHPAScaleDownRules``)."""
    return _defaulted_rules(given, _DEFAULT_SCALE_DOWN, "behavior.scaleDown")


@dataclass(frozen=True)
class Behavior:
    """A defaulted ``spec.behavior``: both directions always present."""

    scale_up: ScalingRules
    scale_down: ScalingRules


def parse_behavior(behavior: Mapping[str, Any] | Behavior) -> Behavior:
    """Default a user's ``behavior`` mapping the way the API server does.

    A missing direction gets that direction's default rules; within a direction each
    missing field takes its default. An HPA *without* behavior is not this: pass
    ``behavior=None`` to ``HorizontalController`` for the legacy path.
    """
    if isinstance(behavior, Behavior):
        return behavior
    if not isinstance(behavior, Mapping):
        raise InputError("behavior", f"must be a mapping, got {type(behavior).__name__}", "")
    unknown = set(behavior) - {"scaleUp", "scaleDown"}
    if unknown:
        raise InputError(
            "behavior", f"unknown field(s) {sorted(unknown)}", "only scaleUp and scaleDown exist"
        )
    return Behavior(
        default_scale_up_rules(behavior.get("scaleUp")),
        default_scale_down_rules(behavior.get("scaleDown")),
    )


# --------------------------------------------------------------------------------------
# History: recommendations and scale events
# --------------------------------------------------------------------------------------


@dataclass
class Recommendation:
    """A stored, *unclamped* replica recommendation (stabilization history)."""

    time: float
    replicas: int


@dataclass
class ScaleEvent:
    """One rescale in one direction: ``replica_change`` > 0 pods added or removed."""

    time: float
    replica_change: int
    outdated: bool = False


def replica_change_in_period(
    period_seconds: float, events: Sequence[ScaleEvent], now: float
) -> int:
    """Pods added (or removed) by events strictly newer than ``now - period``.

    Outdated flags do not matter here, only timestamps (upstream
    ``getReplicasChangePerPeriod``).
    """
    cutoff = now - period_seconds
    return sum(e.replica_change for e in events if e.time > cutoff)


def scale_up_limit(
    current_replicas: int,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: float,
) -> int:
    """The most replicas the scale-up rules allow now, before clamping to current/max.

    Each policy starts from the replica count at the start of its period
    (``current - added + removed``): Pods adds ``value``, Percent multiplies by
    ``1 + value/100`` rounded up. ``Max`` picks the largest proposal, ``Min`` the
    smallest; ``Disabled`` allows no growth.
    """
    if rules.select_policy == "Disabled":
        return current_replicas
    pick = min if rules.select_policy == "Min" else max
    result: int | None = None
    for policy in rules.policies:
        added = replica_change_in_period(policy.period_seconds, up_events, now)
        removed = replica_change_in_period(policy.period_seconds, down_events, now)
        start = current_replicas - added + removed
        if policy.type == "Pods":
            proposed = start + policy.value
        else:
            proposed = _ceil_int32(start * (1 + policy.value / 100))
        result = proposed if result is None else pick(result, proposed)
    # No policies: upstream returns its start value (MinInt32 for Max / MaxInt32 for Min).
    if result is None:
        return -(2**31) if rules.select_policy != "Min" else MAX_INT32
    return result


def scale_down_limit(
    current_replicas: int,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: float,
) -> int:
    """The fewest replicas the scale-down rules allow now, before clamping to current/min.

    Pods subtracts ``value`` from the period-start count; Percent multiplies it by
    ``1 - value/100`` and truncates. ``Max`` (most change) picks the smallest floor,
    ``Min`` the largest; ``Disabled`` allows no shrinking.
    """
    if rules.select_policy == "Disabled":
        return current_replicas
    pick = max if rules.select_policy == "Min" else min
    result: int | None = None
    for policy in rules.policies:
        added = replica_change_in_period(policy.period_seconds, up_events, now)
        removed = replica_change_in_period(policy.period_seconds, down_events, now)
        start = current_replicas - added + removed
        if policy.type == "Pods":
            proposed = start - policy.value
        else:
            proposed = _trunc_int32(start * (1 - policy.value / 100))
        result = proposed if result is None else pick(result, proposed)
    if result is None:
        return -(2**31) if rules.select_policy == "Min" else MAX_INT32
    return result


def convert_with_legacy_rules(
    current_replicas: int,
    desired_replicas: int,
    min_replicas: int,
    max_replicas: int,
    scale_up_limit_factor: float = LEGACY_SCALE_UP_LIMIT_FACTOR,
    scale_up_limit_minimum: float = LEGACY_SCALE_UP_LIMIT_MINIMUM,
) -> tuple[int, str]:
    """Min/max clamp of the legacy path: (replicas, ScalingLimited reason).

    The upper bound is ``min(max_replicas, max(factor * current, minimum))`` per sync,
    with no history (upstream ``convertDesiredReplicasWithRules``).
    """
    limit = _trunc_int32(max(scale_up_limit_factor * current_replicas, scale_up_limit_minimum))
    if max_replicas > limit:
        maximum, reason = limit, "ScaleUpLimit"
    else:
        maximum, reason = max_replicas, "TooManyReplicas"
    if desired_replicas < min_replicas:
        return min_replicas, "TooFewReplicas"
    if desired_replicas > maximum:
        return maximum, reason
    return desired_replicas, "DesiredWithinRange"


# --------------------------------------------------------------------------------------
# The controller: one HPA's state across syncs
# --------------------------------------------------------------------------------------


@dataclass
class SyncOutcome:
    """What the last ``sync`` decided and why (for timelines and debugging)."""

    time: float
    current_replicas: int
    desired_replicas: int
    prenormalized: int | None
    rescaled: bool
    reason: str
    conditions: dict[str, str] = field(default_factory=dict)


class HorizontalController:
    """One HPA's normalization state: stabilization history and scale events.

    ``behavior=None`` is an HPA without ``spec.behavior`` (the legacy path: one 300 s
    downscale window and a per-sync scale-up cap of ``max(2 * current, 4)``); any mapping
    (``{}`` for all defaults) is defaulted as the API server does and takes the
    ``behavior`` path. ``downscale_stabilization_seconds`` is the controller flag (the
    legacy window and the default scale-down window). ``legacy_scale_up_factor`` is 2.0 in
    production (upstream tests use 8).

    ``conditions`` maps the condition types ``AbleToScale``, ``ScalingActive`` and
    ``ScalingLimited`` to the reason the last call set.
    """

    def __init__(
        self,
        min_replicas: int,
        max_replicas: int,
        behavior: Mapping[str, Any] | Behavior | None = None,
        downscale_stabilization_seconds: float = DEFAULT_DOWNSCALE_STABILIZATION_SECONDS,
        legacy_scale_up_factor: float = LEGACY_SCALE_UP_LIMIT_FACTOR,
        legacy_scale_up_minimum: float = LEGACY_SCALE_UP_LIMIT_MINIMUM,
    ) -> None:
        if min_replicas < 0:
            raise InputError("minReplicas", f"must be >= 0, got {min_replicas}", "")
        if max_replicas < 1 or max_replicas < min_replicas:
            raise InputError(
                "maxReplicas",
                f"must be >= 1 and >= minReplicas ({min_replicas}), got {max_replicas}",
                "",
            )
        if downscale_stabilization_seconds < 0:
            raise InputError(
                "downscaleStabilization",
                f"must be >= 0 s, got {downscale_stabilization_seconds}",
                "",
            )
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.behavior: Behavior | None = None if behavior is None else parse_behavior(behavior)
        self.downscale_stabilization_seconds = float(downscale_stabilization_seconds)
        self.legacy_scale_up_factor = legacy_scale_up_factor
        self.legacy_scale_up_minimum = legacy_scale_up_minimum
        self.recommendations: list[Recommendation] = []
        self.scale_up_events: list[ScaleEvent] = []
        self.scale_down_events: list[ScaleEvent] = []
        self.conditions: dict[str, str] = {}
        self.last: SyncOutcome | None = None
        # Upstream keys "never synced" on a nil slice; an emptied list cannot recur
        # because entries are replaced, never deleted.
        self._seeded = False

    # -- tolerance ----------------------------------------------------------------------

    def tolerances(self, global_tolerance: float = DEFAULT_TOLERANCE) -> Tolerances:
        """Per-direction tolerances: behavior's (KEP-4951) where set, else the global."""
        up = down = global_tolerance
        if self.behavior is not None:
            if self.behavior.scale_up.tolerance is not None:
                up = self.behavior.scale_up.tolerance
            if self.behavior.scale_down.tolerance is not None:
                down = self.behavior.scale_down.tolerance
        return Tolerances(scale_down=down, scale_up=up)

    # -- stabilization ------------------------------------------------------------------

    def _down_window(self) -> float:
        assert self.behavior is not None
        window = self.behavior.scale_down.stabilization_window_seconds
        return self.downscale_stabilization_seconds if window is None else float(window)

    def stabilize(self, now: float, current_replicas: int, prenormalized: int) -> int:
        """The stabilization step alone; stores ``prenormalized`` in the history.

        Behavior path: the result is ``current`` raised to the lowest recommendation
        inside the scale-up window and lowered to the highest inside the scale-down
        window. Legacy path: the max of ``prenormalized`` and every recommendation inside
        the downscale window (``current_replicas`` is unused). The new entry replaces the
        last one too old for every window, or is appended.
        """
        recs = self.recommendations
        if self.behavior is None:
            cutoff = now - self.downscale_stabilization_seconds
            result = prenormalized
            old_index = -1
            for i, rec in enumerate(recs):
                if rec.time <= cutoff:
                    old_index = i
                elif rec.replicas > result:
                    result = rec.replicas
            self._store_recommendation(old_index, now, prenormalized)
            self.conditions["AbleToScale"] = (
                "ScaleDownStabilized" if result != prenormalized else "ReadyForNewScale"
            )
            return result

        up_window = self.behavior.scale_up.stabilization_window_seconds or 0
        up_cutoff = now - up_window
        down_cutoff = now - self._down_window()
        up_rec = down_rec = prenormalized
        old_index = -1
        for i, rec in enumerate(recs):
            if rec.time > up_cutoff and rec.replicas < up_rec:
                up_rec = rec.replicas
            if rec.time > down_cutoff and rec.replicas > down_rec:
                down_rec = rec.replicas
            if rec.time <= up_cutoff and rec.time <= down_cutoff:
                old_index = i
        result = current_replicas
        if result < up_rec:
            result = up_rec
        if result > down_rec:
            result = down_rec
        self._store_recommendation(old_index, now, prenormalized)
        if result != prenormalized:
            self.conditions["AbleToScale"] = (
                "ScaleUpStabilized" if prenormalized >= current_replicas else "ScaleDownStabilized"
            )
        else:
            self.conditions["AbleToScale"] = "ReadyForNewScale"
        return result

    def _store_recommendation(self, old_index: int, now: float, replicas: int) -> None:
        if old_index >= 0:
            self.recommendations[old_index] = Recommendation(now, replicas)
        else:
            self.recommendations.append(Recommendation(now, replicas))

    # -- rate limits and bounds -----------------------------------------------------------

    def _convert_with_behavior_rate(
        self, now: float, current_replicas: int, desired: int
    ) -> tuple[int, str]:
        assert self.behavior is not None
        if desired > current_replicas:
            limit = scale_up_limit(
                current_replicas,
                self.scale_up_events,
                self.scale_down_events,
                self.behavior.scale_up,
                now,
            )
            # Events of the current period can push the limit below current: hold.
            limit = max(limit, current_replicas)
            if self.max_replicas > limit:
                maximum, reason = limit, "ScaleUpLimit"
            else:
                maximum, reason = self.max_replicas, "TooManyReplicas"
            if desired > maximum:
                return maximum, reason
        elif desired < current_replicas:
            limit = scale_down_limit(
                current_replicas,
                self.scale_up_events,
                self.scale_down_events,
                self.behavior.scale_down,
                now,
            )
            limit = min(limit, current_replicas)
            if self.min_replicas < limit:
                minimum, reason = limit, "ScaleDownLimit"
            else:
                minimum, reason = self.min_replicas, "TooFewReplicas"
            if desired < minimum:
                return minimum, reason
        return desired, "DesiredWithinRange"

    def normalize(self, now: float, current_replicas: int, prenormalized: int) -> int:
        """Stabilize, rate-limit and clamp a metric-derived replica count.

        Exactly upstream's ``normalizeDesiredReplicas`` (legacy) or
        ``normalizeDesiredReplicasWithBehaviors``; records ``prenormalized`` in the
        history and sets ``conditions['AbleToScale']`` and ``['ScalingLimited']``. It does
        not seed the history with the current size (``sync`` does) nor record a scale
        event.
        """
        stabilized = self.stabilize(now, current_replicas, prenormalized)
        if self.behavior is None:
            desired, reason = convert_with_legacy_rules(
                current_replicas,
                stabilized,
                self.min_replicas,
                self.max_replicas,
                self.legacy_scale_up_factor,
                self.legacy_scale_up_minimum,
            )
        else:
            desired, reason = self._convert_with_behavior_rate(now, current_replicas, stabilized)
        self.conditions["ScalingLimited"] = reason
        return desired

    # -- scale events ---------------------------------------------------------------------

    def store_scale_event(self, now: float, prev_replicas: int, new_replicas: int) -> None:
        """Record a rescale (behavior path only; the legacy path keeps no events).

        Events older than the direction's longest policy period are marked outdated; the
        new one replaces the last outdated event, or is appended.
        """
        if self.behavior is None:
            return
        if new_replicas > prev_replicas:
            events, rules = self.scale_up_events, self.behavior.scale_up
            change = new_replicas - prev_replicas
        else:
            events, rules = self.scale_down_events, self.behavior.scale_down
            change = prev_replicas - new_replicas
        longest = max((p.period_seconds for p in rules.policies), default=0)
        cutoff = now - longest
        old_index = -1
        for i, event in enumerate(events):
            if event.time <= cutoff:
                event.outdated = True
            if event.outdated:
                old_index = i
        new_event = ScaleEvent(now, change, False)
        if old_index >= 0:
            events[old_index] = new_event
        else:
            events.append(new_event)

    # -- one reconcile ----------------------------------------------------------------------

    def sync(self, now: float, current_replicas: int, proposals: Sequence[int | None]) -> int:
        """One reconcile of this HPA; returns the new ``spec.replicas`` of the target.

        ``current_replicas`` is the target's ``spec.replicas``; ``proposals`` holds one
        replica proposal per metric in ``spec.metrics`` (``None`` for a metric that failed
        this sync, e.g. ``MetricUnavailable``). In order, as upstream:

        1. the first sync seeds the history with ``(current, now)``, so a scale-down below
           the starting size waits out the stabilization window;
        2. ``current == 0`` with ``min > 0``: scaling is disabled, nothing changes;
           ``current > max`` / ``current < min``: the bound, without metrics or
           normalization;
        3. the max over valid proposals; when every metric failed, or some failed and the
           valid ones would scale down, nothing changes this sync;
        4. normalization (legacy or behavior path);
        5. on a change, a scale event is recorded.
        """
        if current_replicas < 0:
            raise InputError("currentReplicas", f"must be >= 0, got {current_replicas}", "")
        if not self._seeded and not self.recommendations:
            self.recommendations.append(Recommendation(now, current_replicas))
        self._seeded = True
        self.conditions["AbleToScale"] = "SucceededGetScale"
        prenormalized: int | None = None
        reason = ""

        if current_replicas == 0 and self.min_replicas != 0:
            self.conditions["ScalingActive"] = "ScalingDisabled"
            return self._finish(now, current_replicas, current_replicas, None, "ScalingDisabled")
        if current_replicas > self.max_replicas:
            desired = self.max_replicas
            reason = "Current number of replicas above Spec.MaxReplicas"
        elif current_replicas < self.min_replicas:
            desired = self.min_replicas
            reason = "Current number of replicas below Spec.MinReplicas"
        else:
            if not proposals:
                raise InputError("spec.metrics", "an HPA needs at least one metric", "add a metric")
            valid = [p for p in proposals if p is not None]
            best = max(valid) if valid else None
            if best is None or (len(valid) < len(proposals) and best < current_replicas):
                # Partial data must not shrink the workload; no data changes nothing.
                self.conditions["ScalingActive"] = "FailedGetMetric"
                return self._finish(
                    now, current_replicas, current_replicas, best, "invalid metrics"
                )
            self.conditions["ScalingActive"] = "ValidMetricFound"
            prenormalized = max(best, 0)
            if prenormalized > current_replicas:
                reason = "metric above target"
            elif prenormalized < current_replicas:
                reason = "All metrics below target"
            desired = self.normalize(now, current_replicas, prenormalized)

        if desired != current_replicas:
            self.conditions["AbleToScale"] = "SucceededRescale"
            self.store_scale_event(now, current_replicas, desired)
        return self._finish(now, current_replicas, desired, prenormalized, reason)

    def _finish(
        self, now: float, current: int, desired: int, prenormalized: int | None, reason: str
    ) -> int:
        self.last = SyncOutcome(
            now, current, desired, prenormalized, desired != current, reason, dict(self.conditions)
        )
        return desired
