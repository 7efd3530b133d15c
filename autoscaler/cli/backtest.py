"""``autoscaler backtest``: rolling-origin evaluation of forecasters on a trace file.

Why: the forecaster decides everything downstream, so its quality must be measured
the way it is used: at each origin, with only the past, as a quantile of the peak
over the lead time. This command loads a trace (``models.traces``, strict checks),
runs ``models.backtest`` for the chosen model and the simple baselines, and prints a
table (rich) or a JSON report; ``--forecasts`` writes the chosen model's forecast at
every origin. Bad input is one error line and exit status 2 (``InputError``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from autoscaler.cli.common import json_safe
from models import units
from models.backtest import (
    SIMPLE_BASELINES,
    BacktestConfig,
    BacktestResult,
    check_length,
    compare,
    default_initial,
    default_refit_every,
    run_backtest,
)
from models.common import horizon_steps
from models.errors import InputError
from models.registry import DEFAULT_MODEL, FORECASTERS
from models.traces import Trace, load_trace


def parse_duration(text: str, flag: str = "--horizon") -> float:
    """``90s``, ``2m``, ``1h``, ``1d`` or plain seconds -> seconds (> 0)."""
    return units.parse_duration(text, flag)


def parse_quantile_list(text: str) -> list[tuple[str, float]]:
    """``"0.5,0.9"`` -> [("0.5", 0.5), ("0.9", 0.9)], keeping the text as given."""
    return units.parse_quantile_list(text, "--quantiles")


def write_forecasts(path: Path, trace: Trace, result: BacktestResult, names: list[str]) -> None:
    """One row per origin: the origin in the trace's format, then one column per level."""
    try:
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["origin", *[f"q{n}" for n in names]])
            for ts, row in zip(result.index, result.forecasts, strict=True):
                w.writerow([trace.format_timestamp(ts), *[f"{v:.6g}" for v in row]])
    except OSError as err:
        raise InputError("--forecasts", f"cannot write {path}: {err}", "check the path") from err


def _table(report: dict[str, Any], names: list[str], title: str) -> Table:
    t = Table(title=title)
    t.add_column("model")
    t.add_column("MAE q0.5", justify="right")
    for n in names:
        t.add_column(f"pinball q{n}", justify="right")
    for n in names:
        t.add_column(f"cover q{n}", justify="right")
    t.add_column("x best baseline", justify="right")
    for model, m in report.items():
        ratio = m.get("pinball_ratio", {})
        key = "0.9" if "0.9" in ratio else next(iter(ratio), "")
        t.add_row(
            model,
            f"{m['mae']:.4g}",
            *[f"{m['pinball'][f'{float(n):g}']:.4g}" for n in names],
            *[f"{m['coverage'][f'{float(n):g}']:.3f}" for n in names],
            f"{ratio[key]:.3f} (q{key})" if key else "-",
        )
    return t


def backtest(
    trace: Annotated[Path, typer.Option("--trace", help="CSV file with header timestamp,value.")],
    horizon: Annotated[
        str, typer.Option(help="Lead time whose peak is forecast: 90s, 2m, 1h. Steps: ceil.")
    ] = "2m",
    quantiles: Annotated[str, typer.Option(help="Quantile levels, comma-separated.")] = (
        "0.5,0.9,0.99"
    ),
    model: Annotated[str, typer.Option(help="Forecaster (registry name).")] = DEFAULT_MODEL,
    value_unit: Annotated[
        str, typer.Option(help="per-interval (count per row) or per-second (rate).")
    ] = "per-interval",
    fill_gaps: Annotated[
        str | None, typer.Option(help="Fill missing rows explicitly: zero or hold.")
    ] = None,
    every: Annotated[int, typer.Option(help="Forecast at every N-th origin (N >= 1).")] = 1,
    forecasts: Annotated[
        Path | None, typer.Option(help="Write the model's forecast per origin to this CSV.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
    baselines: Annotated[
        bool, typer.Option(help="Also run the simple baselines (needed for ratios).")
    ] = True,
    initial: Annotated[
        str | None,
        typer.Option(help="Warm-up before the first origin, from the trace's start: 1d, 12h."),
    ] = None,
    refit_every: Annotated[
        str | None, typer.Option(help="Refit from scratch this often (default: 1d).")
    ] = None,
) -> None:
    """Rolling-origin backtest: quantiles of the peak over --horizon, from the past only.

    At each origin the model sees only rows at or before it; the target is the maximum
    of the values with timestamps in (origin, origin + horizon]. A 2m horizon on a 5m
    trace is the next row. Reports MAE of the median, pinball loss and coverage per
    quantile, and ratios to the best simple baseline (last, seasonal-naive daily and
    weekly, last-hour-mean). The warm-up (--initial, default one day and at least 60
    rows) and the refits (--refit-every, default one day) count from the trace's first
    row, never from its length: cutting the trace never changes an earlier forecast.
    """
    levels = parse_quantile_list(quantiles)
    seconds = parse_duration(horizon)
    if model not in FORECASTERS:
        raise InputError(
            "--model", f"unknown model {model!r}", f"choose one of {', '.join(sorted(FORECASTERS))}"
        )
    if every < 1:
        raise InputError("--every", f"{every} is below 1", "use 1 or more")
    tr = load_trace(trace, value_unit=value_unit, fill_gaps=fill_gaps)
    h = horizon_steps(seconds, tr.step_seconds)
    if h >= len(tr):
        raise InputError(
            "--horizon",
            f"{horizon} is {h:,} steps of {tr.step_seconds} s, as long as the whole trace "
            f"{trace} ({len(tr):,} rows) or longer",
            "use a shorter --horizon",
        )
    warm_up = (
        default_initial(tr.step_seconds) if initial is None else _steps(initial, "--initial", tr)
    )
    refit = (
        default_refit_every(tr.step_seconds)
        if refit_every is None
        else _steps(refit_every, "--refit-every", tr)
    )
    check_length(len(tr), warm_up, h, tr.step_seconds, str(trace))
    config = BacktestConfig(
        horizon=h,
        quantiles=tuple(q for _, q in levels),
        initial=warm_up,
        refit_every=refit,
        every=every,
    )
    names = [model] + ([b for b in SIMPLE_BASELINES if b != model] if baselines else [])
    err_console = Console(stderr=True)
    results: list[BacktestResult] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} origins"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as bar:
        for name in names:
            task = bar.add_task(name, total=None)

            def tick(done: int, total: int, task: Any = task) -> None:
                bar.update(task, completed=done, total=total)

            results.append(run_backtest(tr.series, name, config, progress=tick))
    report = compare(results)
    if forecasts is not None:
        write_forecasts(forecasts, tr, results[0], [n for n, _ in levels])
    meta = {
        "trace": str(trace),
        "rows": len(tr),
        "step_seconds": tr.step_seconds,
        "value_unit": tr.value_unit,
        "horizon_seconds": seconds,
        "horizon_steps": h,
        "quantiles": [q for _, q in levels],
        "initial": config.initial,
        "refit_every": config.refit_every,
        "every": every,
        "model": model,
    }
    if as_json:
        doc = json_safe({**meta, "models": report})
        typer.echo(json.dumps(doc, indent=2, allow_nan=False, default=str))
        return
    title = (
        f"{trace.name}: {len(tr)} rows of {tr.step_seconds}s, horizon {horizon} = {h} step(s), "
        f"{report[model]['origins']} origins"
    )
    out = Console()
    if not out.is_terminal:
        out = Console(width=160)  # piped or captured: do not squeeze the table to 80
    out.print(_table(report, [n for n, _ in levels], title))
    for r in results:
        for note, count in r.notes.items():
            typer.echo(f"note: {r.model}: {note} ({count} origins)")


def _steps(text: str, flag: str, trace: Trace) -> int:
    """A duration flag as whole rows of the trace (it must be a multiple of the step)."""
    seconds = parse_duration(text, flag)
    k = seconds / trace.step_seconds
    if abs(k - round(k)) > 1e-9:
        raise InputError(
            flag,
            f"{text} is not a whole number of {trace.step_seconds:g}-s rows",
            f"use a multiple of {trace.step_seconds:g} s",
        )
    return int(round(k))


def register(app: typer.Typer) -> None:
    """Add the ``backtest`` command."""
    app.command(name="backtest")(backtest)
