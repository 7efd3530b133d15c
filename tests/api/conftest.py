"""Fixtures for the API tests: a store with the spec's section-4 data, servers on loopback.

Servers run in-process (uvicorn in a thread, ``ServerThread``) on a free loopback port
and are stopped after the module. Clients are real: kubectl and the kubernetes client.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client

from autoscaler.api.server import ServerThread, create_app
from autoscaler.api.settings import ApiSettings
from autoscaler.store import DecisionStore, MetricValue
from tests.required import require_tool

BASE = "/apis/external.metrics.k8s.io/v1beta1"


@dataclass
class ManualClock:
    """A clock the test moves by hand (time is injected, STYLE rule 9)."""

    t: float

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def section4_store(now: float) -> DecisionStore:
    """The spec's section-4 data: queue_depth{queue=orders}=1.5 and {queue=billing}=2000."""
    store = DecisionStore()
    store.publish(
        [
            MetricValue("default", "queue_depth", {"queue": "orders"}, 1.5, now),
            MetricValue("default", "queue_depth", {"queue": "billing"}, 2000.0, now),
            MetricValue("default", "a|b", {"x": "1"}, 3.0, now),
        ]
    )
    return store


@dataclass
class Kubectl:
    server: str
    extra: tuple[str, ...] = ()

    def raw(self, path: str) -> subprocess.CompletedProcess[str]:
        kubectl = require_tool("kubectl", "the kubectl package, as on the CI machine")
        return subprocess.run(
            [kubectl, "--server", self.server, *self.extra, "get", "--raw", path],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
            env={"KUBECONFIG": "/dev/null", "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        )


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock(time.time())


@pytest.fixture(scope="module")
def insecure_server(clock: ManualClock) -> Iterator[ServerThread]:
    settings = ApiSettings(bind="127.0.0.1:0", insecure=True, max_age_seconds=120)
    app = create_app(section4_store(clock.now()), settings, clock=clock)
    with ServerThread(app, settings) as server:
        yield server


@pytest.fixture(scope="module")
def base_url(insecure_server: ServerThread) -> str:
    return f"http://127.0.0.1:{insecure_server.port}"


@pytest.fixture(scope="module")
def kubectl(base_url: str) -> Kubectl:
    return Kubectl(base_url)


def raw_call(
    api: client.ApiClient,
    path: str,
    accept: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, str, bytes]:
    """GET through the kubernetes client with chosen headers: (status, content type, body).

    Uses the client's own request building and transport (``param_serialize`` +
    ``call_api``), only skipping its model decoding so that errors can be inspected.
    """
    method, url, hdrs, body, post = api.param_serialize(
        "GET",
        path,
        header_params={"Accept": accept, **(headers or {})},
        auth_settings=["BearerToken"],
    )
    resp = api.call_api(method, url, header_params=hdrs, body=body, post_params=post)
    data = resp.read()
    return resp.status, resp.getheader("Content-Type", ""), data
