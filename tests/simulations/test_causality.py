"""The predictive policy is causal: the future of the trace cannot change its past ticks.

Runs the real command (``autoscaler simulate --timeline``) with the predictive policy at
its defaults on a seeded synthetic trace, then again on the same trace (a) cut after the
row at ``T`` and (b) with every row after it replaced by a surge. The changed future
starts at ``F``, the start of the first changed row's interval (``T`` + one step): the
surge may be visible from ``F`` on, no earlier. So EVERY tick before ``F`` (all the
15-s ticks of ``T``'s interval included, not only the ticks at or before ``T``) must be
identical, column for column: a sample shown even one tick early fails.

Also here: ``observe_seconds`` that does not divide the trace step is refused, because
its windows would straddle two rows and show the later one before its interval starts;
on every bundled trace, each valid observation window shows only rows already begun.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from autoscaler.cli import build_app
from models.errors import InputError
from models.traces import bundled_traces_dir, load_trace
from simulations.engine import SYNC_SECONDS, demand_from_rate
from tests.simulations.test_engine import noisy_daily, write_trace

DAYS = 0.5


def _timeline(
    tmp_path: Path, name: str, values: list[float], step: int = 60, extra: tuple[str, ...] = ()
) -> pd.DataFrame:
    trace = write_trace(tmp_path / f"{name}.csv", values, step=step)
    out = tmp_path / f"{name}-timeline.csv"
    result = CliRunner().invoke(
        build_app(),
        [
            "simulate",
            "--trace",
            str(trace),
            "--capacity-rps",
            "20",
            "--startup-seconds",
            "90",
            "--policy",
            "predictive",
            "--no-frontier",
            "--timeline",
            str(out),
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return pd.read_csv(out)


def _assert_every_tick_before_f_is_unchanged(
    full: pd.DataFrame, others: list[pd.DataFrame], cut_row: int, step: int
) -> None:
    ticks_per_row = round(step / SYNC_SECONDS)
    first_changed_tick = (cut_row + 1) * ticks_per_row  # the tick at F
    f = full["timestamp"][first_changed_tick]
    past = full[full["timestamp"] < f].reset_index(drop=True)
    assert len(past) == first_changed_tick  # T's whole interval is compared
    for other in others:
        mine = other[other["timestamp"] < f].reset_index(drop=True)
        pd.testing.assert_frame_equal(past, mine)


@pytest.mark.slow
def test_cutting_or_replacing_the_future_changes_no_tick_before_it(tmp_path: Path) -> None:
    values = noisy_daily(DAYS, seed=11)
    cut_row = len(values) // 2  # T is this row's timestamp: rows 0..cut_row stay
    full = _timeline(tmp_path, "full", values)
    cut = _timeline(tmp_path, "cut", values[: cut_row + 1])
    surge = _timeline(
        tmp_path, "surge", values[: cut_row + 1] + [v * 20.0 for v in values[cut_row + 1 :]]
    )
    _assert_every_tick_before_f_is_unchanged(full, [cut, surge], cut_row, 60)
    # The test can fail: the surge changes the predictive policy at F itself, the
    # first tick that may see it (so a sample shown one tick early changes a row).
    f_tick = (cut_row + 1) * 4
    assert full["forecast"][f_tick] != surge["forecast"][f_tick]
    after = full["timestamp"] >= full["timestamp"][f_tick]
    assert not full[after]["replicas"].equals(
        surge[surge["timestamp"] >= full["timestamp"][f_tick]]["replicas"]
    )


@pytest.mark.slow
def test_finer_observation_of_a_coarse_trace_is_causal_too(tmp_path: Path) -> None:
    """A 5-minute trace observed every 60 s: still no tick before F changes."""
    values = noisy_daily(DAYS, seed=13, step=300)
    cut_row = len(values) // 2
    extra = ("--observe-seconds", "60")
    full = _timeline(tmp_path, "full", values, 300, extra)
    surge = _timeline(
        tmp_path,
        "surge",
        values[: cut_row + 1] + [v * 20.0 for v in values[cut_row + 1 :]],
        300,
        extra,
    )
    _assert_every_tick_before_f_is_unchanged(full, [surge], cut_row, 300)
    f_tick = (cut_row + 1) * 20
    assert full["forecast"][f_tick] != surge["forecast"][f_tick]


def test_observe_seconds_that_does_not_divide_the_step_is_refused(tmp_path: Path) -> None:
    """180 s on a 5-minute trace: the window [00:03, 00:06) would show the surge that
    starts at 00:05 from 00:03. Refused, naming the option and the valid values."""
    trace = load_trace(write_trace(tmp_path / "t.csv", [300.0, 6000.0, 300.0], step=300))
    with pytest.raises(InputError) as info:
        demand_from_rate(trace.rate_per_second, trace.step_seconds, 15.0, observe_seconds=180.0)
    text = str(info.value)
    assert "--observe-seconds" in text and "observe_seconds" in text
    assert "divisor of the 300-s trace step" in text and "multiple of the 15-s tick" in text
    assert "15, 30, 60, 75, 150, 300" in text
    # Through the command: one error, no timeline.
    result = CliRunner().invoke(
        build_app(),
        [
            "simulate",
            "--trace",
            str(tmp_path / "t.csv"),
            "--capacity-rps",
            "20",
            "--startup-seconds",
            "90",
        ]
        + ["--policy", "predictive", "--no-frontier", "--observe-seconds", "180"],
    )
    assert result.exit_code != 0 and isinstance(result.exception, InputError)
    assert "--observe-seconds" in str(result.exception)


@pytest.mark.parametrize(
    "path", sorted(bundled_traces_dir().glob("*.csv")), ids=lambda p: Path(p).stem
)
def test_every_valid_observation_window_shows_only_rows_already_begun(path: Path) -> None:
    """On every bundled trace, for every valid ``observe_seconds`` below the step, the
    sample stamped at ``s`` is the rate of the row under way at ``s``: never a later row.
    Every other value below the step is an ``InputError``."""
    trace = load_trace(path)
    rate = trace.rate_per_second.iloc[:400]  # enough rows to cover many windows
    step = trace.step_seconds
    starts = rate.index.as_unit("ns").asi8 / 1e9
    for observe in np.arange(SYNC_SECONDS, step, SYNC_SECONDS):
        if (step / observe) % 1:
            with pytest.raises(InputError, match="does not divide"):
                demand_from_rate(rate, step, SYNC_SECONDS, observe_seconds=float(observe))
            continue
        d = demand_from_rate(rate, step, SYNC_SECONDS, observe_seconds=float(observe))
        stamps = d.observed.index.as_unit("ns").asi8 / 1e9
        row = np.searchsorted(starts, stamps, side="right") - 1  # the row under way at s
        np.testing.assert_allclose(d.observed.to_numpy(), rate.to_numpy()[row], rtol=1e-12)
