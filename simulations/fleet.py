"""Several workloads, one controller: the multi-workload replay.

``simulations.strategies.predictive`` replays one PredictiveAutoscaler. A cost guard
with priority tiers needs several: which workload keeps its replicas when the budget
binds is decided across the environment. ``replay_fleet`` runs the same world pieces
(``simulations.world``) with every workload in it:

* one ``SimClock``, one ``TraceSource`` with one key per workload and a ``scale``
  factor per key (the workload's **share** of the trace), one ``SimCluster`` holding
  every PredictiveAutoscaler, CostBudget and target, and one controller from the
  factory (``autoscaler.cli.simworld.controller_for``): the code ``autoscaler run``
  runs, reconciling every workload in one tick;
* per workload its own pods (``simulations.pods.PodSet``) and emulated HPA
  (``simulations.hpa.HorizontalController``), fed the served value exactly as the
  ``predictive`` strategy feeds it: an External metric with an ``AverageValue``
  target of 1, bounded by the ``maxReplicas`` the controller wrote.

Each workload's demand is the trace times its share. Each tick runs the steps of
``simulations.engine.run_ticks`` for every workload at once: pods become Ready, the
cluster is told what runs, the controller reconciles once, each HPA syncs, each
ReplicaSet scales. With one workload of share 1 this is the ``predictive`` strategy's
run, tick for tick (a test checks it).

``score_fleet`` scores each workload as ``simulations.report`` scores a timeline
(``simulations.scoring.score_run``: tau_U against ``Ready x capacity x
slo_utilization``, SLO-violation minutes from the M/M/c p99) and prices the pods that
ran at the member's price.

Callers: ``autoscaler.cli.frontier`` (``autoscaler budget frontier``), tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from models.errors import InputError
from policies.budget import CostBudget, pool_prices
from policies.objects import Budget, PredictiveAutoscaler
from policies.prices import Prices, replica_hourly_price
from policies.tick import environment_of as tick_environment
from policies.tick import workload_priority
from simulations import scoring
from simulations.engine import Demand, Timeline, initial_replicas, p99_latency
from simulations.hpa import HorizontalController
from simulations.pods import PodSet
from simulations.workloads import Workload
from simulations.world import (
    ControllerFactory,
    Outage,
    SimCluster,
    SimTarget,
    observed_step,
    owned_hpa_sync,
    world_for,
)


@dataclass(frozen=True)
class FleetMember:
    """One workload of the fleet: its autoscaler, its simulated workload, its share."""

    autoscaler: PredictiveAutoscaler
    #: capacity, bounds, start-up and requests (``autoscaler.cli.objects``).
    workload: Workload
    #: one replica's requests, as the controller reads them from the target.
    requests: Mapping[str, str]
    #: the target's ``spec.replicas`` when the replay starts (None: enough for the
    #: first demand at 70 %, as the engine starts every policy).
    replicas: int | None = None
    #: this workload's demand is the trace times this.
    share: float = 1.0
    #: $ per hour of one replica (None: the requests at OpenCost's default prices).
    price: float | None = None

    @property
    def key(self) -> str:
        return self.autoscaler.key

    @property
    def target_key(self) -> tuple[str, str]:
        return (self.autoscaler.metadata.namespace, self.autoscaler.spec.target_ref.name)

    @property
    def hourly_price(self) -> float:
        return self.workload.hourly_price if self.price is None else self.price


@dataclass(frozen=True)
class Fleet:
    """The workloads and the CostBudgets of one replay."""

    members: tuple[FleetMember, ...]
    budgets: tuple[Budget, ...] = ()

    def __post_init__(self) -> None:
        if not self.members:
            raise InputError("fleet", "no workloads", "give at least one PredictiveAutoscaler")
        keys = [m.key for m in self.members]
        if len(set(keys)) != len(keys):
            raise InputError("fleet", f"a PredictiveAutoscaler is given twice: {keys}", "")
        targets = [m.target_key for m in self.members]
        if len(set(targets)) != len(targets):
            raise InputError(
                "fleet", "two PredictiveAutoscalers scale the same target", "give one each"
            )
        for m in self.members:
            if not (m.share >= 0 and np.isfinite(m.share)):
                raise InputError(f"share of {m.key}", f"{m.share} is not a share >= 0", "")


@dataclass
class FleetRun:
    """A fleet replay: each workload's timeline (by autoscaler key) and each budget's
    spend and hourly cost as the controller reported them every tick."""

    timelines: dict[str, Timeline]
    spend: dict[str, np.ndarray] = field(default_factory=dict)
    hourly_cost: dict[str, np.ndarray] = field(default_factory=dict)


def replay_fleet(
    demand: Demand,
    fleet: Fleet,
    controller: ControllerFactory,
    *,
    outages: Sequence[Outage] = (),
    refit_seconds: float | None = None,
    progress: Callable[[int], None] | None = None,
    name: str = "predictive",
) -> FleetRun:
    """Replay ``demand`` (the whole trace) through every workload and one controller."""
    members = fleet.members
    targets = {m.target_key: SimTarget(dict(m.requests)) for m in members}
    cluster = SimCluster([m.autoscaler for m in members], list(fleet.budgets), targets)
    scale = {m.target_key: m.share for m in members if m.share != 1.0}
    step = observed_step(demand.observed, demand.step_seconds)
    world = world_for(
        demand.observed,
        demand.start,
        demand.tick_seconds,
        step,
        cluster,
        outages,
        scale,
        refit_seconds,
    )
    clock = world.clock
    ctl = controller(world)
    n = len(demand)
    times = demand.times
    rates = [demand.rate * m.share for m in members]
    hpas = [HorizontalController(m.workload.min_replicas, m.workload.max_replicas) for m in members]
    pods = [PodSet(m.workload.startup.sampler().draw, m.workload.name) for m in members]
    k = len(members)
    replicas = np.zeros((k, n), dtype=np.int64)
    ready = np.zeros((k, n), dtype=np.int64)
    alive = np.zeros((k, n), dtype=np.int64)
    desired = np.zeros((k, n), dtype=np.int64)
    served = np.zeros((k, n), dtype=float)
    forecast = np.full((k, n), np.nan)
    ceiling = np.zeros((k, n), dtype=np.int64)
    fallback = np.zeros((k, n), dtype=bool)
    clamped = np.zeros((k, n), dtype=bool)
    spend = {b.name: np.zeros(n, dtype=float) for b in fleet.budgets}
    hourly = {b.name: np.zeros(n, dtype=float) for b in fleet.budgets}
    current: list[int] = []
    for j, m in enumerate(members):
        w = m.workload
        first = initial_replicas(w, float(rates[j][0])) if m.replicas is None else m.replicas
        start = min(max(int(first), w.min_replicas), w.max_replicas)
        pods[j].seed_ready(start, float(times[0]))
        current.append(start)
    report_every = max(1, n // 100)
    for i in range(n):
        now = float(times[i])
        clock.advance_to(now)
        for j, m in enumerate(members):
            pods[j].advance(now)
            targets[m.target_key].observe(current[j], pods[j])
        workloads, envs = ctl.tick()
        for j, m in enumerate(members):
            w = m.workload
            r = workloads[m.key]
            hpa = hpas[j]
            cap = cluster.hpa_max.get(m.key, w.max_replicas)
            new = owned_hpa_sync(hpa, cap, w.max_replicas, r.served, current[j], pods[j], now)
            pods[j].scale_to(new, now)
            current[j] = new
            replicas[j, i] = new
            ready[j, i] = len(pods[j].ready)
            alive[j, i] = len(pods[j].starting) + len(pods[j].ready)
            desired[j, i] = r.replicas
            served[j, i] = r.served
            forecast[j, i] = r.forecast
            ceiling[j, i] = hpa.max_replicas
            fallback[j, i] = r.fallback
            clamped[j, i] = r.budget_clamped
        for env_name, env in envs.items():
            if env_name in spend:
                spend[env_name][i] = env.spend
                hourly[env_name][i] = env.hourly_cost
        if progress is not None and i % report_every == 0:
            progress(i)
    timelines: dict[str, Timeline] = {}
    for j, m in enumerate(members):
        extra: dict[str, np.ndarray] = {
            "desired": desired[j],
            "served_value": served[j],
            "forecast": forecast[j],
            "hpa_max_replicas": ceiling[j],
            "fallback": fallback[j],
        }
        if fleet.budgets:
            extra["budget_clamped"] = clamped[j]
        timelines[m.key] = Timeline(name, times, rates[j], replicas[j], ready[j], alive[j], extra)
    return FleetRun(timelines, spend, hourly)


# ----------------------------------------------------------------------------- scores


@dataclass(frozen=True)
class WorkloadScore:
    """One workload of a fleet run, scored as ``simulations.report`` scores a policy."""

    key: str
    priority: int
    tau_u_pct: float
    slo_violation_minutes: float
    average_replicas: float
    cost_usd: float
    hours: float

    @property
    def average_hourly_cost(self) -> float:
        return self.cost_usd / self.hours if self.hours > 0 else 0.0


@dataclass(frozen=True)
class FleetScore:
    """A fleet run's figures: per workload, and the fleet's hourly cost per tick."""

    workloads: tuple[WorkloadScore, ...]
    #: $ per hour of the pods that existed in each tick (Ready or starting), summed.
    hourly_cost: np.ndarray
    #: % of workload-time under-provisioned: the mean of the workloads' tau_U.
    tau_u_pct: float
    #: SLO-violation minutes summed over the workloads (workload-minutes).
    slo_violation_minutes: float

    @property
    def average_hourly_cost(self) -> float:
        return float(self.hourly_cost.mean()) if self.hourly_cost.size else 0.0

    @property
    def peak_hourly_cost(self) -> float:
        return float(self.hourly_cost.max()) if self.hourly_cost.size else 0.0


def score_fleet(
    run: FleetRun,
    fleet: Fleet,
    tick_seconds: float,
    slo_utilization: float = scoring.DEFAULT_SLO_UTILIZATION,
    priorities: Mapping[str, int] | None = None,
) -> FleetScore:
    """Score every workload of ``run`` and sum the fleet's cost per tick."""
    scores: list[WorkloadScore] = []
    total: np.ndarray | None = None
    for m in fleet.members:
        tl = run.timelines[m.key]
        w = m.workload
        s = scoring.score_run(
            tl.demand,
            tl.ready,
            tl.alive,
            p99_latency(tl, w),
            w.capacity_rps,
            tick_seconds,
            replica_hourly_price=m.hourly_price,
            slo_utilization=slo_utilization,
            slo_seconds=w.latency.slo_p99_seconds,
        )
        cost = tl.alive.astype(float) * m.hourly_price
        total = cost if total is None else total + cost
        scores.append(
            WorkloadScore(
                key=m.key,
                priority=(priorities or {}).get(m.key, 0),
                tau_u_pct=s.elasticity.tau_u,
                slo_violation_minutes=s.slo_violation_minutes,
                average_replicas=float(tl.alive.mean()) if tl.alive.size else 0.0,
                cost_usd=s.cost,
                hours=tl.alive.size * tick_seconds / 3600.0,
            )
        )
    assert total is not None  # a Fleet has at least one member
    return FleetScore(
        workloads=tuple(scores),
        hourly_cost=total,
        tau_u_pct=float(np.mean([s.tau_u_pct for s in scores])),
        slo_violation_minutes=float(sum(s.slo_violation_minutes for s in scores)),
    )


# ------------------------------------------------------------------- budget helpers


def priority_in(budget: CostBudget, pa: PredictiveAutoscaler) -> int:
    """The cost-guard priority of ``pa`` under ``budget``, as the controller sets it
    (``policies.tick.workload_priority``)."""
    return workload_priority(budget, pa)


def tier_names(budget: CostBudget | None) -> dict[int, str]:
    """A name per priority: the budget's tier names (joined when several share one)."""
    names: dict[int, list[str]] = {}
    if budget is not None:
        for t in budget.priority_tiers:
            names.setdefault(t.priority, []).append(t.name)
    return {p: "+".join(n) for p, n in names.items()}


def replica_price(requests: Mapping[str, str], budget: CostBudget | None, node_pool: str) -> float:
    """$ per hour of one replica at the budget's prices (its node pool's, if it lists
    the autoscaler's ``nodePool``), else at OpenCost's defaults."""
    if budget is None:
        return replica_hourly_price(dict(requests), Prices())
    base = budget.prices.apply(Prices()) if budget.prices is not None else None
    pool = node_pool if node_pool in budget.node_pools else ""
    return replica_hourly_price(dict(requests), pool_prices(base, budget.node_pools, pool))


def environment_of(pa: PredictiveAutoscaler, budgets: Sequence[Budget]) -> str | None:
    """The CostBudget ``pa`` is charged to, as the controller picks it
    (``policies.tick.environment_of``); None when no budget covers it."""
    return tick_environment(pa, budgets) or None
