"""Budget schemas: the ``CostBudget`` spec, and the cost guard's request and result.

Why pydantic models with camelCase aliases and ``extra="forbid"``: the same model
parses a ``CostBudget`` object from the API server, a YAML example under
``policies/examples/`` and a ``REQUEST.json`` for the CLI, and
``autoscaler.kube.crdgen`` turns ``CostBudget`` into the CRD's OpenAPI schema. A
misspelt field must fail loudly (a typo in ``monthlyLimit`` would otherwise mean "no
limit"), so unknown fields are refused. Only plain types are used (float, int, str,
bool, lists, string-keyed dicts, Literals) so that the schema stays structural.

Callers: ``policies.costguard`` (allocation), ``autoscaler.cli.budget`` (files),
``autoscaler.kube.crdgen`` (CRD schema), the controller (CostBudget objects).
``parse_model`` turns pydantic's ``ValidationError`` into our ``InputError`` that
names the field and the fix.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from models.errors import InputError
from policies.prices import (
    Integer,
    Number,
    OptionalNumber,
    PriceOverrides,
    Prices,
    ResourceRequests,
)

#: Must match ``policies.objects`` (policies may not import autoscaler).
API_VERSION = "autoscaling.predictive.io/v1alpha1"
KIND = "CostBudget"

Pacing = Literal["even", "none"]
Mode = Literal["hard", "soft"]
BindingConstraint = Literal["none", "budget", "min", "max"]

#: Kubernetes replica counts are int32.
MAX_REPLICAS = 2**31 - 1

#: Times the month arithmetic can handle: the month after ``now`` must exist.
MIN_YEAR, MAX_YEAR = 1970, 9998


def check_time(value: datetime) -> datetime:
    """``value`` in UTC, if it has a zone and the month after it is a real date.

    ``9999-12-31T23:59:59Z`` parses, but its month has no next month (year 10000), so
    the hours left in it cannot be counted: refuse it here, with the range, rather
    than crash later.
    """
    if value.utcoffset() is None:
        raise ValueError("time has no zone: write it as UTC, e.g. 2026-11-15T12:00:00Z")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise ValueError(
            f"time {value.isoformat()} is out of range: give a time between {MIN_YEAR}"
            f" and {MAX_YEAR} (UTC), e.g. 2026-11-15T12:00:00Z"
        )
    return utc


class _Wire(BaseModel):
    """camelCase on the wire; unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


# --------------------------------------------------------------------------- CostBudget


class EnvironmentSelector(_Wire):
    """Which workloads make up the environment: any listed namespace, or all labels."""

    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces whose workloads belong to the environment."
    )
    match_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Workloads whose namespace or PredictiveAutoscaler has all these labels.",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> EnvironmentSelector:
        if not self.namespaces and not self.match_labels:
            raise ValueError("selects nothing: give namespaces or matchLabels")
        return self

    def matches(self, namespace: str, labels: dict[str, str] | None = None) -> bool:
        if namespace in self.namespaces:
            return True
        if self.match_labels:
            labels = labels or {}
            return all(labels.get(k) == v for k, v in self.match_labels.items())
        return False


class PriorityTier(_Wire):
    """A named priority level and the workloads in it (higher priority is served first)."""

    name: str = Field(min_length=1, description="Tier name, e.g. critical.")
    priority: Integer = Field(description="Higher is served first, up to desired replicas.")
    namespaces: list[str] = Field(default_factory=list, description="Namespaces in this tier.")
    workloads: list[str] = Field(
        default_factory=list, description="namespace/name of PredictiveAutoscalers in this tier."
    )
    match_labels: dict[str, str] = Field(
        default_factory=dict, description="PredictiveAutoscalers with all these labels."
    )


class CostBudget(_Wire):
    """``spec`` of a CostBudget: an environment's money limits, pacing, mode and priorities."""

    environment: str = Field(min_length=1, description="Environment name: dev, staging, prod.")
    selector: EnvironmentSelector = Field(description="Which workloads the budget covers.")
    hourly_limit: OptionalNumber = Field(
        default=None, ge=0, allow_inf_nan=False, description="Most $ per hour; unset = no limit."
    )
    monthly_limit: OptionalNumber = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="Most $ per calendar month (UTC); unset = no limit.",
    )
    pacing: Pacing = Field(
        default="even",
        description=(
            "even: the hourly cap is at most what is left of the month's limit over the"
            " hours left; none: the whole remainder may be spent at once."
        ),
    )
    mode: Mode = Field(
        default="hard",
        description=(
            "hard: the owned HPA's maxReplicas is set to the allocation, never exceeded;"
            " soft: only the served metric is lowered; both keep minReplicas and alert."
        ),
    )
    priority_tiers: list[PriorityTier] = Field(
        default_factory=list, description="Tiers; a workload in several gets the highest."
    )
    default_priority: Integer = Field(default=0, description="Priority of workloads in no tier.")
    alert_thresholds: list[Number] = Field(
        default_factory=lambda: [50.0, 75.0, 90.0],
        description="Alert when spend reaches these % of the monthly limit.",
    )
    prices: PriceOverrides | None = Field(
        default=None, description="Price overrides for this environment (default OpenCost's)."
    )
    node_pools: dict[str, PriceOverrides] = Field(
        default_factory=dict, description="Price overrides per node pool (e.g. spot pools)."
    )

    # Field validators, not one model validator: pydantic skips a model's "after"
    # validator when any field fails, and `budget validate` must list every problem.
    @field_validator("priority_tiers")
    @classmethod
    def _unique_tiers(cls, value: list[PriorityTier]) -> list[PriorityTier]:
        names = [tier.name for tier in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate priority tier names {dupes} (give each tier its own name)")
        return value

    @field_validator("alert_thresholds")
    @classmethod
    def _percentages(cls, value: list[float]) -> list[float]:
        bad = [t for t in value if not (0 < t <= 1000) or not math.isfinite(t)]
        if bad:
            raise ValueError(
                f"alert thresholds {[f'{t:g}' for t in bad]} are not percentages in (0, 1000]"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> CostBudget:
        if self.hourly_limit is None and self.monthly_limit is None:
            raise ValueError("no limit: give hourlyLimit, monthlyLimit or both")
        return self

    def priority_of(self, namespace: str, name: str, labels: dict[str, str] | None = None) -> int:
        """The workload's priority: the highest tier that lists it, else ``defaultPriority``."""
        labels = labels or {}
        best: int | None = None
        for tier in self.priority_tiers:
            hit = (
                namespace in tier.namespaces
                or f"{namespace}/{name}" in tier.workloads
                or (
                    bool(tier.match_labels)
                    and all(labels.get(k) == v for k, v in tier.match_labels.items())
                )
            )
            if hit and (best is None or tier.priority > best):
                best = tier.priority
        return self.default_priority if best is None else best


class ObjectMeta(BaseModel):
    """The metadata of a CostBudget file; other metadata fields are the API server's."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)


class CostBudgetManifest(_Wire):
    """A whole CostBudget object, as written in ``policies/examples/*.yaml``."""

    api_version: Literal["autoscaling.predictive.io/v1alpha1"]
    kind: Literal["CostBudget"]
    metadata: ObjectMeta
    spec: CostBudget


# ------------------------------------------------------------------ REQUEST / RESULT


class BudgetRequest(_Wire):
    """The budget part of a REQUEST.json."""

    hourly_limit: OptionalNumber = Field(default=None, ge=0, allow_inf_nan=False)
    monthly_limit: OptionalNumber = Field(default=None, ge=0, allow_inf_nan=False)
    spent_this_month: Number = Field(default=0.0, ge=0, allow_inf_nan=False)
    now: datetime | None = Field(default=None, description="Unset = the current time.")
    pacing: Pacing = "even"
    mode: Mode = "hard"

    @field_validator("now")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None:
            check_time(value)
        return value


class ForecastRequest(_Wire):
    """A workload's quantile forecast of its load and what one replica serves."""

    capacity_per_replica: Number = Field(gt=0, allow_inf_nan=False)
    quantiles: dict[str, Number] = Field(min_length=1)

    @field_validator("quantiles")
    @classmethod
    def _levels(cls, value: dict[str, float]) -> dict[str, float]:
        points: list[tuple[float, float]] = []
        for key, load in value.items():
            try:
                level = float(key)
            except ValueError:
                raise ValueError(f"quantile level {key!r} is not a number like '0.9'") from None
            if not 0 < level < 1:
                raise ValueError(f"quantile level {key!r} is not between 0 and 1")
            if not math.isfinite(load) or load < 0:
                raise ValueError(f"quantile {key!r} has value {load}: must be finite and >= 0")
            points.append((level, load))
        points.sort()
        for (l0, v0), (l1, v1) in zip(points, points[1:], strict=False):
            # Float noise from a model (520.0 then 519.9999999) is not a crossing.
            if v1 < v0 - 1e-9 * max(1.0, abs(v0)):
                raise ValueError(
                    f"quantiles decrease: {l0:g} -> {v0:g} but {l1:g} -> {v1:g}"
                    " (a higher level must not have a lower value)"
                )
        return value

    def points(self) -> list[tuple[float, float]]:
        """(level, load) sorted by level, loads made non-decreasing (noise removed)."""
        out: list[tuple[float, float]] = []
        for level, load in sorted((float(k), v) for k, v in self.quantiles.items()):
            out.append((level, max(load, out[-1][1]) if out else load))
        return out


class WorkloadRequest(_Wire):
    """One workload of an allocation request."""

    name: str = Field(min_length=1)
    priority: Integer = Field(default=0, ge=-(2**63), le=2**63 - 1)
    min_replicas: Integer = Field(ge=0, le=MAX_REPLICAS)
    max_replicas: Integer = Field(ge=0, le=MAX_REPLICAS)
    desired_replicas: Integer = Field(ge=0, le=MAX_REPLICAS)
    requests: dict[str, str | int | float] = Field(
        description="Kubernetes resource requests of one replica (cpu, memory, nvidia.com/gpu)."
    )
    node_pool: str = Field(
        default="", description="Node pool for prices (a key of nodePools); empty = default."
    )
    spot: bool | None = Field(
        default=None,
        strict=True,
        description=(
            "The workload's capacity type as its node selector requires it: true = spot"
            " rates, false = on-demand rates; unset = as its node pool (or the defaults) say."
        ),
    )
    forecast: ForecastRequest | None = None

    @field_validator("requests")
    @classmethod
    def _quantities(cls, value: dict[str, str | int | float]) -> dict[str, str | int | float]:
        try:
            ResourceRequests.parse(value, "requests")
        except InputError as err:
            raise ValueError(f"{err.where}: {err.problem} ({err.fix})") from None
        return value

    @model_validator(mode="after")
    def _bounds(self) -> WorkloadRequest:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas {self.min_replicas} > maxReplicas {self.max_replicas}"
                " (make minReplicas <= maxReplicas)"
            )
        return self

    def resources(self) -> ResourceRequests:
        # The controller and the simulator ask every sync for the same few request
        # shapes: parse each shape once (the key is hashable, the result immutable).
        return _parse_requests(tuple(sorted((k, _hashable(v)) for k, v in self.requests.items())))


def _hashable(value: str | int | float) -> tuple[str, str | int | float]:
    # 1 and 1.0 and True hash alike: keep the type in the key.
    return (type(value).__name__, value)


@functools.lru_cache(maxsize=4096)
def _parse_requests(
    items: tuple[tuple[str, tuple[str, str | int | float]], ...],
) -> ResourceRequests:
    return ResourceRequests.parse({k: v for k, (_, v) in items}, "requests")


class AllocationRequest(_Wire):
    """REQUEST.json: a budget, optional prices, and the workloads of one environment."""

    budget: BudgetRequest
    prices: Prices | None = None
    node_pools: dict[str, PriceOverrides] = Field(default_factory=dict)
    workloads: list[WorkloadRequest]

    @model_validator(mode="after")
    def _unique(self) -> AllocationRequest:
        names = [w.name for w in self.workloads]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate workload names {dupes} (each name must appear once)")
        for w in self.workloads:
            if w.node_pool and w.node_pool not in self.node_pools:
                raise ValueError(
                    f"workload {w.name!r} names nodePool {w.node_pool!r}, which is not in"
                    f" nodePools (known: {sorted(self.node_pools) or 'none'})"
                )
        return self

    def prices_for(self, workload: WorkloadRequest) -> Prices:
        """Node pool beats the request's prices beats the defaults; then ``spot``."""
        return pool_prices(self.prices, self.node_pools, workload.node_pool, workload.spot)


def pool_prices(
    base: Prices | None,
    node_pools: Mapping[str, PriceOverrides],
    node_pool: str = "",
    spot: bool | None = None,
) -> Prices:
    """The prices of one replica: ``base`` (default OpenCost's), then the node pool's
    overrides, then ``spot`` when the workload's capacity type is known. The one rule the
    cost guard and the budget frontier price with."""
    prices = base or Prices()
    if node_pool:
        prices = node_pools[node_pool].apply(prices)
    if spot is not None and spot != prices.spot:
        prices = prices.model_copy(update={"spot": spot})
    return prices


class WorkloadAllocation(_Wire):
    """One workload of RESULT.json."""

    name: str
    replicas: int
    hourly_cost: float
    binding_constraint: BindingConstraint
    reason: str


class AllocationResult(_Wire):
    """RESULT.json. ``hourlyCap`` is null when the budget sets no limit."""

    hourly_cap: float | None
    hourly_cost: float
    infeasible: bool
    mode: Mode = "hard"
    alerts: list[str] = Field(default_factory=list)
    workloads: list[WorkloadAllocation]


# ----------------------------------------------------------------------- errors

M = TypeVar("M", bound=BaseModel)


def loc_text(loc: tuple[int | str, ...]) -> str:
    """``("workloads", 0, "requests")`` -> ``workloads[0].requests``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = str(part)
    return text


def input_error(err: ValidationError, where: str = "") -> InputError:
    """One ``InputError`` from a ``ValidationError``: the first problem, named by field."""
    errors = err.errors(include_url=False)
    first = _one_error(errors[0], where)
    if len(errors) > 1:
        return InputError(
            first.where, f"{first.problem}; and {len(errors) - 1} more problem(s)", first.fix
        )
    return first


def input_errors(
    err: ValidationError, where: Callable[[tuple[int | str, ...]], str] = lambda loc: ""
) -> list[InputError]:
    """Every problem of a ``ValidationError``, one ``InputError`` each, in order.

    ``where(loc)`` names the place of each (``file:line``), so that each problem can
    carry its own line.
    """
    return [_one_error(e, where(tuple(e["loc"]))) for e in err.errors(include_url=False)]


def _one_error(error: Any, where: str) -> InputError:
    field = loc_text(tuple(error["loc"]))
    place = f"{where}: {field}" if where and field else (where or field)
    kind = error["type"]
    if kind == "extra_forbidden":
        return InputError(
            place, f"unknown field {field.rsplit('.', 1)[-1]!r}", "remove it or fix its spelling"
        )
    if kind == "missing":
        return InputError(place, "required field is missing", "add it")
    message = str(error["msg"]).removeprefix("Value error, ")
    return InputError(place, f"{message} (got {_short(error.get('input'))})", "")


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (more than 4,300 digits)
        return "a number too long to print"
    return text if len(text) <= 60 else text[:57] + "..."


def parse_model(model: type[M], data: Any, where: str = "") -> M:
    """Validate ``data`` as ``model``; bad data is an ``InputError`` naming ``where``."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise input_error(err, where) from None
