"""Per-metric replica proposals: upstream ``replica_calculator.go``.

The ``ReplicaCalculator`` of ``pkg/controller/podautoscaler``, in the same integer
milli-units: ``Resource`` and ``ContainerResource`` utilization (``GetResourceReplicas``)
with the readiness, CPU warm-up and missing-metrics rules of ``groupPods``; raw
``AverageValue`` resource targets (``GetRawResourceReplicas``); ``Pods`` averages
(``GetMetricReplicas`` / ``calcPlainMetricReplicas``); ``Object`` and ``External`` metrics
with ``Value`` and ``AverageValue`` targets; the ready-pod count (``getReadyPodsCount``)
and the tolerance band (``Tolerances``). The two ratio helpers upstream keeps in
``metrics/utilization.go`` (``GetResourceUtilizationRatio``, ``GetMetricUsageRatio``) are
the private ``_utilization_ratio`` / ``_usage_ratio`` here, and Go's integer conversions
are the ``_div_trunc`` / ``_ceil_int32`` / ``_trunc_int32`` helpers (also used by
``simulations.hpa.controller``).

See the package docstring (``simulations.hpa``) for time, scope and what is not emulated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from models.errors import AutoscalerError, InputError

__all__ = [
    "DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS",
    "DEFAULT_INITIAL_READINESS_DELAY_SECONDS",
    "DEFAULT_TOLERANCE",
    "GO_ZERO_TIME",
    "MAX_INT32",
    "GroupedPods",
    "MetricSample",
    "MetricUnavailable",
    "PodInfo",
    "ReplicaResult",
    "Tolerances",
    "calc_external",
    "calc_object",
    "calc_pods_metric",
    "calc_resource",
    "calc_resource_average_value",
    "count_ready_pods",
    "group_pods",
    "replicas_from_cpu",
    "replicas_from_external",
]

# Go's zero time.Time (0001-01-01T00:00:00Z) in Unix seconds: "set, but never filled in".
GO_ZERO_TIME: float = -62135596800.0
MAX_INT32: int = 2**31 - 1
_MAX_INT64: int = 2**63 - 1

# Controller defaults (kube-controller-manager flags, config/v1alpha1/defaults.go).
DEFAULT_TOLERANCE: float = 0.1
DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS: float = 300.0
DEFAULT_INITIAL_READINESS_DELAY_SECONDS: float = 30.0


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
