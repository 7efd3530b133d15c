"""A thin wrapper around the ``kubernetes`` client: JSON in, JSON out, our errors.

Why thin: the controller needs a dozen calls (get/list/create/merge-patch on a few
resources), and the generated typed client would spread ``kubernetes.client`` models
through the code. Here the official package does what it is good at (loading a
kubeconfig or in-cluster credentials, TLS, the connection pool) and everything else
is plain dicts. Errors are ours: 404 -> ``NotFound``, 409 -> ``Conflict``, 429/5xx,
timeouts and refused connections -> ``RetryableError``, other 4xx -> ``PermanentError``.
``retry`` re-runs a callable on retryable errors with a bounded, jittered backoff; a 429
or 5xx that carries ``Retry-After`` is retried no sooner than it says (and not at all
when it says more than ``retry_after_max_seconds``).

Writes (POST, PUT, PATCH, DELETE) go through a client-side token bucket, as client-go's
``flowcontrol.NewTokenBucketRateLimiter`` (QPS 5, burst 10 by default): one token per
attempt, a full bucket at start. Reads are not limited (a tick reads each target), and
the leader elector's Lease calls pass ``limited=False`` so that a burst of HPA writes
can never delay a renewal past the renew deadline.

Callers: ``autoscaler.kube.cluster``, ``autoscaler.kube.leader``, ``autoscaler.kube.hpa``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from pydantic import BaseModel, ConfigDict, Field

from models.errors import PermanentError, RetryableError

log = logging.getLogger(__name__)
T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"


class KubeSettings(BaseModel):
    """How to reach the Kubernetes API server."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key must fail, not vanish

    #: API server URL; empty = from in-cluster credentials or the kubeconfig. Tests set
    #: it to the kmock emulator's URL.
    host: str = ""
    #: kubeconfig file; empty = $KUBECONFIG or ~/.kube/config (ignored in-cluster).
    kubeconfig: str = ""
    #: kubeconfig context; empty = the current one.
    context: str = ""
    #: Use the pod's service account (set by the Deployment in deploy/).
    in_cluster: bool = False
    #: Seconds per request (connect + read). 10 s: the API server answers in ms;
    #: anything slower is a fault we retry rather than let stall a 15-s tick.
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Attempts for a retryable failure (5xx, 429, timeout) before giving up this tick.
    retries: int = Field(default=3, ge=1, le=10)
    #: First backoff between attempts, seconds (doubles, with jitter).
    backoff_seconds: float = Field(default=0.2, ge=0)
    #: Writes per second, sustained (client-go's default QPS 5); 0 = no limit.
    qps: float = Field(default=5.0, ge=0)
    #: Writes allowed at once above ``qps`` (client-go's default burst 10).
    burst: int = Field(default=10, ge=1)
    #: Longest a write waits for a token, seconds; past it the write fails (retryable)
    #: instead of queueing without bound behind other threads' writes.
    rate_limit_wait_seconds: float = Field(default=10.0, ge=0)
    #: Longest ``Retry-After`` (429, 5xx) honoured by waiting, seconds; a longer one
    #: fails the call at once (the next tick tries again) rather than stall the loop.
    retry_after_max_seconds: float = Field(default=10.0, ge=0)


class KubeError(RetryableError):
    """Base for API answers we act on specifically."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        self.status = status
        #: seconds the server asked us to wait (``Retry-After`` on 429/5xx), if it did.
        self.retry_after = retry_after
        super().__init__(f"kubernetes API {status}: {message}")


class NotLeader(PermanentError):
    """A write refused on our side: the leader's renew deadline has passed (the fence)."""


class RateLimited(RetryableError):
    """A write waited ``rate_limit_wait_seconds`` for the client-side rate limit in vain."""


class TokenBucket:
    """client-go's token bucket (``golang.org/x/time/rate``): ``qps`` tokens a second,
    at most ``burst`` saved, full at start. Thread-safe; ``qps <= 0`` never waits."""

    def __init__(
        self,
        qps: float,
        burst: int,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.qps = qps
        self.burst = burst
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = monotonic()
        self._lock = threading.Lock()

    def acquire(self, max_wait: float) -> bool:
        """Take one token, sleeping until it is due; False (nothing taken) if that
        would take longer than ``max_wait`` seconds."""
        if self.qps <= 0:
            return True
        with self._lock:
            now = self._monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
            self._last = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.qps
            if wait > max_wait:
                return False
            self._tokens -= 1  # reserved: later callers queue behind this one
        if wait > 0:
            self._sleep(wait)
        return True


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class NotFound(PermanentError):
    """404: the object (or resource) does not exist."""


class Conflict(KubeError):
    """409: someone else changed the object (or it already exists); re-read and retry."""


class KubeClient:
    """JSON requests against the API server with the official client's credentials."""

    def __init__(self, settings: KubeSettings) -> None:
        self.settings = settings
        cfg = k8s_client.Configuration()
        if settings.host:
            cfg.host = settings.host
        elif settings.in_cluster:
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=settings.kubeconfig or None,
                context=settings.context or None,
                client_configuration=cfg,
            )
        self._cfg = cfg
        self._api = k8s_client.ApiClient(cfg)
        self.write_limiter = TokenBucket(settings.qps, settings.burst)
        #: Seconds this replica may still write (``LeaderElector.seconds_left``); None =
        #: no leader election. Each write attempt is refused (``NotLeader``) once it is
        #: 0, and its timeout is cut to it, so no write of ours is sent after the
        #: renew deadline and none waits past it for an answer.
        self.fence: Callable[[], float] | None = None

    @property
    def api_client(self) -> k8s_client.ApiClient:
        """The official client (for typed APIs such as TokenReview in the API server)."""
        return self._api

    @property
    def host(self) -> str:
        return str(self._cfg.host)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        token = self._cfg.get_api_key_with_prefix("BearerToken") or self._cfg.api_key.get(
            "authorization"
        )
        if token:
            headers["Authorization"] = token if " " in token else f"Bearer {token}"
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        limited: bool = True,
        fenced: bool = True,
    ) -> dict[str, Any]:
        """One request; returns the decoded JSON answer or raises one of our errors.

        ``timeout`` (seconds, connect + read) overrides ``request_timeout_seconds``;
        ``limited=False`` lets a write bypass the client-side rate limit and
        ``fenced=False`` the leader fence (both for the Lease's own calls).
        """
        url = self._cfg.host.rstrip("/") + path
        if params:
            url += "?" + urlencode(params)
        data = json.dumps(body) if body is not None else None
        if limited and method in WRITES:
            if not self.write_limiter.acquire(self.settings.rate_limit_wait_seconds):
                raise RateLimited(
                    f"{method} {path}: client-side rate limit ({self.settings.qps:g} QPS,"
                    f" burst {self.settings.burst}) would delay it more than"
                    f" {self.settings.rate_limit_wait_seconds:g}s"
                )
        seconds = self.settings.request_timeout_seconds if timeout is None else timeout
        if fenced and method in WRITES and self.fence is not None:
            left = self.fence()
            if left <= 0:
                raise NotLeader(
                    f"{method} {path}: refused: not leader (the lease was not renewed"
                    " within the renew deadline)"
                )
            seconds = min(seconds, left)
        try:
            response = self._api.rest_client.pool_manager.request(
                method,
                url,
                body=data,
                headers=self._headers(content_type),
                timeout=urllib3.Timeout(total=max(0.001, seconds)),
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise KubeError(0, f"{method} {path}: {type(err).__name__}: {err}") from err
        status = response.status
        text = response.data.decode("utf-8", "replace")
        if 200 <= status < 300:
            try:
                answer = json.loads(text) if text else {}
            except ValueError as err:
                raise KubeError(status, f"{method} {path}: answer is not JSON") from err
            return answer if isinstance(answer, dict) else {"items": answer}
        message = _status_message(text)
        if status == 404:
            raise NotFound(f"{method} {path}: {message}")
        if status == 409:
            raise Conflict(status, f"{method} {path}: {message}")
        if status == 429 or status >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise KubeError(status, f"{method} {path}: {message}", retry_after=wait)
        raise PermanentError(f"kubernetes API {status}: {method} {path}: {message}")

    # Convenience verbs ---------------------------------------------------------------

    def get(self, path: str) -> dict[str, Any]:
        return self.retry(lambda: self.request("GET", path))

    def get_or_none(self, path: str) -> dict[str, Any] | None:
        try:
            return self.get(path)
        except NotFound:
            return None

    def list(self, path: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        answer = self.retry(lambda: self.request("GET", path, params=params))
        items = answer.get("items") or []
        return [i for i in items if isinstance(i, dict)]

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.retry(lambda: self.request("POST", path, body))

    def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.retry(lambda: self.request("PATCH", path, body, content_type=MERGE_PATCH))

    def retry(self, call: Callable[[], T]) -> T:
        """Run ``call``; on ``KubeError`` other than 409 retry with backoff, bounded.

        A ``Retry-After`` on the error replaces the backoff: the next attempt waits at
        least that long (plus up to 10 % jitter); one above ``retry_after_max_seconds``
        is not waited for: the error is raised at once.
        """
        delay = self.settings.backoff_seconds
        for attempt in range(1, self.settings.retries + 1):
            try:
                return call()
            except Conflict:
                raise  # the caller re-reads: retrying the same write cannot help
            except KubeError as err:
                if attempt == self.settings.retries:
                    raise
                if err.retry_after is not None:
                    if err.retry_after > self.settings.retry_after_max_seconds:
                        raise
                    log.info("server asked to retry after %.1fs: %s", err.retry_after, err)
                    time.sleep(err.retry_after * (1 + 0.1 * random.random()))
                    continue
                log.debug("retrying after %s (attempt %d)", err, attempt)
                time.sleep(
                    delay * (0.5 + random.random())
                )  # jitter: two replicas must not retry in step
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover


def _status_message(text: str) -> str:
    try:
        status = json.loads(text)
    except ValueError:
        return text[:200]
    if isinstance(status, dict):
        return str(status.get("message") or status.get("reason") or "")[:300]
    return text[:200]


def path_for(api_version: str, plural: str, namespace: str = "", name: str = "") -> str:
    """REST path of a collection or an object (``v1`` core or ``group/version``)."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{quote(namespace)}"
    base += f"/{plural}"
    if name:
        base += f"/{quote(name)}"
    return base
