"""Tests for the held-out trace generator (benchmarks/unseen_traces.py).

They check what the generator promises: the same seed gives the same bytes; every file
loads with the project's own strict loader (``models.traces.load_trace``), is evenly
spaced without gaps, holds non-negative integers and has a modest size; and each trace
has the property it was built for (dynamic range, weekly cycle and flash sale, level
shifts, cron spikes, heavy-tailed bursts, low counts, faithful derivation from the
bundled traces). The properties are measured on the generated data, not read back from
the generator's parameters.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from models.traces import Trace, bundled_traces_dir, load_trace

_SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "unseen_traces.py"
_VALUE = re.compile(r"^[0-9]+$")
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unseen_traces", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["unseen_traces"] = module
    spec.loader.exec_module(module)
    return module


ut = _load_module()
NAMES: list[str] = list(ut.TRACES)


@pytest.fixture(scope="module")
def seed0(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("unseen0")
    ut.generate(out, seed=0)
    return out


@pytest.fixture(scope="module")
def traces(seed0: Path) -> dict[str, Trace]:
    return {name: load_trace(seed0 / f"{name}.csv") for name in NAMES}


def _v(traces: dict[str, Trace], name: str) -> np.ndarray:
    return traces[name].values


def test_the_required_traces_are_there() -> None:
    for name in [
        "worldcup_like_1min",
        "ecommerce_weekly_1min",
        "level_shift_5min",
        "cron_batch_1min",
        "onoff_pareto_1min",
        "lowcount_api_1min",
        "nasa_resampled_5min",
        "elb_reversed_5min",
        "wikipedia_10min_noisy",
    ]:
        assert name in NAMES


def test_same_seed_same_bytes_and_other_seed_other_noise(seed0: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    paths = ut.generate(again, seed=0)
    assert [p.name for p in paths] == [f"{n}.csv" for n in NAMES]
    for name in [*NAMES, "README"]:
        suffix = ".md" if name == "README" else ".csv"
        assert (again / f"{name}{suffix}").read_bytes() == (seed0 / f"{name}{suffix}").read_bytes()
    other = tmp_path / "other"
    ut.generate(other, seed=1)
    for name in NAMES:
        same = (other / f"{name}.csv").read_bytes() == (seed0 / f"{name}.csv").read_bytes()
        # Resampling and reversal are fixed transformations; everything else is random.
        assert same == (name in {"nasa_resampled_5min", "elb_reversed_5min"}), name


@pytest.mark.parametrize("name", NAMES)
def test_file_format(seed0: Path, traces: dict[str, Trace], name: str) -> None:
    lines = (seed0 / f"{name}.csv").read_text(encoding="ascii").splitlines()
    assert lines[0] == "timestamp,value"
    cells = [line.split(",") for line in lines[1:]]
    assert all(len(c) == 2 for c in cells)
    assert all(_STAMP.match(c[0]) for c in cells), "ISO-8601 UTC with Z"
    assert all(_VALUE.match(c[1]) for c in cells), "non-negative integers"
    t = traces[name]
    assert t.filled == 0 and t.timestamp_format == "iso"
    step = {"1min": 60, "5min": 300, "10min": 600}[re.findall(r"(\d+min)", name)[0]]
    assert t.step_seconds == step
    seconds = (t.series.index - t.series.index[0]) / pd.Timedelta(seconds=1)
    assert np.all(np.diff(seconds.to_numpy()) == step), "evenly spaced"
    assert 14 * 86400 <= len(t) * step, "at least 14 days"
    assert len(t) <= 40_320, "modest size"
    assert t.values.max() > 0


def test_readme_describes_every_trace_and_says_held_out(seed0: Path) -> None:
    text = (seed0 / "README.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"## {name}" in text
        assert f"| {name} |" in text
    assert "not for tuning" in text and "before" in text
    assert text.count("Licence:") == 3  # one per derived trace


def test_worldcup_has_a_huge_dynamic_range_and_days_without_matches(
    traces: dict[str, Trace],
) -> None:
    v = _v(traces, "worldcup_like_1min")
    assert np.percentile(v, 99.9) / np.percentile(v, 10) > 20
    # Per day: the highest 10-minute mean over the day's median.
    smooth = pd.Series(v).rolling(10).mean().to_numpy()
    days = len(v) // 1440
    ratio = [
        np.nanmax(smooth[d * 1440 : (d + 1) * 1440]) / np.median(v[d * 1440 : (d + 1) * 1440])
        for d in range(days)
    ]
    assert sum(r > 8 for r in ratio) >= 5, "several match days with 10-50x surges"
    assert sum(r < 3 for r in ratio) >= 2, "some days without matches"


def test_worldcup_surges_last_about_two_hours(traces: dict[str, Trace]) -> None:
    v = pd.Series(_v(traces, "worldcup_like_1min"))
    smooth = v.rolling(5, center=True).mean().to_numpy()
    top = int(np.nanargmax(smooth))
    high = smooth > 0.3 * smooth[top]
    lo = top
    while lo > 0 and high[lo - 1]:
        lo -= 1
    hi = top
    while hi < len(high) - 1 and high[hi + 1]:
        hi += 1
    # About two hours above 30 % of the peak (the half-time dip stays above it);
    # matches 2.5 h apart may chain into one run.
    assert 90 <= hi - lo + 1 <= 400


def test_ecommerce_weekly_cycle_growth_and_one_flash_sale(traces: dict[str, Trace]) -> None:
    s = traces["ecommerce_weekly_1min"].series
    by_day = s.resample("1D").mean()
    weekday = by_day.groupby(pd.DatetimeIndex(by_day.index).day_of_week).mean()
    assert weekday.max() / weekday.min() > 1.15, "weekly seasonality"
    assert by_day.iloc[-7:].mean() / by_day.iloc[:7].mean() > 1.05, "growth"
    hour = s.groupby(pd.DatetimeIndex(s.index).hour).mean()
    assert hour.max() / hour.min() > 3, "daily seasonality"
    local = s.rolling(241, center=True, min_periods=1).median()
    sale = np.flatnonzero((s / local).to_numpy() > 3)
    assert 29 <= len(sale) <= 31, "one 30-minute flash sale"
    assert sale[-1] - sale[0] == len(sale) - 1, "contiguous"
    assert 4 < float((s.iloc[sale] / local.iloc[sale]).median()) < 6, "about 5x"


def test_level_shift_doubles_then_halves_for_a_weekend(traces: dict[str, Trace]) -> None:
    s = traces["level_shift_5min"].series
    by_day = s.resample("1D").mean().to_numpy()
    before = by_day[1:7].mean()  # days 2-7
    after = by_day[8:12].mean()  # days 9-12
    incident = by_day[12:14].mean()  # days 13-14 (Saturday, Sunday)
    later = by_day[14:].mean()  # days 15-21
    assert 1.8 < after / before < 2.2
    assert 0.4 < incident / after < 0.6
    assert 0.9 < later / after < 1.1
    assert s.index[12 * 288].day_of_week == 5, "the incident starts on a Saturday"


def test_cron_spikes_every_15_minutes_and_bigger_hourly(traces: dict[str, Trace]) -> None:
    s = traces["cron_batch_1min"].series
    by_minute = s.groupby(pd.DatetimeIndex(s.index).minute).mean()
    quiet = by_minute.loc[[*range(21, 30), *range(36, 45), *range(51, 60)]].mean()
    assert quiet < 6, "low background"
    for m in (15, 30, 45):
        assert by_minute[m] > 10 * quiet
    assert by_minute[0] > 3 * max(by_minute[15], by_minute[30], by_minute[45])
    assert float(s.median()) < 0.1 * by_minute[15], "near zero most of the time"


def test_onoff_is_bursty_and_long_range_dependent(traces: dict[str, Trace]) -> None:
    v = _v(traces, "onoff_pareto_1min")
    assert np.percentile(v, 99) / max(np.percentile(v, 50), 1.0) > 2
    # Variance-time: for independent minutes the variance of hourly means would be
    # 1/60 of the per-minute variance; heavy-tailed on/off periods keep it far higher.
    hourly = v[: len(v) // 60 * 60].reshape(-1, 60).mean(axis=1)
    assert hourly.var() / v.var() > 0.1
    assert hourly.std() / hourly.mean() > 0.3, "hour-to-hour swings"


def _week_to_week_profile_correlation(v: np.ndarray) -> float:
    """Correlation of the hour-of-day mean profile of week 1 with that of week 2."""
    by_hour = v[: 14 * 1440].astype(float).reshape(14, 24, 60).mean(axis=2)
    return float(np.corrcoef(by_hour[:7].mean(axis=0), by_hour[7:].mean(axis=0))[0, 1])


def test_onoff_has_no_daily_cycle(traces: dict[str, Trace]) -> None:
    # The measure does see a daily cycle where there is one ...
    assert _week_to_week_profile_correlation(_v(traces, "lowcount_api_1min")) > 0.9
    # ... and none in the on/off trace: its hour-of-day profile does not repeat.
    assert _week_to_week_profile_correlation(_v(traces, "onoff_pareto_1min")) < 0.8


def test_lowcount_api_mean_about_5_with_zeros_and_a_daily_cycle(
    traces: dict[str, Trace],
) -> None:
    s = traces["lowcount_api_1min"].series
    assert 4.7 < s.mean() < 5.3
    assert (s == 0).mean() > 0.01, "Poisson zeros"
    hour = s.groupby(pd.DatetimeIndex(s.index).hour).mean()
    assert hour.max() / hour.min() > 2


def test_nasa_resampled_sums_the_bundled_trace(traces: dict[str, Trace]) -> None:
    src = load_trace(bundled_traces_dir() / "nasa_http_jul1995_1min.csv")
    got = traces["nasa_resampled_5min"]
    want = src.series.resample("5min").sum()
    counts = src.series.resample("5min").count()
    want = want[counts == 5]
    assert got.series.index.equals(want.index)
    assert np.array_equal(got.values, want.to_numpy())


def test_elb_reversed_is_the_bundled_trace_backwards(traces: dict[str, Trace]) -> None:
    src = load_trace(bundled_traces_dir() / "nab_elb_request_count_5min.csv")
    got = traces["elb_reversed_5min"]
    assert got.series.index.equals(src.series.index)
    assert np.array_equal(got.values, src.values[::-1])
    assert not np.array_equal(got.values, src.values), "not a verbatim copy"


def test_wikipedia_10min_keeps_hourly_totals_and_adds_noise(traces: dict[str, Trace]) -> None:
    src = load_trace(bundled_traces_dir() / "wikipedia_pagecounts_2009_hourly.csv")
    got = traces["wikipedia_10min_noisy"]
    hourly = got.series.resample("1h").sum()
    assert hourly.index.equals(src.series.index)
    rel = np.abs(hourly.to_numpy() / src.values - 1.0)
    assert np.median(rel) < 0.03 and rel.max() < 0.25
    # Noise: neighbouring ten-minute values jump more than a straight line would.
    v = got.values.astype(float)
    jumps = np.abs(np.diff(np.log(v)))
    assert np.median(jumps) > 0.02


def test_bad_arguments_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ut.main(["--out", str(tmp_path / "x"), "--seed", "-1"]) == 2
    a_file = tmp_path / "f"
    a_file.write_text("", encoding="utf-8")
    assert ut.main(["--out", str(a_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith(("--seed", "--out")) for line in err)
    with pytest.raises(ValueError):
        ut.generate(tmp_path / "y", seed=-3)
