"""Settings precedence (kwargs > environment > file), errors, and the JSON log format."""

from __future__ import annotations

import io
import json
import logging
import math
from pathlib import Path

import pytest

from autoscaler.logging import JsonFormatter, configure_logging, log_event
from autoscaler.settings import load_settings
from models.errors import InputError


def test_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("AUTOSCALER_"):
            monkeypatch.delenv(key)
    s = load_settings()
    assert s.loop.sync_seconds == 15.0
    assert s.leader.enabled is True
    assert s.leader.lease_duration_seconds + s.leader.retry_period_seconds < 30
    assert s.api.insecure and s.api.bind.startswith("127.0.0.1")  # safe without certs


def test_environment_beats_file_and_kwargs_beat_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("loop: {sync_seconds: 20, refit_seconds: 99}\nprometheus: {url: http://a:1}\n")
    monkeypatch.setenv("AUTOSCALER_LOOP__SYNC_SECONDS", "30")
    s = load_settings(path)
    assert s.loop.sync_seconds == 30.0  # environment
    assert s.loop.refit_seconds == 99.0  # file, same group
    assert s.prometheus.url == "http://a:1"
    s = load_settings(path, loop={"sync_seconds": 5})
    assert s.loop.sync_seconds == 5.0


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("loop: {sync_seconds: -1}\n", "loop.sync_seconds"),
        ("loop: {nonsense: 1}\n", "loop.nonsense"),
        ("leader: {lease_duration_seconds: 5, renew_deadline_seconds: 10}\n", "leader"),
        ("prometheus: {url: ftp://x}\n", "prometheus.url"),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_settings(path)
    assert field in str(info.value)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_log_lines_are_json_with_event_and_fields() -> None:
    stream = io.StringIO()
    configure_logging("info", stream)
    try:
        log = logging.getLogger("autoscaler.test")
        log_event(log, "clamp", "shop/web clamped", workload="web", ratio=math.inf, n=3)
        log.debug("not shown at info")
    finally:
        logging.getLogger().handlers.clear()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])  # strict JSON: no NaN/Infinity literals
    assert record["event"] == "clamp" and record["workload"] == "web" and record["n"] == 3
    assert record["ratio"] == "inf" and record["level"] == "info"


def test_exceptions_are_one_json_line() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, "f", 1, "failed", None, sys.exc_info())
    line = formatter.format(record)
    assert "\n" not in line.strip() or json.loads(line)["exception"].startswith("Traceback")
    assert json.loads(line)["message"] == "failed"
