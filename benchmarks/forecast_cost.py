"""Cost of keeping one workload's forecast fresh, as the controller does.

Replays ``policies.decision``'s forecasting pattern on 14 days of 1-minute history
(the NASA trace, or a seeded synthetic series when asked): a decision every 15 s, a
new 1-minute sample every 4th decision, ``update`` + ``predict(horizon, [0.9])`` each
time and a full refit every ``refit_seconds`` (3600, the ``ScalingSpec`` default).
Prints the mean time per decision INCLUDING the amortised refits, per model, with
``last`` as the baseline measured in the same run. Not a test: it prints figures.

    .venv/bin/python benchmarks/forecast_cost.py [--models auto,last] [--hours 6]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import pandas as pd

from models.registry import make_forecaster
from models.traces import bundled_traces_dir, load_trace


def replay(name: str, y: pd.Series, start: int, hours: float, horizon: int) -> dict[str, float]:
    decisions = int(hours * 3600 / 15)
    refit_every = 3600 / 15  # decisions between refits
    timings: list[float] = []
    fits: list[float] = []
    t0 = time.perf_counter()
    model = make_forecaster(name).fit(y.iloc[:start])
    fits.append(time.perf_counter() - t0)
    seen = start
    for d in range(1, decisions + 1):
        t = time.perf_counter()
        if d % refit_every == 0:
            model = make_forecaster(name).fit(y.iloc[:seen])
            fits.append(time.perf_counter() - t)
        elif d % 4 == 0:  # a new 1-minute sample every 4th 15-second decision
            model.update(y.iloc[seen : seen + 1])
            seen += 1
        model.predict(horizon, [0.9])
        timings.append(time.perf_counter() - t)
    return {
        "mean_ms": 1000 * statistics.fmean(timings),
        "median_ms": 1000 * statistics.median(timings),
        "p99_ms": 1000 * sorted(timings)[int(0.99 * len(timings))],
        "fit_ms": 1000 * statistics.fmean(fits),
        "decisions": decisions,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="last,auto")
    ap.add_argument("--hours", type=float, default=6.0, help="hours of decisions replayed")
    ap.add_argument("--lead-seconds", type=float, default=105.0)
    args = ap.parse_args()
    trace = load_trace(bundled_traces_dir() / "nasa_http_jul1995_1min.csv")
    y = trace.rate_per_second
    start = 14 * 1440
    horizon = max(1, math.ceil(args.lead_seconds / 60))
    print(f"14 days of 1-minute history ({start} points), decisions every 15 s, refit hourly")
    print("| model | mean ms/decision (incl. refits) | median | p99 | ms per fit | x last |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = {m: replay(m, y, start, args.hours, horizon) for m in args.models.split(",")}
    ref = rows.get("last", {}).get("mean_ms", float("nan"))
    for m, r in rows.items():
        print(
            f"| {m} | {r['mean_ms']:.3f} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} "
            f"| {r['fit_ms']:.1f} | {r['mean_ms'] / ref:.1f} |"
        )


if __name__ == "__main__":
    main()
