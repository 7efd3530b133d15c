"""The External Metrics API server (``external.metrics.k8s.io/v1beta1``) as a FastAPI app.

kube-apiserver's aggregator proxies the HPA controller's metric reads to us; kubectl
reaches us the same way. Every HPA in the cluster calls every 15 s with five workers in
total, so one slow answer stalls them all: values come only from the in-memory
``DecisionStore`` (never Prometheus or a forecaster), and serialised answers are cached
per (namespace, metric, selector) until the store changes or a value turns stale.
Wire format, errors and discovery follow docs/api.md and the spec in
/work/shared/spec/k8s-external-metrics-and-hpa.md (section 4 lists the checks we pass).

Staleness policy: a value older than ``max_age_seconds`` is left out of the list. The
HPA then sees no items for that metric (ScalingActive=False, ``FailedGetExternalMetric``)
and keeps the current replica count; it never scales on a stale forecast, and "stale" is
never turned into zero.

Called by ``autoscaler serve`` (static values), ``autoscaler run`` (the controller) and
the tests; ``run_server`` / ``ServerThread`` run it under uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from autoscaler.api.auth import GROUP, VERSION, Authenticator, AuthError
from autoscaler.api.selector import LabelSelector, parse_selector
from autoscaler.api.settings import ApiSettings
from autoscaler.clock import Clock, WallClock
from autoscaler.store import DecisionStore, MetricValue
from models.errors import InputError
from policies.quantity import format_quantity

log = logging.getLogger(__name__)

GROUP_VERSION = f"{GROUP}/{VERSION}"
JSON = "application/json"
#: Caps of the list answer cache: entries and bytes (key and body). HPAs repeat a few
#: hundred distinct requests; the caps only bite under a flood of distinct selectors.
_CACHE_ENTRIES = 4096
_CACHE_BYTES = 32 * 1024 * 1024
#: Parsed selectors are cached only for selector strings up to this length (HPAs send
#: short ones), at most ``_SELECTOR_ENTRIES`` of them; errors are never cached.
_SELECTOR_CACHE_MAX_LEN = 1024
_SELECTOR_ENTRIES = 4096

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def status_body(code: int, reason: str, message: str) -> bytes:
    """A ``metav1.Status`` failure body (client-go turns it into the error text)."""
    return orjson.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    )


def status_response(code: int, reason: str, message: str) -> Response:
    return Response(status_code=code, content=status_body(code, reason, message), media_type=JSON)


def rfc3339(ts: float) -> str:
    """``metav1.Time`` form: UTC, second precision."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


_API_GROUP = {
    "kind": "APIGroup",
    "apiVersion": "v1",
    "name": GROUP,
    "versions": [{"groupVersion": GROUP_VERSION, "version": VERSION}],
    "preferredVersion": {"groupVersion": GROUP_VERSION, "version": VERSION},
}
_API_GROUP_BODY = orjson.dumps(_API_GROUP)
_API_GROUP_LIST_BODY = orjson.dumps(
    {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_API_GROUP]}
)
_OK = b"ok"


#: A list answer cache key: (namespace, lower-case metric, the selector's requirements).
ListKey = tuple[str, str, frozenset[Any]]


class _BoundedCache:
    """A dict capped in entries and in bytes, dropping the oldest entries first.

    Every cache the request path fills from client input is one of these, so no stream
    of distinct requests can grow the server's memory past the caps.
    """

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entries: dict[Any, tuple[int, Any]] = {}
        self.bytes = 0

    def get(self, key: Any) -> Any:
        hit = self.entries.get(key)
        return None if hit is None else hit[1]

    def put(self, key: Any, value: Any, size: int) -> None:
        if size > self.max_bytes:
            return
        old = self.entries.pop(key, None)
        if old is not None:
            self.bytes -= old[0]
        while self.entries and (
            len(self.entries) >= self.max_entries or self.bytes + size > self.max_bytes
        ):
            oldest = next(iter(self.entries))
            self.bytes -= self.entries.pop(oldest)[0]
        self.entries[key] = (size, value)
        self.bytes += size

    def __len__(self) -> int:
        return len(self.entries)


class _ListCache:
    """Serialised list answers, valid while the store version is unchanged and no value aged.

    Keyed by the parsed, normalised request (namespace, metric, set of selector
    requirements), never by the raw query string: ``?a=1&pad=...`` and ``?labelSelector=a%3D1``
    share one entry, and ignored parameters cannot multiply entries. Only 200 answers are
    stored; at most ``_CACHE_ENTRIES`` of them and ``_CACHE_BYTES`` in all.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.cache = _BoundedCache(_CACHE_ENTRIES, _CACHE_BYTES)

    def get(self, key: ListKey, version: int, now: float) -> bytes | None:
        if not self.enabled:
            return None
        hit = self.cache.get(key)
        if hit is not None and hit[0] == version and now < hit[1]:
            body: bytes = hit[2]
            return body
        return None

    def put(self, key: ListKey, version: int, valid_until: float, body: bytes) -> None:
        if self.enabled:
            size = len(body) + sum(_requirement_size(r) for r in key[2]) + len(key[1]) + 200
            self.cache.put(key, (version, valid_until, body), size)


def _requirement_size(req: Any) -> int:
    return len(req.key) + sum(len(v) for v in req.values) + 100


_LIST_HEAD = (
    b'{"kind":"ExternalMetricValueList","apiVersion":"'
    + GROUP_VERSION.encode()
    + b'","metadata":{},"items":['
)
_LIST_TAIL = b"]}"
LIST_PREFIX = f"/apis/{GROUP_VERSION}/namespaces/"


def item_json(value: MetricValue) -> bytes:
    """One ``ExternalMetricValue`` item; ``metricName`` echoes the (lower-case) name."""
    return orjson.dumps(
        {
            "metricName": value.name,
            "metricLabels": dict(value.labels),
            "timestamp": rfc3339(value.timestamp),
            "value": format_quantity(value.value),
        }
    )


class _Lists:
    """Answers the namespaced list endpoint: lookup, selector, staleness, serialisation.

    Called from the ASGI middleware (so that a list request skips FastAPI routing) and
    from the FastAPI route. Three caches keep the common path short, all bounded:
    whole answers per parsed request until the store changes or a value ages; parsed
    selectors per short selector string (HPAs repeat theirs every 15 s; a malformed
    selector is never cached); each series' JSON item per store version (rendered once
    per publish, not once per request; bounded by the store's size).
    """

    def __init__(
        self,
        store: DecisionStore,
        clock: Clock,
        max_age: float,
        cache: _ListCache,
        stale_items: Counter,
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_age = max_age
        self.cache = cache
        self.stale_items = stale_items
        self._selectors = _BoundedCache(_SELECTOR_ENTRIES, _SELECTOR_ENTRIES * 4096)
        self._items_version = -1
        self._items: dict[int, tuple[MetricValue, bytes]] = {}

    def _selector(self, raw: str) -> LabelSelector:
        """The parsed selector; ``InputError`` (never cached) when malformed."""
        hit: LabelSelector | None = self._selectors.get(raw)
        if hit is None:
            hit = parse_selector(raw)  # raises InputError; only valid selectors are cached
            if len(raw) <= _SELECTOR_CACHE_MAX_LEN:
                self._selectors.put(raw, hit, 2 * len(raw) + 200)
        return hit

    def _item(self, value: MetricValue, version: int) -> bytes:
        if version != self._items_version:
            self._items.clear()  # values of an older snapshot: drop them all
            self._items_version = version
        hit = self._items.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        body = item_json(value)
        self._items[id(value)] = (value, body)  # holding ``value`` keeps its id unique
        return body

    def answer(self, namespace: str, metric: str, raw_selector: str) -> tuple[int, bytes]:
        """(status code, JSON body) for one list request."""
        name = metric.lower()
        if not self.store.has_metric(name):
            return 404, status_body(404, "NotFound", f"the server could not find the metric {name}")
        try:
            selector = self._selector(raw_selector)
        except InputError as err:
            return 400, status_body(400, "BadRequest", _clip(str(err)))
        now = self.clock.now()
        version = self.store.version
        key: ListKey = (namespace, name, frozenset(selector.requirements))
        body = self.cache.get(key, version, now)
        if body is not None:
            return 200, body
        parts = []
        valid_until = float("inf")
        stale = 0
        for value in self.store.query(namespace, name, selector):
            expires = value.timestamp + self.max_age
            if now >= expires:
                stale += 1
                continue
            valid_until = min(valid_until, expires)
            parts.append(self._item(value, version))
        body = _LIST_HEAD + b",".join(parts) + _LIST_TAIL
        if stale:
            self.stale_items.inc(stale)
            log.warning(
                "%s/%s: %d stale series not served (older than %gs)",
                namespace,
                name,
                stale,
                self.max_age,
            )
        self.cache.put(key, version, valid_until, body)
        return 200, body


def _clip(message: str, limit: int = 1024) -> str:
    """An error message short enough to send back (a 16 KiB selector is not echoed)."""
    return message if len(message) <= limit else message[:limit] + "... (truncated)"


def _first_query_value(query: bytes, name: str) -> str:
    """The first value of ``name`` in a query string (Go's ``url.Values.Get``), or ""."""
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key == name:
            return value
    return ""


def create_app(
    store: DecisionStore,
    settings: ApiSettings,
    auth: Authenticator | None = None,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    response_cache: bool = True,
) -> FastAPI:
    """The API app over ``store``. ``auth=None`` serves everyone (only ``--insecure`` does that).

    ``response_cache=False`` computes every list answer afresh; the benchmark uses it to
    measure the production case, where each HPA asks once per publish, so most requests
    miss the cache anyway.
    """
    clock = clock or WallClock()
    registry = registry or CollectorRegistry()
    latency = Histogram(
        "autoscaler_api_request_duration_seconds",
        "Time to answer one API request, by endpoint and status code.",
        ["endpoint", "code"],
        registry=registry,
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    )
    stale_items = Counter(
        "autoscaler_api_stale_items_total",
        "Series left out of an answer because their decision was older than max_age_seconds.",
        registry=registry,
    )
    cache = _ListCache(enabled=response_cache)
    lists = _Lists(store, clock, settings.max_age_seconds, cache, stale_items)
    discovery: list[tuple[int, bytes]] = [(-1, b"")]

    app = FastAPI(
        title="autoscaler external metrics API",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # /openapi/v2 and /openapi/v3 must be 404 (aggregator skips them)
        # No trailing-slash redirects: Starlette builds their Location from the client's
        # Host header (an open redirect). ``/apis/`` is a 404 Status like any unknown path.
        redirect_slashes=False,
    )
    app.state.store = store
    app.state.registry = registry

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        if exc.status_code == 405:
            return status_response(405, "MethodNotAllowed", "only GET is supported")
        return status_response(exc.status_code, "InternalError", str(exc.detail))

    @app.get("/apis", include_in_schema=False)
    async def api_group_list() -> Response:
        # Aggregated discovery (v2) is deliberately not implemented: plain JSON makes the
        # aggregator fall back to the legacy per-version document (spec section 1.5).
        return Response(_API_GROUP_LIST_BODY, media_type=JSON)

    @app.get(f"/apis/{GROUP}", include_in_schema=False)
    async def api_group() -> Response:
        return Response(_API_GROUP_BODY, media_type=JSON)

    @app.get(f"/apis/{GROUP_VERSION}", include_in_schema=False)
    async def api_resource_list() -> Response:
        # The aggregator's availability probe: must always answer 200, fast.
        version = store.version
        cached_version, body = discovery[0]
        if cached_version != version:
            resources = [
                {
                    "name": metric.name,
                    "singularName": "",
                    "namespaced": True,
                    "kind": "ExternalMetricValueList",
                    "verbs": ["get"],
                }
                for metric in store.metric_names()
            ]
            body = orjson.dumps(
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": GROUP_VERSION,
                    "resources": resources,
                }
            )
            discovery[0] = (version, body)
        return Response(body, media_type=JSON)

    @app.get(f"/apis/{GROUP_VERSION}/namespaces/{{namespace}}/{{metric}}", include_in_schema=False)
    async def list_metric(namespace: str, metric: str, request: Request) -> Response:
        # GETs are answered by the middleware already; this serves what gets past it.
        raw = _first_query_value(request.scope["query_string"], "labelSelector")
        code, body = lists.answer(namespace, metric, raw)
        return Response(body, status_code=code, media_type=JSON)

    for path in ("/healthz", "/livez", "/readyz"):
        app.add_api_route(path, _health, methods=["GET"], include_in_schema=False)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi/v2", include_in_schema=False)
    @app.get("/openapi/v3", include_in_schema=False)
    async def no_openapi() -> Response:
        return status_response(404, "NotFound", "OpenAPI is not served by this API server")

    app.add_middleware(_Middleware, auth=auth, latency=latency, lists=lists)
    return app


async def _health() -> Response:
    return Response(_OK, media_type="text/plain")


_ENDPOINTS = {
    "/apis": "discovery",
    f"/apis/{GROUP}": "discovery",
    f"/apis/{GROUP_VERSION}": "discovery",
    "/metrics": "metrics",
    "/healthz": "health",
    "/livez": "health",
    "/readyz": "health",
}


def _endpoint(path: str) -> str:
    hit = _ENDPOINTS.get(path)
    if hit is not None:
        return hit
    return "list" if path.startswith(f"/apis/{GROUP_VERSION}/namespaces/") else "other"


class _Middleware:
    """Pure ASGI middleware: authentication/authorisation, then latency by endpoint and code.

    Pure ASGI (not ``BaseHTTPMiddleware``) because it runs on every request and adds
    well under a tenth of a millisecond this way.
    """

    def __init__(
        self,
        app: ASGIApp,
        auth: Authenticator | None,
        latency: Histogram,
        lists: _Lists,
    ) -> None:
        self.app = app
        self.auth = auth
        self.latency = latency
        self.lists = lists
        self._children: dict[tuple[str, int], Any] = {}

    def _observe(self, path: str, code: int, seconds: float) -> None:
        endpoint = _endpoint(path)
        child = self._children.get((endpoint, code))
        if child is None:
            child = self._children[(endpoint, code)] = self.latency.labels(endpoint, str(code))
        child.observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path: str = scope["path"]
        code = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                code[0] = message["status"]
            await send(message)

        try:
            if self.auth is not None:
                tls = scope.get("extensions", {}).get("tls", {})
                try:
                    await self.auth.check(
                        scope["method"], path, scope["headers"], tls.get("client_cert_der")
                    )
                except AuthError as err:
                    await _send_status(send_wrapper, err.code, err.reason, err.message)
                    return
            if scope["method"] == "GET" and path.startswith(LIST_PREFIX):
                parts = path[len(LIST_PREFIX) :].split("/")
                if len(parts) == 2 and parts[0] and parts[1]:
                    # The list endpoint without FastAPI routing: it is nearly all traffic.
                    query: bytes = scope["query_string"]
                    raw = _first_query_value(query, "labelSelector") if query else ""
                    try:
                        code[0], body = self.lists.answer(parts[0], parts[1], raw)
                    except Exception:  # a bug must still answer a Status, and be logged
                        log.exception("list request %s failed", path)
                        code[0] = 500
                        body = status_body(500, "InternalError", "unable to fetch metrics")
                    await _send_body(send, code[0], body)
                    return
            await self.app(scope, receive, send_wrapper)
        finally:
            self._observe(path, code[0], time.perf_counter() - start)


async def _send_body(send: Send, code: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_status(send: Send, code: int, reason: str, message: str) -> None:
    body = status_body(code, reason, message)
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
    if code == 401:
        headers.append((b"www-authenticate", b'Bearer realm="kubernetes"'))
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class TLSHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, guarded, plus the peer certificate for the app.

    Guards (limits from ``ApiSettings``, set on a per-server subclass by ``uvicorn_config``):
    a request target longer than ``max_url`` gets a 414 Status; a request head longer than
    ``max_head`` a 431; a head not complete within ``head_timeout`` seconds a 408; a
    request while more than ``max_connections`` are open a 503. Each of these answers
    ``Connection: close``; the rest of what the client sends is read and dropped for a
    moment (so that it can read the answer instead of a reset) and then the connection
    is closed. Nothing past a limit is kept: httptools would otherwise buffer an endless
    header in memory.

    uvicorn does not expose the TLS peer to the app; the front-proxy authentication needs
    it. asyncio completes the handshake before ``connection_made``, so the certificate
    is known once per connection.
    """

    max_url = 16384
    max_head = 65536
    head_timeout = 10.0
    max_connections = 512
    #: After a rejection: seconds and bytes of further input read and dropped before closing.
    linger_seconds = 1.0
    linger_bytes = 1024 * 1024

    _peer_der: bytes | None = None
    _head_bytes = 0
    _in_head = True
    _url_bytes = 0
    _reject: tuple[int, str, str] | None = None
    _rejected = False
    _dropped = 0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        self._peer_der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self._rejected and not self.transport.is_closing():
            if self._head_bytes == 0 and self.cycle is not None:
                self.transport.close()  # an idle keep-alive connection: just close it
                return
            self._send_reject(
                408, "Timeout", f"request head not received within {self.head_timeout:g}s"
            )

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            self._dropped += len(data)
            if self._dropped > self.linger_bytes:
                self.transport.close()
            return
        if self._in_head and self._head_bytes == 0 and self.cycle is not None:
            self._arm_head_timer()  # the first byte of the next request on a kept-alive connection
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reject is not None:
            self._send_reject(*self._reject)
        elif self._in_head and self._head_bytes > self.max_head:
            self._send_reject(
                431,
                "RequestHeaderFieldsTooLarge",
                f"request head larger than {self.max_head} bytes",
            )

    def _send_reject(self, code: int, reason: str, message: str) -> None:
        """Answer a Status with ``Connection: close``, drop further input, close soon."""
        if self._rejected or self.transport.is_closing():
            return
        self._rejected = True
        self._cancel_head_timer()
        self._unset_keepalive_if_required()
        body = status_body(code, reason, message)
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n"
            % (code, _PHRASES.get(code, b"Error"), len(body))
        )
        log.info("rejected a request from %s: %d %s", self.client, code, message)
        transport = self.transport
        transport.write(head + body)
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(self.linger_seconds, transport.close)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url_bytes = 0
        self.scope["extensions"] = {"tls": {"client_cert_der": self._peer_der}}

    def on_url(self, url: bytes) -> None:
        if self._reject is not None:
            return
        self._url_bytes += len(url)
        if self._url_bytes > self.max_url:
            self._reject = (
                414,
                "RequestURITooLong",
                f"request URI longer than {self.max_url} bytes",
            )
            return
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._reject is None:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._reject is not None:
            return
        self._in_head = False
        self._cancel_head_timer()
        if len(self.connections) > self.max_connections:
            self._reject = (
                503,
                "ServiceUnavailable",
                f"more than {self.max_connections} open connections; retry later",
            )
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._reject is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._reject is not None:
            return
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()


_PHRASES = {
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def _protocol_class(settings: ApiSettings) -> type[TLSHttpToolsProtocol]:
    """``TLSHttpToolsProtocol`` with this server's limits."""
    return type(
        "GuardedHttpToolsProtocol",
        (TLSHttpToolsProtocol,),
        {
            "max_url": settings.max_url_bytes,
            "max_head": settings.max_header_bytes,
            "head_timeout": settings.header_timeout_seconds,
            "max_connections": settings.max_connections,
        },
    )


def uvicorn_config(app: FastAPI, settings: ApiSettings) -> uvicorn.Config:
    """uvicorn settings: TLS with an optional front-proxy client CA, or plain loopback HTTP."""
    kwargs: dict[str, Any] = {}
    if not settings.insecure:
        kwargs = {
            "ssl_certfile": str(settings.tls_cert),
            "ssl_keyfile": str(settings.tls_key),
        }
        if settings.requestheader_client_ca is not None:
            # Request a client certificate but do not require one (bearer tokens are fine
            # too). A certificate from another CA fails the TLS handshake: Python's ssl
            # module cannot defer that check to us.
            kwargs["ssl_ca_certs"] = str(settings.requestheader_client_ca)
            kwargs["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=_protocol_class(settings),
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
        # Requests (ASGI tasks) in flight at once; beyond it uvicorn answers 503.
        limit_concurrency=settings.max_connections + 64,
        **kwargs,
    )


def bind_socket(settings: ApiSettings) -> socket.socket:
    """Bind the listening socket ourselves, so that port 0 yields a known free port."""
    host = settings.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, settings.port))
    except OSError as err:
        sock.close()
        raise InputError("--bind", f"cannot listen on {settings.bind}: {err.strerror}") from err
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class CertReloader:
    """Reloads the serving certificate and key into the live TLS context when they change.

    cert-manager renews the certificate in place (a Secret volume update); without this
    the server kept the old one until restarted. Every ``tls_reload_seconds`` the files'
    (mtime, size) are compared; on a change ``load_cert_chain`` runs on the same
    ``SSLContext``, so new connections get the new certificate and open ones are
    untouched. A half-written or mismatched pair is logged and retried at the next tick;
    the old certificate stays in use meanwhile.
    """

    def __init__(self, context: ssl.SSLContext, settings: ApiSettings) -> None:
        assert settings.tls_cert is not None and settings.tls_key is not None
        self._context = context
        self._cert = settings.tls_cert
        self._key = settings.tls_key
        self._interval = settings.tls_reload_seconds
        self._seen = self._stamp()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tls-reload", daemon=True)
        self.reloads = 0

    def _stamp(self) -> tuple[tuple[int, int], ...]:
        try:
            return tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (self._cert, self._key))
        except OSError:
            return ()

    def check(self) -> bool:
        """Reload if the files changed; True if a new certificate was loaded."""
        stamp = self._stamp()
        if not stamp or stamp == self._seen:
            return False
        # A failed load_cert_chain can leave a context with the new certificate and the
        # old key (every handshake then fails), so the pair is first loaded into a
        # scratch context, from a private copy of the bytes that then go live.
        with tempfile.TemporaryDirectory(prefix="tls-reload-") as tmp:
            cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            try:
                cert.write_bytes(self._cert.read_bytes())
                key.touch(mode=0o600)
                key.write_bytes(self._key.read_bytes())
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(cert), str(key))
                self._context.load_cert_chain(str(cert), str(key))
            except (OSError, ssl.SSLError) as err:
                log.error("serving certificate changed but cannot be loaded yet: %s", err)
                return False
        self._seen = stamp
        self.reloads += 1
        log.info("reloaded the serving certificate from %s", self._cert)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()

    def start(self) -> CertReloader:
        if self._interval > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)


def _reloader(config: uvicorn.Config, settings: ApiSettings) -> CertReloader | None:
    """Load the uvicorn config now (to get its SSLContext) and watch the certificate."""
    if not config.loaded:
        config.load()
    context = getattr(config, "ssl", None)
    if settings.insecure or context is None or settings.tls_reload_seconds <= 0:
        return None
    return CertReloader(context, settings).start()


def run_server(app: FastAPI, settings: ApiSettings) -> None:
    """Serve until interrupted (blocking): ``autoscaler serve``."""
    config = uvicorn_config(app, settings)
    server = uvicorn.Server(config)
    sock = bind_socket(settings)
    reloader = _reloader(config, settings)
    log.info(
        "serving %s on %s://%s",
        GROUP_VERSION,
        "http" if settings.insecure else "https",
        settings.bind,
    )
    try:
        server.run(sockets=[sock])
    finally:
        if reloader is not None:
            reloader.stop()


class ServerThread:
    """The server in a background thread with a clean stop: ``autoscaler run`` and tests.

    ``start()`` returns once the socket accepts connections; ``port`` is the bound port
    (useful with ``bind="127.0.0.1:0"``); ``stop()`` shuts down gracefully and joins.
    """

    def __init__(self, app: FastAPI, settings: ApiSettings, start_timeout: float = 10.0) -> None:
        config = uvicorn_config(app, settings)
        self._server = uvicorn.Server(config)
        self._sock = bind_socket(settings)
        self.cert_reloader = _reloader(config, settings)
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name="api-server", daemon=True)
        self._start_timeout = start_timeout
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as err:  # surfaced by start()
            self._error = err

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"API server failed to start: {self._error}")
            if time.monotonic() > deadline:
                raise RuntimeError("API server did not start in time")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()
        if self.cert_reloader is not None:
            self.cert_reloader.stop()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
