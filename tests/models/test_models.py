"""Model-specific behaviour that the registry-wide contract test does not cover."""

from __future__ import annotations

from models.auto import AutoForecaster
from models.seasonal_naive import SeasonalNaive
from tests.models.conftest import seasonal_counts


def test_seasonal_naive_without_a_whole_season_keeps_the_ratio_spread() -> None:
    # 25-minute steps: a day is 57.6 steps, so there is no season to replay.
    y = seasonal_counts(600, step_seconds=1500, seed=4)
    f = SeasonalNaive("daily").fit(y).predict(1, [0.5, 0.99])
    assert "whole number" in f.note
    assert f.quantile(0.99) > f.quantile(0.5)


def test_auto_uses_seasonal_candidates_once_history_allows() -> None:
    short = seasonal_counts(600, step_seconds=300, seed=6)  # ~2 days of 5-minute data
    long = seasonal_counts(12 * 288, step_seconds=300, seed=6)
    f_short = AutoForecaster().fit(short).predict(1, [0.9])
    f_long = AutoForecaster().fit(long).predict(1, [0.9])
    assert "weekly candidates off" in f_short.note
    assert "daily candidates off" not in f_long.note and "weekly" not in f_long.note


def test_auto_reselection_is_causal_and_cached() -> None:
    y = seasonal_counts(4 * 288, step_seconds=300, seed=7)
    m = AutoForecaster().fit(y.iloc[:-20])
    first = m.predict(1, [0.9])
    m.update(y.iloc[-20:-10])
    cached = m.predict(1, [0.9])  # same choice reused within the hour
    assert cached.model.split(":")[1] == first.model.split(":")[1]
    assert m.selected_
