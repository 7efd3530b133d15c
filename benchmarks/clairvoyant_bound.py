"""How much of issue 4's gap could a perfect forecaster of the *level* close?

A bound, not a policy: the same decision path (``decide``: priced cover, adaptive
price, reactive floor, ``served_value``, the emulated HPA) run with a forecaster that
cheats. At each origin it knows the true smooth rate around the samples it forecasts,
estimated from the trace itself on both sides of them (a centred mean over ``--window``
samples that leaves the forecast samples out, so it knows the level but not their
noise), and the spread of the peak around that level, calibrated on the whole trace
(``(peak - level) / sqrt(level)``, Poisson-like). With ``--spread-window W`` the spread
is local instead: the quantile of that standardised peak over the ``W`` origins centred
on the forecast one (so it also knows the spread of the regime it is in, in advance).
A reference point, not a proof: a causal forecaster cannot know the level in advance,
and no reference can show that nothing else in the history would help. Where even
this policy closes little of the gap, what is left is mostly noise from sample to
sample, which the oracle sees and nobody can forecast. The smaller ``--window``, the
more the level knows about the samples next to the ones it forecasts (5 is a strong
peek). Same setting and scoring as
``benchmarks/predictive_vs_hpa.py`` (issue 4), with ``predictive`` at its defaults in
the same run as the baseline.

    .venv/bin/python benchmarks/clairvoyant_bound.py [--traces CSV ...] [--unseen]
        [--window 15] [--spread-window W] [--days 14] [--peak 40] [--workers 2]
        [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from autoscaler.cli.simworld import controller_for  # noqa: E402
from models.base import Forecast  # noqa: E402
from models.common import check_levels, future_peaks, make_forecast  # noqa: E402


class ClairvoyantLevel:
    """Knows the whole series; forecasts the peak of the next ``h`` samples from the
    true level around them (non-causal) and a spread calibrated on the whole series."""

    name = "clairvoyant-level"

    def __init__(self, series: pd.Series, window: int, spread_window: int = 0) -> None:
        self.y = np.maximum(np.nan_to_num(series.to_numpy(dtype=float)), 0.0)
        self.stamps = pd.DatetimeIndex(series.index).as_unit("ns").asi8
        self.window = max(2, window)
        #: 0: one spread for the whole series; else centred over this many origins.
        self.spread_window = spread_window
        local = f", local spread over {spread_window}" if spread_window else ""
        self.name = f"clairvoyant-level-w{self.window}{local} (non-causal)"
        self.pos: int | None = None
        self._by_h: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._zq: dict[tuple[int, float], np.ndarray] = {}

    def fit(self, y: pd.Series) -> Self:
        self.pos = None
        return self.update(y)

    def update(self, y_new: pd.Series) -> Self:
        if len(y_new):
            last = pd.DatetimeIndex(y_new.index)[-1:].as_unit("ns").asi8[0]
            self.pos = int(np.searchsorted(self.stamps, last, side="right")) - 1
        return self

    def _level(self, h: int) -> tuple[np.ndarray, np.ndarray]:
        """Per origin: the level around samples t+1..t+h (those left out), and the
        standardised peak ``(peak - level) / sqrt(level)`` (NaN where undefined)."""
        if h not in self._by_h:
            y = self.y
            n = y.size
            c = np.concatenate([[0.0], np.cumsum(y)])
            t = np.arange(n)
            half = self.window // 2
            lo = np.clip(t + 1 - half, 0, n)
            hi = np.clip(t + h + 1 + half, 0, n)
            a, b = np.clip(t + 1, 0, n), np.clip(t + h + 1, 0, n)
            total = (c[hi] - c[lo]) - (c[b] - c[a])
            count = (hi - lo) - (b - a)
            level = np.where(count > 0, total / np.maximum(count, 1), y)
            peaks = np.full(n, np.nan)
            fp = future_peaks(y, h)
            peaks[: fp.size] = fp
            z = (peaks - level) / np.sqrt(np.maximum(level, 1e-9))
            self._by_h[h] = (level, z)
        return self._by_h[h]

    def predict(self, horizon: int, quantiles: Sequence[float]) -> Forecast:
        levels = check_levels(quantiles)
        if self.pos is None:
            return make_forecast(horizon, 0.0, dict.fromkeys(levels, 0.0), self.name)
        level, z = self._level(horizon)
        for q in levels:
            if (horizon, q) not in self._zq:
                self._zq[horizon, q] = self._spread(z, q)
        lv = float(level[self.pos])
        root = math.sqrt(max(lv, 0.0))
        values = {q: max(lv + root * float(self._zq[horizon, q][self.pos]), 0.0) for q in levels}
        return make_forecast(horizon, values.get(0.5, lv), values, self.name)

    def _spread(self, z: np.ndarray, q: float) -> np.ndarray:
        """Per origin, the q-quantile of the standardised peak: global, or centred."""
        finite = z[np.isfinite(z)]
        overall = float(np.quantile(finite, q)) if finite.size else 0.0
        if not self.spread_window:
            return np.full(z.size, overall)
        local = (
            pd.Series(z)
            .rolling(self.spread_window, center=True, min_periods=max(10, self.spread_window // 4))
            .quantile(q)
            .to_numpy()
        )
        return np.where(np.isfinite(local), local, overall)


def run_one(trace: str, days: float, peak: int, window: int, spread: int = 0) -> dict[str, Any]:
    from predictive_vs_hpa import scenario_data

    import models.registry as registry
    from simulations import report
    from simulations.scenario import prepare, scenario_from_dict, simulate
    from simulations.strategies import Predictive, PredictiveSettings

    t0 = time.perf_counter()
    prepared = prepare(
        scenario_from_dict(scenario_data(trace, days, peak, 0.0), trace),
        controller=controller_for,
    )
    observed = prepared.demand.observed
    registry.FORECASTERS["clairvoyant-level"] = lambda: ClairvoyantLevel(observed, window, spread)
    cheat = Predictive(PredictiveSettings(forecaster="clairvoyant-level"), name="clairvoyant-level")
    result = simulate(prepared, frontier=True, workers=1, extra_policies=[cheat])
    out = report.to_json(report.score(result))
    out["seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    from predictive_vs_hpa import add_run_args, gather, trace_list

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_args(ap)
    ap.add_argument(
        "--window",
        type=int,
        default=15,
        help="the level is the mean of window // 2 samples on each side of the forecast ones",
    )
    ap.add_argument(
        "--spread-window",
        type=int,
        default=0,
        help="know the spread per regime too: its quantile over this many origins centred "
        "on the forecast one (default 0: one spread for the whole trace)",
    )
    args = ap.parse_args()
    if args.window < 2:
        ap.error(f"--window {args.window}: the level needs at least 2 samples (e.g. 15)")
    if args.spread_window and args.spread_window < 20:
        ap.error(f"--spread-window {args.spread_window}: use 0 (global) or at least 20 origins")
    traces = trace_list(args.traces, args.unseen)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {
            str(t): pool.submit(
                run_one, str(t), args.days, args.peak, args.window, args.spread_window
            )
            for t in traces
        }
        results = gather(futures)
    print(
        f"window={args.window} samples, spread window={args.spread_window or 'global'}, "
        f"days={args.days:g}, peak={args.peak}, "
        f"wall={time.perf_counter() - t0:.0f}s"
    )
    print(f"{'trace':34} {'policy':18} {'tau_U %':>8} {'x oracle':>8} {'gap closed':>10}")
    rows: dict[str, Any] = {}
    for name, res in results.items():
        trace = Path(name).stem
        pol = res["policies"]
        oracle_cost = pol["oracle"]["cost_usd"]
        rows[trace] = {}
        for label in ("predictive", "clairvoyant-level"):
            s = pol[label]
            gap = s.get("gap_closed")
            x_oracle = s["cost_usd"] / oracle_cost if oracle_cost else float("nan")
            print(
                f"{trace:34} {label:18} {s['tau_u_pct']:8.2f} {x_oracle:8.2f} "
                f"{'' if gap is None else f'{gap:10.2f}':>10}"
            )
            rows[trace][label] = {
                "tau_u_pct": s["tau_u_pct"],
                "cost_vs_oracle": x_oracle,
                "gap_closed": gap,
            }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
