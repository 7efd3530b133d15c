"""The price model: OpenCost defaults, spot prices, overrides per environment and node pool."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from models.errors import InputError
from policies.prices import (
    PriceBook,
    PriceModel,
    PriceOverrides,
    Prices,
    RequestsPriceModel,
    ResourceRequests,
    replica_hourly_price,
)


def test_opencost_defaults() -> None:
    p = Prices()
    assert (p.cpu_per_core_hour, p.memory_per_gib_hour, p.gpu_per_hour) == (
        0.031611,
        0.004237,
        0.95,
    )
    assert (p.spot_cpu_per_core_hour, p.spot_memory_per_gib_hour) == (0.006655, 0.000892)


def test_replica_costs_its_requests_times_prices() -> None:
    r = ResourceRequests.parse({"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": 1})
    # 0.5 * 0.031611 + 1 * 0.004237 + 1 * 0.95, exactly
    assert Prices().replica_hourly_price(r) == Decimal("0.9700425")
    spot = Prices(spot=True).replica_hourly_price(r)
    assert spot == Decimal("0.5") * Decimal("0.006655") + Decimal("0.000892") + Decimal("0.95")


@pytest.mark.parametrize(
    ("requests", "expected"),
    [
        ({"cpu": "100m", "memory": "128Mi"}, 0.003690725),  # event-gateway, discord-bot
        ({"cpu": "500m", "memory": "1Gi"}, 0.0200425),  # refinory-ai
        ({"cpu": "500m", "memory": "512Mi"}, 0.017924),  # jdk-workspace
        ({}, 0.0),
        ({"cpu": "1", "ephemeral-storage": "10Gi"}, 0.031611),  # storage is not priced
        ({"cpu": "1", "hugepages-2Mi": "64Mi"}, 0.031611),
        ({"cpu": "1", "example.com/dongle": "2"}, 0.031611),  # extended, not priced
    ],
    ids=[
        "event-gateway",
        "refinory-ai",
        "jdk-workspace",
        "nothing",
        "storage",
        "hugepages",
        "extended",
    ],
)
def test_simulator_helper(requests: dict[str, object], expected: float) -> None:
    assert replica_hourly_price(requests) == pytest.approx(expected, rel=1e-12)


def test_price_model_protocol() -> None:
    model: PriceModel = RequestsPriceModel(Prices())
    r = ResourceRequests.parse({"cpu": "1", "memory": "1Gi"})
    assert model.hourly_cost(r, 10) == pytest.approx(10 * (0.031611 + 0.004237))
    assert model.hourly_cost(r, 0) == 0.0
    with pytest.raises(ValueError):
        model.hourly_cost(r, -1)


def test_overrides_node_pool_beats_environment_beats_default() -> None:
    book = PriceBook.model_validate(
        {
            "default": {"cpuPerCoreHour": 0.04},
            "environments": {"prod": {"memoryPerGiBHour": 0.01, "cpuPerCoreHour": 0.05}},
            "nodePools": {"spot": {"spot": True, "spotCpuPerCoreHour": 0.002}},
        }
    )
    assert book.prices_for().cpu_per_core_hour == 0.04
    prod = book.prices_for("prod")
    assert (prod.cpu_per_core_hour, prod.memory_per_gib_hour) == (0.05, 0.01)
    spot = book.prices_for("prod", "spot")
    r = ResourceRequests.parse({"cpu": "1", "memory": "1Gi"})
    assert spot.replica_hourly_price(r) == Decimal("0.002") + Decimal("0.000892")
    with pytest.raises(InputError, match="node pool"):
        book.prices_for("prod", "gpu")


def test_override_model_keeps_unset_fields() -> None:
    merged = PriceOverrides(gpu_per_hour=2.0).apply(Prices())
    assert merged.gpu_per_hour == 2.0 and merged.cpu_per_core_hour == 0.031611


@pytest.mark.parametrize(
    "bad",
    [{"cpuPerCoreHour": -1}, {"cpuPerCoreHourr": 1}, {"memoryPerGiBHour": float("inf")}],
    ids=["negative", "unknown", "infinite"],
)
def test_bad_prices_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Prices.model_validate(bad)


def test_unknown_resource_refused() -> None:
    with pytest.raises(InputError, match="unknown resource"):
        ResourceRequests.parse({"cpus": "1"}, "requests")
    with pytest.raises(InputError, match="bad quantity"):
        ResourceRequests.parse({"example.com/dongle": "two"}, "requests")
