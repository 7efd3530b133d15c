"""The spend ledger: dollars spent this month, integrated from the replicas that ran.

Why integrate rather than multiply "current cost x hours so far": replicas change
every sync, and the monthly pacing (``policies.costguard``) needs what was really
spent. ``accrue`` is pure: (previous state, replicas that ran, their hourly prices,
the end of the interval) -> new state. The replicas are taken as constant over the
interval since the last call (the caller passes what ran in it), and an interval that
crosses a month boundary is split, so the old month is closed with its exact total
and the new one starts from zero (UTC calendar months, as the monthly limit).

``project`` turns the ledger plus a forecast of hourly cost into the month-end burn
projection and the alerts (thresholds in % of the monthly limit).

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

from policies.costguard import hours_left_in_month, next_month_start

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

    @field_validator("as_of")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.utcoffset() is None:
            raise ValueError("asOf has no time zone")
        return value.astimezone(UTC)

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
        month=month, as_of=now, spent=spent, by_workload=by_workload, closed_months=closed
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
    hours_left: float
    monthly_limit: float | None
    #: spend so far and projected, in % of the monthly limit (None without a limit)
    spent_percent: float | None
    projected_percent: float | None
    #: thresholds (in %) that spend so far has reached
    crossed: tuple[float, ...] = ()
    alerts: tuple[str, ...] = field(default=())


def project(
    state: LedgerState,
    now: datetime,
    hourly_costs: Sequence[float],
    monthly_limit: float | None = None,
    thresholds: Sequence[float] = (50.0, 75.0, 90.0),
) -> Projection:
    """Project spend to the end of ``now``'s month.

    ``hourly_costs[i]`` is the expected $ per hour during hour ``i`` from now (from the
    forecasts: the cost of the replicas they call for); the last value holds for the
    rest of the month. One value is "the current burn rate". ``state`` should be
    accrued up to ``now``; spend of an earlier month counts as zero this month.
    """
    if not hourly_costs:
        raise ValueError("hourly_costs is empty: give at least the current hourly cost")
    if any(c < 0 for c in hourly_costs):
        raise ValueError("hourly costs must be >= 0")
    spent = state.spent if state.month == month_key(now) else Decimal(0)
    hours_left = float(hours_left_in_month(now))
    future = 0.0
    remaining = hours_left
    for cost in hourly_costs:
        if remaining <= 0:
            break
        span = min(1.0, remaining)
        future += cost * span
        remaining -= span
    future += hourly_costs[-1] * max(0.0, remaining)
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
        month=month_key(now),
        spent=float(spent),
        projected=projected,
        hours_left=hours_left,
        monthly_limit=monthly_limit,
        spent_percent=spent_pct,
        projected_percent=projected_pct,
        crossed=crossed,
        alerts=tuple(alerts),
    )
