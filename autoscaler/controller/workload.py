"""What the controller keeps about one PredictiveAutoscaler between ticks.

The decision path's part (``policies.tick.LoopState``: forecaster state, fallback,
clamps) plus the controller's own: where its history fetch stands, forecasts awaiting
their outcome, and what was last written to the API.

Callers: ``autoscaler.controller.loop``, ``.history``, ``.writer``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from autoscaler.controller.learning import KnobInUse, Learnt, capacity_in_use, lead_in_use
from autoscaler.controller.results import WorkloadResult
from models.registry import FORECASTERS
from policies.decision import ScalingSpec
from policies.knobs import DEFAULT_LEAD_SECONDS
from policies.objects import PredictiveAutoscaler
from policies.tick import LoopState


@dataclass
class Workload(LoopState):
    """One PredictiveAutoscaler as the controller tracks it."""

    #: end of the last successful query covering this workload (None: never fetched).
    fetched_until: float | None = None
    #: start of the oldest window fetched, and how far back the backfill should go.
    backfilled_from: float | None = None
    backfill_target: float | None = None
    #: forecasts awaiting their outcome: (made at, due at, forecast load).
    pending: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=64))
    #: what was last written to the API (to skip writes that change nothing).
    hpa_written: tuple[int, float] | None = None  # (ceiling, when)
    status_written: tuple[tuple[Any, ...], float] | None = None  # (essentials, when)
    result: WorkloadResult | None = None
    #: labels of the served series (``autoscaler.kube.hpa.metric_labels``).
    metric_labels: dict[str, str] = field(default_factory=dict)
    #: what calibration learnt (None: the spec gives both the capacity and lead time).
    learnt: Learnt | None = None
    #: the capacity and lead time the spec uses, where they came from (status, explain).
    capacity_use: KnobInUse | None = None
    lead_use: KnobInUse | None = None


def scaling_spec(
    pa: PredictiveAutoscaler,
    refit_seconds: float,
    fallback_model: str,
    history_seconds: float = 14 * 86400.0,
    learnt: Learnt | None = None,
) -> ScalingSpec:
    """The pure decision path's view of a PredictiveAutoscaler.

    ``history_seconds`` (what ``decide`` keeps) is the Prometheus backfill window, so
    history fetched is history kept. A capacity or lead time the spec omits comes from
    ``learnt`` (``autoscaler.controller.learning``); a capacity known from neither is
    None, with the reason in ``capacity_note``.
    """
    s = pa.spec
    capacity = capacity_in_use(pa, learnt)
    model = s.forecaster if s.forecaster in FORECASTERS else fallback_model
    return ScalingSpec(
        namespace=pa.metadata.namespace,
        name=pa.metadata.name,
        capacity_per_replica=capacity.value,
        target_utilization=s.target_utilization,
        min_replicas=s.min_replicas,
        max_replicas=s.max_replicas,
        lead_seconds=lead_in_use(pa, learnt).value or DEFAULT_LEAD_SECONDS,
        risk_quantile=s.risk_quantile,
        risk_target=s.risk_target,
        model=model,
        refit_seconds=refit_seconds,
        history_seconds=history_seconds,
        capacity_note="" if capacity.value is not None else capacity.detail,
    )
