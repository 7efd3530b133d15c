"""Rolling-origin backtest: causality, determinism, metrics, horizon convention."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from models.backtest import (
    BacktestConfig,
    BacktestResult,
    compare,
    default_config,
    default_initial,
    default_refit_every,
    run_backtest,
)
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


#: three cut positions in the 3-day ELB series, none on the default refit grid.
ELB_CUTS = (400, 2 * 288 + 17, 700)


@functools.cache
def _full_run(name: str, every: int) -> BacktestResult:
    return run_backtest(_series(), name, BacktestConfig(horizon=2, quantiles=LEVELS, every=every))


def _assert_past_unchanged(
    y: pd.Series,
    name: str,
    full: BacktestResult,
    cfg: BacktestConfig,
    cut: int,
    change: str,
) -> None:
    """Cut ``y`` after position ``cut`` (or surge everything after it): every forecast
    with its origin at or before ``cut`` must be the same, bit for bit."""
    if change == "cut":
        other = y.iloc[: cut + 1 + cfg.horizon]  # keep T's own target window
    else:
        other = y.copy()
        other.iloc[cut + 1 :] = 30 * float(y.max()) + 500
    alt = run_backtest(other, name, cfg)
    before = full.origins <= cut
    k = int(before.sum())
    assert k > 10
    np.testing.assert_array_equal(alt.origins[:k], full.origins[:k])
    np.testing.assert_array_equal(alt.fits[alt.fits <= cut], full.fits[full.fits <= cut])
    # Forecasts made at or before T are identical, bit for bit.
    changed = int(np.any(alt.forecasts[:k] != full.forecasts[:k], axis=1).sum())
    assert changed == 0, f"{changed} of {k} forecasts at or before T={cut} changed ({change})"
    if change == "surge":
        # ... and the surge is not invisible afterwards: the test can fail.
        assert alt.forecasts[k + 3 :, -1].max() > full.forecasts[k + 3 :, -1].max()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(m, marks=pytest.mark.slow) if m in SLOW_MODELS else m
        for m in sorted(FORECASTERS)
    ],
)
@pytest.mark.parametrize("change", ["cut", "surge"])
def test_no_forecast_at_or_before_T_sees_the_future(name: str, change: str) -> None:
    """With the DEFAULT warm-up and refits (a schedule derived from the series' length
    would move when the series is cut), at three cuts off the refit grid."""
    y = _series()
    cfg = BacktestConfig(horizon=2, quantiles=LEVELS, every=7)
    full = _full_run(name, cfg.every)
    assert full.fits.size >= 2  # the warm-up and at least one refit inside the series
    for cut in ELB_CUTS:
        assert cut not in set(full.fits.tolist()), "the cut must not line up with a refit"
        _assert_past_unchanged(y, name, full, cfg, cut, change)


def bursty_daily(days: int = 10, seed: int = 20261205) -> pd.Series:
    """A series no model was tuned on: 1-minute Poisson counts around a daily (and a
    weak weekly) cycle, with noise and 30 random bursts of 3-30 minutes."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    t = np.arange(n)
    rate = 50 * (1 + 0.6 * np.sin(2 * np.pi * t / 1440)) * (1 + 0.1 * np.sin(np.pi * t / 5040))
    for start in rng.choice(n - 30, 30, replace=False):
        rate[start : start + rng.integers(3, 31)] += rng.uniform(1, 4) * 50
    index = pd.date_range("2026-03-02T00:00:00Z", periods=n, freq="60s")
    return pd.Series(rng.poisson(rate).astype(float), index=index, name="value")


#: three cut positions in the 10-day series, none on the refit grid (days at 1439, ...).
SYNTHETIC_CUTS = (3 * 1440 + 517, 5 * 1440 + 1111, 7 * 1440 + 233)


@pytest.mark.parametrize("change", ["cut", "surge"])
def test_unseen_ten_day_trace_cut_or_surged_changes_no_earlier_forecast(change: str) -> None:
    """The default model and the default schedule on 10 days of 1-minute data: cut at
    three points off the refit grid, or surge after them: 0 earlier forecasts change."""
    y = bursty_daily()
    cfg = BacktestConfig(horizon=2, quantiles=(0.5, 0.9), every=7)
    full = run_backtest(y, "auto", cfg)
    assert full.fits[0] == 1439 and full.fits.size == 9  # a day's warm-up, daily refits
    for cut in SYNTHETIC_CUTS:
        assert not np.any(full.fits == cut) and full.fits.min() < cut < full.fits.max()
        _assert_past_unchanged(y, "auto", full, cfg, cut, change)


def test_default_warm_up_is_one_day_whatever_the_length() -> None:
    y = bursty_daily(days=4)
    cfg = BacktestConfig(horizon=2, quantiles=(0.9,), every=5)
    runs = [run_backtest(y.iloc[:n], "last", cfg) for n in (1500, 3000, len(y))]
    for r in runs:
        assert r.origins[0] == 1439 and r.fits[0] == 1439
    assert default_initial(60) == 1440 and default_initial(300) == 288
    assert default_initial(3600) == 60  # hourly: at least 60 points
    assert default_refit_every(60) == 1440 and default_refit_every(3600) == 24


def test_a_series_shorter_than_the_warm_up_is_an_input_error() -> None:
    y = bursty_daily(days=2)
    with pytest.raises(InputError, match="warm-up of 1440 points"):
        # one day plus one point; the horizon is 2
        run_backtest(y.iloc[:1441], "last", BacktestConfig(horizon=2))
    with pytest.raises(InputError, match="warm-up"):
        default_config(1441, 60.0, 2, (0.9,))
    assert run_backtest(y.iloc[:1442], "last", BacktestConfig(horizon=2)).origins.size == 1


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
