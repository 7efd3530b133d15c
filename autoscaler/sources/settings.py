"""Typed settings of the Prometheus metric source, and duration parsing.

Why a model: the controller (``autoscaler run``, from the environment or a file) and
the ``autoscaler forecast`` command build the same source, so its knobs live in one
place, each with its unit and the reason for its default. Built once in an entry point
and passed in; nothing here is global. ``load_prometheus_settings`` turns pydantic's
validation errors into ``InputError`` naming the field and the fix.

Works for any server with the plain PromQL HTTP API: Prometheus, Thanos Query, Grafana
Mimir (``url`` ends in ``/prometheus``, tenant in ``headers``) and VictoriaMetrics
(single node: the root URL; cluster: ``/select/<tenant>/prometheus``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from models.errors import InputError, validation_input_error
from models.units import parse_duration as parse_duration  # re-exported

#: Prometheus rejects a range query with more points than this per series
#: ("exceeded maximum resolution of 11,000 points per timeseries"); Thanos and Mimir
#: share the limit. VictoriaMetrics allows 30,000; staying at 11,000 is safe everywhere.
PROMETHEUS_MAX_POINTS = 11_000

MultipleSeriesPolicy = Literal["error", "sum", "max"]
CounterCheck = Literal["error", "warn", "off"]


class BasicAuth(BaseModel):
    """HTTP basic auth. Prefer ``password_file`` (a mounted Secret) to an inline value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str
    password: SecretStr | None = None
    password_file: Path | None = None

    def resolve_password(self) -> str:
        if self.password_file is not None:
            return _read_secret(self.password_file, "prometheus.basic_auth.password_file")
        if self.password is not None:
            return self.password.get_secret_value()
        raise InputError(
            "prometheus.basic_auth",
            "basic auth has a username but no password",
            "set password or password_file",
        )


class TLSSettings(BaseModel):
    """TLS towards the server: a private CA, a client certificate, or no verification."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: PEM bundle of the CA(s) that signed the server's certificate; None = system CAs.
    ca_file: Path | None = None
    #: client certificate and key (PEM) for mutual TLS; both or neither.
    cert_file: Path | None = None
    key_file: Path | None = None
    #: skip certificate verification. Off by default: only for a local test server.
    insecure_skip_verify: bool = False


class PrometheusSettings(BaseModel):
    """How to reach the PromQL API and which data-edge policies to apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: base URL of the PromQL HTTP API, without ``/api/v1`` (e.g.
    #: ``http://prometheus.monitoring:9090``, ``https://mimir/prometheus``).
    url: str = "http://127.0.0.1:9090"
    #: bearer token (sent as ``Authorization: Bearer ...``); prefer ``bearer_token_file``.
    bearer_token: SecretStr | None = None
    #: file holding the bearer token (e.g. a projected service-account token); it is
    #: read again for every client, so a rotated token is picked up.
    bearer_token_file: Path | None = None
    basic_auth: BasicAuth | None = None
    tls: TLSSettings = Field(default_factory=TLSSettings)
    #: extra HTTP headers, e.g. ``{"X-Scope-OrgID": "team-a"}`` for Mimir/Cortex tenants.
    headers: dict[str, str] = Field(default_factory=dict)
    #: extra query-string parameters for the backend, e.g. Thanos
    #: ``{"partial_response": "false"}`` (refuse partial data when a store is down) or
    #: ``{"dedup": "true"}``; VictoriaMetrics ``{"nocache": "1"}``.
    query_params: dict[str, str] = Field(default_factory=dict)
    #: seconds one HTTP request may take from connecting to its last byte (a
    #: deadline, not a per-read timeout; also sent as the server-side query
    #: ``timeout``). 10 s leaves room in a 15-s HPA sync for forecasting and publishing.
    timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    #: resolution of the history, in seconds; 60 s matches a 1-minute rate() window and
    #: keeps 14 days at 20,160 points per workload.
    step_seconds: int = Field(default=60, ge=1, le=86_400)
    #: phase of the step grid, in seconds past a multiple of ``step_seconds`` from the
    #: epoch. 0 (the default) suits a live cluster; the simulator sets it so that the
    #: grid falls on a trace's own rows (a 5-minute trace starting at 21:42).
    step_offset_seconds: float = Field(default=0.0, ge=0, le=86_400)
    #: most points per series in one request; longer ranges are paged.
    max_points: int = Field(default=PROMETHEUS_MAX_POINTS, ge=2, le=1_000_000)
    #: ask for gzip-compressed answers. Off: on a cluster network compression costs
    #: more CPU than it saves (benchmarks/prometheus_source.py: a 12.9 MB answer took
    #: 1.2-1.5 s plain vs 2.2-4.2 s gzipped on loopback); turn it on over a WAN.
    gzip: bool = False
    #: most samples (series x steps) in one request: bounds the client's memory, since
    #: decoding the JSON answer takes ~230 bytes per sample at peak (measured with
    #: tracemalloc), so 1,000,000 samples ~ 300 MB with the body. Pages shrink to fit.
    max_samples_per_request: int = Field(default=1_000_000, ge=1_000)
    #: most bytes of one answer (after gzip decoding): a bigger one is refused
    #: (``RetryableError``) while it is read, instead of filling the memory. A full
    #: page of the default 1,000,000 samples is ~30-40 MB of JSON (~25-30 bytes per
    #: sample, plus labels), so 64 MiB leaves room; raise it with
    #: ``max_samples_per_request``.
    max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=65_536)
    #: retries inside one call for connection errors only (not for HTTP statuses): 0,
    #: because the controller's next tick is the retry and must not be delayed.
    retries: int = Field(default=0, ge=0, le=5)
    #: a series whose newest sample is older than this (seconds before ``end``) is
    #: stale. 300 s is Prometheus's own lookback delta.
    stale_after_seconds: float = Field(default=300.0, gt=0)
    #: several series where one was expected (``history``): refuse (``error``, the
    #: default: the query is ambiguous), or combine them with ``sum`` or ``max``.
    multiple_series: MultipleSeriesPolicy = "error"
    #: an answer with ``warnings`` (e.g. Thanos partial response while a store is
    #: down) may be missing series: ``refuse`` it (a retryable error, the default: a
    #: partial sum looks like a drop in load) or ``accept`` it and log the warnings.
    partial_answers: Literal["refuse", "accept"] = "refuse"
    #: a bare counter (``*_total`` etc. outside ``rate()``/``increase()``) as load is
    #: always wrong (it only grows and drops to 0 at restarts): refuse it by default.
    counter_check: CounterCheck = "error"
    #: history loaded at start-up so the controller does not start cold, in seconds
    #: (14 days covers two weekly cycles for the seasonal models).
    backfill_seconds: float = Field(default=14 * 86_400.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must start with http:// or https:// and name a host")
        return v.rstrip("/")

    def auth_headers(self) -> dict[str, str]:
        """``headers``, ``Authorization: Bearer`` for a token, no gzip unless asked."""
        out = {} if self.gzip else {"Accept-Encoding": "identity"}
        out.update(self.headers)
        token: str | None = None
        if self.bearer_token_file is not None:
            token = _read_secret(self.bearer_token_file, "prometheus.bearer_token_file")
        elif self.bearer_token is not None:
            token = self.bearer_token.get_secret_value()
        if token:
            out["Authorization"] = f"Bearer {token}"
        return out


def _read_secret(path: Path, where: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise InputError(where, f"cannot read {path}: {err.strerror}", "check the path") from err


def load_prometheus_settings(
    data: Mapping[str, Any], where: str = "prometheus"
) -> PrometheusSettings:
    """Validate a mapping (from YAML, env or flags); ``InputError`` names the bad field."""
    try:
        return PrometheusSettings.model_validate(dict(data))
    except ValidationError as err:
        raise validation_input_error(
            err, where, "see docs/prometheus.md for the settings", dotted=True
        ) from err
