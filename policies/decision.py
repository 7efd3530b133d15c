"""``decide()``: from a workload's load history to the replica count it should run.

This is the one decision path. The controller calls it every sync with real history
from Prometheus; the simulator calls it with a simulated clock and replayed history.
Nothing in here reads the wall clock, does I/O, or knows which of the two is calling.

Flow: history -> forecaster (quantiles of the peak over the lead window) -> the load
to cover at the adaptive price of a miss (``covered_load``) -> replicas ->
``Decision``. The cost guard (``policies``) then clamps decisions across an
environment, and ``served_value`` turns the final replica count into the
external-metric value whose HPA outcome is exactly that count.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from models.base import Forecast, Forecaster
from models.common import unix_seconds
from models.registry import make_forecaster
from policies.knobs import DEFAULTS

BindingConstraint = Literal["none", "budget", "min", "max"]

#: The HPA controller's default tolerance (``--horizontal-pod-autoscaler-tolerance``).
HPA_TOLERANCE = 0.1


@dataclass(frozen=True)
class ScalingSpec:
    """What ``decide`` needs to know about one workload (from the PredictiveAutoscaler)."""

    namespace: str
    name: str
    # The knobs: meanings, ranges and defaults are ``policies.knobs`` (one definition).
    #: load units per second that one replica serves at 100 % CPU; None while it is
    #: not known (omitted from the spec and not learnt yet): ``decide`` then holds the
    #: replicas running and says why (``capacity_note``).
    capacity_per_replica: float | None
    target_utilization: float = DEFAULTS["target_utilization"]
    min_replicas: int = DEFAULTS["min_replicas"]
    max_replicas: int = DEFAULTS["max_replicas"]
    #: seconds between a decision and new capacity being ready (``leadTimeSeconds``).
    lead_seconds: float = DEFAULTS["lead_time_seconds"]
    #: the forecast quantile that, with the median, measures how wide the upper tail of
    #: the forecast is (``q_risk - q0.5``); see ``covered_load``.
    risk_quantile: float = DEFAULTS["risk_quantile"]
    #: the share of time we accept to be under-provisioned (demand above the capacity
    #: that is Ready). The price of a miss (``WorkloadState.log_price``) is adapted
    #: online (adaptive conformal inference) so that the workload's realised share
    #: matches it, whatever the HPA's tolerance and stabilisation do to what we serve.
    risk_target: float = DEFAULTS["risk_target"]
    #: step of that adaptation, in ln(price) per under-provisioned tick (and
    #: ``adapt_rate * risk_target`` down per covered one). Misses come in clusters (a
    #: surge, a ramp): a step of 0.05 still moves the cover by one tail width within
    #: ~5 minutes of sustained misses, without one surge inflating the next day's cover.
    adapt_rate: float = 0.05
    #: forecaster registry name (``forecaster``).
    model: str = DEFAULTS["forecaster"]
    #: refit the forecaster this often (seconds of simulated or real time).
    refit_seconds: float = 3600.0
    #: history kept for the forecaster (seconds); two weeks holds a weekly season twice.
    history_seconds: float = 14 * 86400.0
    #: why the capacity is not known yet (the controller's learning says; "" = no note).
    capacity_note: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class WorkloadState:
    """Mutable per-workload state that the caller keeps between calls to ``decide``.

    ``history`` is the load history (merged lazily: appending a sample per tick must
    not copy two weeks of history each time); assigning it (the controller's backfill
    prepends older pages) replaces it whole.
    """

    _history: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    #: samples appended but not yet merged into ``_history``.
    _tail: list[pd.Series] = field(default_factory=list)
    #: history kept, in seconds (from the spec, for the lazy merge).
    keep_seconds: float = 14 * 86400.0
    #: stamp (unix s) of the newest sample, and the spacing of the newest two.
    last_stamp: float | None = None
    step: float = 60.0
    forecaster: Forecaster | None = None
    fitted_at: float | None = None
    #: samples appended since the last fit, not yet folded into the forecaster.
    pending: list[pd.Series] = field(default_factory=list)
    #: the newest finite sample (the current rate) and its stamp.
    current_rate: float | None = None
    last: Decision | None = None
    #: forecasts by horizon for the current data; cleared when new samples arrive.
    cache: dict[int, Forecast] = field(default_factory=dict)
    #: ln of the adaptive price of a miss, in load units (see ``covered_load``); None
    #: until the first forecast with a spread.
    log_price: float | None = None
    #: the tail width of the newest forecast (load units), for bounding ``log_price``.
    width: float = 0.0
    #: recent (time, current replicas) pairs: what may be ready now.
    replica_log: deque[tuple[float, int]] = field(default_factory=deque)
    #: when a budget or maxReplicas last held the decision below what the forecast
    #: asked for (see ``note_clamp``); misses then are not the price's fault.
    clamped_at: float | None = None

    @property
    def history(self) -> pd.Series:
        if self._tail:
            parts = [self._history, *self._tail] if not self._history.empty else self._tail
            merged = parts[0] if len(parts) == 1 else pd.concat(parts)
            self._tail.clear()
            if len(merged) > 64:
                span = (merged.index[-1] - merged.index[0]).total_seconds()
                if span > self.keep_seconds * 1.25:
                    edge = merged.index[-1] - pd.Timedelta(seconds=self.keep_seconds)
                    merged = merged[merged.index > edge]
            self._history = merged
        return self._history

    @history.setter
    def history(self, value: pd.Series) -> None:
        self._tail.clear()
        self._history = value
        if value.empty:
            self.last_stamp = None
            return
        self.last_stamp = float(value.index[-1].timestamp())
        if len(value) >= 2:
            self.step = float((value.index[-1] - value.index[-2]).total_seconds())
        finite = value.to_numpy(dtype=float)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            self.current_rate = float(finite[-1])


@dataclass(frozen=True)
class Decision:
    """One immutable decision record: inputs, forecast, desired, clamped, reasons, time."""

    workload: str
    time: float
    current_replicas: int
    forecast: Forecast | None
    desired_replicas: int
    replicas: int
    binding_constraint: BindingConstraint = "none"
    reason: str = ""
    fallback: bool = False

    def clamped(self, replicas: int, constraint: BindingConstraint, reason: str) -> Decision:
        return replace(self, replicas=replicas, binding_constraint=constraint, reason=reason)


def _append(state: WorkloadState, new: pd.Series, now: float, keep_seconds: float) -> pd.Series:
    """Append samples to the history, refusing anything later than ``now`` (causality)
    or not newer than what is held. Returns the samples actually appended."""
    if new.empty:
        return new
    stamps = unix_seconds(new.index)
    keep = stamps <= now
    if state.last_stamp is not None:
        keep &= stamps > state.last_stamp
    if not keep.all():
        new, stamps = new[keep], stamps[keep]
        if new.empty:
            return new
    if new.dtype != float:
        new = new.astype(float)
    if stamps.size >= 2:
        state.step = float(stamps[-1] - stamps[-2])
    elif state.last_stamp is not None:
        state.step = float(stamps[-1] - state.last_stamp)
    state.last_stamp = float(stamps[-1])
    state.keep_seconds = keep_seconds
    state._tail.append(new)
    values = new.to_numpy()
    finite = values[np.isfinite(values)]
    if finite.size:
        state.current_rate = float(finite[-1])
    return new


def replicas_for(load: float, spec: ScalingSpec) -> int:
    """Replicas needed to serve ``load`` at the spec's target utilisation."""
    if spec.capacity_per_replica is None:
        return 0  # unknown capacity: callers never go below what runs on this
    per_replica = spec.capacity_per_replica * spec.target_utilization
    if load <= 0 or per_replica <= 0:
        return 0
    return math.ceil(load / per_replica - 1e-9)


def _ready_floor(state: WorkloadState, now: float, current: int, lead: float) -> int:
    """A lower bound on the replicas Ready now: the fewest asked for over the lead time.

    A pod asked for less than a start-up ago may not be Ready yet, and a pod removed is
    gone at once, so the minimum of the recent counts is what can be relied on.
    """
    log = state.replica_log
    log.append((now, current))
    while log and log[0][0] <= now - lead:
        log.popleft()
    return min(n for _, n in log)


def _adapt_price(
    state: WorkloadState,
    spec: ScalingSpec,
    now: float,
    y_now: float,
    current: int,
    ready_now: int | None = None,
) -> None:
    """Adaptive conformal inference on the under-provisioning we actually caused.

    At every tick the current load is compared with the capacity that is Ready: the
    workload's own count of Ready replicas when the caller knows it (``ready_now``, the
    target's ``status.readyReplicas``), else a lower bound on it (``_ready_floor``, which
    counts pods asked for within the last lead time as not Ready yet and so sees a miss
    at the very tick a scale-up lands in time). A miss when the load exceeds it.
    ``ln(price)`` rises by ``adapt_rate * (1 - risk_target)`` per missed tick and falls
    by ``adapt_rate * risk_target`` per covered one, so the long-run share of
    under-provisioned ticks is the target. Ticks held down by a cap (a budget,
    maxReplicas) are not counted: they say nothing about the forecast, and raising the
    price would only ask for more of what the cap refuses.
    """
    floor = _ready_floor(state, now, current, spec.lead_seconds)
    ready = floor if ready_now is None else ready_now
    if state.log_price is None:
        return
    if state.clamped_at is not None and now - state.clamped_at <= spec.lead_seconds:
        return
    capacity = spec.capacity_per_replica or 0.0
    miss = 1.0 if y_now > ready * capacity * spec.target_utilization else 0.0
    log_price = state.log_price + spec.adapt_rate * (miss - spec.risk_target)
    if state.width > 0.0:
        # Between covering the median and MAX_TAIL_WIDTHS tail widths above it: a long
        # calm must not wind the price down so far that the first surge takes hundreds
        # of missed ticks to undo (the old margin k had the same floor at 0).
        low = math.log(2.0 * state.width)
        log_price = min(max(log_price, low), low + MAX_TAIL_WIDTHS)
    state.log_price = log_price


#: the cover stays within this many tail widths above the median. Replicas are bounded
#: anyway (a decision at maxReplicas or under a budget stops the adaptation:
#: ``note_clamp``); this only keeps the price finite. (The earlier margin ``k`` was capped
#: at 6 spreads, about 10 tail widths, until the held-out ``cron_batch_1min`` showed it
#: stopping short of the risk target.)
MAX_TAIL_WIDTHS = 48.0


def tail_width(median: float, upper: float, risk_quantile: float) -> float:
    """Scale ``s`` of an exponential upper tail through the forecast's q0.5 and q_risk.

    ``P(peak > q0.5 + x) = 0.5 exp(-x / s)``, so ``s = (q_risk - q0.5) / ln(0.5 / (1 -
    risk))``: at risk 0.9, one tail width is (q0.9 - q0.5) / ln 5.
    """
    return max(0.0, upper - median) / math.log(0.5 / (1.0 - risk_quantile))


def covered_load(median: float, width: float, log_price: float | None) -> tuple[float, float]:
    """The load to cover and the chance of exceeding it, given the price of a miss.

    Cost is linear in the load we cover, a miss costs ``price``: the cheapest cover
    stops where the forecast's density falls to ``1 / price``. With the exponential
    tail of ``tail_width``, that is ``q0.5 + s ln(price / 2s)`` (never below the
    median), and the chance of a miss there is ``s / price``. So a forecast with a
    narrow tail is covered to a high quantile (cheap) and a wide one (a burst, an
    unforecastable surge) to a lower one: the time-share of misses is spent where
    buying it down costs most. One price per workload, adapted online, sets the level.
    """
    if width <= 0.0 or log_price is None:
        return median, 0.0 if width <= 0.0 else 0.5
    lead = log_price - math.log(2.0 * width)
    if lead <= 0.0:
        return median, 0.5
    return median + width * lead, 0.5 * math.exp(-lead)


def decide(
    now: float,
    spec: ScalingSpec,
    state: WorkloadState,
    new_samples: pd.Series,
    current_replicas: int,
    ready_replicas: int | None = None,
) -> Decision:
    """Decide the replica count for one workload at time ``now``.

    ``new_samples`` are the load samples (rate per second) observed since the last call,
    each stamped with the time it became known. A sample is taken as the current rate
    from its stamp until the next sample is due one step later (what the HPA assumes of
    its own metrics). Samples stamped later than ``now`` are ignored: nothing from the
    future leaks in. The load to cover over ``[now, now + lead]`` is the larger of the
    current rate (a reactive floor) and the forecast of the peak over the part of that
    window not yet observed, covered as far as the adaptive price of a miss makes worth
    it (``covered_load``); the price adapts online to the workload's own
    under-provisioning: the load against ``ready_replicas`` (the Ready count, when the
    caller knows it). The returned decision is before the cost guard; ``state`` is
    updated in place.
    """
    appended = _append(state, new_samples, now, spec.history_seconds)
    if not appended.empty:
        state.pending.append(appended)
    if state.current_rate is None or state.last_stamp is None:
        desired = max(current_replicas, spec.min_replicas)
        decision = Decision(
            workload=spec.key,
            time=now,
            current_replicas=current_replicas,
            forecast=None,
            desired_replicas=desired,
            replicas=min(desired, spec.max_replicas),
            reason="no load history yet: holding current replicas",
            fallback=True,
        )
        state.last = decision
        return decision
    if spec.capacity_per_replica is None:
        return _hold_unknown_capacity(now, spec, state, current_replicas)
    step = state.step
    due = state.fitted_at is None or now - state.fitted_at >= spec.refit_seconds
    if state.forecaster is None or due:
        state.forecaster = make_forecaster(spec.model).fit(state.history)
        state.fitted_at = now
        state.pending.clear()
        state.cache.clear()
    elif state.pending:
        new = state.pending[0] if len(state.pending) == 1 else pd.concat(state.pending)
        state.forecaster.update(new)
        state.pending.clear()
        state.cache.clear()
    y_now = state.current_rate
    _adapt_price(state, spec, now, y_now, current_replicas, ready_replicas)
    last_stamp = state.last_stamp
    # The last sample covers [stamp, stamp + step); what follows is unobserved.
    horizon = math.ceil((now + spec.lead_seconds - last_stamp - step) / step - 1e-9)
    # Between two samples the exact horizon shrinks tick by tick; forecasting the longest
    # one for the whole step costs one prediction per sample instead of one per tick,
    # at the price of covering at most one step more than needed.
    horizon = max(horizon, math.ceil(spec.lead_seconds / step - 1e-9)) if horizon >= 1 else 0
    forecast: Forecast | None = None
    load = y_now
    if horizon >= 1:
        forecast = state.cache.get(horizon)
        if forecast is None:
            levels = sorted({0.5, spec.risk_quantile})
            forecast = state.forecaster.predict(horizon, levels)
            state.cache[horizon] = forecast
        median = forecast.quantile(0.5)
        width = tail_width(median, forecast.quantile(spec.risk_quantile), spec.risk_quantile)
        if state.log_price is None and width > 0.0:
            # Start at the risk quantile itself (q0.5 + s ln 5 at 0.9), then adapt.
            state.log_price = math.log(width) + math.log(1.0 / (1.0 - spec.risk_quantile))
        state.width = width
        cover, risk = covered_load(median, width, state.log_price)
        load = max(y_now, cover)
        basis = (
            f"forecast peak over the next {spec.lead_seconds:g}s: q0.5 {median:.4g}/s + "
            f"{(cover - median) / width if width > 0 else 0.0:.2f} tail widths of "
            f"{width:.3g}/s, a {risk:.2%} chance of more"
        )
    else:
        basis = f"the next {spec.lead_seconds:g}s lie within the current sample: no forecast"
    desired = replicas_for(load, spec)
    reason = (
        f"covering {load:.4g}/s (current {y_now:.4g}/s; {basis}) "
        f"with {spec.capacity_per_replica:g}/s per replica at {spec.target_utilization:.0%}"
    )
    replicas, constraint = desired, "none"
    if desired < spec.min_replicas:
        replicas, constraint = spec.min_replicas, "min"
        reason += f"; raised to minReplicas {spec.min_replicas}"
    elif desired > spec.max_replicas:
        replicas, constraint = spec.max_replicas, "max"
        reason += f"; capped at maxReplicas {spec.max_replicas}"
        note_clamp(state, now)
    decision = Decision(
        workload=spec.key,
        time=now,
        current_replicas=current_replicas,
        forecast=forecast,
        desired_replicas=desired,
        replicas=replicas,
        binding_constraint=constraint,  # type: ignore[arg-type]
        reason=reason,
    )
    state.last = decision
    return decision


def _hold_unknown_capacity(
    now: float, spec: ScalingSpec, state: WorkloadState, current_replicas: int
) -> Decision:
    """No capacity per replica (omitted and not learnt yet): hold what runs.

    Without a capacity no load converts into replicas, so nothing is forecast and
    nothing scales down; the history keeps growing, and the forecaster is fitted on all
    of it once the capacity is known.
    """
    state.pending.clear()
    state.cache.clear()
    state.forecaster = None
    state.fitted_at = None
    desired = max(current_replicas, spec.min_replicas)
    replicas = min(desired, spec.max_replicas)
    note = spec.capacity_note or "no calibration yet"
    decision = Decision(
        workload=spec.key,
        time=now,
        current_replicas=current_replicas,
        forecast=None,
        desired_replicas=desired,
        replicas=replicas,
        binding_constraint="max" if replicas < desired else "none",
        reason=(
            f"capacity not learnt yet: {note}; holding the {current_replicas} replicas"
            " running (no capacity never scales down)"
        ),
    )
    state.last = decision
    return decision


def note_clamp(state: WorkloadState, now: float) -> None:
    """Record that a cap (the cost guard, maxReplicas) held this workload below its
    decision at ``now``; callers applying the cost guard call it when it clamps."""
    state.clamped_at = now


def served_value(
    replicas: int,
    current_replicas: int,
    tolerance: float = HPA_TOLERANCE,
    ceiling: int | None = None,
) -> float:
    """The external-metric value (``AverageValue`` target 1) whose HPA outcome is ``replicas``.

    The HPA proposes ``ceil(value)`` replicas, but only when ``value / current`` lies
    outside its inclusive tolerance band ``[1 - tol, 1 + tol]`` (upstream
    ``Tolerances.isWithin``). A change inside the band cannot be expressed: going up we
    serve the smallest value (in milli-units, as the HPA computes) that escapes it, so
    we never end up short, unless that would pass ``ceiling`` (a hard budget's
    allocation), in which case we hold; going down we hold the current count.
    """
    if current_replicas <= 0 or replicas == current_replicas:
        return float(max(replicas, 0))
    ratio = replicas / current_replicas
    if not (1.0 - tolerance <= ratio <= 1.0 + tolerance):
        return float(replicas)
    if replicas > current_replicas:
        escape = math.floor(current_replicas * 1000 * (1.0 + tolerance)) + 1
        if ceiling is None or math.ceil(escape / 1000) <= ceiling:
            return escape / 1000
    return float(current_replicas)
