"""``autoscaler budget``: drive the cost guard from files, without a cluster.

``allocate`` runs ``policies.costguard.allocate`` on a REQUEST.json (or one request per
line of a ``.jsonl``, for batch what-ifs); ``validate`` checks CostBudget YAML files;
``report`` shows spend, projection and clamps, and what a budget costs in SLO via the
simulator (``--frontier`` sweeps budgets and plots the curve for finance); ``frontier``
(``autoscaler.cli.frontier``) sweeps hourly caps over the user's own objects.

Bad input never shows a traceback: it raises ``InputError`` naming the file, the line
(where we can know it) and the field, which ``autoscaler.cli.main`` prints as one line
with exit status 2. This module reads the wall clock only to fill a missing
``budget.now``; the policy code below it never does.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from autoscaler.cli.frontier import frontier_command
from autoscaler.cli.simworld import controller_for
from autoscaler.frontier_plot import HOURS_PER_MONTH, FrontierPoint, Reference, plot_frontier
from models.errors import InputError
from policies.budget import (
    AllocationRequest,
    BudgetRequest,
    CostBudgetManifest,
    check_time,
    input_error,
    input_errors,
)
from policies.costguard import allocate
from policies.ledger import LedgerState, Projection, accrue, project
from simulations.jobs import run_jobs

HELP = "Cost guard: clamp replicas to an environment's budget, by priority."


def register(app: typer.Typer) -> None:
    """Add the ``budget`` command group to the ``autoscaler`` app."""
    group = typer.Typer(help=HELP, no_args_is_help=True)
    group.command("allocate")(allocate_command)
    group.command("validate")(validate_command)
    group.command("report")(report_command)
    group.command("frontier")(frontier_command)
    app.add_typer(group, name="budget")


# ------------------------------------------------------------------------ allocate


def allocate_command(
    input: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            help="REQUEST.json, or a .jsonl file with one request per line.",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write RESULT here instead of stdout."),
    ] = None,
) -> None:
    """Allocate replicas under a budget: REQUEST.json in, RESULT.json out."""
    now = datetime.now(UTC)
    results = [
        allocate(request, now).model_dump(mode="json", by_alias=True)
        for request in read_requests(input)
    ]
    if input.suffix == ".jsonl":
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in results)
    else:
        text = json.dumps(results[0], indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as err:
            raise InputError(
                str(output), f"cannot write: {err.strerror}", "check the path"
            ) from err


def read_requests(path: Path) -> list[AllocationRequest]:
    """Every request in ``path`` (``.jsonl``: one per non-blank line), validated."""
    text = _read(path)
    if path.suffix == ".jsonl":
        requests = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                where = f"{path}:{lineno}"
                requests.append(_request(_json(line, where, add_line=False), where, line))
        if not requests:
            raise InputError(str(path), "no requests in the file", "write one JSON request a line")
        return requests
    return [_request(_json(text, str(path), add_line=True), str(path), text)]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "no such file", "check the path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(str(path), f"cannot read: {err}", "give a UTF-8 JSON file") from None


#: Python refuses to read integers longer than this (``sys.get_int_max_str_digits``).
_MAX_DIGITS = 4300


def _json(text: str, where: str, *, add_line: bool) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        # A .json file: the decoder's line is the file's; a .jsonl line is named already.
        place = f"{where}:{err.lineno}" if add_line else where
        raise InputError(
            place, f"not valid JSON: {err.msg} (column {err.colno})", "fix the JSON syntax"
        ) from None
    except RecursionError:
        raise InputError(where, "not a request: nested too deeply", _NESTED_FIX) from None
    except ValueError:  # an integer of more than 4,300 digits
        place = f"{where}:{_long_number_line(text)}" if add_line else where
        raise InputError(place, _LONG_NUMBER, "write a number of sensible size") from None


_NESTED_FIX = "a request nests a few levels deep; fix the brackets"
_NESTED_YAML = "a CostBudget nests a few levels deep; fix the brackets"
_LONG_NUMBER = f"a number has more than {_MAX_DIGITS:,} digits"


def _long_number_line(text: str) -> int:
    match = re.search(rf"\d{{{_MAX_DIGITS + 1},}}", text)
    return 1 if match is None else text.count("\n", 0, match.start()) + 1


def _request(data: Any, where: str, text: str) -> AllocationRequest:
    try:
        return AllocationRequest.model_validate(data)
    except ValidationError as err:
        loc = tuple(err.errors(include_url=False)[0]["loc"])
        line = _json_line(text, loc) if "\n" in text.strip() else None
        raise input_error(err, f"{where}:{line}" if line else where) from None


def _json_line(text: str, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest part of ``loc`` found in the JSON ``text``.

    Walks the document with the standard decoder's ``raw_decode`` (which skips a
    whole value and says where it ends), so that the same key in two workloads
    is told apart; ``None`` if the text is not shaped as ``loc`` says.
    """
    decoder = json.JSONDecoder()
    pos, found = 0, None

    def ws(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    try:
        for part in loc:
            pos = ws(pos)
            if isinstance(part, str) and text.startswith("{", pos):
                pos = ws(pos + 1)
                while not text.startswith("}", pos):
                    key, after = decoder.raw_decode(text, pos)
                    key_at, pos = pos, ws(ws(after) + 1)  # skip the colon
                    if key == part:
                        found = key_at
                        break
                    pos = ws(decoder.raw_decode(text, pos)[1])
                    pos = ws(pos + 1) if text.startswith(",", pos) else pos
                else:
                    return _line_at(text, found)
            elif isinstance(part, int) and text.startswith("[", pos):
                pos = ws(pos + 1)
                for _ in range(part):
                    pos = ws(decoder.raw_decode(text, pos)[1])
                    pos = ws(pos + 1) if text.startswith(",", pos) else pos
                found = pos
            else:
                break
    except (ValueError, IndexError):
        pass
    return _line_at(text, found)


def _line_at(text: str, offset: int | None) -> int | None:
    return None if offset is None else text.count("\n", 0, offset) + 1


# ------------------------------------------------------------------------ validate


def validate_command(
    paths: Annotated[list[Path], typer.Argument(help="CostBudget YAML files.")],
) -> None:
    """Check CostBudget YAML files (every document in each); list every problem, exit 2."""
    bad = 0
    for path in paths:
        budgets, problems = check_budgets(path)
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        bad += len(problems)
        for manifest in budgets:
            spec = manifest.spec
            limits = ", ".join(
                f"{label} ${value:g}"
                for label, value in (("hourly", spec.hourly_limit), ("monthly", spec.monthly_limit))
                if value is not None
            )
            typer.echo(
                f"ok: {path}: CostBudget {manifest.metadata.name} (environment"
                f" {spec.environment}; {limits}; pacing {spec.pacing}; mode {spec.mode};"
                f" {len(spec.priority_tiers)} priority tiers)"
            )
    if bad:
        raise typer.Exit(2)


def load_budgets(path: Path) -> list[CostBudgetManifest]:
    """Every CostBudget document in a YAML file; the first problem is an ``InputError``."""
    budgets, problems = check_budgets(path)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more: run `autoscaler budget validate {path}`)"
        raise InputError(
            first.where, first.problem + (more if len(problems) > 1 else ""), first.fix
        )
    return budgets


def check_budgets(path: Path) -> tuple[list[CostBudgetManifest], list[InputError]]:
    """The valid CostBudgets of a YAML file, and every problem (file, line and field).

    Every document is checked, and every problem of each is listed (not the first),
    so that one run of ``budget validate`` shows everything to fix.
    """
    try:
        text = _read(path)
    except InputError as err:
        return [], [err]
    try:
        nodes = list(yaml.compose_all(text))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        return [], [InputError(where, f"not valid YAML: {err}", "fix the YAML syntax")]
    except RecursionError:
        return [], [InputError(str(path), "not a CostBudget: nested too deeply", _NESTED_YAML)]
    manifests: list[CostBudgetManifest] = []
    problems: list[InputError] = []
    for node in nodes:
        if node is None:
            continue
        long = _long_yaml_int(node)
        if long is not None:
            problems.append(
                InputError(f"{path}:{long}", _LONG_NUMBER, "write a number of sensible size")
            )
            continue
        dupes = [
            InputError(f"{path}:{line}", f"duplicate key {key!r}", "give each key once")
            for line, key in _duplicate_keys(node)
        ]
        if dupes:  # YAML keeps the last silently: which one was meant is unknown
            problems += dupes
            continue
        try:
            doc = yaml.SafeLoader(text).construct_document(node)
        except (yaml.YAMLError, ValueError, RecursionError) as err:
            problems.append(InputError(str(path), f"cannot read the YAML: {err}", ""))
            continue
        if doc is None:
            continue
        try:
            manifests.append(CostBudgetManifest.model_validate(doc))
        except ValidationError as err:
            # In the order of the file's lines (pydantic lists unknown fields last).
            lines = [_yaml_line(node, tuple(e["loc"])) for e in err.errors(include_url=False)]
            found = input_errors(err, _yaml_place(path, node))
            problems += [e for _, _, e in sorted(zip(lines, range(len(lines)), found, strict=True))]
    if not manifests and not problems:
        problems.append(
            InputError(str(path), "no CostBudget in the file", "see policies/examples/")
        )
    return manifests, problems


def _yaml_place(path: Path, node: yaml.Node) -> Callable[[tuple[int | str, ...]], str]:
    return lambda loc: f"{path}:{_yaml_line(node, loc)}"


def _walk(node: yaml.Node) -> list[yaml.Node]:
    """Every node under ``node`` (iteratively: a deep document must not recurse)."""
    out, stack = [], [node]
    while stack:
        current = stack.pop()
        out.append(current)
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack += [key, value]
        elif isinstance(current, yaml.SequenceNode):
            stack += current.value
    return out


def _long_yaml_int(node: yaml.Node) -> int | None:
    """1-based line of an integer too long for Python to read, if any."""
    for n in _walk(node):
        if (
            isinstance(n, yaml.ScalarNode)
            and n.tag == "tag:yaml.org,2002:int"
            and sum(c.isdigit() for c in n.value) > _MAX_DIGITS
        ):
            return n.start_mark.line + 1
    return None


def _duplicate_keys(node: yaml.Node) -> list[tuple[int, str]]:
    """(line, key) of every key given twice in one mapping: YAML keeps the last silently."""
    out = []
    for n in _walk(node):
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for key, _ in n.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        out.append((key.start_mark.line + 1, key.value))
                    seen.add(key.value)
    return sorted(out)


def _yaml_line(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """1-based line of the deepest node of ``loc`` that exists (the key, for mappings)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


# -------------------------------------------------------------------------- report

#: Frontier budgets as fractions of the oracle's peak hourly cost (what just enough
#: capacity at the busiest moment costs): from "a third of it" to "more than enough".
FRONTIER_FRACTIONS = (0.35, 0.5, 0.65, 0.8, 0.95, 1.1)

DEFAULT_SCENARIO = "demo-budget"


@dataclass(frozen=True)
class ReportRow:
    """One run of the report: a policy under one budget, scored by the simulator."""

    label: str
    policy: str
    hourly_limit: float | None
    cost_usd: float
    slo_violation_minutes: float
    tau_u_pct: float
    clamped_ticks: int | None
    ticks: int
    #: spend integrated by the ledger from the pods that ran, and its month projection
    ledger_spent: float
    month: str
    burn_rate: float
    projected: float
    #: % of ticks where the pods that existed cost more than the hourly limit
    over_limit_pct: float | None = None
    alerts: tuple[str, ...] = ()
    #: hours replayed (ticks x tick length): spend / hours is the average $/h
    hours: float = 0.0


@dataclass(frozen=True)
class _Job:
    scenario: dict[str, Any]
    base: str
    policy: str
    label: str
    budget: dict[str, Any] | None


def _run_job(job: _Job) -> ReportRow:
    """Run one policy on the scenario (in a worker process) and summarise it."""
    from simulations.report import score_timeline
    from simulations.scenario import Result, prepare, run_policy, scenario_from_dict
    from simulations.strategies import make_strategy as make_policy

    data = dict(job.scenario)
    data["budget"] = job.budget
    prepared = prepare(
        scenario_from_dict(data, job.label), Path(job.base), controller=controller_for
    )
    timeline = run_policy(prepared, make_policy(job.policy, "budget report"))
    score, _ = score_timeline(timeline, Result(prepared, {job.policy: timeline}))
    budget = prepared.scenario.budget
    ledger, rate, projection = _ledger_of(
        timeline.times,
        timeline.alive,
        prepared.workload.hourly_price,
        prepared.demand.tick_seconds,
        budget,
    )
    limit = None if budget is None else budget.hourly_limit
    over = None
    if limit is not None:
        cost = [int(a) * prepared.workload.hourly_price for a in timeline.alive]
        over = 100.0 * sum(c > limit * (1 + 1e-9) for c in cost) / max(1, len(cost))
    return ReportRow(
        label=job.label,
        policy=job.policy,
        hourly_limit=limit,
        cost_usd=score.cost_usd,
        slo_violation_minutes=score.slo_violation_minutes,
        tau_u_pct=score.tau_u_pct,
        clamped_ticks=score.budget_clamped_ticks,
        ticks=len(timeline.times),
        ledger_spent=float(sum(ledger.closed_months.values(), ledger.spent)),
        month=ledger.month,
        burn_rate=rate,
        projected=projection.projected,
        over_limit_pct=over,
        alerts=projection.alerts,
        hours=len(timeline.times) * prepared.demand.tick_seconds / 3600.0,
    )


def _ledger_of(
    times: Any, alive: Any, price: float, tick_seconds: float, budget: BudgetRequest | None
) -> tuple[LedgerState, float, Projection]:
    """Integrate the pods that ran through the spend ledger; project to month end.

    The pods alive at a tick run until the next one (the last tick lasts one tick), as
    the simulator's scorer charges them.
    """
    start = datetime.fromtimestamp(float(times[0]), UTC)
    state = LedgerState.start(start)
    prices = {"workload": price}
    for i in range(len(times)):
        end = datetime.fromtimestamp(float(times[i]) + tick_seconds, UTC)
        state, _ = accrue(state, {"workload": int(alive[i])}, prices, end)
    # The one projection (policies.ledger.project), as the controller and --ledger:
    # spend so far plus the current hourly cost (the last tick's pods) to month end.
    projection = project(
        state,
        state.as_of,
        monthly_limit=None if budget is None else budget.monthly_limit,
    )
    return state, projection.hourly_cost, projection


def report_command(
    scenario: Annotated[
        str,
        typer.Argument(help="Scenario YAML, or a bundled scenario's name."),
    ] = DEFAULT_SCENARIO,
    frontier: Annotated[
        bool,
        typer.Option(
            "--frontier", help="Sweep hourly budgets: SLO-violation minutes against dollars."
        ),
    ] = False,
    budgets: Annotated[
        str | None,
        typer.Option(
            help="Frontier hourly limits in $/h, comma-separated"
            " (default: fractions of the oracle's peak hourly cost)."
        ),
    ] = None,
    days: Annotated[
        float | None,
        typer.Option(help="Replay only this many days from the scenario's start."),
    ] = None,
    png: Annotated[Path, typer.Option(help="Where --frontier writes the curve.")] = Path(
        "out/budget-frontier.png"
    ),
    workers: Annotated[int, typer.Option(help="Simulation processes.")] = 2,
    ledger: Annotated[
        Path | None,
        typer.Option(
            help="Instead of simulating: report the spend in the controller's ledger file."
        ),
    ] = None,
    budget_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--budget-file", help="With --ledger: CostBudget YAML for limits and thresholds."
        ),
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="With --ledger: the time to project from (default now).")
    ] = None,
) -> None:
    """Spend, projection and clamps of a scenario's budget; what it costs in SLO.

    With ``--ledger``, report a real environment's spend to date and its month-end
    projection from the controller's ledger file instead (no simulation).
    """
    from simulations.scenario import load_scenario

    if ledger is not None:
        if frontier:
            raise InputError("--ledger", "cannot be combined with --frontier", "run them apart")
        typer.echo(ledger_report(ledger, budget_file or [], _parse_now(now)))
        return
    if workers < 1:
        raise InputError("--workers", f"{workers} workers", "use 1 or more")
    if days is not None and days <= 0:
        raise InputError("--days", f"{days} days", "give a positive number of days")
    sc, base = load_scenario(scenario)
    if days is not None:
        sc = sc.model_copy(update={"period": sc.period.model_copy(update={"days": days})})
    if sc.budget is None and not frontier:
        raise InputError(
            str(scenario),
            "the scenario has no budget",
            "add a budget: block (hourlyLimit, monthlyLimit, ...) or use --frontier",
        )
    data = sc.model_dump(mode="json", exclude_none=True)
    data.pop("budget", None)
    own = None if sc.budget is None else sc.budget.model_dump(mode="json", exclude_none=True)
    jobs = [
        _Job(data, str(base), "hpa-cpu", "hpa-cpu (no budget)", None),
        _Job(data, str(base), "oracle", "oracle (no budget)", None),
        _Job(data, str(base), "predictive", "predictive, no budget", None),
    ]
    if own is not None:
        jobs.append(_Job(data, str(base), "predictive", "predictive, scenario budget", own))
    if frontier:
        peak = _oracle_peak_cost(data, base)
        limits = _parse_budgets(budgets) if budgets else [peak * f for f in FRONTIER_FRACTIONS]
        for limit in limits:
            b = dict(own or {})
            b["hourly_limit"] = round(limit, 6)
            jobs.append(_Job(data, str(base), "predictive", f"predictive @ ${limit:.3f}/h", b))
    typer.echo(
        f"budget report: scenario {sc.name} ({len(jobs)} simulation runs on"
        f" {min(workers, len(jobs))} processes)",
        err=True,
    )
    rows = _run_all(jobs, workers)
    typer.echo(_report_text(sc.name, rows))
    if frontier:
        knee = _plot_frontier(
            rows, png, sc.name, None if sc.budget is None else sc.budget.hourly_limit
        )
        if knee is not None:
            typer.echo(
                f"knee: ${knee.hourly_limit or 0:.3f}/h cap, ${knee.monthly_cost:,.0f}/month,"
                f" {knee.slo_violation_minutes:.1f} SLO-violation minutes"
            )
        typer.echo(f"frontier written to {png}")


def _parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            "--now", f"{text!r} is not an ISO-8601 time", "e.g. 2026-11-20T12:00:00Z"
        ) from None
    if when.utcoffset() is None:
        raise InputError("--now", f"{text!r} has no time zone", "append Z for UTC")
    try:
        return check_time(when)
    except ValueError as err:
        raise InputError("--now", str(err)) from None


def ledger_report(path: Path, budget_files: list[Path], now: datetime) -> str:
    """Spend to date and month-end projection per environment of a ledger file.

    The projection is ``policies.ledger.project`` with the controller's arguments
    (the ledger, the budget's monthly limit and thresholds, no cost override), so it is
    the figure the controller publishes (status, metric, dashboard) for the same
    ledger: spend so far plus the current hourly cost to the end of the month.
    """
    from autoscaler.ledger_store import LedgerStore
    from models.errors import PermanentError

    try:
        ledgers = LedgerStore(path).load()
    except PermanentError as err:  # a corrupt ledger is the user's file to fix
        raise InputError(str(path), str(err), "") from None
    if not ledgers and not path.exists():
        raise InputError(str(path), "no such ledger file", "give the controller's ledger path")
    specs = {}
    for file in budget_files:
        for manifest in load_budgets(file):
            specs[manifest.metadata.name] = manifest.spec
    lines = [f"Spend from the ledger {path} at {now.isoformat()}:", ""]
    for name, state in sorted(ledgers.items()):
        spec = specs.get(name)
        projection = project(
            state,
            now,
            monthly_limit=None if spec is None else spec.monthly_limit,
            thresholds=(50.0, 75.0, 90.0) if spec is None else spec.alert_thresholds,
        )
        limit = "" if spec is None or spec.monthly_limit is None else f" of ${spec.monthly_limit:g}"
        lines.append(
            f"{name}: month {projection.month}, spent ${projection.spent:.2f}{limit}"
            f" (as of {state.as_of.isoformat()}), current burn ${projection.hourly_cost:.4f}/h,"
            f" projected month-end ${projection.projected:.2f}"
            + (
                ""
                if projection.projected_percent is None
                else f" ({projection.projected_percent:.0f}% of the limit)"
            )
        )
        top = sorted(state.by_workload.items(), key=lambda kv: kv[1], reverse=True)[:5]
        for workload, spent in top:
            lines.append(f"    {workload}: ${float(spent):.2f}")
        lines += [f"    alert: {a}" for a in projection.alerts]
        if state.month != projection.month:
            lines.append(f"    note: the ledger's last accrual is in {state.month}")
        if state.hourly_cost is None:
            lines.append(
                "    note: the ledger has no current hourly cost yet (written by an older"
                " controller): projected at $0/h until the controller's next accrual"
            )
    if not ledgers:
        lines.append("(the ledger is empty)")
    return "\n".join(lines)


def _parse_budgets(text: str) -> list[float]:
    out = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise InputError("--budgets", f"{part!r} is not a number", "e.g. 0.3,0.5,0.8") from None
        if not math.isfinite(value) or value < 0:
            raise InputError("--budgets", f"{part!r} is not a dollar amount >= 0", "")
        out.append(value)
    return sorted(set(out))


def _oracle_peak_cost(data: dict[str, Any], base: Path) -> float:
    """$ per hour of the oracle's busiest moment: just enough capacity at the peak."""
    from simulations.scenario import prepare, run_policy, scenario_from_dict
    from simulations.strategies import make_strategy as make_policy

    prepared = prepare(scenario_from_dict(dict(data), "frontier"), base)
    timeline = run_policy(prepared, make_policy("oracle", "frontier"))
    return float(max(timeline.alive)) * prepared.workload.hourly_price


def _run_all(jobs: list[_Job], workers: int) -> list[ReportRow]:
    return run_jobs(_run_job, jobs, workers)


def _report_text(name: str, rows: list[ReportRow]) -> str:
    lines = [f"What the budget costs in SLO (scenario {name}; spend from the ledger):", ""]
    header = (
        f"{'run':32} {'limit $/h':>9} {'spend $':>9} {'SLO-viol min':>12} {'tauU %':>7}"
        f" {'clamped':>8} {'over lim':>8} {'burn $/h':>8} {'month':>7} {'projected $':>11}"
    )
    lines += [header, "-" * len(header)]
    for r in rows:
        limit = "-" if r.hourly_limit is None else f"{r.hourly_limit:.3f}"
        clamped = "-" if r.clamped_ticks is None else f"{100 * r.clamped_ticks / r.ticks:.1f}%"
        over = "-" if r.over_limit_pct is None else f"{r.over_limit_pct:.1f}%"
        lines.append(
            f"{r.label:32} {limit:>9} {r.ledger_spent:9.2f} {r.slo_violation_minutes:12.1f}"
            f" {r.tau_u_pct:7.2f} {clamped:>8} {over:>8} {r.burn_rate:8.3f} {r.month:>7}"
            f" {r.projected:11.2f}"
        )
    alerts = [f"  {r.label}: {a}" for r in rows for a in r.alerts]
    if alerts:
        lines += ["", "alerts:", *alerts]
    lines += [
        "",
        "spend: dollars integrated by the spend ledger from the pods that ran (ready or"
        " starting); clamped: share of ticks where the guard lowered the predictive decision;"
        " over lim: share of ticks where the pods that existed cost more than the hourly"
        " limit (the guard's output never does: the excess comes from serving it through"
        " the HPA's 10 % tolerance, see docs/cost-guard.md); projected: this month's spend"
        " so far plus the current hourly cost (the last tick's pods) to month end, the"
        " controller's projection (policies.ledger.project).",
    ]
    return "\n".join(lines)


def _plot_frontier(
    rows: list[ReportRow], path: Path, name: str, current: float | None
) -> FrontierPoint | None:
    """The frontier PNG (``autoscaler.frontier_plot``) from the report's runs."""

    def monthly(r: ReportRow) -> tuple[float, float]:
        hourly = r.ledger_spent / r.hours if r.hours > 0 else 0.0
        return hourly * HOURS_PER_MONTH, hourly

    points: list[FrontierPoint] = []
    references: list[Reference] = []
    for r in rows:
        month, hourly = monthly(r)
        if r.policy == "predictive" and (
            r.hourly_limit is not None or r.label.endswith("no budget")
        ):
            points.append(
                FrontierPoint(r.hourly_limit, month, hourly, r.slo_violation_minutes, r.tau_u_pct)
            )
        elif r.policy != "predictive":
            references.append(Reference(r.label, month, r.slo_violation_minutes))
    days = max((r.hours for r in rows), default=0.0) / 24
    try:
        return plot_frontier(
            points,
            path,
            title=f"What a budget costs in SLO: {name}",
            subtitle=f"{days:g} days replayed; lower left is better",
            current_hourly_limit=current,
            references=references,
        ).knee
    except OSError as err:
        raise InputError(str(path), f"cannot write the PNG: {err.strerror}", "") from err
