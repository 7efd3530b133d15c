"""Junk traces through ``autoscaler backtest`` as a user runs it: one line, exit 2.

Every case is a file a user could really hand over (a 10-MB cell, a timestamp with 23
digits, binary garbage, 100,000 columns, NaN/inf/negative values, unsorted or duplicate
rows, milliseconds instead of seconds, a typo that would make ``--fill-gaps`` allocate
billions of rows). Each must end in ONE line on stderr that names the file, the line
and the fix, with exit status 2: never a traceback. The two cases reported by users run
through a real subprocess; the rest through the same ``main()`` in-process (faster on
the shared machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import models.traces
from autoscaler.cli import main

HEADER = "timestamp,value\n"
T0 = 1767225600


def rows(n: int, start: int = T0, step: int = 60) -> str:
    return "".join(f"{start + step * i},{10 + i % 7}\n" for i in range(n))


def check_one_line(code: int, stderr: str, where: str, *needles: str) -> str:
    assert code == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-2000:]
    line = lines[0]
    assert line.startswith(f"error: {where}"), line[:300]
    assert len(line) < 400, line[:400]  # one readable line, not the junk echoed back
    for needle in needles:
        assert needle in line, line
    return line


def run_subprocess(*args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-c", "from autoscaler.cli import main; main()", "backtest", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return proc.returncode, proc.stderr


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["autoscaler", "backtest", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    code = exit_info.value.code
    return int(code) if isinstance(code, int) else 1, capsys.readouterr().err


def test_a_10_mb_field_is_one_line_naming_the_row(tmp_path: Path) -> None:
    p = tmp_path / "big.csv"
    p.write_text(
        HEADER + rows(1) + f"{T0 + 60}," + "9" * (10 * 1024 * 1024) + "\n" + rows(3, T0 + 120)
    )
    code, err = run_subprocess("--trace", str(p))
    check_one_line(code, err, f"{p}:3", "longer than 131,072 characters", "timestamp,value")


def test_a_23_digit_timestamp_is_one_line_naming_the_row(tmp_path: Path) -> None:
    p = tmp_path / "far.csv"
    p.write_text(HEADER + rows(5) + "99999999999999999999999,3\n")
    code, err = run_subprocess("--trace", str(p))
    check_one_line(code, err, f"{p}:7", "'99999999999999999999999' is outside", "unix seconds")


def _binary(p: Path) -> None:
    p.write_bytes(HEADER.encode() + rows(3).encode() + bytes(range(128, 256)) * 800)


JUNK = [
    # (id, file contents or writer, extra flags, line, needles)
    ("binary", _binary, (), 5, ("is not UTF-8", "UTF-8 CSV")),
    (
        "printable-garbage-header",
        "x" * 100_000 + "\n" + rows(3),
        (),
        1,
        ("header is 'xxxx", "100,000 characters", "timestamp,value"),
    ),
    ("100k-columns", HEADER + ",".join(["1"] * 100_000) + "\n", (), 2, ("found 100,000",)),
    ("negative", HEADER + rows(3) + f"{T0 + 180},-4\n", (), 5, ("negative", "cannot be negative")),
    ("nan", HEADER + rows(3) + f"{T0 + 180},NaN\n", (), 5, ("not finite",)),
    ("inf", HEADER + rows(3) + f"{T0 + 180},inf\n", (), 5, ("not finite",)),
    ("minus-inf", HEADER + rows(3) + f"{T0 + 180},-inf\n", (), 5, ("not finite",)),
    ("huge-number", HEADER + rows(3) + f"{T0 + 180},1e999\n", (), 5, ("not finite",)),
    ("long-junk-value", HEADER + rows(3) + f"{T0 + 180}," + "z" * 5000 + "\n", (), 5,
     ("not a number", "5,000 characters")),
    ("unsorted", HEADER + rows(3) + f"{T0 + 60},4\n", (), 5, ("earlier than", "sort the rows")),
    ("duplicate", HEADER + rows(3) + f"{T0 + 120},4\n", (), 5,
     ("duplicate", "each timestamp once")),
    ("milliseconds", HEADER + "".join(f"{(T0 + 60 * i) * 1000},1\n" for i in range(4)), (), 2,
     ("milliseconds", "divide by")),
    ("negative-timestamp", HEADER + "-99999999999999,1\n", (), 2, ("outside",)),
    ("iso-year-10000", HEADER + "9999-12-31T23:59:00-05:00,1\n", (), 2, ("outside",)),
    ("iso-garbage", HEADER + "2026-13-45T99:00:00Z,1\n", (), 2, ("neither ISO-8601",)),
    ("fractional-step", HEADER + f"{T0},1\n{T0}.5,1\n{T0 + 1},1\n", (), 3, ("whole number",)),
    ("gap-typo-with-fill", HEADER + rows(3) + "9000000000,1\n", ("--fill-gaps", "zero"), 5,
     ("filling the gaps would make", "a typo?")),
    ("unclosed-quote", HEADER + rows(2) + f'{T0 + 120},"5\n' + rows(2, T0 + 180), (), 4,
     ("not a number",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "content", "flags", "line", "needles"), JUNK, ids=[j[0] for j in JUNK]
)
def test_junk_is_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    content: object,
    flags: tuple[str, ...],
    line: int,
    needles: tuple[str, ...],
) -> None:
    p = tmp_path / f"{case}.csv"
    if callable(content):
        content(p)
    else:
        assert isinstance(content, str)
        p.write_text(content, encoding="utf-8")
    code, err = run_main(monkeypatch, capsys, "--trace", str(p), *flags)
    check_one_line(code, err, f"{p}:{line}", *needles)


def test_an_over_size_file_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "long.csv"
    p.write_text(HEADER + rows(5000))
    monkeypatch.setattr(models.traces, "MAX_TRACE_BYTES", 10_000)
    code, err = run_main(monkeypatch, capsys, "--trace", str(p))
    check_one_line(code, err, f"{p}:", "more than the 10,000", "resample")


def test_a_byte_order_mark_is_not_part_of_the_header(tmp_path: Path) -> None:
    p = tmp_path / "excel.csv"
    p.write_text(HEADER + rows(3), encoding="utf-8-sig")
    assert len(models.traces.load_trace(p)) == 3


def test_fill_gaps_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The row limit of the filler, at a size that is harmless even without it."""
    p = tmp_path / "typo.csv"
    p.write_text(HEADER + rows(3) + f"{T0 + 60 * 50_000},1\n")
    monkeypatch.setattr(models.traces, "MAX_TRACE_ROWS", 1_000)
    code, err = run_main(monkeypatch, capsys, "--trace", str(p), "--fill-gaps", "hold")
    check_one_line(code, err, f"{p}:5", "would make 50,001 rows (at most 1,000)")


def test_a_horizon_longer_than_the_trace_names_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "short.csv"
    p.write_text(HEADER + rows(200))
    code, err = run_main(
        monkeypatch, capsys, "--trace", str(p), "--horizon", "99999999999999999999999999d"
    )
    check_one_line(code, err, "--horizon", "as long as the whole trace", "shorter --horizon")
