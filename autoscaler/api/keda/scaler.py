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
Called by ``autoscaler serve --keda-bind`` and ``autoscaler run``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
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
        self._stopping = threading.Event()

    def stop_streams(self) -> None:
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

    def _abort(self, context: grpc.ServicerContext, err: _Lookup) -> NoReturn:
        log.info("keda scaler: %s", err.message)
        context.abort(err.code, err.message)
        raise AssertionError("grpc context.abort returned")  # it always raises

    def IsActive(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            _, value = self._value(request)
        except _Lookup as err:
            self._abort(context, err)
        return pb.IsActiveResponse(result=value > 0)

    def StreamIsActive(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        """Push ``IsActive`` now and whenever it changes; ends when the client goes away."""
        last: bool | None = None
        while context.is_active() and not self._stopping.is_set():
            try:
                _, value = self._value(request)
            except _Lookup as err:
                self._abort(context, err)
            active = value > 0
            if active != last:
                last = active
                yield pb.IsActiveResponse(result=active)
            self._stopping.wait(STREAM_POLL_SECONDS)

    def GetMetricSpec(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        name = dict(request.scalerMetadata).get("metricName", DESIRED_REPLICAS_METRIC).lower()
        # Target 1 per replica: KEDA's HPA (AverageValue) then runs ceil(value) replicas.
        return pb.GetMetricSpecResponse(
            metricSpecs=[pb.MetricSpec(metricName=name, targetSize=1, targetSizeFloat=1.0)]
        )

    def GetMetrics(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            name, value = self._value(request.scaledObjectRef)
        except _Lookup as err:
            self._abort(context, err)
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

    def __init__(self, server: grpc.Server, service: ExternalScalerService, port: int) -> None:
        self._server = server
        self._service = service
        self.port = port

    def stop(self, grace: float = 1.0) -> None:
        self._service.stop_streams()
        self._server.stop(grace).wait(grace + 5.0)


def start_keda_server(
    store: DecisionStore, settings: ApiSettings, clock: Clock, workers: int = 8
) -> KedaServer:
    """Start the external scaler on ``settings.keda_bind`` (TLS unless ``insecure``)."""
    if settings.keda_bind is None:
        raise InputError("--keda-bind", "no address given", "e.g. 0.0.0.0:9090")
    host, port = split_bind(settings.keda_bind)
    if settings.insecure and not is_loopback(host):
        raise InputError(
            "--keda-bind", f"--insecure is loopback only; refusing to bind {host}", "bind 127.0.0.1"
        )
    service = ExternalScalerService(store, settings, clock)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keda"),
        # gRPC sets SO_REUSEPORT by default: a second server on a busy port would then
        # start silently and share the traffic. A busy port must be an error instead.
        options=[("grpc.so_reuseport", 0)],
    )
    pb_grpc.add_ExternalScalerServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        if settings.insecure:
            bound = server.add_insecure_port(address)
        else:
            assert settings.tls_cert is not None and settings.tls_key is not None
            client_ca = settings.keda_client_ca
            creds = grpc.ssl_server_credentials(
                [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
                root_certificates=client_ca.read_bytes() if client_ca else None,
                require_client_auth=client_ca is not None,
            )
            bound = server.add_secure_port(address, creds)
    except RuntimeError as err:  # newer grpcio raises instead of returning 0
        bound = 0
        detail = str(err)
    else:
        detail = "address in use?"
    if bound == 0:
        raise InputError("--keda-bind", f"cannot listen on {settings.keda_bind} ({detail})")
    server.start()
    log.info("KEDA external scaler on %s", address)
    return KedaServer(server, service, bound)
