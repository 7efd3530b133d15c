"""What a replica costs per hour: its resource *requests* times per-unit prices.

Why requests and not usage: the scheduler reserves requests on a node whether or not
the pod uses them, so requests are what a replica takes from the cluster's bill. This
is also OpenCost's allocation rule (max of request and usage; our pods are sized so
that requests dominate). Default prices are OpenCost's ``default.json``: $0.031611 per
vCPU-hour, $0.004237 per GiB-hour, $0.95 per GPU-hour, with its spot prices
($0.006655 per vCPU-hour, $0.000892 per GiB-hour). OpenCost ships no spot GPU price,
so spot GPUs default to the on-demand price (no discount assumed) until overridden.

Every figure can be overridden per environment and per node pool (``PriceBook``):
node pool beats environment beats default, field by field.

Callers: ``policies.costguard`` (per-replica price for the allocation),
``policies.ledger`` (spend), ``simulations`` (``replica_hourly_price``), the CLI.
All money is ``decimal.Decimal`` inside, so that sums compare exactly with a cap.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from models.errors import InputError
from policies.quantity import cpu_cores, memory_gib, parse_quantity

#: Resource names we price. ``nvidia.com/gpu``-style extended resources count as GPUs.
CPU = "cpu"
MEMORY = "memory"
GPU_KEYS = ("gpu", "nvidia.com/gpu", "amd.com/gpu")

#: Ephemeral storage and friends are not priced (OpenCost prices volumes separately).
_UNPRICED = ("ephemeral-storage", "hugepages-")


def strict_number(value: object) -> object:
    """A JSON/YAML number as it was written; anything else is refused.

    Pydantic's lax floats take ``true`` (YAML's ``yes``) as 1 and ``'500'`` as 500, so
    ``monthlyLimit: yes`` became a $1 limit. Money and other amounts must be numbers:
    int, float or Decimal, finite, and small enough to be a float. ``None`` passes
    (optional fields); the field's own type then decides.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(
            "expected a number, not a boolean (YAML reads yes, no, on, off, true and false"
            " as booleans): write the amount as a number, e.g. 500"
        )
    if isinstance(value, str):
        raise ValueError("expected a number, not a string: write it without quotes, e.g. 500")
    if not isinstance(value, numbers.Real | Decimal):  # numbers.Real: numpy's too
        raise ValueError(f"expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("the number is too large (give an amount below 1e300)") from None
    if not math.isfinite(number):
        raise ValueError(f"the number {value} is not finite")
    return value


def strict_integer(value: object) -> object:
    """A whole number as written; ``true`` and ``'3'`` are refused (numpy ints pass)."""
    if isinstance(value, bool):
        raise ValueError("expected a whole number, not a boolean: write it as a number, e.g. 3")
    if isinstance(value, str):
        raise ValueError("expected a whole number, not a string: write it without quotes")
    if isinstance(value, numbers.Integral):
        return int(value)
    return value  # floats and the rest: pydantic's int rules decide (3.0 is 3, 3.5 fails)


#: A number field that refuses booleans and strings (``yes``, ``true``, ``'500'``).
#: The JSON schema (and so the CRD) is unchanged: ``number``.
Number = Annotated[float, BeforeValidator(strict_number)]
OptionalNumber = Annotated[float | None, BeforeValidator(strict_number)]
#: A whole number that refuses booleans and strings. JSON schema: ``integer``.
Integer = Annotated[int, BeforeValidator(strict_integer)]


def money(value: float) -> Decimal:
    """A dollar amount from JSON (a float) as the exact decimal the user wrote."""
    return Decimal(repr(float(value)))


@dataclass(frozen=True)
class ResourceRequests:
    """One replica's requests in pricing units: cores, GiB, GPUs (exact)."""

    cpu_cores: Decimal = Decimal(0)
    memory_gib: Decimal = Decimal(0)
    gpus: Decimal = Decimal(0)

    @classmethod
    def parse(cls, requests: Mapping[str, object], where: str = "requests") -> ResourceRequests:
        """From a Kubernetes ``resources.requests`` mapping (``{"cpu": "500m", ...}``)."""
        cpu = Decimal(0)
        mem = Decimal(0)
        gpus = Decimal(0)
        for key, value in requests.items():
            field = f"{where}.{key}"
            if key == CPU:
                cpu = cpu_cores(value, field)
            elif key == MEMORY:
                mem = memory_gib(value, field)
            elif key in GPU_KEYS:
                gpus += parse_quantity(value, field)
            elif key.startswith(_UNPRICED) or "/" in key:
                # Storage, hugepages and domain-prefixed extended resources (a device
                # plugin's "vendor.com/dongle") are real but have no price here; they
                # must still be valid quantities.
                parse_quantity(value, field)
            else:
                # A bare unknown name is a typo ("cpus"), which would silently cost $0.
                raise InputError(
                    field,
                    f"unknown resource {key!r}",
                    "use cpu, memory, nvidia.com/gpu (storage and vendor.com/x are not priced)",
                )
        return cls(cpu_cores=cpu, memory_gib=mem, gpus=gpus)


class _Wire(BaseModel):
    """camelCase on the wire, unknown fields refused (a typo must not silently cost $0)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Prices(_Wire):
    """Per-unit hourly prices in dollars; defaults are OpenCost's ``default.json``."""

    cpu_per_core_hour: Number = Field(
        default=0.031611, ge=0, allow_inf_nan=False, description="$ per vCPU-hour (on demand)."
    )
    memory_per_gib_hour: Number = Field(
        default=0.004237,
        alias="memoryPerGiBHour",
        ge=0,
        allow_inf_nan=False,
        description="$ per GiB-hour (on demand).",
    )
    gpu_per_hour: Number = Field(
        default=0.95, ge=0, allow_inf_nan=False, description="$ per GPU-hour (on demand)."
    )
    spot_cpu_per_core_hour: Number = Field(
        default=0.006655, ge=0, allow_inf_nan=False, description="$ per vCPU-hour on spot nodes."
    )
    spot_memory_per_gib_hour: Number = Field(
        default=0.000892,
        alias="spotMemoryPerGiBHour",
        ge=0,
        allow_inf_nan=False,
        description="$ per GiB-hour on spot nodes.",
    )
    spot_gpu_per_hour: OptionalNumber = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="$ per GPU-hour on spot nodes; unset = the on-demand GPU price.",
    )
    spot: bool = Field(
        default=False, description="Price at the spot rates (a node pool of spot nodes)."
    )

    def replica_hourly_price(self, requests: ResourceRequests) -> Decimal:
        """Exact $ per hour of one replica with these requests."""
        if self.spot:
            gpu = self.gpu_per_hour if self.spot_gpu_per_hour is None else self.spot_gpu_per_hour
            cpu, mem = self.spot_cpu_per_core_hour, self.spot_memory_per_gib_hour
        else:
            gpu, cpu, mem = self.gpu_per_hour, self.cpu_per_core_hour, self.memory_per_gib_hour
        return (
            requests.cpu_cores * money(cpu)
            + requests.memory_gib * money(mem)
            + requests.gpus * money(gpu)
        )


class PriceOverrides(_Wire):
    """Some of the ``Prices`` fields; the rest come from the level below."""

    cpu_per_core_hour: OptionalNumber = Field(default=None, ge=0, allow_inf_nan=False)
    memory_per_gib_hour: OptionalNumber = Field(
        default=None, alias="memoryPerGiBHour", ge=0, allow_inf_nan=False
    )
    gpu_per_hour: OptionalNumber = Field(default=None, ge=0, allow_inf_nan=False)
    spot_cpu_per_core_hour: OptionalNumber = Field(default=None, ge=0, allow_inf_nan=False)
    spot_memory_per_gib_hour: OptionalNumber = Field(
        default=None, alias="spotMemoryPerGiBHour", ge=0, allow_inf_nan=False
    )
    spot_gpu_per_hour: OptionalNumber = Field(default=None, ge=0, allow_inf_nan=False)
    spot: bool | None = Field(default=None, description="Price this pool at spot rates.")

    def apply(self, base: Prices) -> Prices:
        """``base`` with every field set here replaced."""
        return base.model_copy(update=self.model_dump(exclude_none=True))


class PriceBook(_Wire):
    """Default prices, with overrides per environment and per node pool."""

    default: Prices = Field(default_factory=Prices)
    environments: dict[str, PriceOverrides] = Field(default_factory=dict)
    node_pools: dict[str, PriceOverrides] = Field(default_factory=dict)

    def prices_for(self, environment: str = "", node_pool: str = "") -> Prices:
        """Node pool beats environment beats default, field by field."""
        prices = self.default
        if environment in self.environments:
            prices = self.environments[environment].apply(prices)
        if node_pool:
            if node_pool not in self.node_pools:
                raise InputError(
                    f"nodePool {node_pool!r}",
                    "no prices for this node pool",
                    f"add it under nodePools (known: {sorted(self.node_pools) or 'none'})",
                )
            prices = self.node_pools[node_pool].apply(prices)
        return prices


class PriceModel(Protocol):
    """What the cost guard and the simulator need from a price model."""

    def hourly_cost(self, resources: ResourceRequests, replicas: int) -> float:
        """$ per hour of ``replicas`` replicas with these requests."""
        ...


@dataclass(frozen=True)
class RequestsPriceModel:
    """The ``PriceModel``: a replica costs its requests times ``prices``."""

    prices: Prices

    def replica_price(self, resources: ResourceRequests) -> Decimal:
        return self.prices.replica_hourly_price(resources)

    def hourly_cost(self, resources: ResourceRequests, replicas: int) -> float:
        if replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {replicas}")
        return float(self.replica_price(resources) * replicas)


def replica_hourly_price(
    requests: Mapping[str, object], prices: Prices | None = None, where: str = "requests"
) -> float:
    """$ per hour of one replica with these Kubernetes requests: the simulator's helper.

    ``replica_hourly_price({"cpu": "500m", "memory": "1Gi"})`` is 0.0200425 at
    OpenCost's default prices.
    """
    resources = ResourceRequests.parse(requests, where)
    return float((prices or Prices()).replica_hourly_price(resources))
