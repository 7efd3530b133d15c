"""Faults between the source and a REAL Prometheus: crash, slowness, garbage, auth.

Each case ends in one of our error classes with a message that says what happened
(``RetryableError``: the controller holds its last decision and tries next tick;
``PermanentError``: retrying will not help, the message says what to fix), and the
source recovers by itself when the fault goes away. The slow and garbage servers are
real loopback HTTP servers (``LoopbackServer``) in front of, or instead of, Prometheus.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from urllib3.exceptions import InsecureRequestWarning

from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.sources.settings import PrometheusSettings
from models.errors import PermanentError, RetryableError
from tests.integration.promfixture import (
    LoopbackServer,
    PrometheusServer,
    aligned_now,
    bcrypt_hash,
    make_tls_files,
    require_prometheus,
    trace_counter,
)

pytestmark = pytest.mark.integration

RATE = "rate(http_requests_total[10m])"  # the ELB trace has 5-minute samples


@pytest.fixture(scope="module")
def end() -> int:
    return aligned_now(60) - 60


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, end: int) -> Iterator[PrometheusServer]:
    """This module's own server: the crash test kills it."""
    require_prometheus()
    backfill = [
        trace_counter(
            "nab_elb_request_count_5min",
            {"namespace": "shop", "workload": "web"},
            points=288,
            end=end,
        )
    ]
    server = PrometheusServer.start(tmp_path_factory.mktemp("prom-faults"), backfill=backfill)
    try:
        yield server
    finally:
        server.stop()


def source(url: str, **kw: object) -> PrometheusSource:
    return PrometheusSource(PrometheusSettings.model_validate({"url": url, **kw}))


def test_killed_mid_run_then_restarted(prometheus: PrometheusServer, end: int) -> None:
    src = source(prometheus.url, timeout_seconds=2)
    before = src.history_by(RATE, end - 86_400, end, 300)
    assert ("shop", "web") in before
    prometheus.kill()
    t0 = time.monotonic()
    with pytest.raises(RetryableError, match="cannot connect"):
        src.history_by(RATE, end - 86_400, end, 300)
    assert time.monotonic() - t0 < 2.0  # refused at once, no hidden retry loop
    prometheus.restart()
    after = src.history_by(RATE, end - 86_400, end, 300)  # the same client recovers
    pd.testing.assert_series_equal(after[("shop", "web")], before[("shop", "web")])


def test_slow_prometheus_times_out_then_recovers(prometheus: PrometheusServer, end: int) -> None:
    with LoopbackServer(upstream=prometheus.url, delay_s=3.0) as slow:
        src = source(slow.url, timeout_seconds=0.5)
        t0 = time.monotonic()
        with pytest.raises(RetryableError, match=r"no answer within 0.5 s"):
            src.history_by(RATE, end - 3600, end, 300)
        assert time.monotonic() - t0 < 2.5
        slow.delay_s = 0.05
        got = src.history_by(RATE, end - 3600, end, 300)
    direct = source(prometheus.url).history_by(RATE, end - 3600, end, 300)
    pd.testing.assert_series_equal(got[("shop", "web")], direct[("shop", "web")])


HTML_LOGIN = b"<!DOCTYPE html><html><head><title>Sign in - SSO</title></head><body>..."
HTML_502 = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body></html>"


@pytest.mark.parametrize(
    ("status", "ctype", "body", "error", "match"),
    [
        pytest.param(
            200, "text/html", HTML_LOGIN, PermanentError, r"HTML page.*'Sign in - SSO'", id="login"
        ),
        pytest.param(
            502, "text/html", HTML_502, RetryableError, r"502 with an HTML page.*Bad Gateway",
            id="proxy-502",
        ),
        pytest.param(
            200, "application/json", b'{"status": "succ', PermanentError, "not JSON", id="cut-json"
        ),
        pytest.param(
            200, "application/json", b'{"status": "success"}', PermanentError,
            "not the Prometheus API", id="no-data",
        ),
        pytest.param(
            200, "application/json",
            b'{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}',
            PermanentError, "expected a matrix", id="scalar",
        ),
        pytest.param(
            503, "application/json",
            json.dumps({"status": "error", "errorType": "unavailable", "error": "busy"}).encode(),
            RetryableError, "503 unavailable: busy", id="json-503",
        ),
        pytest.param(
            404, "text/plain", b"404 page not found\n", PermanentError, "PromQL API", id="404"
        ),
        pytest.param(
            422, "application/json",
            json.dumps({"status": "error", "errorType": "execution", "error": "too many"}).encode(),
            PermanentError, "422 execution: too many", id="422",
        ),
    ],
)  # fmt: skip
def test_garbage_answers_give_clear_errors(
    end: int, status: int, ctype: str, body: bytes, error: type[Exception], match: str
) -> None:
    with LoopbackServer(status=status, body=body, content_type=ctype) as garbage:
        src = source(garbage.url)
        with pytest.raises(error, match=match):
            src.history_by(RATE, end - 3600, end, 300)
        assert len(garbage.requests) == 1  # no retry storm against a broken server


def test_auth_gateway_bearer_token_and_tenant_header(
    prometheus: PrometheusServer, end: int, tmp_path: Path
) -> None:
    need = {"Authorization": "Bearer s3cret", "X-Scope-OrgID": "team-a"}
    with LoopbackServer(upstream=prometheus.url, required_headers=need) as gateway:
        with pytest.raises(PermanentError, match=r"401.*bearer token"):
            source(gateway.url).history_by(RATE, end - 3600, end, 300)
        token = tmp_path / "token"
        token.write_text("s3cret\n")
        headers = {"X-Scope-OrgID": "team-a"}
        by_file = source(gateway.url, bearer_token_file=str(token), headers=headers)
        assert ("shop", "web") in by_file.history_by(RATE, end - 3600, end, 300)
        inline = source(gateway.url, bearer_token="s3cret", headers=headers)
        assert ("shop", "web") in inline.history_by(RATE, end - 3600, end, 300)
        # No gzip unless asked (it costs more CPU than it saves on a cluster network).
        assert gateway.headers_seen[-1]["Accept-Encoding"] == "identity"
        zipped = source(gateway.url, bearer_token="s3cret", headers=headers, gzip=True)
        zipped.history_by(RATE, end - 3600, end, 300)
        assert "gzip" in gateway.headers_seen[-1]["Accept-Encoding"]


def test_backend_query_params_are_sent(prometheus: PrometheusServer, end: int) -> None:
    """E.g. Thanos ``partial_response=false``; Prometheus ignores unknown parameters."""
    with LoopbackServer(upstream=prometheus.url) as proxy:
        src = source(proxy.url, query_params={"partial_response": "false"})
        assert ("shop", "web") in src.history_by(RATE, end - 3600, end, 300)
        assert "partial_response=false" in proxy.requests[-1]
        assert "timeout=10000ms" in proxy.requests[-1]


# ------------------------------------------------------------------ TLS, basic auth, mTLS


def test_tls_with_private_ca_basic_auth_and_client_certificate(
    tmp_path: Path, end: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Prometheus itself serving HTTPS with basic auth and required client certificates."""
    tls = make_tls_files(tmp_path / "tls")
    web_config = (
        "tls_server_config:\n"
        f"  cert_file: {tls.server_cert}\n"
        f"  key_file: {tls.server_key}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {tls.ca}\n"
        "basic_auth_users:\n"
        f"  alice: '{bcrypt_hash('wonderland')}'\n"
    )
    backfill = [
        trace_counter(
            "nab_elb_request_count_5min", {"namespace": "shop", "workload": "web"},
            points=48, end=end,
        )
    ]  # fmt: skip
    password = tmp_path / "password"
    password.write_text("wonderland\n")
    with PrometheusServer.start(
        tmp_path / "prom",
        backfill=backfill,
        web_config=web_config,
        ca_file=tls.ca,
        basic_auth=("alice", "wonderland"),
        client_cert=(tls.client_cert, tls.client_key),
    ) as server:
        assert server.url.startswith("https://")
        good: dict[str, object] = {
            "basic_auth": {"username": "alice", "password_file": str(password)},
            "tls": {
                "ca_file": str(tls.ca),
                "cert_file": str(tls.client_cert),
                "key_file": str(tls.client_key),
            },
        }
        got = source(server.url, **good).history_by(RATE, end - 3600, end, 300)
        assert ("shop", "web") in got
        insecure = {**good, "tls": {**good["tls"], "ca_file": None, "insecure_skip_verify": True}}  # type: ignore[dict-item]
        with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
            # Said once, by us, at connect; not by urllib3 on every request.
            warnings.simplefilter("error", InsecureRequestWarning)
            assert ("shop", "web") in source(server.url, **insecure).history_by(
                RATE, end - 3600, end, 300
            )
        said = [r.getMessage() for r in caplog.records if "not verified" in r.getMessage()]
        assert said == [
            f"TLS certificates of {server.url} are not verified "
            "(prometheus.tls.insecure_skip_verify); set prometheus.tls.ca_file instead "
            "outside a test setup"
        ]
        no_ca = {**good, "tls": {**good["tls"], "ca_file": None}}  # type: ignore[dict-item]
        with pytest.raises(PermanentError, match="TLS failed"):
            source(server.url, **no_ca).history_by(RATE, end - 3600, end, 300)
        wrong = {**good, "basic_auth": {"username": "alice", "password": "nope"}}
        with pytest.raises(PermanentError, match=r"401.*basic auth"):
            source(server.url, **wrong).history_by(RATE, end - 3600, end, 300)
        no_client_cert = {**good, "tls": {"ca_file": str(tls.ca)}}
        with pytest.raises(PermanentError, match="TLS failed.*cert_file"):
            source(server.url, **no_client_cert).history_by(RATE, end - 3600, end, 300)


@pytest.mark.slow  # ~10 s: Prometheus's discovery throttle delays each first scrape ~5 s
def test_scrape_targets_and_scraped_data_survive_a_crash(tmp_path: Path) -> None:
    """The fixture scrapes a test exporter; after SIGKILL + restart the WAL keeps it."""
    body = b"# TYPE exporter_load gauge\nexporter_load 42\n"
    with LoopbackServer(body=body, content_type="text/plain; version=0.0.4") as exporter:
        target = exporter.url.removeprefix("http://")
        with PrometheusServer.start(
            tmp_path, scrape_targets=[target], scrape_interval_s=0.2
        ) as server:
            got = server.wait_for('exporter_load{job="test"}', timeout_s=20)
            assert got[0]["value"][1] == "42"
            # More scrapes into the WAL, and whole seconds after the first scrape: the
            # grid below is on whole seconds and must include one of them.
            time.sleep(1.5)
            now = time.time()
            src = source(server.url)
            before = src.history("max(max_over_time(exporter_load[10s]))", now - 5, now, 1)
            assert before.notna().any()
            server.kill()
            exporter.body = b"# TYPE exporter_load gauge\nexporter_load 7\n"
            server.restart()
            after = src.history("max(max_over_time(exporter_load[10s]))", now - 5, now, 1)
            pd.testing.assert_series_equal(after, before)
            assert server.wait_for("exporter_load == 7", timeout_s=20)


PARTIAL = json.dumps(
    {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"namespace": "shop", "workload": "web"}, "values": [[600, "3"]]}
            ],
        },
        "warnings": ["No StoreAPIs matched for this query: store eu-1 is down"],
    }
).encode()


def test_partial_answer_with_warnings_is_refused_by_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Thanos-style 200 with ``warnings``: refused (retryable), or accepted + logged."""
    with LoopbackServer(body=PARTIAL) as thanos:
        with pytest.raises(RetryableError, match="warnings.*store eu-1 is down"):
            source(thanos.url).history_by(RATE, 0, 600, 300)
        got = source(thanos.url, partial_answers="accept").history_by(RATE, 0, 600, 300)
    assert got[("shop", "web")].dropna().tolist() == [3.0]
    assert "store eu-1 is down" in caplog.text
