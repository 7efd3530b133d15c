"""``seasonal-naive``: the peak at the same time one season ago (daily or weekly).

The point forecast of the peak over the next ``horizon`` steps is the peak of the same
``horizon`` steps one season earlier. Quantiles scale it by empirical quantiles of the
ratio ``actual peak / seasonal-naive forecast`` over recent history, as ``last`` does.
With less than one season (plus the horizon) of history it falls back to the weekly ->
daily -> last-value chain and says so in ``Forecast.note``. One of the simple baselines
that the backtest compares every model against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from models.base import Forecast
from models.common import (
    DAY_SECONDS,
    WEEK_SECONDS,
    check_levels,
    future_peaks,
    make_forecast,
    period_steps,
)
from models.history import HistoryModel
from models.last import LastValue

Period = Literal["daily", "weekly"]
_SECONDS = {"daily": DAY_SECONDS, "weekly": WEEK_SECONDS}
_NOUN = {"daily": "day", "weekly": "week"}


class SeasonalNaive(HistoryModel):
    """Seasonal naive forecaster of the peak; ``period`` is ``daily`` or ``weekly``."""

    def __init__(self, period: Period = "daily", ratio_window: int = 2880) -> None:
        super().__init__(max_points=60_000)
        self.period = period
        self.ratio_window = ratio_window
        self.name = "seasonal-naive" if period == "daily" else "seasonal-naive-weekly"

    def predict(self, horizon: int, quantiles: Sequence[float]) -> Forecast:
        y = self._history()
        levels = check_levels(quantiles)
        chain: list[Period] = ["weekly", "daily"] if self.period == "weekly" else ["daily"]
        notes = []
        for period in chain:
            s = period_steps(_SECONDS[period], self.step_)
            if s is None or s < horizon:
                notes.append(f"{period} season is not a whole number of steps above the horizon")
                continue
            if y.size < s + horizon:
                notes.append(f"history shorter than one {_NOUN[period]} plus the horizon")
                continue
            return self._seasonal(y, s, horizon, levels, "; ".join(notes))
        # No usable season: behave exactly like the `last` baseline (its ratio quantiles).
        fallback = LastValue(window=self.ratio_window)
        fallback.y_ = y[-self.ratio_window :]
        f = fallback.predict(horizon, levels)
        note = "; ".join(notes) + ": using the last value"
        return make_forecast(horizon, f.mean, f.quantiles, self.name, note)

    def _seasonal(
        self, y: np.ndarray, s: int, horizon: int, levels: list[float], note: str
    ) -> Forecast:
        n = y.size
        point = float(np.max(y[n - s : n - s + horizon]))
        # The forecast the model would have made at each past origin t >= s.
        lo = max(s, n - horizon - self.ratio_window)
        window = y[lo - s :]
        fp = future_peaks(window, horizon)  # fp[j] = peak of window[j+1 .. j+horizon]
        # Origin t (window coordinates, t >= s) forecast fp[t - s]; its target is fp[t].
        targets = fp[s:]
        base = fp[: targets.size]
        values = dict.fromkeys(levels, point)
        if base.size >= 10:
            ok = base > 0
            if ok.sum() >= 10:
                r = targets[ok] / base[ok]
                values = {q: point * float(np.quantile(r, q)) for q in levels}
        return make_forecast(horizon, point, values, self.name, note)
