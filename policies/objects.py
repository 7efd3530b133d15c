"""The ``PredictiveAutoscaler`` custom resource as typed pydantic models.

These models are the single source of truth for the CRD: ``autoscaler.kube.crdgen``
generates the OpenAPI schemas in ``deploy/base/crds/`` from them, and the controller
parses every object it reads from the API server through them, so that a field that
the schema accepts is a field the controller understands. Field names are Python
snake_case; on the wire they are Kubernetes camelCase (``alias_generator``).

Callers: ``autoscaler.controller`` (parse specs, build statuses), ``autoscaler.kube.crdgen``.
The ``CostBudget`` spec lives in ``policies.budget`` (the cost guard owns it); only
its status is defined here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, model_validator

from models.errors import validation_input_error
from policies.budget import CostBudget
from policies.knobs import KubeModel, ScalingKnobs
from policies.nodepools import NodePool

GROUP = "autoscaling.predictive.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PA_KIND = "PredictiveAutoscaler"
PA_PLURAL = "predictiveautoscalers"
CB_KIND = "CostBudget"
CB_PLURAL = "costbudgets"

Mode = Literal["Active", "ForecastOnly"]
FallbackMode = Literal["CurrentReplicas", "Static", "Reactive"]


class TargetRef(KubeModel):
    """The scaled workload (what the owned HPA's ``scaleTargetRef`` points at)."""

    api_version: str = Field(default="apps/v1", description="API version of the target.")
    kind: str = Field(default="Deployment", description="Kind of the target.")
    name: str = Field(min_length=1, description="Name of the target, in the PA's namespace.")


class FallbackSpec(KubeModel):
    """What to do when load data is missing. Never a scale-down because of missing data."""

    hold_seconds: float = Field(
        default=300.0,
        ge=0,
        description=(
            "Seconds to hold the last decision after data goes missing before the fallback"
            " mode applies. 300 s covers a Prometheus restart or a short scrape outage."
        ),
    )
    mode: FallbackMode = Field(
        default="CurrentReplicas",
        description=(
            "After holdSeconds: CurrentReplicas keeps what runs now; Static serves"
            " max(staticReplicas, current); Reactive forecasts with the last-value model"
            " on the history that is left. None of them ever serves fewer than current."
        ),
    )
    static_replicas: int = Field(
        default=0, ge=0, description="Replicas for mode Static (0 = same as CurrentReplicas)."
    )
    confirm_seconds: float = Field(
        default=180.0,
        ge=0,
        le=3600,
        description=(
            "Seconds a suspicious fall in load must last before it lowers replicas: a"
            " fall that comes with fewer series behind the sum (pods no longer scraped:"
            " partial data) is held as missing data, and a sudden drop far below the"
            " forecast's lower tail holds the replicas, until it has lasted this long."
            " Real drops still scale down, this much later (0 = at once)."
        ),
    )


class PredictiveAutoscalerSpec(ScalingKnobs):
    """``spec`` of a PredictiveAutoscaler: the scaling knobs (``policies.knobs``) and
    what the controller needs besides."""

    target_ref: TargetRef = Field(description="The workload to scale.")
    query: str = Field(
        min_length=1,
        description=(
            "PromQL for the load as a rate per second, with namespace and workload labels"
            " (e.g. rate(http_requests_total[2m])); the controller sums it by (namespace,"
            " workload) and fetches autoscalers with the same query in one query_range."
        ),
    )
    mode: Mode = Field(
        default="Active",
        description="Active serves the decision; ForecastOnly only records it (shadow mode).",
    )
    fallback: FallbackSpec = Field(
        default_factory=FallbackSpec, description="Behaviour when load data is missing."
    )
    priority: int = Field(
        default=0, description="Cost-guard priority: higher keeps replicas longer when clamped."
    )
    node_pool: str = Field(
        default="",
        max_length=63,
        description=(
            "A key of the CostBudget's nodePools whose prices (spot included) apply to"
            " this workload; empty = read from the target's pod template (nodeSelector,"
            " required node affinity). A name the budget does not list is a warning."
        ),
    )
    budget_ref: str = Field(
        default="",
        description=(
            "Name of the CostBudget (its environment) this workload is charged to;"
            " empty = the CostBudget whose namespaces include this one, if any."
        ),
    )

    @model_validator(mode="after")
    def _bounds(self) -> PredictiveAutoscalerSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


class Condition(KubeModel):
    """A Kubernetes-style status condition."""

    type: str = Field(description="Condition type, e.g. Ready, Fallback, Clamped.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase machine-readable reason.")
    message: str = Field(default="", description="Human-readable details.")
    last_transition_time: str = Field(
        default="", description="RFC 3339 time the status last changed."
    )


class ValueInUse(KubeModel):
    """A value the controller decides with, and where it came from."""

    value: float = Field(default=0.0, description="The value in use (0 while there is none).")
    source: Literal["spec", "learnt", "default", "none"] = Field(
        default="none",
        description=(
            "spec: set by the user; learnt: calibrated by the controller from the"
            " cluster's metrics; default: neither yet (lead time only); none: not known"
            " yet (capacity only: the workload holds its replicas)."
        ),
    )
    low: float | None = Field(
        default=None, description="Lower bound of a learnt value's interval (95 %)."
    )
    high: float | None = Field(
        default=None, description="Upper bound of a learnt value's interval (95 %)."
    )
    detail: str = Field(default="", description="How it was learnt, or why not yet.")


class PredictiveAutoscalerStatus(KubeModel):
    """``status`` of a PredictiveAutoscaler: the last decision and its forecast."""

    observed_generation: int = Field(default=0, description="metadata.generation last acted on.")
    last_decision_time: str = Field(default="", description="RFC 3339 time of the last decision.")
    current_replicas: int = Field(default=0, description="Replicas running at the last decision.")
    desired_replicas: int = Field(
        default=0, description="Replicas the forecast asks for, before clamps."
    )
    replicas: int = Field(default=0, description="Replicas after min/max and the cost guard.")
    served_value: float = Field(
        default=0.0, description="External metric value served (0 in ForecastOnly mode)."
    )
    forecast_load: float = Field(
        default=0.0, description="Forecast peak load at the risk quantile, per second."
    )
    risk_quantile: float = Field(default=0.0, description="The quantile of forecastLoad.")
    forecaster: str = Field(default="", description="Model that produced the forecast.")
    binding_constraint: str = Field(
        default="none", description="none, min, max or budget: what set the replica count."
    )
    reason: str = Field(default="", description="Why: the decision's reasons in one line.")
    fallback_active: bool = Field(default=False, description="True while data is missing.")
    budget_ceiling: int = Field(
        default=0, description="Replicas the budget allows (the owned HPA's maxReplicas)."
    )
    capacity_per_replica: ValueInUse | None = Field(
        default=None, description="The capacity per replica in use and where it came from."
    )
    lead_time_seconds: ValueInUse | None = Field(
        default=None, description="The lead time in use and where it came from."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Fallback.")


class CostBudgetStatus(KubeModel):
    """``status`` of a CostBudget: spend so far (from the persisted ledger) and projection."""

    spend_dollars: float = Field(default=0.0, description="Spend this month so far, in dollars.")
    projection_dollars: float = Field(
        default=0.0, description="Spend projected to the end of the month, in dollars."
    )
    hourly_cost_dollars: float = Field(
        default=0.0, description="Cost per hour of the replicas decided now, in dollars."
    )
    infeasible: bool = Field(
        default=False, description="True when even minimum replicas exceed the budget."
    )
    clamped_workloads: list[str] = Field(
        default_factory=list, description="namespace/name of workloads the guard clamped."
    )
    last_update_time: str = Field(default="", description="RFC 3339 time of the last update.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, OverBudget.")


class ObjectMeta(KubeModel):
    """The parts of ``metadata`` the controller uses."""

    name: str
    namespace: str = ""
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)


class PredictiveAutoscaler(KubeModel):
    """A whole PredictiveAutoscaler object as read from the API server."""

    metadata: ObjectMeta
    spec: PredictiveAutoscalerSpec
    status: PredictiveAutoscalerStatus = Field(default_factory=PredictiveAutoscalerStatus)

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> PredictiveAutoscaler:
        """Parse an API object; a bad spec is an ``InputError`` naming the object and field."""
        from pydantic import ValidationError

        meta = obj.get("metadata", {})
        where = f"{PA_KIND} {meta.get('namespace', '')}/{meta.get('name', '?')}"
        try:
            return cls.model_validate(obj)
        except ValidationError as err:
            raise validation_input_error(err, where, "fix the object with kubectl edit pa") from err


@dataclass(frozen=True)
class TargetInfo:
    """What the controller reads from a scaled workload."""

    #: replicas running (status.replicas; spec.replicas if there is no status yet).
    replicas: int
    #: one replica's resource requests (summed over its containers), for pricing.
    requests: Mapping[str, str]
    #: replicas Ready (status.readyReplicas, 0 when the status omits it); None when the
    #: object has no status yet. The adaptive price of a miss counts misses against it.
    ready: int | None = None
    #: the node pool its pod template requires (nodeSelector, required node affinity):
    #: its name and whether it is spot, for pricing (``policies.nodepools``).
    node_pool: NodePool = field(default_factory=NodePool)


@dataclass(frozen=True)
class Budget:
    """A CostBudget: its name (the environment's object) and its parsed spec."""

    name: str
    spec: CostBudget
    labels: Mapping[str, str] = field(default_factory=dict)
    #: the status as last written (spend survives a restart through it too).
    status: Mapping[str, Any] = field(default_factory=dict)
