"""What every strategy gets (``RunContext``) and gives back (a ``Timeline``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from policies.budget import BudgetRequest
from policies.objects import Budget, PredictiveAutoscaler
from simulations.engine import Demand, Timeline
from simulations.workloads import Workload
from simulations.world import ControllerFactory, Outage


@dataclass(frozen=True)
class UserObjects:
    """A user's own objects to replay (``simulate --objects``): one autoscaler, its
    budgets, and one replica's requests read from its Deployment or StatefulSet."""

    autoscaler: PredictiveAutoscaler
    budgets: tuple[Budget, ...]
    requests: dict[str, str]
    #: the target's ``spec.replicas``: what runs when the replay starts.
    replicas: int | None = None


@dataclass
class RunContext:
    """Everything a strategy run needs: the demand, the workload and the scoring rule."""

    demand: Demand
    workload: Workload
    #: the share of capacity at which a pod still meets the SLO; "under-provisioned"
    #: means demand > Ready pods x capacity x this.
    slo_utilization: float = 0.85
    #: the scenario's budget; only ``predictive`` applies it (the stock HPA cannot).
    budget: BudgetRequest | None = None
    progress: Callable[[int], None] | None = None
    #: builds the controller that ``predictive`` runs (``autoscaler.cli.simworld``).
    controller: ControllerFactory | None = None
    #: metrics outages to replay (``predictive``'s source fails; demand goes on).
    outages: Sequence[Outage] = field(default_factory=tuple)
    #: the user's own objects, instead of ones made from the workload and scenario.
    objects: UserObjects | None = None

    @property
    def initial_replicas(self) -> int | None:
        """Replicas running when the replay starts: the user's target's, else None
        (the engine's default, enough for the first demand at 70 %)."""
        return None if self.objects is None else self.objects.replicas


class Strategy(Protocol):
    """A scaling strategy: runs a whole replay and returns its timeline."""

    name: str

    def run(self, ctx: RunContext) -> Timeline: ...
