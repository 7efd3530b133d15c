"""DEADLINE and TOO_LARGE: one request ends within ``timeout_seconds``, whole, and an
answer over ``max_response_bytes`` is refused while it is read.

Why: a read timeout restarts with every packet, so a server (or a proxy) that
drip-feeds a valid answer at 20 B/s held each tick for 12.5 s with a 2-s timeout; and
an unbounded answer was read into memory whole before anything looked at it. The
servers here are real loopback HTTP servers (``LoopbackServer``) on 127.0.0.1; every
wait is bounded (the drip gives up after ``LoopbackServer.MAX_DELAY_S``).
"""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path

import pytest

from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.sources.settings import PrometheusSettings, load_prometheus_settings
from models.errors import InputError, RetryableError
from tests.integration.promfixture import LoopbackServer, make_tls_files

pytestmark = pytest.mark.integration

RATE = "rate(http_requests_total[2m])"
SLACK_S = 1.0  # thread start-up and the cut's wake-up on the shared 2-core machine


def matrix(series: int, steps: int = 2, pad: int = 0) -> bytes:
    """A valid ``query_range`` answer: ``series`` workloads at steps 600 and 900."""
    result = [
        {
            "metric": {"namespace": "shop", "workload": f"w{i:07d}" + "x" * pad},
            "values": [[600 + 300 * k, "3"] for k in range(steps)],
        }
        for i in range(series)
    ]
    return json.dumps(
        {"status": "success", "data": {"resultType": "matrix", "result": result}}
    ).encode()


def make(url: str, **kw: object) -> PrometheusSource:
    return PrometheusSource(PrometheusSettings.model_validate({"url": url, **kw}))


def test_a_drip_fed_answer_fails_within_the_deadline() -> None:
    """~400 valid bytes at 20 B/s: 20 s of reads, each well under the 2-s timeout."""
    body = matrix(2)
    with LoopbackServer(body=body, drip_bytes_per_s=20.0) as drip:
        src = make(drip.url, timeout_seconds=2)
        t0 = time.monotonic()
        with pytest.raises(RetryableError, match=r"no answer within 2 s \(a deadline"):
            src.history_by(RATE, 0, 900, 300)
        took = time.monotonic() - t0
        assert took < 2 + SLACK_S, took
        # The same source recovers once the server answers briskly again.
        drip.drip_bytes_per_s = 1e6
        got = src.history_by(RATE, 0, 900, 300)
    assert got[("shop", "w0000000")].dropna().tolist() == [3.0, 3.0]


def test_the_deadline_holds_over_tls(tmp_path: Path) -> None:
    """Cutting a TLS connection raises TLS errors underneath: still a timeout, not a
    TLS failure (which would be permanent), and within the deadline."""
    files = make_tls_files(tmp_path / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.server_cert, files.server_key)
    with LoopbackServer(body=matrix(2), drip_bytes_per_s=20.0, tls=context) as drip:
        assert drip.url.startswith("https://")
        src = make(drip.url, timeout_seconds=1.5, tls={"ca_file": str(files.ca)})
        t0 = time.monotonic()
        with pytest.raises(RetryableError, match=r"no answer within 1.5 s \(a deadline"):
            src.history_by(RATE, 0, 900, 300)
        assert time.monotonic() - t0 < 1.5 + SLACK_S
        drip.drip_bytes_per_s = 1e6
        assert ("shop", "w0000000") in src.history_by(RATE, 0, 900, 300)


def test_a_slow_but_timely_answer_is_read() -> None:
    """Drip-fed, but complete within the deadline: accepted (the deadline is not a stall
    detector), and the connection is not cut afterwards."""
    body = matrix(1)
    with LoopbackServer(body=body, drip_bytes_per_s=2000.0) as drip:
        src = make(drip.url, timeout_seconds=5)
        for _ in range(2):
            got = src.history_by(RATE, 0, 900, 300)
            assert got[("shop", "w0000000")].dropna().tolist() == [3.0, 3.0]


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "until-close"])
def test_an_over_size_answer_is_refused_cleanly(send_length: bool) -> None:
    body = matrix(5_000, pad=700)  # ~3.8 MB of valid JSON
    limit = 1 << 20
    assert len(body) > 3 * limit
    with LoopbackServer(body=body, send_length=send_length) as big:
        src = make(big.url, max_response_bytes=limit)
        with pytest.raises(RetryableError, match=r"exceeds prometheus.max_response_bytes"):
            src.history_by(RATE, 0, 900, 300)
        # Within the limit, the same answer is read.
        roomy = make(big.url, max_response_bytes=8 * limit)
        assert len(roomy.history_by(RATE, 0, 900, 300)) == 5_000


def test_max_response_bytes_is_validated() -> None:
    with pytest.raises(InputError, match="prometheus.max_response_bytes"):
        load_prometheus_settings({"max_response_bytes": 10})
