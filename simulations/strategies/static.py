"""``static``: a fixed replica count (default: enough for the trace's peak)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulations.engine import TickContext, Timeline, run_ticks
from simulations.strategies.base import RunContext
from simulations.strategies.oracle import oracle_need


@dataclass
class Static:
    """A fixed replica count; default: enough for the trace's peak at the SLO utilisation."""

    replicas: int | None = None
    name: str = "static"

    def run(self, ctx: RunContext) -> Timeline:
        w = ctx.workload
        fixed = self.replicas
        if fixed is None:
            fixed = int(oracle_need(np.array([ctx.demand.rate.max()]), w, ctx.slo_utilization)[0])
        fixed = int(min(max(fixed, w.min_replicas), w.max_replicas))

        def step(t: TickContext) -> int:
            return fixed

        return run_ticks(
            ctx.demand, w, self.name, step, progress=ctx.progress, initial=ctx.initial_replicas
        )
