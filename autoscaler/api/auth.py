"""Authentication and authorisation of API requests, as an aggregated API server must do it.

kube-apiserver proxies ``external.metrics.k8s.io`` requests to us over TLS with its
front-proxy client certificate and the original caller in ``X-Remote-User`` /
``X-Remote-Group``. We trust those headers only when the peer certificate was issued by
``requestheader_client_ca`` and its CN is in ``requestheader_allowed_names``. Requests
without such a certificate may carry a bearer token, checked with a TokenReview.
Authorisation is a SubjectAccessReview per (user, verb, resource), cached briefly;
``system:masters`` is allowed without one (the aggregator's availability probe relies on
that). Failures become 401 / 403 (503 when a review is not answered in time) with
``Status`` bodies (``autoscaler.api.server``).

The kubernetes client calls block, so they run in a small thread pool of their own
(``review_workers``), each with a deadline (``review_timeout_seconds``; the client's
socket timeout is one second longer, so the thread is freed soon after). A hung
kube-apiserver costs a request at most that deadline and then a 503 Status; with every
worker and as many queued calls waiting, further uncached requests get the 503 at once.
Answers are cached for ``auth_cache_seconds`` so that the five HPA workers cost almost
no reviews.
Called by the ASGI middleware in ``autoscaler.api.server``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from cryptography import x509
from cryptography.x509.oid import NameOID

from autoscaler.api.settings import ApiSettings
from models.errors import InputError

log = logging.getLogger(__name__)

GROUP = "external.metrics.k8s.io"
VERSION = "v1beta1"
_RESOURCE_PREFIX = f"/apis/{GROUP}/{VERSION}/namespaces/"
#: Paths every caller may read, like the generic apiserver's always-allowed health paths.
#: ``/metrics`` is not one of them: it needs the same authentication and authorisation as
#: the API (a SubjectAccessReview for ``get`` on the non-resource path ``/metrics``).
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
_CACHE_LIMIT = 10_000


class AuthError(Exception):
    """A request that is not authenticated (401), not authorised (403), or that could not be
    checked because kube-apiserver did not answer the review in time (503)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.reason = {401: "Unauthorized", 403: "Forbidden"}.get(code, "ServiceUnavailable")
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class UserInfo:
    """An authenticated caller."""

    name: str
    groups: tuple[str, ...] = ()
    #: how we know: "front-proxy" or "token".
    via: str = ""
    #: extra attributes (``X-Remote-Extra-<key>`` / TokenReview ``user.extra``), sorted.
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Attributes:
    """What a request does, in SubjectAccessReview terms."""

    verb: str
    path: str = ""
    namespace: str = ""
    resource: str = ""
    #: True for the namespaced metric list; False for discovery and other non-resource paths.
    is_resource: bool = False

    def describe(self) -> str:
        if self.is_resource:
            return (
                f'cannot {self.verb} resource "{self.resource}" in API group "{GROUP}" '
                f'in the namespace "{self.namespace}"'
            )
        return f'cannot {self.verb} path "{self.path}"'


def attributes_for(method: str, path: str) -> Attributes:
    """Map a request to SAR attributes (a list has no object name: verb ``list``)."""
    if path.startswith(_RESOURCE_PREFIX):
        rest = path[len(_RESOURCE_PREFIX) :].split("/")
        if len(rest) == 2 and all(rest):
            return Attributes(
                verb="list" if method in ("GET", "HEAD") else method.lower(),
                path=path,
                namespace=rest[0],
                resource=rest[1].lower(),
                is_resource=True,
            )
    return Attributes(verb="get" if method in ("GET", "HEAD") else method.lower(), path=path)


class Reviewer(Protocol):
    """Who answers TokenReviews and SubjectAccessReviews (kube-apiserver, in production)."""

    def review_token(self, token: str) -> UserInfo | None:
        """The user behind ``token``, or None when it is not valid."""
        ...

    def review_access(self, user: UserInfo, attrs: Attributes) -> bool:
        """Whether ``user`` may do ``attrs``."""
        ...


class KubeReviewer:
    """``Reviewer`` backed by the official kubernetes client (TokenReview / SAR, v1)."""

    def __init__(self, api_client: Any, timeout: float = 5.0) -> None:
        from kubernetes import client as k8s

        self._k8s = k8s
        #: (connect, read) socket timeouts of each review call: a second past the pool's
        #: deadline (``ReviewPool``), so the deadline (503) always answers first and the
        #: thread is freed right after it.
        self._timeout = (timeout + 1.0, timeout + 1.0)
        self._authn = k8s.AuthenticationV1Api(api_client)
        self._authz = k8s.AuthorizationV1Api(api_client)

    def review_token(self, token: str) -> UserInfo | None:
        k8s = self._k8s
        body = k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=token))
        result = self._authn.create_token_review(body, _request_timeout=self._timeout)
        status = result.status
        if status is None or not status.authenticated or status.user is None:
            return None
        extra = tuple(sorted((k, tuple(v)) for k, v in (status.user.extra or {}).items()))
        return UserInfo(status.user.username or "", tuple(status.user.groups or ()), "token", extra)

    def review_access(self, user: UserInfo, attrs: Attributes) -> bool:
        k8s = self._k8s
        spec: dict[str, Any] = {"user": user.name, "groups": list(user.groups)}
        if user.extra:
            spec["extra"] = {key: list(values) for key, values in user.extra}
        if attrs.is_resource:
            spec["resource_attributes"] = k8s.V1ResourceAttributes(
                verb=attrs.verb,
                group=GROUP,
                version=VERSION,
                resource=attrs.resource,
                namespace=attrs.namespace,
            )
        else:
            spec["non_resource_attributes"] = k8s.V1NonResourceAttributes(
                path=attrs.path, verb=attrs.verb
            )
        body = k8s.V1SubjectAccessReview(spec=k8s.V1SubjectAccessReviewSpec(**spec))
        result = self._authz.create_subject_access_review(body, _request_timeout=self._timeout)
        return bool(result.status is not None and result.status.allowed)


def kube_reviewer(kubeconfig: Path | None, timeout: float = 5.0) -> KubeReviewer:
    """A TokenReview/SAR client: from ``kubeconfig``, else the in-cluster service account."""
    from kubernetes import client, config

    try:
        if kubeconfig is not None:
            api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        else:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            api_client = client.ApiClient()
    except Exception as err:  # kubernetes raises ConfigException, OSError, yaml errors...
        raise InputError(
            "--kubeconfig",
            f"cannot configure the Kubernetes client for TokenReview/SubjectAccessReview: {err}",
            "give --kubeconfig, run in a pod, or use --auth-mode front-proxy-only",
        ) from err
    return KubeReviewer(api_client, timeout)


@dataclass
class _TTLCache:
    """A small TTL cache; entries expire after ``ttl`` seconds of ``clock`` time.

    Keys are stored as SHA-256 digests of their ``repr``: a client-chosen token or path of
    64 KiB costs 32 bytes here, and at most ``_CACHE_LIMIT`` entries are kept.
    """

    ttl: float
    clock: Callable[[], float]
    _data: dict[Any, tuple[float, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Any) -> tuple[bool, Any]:
        key = _digest(key)
        with self._lock:
            hit = self._data.get(key)
            if hit is None or hit[0] <= self.clock():
                return False, None
            return True, hit[1]

    def put(self, key: Any, value: Any) -> None:
        if self.ttl <= 0:
            return
        key = _digest(key)
        with self._lock:
            if len(self._data) >= _CACHE_LIMIT:
                self._data.clear()  # crude but bounded; a flood of new tokens cannot grow it
            self._data[key] = (self.clock() + self.ttl, value)


def _digest(key: Any) -> bytes:
    return hashlib.sha256(repr(key).encode("utf-8", "surrogatepass")).digest()


class ReviewPool:
    """Runs blocking review calls in a bounded pool of their own, each with a deadline.

    ``call`` returns (succeeded, answer) like before, or raises ``AuthError(503)`` when
    the call did not finish within ``timeout`` or when ``2 * workers`` calls are already
    pending (the pool is stuck behind a hung kube-apiserver): never a hang.
    """

    def __init__(self, workers: int, timeout: float) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="review")
        self._limit = 2 * workers
        self._timeout = timeout
        self._pending = 0
        self._lock = threading.Lock()

    def _done(self, _: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1

    async def call(self, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        name = getattr(fn, "__name__", str(fn))
        with self._lock:
            if self._pending >= self._limit:
                busy = True
            else:
                busy = False
                self._pending += 1
        if busy:
            log.warning("review call %s refused: %d calls already pending", name, self._limit)
            raise AuthError(503, "authentication service busy: kube-apiserver is not answering")
        future = self._executor.submit(fn, *args)
        future.add_done_callback(self._done)  # the slot is freed when the thread is
        try:
            return True, await asyncio.wait_for(asyncio.wrap_future(future), self._timeout)
        except TimeoutError:
            log.warning("review call %s timed out after %gs", name, self._timeout)
            raise AuthError(
                503, f"authentication service did not answer within {self._timeout:g}s"
            ) from None
        except Exception as err:  # any client failure must deny, not crash the request
            log.warning("review call %s failed: %s", name, err)
            return False, None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def load_ca_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle; ``InputError`` if there is none."""
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as err:
        raise InputError(str(path), f"cannot read a PEM CA bundle: {err}") from err
    return certs


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = attrs[0].value if attrs else ""
    return value if isinstance(value, str) else value.decode()


class Authenticator:
    """Decides who a request is and whether it may proceed."""

    def __init__(
        self,
        settings: ApiSettings,
        reviewer: Reviewer | None,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._reviewer = reviewer
        self._cas = (
            load_ca_certificates(settings.requestheader_client_ca)
            if settings.requestheader_client_ca
            else []
        )
        self._allowed = frozenset(settings.requestheader_allowed_names)
        self._user_header = settings.requestheader_username_header.lower().encode()
        self._group_header = settings.requestheader_group_header.lower().encode()
        self._extra_prefix = settings.requestheader_extra_headers_prefix.lower().encode()
        self._tokens = _TTLCache(settings.auth_cache_seconds, clock)
        self._access = _TTLCache(settings.auth_cache_seconds, clock)
        self._certs = _TTLCache(3600.0, clock)
        self._pool = ReviewPool(settings.review_workers, settings.review_timeout_seconds)

    def _front_proxy_ok(self, der: bytes) -> tuple[bool, str]:
        """Whether a peer certificate is a valid front-proxy certificate (cached by DER)."""
        hit, cached = self._certs.get(der)
        if hit:
            return bool(cached[0]), str(cached[1])
        ok, why = False, "client certificate is not signed by the requestheader client CA"
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            cert = None
            why = "client certificate cannot be parsed"
        if cert is not None:
            for ca in self._cas:
                try:
                    cert.verify_directly_issued_by(ca)
                except Exception:  # wrong issuer, bad signature, unsupported key: not issued by it
                    continue
                cn = common_name(cert)
                if self._allowed and cn not in self._allowed:
                    why = f"client certificate CN {cn!r} is not an allowed requestheader name"
                else:
                    ok, why = True, ""
                break
        self._certs.put(der, (ok, why))
        return ok, why

    async def authenticate(
        self, headers: Sequence[tuple[bytes, bytes]], peer_cert_der: bytes | None
    ) -> UserInfo:
        """The caller, or ``AuthError(401)``."""
        if peer_cert_der:
            ok, why = self._front_proxy_ok(peer_cert_der)
            if not ok:
                raise AuthError(401, why)
            user = b""
            groups: list[str] = []
            extra: dict[str, list[str]] = {}
            for name, value in headers:
                if name == self._user_header and not user:
                    user = value
                elif name == self._group_header:
                    # One group per header line, as kube-apiserver's requestheader
                    # authenticator reads them (no comma splitting).
                    groups.append(value.decode("latin-1"))
                elif name.startswith(self._extra_prefix):
                    # kube-apiserver percent-encodes the key; one header per value.
                    key = unquote(name[len(self._extra_prefix) :].decode("latin-1")).lower()
                    extra.setdefault(key, []).append(value.decode("latin-1"))
            if not user:
                header = self._settings.requestheader_username_header
                raise AuthError(401, f"front-proxy request without a {header} header")
            return UserInfo(
                user.decode("latin-1"),
                tuple(groups),
                "front-proxy",
                tuple(sorted((k, tuple(v)) for k, v in extra.items())),
            )
        token = _bearer(headers)
        if token is None:
            raise AuthError(401, "no front-proxy client certificate and no bearer token")
        if self._reviewer is None:
            raise AuthError(401, "bearer tokens are not accepted: no TokenReview configured")
        hit, cached = self._tokens.get(token)
        if not hit:
            ok, cached = await self._pool.call(self._reviewer.review_token, token)
            if ok:  # a failed review is not cached: the next request asks again
                self._tokens.put(token, cached)
        if cached is None:
            raise AuthError(401, "invalid bearer token")
        assert isinstance(cached, UserInfo)
        return cached

    async def authorise(self, user: UserInfo, attrs: Attributes) -> None:
        """Return if allowed, else ``AuthError(403)``."""
        if "system:masters" in user.groups:
            return
        if self._settings.auth_mode == "front-proxy-only" and user.via == "front-proxy":
            return  # kube-apiserver authorised the caller before proxying
        if self._reviewer is None:
            raise AuthError(
                403, f'user "{user.name}" {attrs.describe()}: no SubjectAccessReview configured'
            )
        key = (user.name, user.groups, user.extra, attrs)
        hit, allowed = self._access.get(key)
        if not hit:
            ok, allowed = await self._pool.call(self._reviewer.review_access, user, attrs)
            if ok:
                self._access.put(key, allowed)
        if not allowed:
            raise AuthError(403, f'user "{user.name}" {attrs.describe()}')

    async def check(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[bytes, bytes]],
        peer_cert_der: bytes | None,
    ) -> UserInfo | None:
        """Authenticate and authorise one request; None for public paths."""
        if path in PUBLIC_PATHS:
            return None
        user = await self.authenticate(headers, peer_cert_der)
        await self.authorise(user, attributes_for(method, path))
        return user


def _bearer(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None
