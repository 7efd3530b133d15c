"""``hpa-cpu``: the stock HPA on CPU utilisation (default target 70 %).

Ready pods report CPU usage equal to their share of the served demand over their
capacity, capped at their CPU limit; starting pods report none.
``simulations.hpa.calculator.replicas_from_cpu`` applies the HPA's readiness and
missing-metric rules to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from policies.decision import HPA_TOLERANCE
from simulations.engine import TickContext, Timeline, run_ticks
from simulations.hpa import HorizontalController, MetricUnavailable, PodInfo, replicas_from_cpu
from simulations.strategies.base import RunContext


def _pod_infos(ctx: TickContext, request: int, usage: int) -> list[PodInfo]:
    """What the metrics pipeline shows the HPA: every pod with its CPU sample."""
    pods = ctx.pods
    infos = [
        PodInfo(p.name, "Running", True, p.created, p.ready_at, False, request, usage)
        for p in pods.ready
    ]
    # A starting pod has had Ready=False since its start: the HPA counts it as unready
    # (first 5 minutes) or as never-ready (after), never as load.
    infos.extend(
        PodInfo(p.name, "Running", False, p.created, p.created, False, request, 0)
        for p in pods.starting
    )
    return infos


#: Seconds after its creation from which a Ready pod's CPU sample always counts: the
#: HPA's CPU initialisation period (300 s) plus a margin of four metric windows.
_SETTLED_SECONDS = 300.0 + 60.0


@dataclass
class HpaCpu:
    """The stock HPA on CPU utilisation (no ``behavior``: the legacy default path).

    Ready pods split the demand evenly; a pod uses its CPU request at ``capacity_rps``
    and can burst up to its limit. When every pod is Ready and past the HPA's CPU
    initialisation period, the replica calculation depends only on (current replicas,
    pod count, usage), so its result is memoised on those: the same call, made once.
    """

    target_pct: int = 70
    name: str = "hpa-cpu"
    #: memoise the replica calculation where it is a pure function (see above).
    memoize: bool = True

    def make_step(self, ctx: RunContext) -> Callable[[TickContext], int]:
        """The per-tick step (fresh HPA state): what ``run`` drives through the engine."""
        w = ctx.workload
        hpa = HorizontalController(w.min_replicas, w.max_replicas)
        request, limit, capacity = w.request_milli_cpu, w.limit_milli_cpu, w.capacity_rps
        memo: dict[tuple[int, int, int], int | None] = {}

        cached: tuple[tuple[int, int], list[PodInfo]] = ((-1, -1), [])

        def infos_for(t: TickContext, usage: int) -> list[PodInfo]:
            # PodInfo only changes with the pods or their usage; rebuild only then.
            nonlocal cached
            key = (t.pods.version, usage)
            if cached[0] != key:
                cached = (key, _pod_infos(t, request, usage))
            return cached[1]

        def proposal_for(t: TickContext, usage: int) -> int | None:
            try:
                return replicas_from_cpu(
                    t.current_replicas,
                    infos_for(t, usage),
                    self.target_pct,
                    t.now,
                    HPA_TOLERANCE,
                )
            except MetricUnavailable:
                # No usable sample (every pod unready): the HPA skips scaling this sync.
                return None

        def step(t: TickContext) -> int:
            pods = t.pods
            n = len(pods.ready)
            per_pod = t.demand / n if n else 0.0
            usage = int(min(request * per_pod / capacity, limit))
            if not self.memoize or pods.starting or t.now - pods.newest_created < _SETTLED_SECONDS:
                proposal = proposal_for(t, usage)
            else:
                key = (t.current_replicas, n, usage)
                if key not in memo:
                    memo[key] = proposal_for(t, usage)
                proposal = memo[key]
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
