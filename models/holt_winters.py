"""``holt-winters``: additive Holt-Winters (statsmodels), the algorithm of Predictive HPA.

``fit`` estimates the smoothing parameters with statsmodels' ``ExponentialSmoothing``
(additive damped trend, additive daily season) on the most recent ``fit_seasons``
seasons, which bounds its cost on long 1-minute histories. ``update`` runs the same
smoothing recursion forward with the fitted parameters, so new points move the level,
trend and season without a refit. The peak forecast is the maximum of the next
``horizon`` point forecasts; its quantiles add empirical quantiles of the in-sample
peak residuals scaled by the level. With less than two days of history there is no
season to fit: it fits level and trend only and says so in ``Forecast.note``; with too
few points for even that (fewer than 10) it returns the last value.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np

from models.base import Forecast
from models.common import DAY_SECONDS, check_levels, future_peaks, make_forecast, period_steps
from models.history import HistoryModel

log = logging.getLogger(__name__)


class HoltWinters(HistoryModel):
    """Additive damped Holt-Winters with a daily season when history allows."""

    name = "holt-winters"

    def __init__(self, fit_seasons: int = 4, max_fit_points: int = 6000) -> None:
        super().__init__(max_points=30_000)
        self.fit_seasons = fit_seasons
        self.max_fit_points = max_fit_points
        self.params_: tuple[float, float, float, float] | None = None
        self.level_ = 0.0
        self.trend_ = 0.0
        self.season_: np.ndarray = np.zeros(0)
        self.period_ = 0
        self.pos_ = 0  # index into season_ of the next observation
        self.resid_: list[float] = []  # one-step residuals / level, most recent last
        self.note_ = ""

    def _fit_state(self) -> None:
        y = self._history()
        s = period_steps(DAY_SECONDS, self.step_)
        self.note_ = ""
        self.params_ = None
        if s is not None and y.size >= 2 * s and s <= self.max_fit_points // 2:
            window = y[-min(y.size, max(2 * s, min(self.fit_seasons * s, self.max_fit_points))) :]
            period = s
        else:
            window = y[-min(y.size, self.max_fit_points) :]
            period = 0
            self.note_ = (
                "less than two days of history (or a daily season too long to fit): "
                "level and trend only"
            )
        if window.size < 10:
            self.note_ = "fewer than 10 points: using the last value"
            return
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = ExponentialSmoothing(
                    window,
                    trend="add",
                    damped_trend=True,
                    seasonal="add" if period else None,
                    seasonal_periods=period or None,
                    initialization_method="heuristic" if period else "estimated",
                ).fit()
            except (ValueError, np.linalg.LinAlgError) as err:
                log.info("holt-winters fit failed (%s); using the last value", err)
                self.note_ = f"fit failed ({err}): using the last value"
                return
        p = res.params
        alpha = float(p.get("smoothing_level", 0.5))
        beta = float(p.get("smoothing_trend", 0.0) or 0.0)
        gamma = float(p.get("smoothing_seasonal", 0.0) or 0.0) if period else 0.0
        phi = float(p.get("damping_trend", 1.0) or 1.0)
        self.params_ = (alpha, beta, gamma, phi)
        self.period_ = period
        # Re-run the recursion ourselves from the fitted initial state so that `update`
        # continues exactly the same filter.
        self.level_ = float(p.get("initial_level", window[0]))
        self.trend_ = float(p.get("initial_trend", 0.0) or 0.0)
        if period:
            init = np.asarray(p.get("initial_seasons", np.zeros(period)), dtype=float)
            self.season_ = init.copy() if init.size == period else np.zeros(period)
        else:
            self.season_ = np.zeros(1)
        self.pos_ = 0
        self.resid_ = []
        self._run(window)

    def _run(self, values: np.ndarray) -> None:
        if self.params_ is None:
            return
        alpha, beta, gamma, phi = self.params_
        m = self.season_.size
        lvl, tr, season, pos = self.level_, self.trend_, self.season_, self.pos_
        resid = self.resid_
        for v in values:
            sea = season[pos % m] if self.period_ else 0.0
            pred = lvl + phi * tr + sea
            resid.append((v - pred) / max(abs(lvl), 1e-9))
            new_lvl = alpha * (v - sea) + (1 - alpha) * (lvl + phi * tr)
            tr = beta * (new_lvl - lvl) + (1 - beta) * phi * tr
            if self.period_:
                season[pos % m] = gamma * (v - new_lvl) + (1 - gamma) * sea
            lvl = new_lvl
            pos += 1
        self.level_, self.trend_, self.pos_ = lvl, tr, pos % max(m, 1)
        self.resid_ = resid[-4000:]

    def _update_state(self, new: np.ndarray) -> None:
        self._run(new)

    def _path(self, horizon: int) -> np.ndarray:
        assert self.params_ is not None
        _, _, _, phi = self.params_
        damp = np.cumsum(phi ** np.arange(1, horizon + 1))
        if self.period_:
            sea = self.season_[(self.pos_ + np.arange(horizon)) % self.season_.size]
        else:
            sea = np.zeros(horizon)
        return np.asarray(self.level_ + damp * self.trend_ + sea)

    def predict(self, horizon: int, quantiles: Sequence[float]) -> Forecast:
        y = self._history()
        levels = check_levels(quantiles)
        if self.params_ is None:
            last = float(y[-1]) if y.size else 0.0
            return make_forecast(horizon, last, dict.fromkeys(levels, last), self.name, self.note_)
        point = max(float(np.max(self._path(horizon))), 0.0)
        scale = max(abs(self.level_), 1e-9)
        r = np.asarray(self.resid_[-2000:])
        if horizon > 1 and r.size > horizon:
            # The peak of h noisy steps sits above the peak of their means: approximate
            # its residual by the running max of h consecutive one-step residuals.
            r = future_peaks(np.concatenate([[0.0], r]), horizon)
        if r.size >= 10:
            values = {q: point + scale * float(np.quantile(r, q)) for q in levels}
        else:
            values = dict.fromkeys(levels, point)
        return make_forecast(horizon, point, values, self.name, self.note_)
