"""tools/loadgen.py: exact replay semantics, a real HTTP endpoint, clear errors.

The collector is driven by an injected clock (a plain variable the test advances), so
the counter can be checked against the trace by arithmetic; the HTTP test then runs the
real server on a loopback port with the wall clock and parses what it serves with
prometheus_client's own parser.
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from models.errors import InputError
from tests.deploy.conftest import REPO


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loadgen", REPO / "tools" / "loadgen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadgen"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


loadgen = load_module()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def small_trace(tmp_path: Path) -> Path:
    # three 60-s steps: 60, 120 and 0 requests -> 1, 2 and 0 per second
    path = tmp_path / "small.csv"
    path.write_text(
        "timestamp,value\n2026-01-01T00:00:00Z,60\n2026-01-01T00:01:00Z,120\n"
        "2026-01-01T00:02:00Z,0\n",
        encoding="utf-8",
    )
    return path


def test_counter_follows_the_trace_exactly(small_trace: Path) -> None:
    now = [1000.0]
    replay = loadgen.parse_workload(f"prod/web={small_trace}@10", small_trace.parent, "hold")
    collector = loadgen.ReplayCollector(
        [replay], speed=60.0, offset_seconds=0.0, clock=lambda: now[0]
    )
    registry = CollectorRegistry()
    registry.register(collector)
    key = ("http_requests_total", (("namespace", "prod"), ("workload", "web")))
    rate_key = (
        "loadgen_trace_rate_per_second",
        (("namespace", "prod"), ("trace", "small.csv"), ("workload", "web")),
    )
    expected = [
        # wall seconds, counter (= 10 * C(60 t) / 60), rate
        (0.0, 0.0, 10.0),
        (0.5, 10 * 30 / 60, 10.0),  # half the first step: 30 requests
        (1.0, 10 * 60 / 60, 20.0),
        (1.5, 10 * (60 + 60) / 60, 20.0),
        (2.5, 10 * 180 / 60, 0.0),  # the quiet step adds nothing
        (3.5, 10 * (180 + 30) / 60, 10.0),  # wrapped around, counter keeps rising
    ]
    for wall, counter, rate in expected:
        now[0] = 1000.0 + wall
        got = samples(generate_latest(registry).decode())
        assert got[key] == pytest.approx(counter), wall
        assert got[rate_key] == pytest.approx(rate), wall


def test_offset_starts_the_counter_at_zero(small_trace: Path) -> None:
    now = [0.0]
    replay = loadgen.parse_workload(f"a/b={small_trace}", small_trace.parent, "hold")
    collector = loadgen.ReplayCollector(
        [replay], speed=1.0, offset_seconds=90.0, clock=lambda: now[0]
    )
    (counter, rate, position) = collector.collect()
    assert counter.samples[0].value == 0.0
    assert rate.samples[0].value == 2.0
    now[0] = 30.0  # 90 -> 120 s: 30 s at 2 requests/s
    (counter, _, position) = collector.collect()
    assert counter.samples[0].value == pytest.approx(60.0)
    assert position.samples[0].value == pytest.approx(120.0)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param("noslash=x.csv", id="no-namespace"),
        pytest.param("a/b", id="no-trace"),
        pytest.param("a/b=small.csv@-1", id="negative-scale"),
        pytest.param("a/b=small.csv@ten", id="scale-not-a-number"),
        pytest.param("a/b=missing.csv", id="missing-file"),
    ],
)
def test_bad_workload_specs_are_input_errors(spec: str, small_trace: Path) -> None:
    with pytest.raises(InputError):
        loadgen.parse_workload(spec, small_trace.parent, "hold")


def test_bad_speed_is_an_input_error(small_trace: Path) -> None:
    replay = loadgen.parse_workload(f"a/b={small_trace}", small_trace.parent, "hold")
    with pytest.raises(InputError):
        loadgen.ReplayCollector([replay], speed=0.0, offset_seconds=0.0, clock=time.monotonic)


def test_main_reports_bad_input_with_exit_2(small_trace: Path) -> None:
    assert loadgen.main(["--workload", "nonsense", "--duration", "1"]) == 2


def test_default_workloads_load_from_the_bundled_traces() -> None:
    """The four services the compose stack replays all load (gaps held, not failed)."""
    parser = loadgen.build_parser()
    args = parser.parse_args([])
    replays = [
        loadgen.parse_workload(s, args.traces_dir, "hold") for s in loadgen.DEFAULT_WORKLOADS
    ]
    assert sorted(r.workload for r in replays) == [
        "discord-bot",
        "event-gateway",
        "jdk-workspace",
        "refinory-ai",
    ]
    for r in replays:
        assert r.rates.min() >= 0 and r.rates.max() > 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serves_metrics_over_http(small_trace: Path) -> None:
    port = free_port()
    args = argparse.Namespace(
        bind=f"127.0.0.1:{port}",
        workload=[f"dev/web={small_trace}"],
        traces_dir=small_trace.parent,
        speed=60.0,
        offset=0.0,
        fill_gaps="hold",
        duration=20.0,
    )
    stop = threading.Event()
    thread = threading.Thread(target=loadgen.serve, args=(args, stop), daemon=True)
    thread.start()
    try:
        text = ""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
                break
            except OSError:
                time.sleep(0.1)
        first = samples(text)
        key = ("http_requests_total", (("namespace", "dev"), ("workload", "web")))
        assert key in first
        time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            second = samples(r.read().decode())
        assert second[key] > first[key], "the counter rises while the trace has load"
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
