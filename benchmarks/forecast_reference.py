"""Non-causal references for issue 2's bar: how low can q0.9 pinball go with hindsight?

Issue 2 asks ``auto``'s q0.9 pinball at the 2-minute horizon to be at most 0.85x the
best simple baseline on every bundled trace. This script asks what forecasters that
*cheat* reach on the same origins, as a ratio to the same baseline:

* ``centred mean xc (k)``: the mean of the ``k`` samples before the target and the
  ``k`` after it (the target samples left out), times one factor ``c`` chosen with
  hindsight to minimise the pinball over the whole trace;
* ``centred q0.9 xc (k)``: the same with the empirical 0.9-quantile of those ``2k``
  samples (so it knows the local spread too);
* ``cross-fitted GBM``: scikit-learn's quantile HistGradientBoostingRegressor on the
  ``k`` samples on each side (normalised by their mean), their log mean, the time of
  day and the day of week, trained on the other four fifths of the days and scored on
  the fifth (five folds by day), and the same with the past side only.

None of them is a forecaster (each looks at the future); they bound what knowing the
level, the local spread or a learned shape would give. Where even they stay above
0.85, the bar is beyond what the trace's history can tell. The baselines are the
registered simple ones, run by the same rolling-origin backtest as the leaderboard
(every origin).

    .venv/bin/python benchmarks/forecast_reference.py [--traces elb,twitter] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.backtest import SIMPLE_BASELINES, default_config, run_backtest  # noqa: E402
from models.common import future_peaks, horizon_steps, pinball  # noqa: E402
from models.traces import Trace, bundled_traces, load_trace  # noqa: E402

Q = 0.9
KS = (1, 3, 6, 12, 36)
SCALES = np.linspace(0.3, 3.0, 271)


def neighbours(y: np.ndarray, origins: np.ndarray, h: int, k: int, side: str) -> np.ndarray:
    """The ``k`` samples at or before each origin and/or the ``k`` after its target."""
    n = y.size
    cols = []
    j = np.arange(k)
    if side in ("both", "past"):
        cols.append(y[np.clip(origins[:, None] - j[None, :], 0, n - 1)])
    if side in ("both", "future"):
        cols.append(y[np.clip(origins[:, None] + h + 1 + j[None, :], 0, n - 1)])
    return np.concatenate(cols, axis=1)


def best_scaled(target: np.ndarray, base: np.ndarray) -> tuple[float, float]:
    """The lowest pinball of ``c * base`` over the grid of ``c``, and that ``c``."""
    return min((pinball(target, c * base, Q), float(c)) for c in SCALES)


def cross_fitted(trace: Trace, origins: np.ndarray, h: int, k: int, side: str) -> np.ndarray:
    """Out-of-fold q0.9 predictions of a quantile GBM on non-causal features."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    y = trace.values
    target = future_peaks(y, h)[origins]
    nb = neighbours(y, origins, h, k, side)
    level = nb.mean(axis=1) + 1e-6
    stamps = trace.series.index[origins]
    minute = np.asarray(stamps.hour * 60 + stamps.minute, dtype=float)
    weekday = np.asarray(stamps.day_of_week, dtype=float)
    x = np.column_stack([nb / level[:, None], np.log(level), minute, weekday])
    fold = (origins * trace.step_seconds // 86_400) % 5
    out = np.zeros(origins.size)
    for f in range(5):
        train, test = fold != f, fold == f
        model = HistGradientBoostingRegressor(
            loss="quantile", quantile=Q, max_iter=200, random_state=0
        )
        model.fit(x[train], target[train] / level[train])
        out[test] = np.maximum(model.predict(x[test]), 0.0) * level[test]
    return out


def run(path: Path) -> dict[str, Any]:
    trace = load_trace(path)
    y = trace.values
    h = horizon_steps(120.0, trace.step_seconds)
    cfg = default_config(len(y), trace.step_seconds, h, (0.5, Q, 0.99), 1)
    base = {}
    for name in SIMPLE_BASELINES:
        r = run_backtest(trace.series, name, cfg)
        base[name] = r.metrics()["pinball"][f"{Q:g}"]
        origins = r.origins
    best_name = min(base, key=lambda m: base[m])
    best = base[best_name]
    target = future_peaks(y, h)[origins]
    rows: dict[str, float] = {}
    for k in KS:
        nb = neighbours(y, origins, h, k, "both")
        rows[f"centred mean xc (k={k})"] = best_scaled(target, nb.mean(axis=1))[0] / best
        rows[f"centred q0.9 xc (k={k})"] = best_scaled(target, np.quantile(nb, Q, axis=1))[0] / best
    for side in ("past", "both"):
        pred = cross_fitted(trace, origins, h, 12, side)
        rows[f"cross-fitted GBM, {side} (k=12)"] = pinball(target, pred, Q) / best
    return {"baseline": best_name, "baseline_pinball": best, "h": h, "ratios": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", default="", help="substrings of trace names to keep")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    keep = [s for s in args.traces.split(",") if s]
    paths = [p for p in bundled_traces() if not keep or any(k in p.name for k in keep)]
    if not paths:
        ap.error(f"--traces {args.traces!r} matches no bundled trace")
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    for path in paths:
        res = run(path)
        out[path.stem] = res
        print(f"\n## {path.stem} (h = {res['h']} steps, best simple baseline: {res['baseline']})")
        print("| non-causal reference | q0.9 pinball / baseline |")
        print("|---|---:|")
        for label, ratio in res["ratios"].items():
            print(f"| {label} | {ratio:.3f} |")
        best = min(res["ratios"].values())
        print(f"lowest: {best:.3f} ({time.perf_counter() - t0:.0f} s so far)", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
