"""Leaderboard: every registered forecaster on every bundled trace, at 2m and 10m.

Runs the rolling-origin backtest (``models.backtest``) with the documented defaults
(warm-up of one day from the series' start, refit daily) and prints, per trace and horizon,
each model's MAE of the median, q0.9 pinball loss, its ratio to the best simple
baseline, and coverage of q0.5/q0.9/q0.99. Not a test: it prints figures.

    .venv/bin/python benchmarks/forecast_leaderboard.py [--every 5] [--models a,b]
        [--horizons 120,600] [--traces nasa,wiki] [--json OUT.json] [--resample N]
        [--trace-files A.csv B.csv] [--no-bundled]

``--resample N`` sums every N rows first (a count per interval stays a count): traces at
a step the models were never looked at with, to check that nothing is tuned to the
bundled five. ``--synthetic`` adds seeded synthetic series (Poisson around daily and
weekly cycles with a level shift, and a bursty one).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from models.backtest import BacktestConfig, compare, default_config, run_backtest
from models.base import Forecaster
from models.common import horizon_steps
from models.registry import FORECASTERS
from models.traces import bundled_traces, load_trace


def synthetic() -> dict[str, tuple[pd.Series, int]]:
    """Seeded series unlike the bundled ones (different steps, cycles, noise, bursts)."""
    rng = np.random.default_rng(2026)
    out: dict[str, tuple[pd.Series, int]] = {}
    # 2-minute steps, 21 days: daily + weekly cycle, level shift x1.8 on day 12.
    step = 120
    t = np.arange(21 * 720) * step
    rate = 80 * (1 + 0.5 * np.sin(2 * np.pi * t / 86400)) * (1 - 0.3 * (t // 86400 % 7 >= 5))
    rate = rate * np.where(t >= 12 * 86400, 1.8, 1.0)
    idx = pd.date_range("2026-03-02", periods=t.size, freq=f"{step}s", tz="UTC")
    out["synthetic daily+weekly+shift 2min"] = (pd.Series(rng.poisson(rate), idx, float), step)
    # 1-minute steps, 10 days: low volume, bursts of x5 lasting ~10 minutes.
    step = 60
    t = np.arange(10 * 1440) * step
    rate = 6 * (1 + 0.7 * np.sin(2 * np.pi * t / 86400 + 1.0))
    burst = np.zeros(t.size)
    for s in rng.choice(t.size - 20, size=40, replace=False):
        burst[s : s + rng.integers(3, 15)] = 4.0
    idx = pd.date_range("2026-05-04", periods=t.size, freq=f"{step}s", tz="UTC")
    y = pd.Series(rng.poisson(rate * (1 + burst)), idx, float)
    out["synthetic bursty low-volume 1min"] = (y, step)
    return out


def _clairvoyant(y: pd.Series, window: int) -> Callable[[], Forecaster]:
    from clairvoyant_bound import ClairvoyantLevel

    return lambda: ClairvoyantLevel(y, window)


def _windows(text: str) -> list[int]:
    """``--clairvoyant``: a comma-separated list of whole numbers of samples, each >= 2."""
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use whole numbers, e.g. 5,15,61") from None
    if any(w < 2 for w in out):
        raise argparse.ArgumentTypeError(f"{text!r}: each window needs at least 2 samples")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=5, help="predict at every N-th origin")
    ap.add_argument("--models", default=",".join(sorted(FORECASTERS)))
    ap.add_argument("--horizons", default="120,600", help="seconds, comma-separated")
    ap.add_argument("--traces", default="", help="substrings of trace names to keep")
    ap.add_argument("--json", default="", help="also write the figures to this file")
    ap.add_argument("--resample", type=int, default=1, help="sum every N rows first")
    ap.add_argument("--synthetic", action="store_true", help="add seeded synthetic series")
    ap.add_argument("--no-bundled", action="store_true", help="skip the bundled traces")
    ap.add_argument(
        "--trace-files", nargs="*", default=[], help="also score these trace CSVs (any path)"
    )
    ap.add_argument(
        "--clairvoyant",
        type=_windows,
        default=[],
        help="also run the NON-CAUSAL reference of benchmarks/clairvoyant_bound.py (it knows "
        "the level around the forecast samples) with these centred windows, e.g. 5,15,61",
    )
    ap.add_argument(
        "--refit-days",
        type=float,
        default=1.0,
        help="refit from scratch every this many days of data (default 1, as the CLI)",
    )
    args = ap.parse_args()
    models = args.models.split(",")
    keep = [s for s in args.traces.split(",") if s]
    out: dict[str, dict[str, object]] = {}
    started = time.perf_counter()
    series: dict[str, tuple[pd.Series, int]] = {}
    given = [Path(p) for p in args.trace_files]
    for path in ([] if args.no_bundled else bundled_traces()) + given:
        if keep and not any(k in path.name for k in keep):
            continue
        trace = load_trace(path)
        y, step = trace.series, trace.step_seconds
        if args.resample > 1:
            n = len(y) // args.resample * args.resample
            y = y.iloc[:n].groupby(np.arange(n) // args.resample).sum()
            y.index = trace.series.index[: n : args.resample]
            step *= args.resample
        name = path.stem + (f" resampled x{args.resample}" if args.resample > 1 else "")
        series[name] = (y, step)
    if args.synthetic:
        series.update(synthetic())
    for name, (y, step) in series.items():
        for seconds in [float(s) for s in args.horizons.split(",")]:
            h = horizon_steps(seconds, step)
            cfg = default_config(len(y), step, h, (0.5, 0.9, 0.99), args.every)
            refit = max(24, round(args.refit_days * 86400 / step))
            cfg = BacktestConfig(cfg.horizon, cfg.quantiles, cfg.initial, refit, cfg.every)
            results = [run_backtest(y, m, cfg) for m in models]
            for w in args.clairvoyant:
                results.append(run_backtest(y, _clairvoyant(y, w), cfg))
            table = compare(results)
            key = f"{name} @ {seconds:g}s"
            out[key] = table
            base = next(iter(table.values())).get("baseline", "-")
            print(f"\n## {key} (h = {h} steps, best simple baseline: {base})")
            print(
                "| model | MAE | pinball q0.9 | x baseline q0.9 | cover q0.5 | cover q0.9 "
                "| cover q0.99 | seconds |"
            )
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            for name, m in sorted(table.items(), key=lambda kv: kv[1]["pinball"]["0.9"]):
                ratio = m.get("pinball_ratio", {}).get("0.9", float("nan"))
                cov = m["coverage"]
                print(
                    f"| {name} | {m['mae']:.4g} | {m['pinball']['0.9']:.4g} | {ratio:.3f} "
                    f"| {cov['0.5']:.3f} | {cov['0.9']:.3f} | {cov['0.99']:.3f} "
                    f"| {m['seconds']:.1f} |",
                    flush=True,
                )
    print(
        f"\ntotal wall time: {time.perf_counter() - started:.0f} s "
        f"(every={args.every}, refit every {args.refit_days:g} days)"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
