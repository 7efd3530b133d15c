"""Our decisions as a KEDA external scaler (``externalscaler.proto`` over gRPC).

Only one server can own ``external.metrics.k8s.io`` in a cluster (kedacore/keda#470), and
many clusters already run KEDA there. Such clusters point a ScaledObject trigger of type
``external`` at this service instead; KEDA then builds the HPA itself. Values come from the
same ``DecisionStore`` and follow the same staleness policy as the External Metrics API.

Trigger metadata (``scalerMetadata``), see docs/api.md:
  ``workload``       target workload name (label ``workload``), or
  ``labelSelector``  any label selector over the series' labels (overrides ``workload``);
  ``metricName``     served metric, default ``autoscaler_desired_replicas``.
The series is looked up in the ScaledObject's namespace. ``GetMetricSpec`` asks for an
average of 1 per replica, so KEDA's HPA runs ``ceil(value)`` replicas.

Absent or stale data is an error (gRPC ``NOT_FOUND`` / ``UNAVAILABLE``), never zero:
KEDA then applies the ScaledObject's ``fallback`` instead of scaling to zero.

The server is ``grpc.aio`` on an event loop in a thread of its own: KEDA's push mode keeps
one ``StreamIsActive`` open per ScaledObject for as long as it runs, and an open stream is
a suspended coroutine here, not a worker thread, so hundreds of them do not delay
``GetMetrics`` (a thread pool of 8 was starved by 8 ScaledObjects).
Called by ``autoscaler serve --keda-bind`` and ``autoscaler run``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import AsyncIterator
from concurrent import futures
from typing import Any, NoReturn

import grpc

from autoscaler.api.keda.generated import externalscaler_pb2 as pb
from autoscaler.api.keda.generated import externalscaler_pb2_grpc as pb_grpc
from autoscaler.api.selector import LabelSelector, Requirement, parse_selector
from autoscaler.api.settings import ApiSettings, is_loopback, split_bind
from autoscaler.clock import Clock
from autoscaler.store import DESIRED_REPLICAS_METRIC, DecisionStore
from models.errors import InputError

log = logging.getLogger(__name__)

#: Seconds between checks of the store for StreamIsActive; KEDA's own polling default is 30 s.
STREAM_POLL_SECONDS = 1.0


class _Lookup(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


class ExternalScalerService(pb_grpc.ExternalScalerServicer):
    """The gRPC servicer; each method reads the store once, without blocking writers."""

    def __init__(self, store: DecisionStore, settings: ApiSettings, clock: Clock) -> None:
        self._store = store
        self._max_age = settings.max_age_seconds
        self._clock = clock
        self._stopping = asyncio.Event()  # created and used on the server's event loop

    def stop_streams(self) -> None:
        """Called on the server's loop: open streams end at their next check."""
        self._stopping.set()

    def _value(self, ref: Any) -> tuple[str, float]:
        meta = dict(ref.scalerMetadata)
        name = meta.get("metricName", DESIRED_REPLICAS_METRIC).lower()
        if not ref.namespace:
            raise _Lookup(grpc.StatusCode.INVALID_ARGUMENT, "ScaledObjectRef.namespace is empty")
        try:
            if "labelSelector" in meta:
                selector = parse_selector(meta["labelSelector"], "scalerMetadata.labelSelector")
            elif "workload" in meta:
                selector = LabelSelector(
                    (Requirement("workload", "=", frozenset({meta["workload"]})),)
                )
            else:
                raise InputError(
                    "scalerMetadata",
                    "no series chosen",
                    "set metadata.workload or metadata.labelSelector on the trigger",
                )
        except InputError as err:
            raise _Lookup(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from err
        values = self._store.query(ref.namespace, name, selector)
        if not values:
            raise _Lookup(
                grpc.StatusCode.NOT_FOUND,
                f"no series of {name} in namespace {ref.namespace} matches {dict(meta)}",
            )
        now = self._clock.now()
        fresh = [v for v in values if now - v.timestamp < self._max_age]
        if not fresh:
            raise _Lookup(
                grpc.StatusCode.UNAVAILABLE,
                f"{name} in {ref.namespace}: newest decision older than {self._max_age:g}s",
            )
        # Several matching series are summed, exactly as the HPA sums external items.
        return name, float(sum(v.value for v in fresh))

    async def _abort(self, context: grpc.aio.ServicerContext[Any, Any], err: _Lookup) -> NoReturn:
        log.info("keda scaler: %s", err.message)
        await context.abort(err.code, err.message)
        raise AssertionError("grpc context.abort returned")  # it always raises

    async def IsActive(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        try:
            _, value = self._value(request)
        except _Lookup as err:
            await self._abort(context, err)
        return pb.IsActiveResponse(result=value > 0)

    async def StreamIsActive(  # noqa: N802
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        """Push ``IsActive`` now and whenever it changes; ends when the client goes away.

        A suspended coroutine between checks: it holds no thread.
        """
        last: bool | None = None
        while not self._stopping.is_set():
            try:
                _, value = self._value(request)
            except _Lookup as err:
                await self._abort(context, err)
            active = value > 0
            if active != last:
                last = active
                yield pb.IsActiveResponse(result=active)
            try:
                await asyncio.wait_for(self._stopping.wait(), STREAM_POLL_SECONDS)
            except TimeoutError:
                pass

    async def GetMetricSpec(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        name = dict(request.scalerMetadata).get("metricName", DESIRED_REPLICAS_METRIC).lower()
        # Target 1 per replica: KEDA's HPA (AverageValue) then runs ceil(value) replicas.
        return pb.GetMetricSpecResponse(
            metricSpecs=[pb.MetricSpec(metricName=name, targetSize=1, targetSizeFloat=1.0)]
        )

    async def GetMetrics(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        try:
            name, value = self._value(request.scaledObjectRef)
        except _Lookup as err:
            await self._abort(context, err)
        return pb.GetMetricsResponse(
            metricValues=[
                pb.MetricValue(
                    metricName=request.metricName or name,
                    metricValue=math.ceil(value),
                    metricValueFloat=value,
                )
            ]
        )


class KedaServer:
    """A running gRPC server; ``port`` is the bound port, ``stop`` shuts it down."""

    def __init__(
        self,
        server: grpc.aio.Server,
        service: ExternalScalerService,
        port: int,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
    ) -> None:
        self._server = server
        self._service = service
        self.port = port
        self._loop = loop
        self._thread = thread

    def stop(self, grace: float = 1.0) -> None:
        async def _stop() -> None:
            self._service.stop_streams()
            await self._server.stop(grace)

        if self._loop.is_running():
            done = asyncio.run_coroutine_threadsafe(_stop(), self._loop)
            try:
                done.result(grace + 5.0)
            except (futures.TimeoutError, RuntimeError) as err:
                log.warning("KEDA scaler did not stop cleanly: %s", err)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(grace + 5.0)


def start_keda_server(
    store: DecisionStore, settings: ApiSettings, clock: Clock, max_streams: int = 1024
) -> KedaServer:
    """Start the external scaler on ``settings.keda_bind`` (TLS unless ``insecure``).

    The ``grpc.aio`` server runs on an event loop in a daemon thread; this returns once it
    listens, or raises ``InputError`` when it cannot. ``max_streams`` caps concurrent RPCs
    (gRPC answers RESOURCE_EXHAUSTED beyond it).
    """
    if settings.keda_bind is None:
        raise InputError("--keda-bind", "no address given", "e.g. 0.0.0.0:9090")
    host, port = split_bind(settings.keda_bind)
    if settings.insecure and not is_loopback(host):
        raise InputError(
            "--keda-bind", f"--insecure is loopback only; refusing to bind {host}", "bind 127.0.0.1"
        )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    creds = None
    if not settings.insecure:
        assert settings.tls_cert is not None and settings.tls_key is not None
        client_ca = settings.keda_client_ca
        creds = grpc.ssl_server_credentials(
            [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
            root_certificates=client_ca.read_bytes() if client_ca else None,
            require_client_auth=client_ca is not None,
        )
    loop = asyncio.new_event_loop()
    started: futures.Future[tuple[grpc.aio.Server, ExternalScalerService, int]] = futures.Future()

    async def _start() -> tuple[grpc.aio.Server, ExternalScalerService, int]:
        service = ExternalScalerService(store, settings, clock)
        server = grpc.aio.server(
            maximum_concurrent_rpcs=max_streams,
            # gRPC sets SO_REUSEPORT by default: a second server on a busy port would then
            # start silently and share the traffic. A busy port must be an error instead.
            options=[("grpc.so_reuseport", 0)],
        )
        pb_grpc.add_ExternalScalerServicer_to_server(service, server)  # type: ignore[no-untyped-call]
        try:
            if creds is None:
                bound = server.add_insecure_port(address)
            else:
                bound = server.add_secure_port(address, creds)
        except RuntimeError as err:  # newer grpcio raises instead of returning 0
            bound, detail = 0, str(err)
        else:
            detail = "address in use?"
        if bound == 0:
            raise InputError("--keda-bind", f"cannot listen on {settings.keda_bind} ({detail})")
        await server.start()
        return server, service, bound

    def _run() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.set_result(loop.run_until_complete(_start()))
        except BaseException as err:  # surfaced to the caller below
            started.set_exception(err)
            loop.close()
            return
        try:
            loop.run_forever()
        finally:
            loop.close()

    thread = threading.Thread(target=_run, name="keda-scaler", daemon=True)
    thread.start()
    server, service, bound = started.result(30.0)
    log.info("KEDA external scaler on %s", address)
    return KedaServer(server, service, bound, loop, thread)
