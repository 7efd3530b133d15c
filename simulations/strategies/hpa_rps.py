"""``hpa-rps``: the stock HPA on the request rate, an External metric with an
``AverageValue`` target of ``capacity * target``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from policies.decision import HPA_TOLERANCE
from simulations.engine import TickContext, Timeline, run_ticks
from simulations.hpa import HorizontalController, replicas_from_external
from simulations.strategies.base import RunContext


@dataclass
class HpaRps:
    """The stock HPA on request rate: External metric, ``AverageValue`` per replica."""

    target_pct: int = 70
    name: str = "hpa-rps"

    def make_step(self, ctx: RunContext) -> Callable[[TickContext], int]:
        """The per-tick step (fresh HPA state): what ``run`` drives through the engine."""
        w = ctx.workload
        hpa = HorizontalController(w.min_replicas, w.max_replicas)
        target_milli = max(1, round(w.capacity_rps * self.target_pct / 100.0 * 1000.0))

        def step(t: TickContext) -> int:
            proposal = replicas_from_external(
                t.current_replicas,
                [round(t.demand * 1000.0)],
                "AverageValue",
                target_milli,
                HPA_TOLERANCE,
                ready_pods=len(t.pods.ready),
                status_replicas=t.pods.alive,
            )
            return int(hpa.sync(t.now, t.current_replicas, [proposal]))

        return step

    def run(self, ctx: RunContext) -> Timeline:
        return run_ticks(
            ctx.demand,
            ctx.workload,
            self.name,
            self.make_step(ctx),
            progress=ctx.progress,
            initial=ctx.initial_replicas,
        )
