"""``fft``: a periodogram (DSP) forecaster in the manner of Crane's EHPA.

Crane's EHPA predicts with DSP: it checks that the history is periodic, keeps the
strongest frequency components of its spectrum and replays the cleaned signal one
period ahead. Here: take the most recent whole days (up to ``max_days``), compute the
real FFT, keep the DC term and the ``top_k`` strongest harmonics of the daily cycle
(frequencies that repeat whole times per day), and extend the reconstruction
periodically. The reconstruction is shifted by the recent mean residual (so a level
change between refits is followed) and the quantiles add empirical quantiles of the
in-sample peak residuals, scaled by the level. With less than two days of history
there is no cycle to trust: it falls back to the trailing-hour mean with the same
residual quantiles and says so in ``Forecast.note``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.base import Forecast
from models.common import (
    DAY_SECONDS,
    HOUR_SECONDS,
    check_levels,
    future_peaks,
    make_forecast,
    period_steps,
    trailing_mean,
)
from models.history import HistoryModel


class FFTForecaster(HistoryModel):
    """Periodogram model: DC + strongest daily harmonics, extended periodically."""

    name = "fft"

    def __init__(self, top_k: int = 8, max_days: int = 7, shift_points: int = 10) -> None:
        super().__init__(max_points=60_000)
        self.top_k = top_k
        self.max_days = max_days
        self.shift_points = shift_points
        self.template_: np.ndarray | None = None  # one reconstructed period
        self.anchor_ = 0  # absolute position (in y_ stream) of template_[0]
        self.seen_ = 0  # observations seen since fit, counted from the first of y_
        self.note_ = ""

    def _fit_state(self) -> None:
        y = self._history()
        self.seen_ = y.size
        self.template_ = None
        s = period_steps(DAY_SECONDS, self.step_)
        if s is None or y.size < 2 * s:
            self.note_ = "less than two days of history: trailing-hour mean, no cycle"
            return
        self.note_ = ""
        days = min(self.max_days, y.size // s)
        window = y[-days * s :]
        spec = np.fft.rfft(window)
        keep = np.zeros_like(spec)
        keep[0] = spec[0]
        # Harmonics of the daily cycle sit at multiples of `days` in this spectrum.
        harmonics = np.arange(days, spec.size, days)
        if harmonics.size:
            strongest = harmonics[np.argsort(np.abs(spec[harmonics]))[::-1][: self.top_k]]
            keep[strongest] = spec[strongest]
        recon = np.fft.irfft(keep, n=window.size)
        self.template_ = np.asarray(recon[-s:])  # the last day, one whole period
        self.anchor_ = y.size - s

    def _update_state(self, new: np.ndarray) -> None:
        self.seen_ += new.size

    def _recon(self, positions: np.ndarray) -> np.ndarray:
        assert self.template_ is not None
        return np.asarray(self.template_[(positions - self.anchor_) % self.template_.size])

    def predict(self, horizon: int, quantiles: Sequence[float]) -> Forecast:
        y = self._history()
        levels = check_levels(quantiles)
        n = y.size
        window = min(n - horizon - 1, 2000)
        if self.template_ is None:
            k = max(1, round(HOUR_SECONDS / self.step_))
            tail = y[-(window + horizon + k) :] if window > 0 else y
            base = trailing_mean(tail, k)
        else:
            # Positions of the tail in the stream since fit (y_ may have been trimmed).
            first = self.seen_ - (window + horizon + self.shift_points)
            pos = np.arange(max(first, self.seen_ - n), self.seen_)
            tail = y[pos - (self.seen_ - n)]
            recon = self._recon(pos)
            shift = trailing_mean(tail - recon, self.shift_points)
            nxt = self._recon(pos[:, None] + np.arange(1, horizon + 1)[None, :]).max(axis=1)
            base = np.maximum(nxt + shift, 0.0)
        point = float(base[-1])
        values = dict.fromkeys(levels, point)
        if window >= 10:
            fp = future_peaks(tail, horizon)
            scale = np.maximum(trailing_mean(tail, 60)[: fp.size], 1e-9)
            r = (fp - base[: fp.size]) / scale
            r = r[-window:]
            values = {
                q: point + float(trailing_mean(tail, 60)[-1]) * float(np.quantile(r, q))
                for q in levels
            }
        return make_forecast(horizon, point, values, self.name, self.note_)
