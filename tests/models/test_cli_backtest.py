"""The ``autoscaler backtest`` command: outputs, the forecasts CSV, and bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoscaler.cli import build_app
from autoscaler.cli.backtest import parse_duration
from models.errors import InputError
from models.traces import bundled_traces_dir, load_trace


@pytest.fixture(scope="module")
def short_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 3 days of the bundled ELB trace (5-minute rows)."""
    src = (bundled_traces_dir() / "nab_elb_request_count_5min.csv").read_text().splitlines()
    p = tmp_path_factory.mktemp("trace") / "elb3d.csv"
    p.write_text("\n".join(src[: 1 + 3 * 288]) + "\n", encoding="utf-8")
    return p


def run(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(build_app(), ["backtest", *args])
    return result.exit_code, result.output, result.exception


def test_json_report_has_metrics_and_ratios(short_trace: Path) -> None:
    code, out, exc = run("--trace", str(short_trace), "--horizon", "10m", "--every", "6", "--json")
    assert code == 0, (out, exc)
    doc = json.loads(out)
    assert doc["horizon_steps"] == 2 and doc["model"] == "auto"
    auto = doc["models"]["auto"]
    assert set(auto["pinball"]) == {"0.5", "0.9", "0.99"}
    assert set(auto["coverage"]) == {"0.5", "0.9", "0.99"}
    assert auto["baseline"] in doc["models"]
    assert auto["pinball_ratio"]["0.9"] > 0


def test_forecasts_csv(short_trace: Path, tmp_path: Path) -> None:
    out_csv = tmp_path / "f.csv"
    code, out, exc = run(
        "--trace",
        str(short_trace),
        "--horizon",
        "2m",
        "--quantiles",
        "0.50,0.9",
        "--model",
        "last",
        "--no-baselines",
        "--every",
        "10",
        "--forecasts",
        str(out_csv),
    )
    assert code == 0, (out, exc)
    rows = list(csv.reader(out_csv.read_text().splitlines()))
    assert rows[0] == ["origin", "q0.50", "q0.9"]  # the numbers exactly as given
    trace = load_trace(short_trace)
    stamps = set(trace.raw_timestamps)
    values = dict(zip(trace.raw_timestamps, trace.values, strict=True))
    order = list(trace.raw_timestamps)
    for origin, q50, q90 in rows[1:]:
        assert origin in stamps  # the trace's own timestamp format
        assert 0 <= float(q50) <= float(q90)
    # `last` forecasts the peak from the value at the origin: its median tracks it.
    first = rows[1][0]
    assert float(rows[1][1]) >= 0 and values[first] >= 0
    assert order.index(rows[2][0]) - order.index(first) == 10


def test_table_output(short_trace: Path) -> None:
    code, out, exc = run("--trace", str(short_trace), "--every", "12", "--model", "last-hour-mean")
    assert code == 0, (out, exc)
    assert "pinball" in out and "last-hour-mean" in out and "seasonal-naive" in out


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--horizon", "soon"),
        ("--horizon", "0s"),
        ("--quantiles", "0.5,1.5"),
        ("--quantiles", "0.5,abc"),
        ("--model", "prophet"),
        ("--every", "0"),
        ("--value-unit", "per-hour"),
        ("--fill-gaps", "linear"),
    ],
)
def test_bad_flags_are_input_errors(short_trace: Path, flag: str, value: str) -> None:
    code, _, exc = run("--trace", str(short_trace), flag, value)
    assert isinstance(exc, InputError), exc


def test_duration_parser() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("2m") == 120
    assert parse_duration("1h") == 3600
    assert parse_duration("45") == 45


def test_bad_trace_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Through the real entry point: no traceback, one line naming file and line."""
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2026-01-01T00:00:00Z,5\n2026-01-01T00:01:00Z,-1\n")
    proc = subprocess.run(
        [sys.executable, "-c", "from autoscaler.cli import main; main()", "backtest"]
        + ["--trace", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"{bad}:3" in lines[0] and "negative" in lines[0]
    assert "Traceback" not in proc.stderr


def test_gap_suggests_fill_gaps_and_fill_gaps_works(tmp_path: Path) -> None:
    rows = ["timestamp,value"] + [f"{1767225600 + 60 * i},{10 + i % 7}" for i in range(400)]
    del rows[200]
    p = tmp_path / "gap.csv"
    p.write_text("\n".join(rows) + "\n")
    code, _, exc = run("--trace", str(p), "--model", "last", "--no-baselines")
    assert isinstance(exc, InputError) and "--fill-gaps" in str(exc)
    code, out, exc = run(
        "--trace",
        str(p),
        "--model",
        "last",
        "--no-baselines",
        "--fill-gaps",
        "hold",
        "--initial",
        "1h",  # 400 rows are shorter than the default one-day warm-up
        "--json",
    )
    assert code == 0, (out, exc)


def test_warm_up_and_refits_are_durations_from_the_start(short_trace: Path) -> None:
    code, out, exc = run("--trace", str(short_trace), "--every", "12", "--json", "--no-baselines")
    assert code == 0, (out, exc)
    doc = json.loads(out)
    assert doc["initial"] == 288 and doc["refit_every"] == 288  # one day of 5-minute rows
    code, out, exc = run(
        "--trace",
        str(short_trace),
        "--initial",
        "6h",
        "--refit-every",
        "12h",
        "--every",
        "12",
        "--json",
        "--no-baselines",
    )
    assert code == 0, (out, exc)
    doc = json.loads(out)
    assert doc["initial"] == 72 and doc["refit_every"] == 144


@pytest.mark.parametrize(("flag", "value"), [("--initial", "7m"), ("--refit-every", "soon")])
def test_bad_warm_up_flags_are_input_errors(short_trace: Path, flag: str, value: str) -> None:
    code, _, exc = run("--trace", str(short_trace), flag, value)
    assert isinstance(exc, InputError) and flag in str(exc), exc


def test_a_trace_shorter_than_the_warm_up_is_one_clear_error(tmp_path: Path) -> None:
    """Not a silently shorter warm-up: that would tie the schedule to the length."""
    rows = ["timestamp,value"] + [f"{1767225600 + 60 * i},{10 + i % 7}" for i in range(1000)]
    p = tmp_path / "short.csv"
    p.write_text("\n".join(rows) + "\n")
    code, _, exc = run("--trace", str(p), "--model", "last", "--no-baselines")
    assert isinstance(exc, InputError), exc
    assert "warm-up of 1440 points (1d)" in str(exc) and "--initial" in str(exc)
    assert str(p) in str(exc)
