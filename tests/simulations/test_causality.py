"""The predictive policy is causal: the future of the trace cannot change its past rows.

Runs the real command (``autoscaler simulate --timeline``) with the predictive policy at
its defaults on a seeded synthetic trace, then again on the same trace (a) cut after T
and (b) with everything after T replaced by a surge. Every timeline row at or before T
must be identical, column for column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from autoscaler.cli import build_app
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


@pytest.mark.slow
def test_cutting_or_replacing_the_future_changes_no_row_up_to_t(tmp_path: Path) -> None:
    values = noisy_daily(DAYS, seed=11)
    cut_row = len(values) // 2  # T is this row's timestamp: rows 0..cut_row stay
    full = _timeline(tmp_path, "full", values)
    cut = _timeline(tmp_path, "cut", values[: cut_row + 1])
    surge = _timeline(
        tmp_path, "surge", values[: cut_row + 1] + [v * 20.0 for v in values[cut_row + 1 :]]
    )
    t = full["timestamp"][cut_row * 4]  # 4 ticks of 15 s per 1-minute row
    past = full[full["timestamp"] <= t]
    assert len(past) == cut_row * 4 + 1
    for other in (cut, surge):
        mine = other[other["timestamp"] <= t]
        pd.testing.assert_frame_equal(past.reset_index(drop=True), mine.reset_index(drop=True))
    # The test can fail: the surge does change what comes after T.
    after = full["timestamp"] > t
    assert not full[after]["replicas"].equals(surge[surge["timestamp"] > t]["replicas"])


@pytest.mark.slow
def test_finer_observation_of_a_coarse_trace_is_causal_too(tmp_path: Path) -> None:
    """A 5-minute trace observed every 60 s: still no row at or before T changes."""
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
    t = full["timestamp"][cut_row * 20]  # 20 ticks of 15 s per 5-minute row
    past = full[full["timestamp"] <= t].reset_index(drop=True)
    mine = surge[surge["timestamp"] <= t].reset_index(drop=True)
    pd.testing.assert_frame_equal(past, mine)
    assert not full["replicas"].equals(surge["replicas"])
