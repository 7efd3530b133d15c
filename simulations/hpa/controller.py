"""One reconcile of one HPA: upstream ``horizontal.go``.

``HorizontalController`` is the per-HPA state and reconcile of upstream's
``HorizontalController`` (``reconcileAutoscaler`` from the out-of-range early exits on;
``normalizeDesiredReplicas``, ``normalizeDesiredReplicasWithBehaviors``,
``stabilizeRecommendation``, ``stabilizeRecommendationWithBehaviors``,
``convertDesiredReplicasWithBehaviorRate``, ``storeScaleEvent``). The free functions and
types are horizontal.go's too: ``Recommendation`` / ``ScaleEvent``
(``timestampedRecommendation`` / ``timestampedScaleEvent``), ``replica_change_in_period``
(``getReplicasChangePerPeriod``), ``scale_up_limit``
(``calculateScaleUpLimitWithScalingRules``), ``scale_down_limit``
(``calculateScaleDownLimitWithBehaviors``), ``convert_with_legacy_rules``
(``convertDesiredReplicasWithRules``) and the legacy ``scaleUpLimitFactor`` /
``scaleUpLimitMinimum``. ``SyncOutcome`` is ours (what the last sync decided and why).

See the package docstring (``simulations.hpa``) for time, scope and what is not emulated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.errors import InputError
from simulations.hpa.behavior import Behavior, ScalingRules, parse_behavior
from simulations.hpa.calculator import (
    DEFAULT_TOLERANCE,
    MAX_INT32,
    Tolerances,
    _ceil_int32,
    _trunc_int32,
)

__all__ = [
    "DEFAULT_DOWNSCALE_STABILIZATION_SECONDS",
    "LEGACY_SCALE_UP_LIMIT_FACTOR",
    "LEGACY_SCALE_UP_LIMIT_MINIMUM",
    "HorizontalController",
    "Recommendation",
    "ScaleEvent",
    "SyncOutcome",
    "convert_with_legacy_rules",
    "replica_change_in_period",
    "scale_down_limit",
    "scale_up_limit",
]

# Controller default (kube-controller-manager flag, config/v1alpha1/defaults.go).
DEFAULT_DOWNSCALE_STABILIZATION_SECONDS: float = 300.0
# The legacy (no-behavior) path caps a scale-up at max(factor * current, minimum).
LEGACY_SCALE_UP_LIMIT_FACTOR: float = 2.0
LEGACY_SCALE_UP_LIMIT_MINIMUM: float = 4.0


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
