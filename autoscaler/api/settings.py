"""``ApiSettings``: how the External Metrics API server listens, authenticates and ages values.

Built once by the entry point (``autoscaler serve`` / ``autoscaler run``) and passed to
``create_app`` and ``run_server``; nothing reads settings from globals. Defaults are the
safe production choices (TLS on, delegated auth on); ``--insecure`` is a loopback-only
development switch.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from models.errors import InputError


def split_bind(bind: str) -> tuple[str, int]:
    """``"127.0.0.1:8443"`` / ``"[::1]:8443"`` -> (host, port); ``InputError`` if malformed."""
    host, sep, port_text = bind.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InputError(
            "--bind", f"{bind!r} is not HOST:PORT", "e.g. 127.0.0.1:8443 or [::1]:8443"
        )
    return host.strip("[]"), int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiSettings(BaseModel):
    """Settings of the External Metrics API server (and the KEDA gRPC scaler)."""

    #: HOST:PORT to listen on. 6443 is what custom-metrics-apiserver deployments use.
    bind: str = "0.0.0.0:6443"
    #: Plain HTTP without authentication, for local development and tests. Only a
    #: loopback ``bind`` is accepted, so it can never be exposed by accident.
    insecure: bool = False
    #: PEM serving certificate and key (``autoscaler certs`` writes a self-signed pair).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: PEM CA bundle that signs kube-apiserver's front-proxy client certificate
    #: (``requestheader-client-ca-file`` in ConfigMap
    #: kube-system/extension-apiserver-authentication).
    requestheader_client_ca: Path | None = None
    #: Common names allowed for the front-proxy certificate; empty = any CN from that CA
    #: (kube-apiserver's own semantics). kubeadm uses ``front-proxy-client``.
    requestheader_allowed_names: list[str] = Field(default_factory=list)
    #: Header names kube-apiserver uses for the forwarded identity (its defaults).
    requestheader_username_header: str = "X-Remote-User"
    requestheader_group_header: str = "X-Remote-Group"
    requestheader_extra_headers_prefix: str = "X-Remote-Extra-"
    #: ``delegated``: TokenReview for bearer tokens and SubjectAccessReview for every
    #: request (what a generic apiserver does). ``front-proxy-only``: trust
    #: kube-apiserver's own authorisation and only verify the front-proxy certificate.
    auth_mode: Literal["delegated", "front-proxy-only"] = "delegated"
    #: Seconds a TokenReview / SubjectAccessReview answer is cached. 10 s is the generic
    #: apiserver's default for both allowed and denied answers: short enough that a revoked
    #: RoleBinding takes effect quickly, long enough that 5 HPA workers cost ~no reviews.
    auth_cache_seconds: float = Field(default=10.0, ge=0.0, le=300.0)
    #: Seconds after which a decision is stale and no longer served (see docs/api.md,
    #: "Staleness"). 120 s = 8 HPA syncs, or 4 reconcile periods of 30 s: a controller that
    #: stopped publishing is noticed within two minutes.
    max_age_seconds: float = Field(default=120.0, gt=0.0)
    #: Seconds for uvicorn's graceful shutdown before open connections are dropped.
    shutdown_timeout_seconds: float = Field(default=5.0, ge=0.0)
    #: Seconds between checks of --tls-cert/--tls-key for a renewed certificate, which is
    #: then loaded without a restart; 0 = never. 60 s: cert-manager renews weeks ahead.
    tls_reload_seconds: float = Field(default=60.0, ge=0.0)
    #: Longest request target (path and query) accepted, in bytes; longer ones get a 414
    #: Status. Real HPA selectors are a few hundred bytes; 16 KiB leaves ample room.
    max_url_bytes: int = Field(default=16384, ge=1024, le=1_048_576)
    #: Most bytes of one request head (request line and headers) accepted; more gets a 431
    #: Status and the connection is closed. 64 KiB: kube-apiserver's proxied identity
    #: headers are a few KiB.
    max_header_bytes: int = Field(default=65536, ge=4096, le=1_048_576)
    #: Seconds a client has to send a complete request head (from connecting, or from the
    #: first byte of the next request); then it gets a 408 Status and is closed.
    header_timeout_seconds: float = Field(default=10.0, gt=0.0, le=300.0)
    #: Open connections served at once; a request on a connection beyond it gets a 503
    #: Status. The aggregator and the HPA keep a handful of connections.
    max_connections: int = Field(default=512, ge=1, le=100_000)
    #: Deadline of one TokenReview / SubjectAccessReview call to kube-apiserver. A call
    #: that has not answered by then gets the request a 503 Status (never a hang).
    review_timeout_seconds: float = Field(default=5.0, gt=0.0, le=60.0)
    #: Threads for TokenReview / SubjectAccessReview calls (their own pool). When all of
    #: them and as many queued calls are waiting, further uncached requests get an
    #: immediate 503 Status instead of queueing behind a hung kube-apiserver.
    review_workers: int = Field(default=4, ge=1, le=64)
    #: HOST:PORT for the KEDA external-scaler gRPC service; None = not served.
    keda_bind: str | None = None
    #: PEM CA for mutual TLS on the KEDA port: only clients with a certificate from it
    #: (KEDA's ``tlsClientCert``) may call. None = any client that reaches the port
    #: (then restrict it with a NetworkPolicy).
    keda_client_ca: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> ApiSettings:
        host, _ = split_bind(self.bind)
        if self.insecure:
            if not is_loopback(host):
                raise InputError(
                    "--bind",
                    f"--insecure serves plain HTTP without authentication; refusing to bind {host}",
                    "bind 127.0.0.1 or ::1, or drop --insecure and give --tls-cert/--tls-key",
                )
        else:
            if self.tls_cert is None or self.tls_key is None:
                raise InputError(
                    "--tls-cert/--tls-key",
                    "TLS needs both a certificate and a key",
                    "run `autoscaler certs` for a development pair, or use --insecure on loopback",
                )
            for flag, path in (("--tls-cert", self.tls_cert), ("--tls-key", self.tls_key)):
                if not path.is_file():
                    raise InputError(flag, f"{path} does not exist")
            if (
                self.requestheader_client_ca is not None
                and not self.requestheader_client_ca.is_file()
            ):
                raise InputError(
                    "--requestheader-client-ca", f"{self.requestheader_client_ca} does not exist"
                )
        if self.keda_bind is not None:
            split_bind(self.keda_bind)
        if self.keda_client_ca is not None:
            if self.insecure:
                raise InputError("--keda-client-ca", "needs TLS", "drop --insecure")
            if not self.keda_client_ca.is_file():
                raise InputError("--keda-client-ca", f"{self.keda_client_ca} does not exist")
        return self

    @property
    def host(self) -> str:
        return split_bind(self.bind)[0]

    @property
    def port(self) -> int:
        return split_bind(self.bind)[1]
