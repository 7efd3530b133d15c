"""The paths the manifests probe on the HTTPS port answer without credentials.

The Deployment's startup, liveness and readiness probes call ``/livez`` and ``/readyz``
on the API port (6443) over HTTPS, without client certificates or tokens (the kubelet
does not verify the serving certificate). ``/metrics`` there needs credentials (nothing
scrapes it: the API's metrics are relayed to the controller's metrics port). This starts
the real API server (``autoscaler serve``) with TLS from
``autoscaler certs`` and front-proxy authentication on, and calls exactly the paths the
built Deployment names, the way the kubelet does; an API path must still demand
credentials (401), so the probes are not passing because auth is off.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.conftest import kustomize_build, one

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli() -> str:
    return str(Path(sys.executable).parent / "autoscaler")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    done = subprocess.run(
        [cli(), "certs", "--out-dir", str(tmp_path), "--service", "predictive-autoscaler"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"metrics": []}), encoding="utf-8")
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [cli(), "serve", "--values", str(values), "--bind", f"127.0.0.1:{port}"]
        + ["--tls-cert", str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key")]
        + ["--requestheader-client-ca", str(tmp_path / "tls.crt")]
        + ["--auth-mode", "front-proxy-only"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def get(url: str) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # what the kubelet does for HTTPS probes
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as r:
            return int(r.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_probe_paths_are_public_on_the_https_port(server: str) -> None:
    dep = one(kustomize_build("overlays/prod"), "Deployment", "predictive-autoscaler")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    paths = []
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        http = container[probe]["httpGet"]
        assert http["scheme"] == "HTTPS" and ports[http["port"]] == 6443
        paths.append(http["path"])
    deadline = time.monotonic() + 30
    while True:
        try:
            status = get(server + "/livez")
            break
        except OSError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
    assert status == 200
    for path in paths:
        assert get(server + path) == 200, path
    # and the API itself, and its /metrics, are not open to anonymous callers
    assert get(server + "/apis/external.metrics.k8s.io/v1beta1") == 401
    assert get(server + "/metrics") == 401
