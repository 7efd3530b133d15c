"""A REAL Prometheus for tests: backfilled from bundled traces, on a free loopback port.

Why: the Prometheus source, the controller and its fault tests must meet the real
query engine (its 11,000-points limit, its staleness, ``rate()`` over counter resets,
its error bodies), not a hand-written imitation. Who uses it: ``tests/integration``
(through ``conftest.py``), ``tests/controller`` and anyone who needs a Prometheus.

How: the series to backfill are written as one OpenMetrics file, turned into TSDB
blocks with ``promtool tsdb create-blocks-from openmetrics`` and placed in a fresh
``--storage.tsdb.path``. The traces' timestamps are shifted so that they end near now
(blocks older than the retention would be deleted, so retention is set to ten years).
Prometheus runs with a scrape config that can include extra targets (e.g. a test
exporter for the controller's closed loop) and is polled on ``/-/ready`` (bounded).

Binaries: Debian's ``prometheus`` and ``promtool`` on PATH, or the paths in
``PROMETHEUS_BIN`` / ``PROMTOOL_BIN``. If they are missing, ``require_prometheus()``
skips the test with a loud message, except under ``CI=true``, where it FAILS.

Typical use::

    server = PrometheusServer.start(tmp_path, backfill=[trace_counter(...)],
                                    scrape_targets=["127.0.0.1:8000"])
    server.url            # http://127.0.0.1:PORT
    server.kill(); server.restart(); server.stop()

Also here: ``standard_backfill`` (the data set of ``conftest.py``), ``LoopbackServer``
(a slow proxy, an auth gateway, or a server answering garbage, for fault tests), and
``make_tls_files`` / ``bcrypt_hash`` for a Prometheus serving TLS and basic auth itself.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import ipaddress
import json
import math
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest

from models.traces import bundled_traces_dir, load_trace

#: Bounded waits (seconds). Start-up on the shared 2-core machine takes ~1-3 s.
READY_TIMEOUT_S = 45.0
STOP_TIMEOUT_S = 10.0


class PrometheusUnavailable(RuntimeError):
    """The binaries are missing, or the server did not become ready."""


def find_binaries() -> tuple[str, str] | None:
    """Paths of (prometheus, promtool), or None when either is missing."""
    found = []
    for env, name in (("PROMETHEUS_BIN", "prometheus"), ("PROMTOOL_BIN", "promtool")):
        path = os.environ.get(env) or shutil.which(name)
        if not path or not os.access(path, os.X_OK):
            return None
        found.append(path)
    return found[0], found[1]


def require_prometheus() -> tuple[str, str]:
    """The binaries, or skip LOUDLY (fail under ``CI=true``) when they are missing."""
    found = find_binaries()
    if found is not None:
        return found
    message = (
        "PROMETHEUS NOT INSTALLED: the real-Prometheus tests cannot run. Install the "
        "Debian package (`apt-get install prometheus`, or `make system-deps` as root) "
        "or set PROMETHEUS_BIN and PROMTOOL_BIN."
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message + " CI=true, so this is a failure, not a skip.", pytrace=False)
    sys.stderr.write(f"\n\n*** {message} SKIPPING. ***\n\n")
    pytest.skip(message)


# --------------------------------------------------------------------------- backfill


@dataclass(frozen=True)
class BackfillSeries:
    """One series to write into the TSDB before start.

    ``kind="counter"``: ``values`` are increments per sample (e.g. requests per minute,
    as the bundled traces hold them); the file gets their running sum as the counter
    ``<metric>_total``, restarting from zero at ``reset_at`` (a position) to exercise
    counter resets. ``kind="gauge"``: ``values`` are written as they are (NaN and
    +/-Inf included) under ``<metric>``.
    """

    metric: str
    labels: Mapping[str, str]
    values: pd.Series
    kind: Literal["counter", "gauge"] = "counter"
    reset_at: int | None = None

    @property
    def sample_name(self) -> str:
        return f"{self.metric}_total" if self.kind == "counter" else self.metric

    def samples(self) -> pd.Series:
        """The values as stored in Prometheus (cumulative for counters)."""
        v = self.values.to_numpy(dtype=float)
        if self.kind == "gauge":
            return self.values.astype(float)
        if self.reset_at is None:
            return pd.Series(np.cumsum(v), index=self.values.index)
        head = np.cumsum(v[: self.reset_at])
        tail = np.cumsum(v[self.reset_at :])
        return pd.Series(np.concatenate([head, tail]), index=self.values.index)


def aligned_now(step_s: int = 60) -> int:
    """Now, floored to a multiple of ``step_s`` (unix seconds)."""
    return int(time.time()) // step_s * step_s


@functools.lru_cache(maxsize=8)
def _bundled_series(trace: str) -> pd.Series:
    """A bundled trace, read and validated once per process (it is never modified)."""
    return load_trace(bundled_traces_dir() / f"{trace}.csv").series


def trace_counter(
    trace: str,
    labels: Mapping[str, str],
    *,
    points: int,
    end: float,
    offset: int = 0,
    metric: str = "http_requests",
    reset_at: int | None = None,
) -> BackfillSeries:
    """A slice of a bundled trace (``simulations/traces/<trace>.csv``) as a counter.

    Takes ``points`` rows starting at row ``offset`` and shifts their timestamps so the
    last one is at ``end`` (unix seconds), keeping the trace's own step.
    """
    part = _bundled_series(trace).iloc[offset : offset + points]
    if len(part) < points:
        raise ValueError(f"{trace} has fewer than {offset + points} rows")
    last = pd.Timestamp(end, unit="s", tz="UTC")
    shifted = part.index - part.index[-1] + last
    return BackfillSeries(
        metric=metric,
        labels=dict(labels),
        values=pd.Series(part.to_numpy(dtype=float, copy=True), index=shifted),
        kind="counter",
        reset_at=reset_at,
    )


def gauge(
    metric: str, labels: Mapping[str, str], values: Sequence[float], *, end: float, step_s: int
) -> BackfillSeries:
    """A gauge with the given values (NaN/Inf allowed), the last at ``end``."""
    n = len(values)
    index = pd.to_datetime([end - (n - 1 - i) * step_s for i in range(n)], unit="s", utc=True)
    return BackfillSeries(
        metric=metric,
        labels=dict(labels),
        values=pd.Series(list(values), index=index, dtype=float),
        kind="gauge",
    )


def _om_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _om_labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    body = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + body + "}"


def write_openmetrics(series: Sequence[BackfillSeries], path: Path) -> None:
    """One OpenMetrics text file; each metric family's lines kept together."""
    families: dict[tuple[str, str], list[BackfillSeries]] = {}
    for s in series:
        families.setdefault((s.metric, s.kind), []).append(s)
    with path.open("w", encoding="utf-8") as out:
        for (metric, kind), members in families.items():
            out.write(f"# HELP {metric} Backfilled from a bundled trace for tests.\n")
            out.write(f"# TYPE {metric} {kind}\n")
            for s in members:
                name = s.sample_name + _om_labels(s.labels)
                stored = s.samples()
                stamps = pd.DatetimeIndex(stored.index).as_unit("s").asi8
                for ts, v in zip(stamps, stored.to_numpy(dtype=float), strict=True):
                    out.write(f"{name} {_om_value(float(v))} {int(ts)}\n")
        out.write("# EOF\n")


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrometheusServer:
    """A running Prometheus process on 127.0.0.1 with its own data directory."""

    workdir: Path
    port: int
    prometheus_bin: str
    scrape_targets: tuple[str, ...] = ()
    scrape_interval_s: float = 1.0
    extra_args: tuple[str, ...] = ()
    backfilled: tuple[BackfillSeries, ...] = ()
    #: ``--web.config.file`` contents (YAML): TLS and basic auth of the server itself.
    web_config: str | None = None
    #: CA that signed the server certificate (when ``web_config`` enables TLS).
    ca_file: Path | None = None
    #: (user, password) the helpers use when ``web_config`` requires basic auth.
    basic_auth: tuple[str, str] | None = None
    #: (cert, key) the helpers present when ``web_config`` requires client certificates.
    client_cert: tuple[Path, Path] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # -- life cycle --------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        backfill: Sequence[BackfillSeries] = (),
        scrape_targets: Sequence[str] = (),
        scrape_interval_s: float = 1.0,
        extra_args: Sequence[str] = (),
        web_config: str | None = None,
        ca_file: Path | None = None,
        basic_auth: tuple[str, str] | None = None,
        client_cert: tuple[Path, Path] | None = None,
    ) -> PrometheusServer:
        """Backfill, start and wait until ready; skips/fails if Prometheus is missing.

        ``scrape_targets`` are ``host:port`` strings scraped (``/metrics``) every
        ``scrape_interval_s`` under ``job="test"``. ``web_config`` (YAML for
        ``--web.config.file``) turns on TLS / basic auth; then pass the ``ca_file`` that
        signed the certificate and the ``basic_auth`` credentials for the helpers.
        """
        prom, tool = require_prometheus()
        workdir.mkdir(parents=True, exist_ok=True)
        data = workdir / "data"
        data.mkdir(exist_ok=True)
        if backfill:
            om = workdir / "backfill.om"
            write_openmetrics(backfill, om)
            done = subprocess.run(
                [tool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(om), str(data)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode != 0:
                raise PrometheusUnavailable(f"promtool failed: {done.stderr.strip()[-2000:]}")
        server = cls(
            workdir=workdir,
            port=free_port(),
            prometheus_bin=prom,
            scrape_targets=tuple(scrape_targets),
            scrape_interval_s=scrape_interval_s,
            extra_args=tuple(extra_args),
            backfilled=tuple(backfill),
            web_config=web_config,
            ca_file=ca_file,
            basic_auth=basic_auth,
            client_cert=client_cert,
        )
        server._write_config()
        # A free port can be taken between probing and binding; try a few.
        for attempt in range(3):
            try:
                server._launch()
                return server
            except PrometheusUnavailable:
                server.stop()
                if "address already in use" not in server.log_tail() or attempt == 2:
                    raise
                server.port = free_port()
        raise AssertionError("unreachable")

    @property
    def url(self) -> str:
        scheme = "https" if self.web_config and "tls_server_config" in self.web_config else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _open(self, url: str, timeout: float) -> Any:
        """urlopen with the server's CA and basic auth, when it has them."""
        req = urllib.request.Request(url)
        if self.basic_auth is not None:
            token = base64.b64encode(":".join(self.basic_auth).encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        context = None
        if self.url.startswith("https"):
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            if self.client_cert is not None:
                context.load_cert_chain(str(self.client_cert[0]), str(self.client_cert[1]))
        return urllib.request.urlopen(req, timeout=timeout, context=context)

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Terminate (SIGTERM), then kill after ``STOP_TIMEOUT_S``. Idempotent."""
        p = self.process
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=STOP_TIMEOUT_S)
        self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would (for fault tests)."""
        p = self.process
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=STOP_TIMEOUT_S)
        self.process = None

    def restart(self) -> None:
        """Stop if running, then start again on the same port with the same data."""
        self.stop()
        self._launch()

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests -------------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return the decoded ``data`` (raises on error)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with self._open(url, timeout=10) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus error: {body}")
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        params = {"query": promql}
        if at is not None:
            params["time"] = str(at)
        result: list[dict[str, Any]] = self.api("query", **params)["result"]
        return result

    def wait_for(self, promql: str, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        """Poll an instant query until it returns something (bounded), e.g. a scrape.

        Prometheus throttles target discovery: the first scrape of a target comes
        about 5 s after a start or restart, whatever the scrape interval.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{promql!r} returned nothing within {timeout_s} s")
            time.sleep(0.2)

    # -- internals ---------------------------------------------------------------------

    def _write_config(self) -> None:
        interval = f"{max(int(self.scrape_interval_s * 1000), 100)}ms"
        lines = [
            "global:",
            f"  scrape_interval: {interval}",
            f"  evaluation_interval: {interval}",
            "scrape_configs:",
        ]
        if self.scrape_targets:
            targets = ", ".join(json.dumps(t) for t in self.scrape_targets)
            lines += [
                "  - job_name: test",
                f"    scrape_timeout: {interval}",
                "    static_configs:",
                f"      - targets: [{targets}]",
            ]
        else:
            lines[-1] = "scrape_configs: []"
        (self.workdir / "prometheus.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _launch(self) -> None:
        args = [
            self.prometheus_bin,
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            # Backfilled blocks older than the retention would be deleted at start.
            "--storage.tsdb.retention.time=3650d",
            "--log.level=warn",
            *self.extra_args,
        ]
        if self.web_config is not None:
            web = self.workdir / "web.yml"
            web.write_text(self.web_config, encoding="utf-8")
            args.append(f"--web.config.file={web}")
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running():
                raise PrometheusUnavailable(f"prometheus exited early:\n{self.log_tail()}")
            try:
                with self._open(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise PrometheusUnavailable(
            f"prometheus not ready within {READY_TIMEOUT_S} s:\n{self.log_tail()}"
        )


# --------------------------------------------------------------------------- the standard data set

#: Workloads of the standard backfill: (namespace, workload) -> (trace, row offset).
#: ``shop/batch`` has a counter reset half-way; ``old/gone`` stopped an hour before now.
STANDARD_POINTS = 3 * 24 * 60  # three days of the 1-minute NASA trace
STANDARD_WORKLOADS: dict[tuple[str, str], tuple[str, int]] = {
    ("shop", "web"): ("nasa_http_jul1995_1min", 10 * 1440),
    ("shop", "api"): ("nasa_http_jul1995_1min", 20 * 1440),
    ("shop", "batch"): ("nasa_http_jul1995_1min", 5 * 1440),
    ("blog", "front"): ("nasa_http_jul1995_1min", 0),
}
STALE_WORKLOAD = ("old", "gone")
STALE_FOR_S = 3600
RESET_WORKLOAD = ("shop", "batch")


def standard_backfill(end: float) -> list[BackfillSeries]:
    """The data set most tests use: four live workloads, one stale, edge-case gauges.

    All counters are ``http_requests_total{namespace, workload, pod}``; each workload
    is split over two pods (2/3 and 1/3 of the trace, so ``sum by`` is needed to get
    the trace back). Gauges ``edge_load{case=...}`` hold NaN, +Inf and negative values.
    """
    out: list[BackfillSeries] = []
    for (ns, wl), (trace, offset) in STANDARD_WORKLOADS.items():
        base = trace_counter(
            trace,
            {"namespace": ns, "workload": wl},
            points=STANDARD_POINTS,
            end=end,
            offset=offset,
            reset_at=STANDARD_POINTS // 2 if (ns, wl) == RESET_WORKLOAD else None,
        )
        # Split over two pods; integer parts so the counters stay whole numbers.
        a = (base.values * 2 // 3).astype(float)
        for pod, part in (("a", a), ("b", base.values - a)):
            out.append(
                BackfillSeries(
                    metric=base.metric,
                    labels={"namespace": ns, "workload": wl, "pod": f"{wl}-{pod}"},
                    values=part,
                    reset_at=base.reset_at,
                )
            )
    ns, wl = STALE_WORKLOAD
    out.append(
        trace_counter(
            "nasa_http_jul1995_1min",
            {"namespace": ns, "workload": wl, "pod": f"{wl}-a"},
            points=STANDARD_POINTS // 3,
            end=end - STALE_FOR_S,
            offset=15 * 1440,
        )
    )
    n = 120
    finite = [float(10 + (i % 7)) for i in range(n)]
    nan = [math.nan if 40 <= i < 50 else v for i, v in enumerate(finite)]
    inf = [math.inf if i % 30 == 0 else v for i, v in enumerate(finite)]
    neg = [-5.0 if i % 25 == 0 else v for i, v in enumerate(finite)]
    for case, values in (("finite", finite), ("nan", nan), ("inf", inf), ("negative", neg)):
        out.append(gauge("edge_load", {"case": case}, values, end=end, step_s=60))
    return out


# --------------------------------------------------------------------------- partial scrape

#: The partial-scrape scenario: 4 pods of shop/web at 25 req/s each for 6 h, sampled
#: every 15 s; pods 2 and 3 stop being scraped for the last 4 minutes. The summed load
#: halves while every remaining series stays fresh.
PARTIAL_SCRAPE_WORKLOAD = ("shop", "web")
PARTIAL_SCRAPE_PODS = ("web-0", "web-1", "web-2", "web-3")
PARTIAL_SCRAPE_STOPPED = ("web-2", "web-3")
PARTIAL_SCRAPE_RATE_PER_POD = 25.0
PARTIAL_SCRAPE_INTERVAL_S = 15
PARTIAL_SCRAPE_HOURS = 6
PARTIAL_SCRAPE_GAP_S = 240


def partial_scrape_backfill(
    end: float, stopped: Sequence[str] = PARTIAL_SCRAPE_STOPPED
) -> list[BackfillSeries]:
    """The partial-scrape scenario as backfill, the last sample of pods 0-1 at ``end``.

    ``http_requests_total{namespace="shop",workload="web",pod="web-0".."web-3"}`` grows
    by 25 x 15 = 375 every 15 s (25 req/s per pod) for 6 h; pods ``web-2`` and
    ``web-3`` have no sample in the last ``PARTIAL_SCRAPE_GAP_S`` (240) seconds before
    ``end`` (their last sample is at ``end - 240``). ``sum(rate(...[2m]))`` is then 100
    req/s until about 2 minutes after they stop, and 50 req/s afterwards, with every
    remaining series fresh: the case where "fewer series behind the sum" must not read
    as "less load". Use with ``PrometheusServer.start(dir, backfill=...)``, or
    ``start_partial_scrape`` for a running server. ``stopped=()``: the control, every
    pod scraped to the end.
    """
    step = PARTIAL_SCRAPE_INTERVAL_S
    n = PARTIAL_SCRAPE_HOURS * 3600 // step + 1
    last = int(end)
    out: list[BackfillSeries] = []
    ns, wl = PARTIAL_SCRAPE_WORKLOAD
    for pod in PARTIAL_SCRAPE_PODS:
        stop = last - PARTIAL_SCRAPE_GAP_S if pod in stopped else last
        stamps = np.arange(last - (n - 1) * step, stop + 1, step, dtype=np.int64)
        index = pd.to_datetime(stamps, unit="s", utc=True)
        increments = np.full(len(stamps), PARTIAL_SCRAPE_RATE_PER_POD * step)
        out.append(
            BackfillSeries(
                metric="http_requests",
                labels={"namespace": ns, "workload": wl, "pod": pod},
                values=pd.Series(increments, index=index),
            )
        )
    return out


def start_partial_scrape(
    workdir: Path, end: float | None = None, stopped: Sequence[str] = PARTIAL_SCRAPE_STOPPED
) -> PrometheusServer:
    """A real Prometheus holding ``partial_scrape_backfill`` (``end`` default: now).

    ``end`` defaults to now floored to the 15-s scrape interval, so that a controller
    run right afterwards (``autoscaler run --once``) sees pods 0-1 fresh and pods 2-3
    gone for 4 minutes. Stop it with ``server.stop()`` (or use it as a context manager).
    """
    last = aligned_now(PARTIAL_SCRAPE_INTERVAL_S) if end is None else end
    return PrometheusServer.start(workdir, backfill=partial_scrape_backfill(last, stopped))


def expected_increments(
    backfill: Sequence[BackfillSeries], namespace: str, workload: str
) -> pd.Series:
    """Per-sample increments of one workload summed over its pods (the trace slice)."""
    parts = [
        s.values
        for s in backfill
        if s.kind == "counter"
        and s.labels.get("namespace") == namespace
        and s.labels.get("workload") == workload
    ]
    if not parts:
        raise KeyError((namespace, workload))
    total: pd.Series = sum(parts[1:], parts[0])
    return total


# --------------------------------------------------------------------------- fault injection


class _Handler(BaseHTTPRequestHandler):
    """Serves through the owning ``LoopbackServer``'s ``respond``."""

    server: LoopbackServer

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.server.respond(self)

    def do_POST(self) -> None:  # noqa: N802
        self.server.respond(self)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep test output clean


class LoopbackServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that stands in front of (or instead of) Prometheus.

    Modes, switchable while running (set the attributes):

    * ``upstream`` set: a proxy that forwards every request after ``delay_s`` seconds
      (a slow Prometheus) and, when ``required_headers`` is set, answers 401 unless
      the request carries them (an auth gateway, for bearer token / tenant headers);
    * ``upstream`` None: answers ``status`` with ``body`` and ``content_type`` (a proxy
      error page, garbage, a broken API);
    * ``drip_bytes_per_s`` set: the whole answer (status line, headers, body) is sent
      a few bytes at a time at that rate (a server or proxy that drip-feeds);
    * ``send_length`` False: no ``Content-Length``, the body ends when the connection
      closes (the client cannot know the size in advance);
    * ``tls`` set (a server-side ``ssl.SSLContext``): the same over HTTPS.

    Delays are bounded (``MAX_DELAY_S``) and the server stops with the test.
    """

    MAX_DELAY_S = 30.0
    daemon_threads = True

    def __init__(
        self,
        *,
        upstream: str | None = None,
        delay_s: float = 0.0,
        required_headers: Mapping[str, str] | None = None,
        status: int = 200,
        body: bytes = b"",
        content_type: str = "application/json",
        drip_bytes_per_s: float | None = None,
        send_length: bool = True,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.scheme = "http"
        if tls is not None:  # HTTPS (a server-side context, e.g. from make_tls_files)
            self.socket = tls.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.drip_bytes_per_s = drip_bytes_per_s
        self.send_length = send_length
        self.upstream = upstream
        self.delay_s = delay_s
        self.required_headers = dict(required_headers or {})
        self.status = status
        self.body = body
        self.content_type = content_type
        self.requests: list[str] = []
        self.headers_seen: list[dict[str, str]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def respond(self, h: _Handler) -> None:
        self.requests.append(h.path)
        self.headers_seen.append(dict(h.headers.items()))
        length = int(h.headers.get("Content-Length") or 0)
        data = h.rfile.read(length) if length else None
        if self.upstream is None:
            try:
                self._send(h, self.status, self.body, self.content_type)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a deadline or size test)
            return
        for name, value in self.required_headers.items():
            if h.headers.get(name) != value:
                self._send(h, 401, b"Unauthorized\n", "text/plain")
                return
        time.sleep(min(self.delay_s, self.MAX_DELAY_S))
        req = urllib.request.Request(self.upstream + h.path, data=data, method=h.command)
        if h.headers.get("Content-Type"):
            req.add_header("Content-Type", h.headers["Content-Type"])
        try:
            with urllib.request.urlopen(req, timeout=self.MAX_DELAY_S) as resp:
                status, body, ctype = resp.status, resp.read(), resp.headers["Content-Type"]
        except urllib.error.HTTPError as err:
            status, body, ctype = err.code, err.read(), err.headers["Content-Type"]
        except (urllib.error.URLError, OSError):
            status, body, ctype = 502, b"<html><title>502 Bad Gateway</title></html>", "text/html"
        try:
            self._send(h, status, body, ctype or "application/octet-stream")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to do

    def _send(self, h: _Handler, status: int, body: bytes, ctype: str) -> None:
        drip = self.drip_bytes_per_s
        if drip is not None:
            self._drip(h, status, body, ctype, drip)
            return
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        if self.send_length:
            h.send_header("Content-Length", str(len(body)))
        else:
            h.close_connection = True
        h.end_headers()
        h.wfile.write(body)

    def _drip(self, h: _Handler, status: int, body: bytes, ctype: str, rate: float) -> None:
        """Send the raw answer ``rate`` bytes a second, in ~10 pieces a second.

        Bounded: gives up after ``MAX_DELAY_S`` (or when the client goes away).
        """
        head = (
            f"HTTP/1.1 {status} OK\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        raw = head + body
        piece = max(1, int(rate / 10))
        h.close_connection = True
        stop = time.monotonic() + self.MAX_DELAY_S
        for i in range(0, len(raw), piece):
            if time.monotonic() > stop:
                return
            h.wfile.write(raw[i : i + piece])
            h.wfile.flush()
            time.sleep(piece / rate)


# --------------------------------------------------------------------------- TLS and auth


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a throw-away CA, a server certificate (127.0.0.1) and a client one."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls_files(directory: Path) -> TLSFiles:
    """A throw-away CA with a server certificate for 127.0.0.1 and a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip

    def leaf(cn: str, usage: x509.ObjectIdentifier) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem_key = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.PEM), pem_key

    directory.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    eku = x509.oid.ExtendedKeyUsageOID
    for (cert_path, key_path), cn, usage in (
        ((files.server_cert, files.server_key), "127.0.0.1", eku.SERVER_AUTH),
        ((files.client_cert, files.client_key), "autoscaler", eku.CLIENT_AUTH),
    ):
        cert_pem, key_pem = leaf(cn, usage)
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key_pem)
    return files


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash for ``basic_auth_users``: pure Python (``purebcrypt``), so it works on
    every Python and libc (``crypt`` is gone in 3.13; ``bcrypt`` is not in the lock)."""
    from tests.integration.purebcrypt import hashpw

    return hashpw(password)
