"""``ApiSettings`` validation: --insecure is loopback only; TLS needs both files."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.api.settings import ApiSettings, split_bind
from models.errors import InputError


@pytest.mark.parametrize(
    "bind", ["127.0.0.1:8080", "127.9.9.9:1", "[::1]:8080", "localhost:8080"], ids=str
)
def test_insecure_loopback_accepted(bind: str) -> None:
    assert ApiSettings(bind=bind, insecure=True).insecure


@pytest.mark.parametrize(
    "bind", ["0.0.0.0:8080", "[::]:8080", "10.0.0.5:8080", "example.com:80"], ids=str
)
def test_insecure_elsewhere_refused(bind: str) -> None:
    with pytest.raises(InputError, match="refusing to bind"):
        ApiSettings(bind=bind, insecure=True)


@pytest.mark.parametrize("bind", ["8080", "127.0.0.1", "127.0.0.1:x", ":80", "h:99999"], ids=str)
def test_malformed_bind(bind: str) -> None:
    with pytest.raises(InputError, match="HOST:PORT"):
        split_bind(bind)


def test_tls_files_required_and_checked(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="both a certificate and a key"):
        ApiSettings(bind="0.0.0.0:6443", tls_cert=tmp_path / "c.pem")
    with pytest.raises(InputError, match="does not exist"):
        ApiSettings(bind="0.0.0.0:6443", tls_cert=tmp_path / "c.pem", tls_key=tmp_path / "k.pem")
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    ok = ApiSettings(bind="0.0.0.0:6443", tls_cert=tmp_path / "c.pem", tls_key=tmp_path / "k.pem")
    assert ok.port == 6443 and ok.host == "0.0.0.0"
