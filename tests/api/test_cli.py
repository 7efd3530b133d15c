"""``autoscaler serve`` and ``autoscaler certs`` as a user runs them (subprocesses).

Bad input must end in one ``error:`` line and exit status 2, never a traceback; the
static mode must serve the file's values to kubectl; ``--insecure`` must refuse a
non-loopback bind.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from tests.api.conftest import BASE, Kubectl
from tests.required import require_tool

pytestmark = pytest.mark.integration

# The real ``autoscaler.cli.main`` (its InputError -> exit 2 handling included), with only
# this command module loaded, so that a sibling command under construction elsewhere in
# the tree cannot break these tests.
AUTOSCALER = [
    sys.executable,
    "-c",
    "import autoscaler.cli as c; c.COMMAND_MODULES = ('autoscaler.cli.serve',); c.main()",
]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUTOSCALER, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    for word in words:
        assert word in lines[0], lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def values_file(tmp_path: Path) -> Path:
    path = tmp_path / "values.json"
    path.write_text(
        json.dumps(
            {
                "metrics": [
                    {
                        "namespace": "prod",
                        "name": "autoscaler_desired_replicas",
                        "labels": {"workload": "refinory-ai"},
                        "value": 12.5,
                    }
                ]
            }
        )
    )
    return path


def test_insecure_refuses_non_loopback(values_file: Path) -> None:
    out = run("serve", "--values", str(values_file), "--bind", "0.0.0.0:18080", "--insecure")
    assert_one_line_error(out, "refusing", "0.0.0.0")


def test_tls_needs_cert_and_key(values_file: Path) -> None:
    out = run("serve", "--values", str(values_file), "--bind", "127.0.0.1:18080")
    assert_one_line_error(out, "--tls-cert")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", ["not valid JSON"]),
        ('{"metrics": [{"namespace": "prod", "name": "m", "value": -1}]}', ["metrics.0.value"]),
        ('{"metrics": [{"namespace": "prod", "name": "m", "value": NaN}]}', ["metrics.0.value"]),
        ('{"metrics": [{"namespace": "prod", "value": 1}]}', ["metrics.0.name"]),
        ('{"metrics": [{"namespace": "prod", "name": "a/b", "value": 1}]}', ["metrics.0.name"]),
        ('{"metric": []}', ["metric"]),
    ],
    ids=["json", "negative", "nan", "missing-name", "slash", "typo"],
)
def test_bad_values_file(tmp_path: Path, content: str, words: list[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    out = run("serve", "--values", str(path), "--bind", "127.0.0.1:18080", "--insecure")
    assert_one_line_error(out, str(path), *words)


def test_static_mode_serves_file_to_kubectl(values_file: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            *AUTOSCALER,
            "serve",
            "--values",
            str(values_file),
            "--bind",
            f"127.0.0.1:{port}",
            "--insecure",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        kubectl = Kubectl(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while kubectl.raw("/healthz").returncode != 0:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        out = kubectl.raw(
            f"{BASE}/namespaces/prod/autoscaler_desired_replicas?labelSelector=workload%3Drefinory-ai"
        )
        assert out.returncode == 0, out.stderr
        items = json.loads(out.stdout)["items"]
        assert [(i["metricLabels"], i["value"]) for i in items] == [
            ({"workload": "refinory-ai"}, "12500m")
        ]
    finally:
        proc.terminate()
        proc.wait(10)


def test_certs_writes_a_usable_pair(tmp_path: Path) -> None:
    out = run("certs", "--out-dir", str(tmp_path), "--service", "api", "--namespace", "ns")
    assert out.returncode == 0, out.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "api.ns.svc" in sans.get_values_for_type(x509.DNSName)
    assert (tmp_path / "tls.key").stat().st_mode & 0o077 == 0  # key not group/world readable


def test_certs_key_matches_cert(tmp_path: Path) -> None:
    openssl = require_tool("openssl", "apt-get install openssl")
    assert run("certs", "--out-dir", str(tmp_path)).returncode == 0
    pub_cert = subprocess.run(
        [openssl, "x509", "-pubkey", "-noout", "-in", str(tmp_path / "tls.crt")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pub_key = subprocess.run(
        [openssl, "pkey", "-pubout", "-in", str(tmp_path / "tls.key")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert pub_cert == pub_key
