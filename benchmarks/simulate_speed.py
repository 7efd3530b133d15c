"""Speed of the simulator on a ~28-day, 1-minute trace (prints figures; not a test).

Issue 3 asks for a 28-day, 1-minute trace with four policies in under 60 s on this
machine, with a plain pure-Python per-tick loop measured alongside as the baseline.

* **engine**: ``simulations`` as the CLI runs it: the feedback loop per tick (pods, the
  HPA emulation, the policy) and everything else vectorised (demand per tick, the oracle's
  schedule, M/M/c latency, scoring).
* **baseline**: the same policies in a plain per-tick Python loop: demand looked up per
  tick (``Series.asof``), the oracle's look-ahead recomputed per tick, the M/M/c p99 by a
  scalar bisection over the textbook Erlang-C recursion per tick, and the scores
  accumulated tick by tick. It uses the same pods and the same HPA emulation (the
  policies' own ``make_step``), so the ratio measures what vectorising the
  feedback-free parts buys.

The predictive policy is timed by the engine only: its time is ``decide()`` per tick,
which a plain loop would spend identically (``--skip-predictive`` leaves it out).

Run (the bundled NASA trace is 27.6 days of 1-minute rows):

    nice .venv/bin/python benchmarks/simulate_speed.py --days 28 --rounds 1

Figures and the command go to docs/benchmarks/simulator.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import pandas as pd

from autoscaler.cli.simworld import controller_for
from simulations.clock import SimClock
from simulations.engine import TickContext, initial_replicas
from simulations.pods import PodSet
from simulations.report import score_timeline
from simulations.scenario import Prepared, Result, prepare, run_policy, scenario_from_dict
from simulations.strategies import HpaCpu, HpaRps, RunContext, make_strategy


def _prepared(days: float) -> Prepared:
    sc = scenario_from_dict(
        {
            "trace": "nasa_http_jul1995_1min.csv",
            "workload": "refinory-ai",
            "period": {"days": days},
            "scale_to_peak_replicas": 40,
            "policies": ["hpa-cpu", "hpa-rps", "oracle", "static"],
        },
        "benchmark",
    )
    return prepare(sc, controller=controller_for)


Timing = tuple[float, float]


def engine_run(prep: Prepared, name: str) -> Timing:
    """(wall s, CPU s) for the engine to run and score one policy."""
    w0, c0 = time.perf_counter(), time.process_time()
    tl = run_policy(prep, make_strategy(name))
    score_timeline(tl, Result(prep, {name: tl}))
    return time.perf_counter() - w0, time.process_time() - c0


# ------------------------------------------------------------------ the plain baseline


def _erlang_c(c: int, a: float) -> float:
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho + rho * b)


def _p99_scalar(lam: float, c: int, mu: float) -> float:
    """M/M/c p99 sojourn time by bisection on the closed-form tail, one tick at a time."""
    if c <= 0 or lam >= c * mu:
        return math.inf
    if lam <= 0:
        return math.log(100.0) / mu
    cw = _erlang_c(c, lam / mu)
    theta = c * mu - lam

    def tail(t: float) -> float:
        x = (theta - mu) * t
        h = 1.0 if abs(x) < 1e-12 else (1.0 - math.exp(-x)) / x
        return (1.0 - cw) * math.exp(-mu * t) + cw * math.exp(-mu * t) * (1.0 + mu * t * h)

    lo, hi = 0.0, 1.0
    while tail(hi) > 0.01:
        hi *= 2.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tail(mid) > 0.01 else (lo, mid)
    return hi


def baseline_run(prep: Prepared, name: str) -> Timing:
    """(wall s, CPU s) for the plain per-tick loop to run and score one policy."""
    w = prep.workload
    start_ts = pd.Timestamp(prep.demand.start, unit="s", tz="UTC")
    rate = prep.trace.rate_per_second * prep.scale_factor
    rate = rate[rate.index >= start_ts]
    n = len(prep.demand)
    tick = prep.demand.tick_seconds
    t_start = prep.demand.start
    cap_slo = w.capacity_rps * prep.scenario.slo_utilization
    lag = int(math.ceil(w.startup.quantile(0.99) / tick - 1e-9))
    workers = w.latency.workers_per_pod
    mu = w.capacity_rps / workers

    def demand_at(t: float) -> float:
        return float(rate.asof(pd.Timestamp(t, unit="s", tz="UTC")))

    w0, c0 = time.perf_counter(), time.process_time()
    ctx = RunContext(prep.demand, w, prep.scenario.slo_utilization, controller=controller_for)
    policy = make_strategy(name)
    step = policy.make_step(ctx) if isinstance(policy, HpaCpu | HpaRps) else None
    static_n = min(math.ceil(float(rate.max()) / cap_slo - 1e-9), w.max_replicas)
    pods = PodSet(w.startup.sampler().draw, w.name)
    current = initial_replicas(w, demand_at(t_start))
    pods.seed_ready(current, t_start)
    clock = SimClock(t_start)
    under = over = cost_ticks = slo_ticks = 0
    theta_u = 0.0
    alive_hist: list[int] = []
    for i in range(n):
        now = t_start + i * tick
        demand = demand_at(now)
        if name == "oracle":
            ahead = [
                demand_at(min(now + k * tick, t_start + (n - 1) * tick)) for k in range(lag + 1)
            ]
            need = [min(max(math.ceil(d / cap_slo - 1e-9), w.min_replicas), w.max_replicas)
                    for d in ahead]  # fmt: skip
            alive = max(need)
            alive_hist.append(alive)
            ready = min(alive_hist[max(0, i - lag) :])
        else:
            clock.advance_to(now)
            pods.advance(now)
            if step is not None:
                current = step(TickContext(i, now, demand, current, pods, clock))
            else:
                current = static_n
            pods.scale_to(current, now)
            ready, alive = pods.ready_count, pods.alive
        supply = ready * cap_slo
        if demand > supply:
            under += 1
            theta_u += (demand - supply) / demand
        elif supply > demand:
            over += 1
        cost_ticks += alive
        if _p99_scalar(demand, ready * workers, mu) > w.latency.slo_p99_seconds:
            slo_ticks += 1
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description="Simulator speed on a 28-day 1-minute trace.")
    ap.add_argument("--days", type=float, default=28.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--skip-predictive", action="store_true")
    args = ap.parse_args()
    prep = _prepared(args.days)
    days = len(prep.demand) * prep.demand.tick_seconds / 86400
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, 2 shared cores, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    print(
        f"trace: nasa_http_jul1995_1min.csv, {days:.2f} days, {len(prep.demand)} ticks of "
        f"15 s; workload refinory-ai, trace scaled to 40 replicas at p99.9"
    )
    names = ["hpa-cpu", "hpa-rps", "oracle", "static"]
    engine: dict[str, list[Timing]] = {n: [] for n in names}
    base: dict[str, list[Timing]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for n in names:
            engine[n].append(engine_run(prep, n))
            base[n].append(baseline_run(prep, n))

    def med(runs: list[Timing], k: int) -> float:
        return statistics.median(r[k] for r in runs)

    print("policy      engine wall/CPU s    plain loop wall/CPU s   ratio (CPU)")
    for n in names:
        ew, ec, bw, bc = med(engine[n], 0), med(engine[n], 1), med(base[n], 0), med(base[n], 1)
        print(f"{n:10s} {ew:8.2f} /{ec:8.2f}    {bw:8.2f} /{bc:8.2f}      {bc / ec:6.1f}x")
    if args.skip_predictive:
        return
    pw, pc = engine_run(prep, "predictive")
    print(
        f"predictive {pw:8.2f} /{pc:8.2f}    (decide() every tick, default model: "
        f"{1000 * pc / len(prep.demand):.2f} ms CPU per tick)"
    )
    four = ("hpa-cpu", "hpa-rps", "oracle")
    wall = sum(med(engine[n], 0) for n in four) + pw
    cpu = sum(med(engine[n], 1) for n in four) + pc
    print(
        f"four policies (hpa-cpu, hpa-rps, oracle, predictive), serial: {wall:.1f} s wall, "
        f"{cpu:.1f} s CPU; target < 60 s; load average now {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
