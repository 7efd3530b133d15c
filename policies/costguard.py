"""The cost guard: clamp an environment's desired replicas to its budget, by priority.

Why it exists: no autoscaler turns a money budget into a replica ceiling. The
controller calls ``allocate`` every sync with *all* the workloads of one environment
at once (a budget is shared, so clamping one workload at a time cannot be fair); the
simulator calls it per tick; ``autoscaler budget allocate`` calls it on files.

The algorithm (docs/cost-guard.md has the worked example):

1. **Effective hourly cap** = ``hourlyLimit``, further limited, when a
   ``monthlyLimit`` is set, by what is left of the month: ``(monthlyLimit - spent) /
   hours left in the month`` under ``even`` pacing, or the whole remainder under
   ``none``. No limit at all means no cap.
2. Every workload keeps ``minReplicas``. If the minimums alone cost more than the cap,
   everything sits at its minimum and the result is ``infeasible`` (with an alert).
3. Tiers by priority, highest first: a tier is served up to its desired replicas
   (never beyond ``maxReplicas``) before any lower tier gets anything above its
   minimum. Lower tiers get only the leftover, including money too small to buy a
   higher-tier replica.
4. Within a tier, each next replica goes to the workload where it removes the most
   expected under-provisioning per dollar (a max-heap): with a quantile forecast, the
   drop in expected shortfall ``E[max(0, D/c - n)]`` (in replicas) from the n+1-th
   replica, the load ``D`` read off the piecewise-linear quantile function; without
   one, demand is taken as uniform between min and desired replicas, which hands out
   replicas in proportion to each workload's gap (a fair share of the shortfall).
   When the best next replica is too dear for the money left, that workload is done
   (money only goes down) and the others continue: nothing that fits is left unspent.
5. Nothing above desired. Each workload gets its binding constraint (``none``,
   ``budget``, ``min``, ``max``) and a reason in words. Ties are broken by name, so
   the same input always gives the same output.

Money is ``Decimal`` end to end, so "cost <= cap" is exact; floats appear only in the
result. Runtime is O((W + R) log W) for W workloads and R replicas handed out.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from models.errors import InputError
from policies.budget import (
    AllocationRequest,
    AllocationResult,
    BindingConstraint,
    BudgetRequest,
    ForecastRequest,
    WorkloadAllocation,
    WorkloadRequest,
)
from policies.prices import money

_SECONDS_PER_HOUR = Decimal(3600)


# ------------------------------------------------------------------------------ cap


def month_start(now: datetime) -> datetime:
    """First instant of ``now``'s calendar month, in UTC."""
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def next_month_start(now: datetime) -> datetime:
    """First instant of the calendar month after ``now``'s, in UTC."""
    now = now.astimezone(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def hours_left_in_month(now: datetime) -> Decimal:
    """Exact hours from ``now`` to the end of its UTC month (always > 0)."""
    delta = next_month_start(now) - now.astimezone(UTC)
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(micros) / Decimal(1_000_000) / _SECONDS_PER_HOUR


@dataclass(frozen=True)
class HourlyCap:
    """The effective hourly cap and how it came about (for reasons and alerts)."""

    #: $ per hour; None = no limit.
    cap: Decimal | None
    #: what the monthly limit alone allows per hour (None without a monthly limit).
    paced: Decimal | None
    hours_left: Decimal
    explanation: str


def effective_hourly_cap(budget: BudgetRequest, now: datetime) -> HourlyCap:
    """``hourlyLimit``, further limited by the month's remainder (see module doc)."""
    hours_left = hours_left_in_month(now)
    hourly = None if budget.hourly_limit is None else money(budget.hourly_limit)
    paced: Decimal | None = None
    if budget.monthly_limit is not None:
        remaining = max(Decimal(0), money(budget.monthly_limit) - money(budget.spent_this_month))
        paced = remaining / hours_left if budget.pacing == "even" else remaining
    if hourly is None and paced is None:
        return HourlyCap(None, None, hours_left, "no hourly or monthly limit")
    if paced is None or (hourly is not None and hourly <= paced):
        assert hourly is not None
        text = f"hourlyLimit ${_d(hourly)}/h"
        if paced is not None:
            text += f" (the monthly pacing allows ${_d(paced)}/h)"
        return HourlyCap(hourly, paced, hours_left, text)
    if budget.pacing == "even":
        text = (
            f"monthly pacing: ${_d(money(budget.monthly_limit or 0))} limit"
            f" - ${_d(money(budget.spent_this_month))} spent"
            f" over {hours_left:.1f} h left = ${_d(paced)}/h"
        )
    else:
        text = f"monthly remainder ${_d(paced)} (no pacing)"
    return HourlyCap(paced, paced, hours_left, text)


def _distinct(a: Decimal, b: Decimal) -> tuple[str, str]:
    """``a`` and ``b`` as money with just enough decimals to tell them apart."""
    fa, fb = float(a), float(b)  # float formatting is ~10x cheaper than Decimal's
    for places in range(2 if min(abs(fa), abs(fb)) >= 1 else 4, 11):
        ta, tb = f"{fa:.{places}f}", f"{fb:.{places}f}"
        if ta != tb:
            return ta, tb
    return f"{fa:.10f}", f"{fb:.10f}"


def _d(value: Decimal, places: int = 4) -> str:
    """Money for humans: 4 decimals, trailing zeros kept to 2 (``12.50``, ``0.0200``)."""
    return f"{value:.{places}f}" if abs(value) < 1 else f"{value:.2f}"


# ------------------------------------------------------------------ shortfall model


class _Shortfall:
    """Expected shortfall in replicas, E[max(0, D/c - n)], from a quantile forecast.

    The quantile function Q(u) of D/c is piecewise linear through the given points;
    constant below the lowest level (the low tail does not matter for shortfall) and
    extrapolated along the last segment above the highest (a heavier upper tail than
    "nothing above the top quantile"), never below zero.
    """

    __slots__ = ("_segments",)
    _segments: tuple[tuple[float, float, float, float, float], ...]

    def __init__(self, forecast: ForecastRequest) -> None:
        pts = [(u, v / forecast.capacity_per_replica) for u, v in forecast.points()]
        segs: list[tuple[float, float, float]] = []  # (width, a, b)
        u0, v0 = pts[0]
        segs.append((u0, v0, v0))
        for u1, v1 in pts[1:]:
            segs.append((u1 - u0, v0, v1))
            u0, v0 = u1, v1
        if len(pts) >= 2:
            (ua, va), (ub, vb) = pts[-2], pts[-1]
            slope = (vb - va) / (ub - ua)
            segs.append((1.0 - ub, vb, max(0.0, vb + slope * (1.0 - ub))))
        else:
            segs.append((1.0 - u0, v0, v0))
        # (width, a, b, hi, lo): hi/lo precomputed, this runs once per replica handed out
        self._segments = tuple((w, a, b, max(a, b), min(a, b)) for w, a, b in segs if w > 0)

    def __call__(self, n: float) -> float:
        total = 0.0
        for width, a, b, hi, lo in self._segments:
            if hi <= n:
                continue
            if lo >= n:
                total += width * ((a + b) / 2.0 - n)
            else:  # crosses n: a triangle above it
                h = hi - n
                total += 0.5 * h * h * width / (hi - lo)
        return total


class _UniformGap:
    """No forecast: demand uniform between min and desired replicas (a fair share)."""

    __slots__ = ("_lo", "_hi")

    def __init__(self, lo: int, hi: int) -> None:
        self._lo, self._hi = lo, hi

    def __call__(self, n: float) -> float:
        gap = self._hi - n
        if gap <= 0:
            return 0.0
        return gap * gap / (2.0 * (self._hi - self._lo))


# ----------------------------------------------------------------------- allocate


@dataclass
class _Item:
    index: int
    workload: WorkloadRequest
    price: Decimal
    lo: int
    target: int
    replicas: int
    #: why this workload stopped below target (budget) - filled in when it does
    stopped: str = ""
    #: expected shortfall at ``replicas`` (cached: each step needs it and the next one)
    shortfall: float = 0.0


def allocate(request: AllocationRequest, now: datetime | None = None) -> AllocationResult:
    """Clamp every workload's desired replicas to the budget (see the module doc).

    ``now`` is used when the request has no ``budget.now``; the caller supplies it
    (this module never reads the clock). Result workloads are in request order.
    """
    when = request.budget.now or now
    if when is None:
        raise InputError(
            "budget.now", "no time given", "set budget.now, or let the CLI use the current time"
        )
    cap = effective_hourly_cap(request.budget, when)
    items = [
        _Item(
            index=i,
            workload=w,
            price=request.prices_for(w).replica_hourly_price(w.resources()),
            lo=w.min_replicas,
            target=max(w.min_replicas, min(w.desired_replicas, w.max_replicas)),
            replicas=w.min_replicas,
        )
        for i, w in enumerate(request.workloads)
    ]
    alerts: list[str] = []
    min_cost = sum((it.price * it.lo for it in items), Decimal(0))
    target_cost = sum((it.price * it.target for it in items), Decimal(0))
    infeasible = cap.cap is not None and min_cost > cap.cap
    if infeasible:
        assert cap.cap is not None
        severity = "critical" if request.budget.mode == "hard" else "warning"
        alerts.append(
            f"{severity}: infeasible: minimum replicas cost ${_d(min_cost)}/h, more than the"
            f" cap ${_d(cap.cap)}/h ({cap.explanation}); every workload held at minReplicas"
        )
        for it in items:
            it.stopped = (
                f"infeasible budget: the minimums alone cost ${_d(min_cost)}/h"
                f" > cap ${_d(cap.cap)}/h; held at minReplicas {it.lo}"
            )
    elif cap.cap is None or target_cost <= cap.cap:
        for it in items:
            it.replicas = it.target
    else:
        _fill(items, cap.cap - min_cost)
    if cap.cap is not None and cap.paced is not None and cap.paced == 0:
        alerts.append("critical: the monthly limit is spent; only minimums can run")
    total = sum((it.price * it.replicas for it in items), Decimal(0))
    return AllocationResult(
        hourly_cap=None if cap.cap is None else float(cap.cap),
        hourly_cost=float(total),
        infeasible=infeasible,
        mode=request.budget.mode,
        alerts=alerts,
        workloads=[_describe(it, cap) for it in items],
    )


def _fill(items: Sequence[_Item], money_left: Decimal) -> None:
    """Hand out replicas above the minimums, tier by tier, best value per dollar first."""
    tiers: dict[int, list[_Item]] = {}
    for it in items:
        if it.target > it.lo:
            tiers.setdefault(it.workload.priority, []).append(it)
    for priority in sorted(tiers, reverse=True):
        heap: list[tuple[float, str, int]] = []
        curves: dict[int, _Shortfall | _UniformGap] = {}
        free: list[_Item] = []
        for it in tiers[priority]:
            if it.price == 0:
                free.append(it)  # costs nothing: no reason to hold it back
                continue
            curve: _Shortfall | _UniformGap = (
                _Shortfall(it.workload.forecast)
                if it.workload.forecast is not None
                else _UniformGap(it.lo, it.target)
            )
            curves[it.index] = curve
            it.shortfall = curve(it.replicas)
            heapq.heappush(heap, (-_value(curve, it), it.workload.name, it.index))
        for it in free:
            it.replicas = it.target
        by_index = {it.index: it for it in tiers[priority]}
        while heap:
            _, _, index = heapq.heappop(heap)
            it = by_index[index]
            if not heap and it.price <= money_left:
                # Alone in the tier now: it would be popped again and again, so buy
                # what it still wants (or what the money allows) in one step.
                count = min(it.target - it.replicas, int(money_left // it.price))
                it.replicas += count
                money_left -= it.price * count
                if it.replicas >= it.target:
                    continue
            if it.price > money_left:
                # Money only goes down from here, so this workload is done; cheaper
                # replicas of other workloads (this tier, then lower) may still fit.
                price, left = _distinct(it.price, money_left)
                it.stopped = (
                    f"the next replica costs ${price}/h but only ${left}/h"
                    f" of the cap was left at priority {priority}"
                )
                continue
            it.replicas += 1
            money_left -= it.price
            it.shortfall = curves[index](it.replicas)
            if it.replicas < it.target:
                heapq.heappush(heap, (-_value(curves[index], it), it.workload.name, index))


def _value(curve: _Shortfall | _UniformGap, it: _Item) -> float:
    """Expected under-provisioning (replicas) removed by the next replica, per $/h."""
    gain = max(0.0, it.shortfall - curve(it.replicas + 1))
    return gain / float(it.price)


def _describe(it: _Item, cap: HourlyCap) -> WorkloadAllocation:
    w = it.workload
    desired, n = w.desired_replicas, it.replicas
    constraint: BindingConstraint
    if n < it.target:
        constraint = "budget"
        reason = f"budget: {n} of the {it.target} replicas wanted"
        if desired > w.max_replicas:
            reason += f" (desired {desired}, maxReplicas {w.max_replicas})"
        reason += f"; {it.stopped or 'cap reached'}; cap {_cap_text(cap)}"
    elif desired < w.min_replicas:
        constraint = "min"
        reason = f"desired {desired} is below minReplicas {w.min_replicas}; raised to it"
    elif desired > w.max_replicas:
        constraint = "max"
        reason = f"desired {desired} is above maxReplicas {w.max_replicas}; capped at it"
    else:
        constraint = "none"
        reason = f"desired {desired} replicas fit the budget"
        if cap.cap is not None:
            reason += f" (cap {_cap_text(cap)})"
    if it.price == 0 and n > 0:
        reason += "; requests nothing priced, so it costs $0"
    return WorkloadAllocation(
        name=w.name,
        replicas=n,
        hourly_cost=float(it.price * n),
        binding_constraint=constraint,
        reason=reason,
    )


def _cap_text(cap: HourlyCap) -> str:
    if cap.cap is None:
        return "none"
    return f"${_d(cap.cap)}/h from {cap.explanation}"


def replica_prices(request: AllocationRequest) -> dict[str, Decimal]:
    """Exact $ per hour of one replica of each workload (the prices ``allocate`` uses)."""
    return {
        w.name: request.prices_for(w).replica_hourly_price(w.resources()) for w in request.workloads
    }


def expected_shortfall(forecast: ForecastRequest, replicas: float) -> float:
    """E[max(0, D/c - replicas)]: expected replicas short, from the quantile forecast."""
    if replicas < 0 or not math.isfinite(replicas):
        raise ValueError(f"replicas must be finite and >= 0, got {replicas}")
    return _Shortfall(forecast)(replicas)
