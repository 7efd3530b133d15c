"""``auto``: the default forecaster. Picks per series and per quantile, calibrates.

Why: no single model wins on every series (a noisy per-minute counter wants a smoothed
level, an hourly series with a strong daily cycle wants the seasonal shape, a bursty
one wants the last value), and a nominal q0.9 is only useful to the scaling policy if
it really covers about 90 %.

How, at every ``predict(horizon, quantiles)`` and using only the stored history:

1. Candidates. Cheap point forecasts of the peak of the next ``horizon`` steps, each
   computable at every past origin in one vectorised pass: the last value, two
   exponentially weighted levels, the trailing hour mean, and, when there is at least
   one season plus a calibration window of history, seasonal ones (the seasonal-naive
   peak, and a level plus the change one season ago, from one day ago, the average of
   up to seven days ago, and one week ago), and the equal-weight mean of all of them.
2. Rolling-origin scores. For the last ``calib`` origins whose target is already
   observed (origin ``t`` with ``t + horizon`` at or before the last observation),
   each candidate's residual ``(peak - forecast) / scale`` is known, where ``scale``
   is a slow level of the series (so the spread follows the volume).
3. Conformal calibration. A candidate's q-quantile forecast is its point forecast plus
   ``scale`` times the split-conformal quantile of those recent residuals.
4. Choice. Per requested level, the candidate whose calibrated forecast had the lowest
   pinball loss over the same recent window wins. ``Forecast.details`` says which.

Nothing is learned at ``fit``: a prediction depends only on the stored history, so
``update`` + ``predict`` equals ``fit`` on the same data + ``predict``, and the
forecast at origin ``t`` can only use data up to ``t``. Short history falls back
cleanly (fewer candidates, then the last value) and says why in ``Forecast.note``.
Cost: a few vectorised numpy passes over ``calib`` points plus the seasonal lags.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np
from scipy.signal import lfilter

from models.base import Forecast
from models.common import (
    DAY_SECONDS,
    HOUR_SECONDS,
    WEEK_SECONDS,
    check_levels,
    conformal_level,
    future_peaks,
    make_forecast,
    period_steps,
    pinball,
    trailing_mean,
)
from models.history import HistoryModel

#: fewest calibration origins for a calibrated forecast (below: last value + note).
MIN_CALIB = 20


def _ewma(x: np.ndarray, alpha: float) -> np.ndarray:
    """Causal exponentially weighted mean, started at ``x[0]``."""
    if x.size == 0:
        return x
    out, _ = lfilter([alpha], [1.0, alpha - 1.0], x, zi=[(1.0 - alpha) * x[0]])
    return np.asarray(out)


class AutoForecaster(HistoryModel):
    """Per-series, per-quantile choice among cheap candidates, conformally calibrated.

    ``calib_days``: length of the recent window used to score and calibrate, in days of
    data, clamped to ``[min_calib, max_calib]`` origins (a day of 5-minute data is 288
    origins; 200 origins at least so that a q0.99 is more than the maximum).
    """

    name = "auto"

    def __init__(
        self,
        calib_days: float = 3.0,
        min_calib: int = 200,
        max_calib: int = 2000,
        avg_days: int = 7,
        only: Collection[str] | None = None,
        reselect_seconds: float = 3600.0,
        blend: int = 3,
    ) -> None:
        super().__init__(max_points=60_000)
        self.calib_days = calib_days
        self.min_calib = min_calib
        self.max_calib = max_calib
        self.avg_days = avg_days
        #: restrict to these ``point/scale`` candidates (for experiments and tests).
        self.only = only
        self.reselect_seconds = reselect_seconds
        #: average the calibrated forecasts of this many best candidates per level.
        self.blend = blend
        #: (horizon, levels) -> (total_ at selection, level -> chosen "point/scale"s).
        self.selected_: dict[
            tuple[int, tuple[float, ...]], tuple[int, dict[float, tuple[str, ...]]]
        ] = {}

    def _fit_state(self) -> None:
        self.selected_ = {}

    def _calib_len(self) -> int:
        w = round(self.calib_days * DAY_SECONDS / self.step_)
        return int(min(self.max_calib, max(self.min_calib, w)))

    def _reselect_points(self) -> int:
        return max(1, round(self.reselect_seconds / self.step_))

    def predict(self, horizon: int, quantiles: Sequence[float]) -> Forecast:
        y = self._history()
        levels = check_levels(quantiles)
        h = horizon
        n = y.size
        calib = min(self._calib_len(), n - h - 1)
        if calib < MIN_CALIB:
            last = float(y[-1]) if n else 0.0
            note = (
                f"history too short to calibrate (needs {MIN_CALIB + h + 1} points): "
                "using the last value"
            )
            return make_forecast(h, last, dict.fromkeys(levels, last), self.name, note)
        notes: list[str] = []
        lags = self._seasonal_lags(n, h, calib, notes)
        key = (h, tuple(levels))
        cached = self.selected_.get(key)
        needed: set[str] | None = None
        if cached is not None and self.total_ - cached[0] < self._reselect_points():
            needed = {c.split("/")[0] for cs in cached[1].values() for c in cs}
        longest = max([0, *[lag for _, lag in lags]])
        warm = 200
        # Origins scored: the last `calib` with an observed target, plus the newest
        # `h` origins (no target yet, the last of them is "now").
        first_origin = n - h - calib
        start = max(0, first_origin - longest - warm)
        tail = y[start:]
        a = first_origin - start  # index in `tail` of the first scored origin
        points = self._candidates(tail, h, a, lags, needed)
        if needed is not None and not needed <= set(points):
            needed, points = None, self._candidates(tail, h, a, lags, None)
        target = future_peaks(tail, h)[a:]  # exactly `calib` targets
        eps = 1e-6 + 1e-3 * float(np.mean(tail))
        lo = max(0, a - warm)  # the slow level needs only a warm-up before `a`
        slow = np.maximum(_ewma(tail[lo:], 0.05)[a - lo :], eps)
        scales = {"level": slow, "sqrt": np.sqrt(slow * (float(slow.max()) + eps))}
        cal_levels = [conformal_level(q, calib) for q in levels]
        ks = [min(calib - 1, max(0, math.ceil(lv * calib) - 1)) for lv in cal_levels]
        picked: dict[float, tuple[str, ...]] | None = None if cached is None else cached[1]
        combos = (
            {f"{p}/{s}" for p in points for s in (*scales, "self")}
            if needed is None or picked is None
            else {c for cs in picked.values() for c in cs}
        )
        if self.only is not None:
            combos &= set(self.only)
        scores: dict[float, list[tuple[float, float, str]]] = {q: [] for q in levels}
        medians: dict[str, float] = {}
        for combo in sorted(combos):
            pname, sname = combo.split("/")
            c = points[pname]
            sc = np.maximum(c, eps) if sname == "self" else scales[sname]
            s_cal = sc[:calib]
            r = np.sort((target - c[:calib]) / s_cal)
            medians[combo] = float(c[-1]) + float(sc[-1]) * float(r[calib // 2])
            for q, k in zip(levels, ks, strict=True):
                if needed is not None and picked is not None and combo not in picked[q]:
                    continue
                rq = float(r[k])
                loss = 0.0
                if needed is None:
                    loss = pinball(target, np.maximum(c[:calib] + s_cal * rq, 0.0), q)
                scores[q].append((loss, float(c[-1]) + float(sc[-1]) * rq, combo))
        if needed is None or picked is None:
            # The `blend` best by recent pinball loss; ties broken by name (sorted).
            picked = {q: tuple(c for _, _, c in sorted(scores[q])[: self.blend]) for q in levels}
            self.selected_[key] = (self.total_, picked)
        values = {
            q: max(float(np.mean([v for _, v, c in scores[q] if c in picked[q]])), 0.0)
            for q in levels
        }
        details = {f"q{q:g}.pinball": min(x[0] for x in scores[q]) for q in levels}
        chosen = sorted({c for q in levels for c in picked[q]})
        mid = min(levels, key=lambda q: abs(q - 0.5))
        mean_pred = float(np.mean([medians[c] for c in picked[mid]]))
        model = self.name + ":" + "+".join(chosen)
        return make_forecast(h, mean_pred, values, model, "; ".join(notes), details)

    def _seasonal_lags(self, n: int, h: int, calib: int, notes: list[str]) -> list[tuple[str, int]]:
        """Seasonal lags (name, steps) with enough history: one season + calib + h."""
        out: list[tuple[str, int]] = []
        for label, seconds in (("daily", DAY_SECONDS), ("weekly", WEEK_SECONDS)):
            s = period_steps(seconds, self.step_)
            if s is None or s < h:
                notes.append(f"{label} season is not a whole number of steps: skipped")
                continue
            if n < s + calib + h + 1:
                notes.append(
                    f"{label} candidates off: history is shorter than one season "
                    f"plus the calibration window ({s + calib + h + 1} points)"
                )
                continue
            out.append((label, s))
            if label == "daily":
                k = min(self.avg_days, (n - calib - h - 1) // s)
                if k >= 2:
                    out.append((f"daily-avg{k}", s * k))
        return out

    def _candidates(
        self,
        y: np.ndarray,
        h: int,
        a: int,
        lags: list[tuple[str, int]],
        needed: set[str] | None,
    ) -> dict[str, np.ndarray]:
        """Point forecasts at origins ``a .. len(y)-1`` (index-aligned arrays).

        ``needed``: compute only these candidates (None: all of them).
        """
        if needed is not None and "mean-of-all" in needed:
            needed = None
        k_hour = max(1, round(HOUR_SECONDS / self.step_))
        base_names = ["last", "ewm0.5", "ewm0.2"] + (["hour-mean"] if k_hour >= 3 else [])
        if needed is not None:
            base_names = [b for b in base_names if any(c.split("+")[0] == b for c in needed)]
        makers = {
            "last": lambda: y,
            "ewm0.5": lambda: _ewma(y, 0.5),
            "ewm0.2": lambda: _ewma(y, 0.2),
            "hour-mean": lambda: trailing_mean(y, k_hour),
        }
        bases = {b: makers[b]() for b in base_names}
        out: dict[str, np.ndarray] = {
            name: b[a:] for name, b in bases.items() if needed is None or name in needed
        }
        fp = future_peaks(y, h)
        t = np.arange(a, y.size)
        for label, lag in lags:
            if not label.startswith("daily-avg") and (
                needed is None or f"snaive-{label}" in needed
            ):
                out[f"snaive-{label}"] = fp[t - lag]
            # A level now plus the change from level to peak seen one season (or the
            # average of several days) ago: the seasonal shape without its noise.
            k = int(label.removeprefix("daily-avg")) if label.startswith("daily-avg") else 1
            s = lag // k
            for bname, b in bases.items():
                name = f"{bname}+{label}"
                if needed is not None and name not in needed:
                    continue
                shift = fp[t - s] - b[t - s]
                for j in range(2, k + 1):
                    shift = shift + (fp[t - j * s] - b[t - j * s])
                out[name] = np.maximum(b[a:] + shift / k, 0.0)
        if needed is None:
            out["mean-of-all"] = np.mean(list(out.values()), axis=0)
        return out
