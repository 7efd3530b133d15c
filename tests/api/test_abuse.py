"""The API server under junk: bounded memory, a 4xx Status for every junk request, and
normal requests still fast.

The server is the real child process (``ServerProcess``) on 127.0.0.1; its memory is its
resident set size from /proc/PID/status. The junk is what an abusive or broken client of
the cluster's aggregated API can send: long distinct invalid selectors, valid requests
padded with ignored parameters, endless unfinished headers, slow heads. Every loop here is
bounded in count and time.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest

from autoscaler.api.process import ServerProcess
from autoscaler.api.server import ServerThread, _ListCache, _Lists, create_app
from autoscaler.api.settings import ApiSettings
from autoscaler.clock import WallClock
from autoscaler.store import DecisionStore, MetricValue
from tests.api.conftest import BASE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIST = f"{BASE}/namespaces/default/queue_depth"
JUNK_BYTES = 60 * 1024


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def status_line(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Read until the end of the response head (bounded by ``timeout`` and 64 KiB)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def http_get(port: int, target: str, headers: str = "", timeout: float = 10.0) -> tuple[int, bytes]:
    """One raw HTTP/1.1 GET: (status code, whole response up to close or Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n"
        sock.sendall(request.encode("latin-1"))
        data = status_line(sock, timeout)
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(head.split(b" ", 2)[1]), body


def unfinished_headers(port: int, total: int = 8 * 1024 * 1024) -> int:
    """Send a request head that never ends (up to ``total`` bytes); the status received."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /apis HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Junk: ")
        sent, chunk = 0, b"a" * 16384
        deadline = time.monotonic() + 20
        while sent < total and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        data = status_line(sock)
    return int(data.split(b" ", 2)[1]) if data else 0


def store_now() -> DecisionStore:
    store = DecisionStore()
    now = time.time()
    store.publish(
        [
            MetricValue("default", "queue_depth", {"queue": "orders"}, 1.5, now),
            MetricValue("default", "queue_depth", {"queue": "billing"}, 2000.0, now),
        ]
    )
    return store


@pytest.fixture(scope="module")
def child() -> Iterator[ServerProcess]:
    settings = ApiSettings(bind="127.0.0.1:0", insecure=True)
    with ServerProcess(store_now(), settings) as server:
        deadline = time.monotonic() + 10  # the child applies the first snapshot shortly
        while http_get(server.port, LIST)[0] != 200:
            assert time.monotonic() < deadline, "the child never served the store"
            time.sleep(0.05)
        yield server


def normal(port: int) -> float:
    start = time.monotonic()
    code, body = http_get(port, f"{LIST}?labelSelector=queue%3Dorders")
    elapsed = time.monotonic() - start
    assert code == 200, body
    assert [i["metricLabels"]["queue"] for i in json.loads(body)["items"]] == ["orders"]
    return elapsed


def invalid_selector(i: int) -> str:
    # Distinct, malformed (unclosed set), 60 KB.
    return f"{LIST}?labelSelector=" + quote(f"q{i} in (a" + "b" * JUNK_BYTES)


def padded_valid(i: int) -> str:
    # A valid request padded with 60 KB of parameters the server ignores.
    return f"{LIST}?labelSelector=queue%3Dorders&pad{i}=" + "x" * JUNK_BYTES


def test_junk_load_keeps_memory_bounded(child: ServerProcess) -> None:
    """800 distinct invalid 60 KB selectors, 400 valid requests padded with 60 KB, and 4
    connections sending 8 MB of unfinished headers: every one gets a 4xx, the server's
    RSS grows by at most 60 MB, and a normal request still answers in under 1 s."""
    port, pid = child.port, child.pid
    assert pid is not None
    for _ in range(50):  # warm up the normal path
        normal(port)
    for i in range(10):  # and the rejection path, so the baseline is the steady state
        http_get(port, invalid_selector(-i - 1))
        http_get(port, padded_valid(-i - 1))
    before = rss_mb(pid)
    jobs = [("invalid", i) for i in range(800)] + [("padded", i) for i in range(400)]
    jobs += [("headers", i) for i in range(4)]

    def run(job: tuple[str, int]) -> int:
        kind, i = job
        try:
            if kind == "headers":
                return unfinished_headers(port)
            return http_get(port, invalid_selector(i) if kind == "invalid" else padded_valid(i))[0]
        except OSError:  # no answer in time, or a reset: not a 4xx
            return 0

    peak = before
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(run, job) for job in jobs]
        while not all(f.done() for f in futures) and time.monotonic() - start < 120:
            peak = max(peak, rss_mb(pid))
            time.sleep(0.05)
        codes = [f.result(timeout=30) for f in futures]
    after = rss_mb(pid)
    peak = max(peak, after)
    latency = max(normal(port) for _ in range(5))
    print(
        f"\nRSS before {before:.1f} MB, peak {peak:.1f} MB, after {after:.1f} MB "
        f"(growth {peak - before:.1f} MB); junk took {time.monotonic() - start:.1f}s; "
        f"normal request afterwards {latency * 1000:.1f} ms"
    )
    bad = [(job, code) for job, code in zip(jobs, codes, strict=True) if not 400 <= code < 500]
    assert not bad, f"{len(bad)} junk requests without a 4xx, e.g. {bad[:3]}"
    assert peak - before <= 60, f"RSS grew {peak - before:.1f} MB under junk"
    assert latency < 1.0


@pytest.fixture(scope="module")
def guarded() -> Iterator[ServerThread]:
    settings = ApiSettings(
        bind="127.0.0.1:0", insecure=True, header_timeout_seconds=0.5, max_connections=4
    )
    with ServerThread(create_app(store_now(), settings), settings) as server:
        yield server


def status_of(body: bytes, code: int) -> dict[str, object]:
    status = json.loads(body)
    assert (status["kind"], status["apiVersion"], status["code"]) == ("Status", "v1", code)
    return status  # type: ignore[no-any-return]


def test_too_long_url_is_a_414_status(guarded: ServerThread) -> None:
    code, body = http_get(guarded.port, padded_valid(1))
    assert code == 414
    assert status_of(body, 414)["reason"] == "RequestURITooLong"


def test_endless_header_is_a_431_status(guarded: ServerThread) -> None:
    assert unfinished_headers(guarded.port) == 431


def test_slow_head_is_a_408_status(guarded: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as sock:
        sock.sendall(b"GET /apis HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and nothing more
        start = time.monotonic()
        data = status_line(sock)
        elapsed = time.monotonic() - start
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert status_of(body, 408)["reason"] == "Timeout"
    assert elapsed < 3.0


def test_connections_beyond_the_cap_get_a_503_status(guarded: ServerThread) -> None:
    idle = [socket.create_connection(("127.0.0.1", guarded.port), timeout=5) for _ in range(4)]
    try:
        code, body = http_get(guarded.port, "/apis")
        assert code == 503
        assert status_of(body, 503)["reason"] == "ServiceUnavailable"
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while http_get(guarded.port, "/apis")[0] != 200:  # served again once they are gone
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_trailing_slash_does_not_echo_the_host(guarded: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as sock:
        sock.sendall(f"GET {BASE}/ HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode())
        data = status_line(sock)
    assert b"evil.example" not in data
    assert not data.startswith(b"HTTP/1.1 30")


def lists(store: DecisionStore) -> _Lists:
    from prometheus_client import CollectorRegistry, Counter

    stale = Counter("stale", "stale", registry=CollectorRegistry())
    return _Lists(store, WallClock(), 120.0, _ListCache(), stale)


def test_cache_is_keyed_by_the_parsed_request() -> None:
    lst = lists(store_now())
    for selector in ("queue=orders", "queue==orders", " queue = orders ", "queue in (orders)"):
        code, body = lst.answer("default", "queue_depth", selector)
        assert code == 200 and b"orders" in body and b"billing" not in body
    assert len(lst.cache.cache) == 2  # "=", "==" and spaces are one request; "in" another
    lst.answer("default", "QUEUE_DEPTH", "queue=orders")
    assert len(lst.cache.cache) == 2


def test_errors_are_never_cached_and_caches_are_capped() -> None:
    lst = lists(store_now())
    for i in range(50):
        code, body = lst.answer("default", "queue_depth", f"q{i} in (a")
        assert code == 400 and status_of(body, 400)["reason"] == "BadRequest"
    assert len(lst.cache.cache) == 0 and len(lst._selectors) == 0
    long_ok = "queue in (" + ",".join(f"v{i}" for i in range(400)) + ")"
    assert lst.answer("default", "queue_depth", long_ok)[0] == 200
    assert len(lst._selectors) == 0  # a long selector is parsed, not kept
    for i in range(5000):
        lst.answer("default", "queue_depth", f"queue=v{i}")
    assert len(lst.cache.cache) <= 4096 and lst.cache.cache.bytes <= 32 * 1024 * 1024
    assert len(lst._selectors) <= 4096
