"""``quantile-gbm``: gradient-boosted quantile regression of the peak, level-normalised.

One scikit-learn ``HistGradientBoostingRegressor`` with quantile loss per requested
level, on the features of ``models.features`` (recent lags, rolling mean / max / std,
trend, the peak one day and one week ago, hour of day and weekday), all divided by the
trailing-hour level, predicting ``peak(next horizon) / level`` directly. Normalising
by the level is what lets it survive shifts in traffic volume.

Training happens lazily at the first ``predict`` for a (horizon, level) pair, on the
history as it was at ``fit`` (so a prediction never depends on when it was asked),
on at most ``max_rows`` recent origins; ``update`` only appends history. Seeded
(``random_state``), so deterministic. With fewer than ``min_rows`` training origins it
falls back to the last value times empirical peak/last ratios and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.base import Forecast
from models.common import check_levels, make_forecast, ratio_quantiles
from models.features import FEATURE_NAMES, features, training_set
from models.history import HistoryModel


def single_thread() -> Any:
    """Run scikit-learn's OpenMP code on one thread.

    Why: the controller forecasts many workloads side by side, and on a busy machine
    OpenMP's spinning worker threads slow a small fit down by orders of magnitude (we
    measured a 1,000-row fit taking minutes on a loaded 2-core box). One thread per
    fit is predictable; parallelism belongs one level up, across workloads.
    """
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    return threadpool_limits(limits=1, user_api="openmp")


class QuantileGBM(HistoryModel):
    """Histogram GBM with quantile loss per level, on level-normalised features."""

    name = "quantile-gbm"

    def __init__(
        self,
        max_rows: int = 5000,
        min_rows: int = 200,
        max_iter: int = 80,
        random_state: int = 0,
    ) -> None:
        super().__init__(max_points=60_000)
        self.max_rows = max_rows
        self.min_rows = min_rows
        self.max_iter = max_iter
        self.random_state = random_state
        self.fit_len_ = 0
        self.models_: dict[tuple[int, float], Any] = {}
        self.empty_cols_: np.ndarray = np.zeros(len(FEATURE_NAMES), dtype=bool)

    def _fit_state(self) -> None:
        self.fit_len_ = self._history().size
        self.models_ = {}

    def _update_state(self, new: np.ndarray) -> None:
        # History may be trimmed at the front; keep the fit cut-off pointing at the
        # same observation.
        y = self._history()
        self.fit_len_ = max(0, min(self.fit_len_, y.size - new.size))

    def _model(self, horizon: int, q: float) -> Any | None:
        key = (horizon, q)
        if key in self.models_:
            return self.models_[key]
        y = self._history()
        # Time of the last observation at fit: the fit cut-off, `updated_` points ago.
        t_fit = self.last_time_ - (y.size - self.fit_len_) * self.step_
        X, target = training_set(
            y[: self.fit_len_], horizon, self.step_, t_fit, self.fit_len_, self.max_rows
        )
        model = None
        # A feature with no value at all (e.g. the weekly lag in a 3-day history)
        # carries nothing; scikit-learn cannot bin it, so it becomes a constant.
        self.empty_cols_ = np.all(np.isnan(X), axis=0) if X.size else self.empty_cols_
        X[:, self.empty_cols_] = 0.0
        if target.size >= self.min_rows:
            from sklearn.ensemble import HistGradientBoostingRegressor

            with single_thread():
                model = HistGradientBoostingRegressor(
                    loss="quantile",
                    quantile=q,
                    max_iter=self.max_iter,
                    learning_rate=0.1,
                    max_leaf_nodes=15,
                    min_samples_leaf=20,
                    early_stopping=False,
                    random_state=self.random_state,
                ).fit(X, target)
        self.models_[key] = model
        return model

    def predict(self, horizon: int, quantiles: Sequence[float]) -> Forecast:
        y = self._history()
        levels = check_levels(quantiles)
        last = float(y[-1]) if y.size else 0.0
        maybe = {q: self._model(horizon, q) for q in levels}
        models = {q: m for q, m in maybe.items() if m is not None}
        if len(models) < len(levels):
            note = f"fewer than {self.min_rows} training origins: last value with ratios"
            ratios = ratio_quantiles(y[-3000:], y[-3000:], horizon, levels)
            values = {q: last * (ratios[q] if ratios else 1.0) for q in levels}
            return make_forecast(horizon, last, values, self.name, note)
        X, level = features(y, np.array([y.size - 1]), horizon, self.step_, self.last_time_)
        X[:, self.empty_cols_] = 0.0
        with single_thread():
            values = {q: float(level[0]) * float(m.predict(X)[0]) for q, m in models.items()}
        mid = values[min(levels, key=lambda q: abs(q - 0.5))]
        return make_forecast(horizon, mid, values, self.name)
