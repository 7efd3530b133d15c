"""The spend ledger: dollars spent this month, integrated from the replicas that ran.

Why integrate rather than multiply "current cost x hours so far": replicas change
every sync, and the monthly pacing (``policies.costguard``) needs what was really
spent. ``accrue`` is pure: (previous state, replicas that ran, their hourly prices,
the end of the interval) -> new state. The replicas are taken as constant over the
interval since the last call (the caller passes what ran in it), and an interval that
crosses a month boundary is split, so the old month is closed with its exact total
and the new one starts from zero (UTC calendar months, as the monthly limit).

``project`` is THE month-end projection: the controller (its status, metric and
dashboard), ``autoscaler budget report --ledger`` and the simulated report all call
it, so they show one figure. Its method: this month's spend so far plus the current
hourly cost (what the replicas that ran in the last accrued interval cost per hour,
kept in the ledger as ``hourlyCost``) times the hours from the ledger's last accrual
to the end of the month. It does not assume the budget will be spent up to what the
pacing allows: under ``even`` pacing that figure is the monthly limit by
construction, and so tells finance nothing. docs/finance.md explains it.

Callers: the controller and the simulator (``accrue`` each tick), ``autoscaler.ledger_store``
(persists ``LedgerState`` as JSON so that a restart loses nothing), the CLI report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from policies.budget import check_time
from policies.costguard import month_start, next_month_start

#: Months kept in ``closedMonths`` (the audit trail); older ones are dropped.
KEEP_CLOSED_MONTHS = 24


def month_key(when: datetime) -> str:
    """``2026-11`` for any instant in November 2026 UTC."""
    when = when.astimezone(UTC)
    return f"{when.year:04d}-{when.month:02d}"


class LedgerState(BaseModel):
    """One environment's spend. Amounts are decimal strings: exact, and JSON-safe."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="UTC month the spend is for.")
    as_of: datetime = Field(description="End of the last interval accrued (UTC).")
    spent: Decimal = Field(default=Decimal(0), ge=0, description="$ spent this month.")
    by_workload: dict[str, Decimal] = Field(
        default_factory=dict, description="$ spent this month per workload."
    )
    closed_months: dict[str, Decimal] = Field(
        default_factory=dict, description="Month -> $ total of months already closed."
    )
    hourly_cost: Decimal | None = Field(
        default=None,
        ge=0,
        description=(
            "$ per hour of the replicas that ran in the last interval accrued: the current"
            " burn rate the month-end projection uses (unset in ledgers written before it"
            " was kept, until the next accrual)."
        ),
    )

    @field_validator("as_of")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.utcoffset() is None:
            raise ValueError("asOf has no time zone")
        return check_time(value)

    @classmethod
    def start(cls, now: datetime) -> LedgerState:
        """An empty ledger that starts counting at ``now``."""
        return cls(month=month_key(now), as_of=now)


@dataclass(frozen=True)
class AccrualNote:
    """What ``accrue`` did, for logs: how long an interval it integrated, and any skip."""

    hours: Decimal
    skipped: str = ""


def accrue(
    state: LedgerState,
    replicas: Mapping[str, int],
    replica_prices: Mapping[str, Decimal | float],
    now: datetime,
) -> tuple[LedgerState, AccrualNote]:
    """Add the spend of ``replicas`` (that ran from ``state.as_of`` to ``now``).

    ``replica_prices`` is $ per hour of one replica of each workload; a workload
    without a price is an error (a silent $0 would under-count the budget). A clock
    that went backwards accrues nothing and keeps ``as_of`` (decided: never subtract
    spend, never double count when time catches up).
    """
    now = now.astimezone(UTC)
    if now <= state.as_of:
        skipped = "clock went backwards" if now < state.as_of else ""
        return state, AccrualNote(Decimal(0), skipped)
    missing = sorted(set(replicas) - set(replica_prices))
    if missing:
        raise KeyError(f"no replica price for {missing}")
    for name, count in replicas.items():
        if count < 0:
            raise ValueError(f"{name}: replicas must be >= 0, got {count}")
    rate = {n: _dec(replica_prices[n]) * c for n, c in replicas.items() if c > 0}
    month, start = state.month, state.as_of
    spent = state.spent
    by_workload = dict(state.by_workload)
    closed = dict(state.closed_months)
    total_hours = Decimal(0)
    # Bounded: one pass per month boundary crossed, and a gap of years is absurd.
    for _ in range(12 * 100):
        boundary = next_month_start(start)
        end = min(now, boundary)
        hours = _hours(end - start)
        total_hours += hours
        for name, per_hour in rate.items():
            cost = per_hour * hours
            by_workload[name] = by_workload.get(name, Decimal(0)) + cost
            spent += cost
        if end < boundary:
            break
        closed[month] = spent
        month, start, spent, by_workload = month_key(boundary), boundary, Decimal(0), {}
    else:  # pragma: no cover - 100 years between two calls
        raise ValueError(f"interval {state.as_of} -> {now} is too long to accrue")
    for old in sorted(closed)[:-KEEP_CLOSED_MONTHS]:
        del closed[old]
    new = LedgerState(
        month=month,
        as_of=now,
        spent=spent,
        by_workload=by_workload,
        closed_months=closed,
        hourly_cost=sum(rate.values(), Decimal(0)),
    )
    return new, AccrualNote(total_hours)


def _hours(delta: timedelta) -> Decimal:
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(micros) / Decimal(3_600_000_000)


def _dec(value: Decimal | float) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(repr(float(value)))


@dataclass(frozen=True)
class Projection:
    """Month-end burn projection and alerts for one environment."""

    month: str
    spent: float
    projected: float
    #: hours from the ledger's last accrual (or the month's start) to the month's end
    hours_left: float
    monthly_limit: float | None
    #: spend so far and projected, in % of the monthly limit (None without a limit)
    spent_percent: float | None
    projected_percent: float | None
    #: thresholds (in %) that spend so far has reached
    crossed: tuple[float, ...] = ()
    alerts: tuple[str, ...] = field(default=())
    #: the current $ per hour the projection assumes from now to the month's end
    hourly_cost: float = 0.0


def project(
    state: LedgerState,
    now: datetime,
    hourly_costs: Sequence[float] | None = None,
    monthly_limit: float | None = None,
    thresholds: Sequence[float] = (50.0, 75.0, 90.0),
) -> Projection:
    """Project spend to the end of ``now``'s month: the one projection (module doc).

    projected = spend so far this month + current hourly cost x hours left, where

    * spend so far is the ledger's spend if it is for ``now``'s month (a month it has
      closed: that month's total, and nothing is left of it; a later month: $0);
    * the current hourly cost is the ledger's ``hourlyCost`` (what ran in the last
      interval it accrued; $0 if it has none yet);
    * hours left run from the ledger's last accrual (``asOf``) to the end of the
      month: time not yet accrued (a ledger read a minute after the controller saved
      it) is taken to cost the current rate too, so the figure does not depend on
      when it is read. For the controller ``asOf`` is ``now``.

    ``hourly_costs`` overrides the current hourly cost for what-ifs and forecasts:
    ``hourly_costs[i]`` is the $ per hour during hour ``i``, the last value holds to
    the month's end. The controller and the CLI leave it unset, so that they agree.
    """
    if hourly_costs is not None and not hourly_costs:
        raise ValueError("hourly_costs is empty: give at least the current hourly cost")
    if hourly_costs is not None and any(not c >= 0 for c in hourly_costs):
        raise ValueError("hourly costs must be >= 0")
    month = month_key(now)
    end = next_month_start(now)
    if state.month == month:
        spent, start = state.spent, min(state.as_of, end)
    elif month in state.closed_months:
        spent, start = state.closed_months[month], end
    elif state.month < month:  # the ledger stopped before this month began
        spent, start = Decimal(0), month_start(now)
    else:  # a month before anything the ledger keeps
        spent, start = Decimal(0), end
    costs = (
        list(hourly_costs) if hourly_costs is not None else [float(state.hourly_cost or Decimal(0))]
    )
    hours_left = (end - start).total_seconds() / 3600.0
    future = 0.0
    remaining = hours_left
    for cost in costs:
        if remaining <= 0:
            break
        span = min(1.0, remaining)
        future += cost * span
        remaining -= span
    future += costs[-1] * max(0.0, remaining)
    projected = float(spent) + future
    alerts: list[str] = []
    spent_pct = projected_pct = None
    crossed: tuple[float, ...] = ()
    if monthly_limit is not None and monthly_limit > 0:
        spent_pct = 100.0 * float(spent) / monthly_limit
        projected_pct = 100.0 * projected / monthly_limit
        crossed = tuple(t for t in sorted(thresholds) if spent_pct >= t)
        if crossed:
            alerts.append(
                f"spend ${float(spent):.2f} is {spent_pct:.0f}% of the monthly limit"
                f" ${monthly_limit:.2f} (threshold {crossed[-1]:g}%)"
            )
        if projected > monthly_limit:
            alerts.append(
                f"projected month-end spend ${projected:.2f} exceeds the monthly limit"
                f" ${monthly_limit:.2f} ({projected_pct:.0f}%)"
            )
    return Projection(
        month=month,
        spent=float(spent),
        projected=projected,
        hours_left=hours_left,
        monthly_limit=monthly_limit,
        spent_percent=spent_pct,
        projected_percent=projected_pct,
        crossed=crossed,
        alerts=tuple(alerts),
        hourly_cost=costs[0],
    )
