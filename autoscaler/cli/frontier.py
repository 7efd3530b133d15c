"""``autoscaler budget frontier``: what a bigger budget buys, on the user's own objects.

The user's PredictiveAutoscalers, CostBudget and Deployments (``--objects``, the YAML
``simulate --objects`` and ``autoscaler run --objects`` take) are replayed over a trace
by the real controller (``autoscaler.cli.simworld.controller_for``) in the simulated
world, every workload at once (``simulations.fleet``), once per hourly cap in
``--caps``: the CostBudget's ``hourlyLimit`` replaced by the cap, everything else of
it kept (monthly limit, pacing, mode, priority tiers, prices, spend so far). One more
run has no budget at all: what everything wanted would have cost. The budget's own
``hourlyLimit``, when it has one, is always among the runs (the "current budget").

Per run: the average and the peak $/h of the pods that ran (Ready or starting, at the
budget's prices), the month at that rate (average $/h x 730 h, the average month:
8,760 h / 12), SLO-violation minutes and tau_U as ``autoscaler simulate`` scores them
(summed, resp. averaged, over the workloads), and the average replicas each priority
tier got against what it got uncapped. ``--json`` prints the runs as a list,
``--png`` draws the frontier (``autoscaler.frontier_plot``). The runs are independent
and spread over ``--workers`` processes (``simulations.jobs.run_jobs``).

Each workload's demand is the trace times its share (``--share NS/NAME=FRACTION``).
The default share is 1.0 for every workload: the trace is each workload's own load,
so a lone autoscaler replays exactly as ``simulate --objects`` replays it. Give
shares that sum to 1 to split one trace's load over the workloads instead.

Bad input (no CostBudget, a cap that is not a number >= 0, a share for an unknown
autoscaler, ...) is one ``InputError`` line, exit 2.

Callers: ``autoscaler.cli.budget`` registers the command on the ``budget`` group.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from autoscaler.cli.objects import load_user_fleet
from autoscaler.cli.simworld import controller_for
from autoscaler.frontier_plot import HOURS_PER_MONTH, FrontierPoint, plot_frontier
from models.errors import InputError
from policies.objects import Budget
from simulations.engine import Demand
from simulations.fleet import (
    Fleet,
    FleetMember,
    environment_of,
    priority_in,
    replay_fleet,
    replica_price,
    score_fleet,
    tier_names,
)
from simulations.jobs import run_jobs
from simulations.scenario import prepare, resolve_trace, scenario_from_dict


@dataclass(frozen=True)
class Tier:
    """The workloads of one cost-guard priority (under the swept budget)."""

    name: str
    priority: int | None  # None: workloads outside the swept budget
    workloads: tuple[str, ...]


@dataclass(frozen=True)
class _Job:
    demand: Demand
    fleet: Fleet
    hourly_limit: float | None
    slo_utilization: float
    priorities: dict[str, int]


@dataclass(frozen=True)
class Row:
    """One run of the frontier: a cap (None: no budget) and what it cost and gave."""

    hourly_limit: float | None
    average_hourly_cost: float
    peak_hourly_cost: float
    slo_violation_minutes: float
    tau_u_pct: float
    hours: float
    #: average replicas (pods that existed) per workload key.
    replicas: dict[str, float]
    #: SLO-violation minutes and tau_U per workload key.
    workload_slo_minutes: dict[str, float]
    workload_tau_u: dict[str, float]
    #: % of ticks in which the guard lowered some workload's decision.
    clamped_pct: float

    @property
    def monthly_cost(self) -> float:
        return self.average_hourly_cost * HOURS_PER_MONTH


def _run_job(job: _Job) -> Row:
    """One replay (in a worker process), summarised."""
    run = replay_fleet(job.demand, job.fleet, controller_for)
    score = score_fleet(
        run, job.fleet, job.demand.tick_seconds, job.slo_utilization, job.priorities
    )
    clamped = None
    for tl in run.timelines.values():
        c = tl.extra.get("budget_clamped")
        if c is not None:
            clamped = c if clamped is None else (clamped | c)
    n = len(job.demand)
    return Row(
        hourly_limit=job.hourly_limit,
        average_hourly_cost=score.average_hourly_cost,
        peak_hourly_cost=score.peak_hourly_cost,
        slo_violation_minutes=score.slo_violation_minutes,
        tau_u_pct=score.tau_u_pct,
        hours=n * job.demand.tick_seconds / 3600.0,
        replicas={w.key: w.average_replicas for w in score.workloads},
        workload_slo_minutes={w.key: w.slo_violation_minutes for w in score.workloads},
        workload_tau_u={w.key: w.tau_u_pct for w in score.workloads},
        clamped_pct=0.0 if clamped is None else 100.0 * float(clamped.mean()),
    )


# ------------------------------------------------------------------------- parsing


def parse_caps(text: str) -> list[float]:
    """``0.3,0.5,0.8``: hourly caps in $, each a number >= 0; sorted, without repeats."""
    out: list[float] = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            value = float(part)
        except ValueError:
            raise InputError(
                "--caps", f"{part.strip()!r} is not a number", "give $/h caps, e.g. 0.3,0.5,0.8"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise InputError(
                "--caps", f"{part.strip()!r} is not a dollar amount >= 0", "e.g. 0.3,0.5,0.8"
            )
        out.append(value)
    if not out:
        raise InputError("--caps", "no caps given", "give $/h caps, e.g. 0.3,0.5,0.8")
    return sorted(set(out))


def parse_shares(items: list[str], keys: list[str]) -> dict[str, float]:
    """``NS/NAME=FRACTION`` per autoscaler; the rest keep 1.0."""
    shares = dict.fromkeys(keys, 1.0)
    given: set[str] = set()
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise InputError("--share", f"{item!r} is not NS/NAME=FRACTION", "e.g. prod/api=0.6")
        if key not in shares:
            raise InputError(
                "--share",
                f"no PredictiveAutoscaler {key!r} in the objects",
                f"name one of: {', '.join(keys)}",
            )
        if key in given:
            raise InputError("--share", f"{key} is given twice", "give each share once")
        try:
            fraction = float(value)
        except ValueError:
            raise InputError("--share", f"{value.strip()!r} is not a number", "") from None
        if not math.isfinite(fraction) or fraction < 0:
            raise InputError("--share", f"{value.strip()!r} is not a fraction >= 0", "")
        shares[key] = fraction
        given.add(key)
    return shares


def _pick_budget(budgets: list[Budget], members: list[FleetMember], name: str | None) -> Budget:
    if not budgets:
        raise InputError(
            "--objects", "no CostBudget in the files", "add the CostBudget whose cap to sweep"
        )
    used = {environment_of(m.autoscaler, budgets) for m in members}
    if name is not None:
        for b in budgets:
            if b.name == name and name in used:
                return b
            if b.name == name:
                raise InputError(
                    "--budget",
                    f"CostBudget {name!r} covers none of the autoscalers",
                    "sweep the budget their namespaces or budgetRef select",
                )
        raise InputError(
            "--budget",
            f"no CostBudget {name!r} in the objects",
            f"name one of: {', '.join(b.name for b in budgets)}",
        )
    covering = [b for b in budgets if b.name in used]
    if not covering:
        raise InputError(
            "--objects",
            f"no CostBudget covers the autoscalers ({', '.join(m.key for m in members)})",
            "add the CostBudget whose selector or budgetRef names them",
        )
    if len(covering) > 1:
        raise InputError(
            "--objects",
            f"several CostBudgets cover the autoscalers ({', '.join(b.name for b in covering)})",
            "choose the one to sweep with --budget NAME",
        )
    return covering[0]


def _tiers(members: list[FleetMember], budget: Budget, all_budgets: list[Budget]) -> list[Tier]:
    """The priority tiers of the swept budget (highest first) with their workloads."""
    names = tier_names(budget.spec)
    groups: dict[int | None, list[str]] = {}
    for m in members:
        inside = environment_of(m.autoscaler, all_budgets) == budget.name
        p = priority_in(budget.spec, m.autoscaler) if inside else None
        groups.setdefault(p, []).append(m.key)
    out = []
    for p in sorted(groups, key=lambda x: (x is None, -(x or 0))):
        if p is None:
            name = f"outside {budget.name}"
        else:
            name = names.get(p) or (
                "default" if p == budget.spec.default_priority else f"priority {p}"
            )
        out.append(Tier(name, p, tuple(groups[p])))
    return out


# ------------------------------------------------------------------------- command


def frontier_command(
    objects: Annotated[
        list[Path],
        typer.Option(
            "--objects",
            help="YAML with your PredictiveAutoscalers, their CostBudget and their"
            " Deployments/StatefulSets (repeatable).",
        ),
    ],
    trace: Annotated[str, typer.Option(help="Trace CSV (timestamp,value).")],
    caps: Annotated[
        str, typer.Option(help="Hourly caps in $/h to replay, comma-separated, e.g. 0.3,0.5,0.8.")
    ],
    value_unit: Annotated[
        str | None, typer.Option(help="per-interval (counts, default) or per-second (rates).")
    ] = None,
    days: Annotated[float | None, typer.Option(help="Replay only this many days.")] = None,
    startup_seconds: Annotated[
        float | None,
        typer.Option(help="Pods are Ready this many s after creation (default: leadTime - 15)."),
    ] = None,
    share: Annotated[
        list[str] | None,
        typer.Option(
            "--share",
            help="NS/NAME=FRACTION (repeatable): that autoscaler's demand is the trace"
            " times FRACTION (default 1.0 each: the trace is every workload's load).",
        ),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(help="The CostBudget to sweep, when several cover the autoscalers."),
    ] = None,
    slo_utilization: Annotated[
        float, typer.Option(help="Under-provisioned: demand > ready x capacity x this.")
    ] = 0.85,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
    png: Annotated[Path | None, typer.Option(help="Draw the frontier to this PNG.")] = None,
    workers: Annotated[int, typer.Option(help="Processes to spread the runs over.")] = 2,
) -> None:
    """What a bigger budget buys: replay your objects once per hourly cap, and uncapped."""
    if workers < 1:
        raise InputError("--workers", f"{workers} workers", "use 1 or more")
    if days is not None and not days > 0:
        raise InputError("--days", f"{days:g} days", "give a positive number of days")
    if not 0 < slo_utilization <= 1:
        raise InputError("--slo-utilization", f"{slo_utilization:g}", "give a fraction in (0, 1]")
    if value_unit is not None and value_unit not in ("per-interval", "per-second"):
        raise InputError("--value-unit", f"{value_unit!r}", "use per-interval or per-second")
    cap_values = parse_caps(caps)
    loaded, budgets = load_user_fleet(objects, startup_seconds)
    keys = [user.autoscaler.key for user, _ in loaded]
    shares = parse_shares(share or [], keys)
    members0 = [
        FleetMember(
            autoscaler=user.autoscaler,
            workload=workload,
            requests=dict(user.requests),
            replicas=user.replicas,
            share=shares[user.autoscaler.key],
        )
        for user, workload in loaded
    ]
    swept = _pick_budget(budgets, members0, budget)
    members = [
        FleetMember(
            autoscaler=m.autoscaler,
            workload=m.workload,
            requests=m.requests,
            replicas=m.replicas,
            share=m.share,
            price=replica_price(m.requests, swept.spec, m.autoscaler.spec.node_pool),
        )
        for m in members0
    ]
    tiers = _tiers(members, swept, budgets)
    priorities = {k: t.priority for t in tiers if t.priority is not None for k in t.workloads}
    current = swept.spec.hourly_limit
    if current is not None and all(abs(c - current) > 1e-9 for c in cap_values):
        cap_values = sorted([*cap_values, current])
    demand = _demand(trace, value_unit, days, members[0], slo_utilization)
    others = [b for b in budgets if b.name != swept.name]
    jobs: list[_Job] = []
    for cap in cap_values:
        capped = Budget(
            swept.name,
            swept.spec.model_copy(update={"hourly_limit": cap}),
            swept.labels,
            swept.status,
        )
        fleet = Fleet(tuple(members), (*others, capped))
        jobs.append(_Job(demand, fleet, cap, slo_utilization, priorities))
    jobs.append(
        _Job(demand, Fleet(tuple(members), tuple(others)), None, slo_utilization, priorities)
    )
    typer.echo(
        f"budget frontier: CostBudget {swept.name} ({swept.spec.mode}),"
        f" {len(members)} autoscaler(s), {len(demand) * demand.tick_seconds / 86400:g} days"
        f" of {Path(trace).name}: {len(jobs)} runs on {min(workers, len(jobs))} processes",
        err=True,
    )
    rows = run_jobs(_run_job, jobs, workers, _progress(len(jobs)))
    uncapped = rows[-1]
    if as_json:
        out = [_row_json(r, tiers, uncapped) for r in rows]
        typer.echo(json.dumps(out, indent=2, allow_nan=False))
    else:
        typer.echo(_text(rows, tiers, swept, current, members))
    if png is not None:
        days_replayed = uncapped.hours / 24
        points = [
            FrontierPoint(
                r.hourly_limit,
                r.monthly_cost,
                r.average_hourly_cost,
                r.slo_violation_minutes,
                r.tau_u_pct,
            )
            for r in rows
        ]
        who = ", ".join(m.key for m in members)
        try:
            picture = plot_frontier(
                points,
                png,
                title=f"What a bigger budget buys: CostBudget {swept.name} ({who})",
                subtitle=(
                    f"{days_replayed:g} days of {Path(trace).name} replayed through the"
                    " controller; lower left is better"
                ),
                current_hourly_limit=current,
            )
        except OSError as err:
            raise InputError(str(png), f"cannot write the PNG: {err.strerror}", "") from err
        if not as_json:
            knee = picture.knee
            if knee is not None:
                typer.echo(
                    f"knee: ${knee.hourly_limit or 0:.2f}/h cap, ${knee.monthly_cost:,.2f}/month,"
                    f" {knee.slo_violation_minutes:.1f} SLO-violation minutes"
                )
            typer.echo(f"frontier written to {png}")
        else:
            typer.echo(f"frontier written to {png}", err=True)


def _progress(total: int) -> Callable[[int, int], None] | None:
    """A line on stderr per finished run, where stderr is a terminal (runs take a while)."""
    if not sys.stderr.isatty():
        return None
    return lambda done, _: typer.echo(f"  {done}/{total} runs done", err=True)


def _demand(
    trace: str,
    value_unit: str | None,
    days: float | None,
    first: FleetMember,
    slo_utilization: float,
) -> Demand:
    """The trace's per-tick demand, built as ``simulate --objects`` builds it."""
    path = resolve_trace(trace, None)
    data: dict[str, Any] = {
        "name": path.stem,
        "trace": str(path.resolve()),
        "workload": first.workload.model_dump(),
        "policies": ["predictive"],
        "slo_utilization": slo_utilization,
    }
    if value_unit is not None:
        data["value_unit"] = value_unit
    if days is not None:
        data["period"] = {"days": days}
    sc = scenario_from_dict(data, "flags")
    return prepare(sc, None, workload=first.workload).demand


# ------------------------------------------------------------------------- output


def _tier_replicas(row: Row, tier: Tier) -> float:
    return sum(row.replicas[k] for k in tier.workloads)


def _row_json(row: Row, tiers: list[Tier], uncapped: Row) -> dict[str, Any]:
    def finite(x: float) -> float | None:
        return round(x, 6) if math.isfinite(x) else None

    tier_rows = []
    for t in tiers:
        got, wanted = _tier_replicas(row, t), _tier_replicas(uncapped, t)
        tier_rows.append(
            {
                "tier": t.name,
                "priority": t.priority,
                "workloads": list(t.workloads),
                "averageReplicas": finite(got),
                "uncappedAverageReplicas": finite(wanted),
                "shareOfUncapped": finite(got / wanted) if wanted > 0 else None,
                "sloViolationMinutes": finite(
                    sum(row.workload_slo_minutes[k] for k in t.workloads)
                ),
            }
        )
    return {
        "hourlyLimit": row.hourly_limit,
        "averageHourlyCost": finite(row.average_hourly_cost),
        "peakHourlyCost": finite(row.peak_hourly_cost),
        "monthlyCost": finite(row.monthly_cost),
        "hoursPerMonth": HOURS_PER_MONTH,
        "sloViolationMinutes": finite(row.slo_violation_minutes),
        "tauU": finite(row.tau_u_pct),
        "clampedPercent": finite(row.clamped_pct),
        "hoursReplayed": finite(row.hours),
        "tiers": tier_rows,
        "workloads": [
            {
                "name": k,
                "averageReplicas": finite(row.replicas[k]),
                "sloViolationMinutes": finite(row.workload_slo_minutes[k]),
                "tauU": finite(row.workload_tau_u[k]),
            }
            for k in row.replicas
        ],
    }


def _text(
    rows: list[Row],
    tiers: list[Tier],
    budget: Budget,
    current: float | None,
    members: list[FleetMember],
) -> str:
    uncapped = rows[-1]
    days = uncapped.hours / 24
    lines = [
        f"What a bigger budget buys: CostBudget {budget.name} ({budget.spec.mode}),"
        f" {days:g} days replayed through the controller",
        "",
    ]
    header = (
        f"{'cap $/h':>10} {'avg $/h':>8} {'peak $/h':>8} {'$/month':>9} {'SLO-min':>8}"
        f" {'tauU %':>7} {'clamped':>7}  replicas by tier: average (% of uncapped)"
    )
    lines += [header, "-" * len(header)]
    for r in rows:
        if r.hourly_limit is None:
            cap = "uncapped"
        else:
            cap = f"{r.hourly_limit:.3f}" + ("*" if r.hourly_limit == current else "")
        cells = []
        for t in tiers:
            got, wanted = _tier_replicas(r, t), _tier_replicas(uncapped, t)
            pct = f"{100 * got / wanted:.0f}%" if wanted > 0 else "-"
            cells.append(f"{t.name}: {got:.1f} ({pct})")
        lines.append(
            f"{cap:>10} {r.average_hourly_cost:8.4f} {r.peak_hourly_cost:8.4f}"
            f" {r.monthly_cost:9.2f} {r.slo_violation_minutes:8.1f} {r.tau_u_pct:7.2f}"
            f" {r.clamped_pct:6.1f}%  " + "  ".join(cells)
        )
    tier_lines = [
        f"  {t.name}"
        + ("" if t.priority is None else f" (priority {t.priority})")
        + f": {', '.join(t.workloads)}"
        for t in tiers
    ]
    shares = ", ".join(f"{m.key} x{m.share:g}" for m in members)
    notes = (
        f"cap: the CostBudget's hourlyLimit in the run (the rest of {budget.name} kept"
        + ("" if current is None else f"; * = its own ${current:g}/h")
        + "); uncapped: no budget at all, what everything wanted. avg/peak $/h: the pods"
        " that ran (Ready or starting) at the budget's prices. $/month: avg $/h x"
        f" {HOURS_PER_MONTH:.0f} h (an average month, 8,760 h / 12). SLO-min: minutes with"
        " p99 latency above the SLO, summed over the workloads. tauU: % of time with demand"
        " > Ready x capacity x the SLO utilization, averaged over the workloads. clamped: %"
        " of ticks the guard lowered a decision. Demand: the trace times each workload's"
        f" share ({shares})."
    )
    lines += ["", "tiers, highest priority first:", *tier_lines, ""]
    lines += textwrap.wrap(notes, width=100)
    return "\n".join(lines)
