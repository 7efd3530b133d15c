"""The controller: the reconcile loop and what it keeps, writes and explains.

| module | job |
|---|---|
| ``loop`` | ``Controller``: one reconcile per sync, deciding through ``plan_tick`` |
| ``history`` | batched history queries, the first-tick backfill and older pages |
| ``workload`` | what is kept per PredictiveAutoscaler between ticks |
| ``writer`` | owned HPAs, statuses, Events: leader-only, skip-if-unchanged |
| ``results`` | immutable per-tick records (``WorkloadResult``, ``ReconcileReport``) |
| ``shadow`` | ForecastOnly records and their scoring (``autoscaler report``) |
| ``explain`` | ``autoscaler explain``'s text |
"""

from autoscaler.controller.explain import explain_text
from autoscaler.controller.loop import Controller
from autoscaler.controller.results import EnvironmentResult, ReconcileReport, WorkloadResult
from autoscaler.controller.shadow import ShadowSummary, read_shadow, shadow_report
from autoscaler.controller.workload import Workload, scaling_spec
from policies.tick import NO_BUDGET

__all__ = [
    "NO_BUDGET",
    "Controller",
    "EnvironmentResult",
    "ReconcileReport",
    "ShadowSummary",
    "Workload",
    "WorkloadResult",
    "explain_text",
    "read_shadow",
    "scaling_spec",
    "shadow_report",
]
