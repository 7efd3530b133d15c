"""Replay bundled traffic traces as a Prometheus metrics endpoint (local load generator).

Why: the docker-compose stack needs load that looks like production for the
autoscaler to forecast, without a cluster or real traffic. This serves one counter,
``http_requests_total{namespace, workload}``, whose rate follows a trace from
``simulations/traces/`` (the same files the simulator and backtests use), optionally
time-compressed so that a day of traffic passes in minutes. Prometheus scrapes it and
the autoscaler's load query (``sum by (namespace, workload) (rate(http_requests_total[2m]))``)
sees the trace's shape. Who calls it: docker-compose.yml (service ``loadgen``), and
developers directly::

    python tools/loadgen.py --bind 127.0.0.1:9108 --speed 10 \\
        --workload dev/event-gateway=nasa_http_jul1995_1min.csv@300

Semantics (exact, so tests can check them): with ``speed`` s, at wall time ``t``
after start the trace position is ``p = offset + s * t`` (wrapping around at the end
of the trace). The counter is ``scale * C(p) / s``, where ``C`` is the trace's
cumulative count (piecewise linear inside each step), so the counter's rate at wall
time ``t`` is ``scale * rate_trace(p)``: the trace's own requests per second,
compressed in time. Gaps in a trace are held (``--fill-gaps hold``) unless told
otherwise. The counter is computed at scrape time from an injected clock: no
background thread, no drift.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from models.errors import InputError
from models.traces import bundled_traces_dir, load_trace

log = logging.getLogger("loadgen")

#: The default replay: the platform's four services in namespace ``dev``, each on a
#: bundled trace, scaled so that peaks need several replicas at the capacities in
#: simulations/workloads/*.yaml (the scale is a multiplier on the trace's rate).
DEFAULT_WORKLOADS = (
    "dev/event-gateway=nasa_http_jul1995_1min.csv@300",
    "dev/discord-bot=nab_twitter_volume_aapl_5min.csv@200",
    "dev/refinory-ai=nab_elb_request_count_5min.csv@100",
    "dev/jdk-workspace=nab_nyc_taxi_30min.csv@10",
)


@dataclass(frozen=True)
class Replay:
    """One workload replaying one trace: rate per step and the cumulative count."""

    namespace: str
    workload: str
    trace: str
    step_seconds: float
    rates: np.ndarray  # per second, one per step, already scaled
    cumulative: np.ndarray  # count at the start of each step, len(rates) + 1

    @classmethod
    def from_trace(
        cls, namespace: str, workload: str, path: Path, scale: float, fill: str
    ) -> Replay:
        trace = load_trace(path, fill_gaps=fill)
        rates = trace.rate_per_second.to_numpy(dtype=float) * scale
        cumulative = np.concatenate(([0.0], np.cumsum(rates * trace.step_seconds)))
        return cls(namespace, workload, path.name, float(trace.step_seconds), rates, cumulative)

    @property
    def period_seconds(self) -> float:
        return self.step_seconds * len(self.rates)

    def _locate(self, position: float) -> tuple[int, int, float]:
        """(full cycles, step index, seconds into the step) for a trace position."""
        cycles, within = divmod(position, self.period_seconds)
        index = min(int(within // self.step_seconds), len(self.rates) - 1)
        return int(cycles), index, within - index * self.step_seconds

    def count_at(self, position: float) -> float:
        """Cumulative requests from position 0 to ``position`` (trace seconds)."""
        cycles, index, into = self._locate(position)
        total = float(self.cumulative[-1])
        return cycles * total + float(self.cumulative[index]) + float(self.rates[index]) * into

    def rate_at(self, position: float) -> float:
        return float(self.rates[self._locate(position)[1]])


class ReplayCollector(Collector):
    """Computes every series at scrape time from the injected clock."""

    def __init__(
        self,
        replays: Sequence[Replay],
        speed: float,
        offset_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        if not math.isfinite(speed) or speed <= 0:
            raise InputError("--speed", f"{speed} is not a positive number", "e.g. 1 or 10")
        if not math.isfinite(offset_seconds) or offset_seconds < 0:
            raise InputError("--offset", f"{offset_seconds} is negative", "give seconds >= 0")
        self.replays = tuple(replays)
        self.speed = speed
        self.offset = offset_seconds
        self.clock = clock
        self.started = clock()

    def position(self) -> float:
        """Trace seconds since the start of every trace."""
        return self.offset + self.speed * max(0.0, self.clock() - self.started)

    def collect(self) -> Iterable[Metric]:
        p = self.position()
        counter = CounterMetricFamily(
            "http_requests",
            "Requests replayed from a trace (its rate is the trace's, time-compressed).",
            labels=["namespace", "workload"],
        )
        rate = GaugeMetricFamily(
            "loadgen_trace_rate_per_second",
            "The replayed trace's current rate, requests per second (ground truth).",
            labels=["namespace", "workload", "trace"],
        )
        for r in self.replays:
            base = r.count_at(self.offset)
            counter.add_metric([r.namespace, r.workload], (r.count_at(p) - base) / self.speed)
            rate.add_metric([r.namespace, r.workload, r.trace], r.rate_at(p))
        position = GaugeMetricFamily(
            "loadgen_trace_position_seconds", "Seconds into the traces being replayed."
        )
        position.add_metric([], p)
        return [counter, rate, position]


def parse_workload(spec: str, traces_dir: Path, fill: str) -> Replay:
    """``NAMESPACE/NAME=TRACE.csv[@SCALE]`` -> Replay (a bare file name is looked up in
    ``traces_dir``)."""
    where = f"--workload {spec}"
    target, sep, rest = spec.partition("=")
    namespace, slash, name = target.partition("/")
    if not sep or not slash or not namespace or not name or not rest:
        raise InputError(where, "not NAMESPACE/NAME=TRACE[@SCALE]", "e.g. dev/web=trace.csv@10")
    file_part, at, scale_text = rest.partition("@")
    try:
        scale = float(scale_text) if at else 1.0
    except ValueError as err:
        raise InputError(where, f"scale {scale_text!r} is not a number", "e.g. @10") from err
    if not math.isfinite(scale) or scale <= 0:
        raise InputError(where, f"scale {scale_text!r} must be positive", "e.g. @10")
    path = Path(file_part)
    if not path.is_absolute() and not path.exists():
        path = traces_dir / file_part
    return Replay.from_trace(namespace, name, path, scale, fill)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", default="127.0.0.1:9108", help="HOST:PORT to serve /metrics")
    parser.add_argument(
        "--workload",
        action="append",
        help="NAMESPACE/NAME=TRACE.csv[@SCALE], repeatable (default: the four services in dev)",
    )
    parser.add_argument("--traces-dir", type=Path, default=bundled_traces_dir())
    parser.add_argument("--speed", type=float, default=1.0, help="trace seconds per second")
    parser.add_argument(
        "--offset", type=float, default=0.0, help="start this many trace seconds in"
    )
    parser.add_argument("--fill-gaps", choices=("hold", "zero"), default="hold")
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="exit after this many seconds (0 = run until stopped)",
    )
    return parser


def serve(args: argparse.Namespace, stop: threading.Event) -> int:
    host, _, port_text = args.bind.rpartition(":")
    if not host or not port_text.isdigit():
        raise InputError("--bind", f"{args.bind!r} is not HOST:PORT", "e.g. 127.0.0.1:9108")
    replays = [
        parse_workload(s, args.traces_dir, args.fill_gaps)
        for s in args.workload or DEFAULT_WORKLOADS
    ]
    registry = CollectorRegistry()
    collector = ReplayCollector(replays, args.speed, args.offset, time.monotonic)
    registry.register(collector)
    server, thread = start_http_server(int(port_text), addr=host.strip("[]"), registry=registry)
    log.info(
        "serving %d workloads on http://%s/metrics at %gx",
        len(replays),
        args.bind,
        args.speed,
    )
    try:
        deadline = time.monotonic() + args.duration if args.duration > 0 else math.inf
        while not stop.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                break
    finally:
        server.shutdown()
        thread.join(5)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s loadgen %(message)s")
    args = build_parser().parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        return serve(args, stop)
    except InputError as err:
        log.error("error: %s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
