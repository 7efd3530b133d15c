"""``ServerProcess``: the API server in a child process mirrors the parent's store.

Checks that what the controller publishes in the parent is served by the child (through
kubectl), that removals and replacements propagate, and that stop() ends the child.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from kubernetes import client

from autoscaler.api.process import ServerProcess
from autoscaler.api.settings import ApiSettings
from autoscaler.certs import issue, make_ca
from autoscaler.store import DecisionStore, MetricValue
from tests.api.conftest import BASE, Kubectl, raw_call

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "autoscaler_desired_replicas"
PATH = f"{BASE}/namespaces/prod/{NAME}"


def wait_for(kubectl: Kubectl, expected: dict[str, str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    seen: object = None
    while time.monotonic() < deadline:
        out = kubectl.raw(PATH)
        if out.returncode == 0:
            seen = {
                i["metricLabels"]["workload"]: i["value"] for i in json.loads(out.stdout)["items"]
            }
            if seen == expected:
                return
        elif expected == {} and "NotFound" in out.stderr:
            return
        time.sleep(0.1)
    raise AssertionError(f"child never served {expected}; last seen {seen}")


def test_child_mirrors_parent_store() -> None:
    store = DecisionStore()
    store.publish([MetricValue("prod", NAME, {"workload": "a"}, 2.0, time.time())])
    settings = ApiSettings(bind="127.0.0.1:0", insecure=True)
    server = ServerProcess(store, settings).start()
    try:
        kubectl = Kubectl(f"http://127.0.0.1:{server.port}")
        wait_for(kubectl, {"a": "2"})
        store.publish([MetricValue("prod", NAME, {"workload": "b"}, 7.5, time.time())])
        wait_for(kubectl, {"a": "2", "b": "7500m"})
        store.remove("prod", NAME, {"workload": "a"})
        wait_for(kubectl, {"b": "7500m"})
        assert server.alive
    finally:
        server.stop()
    assert not server.alive


def test_child_with_tls_and_front_proxy_auth(tmp_path: Path) -> None:
    """The child builds its own Authenticator from the settings (front-proxy-only mode)."""
    serving_ca, proxy_ca = make_ca("serving"), make_ca("front-proxy-ca")
    issue(serving_ca, "api", sans=["127.0.0.1"]).write(tmp_path / "tls.crt", tmp_path / "tls.key")
    issue(proxy_ca, "front-proxy-client", client=True).write(tmp_path / "p.crt", tmp_path / "p.key")
    issue(proxy_ca, "someone-else", client=True).write(tmp_path / "x.crt", tmp_path / "x.key")
    (tmp_path / "ca.crt").write_bytes(serving_ca.cert_pem())
    (tmp_path / "proxy-ca.crt").write_bytes(proxy_ca.cert_pem())
    store = DecisionStore()
    store.publish([MetricValue("prod", NAME, {"workload": "a"}, 2.0, time.time())])
    settings = ApiSettings(
        bind="127.0.0.1:0",
        tls_cert=tmp_path / "tls.crt",
        tls_key=tmp_path / "tls.key",
        requestheader_client_ca=tmp_path / "proxy-ca.crt",
        requestheader_allowed_names=["front-proxy-client"],
        auth_mode="front-proxy-only",
    )
    with ServerProcess(store, settings) as server:

        def get(cert: str) -> int:
            cfg = client.Configuration()
            cfg.host = f"https://127.0.0.1:{server.port}"
            cfg.ssl_ca_cert = str(tmp_path / "ca.crt")
            cfg.cert_file, cfg.key_file = (
                str(tmp_path / f"{cert}.crt"),
                str(tmp_path / f"{cert}.key"),
            )
            return raw_call(client.ApiClient(cfg), PATH, headers={"X-Remote-User": "hpa"})[0]

        deadline = time.monotonic() + 10
        while get("p") != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert get("x") == 401


def test_child_request_metrics_are_served_from_the_parent_registry() -> None:
    """The API child's latency histogram appears in the registry the controller serves on
    its metrics port (the one Prometheus scrapes): AutoscalerApiLatencyHigh has data."""
    from prometheus_client import CollectorRegistry, generate_latest

    store = DecisionStore()
    store.publish([MetricValue("prod", NAME, {"workload": "a"}, 2.0, time.time())])
    registry = CollectorRegistry()
    settings = ApiSettings(bind="127.0.0.1:0", insecure=True)
    with ServerProcess(store, settings, registry=registry) as server:
        kubectl = Kubectl(f"http://127.0.0.1:{server.port}")
        wait_for(kubectl, {"a": "2"})
        assert kubectl.raw(BASE).returncode == 0
        text = generate_latest(registry).decode()
    assert 'autoscaler_api_request_duration_seconds_count{code="200",endpoint="list"}' in text
    assert 'autoscaler_api_request_duration_seconds_bucket{code="200",endpoint="discovery"' in text
    # After the child is gone a scrape still answers (without the child's series).
    assert "autoscaler_api_request_duration_seconds" not in generate_latest(registry).decode()
