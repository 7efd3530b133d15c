"""Benchmark: fetching the history of many workloads from a REAL Prometheus.

Prints figures, asserts nothing. It backfills N workloads (slices of the bundled NASA
trace as counters) into a throw-away Prometheus on loopback and times:

* the batched tick: one ``history_by`` (``sum by (namespace, workload)``) over the last
  ``--tick-minutes`` for all N workloads, median of ``--repeat`` runs;
* the baseline, interleaved with it in the same run: one ``history`` request per
  workload for the same window (what a naive controller would do);
* the start-up backfill of the whole window for all N workloads, without and with gzip
  (interleaved).

Run: ``nice .venv/bin/python benchmarks/prometheus_source.py [--workloads 1000]``;
``make figures`` (``benchmarks/figures.py``) runs it and writes docs/benchmarks/prometheus.md.
Needs the Debian ``prometheus`` and ``promtool`` binaries.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoscaler.sources.prometheus import PrometheusSource  # noqa: E402
from autoscaler.sources.settings import PrometheusSettings  # noqa: E402
from tests.integration.promfixture import (  # noqa: E402
    PrometheusServer,
    aligned_now,
    find_binaries,
    trace_counter,
)

RATE = "rate(http_requests_total[2m])"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=6, help="backfilled history per workload")
    parser.add_argument("--tick-minutes", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if find_binaries() is None:
        sys.exit("prometheus/promtool not installed")
    n, points = args.workloads, args.hours * 60
    end = aligned_now(60) - 60
    t0 = time.perf_counter()
    backfill = [
        trace_counter(
            "nasa_http_jul1995_1min",
            {"namespace": f"ns{i % 20}", "workload": f"w{i}"},
            points=points,
            end=end,
            offset=(i * 37) % (39_000 - points),
        )
        for i in range(n)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        server = PrometheusServer.start(Path(tmp), backfill=backfill)
        setup_s = time.perf_counter() - t0
        try:
            settings = PrometheusSettings(url=server.url, timeout_seconds=60)
            src = PrometheusSource(settings)
            start = end - args.tick_minutes * 60
            # Batched tick and the per-workload baseline are interleaved round by round,
            # so that the load of the shared machine hits both alike.
            base = PrometheusSource(settings)
            tick, naive = [], []
            for _ in range(args.repeat):
                before = src.requests_sent
                t = time.perf_counter()
                got = src.history_by(RATE, start, end, 60)
                tick.append(time.perf_counter() - t)
                assert src.requests_sent - before == 1 and len(got) == n, (len(got), n)
                t = time.perf_counter()
                for i in range(n):
                    sel = f'namespace="ns{i % 20}",workload="w{i}"'
                    base.history(f"sum(rate(http_requests_total{{{sel}}}[2m]))", start, end, 60)
                naive.append(time.perf_counter() - t)
            back: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(max(1, args.repeat // 2)):
                for gzip in (False, True):  # interleaved, so load changes hit both
                    b = PrometheusSource(settings.model_copy(update={"gzip": gzip}))
                    t = time.perf_counter()
                    full = b.backfill(RATE, end, seconds=points * 60, step=60)
                    back[gzip].append(time.perf_counter() - t)
                    assert len(full) == n
            pages = b.requests_sent
        finally:
            server.stop()
    tick_med = statistics.median(tick)
    print(f"machine: {platform.machine()}, {platform.python_version()}, shared 2-core box")
    print(f"workloads: {n}, backfilled {points} points each; setup {setup_s:.1f} s")
    print(
        f"batched tick ({args.tick_minutes + 1} points x {n} workloads, 1 request): "
        f"median {tick_med * 1000:.0f} ms over {args.repeat} runs "
        f"(min {min(tick) * 1000:.0f}, max {max(tick) * 1000:.0f})"
    )
    naive_med = statistics.median(naive)
    print(
        f"baseline, one request per workload ({n} requests): median {naive_med * 1000:.0f} ms "
        f"over {args.repeat} runs = {naive_med / tick_med:.0f}x the batched tick"
    )
    plain, zipped = statistics.median(back[False]), statistics.median(back[True])
    print(
        f"backfill ({points + 1} points x {n} workloads, {pages} request(s)): "
        f"median {plain * 1000:.0f} ms without gzip, {zipped * 1000:.0f} ms with gzip "
        f"(ratio {zipped / plain:.2f}) over {len(back[False])} runs each"
    )


if __name__ == "__main__":
    main()
