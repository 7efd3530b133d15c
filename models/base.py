"""The ``Forecaster`` protocol and the ``Forecast`` record that every model returns.

The autoscaler does not need the mean load at one instant: it needs a quantile of the
**peak** load over the lead window (pod start-up plus one sync). So ``predict(horizon,
quantiles)`` forecasts ``max(y[t+1], ..., y[t+horizon])``, the peak of the next
``horizon`` steps after the last observation, as a mean plus the requested quantiles.

Conventions follow statsforecast: ``fit(y)`` returns ``self``, fitted state ends in
``_``, ``predict`` before ``fit`` raises ``NotFittedError``, quantile levels are
explicit. ``update(y_new)`` appends observations that follow the fitted ones without a
full refit, so that a controller (or a backtest) can keep a forecast fresh every tick
and refit on a schedule. Callers: ``models.backtest``, ``policies.decision``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, Self, runtime_checkable

import pandas as pd


@dataclass(frozen=True)
class Forecast:
    """A forecast of the peak of the next ``horizon`` steps.

    ``quantiles`` maps each requested level (0 < q < 1) to its value, in the unit of
    the series that was fitted. Values are finite and non-negative, and quantiles are
    non-decreasing in the level. ``model`` names the model that produced it (for
    ``auto``, the one it chose or ``"ensemble"``); ``note`` says why a fallback was
    taken, if one was.
    """

    horizon: int
    mean: float
    quantiles: Mapping[float, float]
    model: str = ""
    note: str = ""
    details: Mapping[str, float] = field(default_factory=dict)

    def quantile(self, level: float) -> float:
        """The value at ``level``; the level must have been requested."""
        return self.quantiles[level]


@runtime_checkable
class Forecaster(Protocol):
    """A model of one load series.

    ``y`` is a float ``pandas.Series`` on an evenly spaced, UTC ``DatetimeIndex``.
    Missing samples are NaN (never zero-filled by the caller).
    """

    name: str

    def fit(self, y: pd.Series) -> Self:
        """Fit on the whole of ``y``; returns self."""
        ...

    def update(self, y_new: pd.Series) -> Self:
        """Append observations that follow the fitted ones; cheap, no refit."""
        ...

    def predict(self, horizon: int, quantiles: Sequence[float]) -> Forecast:
        """Forecast the peak of the next ``horizon`` steps after the last observation."""
        ...
