"""Queries for calibration: a workload's CPU, pods, requests and start-up from Prometheus.

Who calls it: ``autoscaler calibrate`` and (later) the controller, once an hour per
PredictiveAutoscaler, through ``calibrate_workload(source, ...)``. Only the
``MetricSource`` protocol is used (``history`` / ``history_by``), so any source that
speaks PromQL works, and tests can pass a stand-in.

Series (standard names; every query is a template the user can override):

* cAdvisor ``container_cpu_usage_seconds_total`` per container (``container!=""``
  drops the pod-level cgroup, ``container!="POD"`` the pause container);
* kube-state-metrics ``kube_pod_owner`` and ``kube_replicaset_owner``: pod ->
  ReplicaSet -> Deployment (a StatefulSet owns its pods directly);
* ``kube_pod_container_resource_requests{resource="cpu"}`` (cores);
* ``kube_pod_created`` and ``kube_pod_status_ready_time`` (unix seconds).

Templates use ``string.Template`` placeholders: ``$namespace``, ``$name`` (the
workload), ``$rate`` (the rate() window, e.g. ``5m``), ``$range`` (the whole window,
e.g. ``172800s``) and ``$pods`` / ``$pods_range`` (the PromQL selecting the workload's
pods, at each step / at any time in the window, as a 1-valued vector by namespace and
pod). ``$1`` in PromQL (label_replace) is left alone.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from string import Template
from typing import Literal

import numpy as np
import pandas as pd

from autoscaler.sources.base import MetricSource
from models.calibration import (
    CapacityConfig,
    CapacityEstimate,
    StartupStats,
    fit_capacity,
    lead_time_seconds,
    startup_stats,
)
from models.errors import InputError

log = logging.getLogger(__name__)

WorkloadKind = Literal["deployment", "statefulset"]

#: The pods of a Deployment: pod -> ReplicaSet (kube_pod_owner) joined with
#: ReplicaSet -> Deployment (kube_replicaset_owner, renamed to owner_name).
DEPLOYMENT_PODS = (
    "max by (namespace, pod) ("
    'kube_pod_owner{namespace="$namespace", owner_kind="ReplicaSet"}'
    " * on (namespace, owner_name) group_left() max by (namespace, owner_name) ("
    'label_replace(kube_replicaset_owner{namespace="$namespace", owner_kind="Deployment", '
    'owner_name="$name"}, "owner_name", "$1", "replicaset", "(.*)")))'
)
DEPLOYMENT_PODS_RANGE = (
    "max by (namespace, pod) ("
    'max_over_time(kube_pod_owner{namespace="$namespace", owner_kind="ReplicaSet"}[$range])'
    " * on (namespace, owner_name) group_left() max by (namespace, owner_name) ("
    'label_replace(max_over_time(kube_replicaset_owner{namespace="$namespace", '
    'owner_kind="Deployment", owner_name="$name"}[$range]), "owner_name", "$1", "replicaset", '
    '"(.*)")))'
)
STATEFULSET_PODS = (
    'max by (namespace, pod) (kube_pod_owner{namespace="$namespace", '
    'owner_kind="StatefulSet", owner_name="$name"})'
)
STATEFULSET_PODS_RANGE = (
    'max by (namespace, pod) (max_over_time(kube_pod_owner{namespace="$namespace", '
    'owner_kind="StatefulSet", owner_name="$name"}[$range]))'
)
#: CPU cores per pod of the workload (cAdvisor), one series per pod.
POD_CPU = (
    "sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{"
    'namespace="$namespace", container!="", container!="POD"}[$rate]))'
    " * on (namespace, pod) $pods"
)


@dataclass(frozen=True)
class ClusterQueries:
    """The PromQL templates; each can be replaced (``--cpu-query`` etc.)."""

    #: CPU cores used by all the workload's pods, one series.
    cpu: str = f"sum({POD_CPU})"
    #: Pods that CPU comes from, one series.
    pods: str = f"count({POD_CPU})"
    #: Mean CPU request per pod of the workload, in cores, one series.
    request: str = (
        "avg(sum by (namespace, pod) (kube_pod_container_resource_requests{"
        'namespace="$namespace", resource="cpu"}) * on (namespace, pod) $pods)'
    )
    #: Creation time of each pod seen in the window (grouped by ``pod``).
    created: str = (
        'max by (namespace, pod) (max_over_time(kube_pod_created{namespace="$namespace"}'
        "[$range]) * on (namespace, pod) $pods_range)"
    )
    #: First Ready time of each pod seen in the window (grouped by ``pod``).
    ready: str = (
        "min by (namespace, pod) (min_over_time(kube_pod_status_ready_time{"
        'namespace="$namespace"}[$range]) * on (namespace, pod) $pods_range)'
    )
    #: The pods of the workload (overrides the kind's default, ``$pods``).
    pod_selector: str | None = None
    #: The pods of the workload at any time in the window (``$pods_range``).
    pod_selector_range: str | None = None


@dataclass(frozen=True)
class WorkloadRef:
    """``deployment/NAME`` or ``statefulset/NAME`` in a namespace."""

    namespace: str
    kind: WorkloadKind
    name: str

    @classmethod
    def parse(cls, namespace: str, target: str) -> WorkloadRef:
        kind, sep, name = target.partition("/")
        kinds = {"deployment": "deployment", "deploy": "deployment", "statefulset": "statefulset"}
        if not sep or not name or kind.lower() not in kinds:
            raise InputError(
                "--target",
                f"{target!r} is not KIND/NAME",
                "write deployment/NAME or statefulset/NAME",
            )
        if not namespace:
            raise InputError("--namespace", "is empty", "name the workload's namespace")
        for what, value in (("--namespace", namespace), ("--target", name)):
            if any(c in value for c in '"\\{}'):
                raise InputError(what, f"{value!r} is not a Kubernetes name", "")
        return cls(namespace, kinds[kind.lower()], name)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def render(
    template: str, ref: WorkloadRef, queries: ClusterQueries, rate: str, range_s: float
) -> str:
    """Fill a template's placeholders for one workload."""
    if ref.kind == "deployment":
        pods, pods_range = DEPLOYMENT_PODS, DEPLOYMENT_PODS_RANGE
    else:
        pods, pods_range = STATEFULSET_PODS, STATEFULSET_PODS_RANGE
    pods = queries.pod_selector or pods
    pods_range = queries.pod_selector_range or pods_range
    values = {
        "namespace": ref.namespace,
        "name": ref.name,
        "rate": rate,
        "range": f"{max(int(math.ceil(range_s)), 1)}s",
    }
    values["pods"] = Template(pods).safe_substitute(values)
    values["pods_range"] = Template(pods_range).safe_substitute(values)
    return Template(template).safe_substitute(values)


@dataclass
class Calibration:
    """What ``calibrate_workload`` learnt; a part it could not learn is None with a reason."""

    target: WorkloadRef
    start: float
    end: float
    step_seconds: int
    capacity: CapacityEstimate | None
    capacity_error: InputError | None
    startup: StartupStats | None
    startup_error: InputError | None
    lead_time_seconds: float | None
    lead_time_source: str
    queries: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def calibrate_workload(
    source: MetricSource,
    target: WorkloadRef,
    load: str | pd.Series,
    *,
    end: float,
    window_seconds: float,
    step_seconds: int = 60,
    rate_window: str = "5m",
    queries: ClusterQueries | None = None,
    config: CapacityConfig | None = None,
    request_cores: float | None = None,
    lead_time: float | None = None,
) -> Calibration:
    """Fetch a workload's metrics over [end - window, end] and fit capacity and start-up.

    ``load`` is a PromQL query returning the workload's load as ONE series, or the load
    history itself (the controller already holds it from its batched ``history_by``):
    a float series on multiples of ``step_seconds`` (it is reindexed to the grid, so
    other instants count as missing).

    Never raises for what the data lacks: a part that cannot be learnt is None with an
    ``InputError`` saying why (``capacity_error`` / ``startup_error``), so the
    controller keeps its current value. Source errors (``RetryableError``,
    ``PermanentError``) propagate. ``request_cores`` replaces the requests query;
    ``lead_time`` replaces start-up p90 + one HPA sync.
    """
    q = queries or ClusterQueries()
    step = int(step_seconds)
    end_s = math.floor(end / step) * step
    start_s = end_s - window_seconds
    rendered = {
        name: render(getattr(q, name), target, q, rate_window, window_seconds)
        for name in ("cpu", "pods", "request", "created", "ready")
    }
    out = Calibration(
        target=target,
        start=start_s,
        end=end_s,
        step_seconds=step,
        capacity=None,
        capacity_error=None,
        startup=None,
        startup_error=None,
        lead_time_seconds=lead_time,
        lead_time_source="given" if lead_time is not None else "none",
        queries={"load": load if isinstance(load, str) else "(given series)", **rendered},
    )
    try:
        out.capacity = _capacity(
            source, rendered, load, start_s, end_s, step, config, request_cores
        )
    except InputError as err:
        out.capacity_error = err
    try:
        out.startup = _startup(source, rendered, end_s, step)
    except InputError as err:
        out.startup_error = err
    if lead_time is None and out.startup is not None:
        out.lead_time_seconds = lead_time_seconds(out.startup.p90)
        out.lead_time_source = "startup p90 + one HPA sync (15 s)"
    return out


def _capacity(
    source: MetricSource,
    q: dict[str, str],
    load: str | pd.Series,
    start: float,
    end: float,
    step: int,
    config: CapacityConfig | None,
    request_cores: float | None,
) -> CapacityEstimate:
    cpu = source.history(q["cpu"], start, end, step)
    pods = source.history(q["pods"], start, end, step)
    load_series = source.history(load, start, end, step) if isinstance(load, str) else load
    if request_cores is not None:
        request: pd.Series | float = float(request_cores)
    else:
        request = source.history(q["request"], start, end, step)
    if not cpu.notna().any():
        raise InputError(
            "container_cpu_usage_seconds_total",
            "no CPU usage for the workload's pods in the window (no cAdvisor series, or no "
            "pod found through kube_pod_owner / kube_replicaset_owner)",
            "check the namespace and --target, that cAdvisor and kube-state-metrics are "
            "scraped, or pass --cpu-query and --pods-query",
        )
    return fit_capacity(cpu, pods, load_series, request, config)


def _startup(source: MetricSource, q: dict[str, str], end: float, step: int) -> StartupStats:
    created = _per_pod(source, q["created"], end, step)
    ready = _per_pod(source, q["ready"], end, step)
    if not created:
        raise InputError(
            "kube_pod_created",
            "no kube_pod_created series for the workload's pods in the window",
            "check that kube-state-metrics is scraped, or set --lead-time",
        )
    if not ready:
        raise InputError(
            "kube_pod_status_ready_time",
            f"kube-state-metrics has no Ready time for the {len(created)} pods seen "
            "(kube_pod_status_ready_time needs kube-state-metrics >= 2.x)",
            "upgrade kube-state-metrics, or set --lead-time",
        )
    pairs = [(c, ready.get(pod, math.nan)) for pod, c in created.items()]
    stats = startup_stats(pairs)
    never = sum(1 for pod in created if pod not in ready)
    if never:
        stats.notes.append(f"{never} pods had no Ready time (not Ready yet, or never)")
    return stats


def _per_pod(source: MetricSource, query: str, end: float, step: int) -> dict[str, float]:
    """One value per pod at ``end`` (the query looks over the window itself)."""
    series = source.history_by(query, end, end, step, by=("pod",))
    out: dict[str, float] = {}
    for key, s in series.items():
        values = s.to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if finite.size:
            out[key[0]] = float(finite[-1])
    return out


def with_overrides(queries: ClusterQueries, **overrides: str | None) -> ClusterQueries:
    """``queries`` with the given templates replaced (None leaves one as it is)."""
    return replace(queries, **{k: v for k, v in overrides.items() if v is not None})
