"""Every registered policy (contract), the stock HPAs' steady state, our pass-through, budgets."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from autoscaler.cli.simworld import controller_for
from models.errors import InputError
from models.traces import load_trace
from policies.budget import BudgetRequest
from simulations.engine import demand_from_rate
from simulations.strategies import (
    STRATEGIES,
    HpaCpu,
    HpaRps,
    Predictive,
    PredictiveSettings,
    RunContext,
    make_strategy,
    parse_strategies,
)
from simulations.workloads import custom_workload
from tests.simulations.test_engine import noisy_daily, write_trace


def _ctx(tmp_path: Path, values: list[float], budget: BudgetRequest | None = None) -> RunContext:
    trace = load_trace(write_trace(tmp_path / "t.csv", values))
    w = custom_workload(capacity_rps=20.0, startup_seconds=90.0, min_replicas=2, max_replicas=60)
    demand = demand_from_rate(trace.rate_per_second, trace.step_seconds)
    return RunContext(demand, w, budget=budget, controller=controller_for)


@pytest.mark.parametrize("kind", sorted(STRATEGIES), ids=sorted(STRATEGIES))
def test_every_registered_policy_runs_within_bounds(kind: str, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, noisy_daily(0.1, seed=3))
    policy = make_strategy(kind)
    if isinstance(policy, Predictive):
        policy.settings = PredictiveSettings(forecaster="last")
    tl = policy.run(ctx)
    n = len(ctx.demand)
    assert tl.replicas.shape == tl.ready.shape == tl.alive.shape == (n,)
    assert np.all(tl.ready <= tl.alive)
    assert tl.replicas.min() >= ctx.workload.min_replicas
    assert tl.replicas.max() <= ctx.workload.max_replicas
    assert np.array_equal(tl.demand, ctx.demand.rate)


@pytest.mark.parametrize(
    "text,problem",
    [
        ("hpa-gpu", "unknown policy"),
        ("hpa-cpu@seventy", "whole percentage"),
        ("predictive@1.5", "outside (0.5, 1)"),
        ("predictive@0.3", "outside (0.5, 1)"),
        ("static@0", "at least one pod"),
        ("oracle@3", "no parameter"),
    ],
    ids=["unknown", "bad-target", "bad-quantile", "low-quantile", "static-zero", "oracle-param"],
)
def test_bad_policy_names_are_input_errors(text: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        make_strategy(text)


def test_policy_lists() -> None:
    assert [p.name for p in parse_strategies("hpa-cpu, predictive@0.95 ,oracle")] == [
        "hpa-cpu",
        "predictive@0.95",
        "oracle",
    ]
    with pytest.raises(InputError, match="twice"):
        parse_strategies("oracle,oracle")


@pytest.mark.parametrize("policy", [HpaCpu(), HpaRps()], ids=["hpa-cpu", "hpa-rps"])
def test_stock_hpa_settles_at_its_target(policy: HpaCpu | HpaRps, tmp_path: Path) -> None:
    """Constant 30/s on 20/s pods at a 70 % target: ceil(30 / 14) = 3 replicas."""
    ctx = _ctx(tmp_path, [1800.0] * 60)
    tl = policy.run(ctx)
    want = math.ceil(30.0 / (20.0 * 0.7))
    assert set(tl.replicas[-100:]) == {want}


def test_predictive_replicas_pass_through_the_hpa(tmp_path: Path) -> None:
    """What decide() wants is what the emulated HPA sets, whenever the HPA can express it.

    Up: at once (within the legacy limit of 2x per sync): exactly the decision when it
    is outside the HPA's tolerance band, else the smallest count that escapes the band
    (``served_value`` never leaves us short). Down: the HPA's 300-s stabilisation holds
    the highest recent recommendation.
    """
    ctx = _ctx(tmp_path, noisy_daily(0.25, seed=9))
    tl = Predictive(PredictiveSettings(forecaster="last")).run(ctx)
    desired = tl.extra["desired"]
    prev = np.concatenate([[tl.replicas[0]], tl.replicas[:-1]])
    up = (desired > prev) & (desired <= 2 * prev)
    assert up.any()
    outside_band = up & (desired > 1.1 * prev)
    assert outside_band.any() and (up & ~outside_band).any()
    assert np.array_equal(tl.replicas[outside_band], desired[outside_band])
    assert np.all(tl.replicas[up] >= desired[up])
    assert np.array_equal(tl.replicas[up], np.ceil(tl.extra["served_value"][up]))
    assert np.all(tl.replicas >= np.minimum(desired, 2 * prev))
    # Never more than the highest HPA outcome of our served values in the last 300 s.
    outcome = np.ceil(tl.extra["served_value"])
    window = 300 // 15
    for i in range(window, len(desired)):
        assert tl.replicas[i] <= max(outcome[i - window + 1 : i + 1].max(), prev[i])


def test_budget_caps_predictive_replicas(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, noisy_daily(0.1, seed=4))
    free = Predictive(PredictiveSettings(forecaster="last")).run(ctx)
    price = ctx.workload.hourly_price
    cap_replicas = int(free.replicas.max()) - 3
    budget = BudgetRequest(hourly_limit=(cap_replicas + 0.5) * price, mode="hard")
    ctx_b = _ctx(tmp_path, noisy_daily(0.1, seed=4), budget)
    capped = Predictive(PredictiveSettings(forecaster="last")).run(ctx_b)
    assert capped.replicas.max() <= cap_replicas
    assert capped.extra["budget_clamped"].any()
    assert capped.alive.sum() < free.alive.sum()


def test_cpu_hpa_memo_changes_nothing(tmp_path: Path) -> None:
    """The memoised replica calculation gives the very same run as calling it every tick."""
    ctx = _ctx(tmp_path, noisy_daily(0.3, seed=12))
    fast = HpaCpu(60).run(ctx)
    slow = HpaCpu(60, memoize=False).run(ctx)
    assert np.array_equal(fast.replicas, slow.replicas)
    assert np.array_equal(fast.ready, slow.ready)
    assert len(set(fast.replicas)) > 3  # the run did scale


def test_scenario_overrides_reach_the_decision_spec(tmp_path: Path) -> None:
    """risk_target and risk_quantile from a scenario's `predictive:` block reach the
    PredictiveAutoscaler the controller runs; a risk quantile at or below the median is
    refused (it could not measure an upper tail)."""
    from pydantic import ValidationError

    from simulations.scenario import PredictiveConfig
    from simulations.strategies.predictive import scenario_autoscaler

    ctx = _ctx(tmp_path, noisy_daily(0.1, seed=3))
    cfg = PredictiveConfig(risk_target=0.02, risk_quantile=0.95)
    pa = scenario_autoscaler(ctx.workload, cfg, 15.0)
    assert (pa.spec.risk_target, pa.spec.risk_quantile) == (0.02, 0.95)
    assert scenario_autoscaler(ctx.workload, PredictiveSettings(), 15.0).spec.risk_target == 0.005
    with pytest.raises(ValidationError):
        PredictiveConfig(risk_quantile=0.5)
    with pytest.raises(ValidationError):
        PredictiveConfig(risk_target=0.0)


def test_predictive_learns_the_capacity_from_the_emulated_pods(tmp_path: Path) -> None:
    """A PA without capacityPerReplica and leadTimeSeconds (``learn_capacity``): the
    controller holds the replicas running until its calibration, through the world's
    cAdvisor / kube-state-metrics answers, learns refinory-ai's true 20 req/s."""
    from simulations.strategies.predictive import scenario_autoscaler
    from simulations.workloads import load_workload

    w = load_workload("refinory-ai")
    assert w.cpu is not None and w.capacity_rps == 20.0
    trace = load_trace(write_trace(tmp_path / "t.csv", noisy_daily(0.25, seed=5)))
    demand = demand_from_rate(trace.rate_per_second, trace.step_seconds)
    ctx = RunContext(demand, w, controller=controller_for)
    settings = PredictiveSettings(forecaster="last", learn_capacity=True)
    pa = scenario_autoscaler(w, settings, 15.0)
    assert pa.spec.capacity_per_replica is None and pa.spec.lead_time_seconds is None
    tl = Predictive(settings).run(ctx)
    learnt = tl.extra["capacity_learnt"]
    held = np.isnan(learnt)
    assert held[0] and held.sum() < 3600 // 15  # learnt within the first hour
    assert not held[-1] and np.all(np.isnan(learnt[: int(held.sum())]))
    after = learnt[~held]
    assert np.all(np.abs(after / 20.0 - 1) < 0.05), (after.min(), after.max())
    # Until then the decision is the replicas running: never a scale-down.
    prev = np.concatenate([[tl.replicas[0]], tl.replicas[:-1]])
    desired = tl.extra["desired"]
    assert np.array_equal(desired[held], np.maximum(prev[held], w.min_replicas))
    # Given the truth instead, no column: the run is the one it always was.
    given = Predictive(PredictiveSettings(forecaster="last")).run(ctx)
    assert "capacity_learnt" not in given.extra
    # The report shows the learnt capacity over time against the truth.
    from simulations.report import score, summary_text, write_html
    from simulations.scenario import Prepared, Result, scenario_from_dict

    sc = scenario_from_dict({"trace": str(tmp_path / "t.csv"), "workload": "refinory-ai"}, "t")
    scored = score(Result(Prepared(sc, w, trace, demand), {"predictive": tl}))
    text = summary_text(scored)
    assert "predictive: capacity learnt after" in text and "against the true 20/s" in text
    write_html(scored, tmp_path / "r.html")
    assert "Learnt capacity against the truth" in (tmp_path / "r.html").read_text()


def test_learning_needs_a_cpu_model(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, noisy_daily(0.05, seed=3))  # custom workload: no cpu model
    with pytest.raises(InputError, match="no cpu model"):
        Predictive(PredictiveSettings(learn_capacity=True)).run(ctx)
