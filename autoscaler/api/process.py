"""The API server in its own process, fed from the controller's ``DecisionStore``.

Why: a reconcile runs forecasters for every workload in Python. In the same process it
competes with the event loop for the GIL, and each time the server thread waits for the
GIL it loses up to one switch interval (5 ms): the API's p99 then moves with the
reconcile, which the HPA controller's five workers feel cluster-wide
(docs/benchmarks/api.md has the figures). In a child process the request path never
waits for forecasting.

How: the child keeps its own ``DecisionStore``; the parent's store notifies a sender
thread on every change, which ships the whole current snapshot (plain tuples, coalesced:
only the newest snapshot is sent when several publishes come quickly) over a pipe. The
child replaces its store with it. Values keep their decision timestamps, so staleness is
judged exactly as in-process. If the parent dies, the pipe closes and the child exits.

Metrics: the child's request-latency metrics live in the child. Given a ``registry``
(the controller's, served on its metrics port, which Prometheus scrapes), the parent
registers a collector that asks the child for them over the same pipe at each scrape,
so they are scraped where the controller's are, without opening the serving port's
``/metrics`` to anyone (docs/api.md, "Metrics").

Called by ``autoscaler run`` (the controller) and the benchmark.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.api.settings import ApiSettings
from autoscaler.store import DecisionStore, MetricValue

log = logging.getLogger(__name__)

Row = tuple[str, str, dict[str, str], float, float]
#: Seconds a scrape waits for the child's metrics before it reports without them.
METRICS_TIMEOUT_SECONDS = 2.0


def _rows(store: DecisionStore) -> list[Row]:
    return [(v.namespace, v.name, dict(v.labels), v.value, v.timestamp) for v in store.all_values()]


def _child(
    settings: ApiSettings, kubeconfig: str | None, response_cache: bool, conn: Connection
) -> None:
    """Child process: serve from a mirrored store until the parent closes the pipe."""
    from autoscaler.api.auth import Authenticator, kube_reviewer
    from autoscaler.api.server import ServerThread, create_app
    from autoscaler.clock import WallClock

    store = DecisionStore()
    clock = WallClock()
    auth = None
    if not settings.insecure:
        reviewer = None
        if settings.auth_mode == "delegated":
            reviewer = kube_reviewer(
                Path(kubeconfig) if kubeconfig else None, settings.review_timeout_seconds
            )
        auth = Authenticator(settings, reviewer, clock.now)
    app = create_app(store, settings, auth, clock, response_cache=response_cache)
    server = ServerThread(app, settings).start()
    conn.send(("port", server.port))
    from prometheus_client import generate_latest

    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the parent went away: stop serving
            if message == "stop":
                break
            if isinstance(message, tuple) and message[0] == "metrics":
                conn.send(("metrics", message[1], generate_latest(app.state.registry)))
                continue
            rows: list[Row] = message
            store.publish((MetricValue(*row) for row in rows), replace_all=True)
    finally:
        server.stop()


class ServerProcess:
    """Run the API server in a child process that mirrors ``store``.

    ``start()`` returns once the child listens (``port`` is known); ``stop()`` ends it.
    """

    def __init__(
        self,
        store: DecisionStore,
        settings: ApiSettings,
        kubeconfig: Path | None = None,
        start_timeout: float = 60.0,
        response_cache: bool = True,
        registry: CollectorRegistry | None = None,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process that has threads
        self._store = store
        self._conn, child_conn = ctx.Pipe()
        self._process: Any = ctx.Process(
            target=_child,
            args=(settings, str(kubeconfig) if kubeconfig else None, response_cache, child_conn),
            name="api-server",
            daemon=True,
        )
        self._child_conn = child_conn
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._sender = threading.Thread(target=self._send_loop, name="api-mirror", daemon=True)
        self._start_timeout = start_timeout
        self._send_lock = threading.Lock()
        self._registry = registry
        self._scrapes = itertools.count(1)
        self.port = 0

    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            self._dirty.wait()
            self._dirty.clear()
            if self._stopping.is_set():
                break
            try:
                with self._send_lock:
                    self._conn.send(_rows(self._store))
            except (OSError, ValueError) as err:
                log.error("API server process is gone: %s", err)
                break

    def start(self) -> ServerProcess:
        self._process.start()
        self._child_conn.close()
        if not self._conn.poll(self._start_timeout):
            self._process.kill()
            raise RuntimeError("API server process did not start in time")
        try:
            kind, port = self._conn.recv()
        except EOFError:
            self._process.join(5)
            raise RuntimeError(
                f"API server process exited during start (exit code {self._process.exitcode}); "
                "see its log above"
            ) from None
        assert kind == "port"
        self.port = int(port)
        self._store.add_listener(lambda _version: self._dirty.set())
        self._sender.start()
        self._dirty.set()  # send what the store already holds
        if self._registry is not None:
            self._registry.register(_ChildMetrics(self))
        return self

    def child_metrics(self, timeout: float = METRICS_TIMEOUT_SECONDS) -> bytes:
        """The child's metrics in the text exposition format; b"" if it does not answer."""
        seq = next(self._scrapes)
        with self._send_lock:
            try:
                self._conn.send(("metrics", seq))
                while self._conn.poll(timeout):
                    kind, got, text = self._conn.recv()
                    if kind == "metrics" and got == seq:
                        return bytes(text)
                    # an answer to an earlier scrape that timed out: skip it
            except (OSError, EOFError, ValueError) as err:
                log.error("API server process metrics unavailable: %s", err)
                return b""
        log.warning("API server process did not send its metrics within %gs", timeout)
        return b""

    @property
    def pid(self) -> int | None:
        """The child's process id (for monitoring)."""
        return self._process.pid  # type: ignore[no-any-return]

    @property
    def alive(self) -> bool:
        """Whether the child still runs (the controller can report or restart it)."""
        return bool(self._process.is_alive())

    def sync(self) -> None:
        """Send the current snapshot now (the child applies it right after)."""
        with self._send_lock:
            self._conn.send(_rows(self._store))

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._dirty.set()
        try:
            with self._send_lock:
                self._conn.send("stop")
        except (OSError, ValueError):
            pass
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._conn.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class _ChildMetrics:
    """A collector of the API child's metrics, for the controller's registry."""

    def __init__(self, process: ServerProcess) -> None:
        self._process = process

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration; the child's names are its own

    def collect(self) -> Iterator[Metric]:
        if not self._process.alive:
            return
        text = self._process.child_metrics().decode("utf-8", "replace")
        yield from text_string_to_metric_families(text)
