"""An exact emulation of the Kubernetes HorizontalPodAutoscaler controller.

The simulator must predict what a real cluster would do with a policy's metric, so this
package reproduces the upstream controller (``pkg/controller/podautoscaler``, autoscaling/v2,
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

Modules, one per upstream file:

* ``simulations.hpa.calculator``: ``pkg/controller/podautoscaler/replica_calculator.go``
  (with the two ratio helpers of its ``metrics/utilization.go``): ``Tolerances``,
  ``PodInfo``, ``MetricSample``, ``group_pods``, the ``calc_*`` functions,
  ``replicas_from_cpu`` / ``replicas_from_external``, ``count_ready_pods``,
  ``MetricUnavailable``, ``ReplicaResult``, the Go integer helpers;
* ``simulations.hpa.behavior``: no file of ``podautoscaler``, the ``behavior`` API types
  (``k8s.io/api/autoscaling/v2/types.go``) and their defaulting
  (``pkg/apis/autoscaling/v2/defaults.go``): ``ScalingPolicy``, ``ScalingRules``,
  ``Behavior``, ``default_scale_up_rules`` / ``default_scale_down_rules``,
  ``parse_behavior``;
* ``simulations.hpa.controller``: ``pkg/controller/podautoscaler/horizontal.go``:
  ``HorizontalController`` (reconcile, stabilization, normalization, scale events),
  ``SyncOutcome``, and the rate limits ``replica_change_in_period``, ``scale_up_limit``,
  ``scale_down_limit``, ``convert_with_legacy_rules`` with their history types
  ``Recommendation`` and ``ScaleEvent``.

Why the behaviour-driven limits are in ``controller`` and not ``behavior``: upstream keeps
them in ``horizontal.go`` (``getReplicasChangePerPeriod``,
``calculateScaleUpLimitWithScalingRules``, ``calculateScaleDownLimitWithBehaviors``,
``convertDesiredReplicasWithRules``, ``timestampedRecommendation``,
``timestampedScaleEvent``), next to the reconcile that is their only caller, while the
``behavior`` types and defaulting live in the API packages. Following that split keeps
each module a one-to-one counterpart of its upstream file (a reader diffing against a new
Kubernetes release looks in one place), and keeps ``behavior`` a leaf of pure API
objects: ``controller`` imports ``behavior`` and ``calculator``, and no other module of the
package imports ``controller``.

Every public name is re-exported here, so ``from simulations.hpa import ...`` is unchanged.

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

from simulations.hpa.behavior import (
    Behavior,
    ScalingPolicy,
    ScalingRules,
    default_scale_down_rules,
    default_scale_up_rules,
    parse_behavior,
)
from simulations.hpa.calculator import (
    DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS as DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS,
)
from simulations.hpa.calculator import (
    DEFAULT_INITIAL_READINESS_DELAY_SECONDS as DEFAULT_INITIAL_READINESS_DELAY_SECONDS,
)
from simulations.hpa.calculator import DEFAULT_TOLERANCE as DEFAULT_TOLERANCE
from simulations.hpa.calculator import (
    GO_ZERO_TIME,
    MAX_INT32,
    GroupedPods,
    MetricSample,
    MetricUnavailable,
    PodInfo,
    ReplicaResult,
    Tolerances,
    calc_external,
    calc_object,
    calc_pods_metric,
    calc_resource,
    calc_resource_average_value,
    count_ready_pods,
    group_pods,
    replicas_from_cpu,
    replicas_from_external,
)
from simulations.hpa.controller import (
    DEFAULT_DOWNSCALE_STABILIZATION_SECONDS as DEFAULT_DOWNSCALE_STABILIZATION_SECONDS,
)
from simulations.hpa.controller import (
    LEGACY_SCALE_UP_LIMIT_FACTOR as LEGACY_SCALE_UP_LIMIT_FACTOR,
)
from simulations.hpa.controller import (
    LEGACY_SCALE_UP_LIMIT_MINIMUM as LEGACY_SCALE_UP_LIMIT_MINIMUM,
)
from simulations.hpa.controller import (
    HorizontalController,
    Recommendation,
    ScaleEvent,
    convert_with_legacy_rules,
    replica_change_in_period,
    scale_down_limit,
    scale_up_limit,
)
from simulations.hpa.controller import SyncOutcome as SyncOutcome

# The same list as the single-module ``simulations/hpa.py`` had, so ``import *`` is
# unchanged; the constants and ``SyncOutcome`` above are re-exported explicitly.
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
