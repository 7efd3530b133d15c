"""The engine: per-tick demand, the simulated clock, the tick loop, and the oracle's schedule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscaler.clock import Clock
from models.errors import InputError
from models.traces import load_trace
from simulations.clock import SimClock
from simulations.engine import demand_from_rate
from simulations.pods import PodSet
from simulations.scenario import prepare, scenario_from_dict
from simulations.strategies import HpaCpu, Oracle, RunContext, Static
from simulations.workloads import custom_workload


def write_trace(path: Path, values: list[float], step: int = 60, start: str = "2026-01-05") -> Path:
    index = pd.date_range(start, periods=len(values), freq=f"{step}s", tz="UTC")
    lines = ["timestamp,value"] + [
        f"{t:%Y-%m-%dT%H:%M:%SZ},{v:g}" for t, v in zip(index, values, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def noisy_daily(days: float, seed: int = 1, step: int = 60) -> list[float]:
    """A seeded synthetic per-interval count trace with a daily cycle and noise."""
    rng = np.random.default_rng(seed)
    n = int(days * 86400 / step)
    t = np.arange(n) * step / 86400.0
    rate = 200.0 + 150.0 * np.sin(2 * np.pi * (t - 0.3)) + 15.0 * rng.standard_normal(n)
    return list(np.round(np.maximum(rate, 1.0) * step))


def test_sim_clock_is_a_clock_that_never_runs_backwards() -> None:
    clock: Clock = SimClock(100.0)
    clock.sleep(15.0)
    assert clock.now() == 115.0
    assert isinstance(clock, SimClock)
    clock.advance_to(200.0)
    with pytest.raises(ValueError):
        clock.advance_to(199.0)
    with pytest.raises(InputError):
        SimClock(float("nan"))


def test_demand_is_piecewise_constant_per_trace_interval(tmp_path: Path) -> None:
    trace = load_trace(write_trace(tmp_path / "t.csv", [60, 120, 240]))
    d = demand_from_rate(trace.rate_per_second, trace.step_seconds, 15.0)
    assert len(d) == 12  # from the first timestamp to the end of the last interval
    assert d.start == trace.series.index[0].timestamp()
    assert list(d.rate) == [1.0] * 4 + [2.0] * 4 + [4.0] * 4
    # A sample is visible from the START of its interval, when the stock HPA's CPU
    # metric shows the same (constant) rate: parity between the policies.
    assert d.observed.index[0] == trace.series.index[0]
    assert list(d.observed) == [1.0, 2.0, 4.0]
    # A 5-minute trace with 15-s ticks: 20 ticks per row.
    t5 = load_trace(write_trace(tmp_path / "t5.csv", [300, 600], step=300))
    d5 = demand_from_rate(t5.rate_per_second, t5.step_seconds)
    assert len(d5) == 40 and list(d5.rate[:20]) == [1.0] * 20 and list(d5.rate[20:]) == [2.0] * 20


def _ctx(tmp_path: Path, values: list[float], startup: float = 90.0) -> RunContext:
    trace = load_trace(write_trace(tmp_path / "t.csv", values))
    w = custom_workload(capacity_rps=20.0, startup_seconds=startup, max_replicas=200)
    return RunContext(demand_from_rate(trace.rate_per_second, trace.step_seconds), w)


def test_static_runs_fixed_replicas_and_pays_for_them(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, [1200.0] * 30)
    tl = Static(7).run(ctx)
    assert set(tl.replicas) == {7} and set(tl.alive) == {7}
    frame = tl.frame()
    assert list(frame.columns[:5]) == [
        "timestamp",
        "policy",
        "demand",
        "replicas",
        "ready_replicas",
    ]
    assert frame["timestamp"].iloc[1] == "2026-01-05T00:00:15Z"


def test_new_pods_serve_only_after_their_start_up(tmp_path: Path) -> None:
    """A step in demand: hpa-cpu scales at once, but Ready capacity follows 90 s later."""
    values = [600.0] * 20 + [3000.0] * 20  # 10/s, then 50/s from minute 20
    ctx = _ctx(tmp_path, values, startup=90.0)
    tl = HpaCpu().run(ctx)
    step_tick = 20 * 4
    assert tl.ready[step_tick - 1] == tl.ready[0]
    first_up = step_tick + int(np.argmax(tl.replicas[step_tick:] > tl.replicas[step_tick - 1]))
    assert tl.alive[first_up] > tl.ready[first_up]  # asked for, not yet serving
    gained = first_up + int(np.argmax(tl.ready[first_up:] > tl.ready[first_up]))
    assert (gained - first_up) * 15.0 >= 90.0
    assert (gained - first_up) * 15.0 < 90.0 + 15.0
    # In steady high load it settles where the utilisation is near its 70 % target.
    util = 50.0 / (tl.ready[-1] * 20.0)
    assert 0.6 <= util <= 0.77


def test_oracle_never_under_provisions_and_is_cheapest(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, noisy_daily(0.5), startup=90.0)
    oracle = Oracle().run(ctx)
    supply = oracle.ready * 20.0 * ctx.slo_utilization
    assert np.all(ctx.demand.rate <= supply + 1e-9)
    assert np.all(oracle.ready <= oracle.alive)
    static = Static().run(ctx)
    hpa = HpaCpu(40).run(ctx)
    assert oracle.alive.sum() < static.alive.sum()
    assert oracle.alive.sum() < hpa.alive.sum()


def test_oracle_schedule_is_what_real_pods_would_do(tmp_path: Path) -> None:
    """Replay the oracle's replica schedule through real simulated pods: same Ready counts."""
    ctx = _ctx(tmp_path, noisy_daily(0.25, seed=5), startup=90.0)
    oracle = Oracle().run(ctx)
    # Start from the oracle's first count, all Ready, as the oracle assumes.
    pods = PodSet(lambda: 90.0)
    pods.seed_ready(int(oracle.alive[0]), 0.0)
    replayed_ready = []
    for i, target in enumerate(oracle.alive):
        now = float(i * 15)
        pods.advance(now)
        pods.scale_to(int(target), now)
        replayed_ready.append(pods.ready_count)
    assert np.array_equal(np.array(replayed_ready), oracle.ready)


def test_scale_to_peak_replicas_hits_the_99_9th_percentile(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "t.csv", noisy_daily(1.0, seed=2))
    sc = scenario_from_dict(
        {"trace": str(path), "workload": "refinory-ai", "scale_to_peak_replicas": 40}, "t"
    )
    p = prepare(sc)
    scaled = p.trace.rate_per_second.to_numpy() * p.scale_factor
    p999 = float(np.quantile(scaled, 0.999))
    assert p999 == pytest.approx(40 * p.workload.capacity_rps * 0.7, rel=1e-9)
    assert float(p.demand.rate.max()) == pytest.approx(scaled.max())


def test_finer_observation_is_window_means_stamped_at_window_start(tmp_path: Path) -> None:
    trace = load_trace(write_trace(tmp_path / "t.csv", [300.0, 600.0], step=300))
    d = demand_from_rate(trace.rate_per_second, trace.step_seconds, 15.0, observe_seconds=60.0)
    assert len(d.observed) == 10
    assert list(d.observed) == [1.0] * 5 + [2.0] * 5
    start = trace.series.index[0]
    assert d.observed.index[0] == start
    assert d.observed.index[-1] == start + pd.Timedelta(seconds=540)
    with pytest.raises(InputError, match="whole number"):
        demand_from_rate(trace.rate_per_second, 300.0, 15.0, observe_seconds=20.0)
