"""The scaling policies the simulator compares, and their registry table.

* ``hpa-cpu``: the stock HPA on CPU utilisation (default target 70 %). Ready pods report
  CPU usage equal to their share of the served demand over their capacity, capped at
  their CPU limit; starting pods report none. ``hpa.replicas_from_cpu`` applies the
  HPA's readiness and missing-metric rules to them.
* ``hpa-rps``: the stock HPA on the request rate, an External metric with an
  ``AverageValue`` target of ``capacity * target``.
* ``predictive``: ours. Every tick it calls ``policies.decision.decide`` exactly as the
  controller does, with the load samples visible by now (as rate/s; see ``Demand``),
  then the cost guard when a budget is set, then ``served_value``; that value goes
  through the emulated HPA as an External metric with ``AverageValue`` target 1, as a
  real HPA would consume our metric.
* ``oracle``: knows the future. Starts pods just in time so that Ready capacity always
  covers demand at the SLO utilisation; bypasses the HPA. The lower bound on cost at
  zero under-provisioning.
* ``static``: a fixed replica count (default: enough for the trace's peak).

A policy is named ``kind`` or ``kind@value``: ``hpa-cpu@50`` is the CPU HPA at a 50 %
target, ``hpa-rps@60`` the rate HPA at 60 % of capacity per replica, ``predictive@0.95``
the predictive policy at risk quantile 0.95, ``static@12`` twelve fixed replicas.
To add a policy: write a class with ``name`` and ``run(ctx) -> Timeline`` and add one
row to ``POLICIES``.

Callers: ``simulations.scenario``, ``simulations.sweep``, the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from policies.decision import (
    HPA_TOLERANCE,
    ScalingSpec,
    WorkloadState,
    decide,
    note_clamp,
    served_value,
)
from models.errors import InputError
from policies.budget import AllocationRequest, BudgetRequest, WorkloadRequest
from policies.costguard import allocate
from simulations.engine import Demand, TickContext, Timeline, run_ticks
from simulations.hpa import (
    HorizontalController,
    MetricUnavailable,
    PodInfo,
    replicas_from_cpu,
    replicas_from_external,
)
from simulations.workloads import Workload


class CostGuard:
    """The cost guard in the loop: ``policies.costguard.allocate`` on one workload per tick.

    Spend this month is integrated from the pods that actually existed (Ready or not),
    as the controller's ledger does; it restarts at each month boundary (UTC). A fresh
    guard per run, because it carries that spend.
    """

    def __init__(self, budget: BudgetRequest, workload: Workload) -> None:
        self.budget = budget
        self.workload = workload
        req = workload.resources.requests
        self.requests: dict[str, str | int | float] = {"cpu": req.cpu, "memory": req.memory}
        self.price = workload.hourly_price
        self.spent = budget.spent_this_month
        self._last: float | None = None
        self._month: tuple[int, int] | None = None

    def __call__(self, now: float, desired: int, pods_alive: int) -> tuple[int, str]:
        when = datetime.fromtimestamp(now, UTC)
        month = (when.year, when.month)
        if self._month is not None and month != self._month:
            self.spent = 0.0
        if self._last is not None:
            # The pods that existed since the last sync, at their hourly price.
            self.spent += pods_alive * self.price * (now - self._last) / 3600.0
        self._last, self._month = now, month
        w = self.workload
        request = AllocationRequest(
            budget=self.budget.model_copy(update={"spent_this_month": self.spent, "now": when}),
            workloads=[
                WorkloadRequest(
                    name=w.name,
                    min_replicas=w.min_replicas,
                    max_replicas=w.max_replicas,
                    desired_replicas=max(desired, w.min_replicas),
                    requests=self.requests,
                )
            ],
        )
        result = allocate(request).workloads[0]
        return result.replicas, result.reason


@dataclass
class RunContext:
    """Everything a policy run needs: the demand, the workload and the scoring rule."""

    demand: Demand
    workload: Workload
    #: the share of capacity at which a pod still meets the SLO; "under-provisioned"
    #: means demand > Ready pods x capacity x this.
    slo_utilization: float = 0.85
    #: the scenario's budget; only ``predictive`` applies it (the stock HPA cannot).
    budget: BudgetRequest | None = None
    progress: Callable[[int], None] | None = None


class Policy(Protocol):
    """A scaling policy: runs a whole replay and returns its timeline."""

    name: str

    def run(self, ctx: RunContext) -> Timeline: ...


def _pod_infos(ctx: TickContext, request: int, usage: int) -> list[PodInfo]:
    """What the metrics pipeline shows the HPA: every pod with its CPU sample."""
    pods = ctx.pods
    infos = [
        PodInfo(p.name, "Running", True, p.created, p.ready_at, False, request, usage)
        for p in pods.ready
    ]
    # A starting pod has had Ready=False since its start: the HPA counts it as unready
    # (first 5 minutes) or as never-ready (after), never as load.
    infos.extend(
        PodInfo(p.name, "Running", False, p.created, p.created, False, request, 0)
        for p in pods.starting
    )
    return infos


#: Seconds after its creation from which a Ready pod's CPU sample always counts: the
#: HPA's CPU initialisation period (300 s) plus a margin of four metric windows.
_SETTLED_SECONDS = 300.0 + 60.0


@dataclass
class HpaCpu:
    """The stock HPA on CPU utilisation (no ``behavior``: the legacy default path).

    Ready pods split the demand evenly; a pod uses its CPU request at ``capacity_rps``
    and can burst up to its limit. When every pod is Ready and past the HPA's CPU
    initialisation period, the replica calculation depends only on (current replicas,
    pod count, usage), so its result is memoised on those: the same call, made once.
    """

    target_pct: int = 70
    name: str = "hpa-cpu"
    #: memoise the replica calculation where it is a pure function (see above).
    memoize: bool = True

    def make_step(self, ctx: RunContext) -> Callable[[TickContext], int]:
        """The per-tick step (fresh HPA state): what ``run`` drives through the engine."""
        w = ctx.workload
        hpa = HorizontalController(w.min_replicas, w.max_replicas)
        request, limit, capacity = w.request_milli_cpu, w.limit_milli_cpu, w.capacity_rps
        memo: dict[tuple[int, int, int], int | None] = {}

        cached: tuple[tuple[int, int], list[PodInfo]] = ((-1, -1), [])

        def infos_for(t: TickContext, usage: int) -> list[PodInfo]:
            # PodInfo only changes with the pods or their usage; rebuild only then.
            nonlocal cached
            key = (t.pods.version, usage)
            if cached[0] != key:
                cached = (key, _pod_infos(t, request, usage))
            return cached[1]

        def proposal_for(t: TickContext, usage: int) -> int | None:
            try:
                return replicas_from_cpu(
                    t.current_replicas,
                    infos_for(t, usage),
                    self.target_pct,
                    t.now,
                    HPA_TOLERANCE,
                )
            except MetricUnavailable:
                # No usable sample (every pod unready): the HPA skips scaling this sync.
                return None

        def step(t: TickContext) -> int:
            pods = t.pods
            n = len(pods.ready)
            per_pod = t.demand / n if n else 0.0
            usage = int(min(request * per_pod / capacity, limit))
            if not self.memoize or pods.starting or t.now - pods.newest_created < _SETTLED_SECONDS:
                proposal = proposal_for(t, usage)
            else:
                key = (t.current_replicas, n, usage)
                if key not in memo:
                    memo[key] = proposal_for(t, usage)
                proposal = memo[key]
            return int(hpa.sync(t.now, t.current_replicas, [proposal]))

        return step

    def run(self, ctx: RunContext) -> Timeline:
        return run_ticks(
            ctx.demand, ctx.workload, self.name, self.make_step(ctx), progress=ctx.progress
        )


@dataclass
class HpaRps:
    """The stock HPA on request rate: External metric, ``AverageValue`` per replica."""

    target_pct: int = 70
    name: str = "hpa-rps"

    def make_step(self, ctx: RunContext) -> Callable[[TickContext], int]:
        """The per-tick step (fresh HPA state): what ``run`` drives through the engine."""
        w = ctx.workload
        hpa = HorizontalController(w.min_replicas, w.max_replicas)
        target_milli = max(1, round(w.capacity_rps * self.target_pct / 100.0 * 1000.0))

        def step(t: TickContext) -> int:
            proposal = replicas_from_external(
                t.current_replicas,
                [round(t.demand * 1000.0)],
                "AverageValue",
                target_milli,
                HPA_TOLERANCE,
                ready_pods=len(t.pods.ready),
                status_replicas=t.pods.alive,
            )
            return int(hpa.sync(t.now, t.current_replicas, [proposal]))

        return step

    def run(self, ctx: RunContext) -> Timeline:
        return run_ticks(
            ctx.demand, ctx.workload, self.name, self.make_step(ctx), progress=ctx.progress
        )


@dataclass
class PredictiveSettings:
    """Overrides of ``ScalingSpec``'s defaults; ``None`` keeps the decision path's default."""

    risk_quantile: float | None = None
    #: share of time the policy may leave the workload under-provisioned.
    risk_target: float | None = None
    model: str | None = None
    target_utilization: float | None = None
    #: seconds from decision to Ready capacity; default: the start-up p90 plus one sync.
    lead_seconds: float | None = None
    refit_seconds: float | None = None


@dataclass
class Predictive:
    """Ours: ``decide()`` -> cost guard -> ``served_value`` -> the emulated HPA."""

    settings: PredictiveSettings = field(default_factory=PredictiveSettings)
    name: str = "predictive"

    def spec(self, ctx: RunContext) -> ScalingSpec:
        w = ctx.workload
        s = self.settings
        overrides: dict[str, object] = {
            "lead_seconds": s.lead_seconds
            if s.lead_seconds is not None
            else w.startup.quantile(0.9) + ctx.demand.tick_seconds,
        }
        for key in ("risk_quantile", "risk_target", "model", "target_utilization", "refit_seconds"):
            value = getattr(s, key)
            if value is not None:
                overrides[key] = value
        return ScalingSpec(
            namespace="sim",
            name=w.name,
            capacity_per_replica=w.capacity_rps,
            min_replicas=w.min_replicas,
            max_replicas=w.max_replicas,
            **overrides,  # type: ignore[arg-type]
        )

    def run(self, ctx: RunContext) -> Timeline:
        w = ctx.workload
        spec = self.spec(ctx)
        state = WorkloadState()
        hpa = HorizontalController(w.min_replicas, w.max_replicas)
        observed = ctx.demand.observed
        # When each sample becomes visible (unix s): see ``Demand.observed``.
        known_at = np.asarray([ts.timestamp() for ts in observed.index], dtype=float)
        empty = observed.iloc[:0]
        n = len(ctx.demand)
        desired = np.zeros(n, dtype=np.int64)
        served = np.zeros(n, dtype=float)
        forecast = np.full(n, np.nan)
        fed = 0
        guard = None if ctx.budget is None else CostGuard(ctx.budget, w)
        clamped = np.zeros(n, dtype=bool)

        def step(t: TickContext) -> int:
            nonlocal fed
            # Samples visible by now: what the metric source would hold at this tick.
            upto = int(np.searchsorted(known_at, t.now, side="right"))
            new = observed.iloc[fed:upto] if upto > fed else empty
            fed = max(fed, upto)
            decision = decide(t.now, spec, state, new, t.current_replicas, t.pods.ready_count)
            replicas = decision.replicas
            ceiling: int | None = None
            if guard is not None:
                allowed, _reason = guard(t.now, replicas, t.pods.alive)
                if allowed < replicas:
                    clamped[t.i] = True
                    # As the controller does: a miss while a cap held us down is not
                    # the forecast's fault, so its margin must not adapt to it.
                    note_clamp(state, t.now)
                replicas = allowed
                if guard.budget.mode == "hard":
                    # Never escape the tolerance band past the allocation; and, as the
                    # controller does, a binding hard budget is also the owned HPA's
                    # maxReplicas (a budget that does not bind leaves it alone, so the
                    # HPA's scale-down stabilisation still works).
                    ceiling = max(1, allowed)
                    cap = ceiling if clamped[t.i] else w.max_replicas
                    hpa.max_replicas = max(hpa.min_replicas, min(cap, w.max_replicas))
            value = served_value(replicas, t.current_replicas, ceiling=ceiling)
            # Our metric as a real HPA consumes it: External, AverageValue target 1.
            proposal = replicas_from_external(
                t.current_replicas,
                [round(value * 1000.0)],
                "AverageValue",
                1000,
                HPA_TOLERANCE,
                ready_pods=len(t.pods.ready),
                status_replicas=t.pods.alive,
            )
            desired[t.i] = replicas
            served[t.i] = value
            if decision.forecast is not None:
                forecast[t.i] = decision.forecast.quantiles.get(spec.risk_quantile, np.nan)
            return int(hpa.sync(t.now, t.current_replicas, [proposal]))

        extra = {"desired": desired, "served_value": served, "forecast": forecast}
        if guard is not None:
            extra["budget_clamped"] = clamped
        return run_ticks(ctx.demand, w, self.name, step, extra, ctx.progress)


def oracle_need(rate: np.ndarray, workload: Workload, slo_utilization: float) -> np.ndarray:
    """Ready replicas needed each tick so that demand <= Ready x capacity x SLO utilisation."""
    need = np.ceil(rate / (workload.capacity_rps * slo_utilization) - 1e-9)
    return np.clip(need, workload.min_replicas, workload.max_replicas).astype(np.int64)


@dataclass
class Oracle:
    """Perfect foresight: pods start exactly one start-up time before they are needed.

    With start-up ``L`` ticks, the pods existing at tick ``i`` must cover the need of
    every tick up to ``i + L`` (a pod that must be Ready then has to exist now), so the
    cheapest schedule is the forward sliding maximum of the need; removing the newest
    pods first, the Ready count is the backward sliding minimum of that schedule over
    ``L`` ticks. With a random start-up time the oracle plans for its p99 (it may then
    be late for the slowest 1 % of pods): exact for the fixed start-ups of issue 4.
    """

    name: str = "oracle"

    def run(self, ctx: RunContext) -> Timeline:
        d = ctx.demand
        w = ctx.workload
        need = oracle_need(d.rate, w, ctx.slo_utilization)
        lag = int(math.ceil(w.startup.quantile(0.99) / d.tick_seconds - 1e-9))
        if lag > 0:
            ahead = np.concatenate([need, np.full(lag, need[-1])])
            alive = sliding_window_view(ahead, lag + 1).max(axis=1)
            behind = np.concatenate([np.full(lag, alive[0]), alive])
            ready = sliding_window_view(behind, lag + 1).min(axis=1)
        else:
            alive, ready = need.copy(), need.copy()
        return Timeline(self.name, d.times, d.rate, alive.copy(), ready, alive.copy())


@dataclass
class Static:
    """A fixed replica count; default: enough for the trace's peak at the SLO utilisation."""

    replicas: int | None = None
    name: str = "static"

    def run(self, ctx: RunContext) -> Timeline:
        w = ctx.workload
        fixed = self.replicas
        if fixed is None:
            fixed = int(oracle_need(np.array([ctx.demand.rate.max()]), w, ctx.slo_utilization)[0])
        fixed = int(min(max(fixed, w.min_replicas), w.max_replicas))

        def step(t: TickContext) -> int:
            return fixed

        return run_ticks(ctx.demand, w, self.name, step, progress=ctx.progress)


def _pct(value: str, where: str) -> int:
    try:
        pct = int(value)
    except ValueError as err:
        raise InputError(where, f"target {value!r} is not a whole percentage", "e.g. 70") from err
    if not 1 <= pct <= 1000:
        raise InputError(where, f"target {pct} % is out of range", "use 1..1000")
    return pct


def _hpa_cpu(arg: str | None, where: str) -> Policy:
    if arg is None:
        return HpaCpu()
    return HpaCpu(_pct(arg, where), name=f"hpa-cpu@{arg}")


def _hpa_rps(arg: str | None, where: str) -> Policy:
    if arg is None:
        return HpaRps()
    return HpaRps(_pct(arg, where), name=f"hpa-rps@{arg}")


def _predictive(arg: str | None, where: str) -> Policy:
    if arg is None:
        return Predictive()
    try:
        q = float(arg)
    except ValueError as err:
        raise InputError(
            where, f"quantile {arg!r} is not a number", "e.g. predictive@0.95"
        ) from err
    if not 0.5 < q < 1.0:
        raise InputError(
            where,
            f"quantile {q} is outside (0.5, 1): it measures the forecast's upper tail",
            "e.g. predictive@0.95",
        )
    return Predictive(PredictiveSettings(risk_quantile=q), name=f"predictive@{arg}")


def _oracle(arg: str | None, where: str) -> Policy:
    if arg is not None:
        raise InputError(where, "oracle takes no parameter", "write just oracle")
    return Oracle()


def _static(arg: str | None, where: str) -> Policy:
    if arg is None:
        return Static()
    try:
        n = int(arg)
    except ValueError as err:
        raise InputError(
            where, f"replicas {arg!r} is not a whole number", "e.g. static@10"
        ) from err
    if n < 1:
        raise InputError(where, f"replicas {n} < 1", "a static policy runs at least one pod")
    return Static(n, name=f"static@{arg}")


#: The registry table: policy kind -> factory(parameter or None, where).
POLICIES: dict[str, Callable[[str | None, str], Policy]] = {
    "hpa-cpu": _hpa_cpu,
    "hpa-rps": _hpa_rps,
    "predictive": _predictive,
    "oracle": _oracle,
    "static": _static,
}


def make_policy(text: str, where: str = "--policy") -> Policy:
    """A policy from ``kind`` or ``kind@value``."""
    kind, _, arg = text.strip().partition("@")
    try:
        factory = POLICIES[kind]
    except KeyError as err:
        raise InputError(
            where, f"unknown policy {kind!r}", f"choose from {', '.join(POLICIES)}"
        ) from err
    return factory(arg or None, where)


def parse_policies(text: str, where: str = "--policy") -> list[Policy]:
    """A comma-separated policy list; names must be unique."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise InputError(where, "no policy given", f"e.g. {','.join(POLICIES)}")
    if len(set(names)) != len(names):
        raise InputError(where, "a policy is listed twice", "list each policy once")
    return [make_policy(n, where) for n in names]
