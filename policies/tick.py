"""One tick of the decision path: decide -> fallback -> cost guard -> serve.

This is the whole of what the controller decides each sync, and nothing else: no I/O,
no clock, no logging. ``autoscaler.controller`` gathers what it read (load samples,
targets, objects, the ledgers) and calls ``plan_tick``; it then publishes the served
values and writes the results to the cluster. The simulator runs that same controller
with a simulated clock, a trace-replay source and an emulated cluster, so a simulated
decision and a production one come from this one function.

Per workload (``decide_workload``):

1. the samples newer than the last one taken (``take_samples``) go to
   ``policies.decision.decide``;
2. **fallback** when data is *missing*: the query failed, the newest finite sample is
   older than ``stale_after`` seconds, or there is no history yet. The last good
   decision is held for ``spec.fallback.holdSeconds``, then the spec's mode applies
   (``CurrentReplicas``, ``Static``, ``Reactive``). Whatever the mode, a fallback
   decision is never below the replicas running now: missing data never scales down.

Per environment (``guard_environment``), every workload a CostBudget covers at once:

3. the allocation request (forecasts, priorities, prices from the targets' requests;
   a workload whose target was never readable is held at what runs, since its price is
   unknown), ``policies.costguard.allocate``, ``note_clamp`` on every clamped workload
   (a miss while a cap held us down must not raise the price of a miss), the spend
   accrued into the ledger from the replicas that ran, and the month-end projection;
4. the owned HPA's ``maxReplicas``: a binding hard budget's allocation, else the spec's
   ``maxReplicas``;
5. the served value (``served_value``), which never escapes the HPA's tolerance band
   past a hard budget's allocation.

A ledger that cannot be read (``ledger_error``) stops only the cost guard: budgeted
workloads are held at their last allocation (at most what runs when there is none),
and every other workload is decided and served as usual.

Callers: ``autoscaler.controller`` (and through it the simulator), tests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

import numpy as np
import pandas as pd

from models.common import unix_seconds
from models.errors import AutoscalerError
from policies.budget import (
    AllocationRequest,
    AllocationResult,
    BudgetRequest,
    CostBudget,
    ForecastRequest,
    WorkloadRequest,
)
from policies.costguard import allocate, replica_prices
from policies.decision import (
    Decision,
    ScalingSpec,
    WorkloadState,
    decide,
    note_clamp,
    replicas_for,
    served_value,
)
from policies.ledger import LedgerState, accrue, month_key, project
from policies.nodepools import NodePool, pricing_pool
from policies.objects import Budget, PredictiveAutoscaler, TargetInfo
from policies.prices import Prices

#: Environment name of workloads no CostBudget covers (no cost guard, no ledger).
NO_BUDGET = ""

EventKind = Literal["Normal", "Warning"]


@dataclass
class LoopState:
    """What the decision path keeps about one PredictiveAutoscaler between ticks."""

    pa: PredictiveAutoscaler
    spec: ScalingSpec
    state: WorkloadState = field(default_factory=WorkloadState)
    #: unix time of the newest finite sample taken into the history.
    last_sample: float | None = None
    #: when data was first seen missing (None while data flows).
    missing_since: float | None = None
    fallback: bool = False
    #: the last decision made on fresh data (held during fallback).
    last_good: Decision | None = None
    #: whether the cost guard held this workload down at the last tick.
    budget_clamped: bool = False
    #: the allocation of the last tick the cost guard ran (held if the ledger breaks).
    last_allocation: int | None = None
    #: one replica's requests as last read from the target (pricing survives an
    #: unreadable target; None: never read, so the price is unknown).
    known_requests: dict[str, str] | None = None
    #: the node pool its pod template requires, as last read (prices spot pools).
    known_pool: NodePool | None = None
    #: input series behind a complete sum (the most seen since the last legitimate
    #: change), and since when fewer are behind a fallen sum (partial data).
    series_baseline: float | None = None
    #: (stamp, value) of the complete sums of the last ``PARTIAL_LOOKBACK_SECONDS``.
    recent_complete: deque[tuple[float, float]] = field(default_factory=deque)
    partial_since: float | None = None
    partial_reason: str = ""
    #: since when the load has been far below the forecast made before it fell, and
    #: that forecast (the reference until the fall is confirmed or over).
    drop_since: float | None = None
    drop_reference: Decision | None = None

    @property
    def key(self) -> str:
        return self.pa.key


@dataclass(frozen=True)
class Observation:
    """What the controller read for one workload this tick."""

    #: the source's series for this workload (None: the query returned nothing for it).
    series: pd.Series | None
    #: input series behind each step's sum, aligned with ``series`` (None: unknown).
    series_count: np.ndarray | None = None
    #: why the data is missing ("" when the query worked).
    data_error: str = ""
    #: the scaled target as read now (None: it could not be read).
    target: TargetInfo | None = None
    #: replicas running now (the target's, else what was last seen or decided).
    current: int = 0


@dataclass(frozen=True)
class TickEvent:
    """A state change worth a Kubernetes Event and a log line (the controller emits it)."""

    key: str
    reason: str
    message: str
    kind: EventKind


@dataclass(frozen=True)
class WorkloadPlan:
    """One workload's outcome of a tick: what is served, and why."""

    key: str
    environment: str
    decision: Decision
    #: the value served on the External Metrics API (0 for ForecastOnly).
    served: float
    #: the owned HPA's maxReplicas.
    ceiling: int
    hourly_cost: float
    budget_reason: str = ""
    data_error: str = ""
    observed_load: float | None = None


@dataclass(frozen=True)
class EnvironmentResult:
    """One environment's outcome of a tick: the guard's cap and the ledger."""

    name: str
    budget: str
    hourly_cap: float | None
    hourly_cost: float
    infeasible: bool
    spend: float
    projection: float
    monthly_limit: float | None
    clamped: tuple[str, ...]
    alerts: tuple[str, ...]
    #: why the cost guard could not run ("" when it did).
    error: str = ""


@dataclass(frozen=True)
class TickPlan:
    """Everything ``plan_tick`` decided, for the controller to publish and write."""

    workloads: dict[str, WorkloadPlan]
    environments: list[EnvironmentResult]
    events: list[TickEvent]
    #: whether any ledger changed (the leader persists them).
    ledgers_changed: bool


#: the "no new samples" answer (building an empty Series costs more than a decision).
_EMPTY = pd.Series(dtype=float)


def take_samples(w: LoopState, series: pd.Series | None) -> pd.Series:
    """Samples after the last one taken, up to the newest finite one.

    Trailing NaN (a scrape gap at the end) is not taken: those steps may still be
    filled in later, and ``decide`` never takes a sample twice. Leading NaN of the very
    first samples is not taken either (no data before a workload's first sample).
    """
    # numpy positions, not pandas masks: this runs for 1,000 workloads every tick.
    if series is None or series.empty:
        return _EMPTY
    values = series.to_numpy(dtype=float)
    finite = np.flatnonzero(np.isfinite(values))
    if not finite.size:
        return _EMPTY
    if w.last_sample is None:
        # A history starts at its first real sample: the steps before it (a first
        # fetch reaching back before the workload existed) are no data, not a gap.
        first = int(finite[0])
    else:
        first = int(np.searchsorted(unix_seconds(series.index), w.last_sample, side="right"))
    last = int(finite[-1]) + 1
    if first >= last:
        return _EMPTY
    out: pd.Series = series if first == 0 and last == len(series) else series.iloc[first:last]
    return out if out.dtype == float else out.astype(float)


def newest_value(series: pd.Series | None) -> float | None:
    """The newest finite value of ``series`` (the observed load), or None."""
    if series is None or series.empty:
        return None
    values = series.to_numpy(dtype=float)
    finite = np.flatnonzero(np.isfinite(values))
    return float(values[finite[-1]]) if finite.size else None


#: a sum that falls while fewer series are behind it is partial when it falls by at
#: least this share of the series lost (half: 2 of 4 pods gone and the sum halved is
#: partial; 6 of 12 pods scaled in and the sum unchanged is not).
PARTIAL_SHARE = 0.5
#: the fall is measured from the highest complete sum of this many seconds before: a
#: ``rate()`` over a pod that stopped being scraped fades out over its window (up to
#: Prometheus's 5-minute lookback) before its series vanishes, so the sum has already
#: been falling when the count drops.
PARTIAL_LOOKBACK_SECONDS = 300.0


def cut_partial(
    w: LoopState, now: float, new: pd.Series, obs: Observation, confirm: float
) -> tuple[pd.Series, str]:
    """The new samples up to the first partial one, and why the rest is held back.

    A sample is *partial* when fewer input series are behind its sum than before
    (``series_baseline``) and the sum fell with them (``PARTIAL_SHARE``): pods that stop
    being scraped (overloaded pods fail scrapes first) look like less load. Partial
    samples are missing data, not less load, until the lower count has lasted
    ``confirm`` seconds; then it is the new normal (pods really gone and load really
    lower). Fewer series with the sum holding up (a scale-in) is accepted at once.
    """
    counts = obs.series_count
    if counts is None or new.empty or obs.series is None:
        # Nothing new to judge (no query this tick): a partial state goes on.
        if w.partial_since is not None and now - w.partial_since < confirm:
            return new, w.partial_reason
        return new, ""
    stamps = unix_seconds(new.index)
    all_stamps = unix_seconds(obs.series.index)
    pos = np.searchsorted(all_stamps, stamps)
    pos = np.clip(pos, 0, len(counts) - 1)
    c_new = np.asarray(counts, dtype=float)[pos]
    values = new.to_numpy(dtype=float)
    base = w.series_baseline
    recent = w.recent_complete
    for i in range(len(values)):
        c, v, s = float(c_new[i]), float(values[i]), float(stamps[i])
        if not np.isfinite(c) or not np.isfinite(v):
            continue
        while recent and recent[0][0] < s - PARTIAL_LOOKBACK_SECONDS:
            recent.popleft()
        if base is None or c >= base:
            base = c
            recent.append((s, v))
            w.partial_since = None
            continue
        ref = max((x for _, x in recent), default=None)
        fell = ref is not None and v < ref * (1.0 - PARTIAL_SHARE * (1.0 - c / base))
        if not fell:
            base = c  # fewer series, same load: pods scaled in
            recent.clear()
            recent.append((s, v))
            continue
        if w.partial_since is None:
            w.partial_since = s
        if now - w.partial_since >= confirm:
            base = c  # it lasted: the lower count is the new normal
            recent.clear()
            recent.append((s, v))
            w.partial_since = None
            continue
        w.series_baseline = base
        w.partial_reason = (
            f"partial data: {c:g} of {base:g} series behind the sum and the load fell"
            f" to {v:.4g}/s; held as missing data for up to {confirm:g}s"
        )
        return new.iloc[:i], w.partial_reason
    w.series_baseline = base
    return new, ""


def hold_sudden_drop(w: LoopState, now: float, base: Decision, confirm: float) -> Decision:
    """Hold the replicas while a sudden fall far below the forecast is unconfirmed.

    Far below: the current load under the median of the forecast made before the fall
    by more than two of its upper-tail widths (and under three quarters of it). Until
    the fall has lasted ``confirm`` seconds, the decision does not go below the last
    one made before it; afterwards it is real and replicas follow it down.
    """
    ref = w.drop_reference or w.last_good
    y = w.state.current_rate
    if confirm <= 0 or ref is None or ref.forecast is None or y is None or base.fallback:
        w.drop_since = w.drop_reference = None
        return base
    median = ref.forecast.quantiles.get(0.5)
    upper = ref.forecast.quantiles.get(w.spec.risk_quantile)
    if median is None or upper is None:  # the spec's quantile changed since: no reference
        w.drop_since = w.drop_reference = None
        return base
    floor = median - 2.0 * max(upper - median, 0.0)
    if not (y < floor and y < 0.75 * median):
        w.drop_since = w.drop_reference = None
        return base
    if w.drop_since is None:
        w.drop_since, w.drop_reference = now, ref
    held = min(ref.replicas, max(base.current_replicas, base.replicas))
    if now - w.drop_since >= confirm or base.replicas >= held:
        return base
    return base.clamped(
        held,
        base.binding_constraint,
        f"{base.reason}; a sudden drop to {y:.4g}/s, far below the forecast of"
        f" {median:.4g}/s made before it, holds {held} replicas until it has lasted"
        f" {confirm:g}s ({now - w.drop_since:.0f}s so far)",
    )


def decide_workload(
    w: LoopState, now: float, obs: Observation, stale_after: float, events: list[TickEvent]
) -> Decision:
    """``decide`` on the new samples, or the fallback when data is missing."""
    confirm = w.pa.spec.fallback.confirm_seconds
    new, partial = cut_partial(w, now, take_samples(w, obs.series), obs, confirm)
    if partial:
        obs = Observation(obs.series, obs.series_count, partial, obs.target, obs.current)
    if not new.empty:
        w.last_sample = float(unix_seconds(new.index[-1:])[0])
    ready = None if obs.target is None else obs.target.ready
    base = decide(now, w.spec, w.state, new, obs.current, ready)
    fresh = (
        not obs.data_error
        and w.last_sample is not None
        and now - w.last_sample <= stale_after
        and not base.fallback
    )
    if fresh:
        if w.fallback:
            since = w.missing_since if w.missing_since is not None else now
            w.fallback = False
            w.missing_since = None
            events.append(
                TickEvent(
                    w.key, "FallbackEnded", f"Load data is back after {now - since:.0f}s", "Normal"
                )
            )
        held = hold_sudden_drop(w, now, base, confirm)
        if w.drop_since is None:
            w.last_good = base
        return held
    w.drop_since = w.drop_reference = None
    return fallback_decision(w, now, base, obs.current, obs.data_error, events)


def fallback_decision(
    w: LoopState,
    now: float,
    base: Decision,
    current: int,
    data_error: str,
    events: list[TickEvent],
) -> Decision:
    """The named fallback policy: hold, then the spec's mode; never below ``current``."""
    fb = w.pa.spec.fallback
    why = data_error or (
        "no load data yet"
        if w.last_sample is None
        else f"newest sample is {now - w.last_sample:.0f}s old"
    )
    if not w.fallback:
        w.fallback = True
        w.missing_since = now
        events.append(
            TickEvent(
                w.key,
                "FallbackStarted",
                f"Load data missing ({why}); holding, then {fb.mode}",
                "Warning",
            )
        )
    since = w.missing_since if w.missing_since is not None else now
    elapsed = now - since
    spec = w.spec
    if elapsed < fb.hold_seconds and w.last_good is not None:
        replicas = w.last_good.replicas
        how = f"holding the last decision ({replicas}) for {fb.hold_seconds:g}s"
    elif fb.mode == "Static" and fb.static_replicas > 0:
        replicas = fb.static_replicas
        how = f"fallback Static: {replicas} replicas"
    elif fb.mode == "Reactive":
        last = w.state.history.dropna()
        load = float(last.iloc[-1]) if not last.empty else 0.0
        replicas = min(max(replicas_for(load, spec), spec.min_replicas), spec.max_replicas)
        how = f"fallback Reactive: last load {load:.4g}/s needs {replicas}"
    else:
        replicas = current
        how = f"fallback CurrentReplicas: {current}"
    if replicas < current:
        # The one rule that matters most: missing data never scales down.
        how += f"; kept at the {current} running (missing data never scales down)"
        replicas = current
    return Decision(
        workload=spec.key,
        time=now,
        current_replicas=current,
        forecast=base.forecast,
        desired_replicas=replicas,
        replicas=replicas,
        binding_constraint="none",
        reason=f"load data missing ({why}); {how}",
        fallback=True,
    )


def workload_priority(budget: CostBudget, pa: PredictiveAutoscaler) -> int:
    """The cost-guard priority of ``pa`` under ``budget``: a tier that lists its namespace
    or its ``namespace/name`` wins; else the autoscaler's own ``spec.priority`` if set;
    else the tiers' labels or the budget's ``defaultPriority``."""
    meta = pa.metadata
    tiered = any(
        meta.namespace in t.namespaces or pa.key in t.workloads for t in budget.priority_tiers
    )
    if tiered or not pa.spec.priority:
        return budget.priority_of(meta.namespace, meta.name, dict(meta.labels))
    return pa.spec.priority


def environment_of(pa: PredictiveAutoscaler, budgets: Sequence[Budget]) -> str:
    """The CostBudget ``pa`` is charged to: its ``budgetRef`` if that budget exists, else
    the first whose selector matches; ``NO_BUDGET`` when none."""
    if pa.spec.budget_ref:
        return (
            pa.spec.budget_ref if any(b.name == pa.spec.budget_ref for b in budgets) else NO_BUDGET
        )
    for b in budgets:
        if b.spec.selector.matches(pa.metadata.namespace, dict(pa.metadata.labels)):
            return b.name
    return NO_BUDGET


def allocation_request(
    budget: Budget,
    members: Sequence[LoopState],
    decisions: Mapping[str, Decision],
    when: datetime,
    spent: Decimal,
    hold: Mapping[str, int],
) -> AllocationRequest:
    """The cost guard's request for one environment: every member, with its forecast,
    priority and price; ``hold`` caps what unpriceable workloads may ask for."""
    spec = budget.spec
    workloads: list[WorkloadRequest] = []
    for w in members:
        key = w.key
        d = decisions[key]
        priority = workload_priority(spec, w.pa)
        forecast = None
        capacity = w.spec.capacity_per_replica
        if d.forecast is not None and not d.fallback and capacity is not None:
            q = w.spec.risk_quantile
            forecast = ForecastRequest(
                capacity_per_replica=capacity * w.spec.target_utilization,
                quantiles={str(k): float(v) for k, v in d.forecast.quantiles.items()}
                or {str(q): d.forecast.quantile(q)},
            )
        pool, _warning = pricing_pool(
            w.known_pool or NodePool(), spec.node_pools, explicit=w.pa.spec.node_pool
        )
        workloads.append(
            WorkloadRequest(
                name=key,
                node_pool=pool.name,
                spot=pool.spot,
                priority=priority,
                min_replicas=w.spec.min_replicas,
                max_replicas=max(w.spec.max_replicas, d.replicas),
                # A fallback decision (never below current) is what the guard clamps;
                # an unpriceable one (``hold``) asks for no more than what runs.
                desired_replicas=min(d.replicas, hold.get(key, d.replicas)),
                requests=dict(w.known_requests or {}),
                forecast=forecast,
            )
        )
    return AllocationRequest(
        budget=BudgetRequest(
            hourly_limit=spec.hourly_limit,
            monthly_limit=spec.monthly_limit,
            spent_this_month=float(spent),
            now=when,
            pacing=spec.pacing,
            mode=spec.mode,
        ),
        prices=spec.prices.apply(Prices()) if spec.prices is not None else None,
        node_pools=dict(spec.node_pools),
        workloads=workloads,
    )


@dataclass(frozen=True)
class _Clamp:
    """The guard's outcome for one workload: decision, HPA ceiling, cost, reason."""

    decision: Decision
    ceiling: int
    hourly_cost: float
    reason: str
    #: the allocation when the budget is hard (the served value never escapes past it).
    hard_allocation: int | None


def guard_environment(
    now: float,
    budget: Budget,
    members: Sequence[LoopState],
    decisions: Mapping[str, Decision],
    observations: Mapping[str, Observation],
    ledgers: dict[str, LedgerState],
    ledger_error: str = "",
) -> tuple[EnvironmentResult, dict[str, _Clamp]]:
    """Clamp one environment's decisions to its budget; accrue its spend."""
    env = budget.name
    spec = budget.spec
    when = datetime.fromtimestamp(now, UTC)
    out: dict[str, _Clamp] = {}
    if ledger_error:
        return _guard_without_ledger(budget, members, decisions, ledger_error, out), out
    # A target that cannot be read, and never could, has no price: the budget cannot
    # limit what it does not know the cost of, so such a workload is held at what runs
    # until its target can be read (priced at $0 it would escape).
    hold: dict[str, int] = {}
    for w in members:
        target = observations[w.key].target
        if target is not None:
            w.known_requests = dict(target.requests)
            w.known_pool = target.node_pool
        elif w.known_requests is None:
            hold[w.key] = max(decisions[w.key].current_replicas, w.spec.min_replicas)
    ledger = ledgers.get(env)
    spent = ledger.spent if ledger is not None and ledger.month == month_key(when) else Decimal(0)
    try:
        request = allocation_request(budget, members, decisions, when, spent, hold)
        result: AllocationResult = allocate(request, now=when)
    except AutoscalerError as err:
        return _guard_without_ledger(budget, members, decisions, str(err), out), out
    prices = replica_prices(request)
    ledger = ledger or LedgerState.start(when)
    ran = {w.key: t.replicas for w in members if (t := observations[w.key].target) is not None}
    ledger, _note = accrue(ledger, ran, {k: prices[k] for k in ran}, when)
    ledgers[env] = ledger
    # The one month-end projection (policies.ledger.project), as `budget report` makes it.
    projection = project(
        ledger, when, monthly_limit=spec.monthly_limit, thresholds=spec.alert_thresholds
    )
    clamped: list[str] = []
    for w, alloc in zip(members, result.workloads, strict=True):
        key = w.key
        d = decisions[key]
        # A hard budget that binds is also the owned HPA's maxReplicas, so nothing can
        # push past the allocation. One that does not bind leaves maxReplicas alone:
        # tracking every allocation would rewrite the HPA each tick and cut through its
        # scale-down stabilisation.
        held = key in hold and alloc.replicas < d.replicas
        binds = alloc.binding_constraint == "budget" or held
        ceiling = alloc.replicas if spec.mode == "hard" and binds else w.spec.max_replicas
        if held:
            clamped.append(key)
            why = (
                f"held at the {hold[key]} replicas running: the target cannot be"
                " read, so its price per replica is unknown and the budget cannot"
                " pay for more; it is priced again once the target can be read"
            )
            d = d.clamped(alloc.replicas, "budget", f"{d.reason}; {why}")
        elif alloc.binding_constraint == "budget" and alloc.replicas < d.replicas:
            clamped.append(key)
            d = d.clamped(alloc.replicas, "budget", f"{d.reason}; {alloc.reason}")
        if d.binding_constraint == "budget":
            # A miss while the budget held us down is not the forecast's fault.
            note_clamp(w.state, now)
        w.last_allocation = alloc.replicas
        out[key] = _Clamp(
            d,
            max(1, ceiling),
            alloc.hourly_cost,
            alloc.reason,
            max(1, alloc.replicas) if spec.mode == "hard" else None,
        )
    env_result = EnvironmentResult(
        name=spec.environment,
        budget=env,
        hourly_cap=result.hourly_cap,
        hourly_cost=result.hourly_cost,
        infeasible=result.infeasible,
        spend=float(ledger.spent) if ledger.month == month_key(when) else 0.0,
        projection=projection.projected,
        monthly_limit=spec.monthly_limit,
        clamped=tuple(clamped),
        alerts=tuple(result.alerts) + tuple(projection.alerts),
    )
    return env_result, out


def _guard_without_ledger(
    budget: Budget,
    members: Sequence[LoopState],
    decisions: Mapping[str, Decision],
    error: str,
    out: dict[str, _Clamp],
) -> EnvironmentResult:
    """The cost guard cannot run: hold every member at its last allocation.

    Without the spend, the budget left is unknown, so nothing may grow past what the
    guard last allowed (a workload the guard never saw may not grow past what runs).
    Shrinking stays allowed: it costs less.
    """
    spec = budget.spec
    clamped: list[str] = []
    for w in members:
        d = decisions[w.key]
        limit = w.last_allocation
        if limit is None:
            limit = max(d.current_replicas, w.spec.min_replicas)
        if d.replicas > limit:
            clamped.append(w.key)
            d = d.clamped(
                limit,
                "budget",
                f"{d.reason}; held at the last allocation ({limit}): the cost guard"
                f" cannot run ({error})",
            )
            note_clamp(w.state, d.time)
        ceiling = limit if spec.mode == "hard" else w.spec.max_replicas
        out[w.key] = _Clamp(
            d,
            max(1, ceiling),
            0.0,
            f"cost guard unavailable: {error}",
            max(1, limit) if spec.mode == "hard" else None,
        )
    return EnvironmentResult(
        name=spec.environment,
        budget=budget.name,
        hourly_cap=None,
        hourly_cost=0.0,
        infeasible=False,
        spend=0.0,
        projection=0.0,
        monthly_limit=spec.monthly_limit,
        clamped=tuple(clamped),
        alerts=(f"cost guard unavailable: {error}",),
        error=error,
    )


def plan_tick(
    now: float,
    workloads: Mapping[str, LoopState],
    observations: Mapping[str, Observation],
    assignments: Mapping[str, str],
    budgets: Sequence[Budget],
    ledgers: dict[str, LedgerState],
    stale_after: float,
    ledger_error: str = "",
) -> TickPlan:
    """Decide, fall back, guard and serve every workload at ``now``.

    ``assignments`` maps each workload to its environment (a CostBudget's name, or
    ``NO_BUDGET``); ``ledgers`` is updated in place with the spend accrued.
    """
    events: list[TickEvent] = []
    decisions: dict[str, Decision] = {}
    for key, w in workloads.items():
        decisions[key] = decide_workload(w, now, observations[key], stale_after, events)
    by_name = {b.name: b for b in budgets}
    envs: dict[str, list[LoopState]] = {}
    for key, env in assignments.items():
        if env != NO_BUDGET and env in by_name and key in workloads:
            envs.setdefault(env, []).append(workloads[key])
    clamps: dict[str, _Clamp] = {}
    env_results: list[EnvironmentResult] = []
    for env, members in sorted(envs.items()):
        result, out = guard_environment(
            now, by_name[env], members, decisions, observations, ledgers, ledger_error
        )
        env_results.append(result)
        clamps.update(out)
    plans: dict[str, WorkloadPlan] = {}
    for key, w in workloads.items():
        obs = observations[key]
        c = clamps.get(key)
        decision = decisions[key] if c is None else c.decision
        clamped = decision.binding_constraint == "budget"
        if clamped != w.budget_clamped:
            w.budget_clamped = clamped
            events.append(
                TickEvent(
                    key,
                    "BudgetClampStarted" if clamped else "BudgetClampEnded",
                    (c.reason if c is not None and c.reason else "")
                    if clamped
                    else "within budget again",
                    "Warning" if clamped else "Normal",
                )
            )
        current = decision.current_replicas
        active = w.pa.spec.mode == "Active"
        served = (
            served_value(decision.replicas, current, ceiling=c.hard_allocation if c else None)
            if active
            else 0.0
        )
        plans[key] = WorkloadPlan(
            key=key,
            environment=assignments.get(key, NO_BUDGET),
            decision=decision,
            served=served,
            ceiling=c.ceiling if c is not None else w.spec.max_replicas,
            hourly_cost=c.hourly_cost if c is not None else 0.0,
            budget_reason=c.reason if c is not None else "",
            data_error=obs.data_error,
            observed_load=newest_value(obs.series),
        )
    return TickPlan(plans, env_results, events, bool(envs) and not ledger_error)
