"""Rolling-origin backtest: causality, determinism, metrics, horizon convention."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.backtest import BacktestConfig, BacktestResult, compare, run_backtest
from models.common import future_peaks, horizon_steps
from models.errors import InputError
from models.registry import FORECASTERS
from models.traces import bundled_traces_dir, load_trace
from tests.models.conftest import seasonal_counts

LEVELS = (0.5, 0.9, 0.99)


def _series() -> pd.Series:
    # 3 days of real 5-minute traffic: seasonality, noise and spikes.
    trace = load_trace(bundled_traces_dir() / "nab_elb_request_count_5min.csv")
    return trace.series.iloc[: 3 * 288]


#: models whose refits take seconds: marked slow (still run by `make test`).
SLOW_MODELS = {"quantile-gbm", "holt-winters"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(m, marks=pytest.mark.slow) if m in SLOW_MODELS else m
        for m in sorted(FORECASTERS)
    ],
)
@pytest.mark.parametrize("change", ["cut", "surge"])
def test_no_forecast_at_or_before_T_sees_the_future(name: str, change: str) -> None:
    y = _series()
    cut = 2 * 288 + 17  # position of T
    cfg = BacktestConfig(horizon=2, quantiles=LEVELS, initial=288, refit_every=250, every=7)
    full = run_backtest(y, name, cfg)
    if change == "cut":
        other = y.iloc[: cut + 1 + cfg.horizon]  # keep T's own target window
    else:
        other = y.copy()
        other.iloc[cut + 1 :] = 30 * float(y.max())
    alt = run_backtest(other, name, cfg)
    before = full.origins <= cut
    assert before.sum() > 10
    k = int(before.sum())
    np.testing.assert_array_equal(alt.origins[:k], full.origins[:k])
    # Forecasts made at or before T are identical, bit for bit.
    np.testing.assert_array_equal(alt.forecasts[:k], full.forecasts[:k])
    if change == "surge":
        # ... and the surge is not invisible afterwards: the test can fail.
        assert alt.forecasts[k + 3 :, 1].max() > full.forecasts[k + 3 :, 1].max()


def test_deterministic() -> None:
    y = _series()
    cfg = BacktestConfig(horizon=1, quantiles=LEVELS, initial=300, every=5)
    a = run_backtest(y, "auto", cfg)
    b = run_backtest(y, "auto", cfg)
    np.testing.assert_array_equal(a.forecasts, b.forecasts)


def test_targets_are_the_peak_of_the_next_horizon_steps() -> None:
    y = _series()
    cfg = BacktestConfig(horizon=3, quantiles=(0.9,), initial=300, every=11)
    r = run_backtest(y, "last", cfg)
    v = y.to_numpy()
    for t, target in zip(r.origins, r.targets, strict=True):
        assert target == v[t + 1 : t + 4].max()
    assert r.origins.max() + 3 <= len(y) - 1


def test_every_thins_origins_but_not_updates() -> None:
    y = _series()
    dense = run_backtest(y, "auto", BacktestConfig(horizon=1, initial=300, every=1))
    sparse = run_backtest(y, "auto", BacktestConfig(horizon=1, initial=300, every=4))
    assert np.all(np.diff(sparse.origins) == 4)
    pos = np.searchsorted(dense.origins, sparse.origins)
    np.testing.assert_array_equal(dense.forecasts[pos], sparse.forecasts)


def _result(model: str, forecasts: list[list[float]], targets: list[float]) -> BacktestResult:
    n = len(targets)
    return BacktestResult(
        model=model,
        horizon=1,
        quantiles=(0.5, 0.9),
        origins=np.arange(n),
        index=pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"),
        forecasts=np.asarray(forecasts, dtype=float),
        means=np.asarray(forecasts, dtype=float)[:, 0],
        targets=np.asarray(targets, dtype=float),
    )


def test_metrics_follow_their_definitions() -> None:
    r = _result("m", [[8, 12], [10, 9]], [10, 10])
    m = r.metrics()
    # target above the forecast costs q per unit; below costs (1 - q) per unit.
    assert m["pinball"]["0.5"] == pytest.approx((0.5 * 2 + 0.0) / 2)
    assert m["pinball"]["0.9"] == pytest.approx((0.1 * 2 + 0.9 * 1) / 2)
    assert m["coverage"]["0.9"] == pytest.approx(0.5)
    assert m["mae"] == pytest.approx(1.0)


def test_ratios_are_to_the_best_simple_baseline() -> None:
    good = _result("last-hour-mean", [[10, 11], [10, 11]], [10, 10])
    bad = _result("last", [[5, 6], [5, 6]], [10, 10])
    mine = _result("auto", [[10, 10], [10, 10]], [10, 10])
    table = compare([good, bad, mine])
    assert table["auto"]["baseline"] == "last-hour-mean"
    assert table["last"]["pinball_ratio"]["0.9"] > 1
    assert table["auto"]["pinball_ratio"]["0.9"] == 0


@pytest.mark.parametrize(
    ("seconds", "step", "steps"),
    [(120, 300, 1), (120, 60, 2), (90, 60, 2), (600, 300, 2), (120, 3600, 1), (105, 15, 7)],
)
def test_horizon_steps(seconds: float, step: float, steps: int) -> None:
    assert horizon_steps(seconds, step) == steps


def test_future_peaks_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(5)
    y = rng.random(200)
    for h in (1, 2, 7, 40):
        want = [y[t + 1 : t + 1 + h].max() for t in range(len(y) - h)]
        np.testing.assert_array_equal(future_peaks(y, h), want)


def test_too_short_for_the_initial_window_is_an_input_error() -> None:
    y = _series().iloc[:50]
    with pytest.raises(InputError):
        run_backtest(y, "last", BacktestConfig(horizon=1, initial=60))


@pytest.mark.slow
def test_auto_is_calibrated_and_beats_baselines_on_unseen_synthetic_series() -> None:
    """Generalisation check on series the model was never looked at with: a 1-minute
    Poisson series with a daily cycle and a level shift half-way."""
    y = seasonal_counts(5 * 1440, step_seconds=60, base=30, seed=11)
    y.iloc[len(y) // 2 :] *= 2.5
    cfg = BacktestConfig(horizon=2, quantiles=LEVELS, initial=1440, every=7)
    results = [run_backtest(y, m, cfg) for m in ("auto", "last", "last-hour-mean")]
    table = compare(results)
    assert 0.86 <= table["auto"]["coverage"]["0.9"] <= 0.94
    assert table["auto"]["pinball_ratio"]["0.9"] < 1.0
