"""Benchmark of the HPA emulation and the M/M/c latency model (prints figures; not a test).

Run: ``nice .venv/bin/python benchmarks/hpa_latency.py`` (seconds to a minute on 2 shared cores);
``make figures`` (``benchmarks/figures.py``) runs it and writes docs/benchmarks/hpa.md.

1. ``simulations.latency.mmc_p99`` on 161,280 ticks (28 days of 15-s ticks) against a
   plain pure-Python per-tick loop (Erlang B recursion + scalar bisection of the same
   tail), measured in the same run; the baseline runs on a slice and is reported per tick.
2. ``HorizontalController.sync`` per call (legacy and default-behavior paths) and
   ``replicas_from_cpu`` / ``replicas_from_external`` per call, as the engine calls them
   once per tick and policy.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import numpy as np

from simulations.hpa import HorizontalController, PodInfo, replicas_from_cpu, replicas_from_external
from simulations.latency import erlang_b_recursive, mmc_p99

TICKS = 28 * 24 * 240  # 28 days of 15-s ticks
BASELINE_TICKS = 5_000
REPEATS = 5


def _median_seconds(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _scalar_p99(lam: float, c: int, mu: float) -> float:
    """The baseline: the same model, one tick at a time, in plain Python."""
    if lam >= c * mu:
        return math.inf
    if lam == 0:
        return math.log(100.0) / mu
    a = lam / mu
    b = erlang_b_recursive(c, a)
    cw = b / (1.0 - (a / c) * (1.0 - b))
    theta = c * mu - lam

    def tail(t: float) -> float:
        conv = math.exp(-mu * t)
        if abs(theta - mu) * t < 1e-8:
            conv *= 1.0 + mu * t
        else:
            conv += mu * (math.exp(-mu * t) - math.exp(-theta * t)) / (theta - mu)
        return (1.0 - cw) * math.exp(-mu * t) + cw * conv

    lo, hi = (
        math.log(100.0) / mu,
        2.0 * max(math.log(200.0) / mu, math.log(max(200 * cw, 1)) / theta),
    )
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tail(mid) > 0.01 else (lo, mid)
    return 0.5 * (lo + hi)


def bench_latency() -> None:
    rng = np.random.default_rng(1)
    # A refinory-ai-like day shape: 2..80 ready pods of 20 req/s, load 30-95 %.
    c = rng.integers(2, 81, TICKS)
    mu = 20.0
    lam = c * mu * rng.uniform(0.3, 0.95, TICKS)
    vec = _median_seconds(lambda: mmc_p99(lam, c, mu))
    lam_s, c_s = lam[:BASELINE_TICKS].tolist(), c[:BASELINE_TICKS].tolist()
    base = _median_seconds(
        lambda: [_scalar_p99(x, int(k), mu) for x, k in zip(lam_s, c_s, strict=True)], 3
    )
    got = mmc_p99(lam[:BASELINE_TICKS], c[:BASELINE_TICKS], mu)
    want = np.array([_scalar_p99(x, int(k), mu) for x, k in zip(lam_s, c_s, strict=True)])
    per_tick_vec = vec / TICKS
    per_tick_base = base / BASELINE_TICKS
    print(
        f"mmc_p99 vectorised: {TICKS} ticks in {vec:.3f} s (median of {REPEATS}); "
        f"{per_tick_vec * 1e6:.2f} us/tick"
    )
    print(
        f"pure-Python loop:   {BASELINE_TICKS} ticks in {base:.3f} s (median of 3); "
        f"{per_tick_base * 1e6:.2f} us/tick -> {TICKS} ticks ~ {per_tick_base * TICKS:.1f} s"
    )
    print(
        f"speed-up (per tick): {per_tick_base / per_tick_vec:.0f}x; "
        f"max relative difference of the two: {np.max(np.abs(got / want - 1)):.1e}"
    )


def bench_hpa() -> None:
    rng = np.random.default_rng(2)
    n = 20_000
    proposals = np.clip(np.round(20 + 15 * np.sin(np.arange(n) / 300) + rng.normal(0, 2, n)), 1, 80)
    for label, behavior in (("legacy (no behavior)", None), ("behavior {} (defaults)", {})):

        def run(behavior: object = behavior) -> None:
            ctl = HorizontalController(2, 80, behavior=behavior)  # type: ignore[arg-type]
            current = 20
            for i in range(n):
                current = ctl.sync(i * 15.0, current, [int(proposals[i])])

        secs = _median_seconds(run)
        print(
            f"HorizontalController.sync, {label}: {secs / n * 1e6:.1f} us/call "
            f"(median of {REPEATS} runs of {n} syncs)"
        )

    pods = [
        PodInfo(
            f"p{i}",
            start_time=-3600.0,
            ready_transition_time=-3500.0,
            request_milli_cpu=500,
            usage_milli_cpu=300 + i,
        )
        for i in range(20)
    ]
    m = 5_000
    secs = _median_seconds(lambda: [replicas_from_cpu(20, pods, 70, 0.0) for _ in range(m)])
    print(f"replicas_from_cpu, 20 Ready pods: {secs / m * 1e6:.1f} us/call")
    secs = _median_seconds(
        lambda: [replicas_from_external(20, [31_500], "AverageValue", 1000) for _ in range(m)]
    )
    print(f"replicas_from_external, AverageValue: {secs / m * 1e6:.1f} us/call")


if __name__ == "__main__":
    bench_latency()
    bench_hpa()
