"""``predictive``: ours. The controller itself, run in a simulated world.

Nothing of the controller is re-implemented here. Each tick the strategy:

1. tells the emulated cluster what runs (``spec.replicas``, Ready pods);
2. runs one reconcile of the controller (``SimController.tick``): it lists the
   objects, fetches the load from the trace-replay source (which fails during a
   replayed outage), decides, falls back, applies the cost guard, serves a value and
   writes the owned HPA's ``maxReplicas``: the very code ``autoscaler run`` runs;
3. passes the served value through the emulated HPA as an External metric with an
   ``AverageValue`` target of 1 (as a real HPA consumes our metric), bounded by the
   ``maxReplicas`` the controller wrote.

The objects are the user's own (``simulate --objects``: their PredictiveAutoscaler,
CostBudgets and Deployment), or made from the scenario: a PredictiveAutoscaler
``sim/<workload>`` with the workload's capacity and bounds, a lead time of the
start-up p90 plus one sync unless set, and the scenario's budget as a CostBudget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from models.errors import InputError
from policies.budget import BudgetRequest, CostBudget, EnvironmentSelector
from policies.knobs import KnobOverrides
from policies.objects import (
    Budget,
    ObjectMeta,
    PredictiveAutoscaler,
    PredictiveAutoscalerSpec,
    TargetRef,
)
from simulations.clock import SimClock
from simulations.engine import TickContext, Timeline, run_ticks
from simulations.hpa import HorizontalController
from simulations.strategies.base import RunContext
from simulations.workloads import Workload
from simulations.world import (
    PodMetricsSource,
    SimCluster,
    SimTarget,
    SimWorld,
    TraceSource,
    observed_step,
    owned_hpa_sync,
)

#: the namespace of objects the simulator makes from a scenario.
SIM_NAMESPACE = "sim"


#: overrides of the PredictiveAutoscaler's knobs (``policies.knobs.KnobOverrides``).
PredictiveSettings = KnobOverrides


def scenario_autoscaler(
    workload: Workload, settings: KnobOverrides, tick_seconds: float
) -> PredictiveAutoscaler:
    """The PredictiveAutoscaler a scenario stands for."""
    spec: dict[str, object] = {
        "target_ref": TargetRef(name=workload.name),
        "query": "load",
        "capacity_per_replica": workload.capacity_rps,
        "min_replicas": workload.min_replicas,
        "max_replicas": workload.max_replicas,
        "lead_time_seconds": workload.startup.quantile(0.9) + tick_seconds,
        **settings.tuning(),
    }
    if settings.learn_capacity:
        # What users cannot know: the controller learns both (``learn_capacity``).
        spec.pop("capacity_per_replica")
        spec.pop("lead_time_seconds")
    return PredictiveAutoscaler(
        metadata=ObjectMeta(name=workload.name, namespace=SIM_NAMESPACE),
        spec=PredictiveAutoscalerSpec.model_validate(spec),
    )


def _pod_metrics(
    w: Workload,
    observed: pd.Series,
    clock: SimClock,
    key: tuple[str, str],
    ticks: int,
    ctx: RunContext,
) -> PodMetricsSource:
    """The source of a simulation that learns: the trace plus the pods' CPU."""
    if w.cpu is None:
        raise InputError(
            f"workload {w.name}",
            "the PredictiveAutoscaler leaves capacityPerReplica or leadTimeSeconds to be"
            " learnt, but the workload has no cpu model to learn them from",
            "give the workload a cpu: block (idle_millicores, millicores_per_rps)",
        )
    return PodMetricsSource(
        observed,
        clock,
        [key],
        ticks=ticks,
        idle_cores=w.cpu.idle_millicores / 1000.0,
        cores_per_load=w.cpu.millicores_per_rps / 1000.0,
        request_cores=w.request_milli_cpu / 1000.0,
        limit_cores=w.limit_milli_cpu / 1000.0,
        noise=w.cpu.noise,
        seed=w.cpu.seed,
        outages=ctx.outages,
    )


def scenario_budget(budget: BudgetRequest, start: float) -> Budget | None:
    """A scenario's budget as the CostBudget covering the ``sim`` namespace."""
    if budget.hourly_limit is None and budget.monthly_limit is None:
        return None
    spec = CostBudget(
        environment=SIM_NAMESPACE,
        selector=EnvironmentSelector(namespaces=[SIM_NAMESPACE]),
        hourly_limit=budget.hourly_limit,
        monthly_limit=budget.monthly_limit,
        pacing=budget.pacing,
        mode=budget.mode,
    )
    status: dict[str, object] = {}
    if budget.spent_this_month > 0:
        # Spend so far this month, as a CostBudget status carries it: the controller
        # seeds its ledger from it.
        status = {
            "spendDollars": budget.spent_this_month,
            "lastUpdateTime": datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    return Budget(SIM_NAMESPACE, spec, {}, status)


@dataclass
class Predictive:
    """Ours: the controller, run against the trace through the emulated HPA."""

    settings: KnobOverrides = field(default_factory=KnobOverrides)
    name: str = "predictive"

    def run(self, ctx: RunContext) -> Timeline:
        if ctx.controller is None:
            raise InputError(
                self.name,
                "no controller to run: the simulator is handed one by its caller",
                "run it through `autoscaler simulate`, or pass"
                " controller=autoscaler.cli.simworld.controller_for",
            )
        w = ctx.workload
        d = ctx.demand
        if ctx.objects is not None:
            pa = ctx.objects.autoscaler
            budgets = list(ctx.objects.budgets)
            requests = dict(ctx.objects.requests)
        else:
            pa = scenario_autoscaler(w, self.settings, d.tick_seconds)
            made = None if ctx.budget is None else scenario_budget(ctx.budget, d.start)
            budgets = [] if made is None else [made]
            req = w.resources.requests
            requests = {"cpu": req.cpu, "memory": req.memory}
        key = (pa.metadata.namespace, pa.spec.target_ref.name)
        target = SimTarget(requests)
        cluster = SimCluster([pa], budgets, {key: target})
        clock = SimClock(d.start)
        learning = pa.spec.capacity_per_replica is None or pa.spec.lead_time_seconds is None
        source = (
            _pod_metrics(w, d.observed, clock, key, len(d), ctx)
            if learning
            else TraceSource(d.observed, clock, [key], ctx.outages)
        )
        pod_metrics = source if isinstance(source, PodMetricsSource) else None
        step = observed_step(d.observed, d.step_seconds)
        world = SimWorld(
            clock=clock,
            source=source,
            cluster=cluster,
            step_seconds=step,
            step_offset_seconds=float(d.start % step),
            tick_seconds=d.tick_seconds,
            refit_seconds=self.settings.refit_seconds,
        )
        controller = ctx.controller(world)
        hpa = HorizontalController(w.min_replicas, w.max_replicas)
        n = len(d)
        desired = np.zeros(n, dtype=np.int64)
        served = np.zeros(n, dtype=float)
        forecast = np.full(n, np.nan)
        ceiling = np.zeros(n, dtype=np.int64)
        fallback = np.zeros(n, dtype=bool)
        clamped = np.zeros(n, dtype=bool)
        spend = np.zeros(n, dtype=float)
        hourly = np.zeros(n, dtype=float)
        capacity = np.full(n, np.nan)
        pa_key = pa.key

        def tick(t: TickContext) -> int:
            target.observe(t.current_replicas, t.pods)
            if pod_metrics is not None:
                if t.pods.created_log is None:
                    t.pods.created_log = pod_metrics.pods
                pod_metrics.record(t.i, t.now, t.demand, t.pods.alive, t.pods.ready_count)
            workloads, envs = controller.tick()
            r = workloads[pa_key]
            cap = cluster.hpa_max.get(pa_key, w.max_replicas)
            new = owned_hpa_sync(
                hpa, cap, w.max_replicas, r.served, t.current_replicas, t.pods, t.now
            )
            i = t.i
            desired[i] = r.replicas
            served[i] = r.served
            forecast[i] = r.forecast
            ceiling[i] = hpa.max_replicas
            fallback[i] = r.fallback
            clamped[i] = r.budget_clamped
            capacity[i] = r.capacity
            if envs:
                env = next(iter(envs.values()))
                spend[i] = env.spend
                hourly[i] = env.hourly_cost
            return new

        extra: dict[str, np.ndarray] = {
            "desired": desired,
            "served_value": served,
            "forecast": forecast,
            "hpa_max_replicas": ceiling,
            "fallback": fallback,
        }
        if learning:
            extra["capacity_learnt"] = capacity
        if budgets:
            extra["budget_clamped"] = clamped
            extra["spend_dollars"] = spend
            extra["budget_hourly_cost"] = hourly
        initial = ctx.objects.replicas if ctx.objects is not None else None
        return run_ticks(d, w, self.name, tick, extra, ctx.progress, clock, initial)
