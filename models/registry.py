"""The registry table of forecasters: name -> factory.

To add a model: write ``models/<name>.py`` with one class implementing
``models.base.Forecaster``, add one row here, and the contract test in
``tests/models/test_contract.py`` runs it automatically (see docs/models.md).
``auto`` is the default everywhere (``ScalingSpec.model``, the backtest CLI).
"""

from __future__ import annotations

from collections.abc import Callable

from models.auto import AutoForecaster
from models.base import Forecaster
from models.errors import InputError
from models.fft import FFTForecaster
from models.holt_winters import HoltWinters
from models.last import LastValue
from models.last_hour_mean import LastHourMean
from models.quantile_gbm import QuantileGBM
from models.seasonal_naive import SeasonalNaive

FORECASTERS: dict[str, Callable[[], Forecaster]] = {
    "auto": AutoForecaster,
    "fft": FFTForecaster,
    "holt-winters": HoltWinters,
    "last": LastValue,
    "last-hour-mean": LastHourMean,
    "quantile-gbm": QuantileGBM,
    "seasonal-naive": lambda: SeasonalNaive("daily"),
    "seasonal-naive-weekly": lambda: SeasonalNaive("weekly"),
}

DEFAULT_MODEL = "auto"


def make_forecaster(name: str) -> Forecaster:
    """A fresh, unfitted forecaster by registry name."""
    try:
        factory = FORECASTERS[name]
    except KeyError as err:
        raise InputError(
            "model", f"unknown model {name!r}", f"choose one of {', '.join(sorted(FORECASTERS))}"
        ) from err
    return factory()
