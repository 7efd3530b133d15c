"""``autoscaler simulate`` and ``autoscaler sweep``: the simulator from the command line.

``simulate`` replays a trace through each policy (a scenario file, flags, or both:
flags override the file) and prints a scoring table; ``--timeline`` writes one CSV row
per 15-s tick and policy, ``--report`` one self-contained HTML file, ``--json`` the
scores as JSON. ``sweep`` runs a grid of scenarios in parallel (processes, or Dask).
Bad input raises ``InputError``, which ``autoscaler.cli.main`` prints as one line.

Callers: the ``autoscaler`` console script; ``make demo``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from autoscaler.cli.objects import load_user_objects
from autoscaler.cli.simworld import controller_for
from models.errors import InputError
from simulations import report as sim_report
from simulations.scenario import (
    Prepared,
    Scenario,
    load_scenario,
    prepare,
    resolve_workload,
    scenario_from_dict,
    simulate,
)
from simulations.workloads import custom_workload
from simulations.world import parse_outage


def _build_scenario(
    scenario_path: Path | None,
    trace: str | None,
    value_unit: str | None,
    workload: str | None,
    capacity_rps: float | None,
    startup_seconds: float | None,
    min_replicas: int | None,
    max_replicas: int | None,
    slo_utilization: float | None,
    scale_to_peak_replicas: int | None,
    policy: str | None,
    days: float | None,
    observe_seconds: float | None = None,
    workload_dict: dict[str, Any] | None = None,
) -> tuple[Scenario, Path | None]:
    """A scenario file (if any) with the flags laid over it (``workload_dict``: a
    workload built from the user's objects)."""
    base: Path | None = None
    data: dict[str, Any] = {}
    if scenario_path is not None:
        loaded, base = load_scenario(scenario_path)
        data = loaded.model_dump(exclude_unset=True)
    elif trace is None:
        raise InputError(
            "simulate", "no scenario and no --trace", "give SCENARIO.yaml or --trace PATH"
        )
    if trace is not None:
        data["trace"] = str(Path(trace).resolve()) if Path(trace).exists() else trace
        data.setdefault("name", Path(trace).stem)
    if value_unit is not None:
        data["value_unit"] = value_unit
    if workload_dict is not None:
        data["workload"] = workload_dict
        data.pop("budget", None)  # the objects' CostBudgets are the budget
    if workload is not None and capacity_rps is not None:
        raise InputError(
            "--workload/--capacity-rps", "both given", "name a workload OR describe one by flags"
        )
    if capacity_rps is not None:
        if startup_seconds is None:
            raise InputError(
                "--capacity-rps", "needs --startup-seconds", "e.g. --startup-seconds 90"
            )
        custom = custom_workload(
            capacity_rps,
            startup_seconds,
            min_replicas if min_replicas is not None else 1,
            max_replicas if max_replicas is not None else 1000,
        )
        data["workload"] = custom.model_dump()
    else:
        if workload is not None:
            data["workload"] = workload
        if startup_seconds is not None or min_replicas is not None or max_replicas is not None:
            named = resolve_workload(data.get("workload", "refinory-ai"), base)
            wd = named.model_dump()
            if startup_seconds is not None:
                wd["startup"] = {"distribution": "fixed", "seconds": startup_seconds}
            if min_replicas is not None:
                wd["min_replicas"] = min_replicas
            if max_replicas is not None:
                wd["max_replicas"] = max_replicas
            data["workload"] = wd
    if slo_utilization is not None:
        data["slo_utilization"] = slo_utilization
    if scale_to_peak_replicas is not None:
        data["scale_to_peak_replicas"] = scale_to_peak_replicas
    if policy is not None:
        data["policies"] = [p.strip() for p in policy.split(",") if p.strip()]
    if observe_seconds is not None:
        data["observe_seconds"] = observe_seconds
    if days is not None:
        period = dict(data.get("period") or {})
        period["days"] = days
        data["period"] = period
    where = str(scenario_path) if scenario_path is not None else "flags"
    return scenario_from_dict(data, where), base


def _progress_runner(
    prepared: Prepared, frontier: bool, quiet: bool, workers: int
) -> sim_report.ScoredResult:
    """Run with a rich progress bar on stderr (only where stderr is a terminal)."""
    if quiet or not sys.stderr.isatty():
        result = simulate(prepared, None, frontier, workers)
        return sim_report.score(result)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    n = len(prepared.demand)
    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(name: str, i: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=n)
            bar.update(tasks[name], completed=n if total >= 0 else i)

        result = simulate(prepared, progress, frontier, workers)
    return sim_report.score(result)


def register(app: typer.Typer) -> None:
    """Add ``simulate`` and ``sweep`` to the CLI."""

    @app.command(name="simulate")
    def simulate_cmd(
        scenario: Annotated[
            Path | None, typer.Argument(help="Scenario YAML (simulations/scenarios/).")
        ] = None,
        trace: Annotated[str | None, typer.Option(help="Trace CSV (timestamp,value).")] = None,
        value_unit: Annotated[
            str | None, typer.Option(help="per-interval (counts) or per-second (rates).")
        ] = None,
        workload: Annotated[
            str | None, typer.Option(help="Bundled workload name or workload YAML.")
        ] = None,
        capacity_rps: Annotated[
            float | None, typer.Option(help="Requests/s one replica serves at 100 % CPU.")
        ] = None,
        startup_seconds: Annotated[
            float | None,
            typer.Option(help="Every pod is Ready exactly this many s after creation."),
        ] = None,
        min_replicas: Annotated[int | None, typer.Option(help="HPA minReplicas.")] = None,
        max_replicas: Annotated[int | None, typer.Option(help="HPA maxReplicas.")] = None,
        slo_utilization: Annotated[
            float | None,
            typer.Option(help="Under-provisioned: demand > ready x capacity x this (0.85)."),
        ] = None,
        scale_to_peak_replicas: Annotated[
            int | None,
            typer.Option(help="Scale the trace so its p99.9 rate needs N replicas at 70 %."),
        ] = None,
        policy: Annotated[
            str | None,
            typer.Option(
                help="Comma-separated: hpa-cpu[@T],hpa-rps[@T],predictive[@Q],oracle,static[@N]."
            ),
        ] = None,
        days: Annotated[float | None, typer.Option(help="Replay only this many days.")] = None,
        observe_seconds: Annotated[
            float | None,
            typer.Option(
                help="Predictive sees the load at this step (s); default: the trace's rows."
            ),
        ] = None,
        timeline: Annotated[
            Path | None, typer.Option(help="Write one CSV row per 15-s tick and policy.")
        ] = None,
        report: Annotated[
            Path | None, typer.Option(help="Write a self-contained HTML report.")
        ] = None,
        report_png: Annotated[
            Path | None, typer.Option(help="Also save the report's main plot as a PNG.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
        frontier: Annotated[
            bool, typer.Option(help="Sweep hpa-cpu targets for the cost-vs-tau_U frontier.")
        ] = True,
        workers: Annotated[
            int, typer.Option(help="Processes to spread the policy runs over (same results).")
        ] = 2,
        objects: Annotated[
            list[Path] | None,
            typer.Option(
                "--objects",
                help="YAML with your PredictiveAutoscaler, its CostBudgets and its"
                " Deployment/StatefulSet (repeatable): replay them as the controller would.",
            ),
        ] = None,
        outage: Annotated[
            list[str] | None,
            typer.Option(
                "--outage",
                help="OFFSET/DURATION from the replay's start, e.g. 26h/10m (repeatable):"
                " the metrics source fails for DURATION while demand goes on.",
            ),
        ] = None,
    ) -> None:
        """Replay a trace through the policies and the emulated HPA; score them."""
        user = None
        if objects:
            if workload is not None or capacity_rps is not None:
                raise InputError(
                    "--objects",
                    "given with --workload/--capacity-rps",
                    "the objects describe the workload: drop those flags",
                )
            user, built = load_user_objects(objects, startup_seconds)
            workload_dict: Any = built.model_dump()
            listed = [p.strip() for p in (policy or "").split(",") if p.strip()]
            policy = ",".join(["predictive", *[p for p in listed if p != "predictive"]])
            startup_seconds = min_replicas = max_replicas = None
        sc, base = _build_scenario(
            scenario,
            trace,
            value_unit,
            workload,
            capacity_rps,
            startup_seconds,
            min_replicas,
            max_replicas,
            slo_utilization,
            scale_to_peak_replicas,
            policy,
            days,
            observe_seconds,
            workload_dict if user is not None else None,
        )
        prepared = prepare(sc, base, controller=controller_for, objects=user)
        if outage:
            start = prepared.demand.start
            outages = tuple(parse_outage(o, start) for o in outage)
            prepared = dataclasses.replace(prepared, outages=outages)
        if workers < 1:
            raise InputError("--workers", f"{workers} workers", "use 1 or more")
        scored = _progress_runner(prepared, frontier, as_json, workers)
        if timeline is not None:
            sim_report.write_timeline(scored, timeline)
        if report is not None:
            sim_report.write_html(scored, report, report_png)
        if as_json:
            typer.echo(json.dumps(sim_report.to_json(scored), indent=2, allow_nan=False))
        else:
            typer.echo(sim_report.summary_text(scored))
            if timeline is not None:
                typer.echo(f"timeline: {timeline}")
            if report is not None:
                typer.echo(f"report: {report}")

    _register_sweep(app)


def _floats(text: str | None, where: str) -> list[float]:
    if not text:
        return []
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise InputError(where, f"{text!r} is not a comma-separated list of numbers", "") from err


def _register_sweep(app: typer.Typer) -> None:
    @app.command(name="sweep")
    def sweep_cmd(
        scenario: Annotated[Path, typer.Argument(help="Base scenario YAML.")],
        target: Annotated[
            str, typer.Option(help="hpa-cpu targets (%) for the frontier, comma-separated.")
        ] = "40,50,60,70,80,90",
        quantile: Annotated[
            str | None, typer.Option(help="Predictive risk quantiles, e.g. 0.9,0.95,0.99.")
        ] = None,
        budget: Annotated[
            str | None, typer.Option(help="Hourly budget limits in $, e.g. 0.5,1,2.")
        ] = None,
        workload: Annotated[
            str | None, typer.Option(help="Workloads, comma-separated (default: the scenario's).")
        ] = None,
        days: Annotated[float | None, typer.Option(help="Replay only this many days.")] = None,
        engine: Annotated[
            str, typer.Option(help="processes (concurrent.futures), dask, or serial.")
        ] = "processes",
        workers: Annotated[int, typer.Option(help="Parallel worker processes.")] = 2,
        scheduler: Annotated[
            str | None, typer.Option(help="Dask scheduler address (default: a LocalCluster).")
        ] = None,
        out: Annotated[Path | None, typer.Option(help="Write the rows as CSV.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    ) -> None:
        """Run a grid of simulations in parallel and print one row per run."""
        from simulations.sweep import build_jobs, run_sweep

        if engine not in ("processes", "dask", "serial"):
            raise InputError(
                "--engine", f"unknown engine {engine!r}", "use processes, dask or serial"
            )
        sc, base = load_scenario(scenario)
        data = sc.model_dump(exclude_unset=True, by_alias=True)
        if days is not None:
            data["period"] = {**dict(data.get("period") or {}), "days": days}
        targets = [int(t) for t in _floats(target, "--target")]
        jobs = build_jobs(
            data,
            str(base) if base else None,
            targets,
            _floats(quantile, "--quantile"),
            _floats(budget, "--budget"),
            [w.strip() for w in (workload or "").split(",") if w.strip()],
            controller_for,
        )
        rows = run_sweep(jobs, engine, workers, scheduler)  # type: ignore[arg-type]
        import pandas as pd

        df = pd.DataFrame(rows)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(out, index=False, float_format="%.6g")
        if as_json:
            typer.echo(df.to_json(orient="records", indent=2))
        else:
            cols = [
                c
                for c in (
                    "workload",
                    "budget_hourly",
                    "policy",
                    "tau_u_pct",
                    "theta_u_pct",
                    "slo_violation_minutes",
                    "cost_usd",
                    "cost_vs_oracle",
                    "cost_vs_hpa_at_equal_tau_u",
                    "gap_closed",
                )
                if c in df.columns
            ]
            typer.echo(df[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
            if out is not None:
                typer.echo(f"rows: {out}")
