"""``decide()``: from a workload's load history to the replica count it should run.

This is the one decision path. The controller calls it every sync with real history
from Prometheus; the simulator calls it with a simulated clock and replayed history.
Nothing in here reads the wall clock, does I/O, or knows which of the two is calling.

Flow: history -> forecaster (quantile of the peak over the lead window) -> replicas
needed at the risk quantile -> ``Decision``. The cost guard (``policies``) then clamps
decisions across an environment, and ``served_value`` turns the final replica count
into the external-metric value whose HPA outcome is exactly that count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import pandas as pd

from models.base import Forecast, Forecaster
from models.registry import make_forecaster

BindingConstraint = Literal["none", "budget", "min", "max"]

#: The HPA controller's default tolerance (``--horizontal-pod-autoscaler-tolerance``).
HPA_TOLERANCE = 0.1


@dataclass(frozen=True)
class ScalingSpec:
    """What ``decide`` needs to know about one workload (from the PredictiveAutoscaler)."""

    namespace: str
    name: str
    #: load units per second that one replica serves at 100 % CPU.
    capacity_per_replica: float
    #: utilisation we plan for at the risk quantile (0-1]; 0.85 keeps p99 latency
    #: under the SLO in the platform's M/M/c model.
    target_utilization: float = 0.85
    min_replicas: int = 1
    max_replicas: int = 100
    #: seconds between a decision and new capacity being ready: pod start-up + one sync.
    lead_seconds: float = 105.0
    #: quantile of the peak load over the lead window that capacity must cover.
    risk_quantile: float = 0.9
    #: forecaster registry name.
    model: str = "auto"
    #: refit the forecaster this often (seconds of simulated or real time).
    refit_seconds: float = 3600.0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class WorkloadState:
    """Mutable per-workload state that the caller keeps between calls to ``decide``."""

    history: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    forecaster: Forecaster | None = None
    fitted_at: float | None = None
    fitted_len: int = 0
    last: Decision | None = None
    #: forecasts by horizon for the current data; cleared when new samples arrive.
    cache: dict[int, Forecast] = field(default_factory=dict)


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


def _append(history: pd.Series, new: pd.Series, now: float) -> pd.Series:
    """Append samples, refusing anything later than ``now`` (causality guard)."""
    if new.empty:
        return history
    cutoff = pd.Timestamp(now, unit="s", tz="UTC")
    new = new[new.index <= cutoff]
    if not history.empty:
        new = new[new.index > history.index[-1]]
    if new.empty:
        return history
    return new.astype(float) if history.empty else pd.concat([history, new.astype(float)])


def _step_seconds(y: pd.Series) -> float:
    if len(y) < 2:
        return 60.0
    return float((y.index[-1] - y.index[-2]).total_seconds())


def replicas_for(load: float, spec: ScalingSpec) -> int:
    """Replicas needed to serve ``load`` at the spec's target utilisation."""
    per_replica = spec.capacity_per_replica * spec.target_utilization
    if load <= 0 or per_replica <= 0:
        return 0
    return math.ceil(load / per_replica - 1e-9)


def decide(
    now: float,
    spec: ScalingSpec,
    state: WorkloadState,
    new_samples: pd.Series,
    current_replicas: int,
) -> Decision:
    """Decide the replica count for one workload at time ``now``.

    ``new_samples`` are the load samples (rate per second) observed since the last call,
    each stamped with the time it became known, i.e. the END of the interval it averages
    (Prometheus' evaluation time; for a trace row, its start plus one step). Samples
    stamped later than ``now`` are ignored. The forecast covers everything not yet
    observed up to ``now + lead_seconds``: from the last sample's stamp onwards. The
    returned decision is before the cost guard; ``state`` is updated in place.
    """
    state.history = _append(state.history, new_samples, now)
    y = state.history
    if y.empty or not y.notna().any():
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
    step = _step_seconds(y)
    due = state.fitted_at is None or now - state.fitted_at >= spec.refit_seconds
    if state.forecaster is None or due:
        state.forecaster = make_forecaster(spec.model).fit(y)
        state.fitted_at = now
        state.cache.clear()
    elif len(y) > state.fitted_len:
        state.forecaster.update(y.iloc[state.fitted_len :])
        state.cache.clear()
    state.fitted_len = len(y)
    last_stamp = float(y.index[-1].timestamp())
    horizon = max(1, math.ceil((now + spec.lead_seconds - last_stamp) / step - 1e-9))
    forecast = state.cache.get(horizon)
    if forecast is None:
        forecast = state.forecaster.predict(horizon, [spec.risk_quantile])
        state.cache[horizon] = forecast
    load = forecast.quantile(spec.risk_quantile)
    desired = replicas_for(load, spec)
    replicas, constraint, reason = (
        desired,
        "none",
        (
            f"q{spec.risk_quantile:g} of peak load over {spec.lead_seconds:g}s is {load:.4g}/s; "
            f"{spec.capacity_per_replica:g}/s per replica at {spec.target_utilization:.0%}"
        ),
    )
    if desired < spec.min_replicas:
        replicas, constraint = spec.min_replicas, "min"
        reason += f"; raised to minReplicas {spec.min_replicas}"
    elif desired > spec.max_replicas:
        replicas, constraint = spec.max_replicas, "max"
        reason += f"; capped at maxReplicas {spec.max_replicas}"
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


def served_value(replicas: int, current_replicas: int, tolerance: float = HPA_TOLERANCE) -> float:
    """The external-metric value (``AverageValue`` target 1) whose HPA outcome is ``replicas``.

    The HPA proposes ``ceil(value)`` replicas, but only when ``value / current`` lies
    outside its inclusive tolerance band ``[1 - tol, 1 + tol]`` (upstream
    ``Tolerances.isWithin``). A change inside the band cannot be expressed: going up we
    serve the smallest value (in milli-units, as the HPA computes) that escapes it, so
    we never end up short; going down we hold the current count.
    """
    if current_replicas <= 0 or replicas == current_replicas:
        return float(max(replicas, 0))
    ratio = replicas / current_replicas
    if not (1.0 - tolerance <= ratio <= 1.0 + tolerance):
        return float(replicas)
    if replicas > current_replicas:
        return (math.floor(current_replicas * 1000 * (1.0 + tolerance)) + 1) / 1000
    return float(current_replicas)
