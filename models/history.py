"""``HistoryModel``: the stored, cleaned history that most forecasters build on.

Most models here keep a window of recent observations and derive their forecast from
it at ``predict`` time; only their statistics differ. This base class does the shared
bookkeeping once: ``fit`` stores the cleaned, capped history and the step, ``update``
appends new samples (missing ones held at the last value, never zero-filled) without
refitting, and ``predict`` before ``fit`` raises ``NotFittedError``. Used by the model
modules in ``models/``.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from models.common import clean_values, step_seconds_of
from models.errors import NotFittedError


class HistoryModel:
    """Keeps at most ``max_points`` of the latest cleaned observations in ``y_``."""

    name = "history"

    def __init__(self, max_points: int = 60_000) -> None:
        self.max_points = max_points
        self.y_: np.ndarray | None = None
        self.step_: float = 60.0
        #: unix seconds of the last observation (for calendar features).
        self.last_time_: float = 0.0
        #: observations appended by ``update`` since the last ``fit``.
        self.updated_: int = 0
        #: observations seen in all (fit + updates), whatever the cap kept.
        self.total_: int = 0

    def fit(self, y: pd.Series) -> Self:
        self.step_ = step_seconds_of(y)
        self.y_ = clean_values(y)[-self.max_points :]
        self.last_time_ = _last_time(y)
        self.updated_ = 0
        self.total_ = len(y)
        self._fit_state()
        return self

    def update(self, y_new: pd.Series) -> Self:
        if self.y_ is None:
            return self.fit(y_new)
        if len(y_new) == 0:
            return self
        new = np.asarray(y_new, dtype=float).copy()
        new[~np.isfinite(new)] = np.nan
        if np.isnan(new).any():
            prev = self.y_[-1] if self.y_.size else np.nan
            new = clean_values(np.concatenate([[prev], new]))[1:]
        new = np.maximum(new, 0.0)
        self.y_ = np.concatenate([self.y_, new])[-self.max_points :]
        self.last_time_ = _last_time(y_new, self.last_time_ + self.step_ * len(new))
        self.updated_ += len(new)
        self.total_ += len(new)
        self._update_state(new)
        return self

    def _fit_state(self) -> None:
        """Hook: fit model parameters on ``self.y_`` (default: nothing to fit)."""

    def _update_state(self, new: np.ndarray) -> None:
        """Hook: absorb new observations into fitted state (default: nothing)."""

    def _history(self) -> np.ndarray:
        if self.y_ is None:
            raise NotFittedError(f"{type(self).__name__}.predict called before fit")
        return self.y_


def _last_time(y: pd.Series, default: float = 0.0) -> float:
    if len(y) and isinstance(y.index, pd.DatetimeIndex):
        return float(y.index[-1].timestamp())
    return default
