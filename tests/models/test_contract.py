"""Contract test: every registered forecaster, table-driven, with ids.

Each case runs against every entry of ``models.registry.FORECASTERS``, so a new model
is covered the moment it is registered (docs/models.md).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.base import Forecast, Forecaster
from models.errors import InputError, NotFittedError
from models.registry import FORECASTERS, make_forecaster
from tests.models.conftest import seasonal_counts

MODELS = sorted(FORECASTERS)
LEVELS = [0.1, 0.5, 0.9, 0.99]

#: Models whose forecast is a pure function of the stored history: after ``update``
#: they must give exactly what a fresh ``fit`` on the same data gives.
STATELESS = {"auto", "last", "last-hour-mean", "seasonal-naive", "seasonal-naive-weekly"}

#: Models with a seasonality (or a learned part) that 1 hour of data cannot support:
#: they must fall back and say why.
NEEDS_HISTORY = {
    "auto",
    "fft",
    "holt-winters",
    "quantile-gbm",
    "seasonal-naive",
    "seasonal-naive-weekly",
}

SERIES = {
    "1h-of-1min": lambda: seasonal_counts(60, step_seconds=60, seed=1),
    "4d-of-5min": lambda: seasonal_counts(4 * 288, step_seconds=300, seed=2),
    "9d-of-5min": lambda: seasonal_counts(9 * 288, step_seconds=300, seed=3),
}


def assert_valid(f: Forecast, levels: list[float], horizon: int) -> None:
    assert isinstance(f, Forecast)
    assert f.horizon == horizon
    assert list(f.quantiles) == sorted(levels)
    values = [f.quantiles[q] for q in sorted(levels)]
    assert all(math.isfinite(v) and v >= 0 for v in values), values
    assert all(b >= a for a, b in zip(values, values[1:], strict=False)), values
    assert math.isfinite(f.mean) and f.mean >= 0


@pytest.mark.parametrize("name", MODELS)
def test_is_a_forecaster_and_fit_returns_self(name: str) -> None:
    m = make_forecaster(name)
    assert isinstance(m, Forecaster)
    y = SERIES["4d-of-5min"]()
    assert m.fit(y) is m
    assert m.update(y.iloc[-1:].set_axis([y.index[-1] + pd.Timedelta("5min")])) is m


@pytest.mark.parametrize("name", MODELS)
def test_predict_before_fit_raises(name: str) -> None:
    with pytest.raises(NotFittedError):
        make_forecaster(name).predict(1, [0.9])


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("series", sorted(SERIES))
@pytest.mark.parametrize("horizon", [1, 5])
def test_quantiles_finite_nonnegative_monotone(name: str, series: str, horizon: int) -> None:
    y = SERIES[series]()
    f = make_forecaster(name).fit(y).predict(horizon, LEVELS)
    assert_valid(f, LEVELS, horizon)


@pytest.mark.parametrize("name", MODELS)
def test_quantiles_track_the_level(name: str) -> None:
    """Ten times the traffic gives a clearly higher q0.9 (the model is not a constant)."""
    y = SERIES["4d-of-5min"]()
    low = make_forecaster(name).fit(y).predict(1, [0.9]).quantile(0.9)
    high = make_forecaster(name).fit(y * 10).predict(1, [0.9]).quantile(0.9)
    assert high > 3 * low > 0


@pytest.mark.parametrize("name", MODELS)
def test_update_is_chunking_invariant_and_causal(name: str) -> None:
    """fit(y[:n]) + update(y[n:m]) in one or three chunks gives the same forecast, and
    that forecast does not depend on anything after m."""
    y = SERIES["4d-of-5min"]()
    n, m = 3 * 288, 3 * 288 + 40
    one = make_forecaster(name).fit(y.iloc[:n]).update(y.iloc[n:m]).predict(3, LEVELS)
    chunked = make_forecaster(name).fit(y.iloc[:n])
    for a, b in ((n, n + 7), (n + 7, n + 30), (n + 30, m)):
        chunked.update(y.iloc[a:b])
    three = chunked.predict(3, LEVELS)
    assert one.quantiles == three.quantiles
    assert one.mean == three.mean
    surged = y.copy()
    surged.iloc[m:] = 50 * y.max()
    again = make_forecaster(name).fit(surged.iloc[:n]).update(surged.iloc[n:m]).predict(3, LEVELS)
    assert again.quantiles == one.quantiles


@pytest.mark.parametrize("name", MODELS)
def test_update_moves_the_forecast(name: str) -> None:
    """New observations are not ignored: a surge seen through update raises q0.9."""
    y = SERIES["4d-of-5min"]()
    n = len(y) - 12
    calm = make_forecaster(name).fit(y.iloc[:n]).update(y.iloc[n:]).predict(1, [0.9])
    surged = y.copy()
    surged.iloc[n:] = 20 * y.max()
    hot = make_forecaster(name).fit(surged.iloc[:n]).update(surged.iloc[n:]).predict(1, [0.9])
    assert hot.quantile(0.9) > calm.quantile(0.9)


@pytest.mark.parametrize("name", sorted(STATELESS & set(MODELS)))
def test_update_equals_refit_for_stateless_models(name: str) -> None:
    y = SERIES["9d-of-5min"]()
    n = len(y) - 50
    updated = make_forecaster(name).fit(y.iloc[:n]).update(y.iloc[n:]).predict(2, LEVELS)
    refit = make_forecaster(name).fit(y).predict(2, LEVELS)
    assert updated.quantiles == refit.quantiles


@pytest.mark.parametrize("name", sorted(NEEDS_HISTORY & set(MODELS)))
def test_short_history_falls_back_with_a_reason(name: str) -> None:
    y = SERIES["1h-of-1min"]()
    f = make_forecaster(name).fit(y).predict(2, [0.5, 0.9])
    assert_valid(f, [0.5, 0.9], 2)
    assert f.note, f"{name} gave no reason for its fallback on 1 hour of data"
    assert f.quantile(0.9) > 0


@pytest.mark.parametrize("name", MODELS)
def test_missing_samples_are_held_not_zeroed(name: str) -> None:
    y = SERIES["4d-of-5min"]()
    holed = y.copy()
    holed.iloc[-5:] = np.nan
    holed.iloc[100:130] = np.nan
    f = make_forecaster(name).fit(holed).predict(2, LEVELS)
    assert_valid(f, LEVELS, 2)
    assert f.quantile(0.9) > 0


@pytest.mark.parametrize("name", MODELS)
def test_all_zero_history(name: str) -> None:
    y = SERIES["4d-of-5min"]() * 0
    f = make_forecaster(name).fit(y).predict(2, LEVELS)
    assert_valid(f, LEVELS, 2)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, float("nan")], ids=["0", "1", "neg", "nan"])
def test_bad_quantile_level_is_an_input_error(name: str, bad: float) -> None:
    m = make_forecaster(name).fit(SERIES["1h-of-1min"]())
    with pytest.raises(InputError):
        m.predict(1, [bad])


def test_unknown_model_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown model"):
        make_forecaster("prophet")
