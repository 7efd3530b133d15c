"""Unit tests for the cost guard: the cap arithmetic, pacing, tiers, and where replicas go."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from models.errors import InputError
from policies.budget import AllocationRequest, BudgetRequest, ForecastRequest
from policies.costguard import (
    allocate,
    effective_hourly_cap,
    expected_shortfall,
    hours_left_in_month,
    replica_prices,
)

NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
# One "unit" replica: 1 core and no memory at $1 per core-hour, so prices are round.
UNIT = {"cpu": "1"}
PRICES = {"cpuPerCoreHour": 1.0}


def _w(
    name: str, desired: int, *, lo: int = 0, hi: int = 100, prio: int = 0, **kw: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "priority": prio,
        "minReplicas": lo,
        "maxReplicas": hi,
        "desiredReplicas": desired,
        "requests": kw.pop("requests", UNIT),
        **kw,
    }


def _run(hourly: float | None, *workloads: dict[str, Any], **budget: Any) -> dict[str, Any]:
    b: dict[str, Any] = {"now": "2026-11-15T12:00:00Z", **budget}
    if hourly is not None:
        b["hourlyLimit"] = hourly
    request = AllocationRequest.model_validate(
        {"budget": b, "prices": PRICES, "workloads": list(workloads)}
    )
    result = allocate(request)
    return {w.name: (w.replicas, w.binding_constraint) for w in result.workloads} | {
        "_result": result
    }


# ---------------------------------------------------------------------------- the cap


def test_hours_left_in_month() -> None:
    assert hours_left_in_month(NOW) == Decimal(15 * 24 + 12)
    assert hours_left_in_month(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == Decimal("0.5")
    assert hours_left_in_month(datetime(2028, 2, 1, tzinfo=UTC)) == Decimal(29 * 24)  # leap
    assert hours_left_in_month(datetime(2026, 2, 1, tzinfo=UTC)) == Decimal(28 * 24)
    # another zone: 2026-12-01T01:00+02:00 is still November in UTC
    from datetime import timedelta, timezone

    east = datetime(2026, 12, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    assert hours_left_in_month(east) == Decimal(1)


def _cap(**budget: Any) -> Decimal | None:
    b = BudgetRequest.model_validate(budget)
    return effective_hourly_cap(b, NOW).cap


def test_cap_is_the_hourly_limit_when_pacing_allows_more() -> None:
    # (8000 - 3000) / 372 h = 13.44 $/h > 12.5
    assert _cap(hourlyLimit=12.5, monthlyLimit=8000, spentThisMonth=3000) == Decimal("12.5")


def test_cap_is_paced_by_what_is_left_of_the_month() -> None:
    cap = _cap(hourlyLimit=20, monthlyLimit=8000, spentThisMonth=3000)
    assert cap == Decimal(5000) / Decimal(372)


def test_pacing_none_allows_the_whole_remainder() -> None:
    assert _cap(hourlyLimit=20, monthlyLimit=8000, spentThisMonth=7990, pacing="none") == Decimal(
        10
    )


def test_monthly_limit_alone_and_overspent_month() -> None:
    assert _cap(monthlyLimit=372) == Decimal(1)
    assert _cap(monthlyLimit=100, spentThisMonth=150) == Decimal(0)


def test_no_limit_means_no_cap() -> None:
    assert _cap() is None


def test_missing_now_needs_the_callers_clock() -> None:
    request = AllocationRequest.model_validate({"budget": {"hourlyLimit": 1}, "workloads": []})
    with pytest.raises(InputError, match="budget.now"):
        allocate(request)
    assert allocate(request, NOW).hourly_cap == 1.0


# -------------------------------------------------------------------------- allocation


def test_everything_fits() -> None:
    out = _run(12, _w("a", 3), _w("b", 2, lo=4), _w("c", 9, hi=5))
    assert (out["a"], out["b"], out["c"]) == ((3, "none"), (4, "min"), (5, "max"))
    assert out["_result"].hourly_cost == 12.0
    assert not out["_result"].infeasible


def test_infeasible_holds_everything_at_minimum_and_alerts() -> None:
    out = _run(5, _w("a", 10, lo=3, prio=100), _w("b", 1, lo=3))
    assert out["a"] == (3, "budget") and out["b"] == (3, "min")
    result = out["_result"]
    assert result.infeasible and result.hourly_cost == 6.0
    assert result.alerts and "infeasible" in result.alerts[0]
    assert result.alerts[0].startswith("critical")
    assert "infeasible" in result.workloads[0].reason


def test_soft_mode_infeasible_is_a_warning() -> None:
    out = _run(5, _w("a", 10, lo=6), mode="soft")
    assert out["_result"].infeasible and out["_result"].alerts[0].startswith("warning")


def test_higher_tier_first_lower_tier_gets_the_leftover() -> None:
    out = _run(10, _w("low", 10, prio=1), _w("high", 7, prio=100), _w("mid", 2, prio=50))
    assert out["high"] == (7, "none")
    assert out["mid"] == (2, "none")
    assert out["low"] == (1, "budget")


def test_money_too_small_for_a_higher_tier_replica_goes_lower() -> None:
    big = {"cpu": "3"}  # $3 per replica
    out = _run(10, _w("high", 5, prio=100, requests=big), _w("low", 5, prio=0))
    # high: 3 replicas = $9; the $1 left cannot buy a 4th, but buys one low replica.
    assert out["high"] == (3, "budget") and out["low"] == (1, "budget")
    assert out["_result"].hourly_cost == 10.0
    reason = out["_result"].workloads[0].reason
    assert "next replica costs $3.00/h but only $1.00/h" in reason


def test_minimums_are_kept_before_any_tier_grows() -> None:
    out = _run(6, _w("high", 10, prio=100), _w("low", 5, lo=2, prio=0))
    assert out["low"][0] == 2 and out["high"] == (4, "budget")


def test_no_forecast_fair_share_of_the_gap() -> None:
    # Same price, gaps of 10 and 20 replicas, money for 15: shared in proportion.
    out = _run(15, _w("a", 10), _w("b", 20))
    assert (out["a"][0], out["b"][0]) == (5, 10)


def _fc(load: float, spread: float = 0.0) -> dict[str, Any]:
    return {
        "capacityPerReplica": 10,
        "quantiles": {"0.5": load, "0.9": load + spread, "0.99": load + 2 * spread},
    }


def test_forecast_replicas_go_where_the_shortfall_is() -> None:
    # Both want 20; "busy" needs ~12 (load 120/s), "idle" needs ~2 (20/s). Money for 14.
    out = _run(14, _w("busy", 20, forecast=_fc(120)), _w("idle", 20, forecast=_fc(20)))
    assert out["busy"][0] == 12 and out["idle"][0] == 2
    assert out["busy"][1] == out["idle"][1] == "budget"


def test_value_is_per_dollar() -> None:
    # Same shortfall, but "dear" costs 4x as much per replica: "cheap" is served first.
    dear = {"cpu": "4"}
    out = _run(
        8, _w("cheap", 10, forecast=_fc(100)), _w("dear", 10, forecast=_fc(100), requests=dear)
    )
    assert out["cheap"][0] == 8 and out["dear"][0] == 0


def test_ties_are_broken_by_name() -> None:
    out = _run(3, _w("b", 5), _w("a", 5))
    assert (out["a"][0], out["b"][0]) == (2, 1)
    again = _run(3, _w("a", 5), _w("b", 5))
    assert (again["a"][0], again["b"][0]) == (2, 1)


def test_free_workloads_get_what_they_want() -> None:
    out = _run(0, _w("free", 7, requests={}), _w("paid", 3))
    assert out["free"] == (7, "none") and out["paid"] == (0, "budget")


def test_never_beyond_desired_even_with_money_left() -> None:
    out = _run(1000, _w("a", 3))
    assert out["a"] == (3, "none") and out["_result"].hourly_cost == 3.0


def test_exact_fit_at_the_cap() -> None:
    # Decimal money: 0.1 + 0.2 == 0.3 exactly, so three $0.1 replicas fit a $0.3 cap.
    out = _run(0.3, _w("a", 5, requests={"cpu": "100m"}))
    assert out["a"][0] == 3


def test_replica_prices_match_results() -> None:
    request = AllocationRequest.model_validate(
        {
            "budget": {"hourlyLimit": 1, "now": "2026-11-15T12:00:00Z"},
            "workloads": [_w("a", 2, requests={"cpu": "500m", "memory": "1Gi"})],
        }
    )
    assert replica_prices(request) == {"a": Decimal("0.0200425")}
    assert allocate(request).workloads[0].hourly_cost == 2 * 0.0200425


# -------------------------------------------------------------------- shortfall model


def test_expected_shortfall_from_quantiles() -> None:
    f = ForecastRequest.model_validate({"capacityPerReplica": 10, "quantiles": {"0.5": 100}})
    # A single quantile is a point mass at 10 replicas.
    assert expected_shortfall(f, 0) == pytest.approx(10)
    assert expected_shortfall(f, 4) == pytest.approx(6)
    assert expected_shortfall(f, 10) == 0
    g = ForecastRequest.model_validate(
        {"capacityPerReplica": 1, "quantiles": {"0.5": 0, "0.75": 10}}
    )
    # Q(u) = 0 below 0.5, rises linearly 0 -> 10 on [0.5, 0.75], then on to 20 at u = 1:
    # E[D] = area = 0.25 * 5 + 0.25 * 15 = 5.
    assert expected_shortfall(g, 0) == pytest.approx(5)
    assert expected_shortfall(g, 20) == 0
    values = [expected_shortfall(g, n) for n in range(22)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))  # decreasing
    steps = [a - b for a, b in zip(values, values[1:], strict=False)]
    assert all(
        a >= b - 1e-12 for a, b in zip(steps, steps[1:], strict=False)
    )  # convex: gains shrink


def test_node_pool_prices_in_a_request() -> None:
    # Spot prices make refinory-ai 4.75x cheaper per replica, so the same cap buys more.
    base: dict[str, Any] = {
        "budget": {"hourlyLimit": 0.1, "now": "2026-11-15T12:00:00Z"},
        "nodePools": {"spot": {"spot": True}},
        "workloads": [
            _w("on-demand", 50, requests={"cpu": "500m", "memory": "1Gi"}),
            _w("spot", 50, requests={"cpu": "500m", "memory": "1Gi"}, nodePool="spot", prio=1),
        ],
    }
    result = allocate(AllocationRequest.model_validate(base))
    spot, on_demand = result.workloads[1], result.workloads[0]
    # The spot workload (higher priority) takes the whole cap at $0.0042195 a replica.
    assert spot.replicas == int(Decimal("0.1") / Decimal("0.0042195"))
    assert spot.hourly_cost == float(Decimal("0.0042195") * spot.replicas)
    assert on_demand.replicas == 0


def test_unknown_node_pool_is_refused() -> None:
    with pytest.raises(InputError, match="nodePool 'gpu'"):
        from policies.budget import parse_model

        parse_model(
            AllocationRequest,
            {"budget": {}, "workloads": [_w("a", 1, nodePool="gpu")]},
            "REQUEST.json",
        )
