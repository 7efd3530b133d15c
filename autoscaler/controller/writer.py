"""Kubernetes writes: the owned HPA, PredictiveAutoscaler and CostBudget statuses, Events.

Only the leader writes, and it asks again right before every single write: a leader
whose lease lapsed mid-tick (its renew deadline passed) stops at once, before anyone
else can take over. Writes are skipped when nothing that matters changed, with a full
resync every ``loop.resync_seconds``: 1,000 autoscalers must not cost 2,000 API
requests per tick (client-go's default budget is 5 QPS).

Callers: ``autoscaler.controller.loop``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from autoscaler.controller.learning import KnobInUse
from autoscaler.controller.results import WorkloadResult
from autoscaler.controller.workload import Workload
from autoscaler.kube.cluster import Cluster
from autoscaler.kube.events import rfc3339
from autoscaler.logging import log_event
from autoscaler.settings import ControllerSettings
from models.errors import AutoscalerError
from policies.objects import (
    Condition,
    CostBudgetStatus,
    PredictiveAutoscalerStatus,
    ValueInUse,
)
from policies.tick import EnvironmentResult, TickEvent

LOG = logging.getLogger("autoscaler.controller")


class Writer:
    """Writes a tick's results to the cluster, as long as this instance leads."""

    def __init__(
        self,
        settings: ControllerSettings,
        cluster: Cluster,
        is_leader: Callable[[], bool],
        dry_run: bool,
        log: logging.Logger = LOG,
    ) -> None:
        self.log = log
        self.settings = settings
        self.cluster = cluster
        self.is_leader = is_leader
        self.dry_run = dry_run
        #: writes not made because leadership was lost mid-tick.
        self.dropped = 0

    def may_write(self) -> bool:
        """Asked before every write: a lapsed lease stops writing at once."""
        if self.dry_run:
            return False
        if self.is_leader():
            return True
        self.dropped += 1
        return False

    def events(
        self, now: float, events: list[TickEvent], workloads: Mapping[str, Workload]
    ) -> None:
        for ev in events:
            w = workloads.get(ev.key)
            if w is not None and self.may_write():
                try:
                    self.cluster.event(w.pa, ev.reason, ev.message, now, ev.kind)
                except AutoscalerError as err:
                    self.log.warning("event %s on %s failed: %s", ev.reason, ev.key, err)

    def write(
        self,
        now: float,
        results: list[WorkloadResult],
        envs: list[EnvironmentResult],
        workloads: Mapping[str, Workload],
        errors: list[str],
    ) -> None:
        """Leader-only writes; each failure is logged and the rest go on."""
        loop = self.settings.loop
        for r in results:
            w = workloads[r.key]
            try:
                if (
                    loop.manage_hpas
                    and r.mode == "Active"
                    and (
                        w.hpa_written is None
                        or w.hpa_written[0] != r.ceiling
                        or now - w.hpa_written[1] >= loop.resync_seconds
                    )
                    and self.may_write()
                ):
                    self.cluster.ensure_hpa(w.pa, r.ceiling)
                    w.hpa_written = (r.ceiling, now)
                d = r.decision
                essentials = (
                    d.replicas,
                    d.desired_replicas,
                    d.binding_constraint,
                    d.fallback,
                    r.ceiling,
                    r.current_replicas,
                    w.pa.metadata.generation,
                    r.capacity,
                    r.lead_time,
                )
                if (
                    w.status_written is None
                    or w.status_written[0] != essentials
                    or now - w.status_written[1] >= loop.status_interval_seconds
                ) and self.may_write():
                    self.cluster.patch_status(w.pa, status_of(w, r, now))
                    w.status_written = (essentials, now)
            except AutoscalerError as err:
                errors.append(f"write {r.key}: {err}")
                log_event(
                    self.log, "kube_error", f"{r.key}: {err}", logging.WARNING, workload=r.key
                )
        for env in envs:
            if env.error:
                # Without the ledger the spend is unknown: writing the status would
                # overwrite the spend a new leader seeds its ledger from with $0.
                continue
            if not self.may_write():
                break
            try:
                self.cluster.patch_budget_status(env.budget, budget_status_of(env, now))
            except AutoscalerError as err:
                errors.append(f"write CostBudget {env.budget}: {err}")


def budget_status_of(env: EnvironmentResult, now: float) -> CostBudgetStatus:
    """The CostBudget status for one environment's tick."""
    condition = Condition(
        type="OverBudget",
        status="True" if env.clamped or env.infeasible else "False",
        reason="Clamped" if env.clamped else "WithinBudget",
        message="; ".join(env.alerts)[:1000],
        last_transition_time=rfc3339(now),
    )
    return CostBudgetStatus(
        spend_dollars=round(env.spend, 6),
        projection_dollars=round(env.projection, 6),
        hourly_cost_dollars=round(env.hourly_cost, 6),
        infeasible=env.infeasible,
        clamped_workloads=list(env.clamped),
        last_update_time=rfc3339(now),
        conditions=[condition],
    )


def status_of(w: Workload, r: WorkloadResult, now: float) -> PredictiveAutoscalerStatus:
    """The PredictiveAutoscaler status for one workload's tick."""
    d = r.decision
    stamp = rfc3339(now)
    # ``model_construct``: the loop's own values need no validation, and building the
    # status every minute for 1,000 workloads (or every simulated minute) must be cheap.
    return PredictiveAutoscalerStatus.model_construct(
        observed_generation=w.pa.metadata.generation,
        last_decision_time=stamp,
        current_replicas=r.current_replicas,
        desired_replicas=d.desired_replicas,
        replicas=d.replicas,
        served_value=r.served,
        forecast_load=round(r.forecast_load or 0.0, 6),
        risk_quantile=r.risk_quantile,
        forecaster=r.model,
        binding_constraint=d.binding_constraint,
        reason=d.reason[:1000],
        fallback_active=d.fallback,
        budget_ceiling=r.ceiling,
        capacity_per_replica=_in_use(r.capacity),
        lead_time_seconds=_in_use(r.lead_time),
        conditions=[
            Condition.model_construct(
                type="Ready",
                status="True",
                reason="Serving" if r.mode == "Active" else "ForecastOnly",
                message=f"{d.replicas} replicas ({d.binding_constraint})",
                last_transition_time=stamp,
            ),
            Condition.model_construct(
                type="Fallback",
                status="True" if d.fallback else "False",
                reason="DataMissing" if d.fallback else "DataFresh",
                message=d.reason[:500] if d.fallback else "",
                last_transition_time=stamp,
            ),
        ],
    )


def _in_use(knob: KnobInUse | None) -> ValueInUse | None:
    if knob is None:
        return None
    return ValueInUse.model_construct(
        value=round(knob.value, 6) if knob.value is not None else 0.0,
        source=knob.source,
        low=None if knob.low is None else round(knob.low, 6),
        high=None if knob.high is None else round(knob.high, 6),
        detail=knob.detail[:500],
    )
