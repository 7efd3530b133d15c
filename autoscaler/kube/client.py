"""A thin wrapper around the ``kubernetes`` client: JSON in, JSON out, our errors.

Why thin: the controller needs a dozen calls (get/list/create/merge-patch on a few
resources), and the generated typed client would spread ``kubernetes.client`` models
through the code. Here the official package does what it is good at (loading a
kubeconfig or in-cluster credentials, TLS, the connection pool) and everything else
is plain dicts. Errors are ours: 404 -> ``NotFound``, 409 -> ``Conflict``, 429/5xx,
timeouts and refused connections -> ``RetryableError``, other 4xx -> ``PermanentError``.
``retry`` re-runs a callable on retryable errors with a bounded, jittered backoff.

Callers: ``autoscaler.kube.cluster``, ``autoscaler.kube.leader``, ``autoscaler.kube.hpa``.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
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


class KubeError(RetryableError):
    """Base for API answers we act on specifically."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"kubernetes API {status}: {message}")


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
    ) -> dict[str, Any]:
        """One request; returns the decoded JSON answer or raises one of our errors."""
        url = self._cfg.host.rstrip("/") + path
        if params:
            url += "?" + urlencode(params)
        data = json.dumps(body) if body is not None else None
        try:
            response = self._api.rest_client.pool_manager.request(
                method,
                url,
                body=data,
                headers=self._headers(content_type),
                timeout=urllib3.Timeout(total=self.settings.request_timeout_seconds),
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
            raise KubeError(status, f"{method} {path}: {message}")
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
        """Run ``call``; on ``KubeError`` other than 409 retry with backoff, bounded."""
        delay = self.settings.backoff_seconds
        for attempt in range(1, self.settings.retries + 1):
            try:
                return call()
            except Conflict:
                raise  # the caller re-reads: retrying the same write cannot help
            except KubeError as err:
                if attempt == self.settings.retries:
                    raise
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
