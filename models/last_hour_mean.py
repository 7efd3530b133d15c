"""``last-hour-mean``: the mean of the last hour times an empirical peak/mean ratio.

A smoothed reactive baseline: averaging the last hour removes most sampling noise from
the level, and the empirical quantiles of ``peak(next horizon) / trailing hour mean``
over recent history turn that level into quantiles of the peak. One of the simple
baselines of the backtest. With less than one hour of history it averages what there
is and says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.base import Forecast
from models.common import (
    HOUR_SECONDS,
    check_levels,
    make_forecast,
    ratio_quantiles,
    trailing_mean,
)
from models.history import HistoryModel


class LastHourMean(HistoryModel):
    """Mean of the last hour, scaled by empirical peak/mean ratio quantiles."""

    name = "last-hour-mean"

    def __init__(self, ratio_window: int = 2880) -> None:
        super().__init__(max_points=60_000)
        self.ratio_window = ratio_window

    def predict(self, horizon: int, quantiles: Sequence[float]) -> Forecast:
        y = self._history()
        levels = check_levels(quantiles)
        k = max(1, round(HOUR_SECONDS / self.step_))
        note = ""
        if y.size < k:
            note = f"history shorter than one hour ({y.size} of {k} points): mean of all of it"
        tail = y[-(self.ratio_window + horizon + k) :]
        means = trailing_mean(tail, k)
        level = float(means[-1]) if means.size else 0.0
        ratios = ratio_quantiles(tail, means, horizon, levels)
        if ratios is None:
            note = (note + "; " if note else "") + "too few origins for ratios: level only"
            values = dict.fromkeys(levels, level)
        else:
            values = {q: level * r for q, r in ratios.items()}
        return make_forecast(horizon, level, values, self.name, note)
