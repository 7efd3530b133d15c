"""``oracle``: knows the future. Starts pods just in time so that Ready capacity always
covers demand at the SLO utilisation; bypasses the HPA. The lower bound on cost at
zero under-provisioning."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from simulations.engine import Timeline
from simulations.strategies.base import RunContext
from simulations.workloads import Workload


def oracle_need(rate: np.ndarray, workload: Workload, slo_utilization: float) -> np.ndarray:
    """Ready replicas needed each tick so that demand <= Ready x capacity x SLO utilisation."""
    need = np.ceil(rate / (workload.capacity_rps * slo_utilization) - 1e-9)
    return np.clip(need, workload.min_replicas, workload.max_replicas).astype(np.int64)


@dataclass
class Oracle:
    """Perfect foresight: pods start exactly one start-up time before they are needed.

    With start-up ``L`` ticks, the pods existing at tick ``i`` must cover the need of
    every tick up to ``i + L`` (a pod that must be Ready then has to exist now), so the
    cheapest schedule is the forward sliding maximum of the need; removing the newest
    pods first, the Ready count is the backward sliding minimum of that schedule over
    ``L`` ticks. With a random start-up time the oracle plans for its p99 (it may then
    be late for the slowest 1 % of pods): exact for the fixed start-ups of issue 4.
    """

    name: str = "oracle"

    def run(self, ctx: RunContext) -> Timeline:
        d = ctx.demand
        w = ctx.workload
        need = oracle_need(d.rate, w, ctx.slo_utilization)
        lag = int(math.ceil(w.startup.quantile(0.99) / d.tick_seconds - 1e-9))
        if lag > 0:
            ahead = np.concatenate([need, np.full(lag, need[-1])])
            alive = sliding_window_view(ahead, lag + 1).max(axis=1)
            behind = np.concatenate([np.full(lag, alive[0]), alive])
            ready = sliding_window_view(behind, lag + 1).min(axis=1)
        else:
            alive, ready = need.copy(), need.copy()
        return Timeline(self.name, d.times, d.rate, alive.copy(), ready, alive.copy())
