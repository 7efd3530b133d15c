"""``last``: the last observed value, the reactive baseline.

The point forecast of the peak over the next ``horizon`` steps is the last value. Its
quantiles come from the empirical distribution of recent ratios
``peak(next horizon) / last`` (so it is an honest baseline, not a strawman with zero
spread). Reactive autoscalers (the stock HPA) effectively use this model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd

from models.base import Forecast
from models.common import check_levels, make_forecast
from models.errors import NotFittedError


class LastValue:
    """Last value; quantiles from empirical ``peak / last`` ratios over ``window`` points."""

    name = "last"

    def __init__(self, window: int = 2880) -> None:
        self.window = window
        self.y_: np.ndarray | None = None

    def fit(self, y: pd.Series) -> Self:
        self.y_ = y.to_numpy(dtype=float)[-self.window :]
        return self

    def update(self, y_new: pd.Series) -> Self:
        if self.y_ is None:
            return self.fit(y_new)
        self.y_ = np.concatenate([self.y_, y_new.to_numpy(dtype=float)])[-self.window :]
        return self

    def predict(self, horizon: int, quantiles: Sequence[float]) -> Forecast:
        if self.y_ is None:
            raise NotFittedError("LastValue.predict called before fit")
        quantiles = check_levels(quantiles)
        y = self.y_[np.isfinite(self.y_)]
        last = float(y[-1]) if y.size else 0.0
        qs = {float(q): last for q in quantiles}
        if y.size > horizon + 1 and last > 0:
            from numpy.lib.stride_tricks import sliding_window_view

            peaks = sliding_window_view(y[1:], horizon).max(axis=1)
            base = y[: peaks.size]
            ok = base > 0
            if ok.any():
                ratios = peaks[ok] / base[ok]
                qs = {float(q): last * float(np.quantile(ratios, q)) for q in quantiles}
        return make_forecast(horizon, last, qs, self.name)
