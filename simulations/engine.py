"""The simulation engine: replay demand tick by tick through a policy, the HPA and pods.

Time advances in HPA sync periods (15 s). Each tick, in this order:

1. pods whose start-up has elapsed become Ready;
2. demand is the trace's rate for the interval containing the tick: **piecewise
   constant per trace interval** (a 1-minute trace gives four equal ticks per row);
3. the policy produces the workload's new ``spec.replicas`` (the stock policies and
   ``predictive`` through the emulated HPA, ``oracle`` and ``static`` directly);
4. the ReplicaSet creates or deletes pods to match (``simulations.pods``);
5. the row is recorded: demand, ``spec.replicas``, Ready pods, existing pods.

Everything that does not depend on the feedback loop is vectorised (demand per tick,
latency, scoring, cost); only steps 1-4 run in Python per tick.

The ``Timeline`` rows cover ``[t, t + 15 s)`` each: capacity is the Ready pods after
the tick's scaling, and cost is every pod that exists, Ready or not.

Callers: ``simulations.scenario`` (``simulate``), ``simulations.sweep``, benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.errors import InputError
from simulations.clock import SimClock
from simulations.latency import mmc_p99
from simulations.pods import PodSet
from simulations.workloads import Workload

#: The HPA controller's default sync period (``--horizontal-pod-autoscaler-sync-period``).
SYNC_SECONDS = 15.0


@dataclass(frozen=True)
class Demand:
    """Demand per tick, and the trace samples as the outside world would observe them.

    ``rate`` is requests/s during ``[times[i], times[i] + tick)``. ``observed`` is the
    load as the predictive policy's metric source sees it: rate/s per observation
    window, stamped at the window's START, because the simulated demand is constant
    over the window and a rate meter shows it from its first second, exactly as the
    CPU metric shows it to the stock HPA at the same tick (parity: neither policy sees
    more than the other). Nothing later than the tick is ever visible.
    """

    times: np.ndarray
    rate: np.ndarray
    tick_seconds: float
    observed: pd.Series
    step_seconds: float

    def __len__(self) -> int:
        return int(self.rate.size)

    @property
    def start(self) -> float:
        return float(self.times[0])


def demand_from_rate(
    rate: pd.Series,
    step_seconds: float,
    tick_seconds: float = SYNC_SECONDS,
    observe_seconds: float | None = None,
) -> Demand:
    """Ticks from the first timestamp to the end of the last interval; piecewise constant.

    ``observe_seconds`` is how finely the outside world samples the load (the metric
    source's query step); ``None`` means at the trace's own resolution. Each window's
    rate is stamped at its start, when the (constant) rate becomes visible, the same
    moment the stock HPA's CPU metric shows it; a finer step gives the mean demand of
    each ``observe_seconds`` window. A finer step must be a multiple of the tick and
    divide the trace step (``InputError`` otherwise): a window straddling two rows would
    show the later row at the window's start, before that row's interval begins (180 s
    on a 5-minute trace would show a surge at 00:05 at 00:03).
    """
    if rate.empty:
        raise InputError("trace", "the trace has no rows in the chosen period", "widen the period")
    if tick_seconds <= 0:
        raise InputError("tick", f"tick of {tick_seconds} s", "use a positive sync period")
    t0 = float(rate.index[0].timestamp())
    span = len(rate) * step_seconds
    n = int(math.ceil(span / tick_seconds - 1e-9))
    times = t0 + tick_seconds * np.arange(n, dtype=float)
    row = np.minimum(((times - t0) // step_seconds).astype(np.int64), len(rate) - 1)
    values = rate.to_numpy(dtype=float)
    per_tick = values[row]
    if observe_seconds is None or observe_seconds >= step_seconds:
        observed = pd.Series(
            values,
            index=pd.DatetimeIndex(rate.index),
            dtype=float,
            name="rate",
        )
    else:
        # Valid: a multiple of the tick that divides the trace step, so that no window
        # straddles two rows (its mean would show the later row at the window's start,
        # before that row's interval begins).
        multiples = (j * tick_seconds for j in range(1, int(step_seconds // tick_seconds) + 1))
        good = [w for w in multiples if abs(step_seconds / w - round(step_seconds / w)) <= 1e-9]
        fix = f"use a divisor of the {step_seconds:g}-s trace step that is a multiple of the " + (
            f"{tick_seconds:g}-s tick: one of {', '.join(f'{c:g}' for c in good)}"
            if good
            else f"{tick_seconds:g}-s tick (none exists: leave it unset)"
        )
        where = "observe_seconds (--observe-seconds)"
        k = observe_seconds / tick_seconds
        if observe_seconds <= 0 or abs(k - round(k)) > 1e-9:
            raise InputError(
                where,
                f"{observe_seconds:g} s is not a whole number of {tick_seconds:g}-s ticks",
                fix,
            )
        k = int(round(k))
        windows = step_seconds / observe_seconds
        if abs(windows - round(windows)) > 1e-9:
            raise InputError(
                where,
                f"{observe_seconds:g} s does not divide the trace step of {step_seconds:g} s:"
                " a window would straddle two rows and show the later one before it starts",
                fix,
            )
        m = n // k
        means = per_tick[: m * k].reshape(m, k).mean(axis=1)
        starts = pd.to_datetime(t0 + observe_seconds * np.arange(m), unit="s", utc=True)
        observed = pd.Series(means, index=starts, dtype=float, name="rate")
    return Demand(times, per_tick, float(tick_seconds), observed, float(step_seconds))


@dataclass
class TickContext:
    """What a per-tick policy sees and may act on at one sync."""

    i: int
    now: float
    demand: float
    current_replicas: int
    pods: PodSet
    clock: SimClock


@dataclass
class Timeline:
    """One policy's run: one entry per tick. ``extra`` holds policy-specific columns."""

    policy: str
    times: np.ndarray
    demand: np.ndarray
    replicas: np.ndarray
    ready: np.ndarray
    alive: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """The timeline as rows (``timestamp,policy,demand,replicas,ready_replicas,...``)."""
        df = pd.DataFrame(
            {
                "timestamp": pd.to_datetime(self.times, unit="s", utc=True).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "policy": self.policy,
                "demand": self.demand,
                "replicas": self.replicas,
                "ready_replicas": self.ready,
                "pods": self.alive,
            }
        )
        for key, values in self.extra.items():
            df[key] = values
        return df


def initial_replicas(workload: Workload, first_rate: float, target_utilization: float = 0.7) -> int:
    """Replicas every policy starts with, all Ready: enough for the first demand at 70 %.

    Starting every policy from the same warm state keeps the first minutes of a replay
    from being scored as everyone's under-provisioning.
    """
    need = math.ceil(first_rate / (workload.capacity_rps * target_utilization) - 1e-9)
    return int(min(max(need, workload.min_replicas), workload.max_replicas))


def run_ticks(
    demand: Demand,
    workload: Workload,
    name: str,
    step: Callable[[TickContext], int],
    extra: dict[str, np.ndarray] | None = None,
    progress: Callable[[int], None] | None = None,
    clock: SimClock | None = None,
    initial: int | None = None,
) -> Timeline:
    """The feedback loop: ``step`` returns the new ``spec.replicas`` at each tick.

    ``clock`` is the simulated clock to advance (a fresh one by default: a strategy
    that hands the clock to the controller passes its own); ``initial`` the replicas
    running, all Ready, when the replay starts (default ``initial_replicas``).
    """
    n = len(demand)
    times = demand.times
    rate = demand.rate
    replicas = np.zeros(n, dtype=np.int64)
    ready = np.zeros(n, dtype=np.int64)
    alive = np.zeros(n, dtype=np.int64)
    pods = PodSet(workload.startup.sampler().draw, workload.name)
    start = initial_replicas(workload, float(rate[0])) if initial is None else int(initial)
    start = min(max(start, workload.min_replicas), workload.max_replicas)
    pods.seed_ready(start, float(times[0]))
    clock = clock if clock is not None else SimClock(float(times[0]))
    ctx = TickContext(0, float(times[0]), float(rate[0]), start, pods, clock)
    current = start
    report_every = max(1, n // 100)
    for i in range(n):
        now = float(times[i])
        clock.advance_to(now)
        pods.advance(now)
        ctx.i, ctx.now, ctx.demand, ctx.current_replicas = i, now, float(rate[i]), current
        current = int(step(ctx))
        pods.scale_to(current, now)
        replicas[i] = current
        ready[i] = len(pods.ready)
        alive[i] = len(pods.starting) + len(pods.ready)
        if progress is not None and i % report_every == 0:
            progress(i)
    return Timeline(name, times, rate, replicas, ready, alive, extra or {})


def p99_latency(timeline: Timeline, workload: Workload) -> np.ndarray:
    """Per-tick p99 latency (s) from the M/M/c model: inf when the queue is unstable."""
    w = workload.latency.workers_per_pod
    mu = workload.capacity_rps / w
    return np.asarray(mmc_p99(timeline.demand, timeline.ready * w, mu), dtype=float)
