"""Reading and validating traffic traces (CSV ``timestamp,value``).

A trace is the load history that backtests and the simulator replay. The rules are
strict because a silently "fixed" trace gives silently wrong figures: every problem is
reported with the file, the line and the fix, and nothing is repaired unless the user
asks for it explicitly with ``fill_gaps``.

* header ``timestamp,value``;
* ``timestamp``: ISO-8601 (UTC, ``Z`` or an offset) or unix seconds, sorted, unique,
  evenly spaced;
* ``value``: a finite, non-negative number; a count per interval (``per-interval``,
  the default) or a rate per second (``per-second``);
* bounds, so that junk is an error and not a crash or a memory blow-up: at most
  ``MAX_TRACE_BYTES`` per file, ``MAX_FIELD_CHARS`` per cell, timestamps pandas can
  index (1677-09-22 .. 2262-04-11; unix milliseconds are recognised and named), and
  ``MAX_TRACE_ROWS`` after ``fill_gaps``. Echoed cells are cut to one short line.

Callers: the CLI (backtest, simulate), ``simulations``, benchmarks.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from models.errors import InputError

#: Largest trace file read (bytes): ~4 million rows of unix ``timestamp,value`` (a
#: 1-minute trace of 8 years). Reading peaks at ~26 bytes of memory per byte of file
#: (measured: 12.8 MB, 800,000 rows -> 337 MB in 4.9 s), so this bounds it at ~1.7 GB.
MAX_TRACE_BYTES = 64 * 1024 * 1024
#: Most rows a trace may have, also after ``fill_gaps`` (a 1-second trace of 231 days):
#: a typo in one timestamp must not make the filler allocate terabytes.
MAX_TRACE_ROWS = 20_000_000
#: Longest cell (characters) that csv accepts; longer ones are an error, not a crash.
MAX_FIELD_CHARS = csv.field_size_limit()
#: Unix seconds pandas can index (datetime64[ns]: 1677-09-21 .. 2262-04-11).
MIN_UNIX = pd.Timestamp.min.ceil("s").timestamp()
MAX_UNIX = pd.Timestamp.max.floor("s").timestamp()

ValueUnit = Literal["per-interval", "per-second"]
FillGaps = Literal["zero", "hold"]
VALUE_UNITS: tuple[str, ...] = ("per-interval", "per-second")


@dataclass(frozen=True)
class Trace:
    """An evenly spaced load series read from a file.

    ``values`` are in the file's own unit (``value_unit``); ``rate_per_second`` gives
    them as a rate. ``timestamp_format`` is ``"iso"`` or ``"unix"`` so that outputs can
    echo timestamps in the trace's own format.
    """

    path: str
    series: pd.Series
    step_seconds: int
    value_unit: ValueUnit
    timestamp_format: Literal["iso", "unix"]
    raw_timestamps: tuple[str, ...]
    filled: int = 0

    @property
    def values(self) -> np.ndarray:
        return self.series.to_numpy(dtype=float)

    @property
    def rate_per_second(self) -> pd.Series:
        """The trace as a rate in units per second."""
        if self.value_unit == "per-second":
            return self.series.astype(float)
        return self.series.astype(float) / float(self.step_seconds)

    def format_timestamp(self, ts: pd.Timestamp) -> str:
        """``ts`` in the trace's own timestamp format."""
        if self.timestamp_format == "unix":
            return str(int(ts.timestamp()))
        return ts.strftime("%Y-%m-%dT%H:%M:%SZ")

    def __len__(self) -> int:
        return len(self.series)


def _show(text: str, limit: int = 40) -> str:
    """A cell for an error message: quoted, cut to ``limit`` characters (one short line)."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def _in_range(seconds: float, s: str, where: str, unix: bool = True) -> float:
    """``seconds`` if pandas can index it, else an InputError with the likely fix."""
    if MIN_UNIX <= seconds <= MAX_UNIX:
        return seconds
    fix = "use unix seconds (e.g. 1767225600) or ISO-8601 such as 2026-01-01T00:00:00Z"
    for unit, factor in (("milliseconds", 1e3), ("microseconds", 1e6), ("nanoseconds", 1e9)):
        if unix and MIN_UNIX <= seconds / factor <= MAX_UNIX and abs(seconds / factor) > 1e8:
            fix = f"it looks like unix {unit}: divide by {factor:.0e} to get seconds"
            break
    raise InputError(where, f"timestamp {_show(s)} is outside 1677-09-22 .. 2262-04-11", fix)


def _parse_timestamp(text: str, where: str) -> tuple[float, str]:
    """Return (unix seconds, format) for one timestamp cell."""
    s = text.strip()
    if not s:
        raise InputError(where, "empty timestamp", "every row needs a timestamp")
    try:
        seconds = float(s)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise InputError(where, f"timestamp {_show(s)} is not finite", "use unix seconds")
        return _in_range(seconds, s, where), "unix"
    iso = s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError as err:
        raise InputError(
            where,
            f"timestamp {_show(s)} is neither ISO-8601 nor unix seconds",
            "write e.g. 2026-01-01T00:00:00Z or 1767225600",
        ) from err
    if dt.tzinfo is None:
        raise InputError(
            where,
            f"timestamp {_show(s)} has no timezone",
            "append Z for UTC or an offset such as +02:00",
        )
    try:
        seconds = dt.astimezone(UTC).timestamp()
    except (OverflowError, ValueError) as err:  # 9999-12-31T23:59-05:00 is year 10000 UTC
        raise InputError(
            where, f"timestamp {_show(s)} is outside 1677-09-22 .. 2262-04-11", "check the date"
        ) from err
    return _in_range(seconds, s, where, unix=False), "iso"


def _parse_value(text: str, where: str) -> float:
    s = text.strip()
    try:
        v = float(s)
    except ValueError as err:
        raise InputError(
            where, f"value {_show(s)} is not a number", "write a plain number"
        ) from err
    if not math.isfinite(v):
        raise InputError(where, f"value {_show(s)} is not finite", "NaN and inf are not allowed")
    if v < 0:
        raise InputError(where, f"value {_show(s)} is negative", "load cannot be negative")
    return v


def load_trace(
    path: str | Path,
    value_unit: str = "per-interval",
    fill_gaps: str | None = None,
) -> Trace:
    """Read and validate a trace file; raise ``InputError`` naming the line and fix."""
    p = Path(path)
    name = str(path)
    if value_unit not in VALUE_UNITS:
        raise InputError(
            "--value-unit", f"unknown unit {value_unit!r}", "use per-interval or per-second"
        )
    if fill_gaps not in (None, "zero", "hold"):
        raise InputError("--fill-gaps", f"unknown policy {fill_gaps!r}", "use zero or hold")
    try:
        size = p.stat().st_size
    except FileNotFoundError as err:
        raise InputError(name, "file not found", "check the path") from err
    except OSError as err:
        raise InputError(name, f"cannot read the file: {err.strerror}", "check the path") from err
    if size > MAX_TRACE_BYTES:
        raise InputError(
            name,
            f"the file has {size:,} bytes, more than the {MAX_TRACE_BYTES:,} a trace may have",
            "resample it to a coarser step or cut it to the period you need",
        )
    try:
        # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the header.
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise InputError(name, "file not found", "check the path") from err
    except UnicodeDecodeError as err:
        line = text_line_of(p, err.start)
        raise InputError(
            f"{name}:{line}",
            f"byte {err.object[err.start : err.start + 1]!r} is not UTF-8 (a binary file?)",
            "give a UTF-8 CSV file with the header timestamp,value",
        ) from err
    except OSError as err:
        raise InputError(name, f"cannot read the file: {err}", "give a UTF-8 CSV file") from err
    rows = _csv_rows(text, name)
    if not rows or all(not r for r in rows):
        raise InputError(name, "the file is empty", "a trace needs a header and rows")
    header = [c.strip().lower() for c in rows[0]]
    if header != ["timestamp", "value"]:
        raise InputError(
            f"{name}:1",
            f"header is {_show(','.join(rows[0]), 60)}",
            "the first line must be exactly: timestamp,value",
        )
    stamps: list[float] = []
    values: list[float] = []
    raw: list[str] = []
    formats: set[str] = set()
    for i, row in enumerate(rows[1:], start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        where = f"{name}:{i}"
        if len(row) != 2:
            raise InputError(
                where, f"expected 2 columns, found {len(row):,}", "write timestamp,value"
            )
        ts, fmt = _parse_timestamp(row[0], where)
        formats.add(fmt)
        if len(formats) > 1:
            raise InputError(where, "timestamps mix ISO-8601 and unix seconds", "use one format")
        stamps.append(ts)
        values.append(_parse_value(row[1], where))
        raw.append(row[0].strip())
    if len(stamps) == 0:
        raise InputError(name, "the file has a header but no rows", "add data rows")
    if len(stamps) == 1:
        raise InputError(name, "the file has a single row", "a trace needs at least two rows")
    t = np.asarray(stamps)
    d = np.diff(t)
    line_of = _line_numbers(rows)
    bad = np.flatnonzero(d == 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise InputError(
            f"{name}:{line_of[i]}", f"duplicate timestamp {raw[i]}", "each timestamp once"
        )
    bad = np.flatnonzero(d < 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise InputError(
            f"{name}:{line_of[i]}",
            f"timestamp {raw[i]} is earlier than the row before ({raw[i - 1]})",
            "sort the rows by timestamp",
        )
    step = float(np.min(d))
    if step != round(step) or step < 1:
        i = int(np.argmin(d)) + 1
        raise InputError(
            f"{name}:{line_of[i]}",
            f"spacing of {step:g} s ({raw[i - 1]} -> {raw[i]}) is not a whole number of seconds",
            "rows must be whole seconds apart, e.g. every 60 s",
        )
    ratio = d / step
    uneven = np.flatnonzero(np.abs(ratio - np.round(ratio)) > 1e-9)
    if uneven.size:
        i = int(uneven[0]) + 1
        raise InputError(
            f"{name}:{line_of[i]}",
            f"uneven spacing: {raw[i - 1]} -> {raw[i]} is {d[i - 1]:g} s, the step is {step:g} s",
            "resample the trace to a fixed step",
        )
    gaps = np.flatnonzero(np.round(ratio) > 1)
    index = pd.to_datetime(t, unit="s", utc=True)
    series = pd.Series(values, index=index, dtype=float, name="value")
    filled = 0
    if gaps.size:
        if fill_gaps is None:
            i = int(gaps[0]) + 1
            missing = int(round(ratio[gaps].sum() - gaps.size))
            raise InputError(
                f"{name}:{line_of[i]}",
                f"gap: {raw[i - 1]} -> {raw[i]} skips {int(round(ratio[i - 1])) - 1} rows "
                f"({gaps.size} gaps, {missing} missing rows in all)",
                "fix the file, or choose explicitly with --fill-gaps zero|hold",
            )
        total = int(round((t[-1] - t[0]) / step)) + 1
        if total > MAX_TRACE_ROWS:
            i = int(gaps[np.argmax(ratio[gaps])]) + 1
            raise InputError(
                f"{name}:{line_of[i]}",
                f"filling the gaps would make {total:,} rows (at most {MAX_TRACE_ROWS:,}); "
                f"the widest gap is {raw[i - 1]} -> {raw[i]}",
                "check that timestamp (a typo?), or cut the trace there",
            )
        full = pd.date_range(index[0], index[-1], freq=f"{int(step)}s")
        filled = len(full) - len(series)
        series = series.reindex(full)
        series = series.fillna(0.0) if fill_gaps == "zero" else series.ffill()
    return Trace(
        path=name,
        series=series,
        step_seconds=int(step),
        value_unit=value_unit,  # type: ignore[arg-type]
        timestamp_format="unix" if "unix" in formats else "iso",
        raw_timestamps=tuple(raw),
        filled=filled,
    )


def _csv_rows(text: str, name: str) -> list[list[str]]:
    """The CSV rows; a malformed row is an InputError naming its line."""
    lines = text.splitlines()
    reader = csv.reader(lines)
    rows: list[list[str]] = []
    try:
        for row in reader:
            rows.append(row)
    except csv.Error as err:
        line = reader.line_num
        longest = max(len(x) for x in lines[max(line - 1, 0) : line]) if lines else 0
        if "field larger than field limit" in str(err):
            problem = (
                f"a field is longer than {MAX_FIELD_CHARS:,} characters (the line has {longest:,})"
            )
        else:
            problem = f"not a CSV row ({err})"
        raise InputError(
            f"{name}:{line}", problem, "each row is timestamp,value: a time and a number"
        ) from err
    return rows


def text_line_of(path: Path, offset: int) -> int:
    """Line number (from 1) of byte ``offset`` in ``path``."""
    with path.open("rb") as fh:
        return fh.read(offset).count(b"\n") + 1


def _line_numbers(rows: list[list[str]]) -> list[int]:
    """File line number of each data row (skipping blank lines)."""
    out = []
    for i, row in enumerate(rows[1:], start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        out.append(i)
    return out


def bundled_traces_dir() -> Path:
    """The folder of real traces shipped with the project."""
    return Path(__file__).resolve().parent.parent / "simulations" / "traces"


def bundled_traces() -> list[Path]:
    return sorted(bundled_traces_dir().glob("*.csv"))
