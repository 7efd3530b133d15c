"""Schemas: bad input gets one clear InputError (one test per class), examples validate."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.errors import InputError
from policies.budget import (
    AllocationRequest,
    CostBudget,
    CostBudgetManifest,
    parse_model,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"

GOOD: dict[str, Any] = {
    "budget": {
        "hourlyLimit": 12.5,
        "monthlyLimit": 8000,
        "spentThisMonth": 3000,
        "now": "2026-11-15T12:00:00Z",
        "pacing": "even",
        "mode": "hard",
    },
    "prices": {"cpuPerCoreHour": 0.031611, "memoryPerGiBHour": 0.004237},
    "workloads": [
        {
            "name": "prod/refinory-ai",
            "priority": 100,
            "minReplicas": 2,
            "maxReplicas": 50,
            "desiredReplicas": 30,
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "forecast": {
                "capacityPerReplica": 20,
                "quantiles": {"0.5": 400, "0.9": 520, "0.99": 610},
            },
        }
    ],
}


def _bad(edit: Any) -> InputError:
    data = copy.deepcopy(GOOD)
    edit(data)
    with pytest.raises(InputError) as err:
        parse_model(AllocationRequest, data, "REQUEST.json")
    assert str(err.value).startswith("REQUEST.json: ")
    return err.value


def test_the_issue_example_parses() -> None:
    request = parse_model(AllocationRequest, GOOD)
    assert request.workloads[0].forecast is not None
    assert request.prices is not None and request.prices.memory_per_gib_hour == 0.004237


def test_optional_fields_may_be_missing() -> None:
    data = copy.deepcopy(GOOD)
    data["budget"] = {}
    del data["prices"]
    del data["workloads"][0]["forecast"]
    request = parse_model(AllocationRequest, data)
    assert request.budget.now is None and request.budget.hourly_limit is None


def test_unknown_field() -> None:
    err = _bad(lambda d: d["workloads"][0].update(desiredReplica=3))
    assert err.where == "REQUEST.json: workloads[0].desiredReplica"
    assert "unknown field 'desiredReplica'" in err.problem


def test_unknown_field_in_budget() -> None:
    err = _bad(lambda d: d["budget"].update(hourlyLimt=3))
    assert "budget.hourlyLimt" in err.where


def test_negative_money() -> None:
    err = _bad(lambda d: d["budget"].update(monthlyLimit=-5))
    assert err.where.endswith("budget.monthlyLimit")
    assert "greater than or equal to 0" in err.problem and "-5" in err.problem


def test_bad_quantity() -> None:
    err = _bad(lambda d: d["workloads"][0]["requests"].update(memory="1GB"))
    assert err.where.endswith("workloads[0].requests")
    assert "requests.memory" in err.problem and "'1GB'" in err.problem


def test_min_above_max() -> None:
    err = _bad(lambda d: d["workloads"][0].update(minReplicas=60))
    assert err.where.endswith("workloads[0]")
    assert "minReplicas 60 > maxReplicas 50" in err.problem


def test_duplicate_names() -> None:
    err = _bad(lambda d: d["workloads"].append(copy.deepcopy(d["workloads"][0])))
    assert "duplicate workload names ['prod/refinory-ai']" in err.problem


def test_malformed_date() -> None:
    err = _bad(lambda d: d["budget"].update(now="2026-13-45T12:00:00Z"))
    assert err.where.endswith("budget.now") and "2026-13-45" in err.problem


def test_date_without_zone() -> None:
    err = _bad(lambda d: d["budget"].update(now="2026-11-15T12:00:00"))
    assert "no zone" in err.problem


@pytest.mark.parametrize(
    ("quantiles", "message"),
    [
        ({"0.5": 400, "0.9": 300}, "quantiles decrease"),
        ({"1.5": 400}, "between 0 and 1"),
        ({"p90": 400}, "not a number"),
        ({"0.9": -1}, ">= 0"),
    ],
    ids=["decreasing", "level-out-of-range", "level-not-number", "negative-load"],
)
def test_bad_forecast(quantiles: dict[str, float], message: str) -> None:
    err = _bad(lambda d: d["workloads"][0]["forecast"].update(quantiles=quantiles))
    assert message in err.problem


def test_float_noise_in_quantiles_is_not_a_crossing() -> None:
    data = copy.deepcopy(GOOD)
    data["workloads"][0]["forecast"]["quantiles"] = {"0.5": 520.0, "0.9": 519.9999999999}
    forecast = parse_model(AllocationRequest, data).workloads[0].forecast
    assert forecast is not None and forecast.points() == [(0.5, 520.0), (0.9, 520.0)]


def test_missing_required_field() -> None:
    err = _bad(lambda d: d["workloads"][0].pop("requests"))
    assert err.where.endswith("workloads[0].requests") and "missing" in err.problem


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_examples_validate(path: Path) -> None:
    manifest = CostBudgetManifest.model_validate(yaml.safe_load(path.read_text()))
    assert manifest.spec.environment == manifest.metadata.name


def test_examples_cover_three_environments() -> None:
    assert {p.stem for p in EXAMPLES.glob("*.yaml")} >= {"dev", "staging", "prod"}


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"environment": "prod", "selector": {"namespaces": ["prod"]}}
    spec.update(changes)
    return spec


def test_cost_budget_needs_a_limit_and_a_selector() -> None:
    with pytest.raises(InputError, match="no limit"):
        parse_model(CostBudget, _spec())
    with pytest.raises(InputError, match="selects nothing"):
        parse_model(CostBudget, _spec(hourlyLimit=1, selector={}))


def test_cost_budget_defaults() -> None:
    spec = parse_model(CostBudget, _spec(monthlyLimit=100))
    assert spec.alert_thresholds == [50.0, 75.0, 90.0]
    assert (spec.pacing, spec.mode) == ("even", "hard")


def test_priority_of_takes_the_highest_tier() -> None:
    spec = parse_model(
        CostBudget,
        _spec(
            hourlyLimit=1,
            defaultPriority=5,
            priorityTiers=[
                {"name": "all", "priority": 10, "namespaces": ["prod"]},
                {"name": "gw", "priority": 100, "workloads": ["prod/event-gateway"]},
                {"name": "gpu", "priority": 50, "matchLabels": {"gpu": "yes"}},
            ],
        ),
    )
    assert spec.priority_of("prod", "event-gateway") == 100
    assert spec.priority_of("prod", "x", {"gpu": "yes"}) == 50
    assert spec.priority_of("prod", "x") == 10
    assert spec.priority_of("dev", "x") == 5
    assert spec.selector.matches("prod") and not spec.selector.matches("dev")


def test_cost_budget_schema_is_plain() -> None:
    """The CRD generator needs a self-contained schema without exotic types."""
    schema = CostBudget.model_json_schema(by_alias=True)
    text = str(schema)
    assert "hourlyLimit" in schema["properties"] and "monthlyLimit" in schema["properties"]
    assert "additionalProperties': False" in text  # extra fields forbidden
    for exotic in ("decimal", "date-time", "uuid", "binary"):
        assert exotic not in text
