"""What one reconcile did: per workload, per environment, and the whole tick.

Immutable records, swapped whole: the API, ``--once``, ``explain`` and the simulator
read them while the loop goes on.

Callers: every module of ``autoscaler.controller``, ``autoscaler.cli.run``, the
simulator's controller adapter (``autoscaler.cli.simworld``).
"""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.controller.learning import KnobInUse
from policies.decision import Decision
from policies.tick import EnvironmentResult

__all__ = ["EnvironmentResult", "ReconcileReport", "WorkloadResult"]


@dataclass(frozen=True)
class WorkloadResult:
    """One workload's outcome of a tick (what is served, recorded and explained)."""

    key: str
    namespace: str
    name: str
    target: str
    mode: str
    environment: str
    decision: Decision
    current_replicas: int
    served: float
    observed_load: float | None
    forecast_load: float | None
    risk_quantile: float
    model: str
    ceiling: int
    hourly_cost: float
    budget_reason: str = ""
    data_error: str = ""
    #: seconds from decision to ready capacity, and load one replica serves at the
    #: target utilisation (the shadow report needs both to score a decision).
    lead_seconds: float = 0.0
    per_replica: float = 0.0
    #: the capacity per replica and lead time in use, and where they came from.
    capacity: KnobInUse | None = None
    lead_time: KnobInUse | None = None


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconcile did; ``--once`` prints it, the benchmark times it."""

    time: float
    duration_seconds: float
    queries: int
    workloads: tuple[WorkloadResult, ...]
    environments: tuple[EnvironmentResult, ...]
    errors: tuple[str, ...] = ()
    leader: bool = False

    def by_key(self) -> dict[str, WorkloadResult]:
        return {w.key: w for w in self.workloads}
