"""A renewed serving certificate is picked up without a restart (cert-manager renewals)."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509

from autoscaler.api.server import ServerThread, create_app
from autoscaler.api.settings import ApiSettings
from autoscaler.certs import issue, make_ca
from autoscaler.store import DecisionStore

pytestmark = pytest.mark.integration


def served_serial(port: int, ca: Path) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=5)
    # The default context also verifies the chain, so a broken reload would fail here.
    with context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=5),
        server_hostname="127.0.0.1",
    ):
        pass
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def test_renewed_certificate_is_served(tmp_path: Path) -> None:
    ca = make_ca("reload CA")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem())
    first = issue(ca, "api", sans=["127.0.0.1"])
    first.write(tmp_path / "tls.crt", tmp_path / "tls.key")
    settings = ApiSettings(
        bind="127.0.0.1:0",
        tls_cert=tmp_path / "tls.crt",
        tls_key=tmp_path / "tls.key",
        tls_reload_seconds=0.1,
        auth_mode="front-proxy-only",
    )
    with ServerThread(create_app(DecisionStore(), settings), settings) as server:
        assert served_serial(server.port, tmp_path / "ca.crt") == first.cert.serial_number
        second = issue(ca, "api", sans=["127.0.0.1"])
        second.write(tmp_path / "tls.crt", tmp_path / "tls.key")
        deadline = time.monotonic() + 10
        while served_serial(server.port, tmp_path / "ca.crt") != second.cert.serial_number:
            assert time.monotonic() < deadline, "renewed certificate never served"
            time.sleep(0.1)
        assert server.cert_reloader is not None and server.cert_reloader.reloads >= 1


def test_mismatched_pair_keeps_the_old_certificate(tmp_path: Path) -> None:
    ca = make_ca("reload CA")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem())
    first = issue(ca, "api", sans=["127.0.0.1"])
    first.write(tmp_path / "tls.crt", tmp_path / "tls.key")
    settings = ApiSettings(
        bind="127.0.0.1:0",
        tls_cert=tmp_path / "tls.crt",
        tls_key=tmp_path / "tls.key",
        tls_reload_seconds=0,  # checked by hand below
    )
    with ServerThread(create_app(DecisionStore(), settings), settings) as server:
        reloader = server.cert_reloader
        assert reloader is None  # 0 = never reload
    settings = settings.model_copy(update={"tls_reload_seconds": 3600.0})
    with ServerThread(create_app(DecisionStore(), settings), settings) as server:
        reloader = server.cert_reloader
        assert reloader is not None
        other = issue(ca, "api", sans=["127.0.0.1"])
        (tmp_path / "tls.crt").write_bytes(other.cert_pem())  # key not yet replaced
        assert reloader.check() is False
        assert served_serial(server.port, tmp_path / "ca.crt") == first.cert.serial_number
        (tmp_path / "tls.key").write_bytes(other.key_pem())
        assert reloader.check() is True
        assert served_serial(server.port, tmp_path / "ca.crt") == other.cert.serial_number
