"""Trace loading: every class of bad trace is refused with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import InputError
from models.traces import bundled_traces, load_trace

GOOD = "timestamp,value\n2026-01-01T00:00:00Z,5\n2026-01-01T00:01:00Z,7\n2026-01-01T00:02:00Z,6\n"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "t.csv"
    p.write_text(text, encoding="utf-8")
    return p


def refused(tmp_path: Path, text: str, **kw: str) -> InputError:
    p = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_trace(p, **kw)
    assert str(p) in str(info.value), "the message must name the file"
    return info.value


def test_good_trace(tmp_path: Path) -> None:
    t = load_trace(write(tmp_path, GOOD))
    assert len(t) == 3 and t.step_seconds == 60
    assert t.format_timestamp(t.series.index[1]) == "2026-01-01T00:01:00Z"


def test_unix_timestamps_keep_their_format(tmp_path: Path) -> None:
    t = load_trace(write(tmp_path, "timestamp,value\n1767225600,1\n1767225660,2\n"))
    assert t.format_timestamp(t.series.index[1]) == "1767225660"


def test_wrong_header(tmp_path: Path) -> None:
    e = refused(tmp_path, "time,val\n2026-01-01T00:00:00Z,5\n2026-01-01T00:01:00Z,7\n")
    assert e.where.endswith(":1") and "timestamp,value" in e.fix


def test_missing_header(tmp_path: Path) -> None:
    e = refused(tmp_path, "2026-01-01T00:00:00Z,5\n2026-01-01T00:01:00Z,7\n")
    assert e.where.endswith(":1") and "header" in e.problem


def test_non_numeric_value(tmp_path: Path) -> None:
    e = refused(tmp_path, GOOD.replace(",7\n", ",seven\n"))
    assert e.where.endswith(":3") and "not a number" in e.problem


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf"])
def test_nan_or_inf(tmp_path: Path, bad: str) -> None:
    e = refused(tmp_path, GOOD.replace(",7\n", f",{bad}\n"))
    assert e.where.endswith(":3") and "not finite" in e.problem


def test_negative_value(tmp_path: Path) -> None:
    e = refused(tmp_path, GOOD.replace(",7\n", ",-7\n"))
    assert e.where.endswith(":3") and "negative" in e.problem


def test_unsorted_rows(tmp_path: Path) -> None:
    text = "timestamp,value\n2026-01-01T00:01:00Z,5\n2026-01-01T00:00:00Z,7\n"
    e = refused(tmp_path, text + "2026-01-01T00:02:00Z,1\n")
    assert e.where.endswith(":3") and "sort" in e.fix


def test_duplicate_timestamps(tmp_path: Path) -> None:
    text = GOOD + "2026-01-01T00:02:00Z,9\n"
    e = refused(tmp_path, text)
    assert e.where.endswith(":5") and "duplicate" in e.problem


def test_uneven_spacing(tmp_path: Path) -> None:
    text = GOOD + "2026-01-01T00:03:30Z,9\n"
    e = refused(tmp_path, text)
    assert e.where.endswith(":5") and "uneven" in e.problem


def test_gap_offers_fill_gaps(tmp_path: Path) -> None:
    text = GOOD + "2026-01-01T00:06:00Z,9\n"
    e = refused(tmp_path, text)
    assert e.where.endswith(":5") and "gap" in e.problem
    assert "--fill-gaps zero|hold" in e.fix


@pytest.mark.parametrize(("policy", "filled"), [("zero", 0.0), ("hold", 6.0)])
def test_fill_gaps_is_explicit(tmp_path: Path, policy: str, filled: float) -> None:
    t = load_trace(write(tmp_path, GOOD + "2026-01-01T00:05:00Z,9\n"), fill_gaps=policy)
    assert len(t) == 6 and t.filled == 2
    assert t.values[3] == filled and t.values[4] == filled and t.values[5] == 9


def test_empty_file(tmp_path: Path) -> None:
    e = refused(tmp_path, "")
    assert "empty" in e.problem


def test_header_only(tmp_path: Path) -> None:
    e = refused(tmp_path, "timestamp,value\n")
    assert "no rows" in e.problem


def test_single_row(tmp_path: Path) -> None:
    e = refused(tmp_path, "timestamp,value\n2026-01-01T00:00:00Z,5\n")
    assert "single row" in e.problem


def test_timestamp_without_zone(tmp_path: Path) -> None:
    e = refused(tmp_path, GOOD.replace("00:01:00Z", "00:01:00"))
    assert e.where.endswith(":3") and "timezone" in e.problem


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_trace(tmp_path / "nope.csv")


def test_bad_value_unit(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--value-unit"):
        load_trace(write(tmp_path, GOOD), value_unit="per-minute")


def test_per_second_unit(tmp_path: Path) -> None:
    t = load_trace(write(tmp_path, GOOD), value_unit="per-second")
    assert t.rate_per_second.iloc[0] == 5.0
    assert load_trace(write(tmp_path, GOOD)).rate_per_second.iloc[0] == pytest.approx(5 / 60)


@pytest.mark.parametrize("path", bundled_traces(), ids=lambda p: p.stem)
def test_bundled_traces_load(path: Path) -> None:
    t = load_trace(path)
    assert len(t) > 1000
