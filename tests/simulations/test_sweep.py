"""Sweeps: the grid, and the same rows from serial, process-parallel and Dask runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from autoscaler.cli import build_app
from autoscaler.cli.simworld import controller_for
from simulations.sweep import Job, build_jobs, run_sweep
from tests.simulations.test_engine import noisy_daily, write_trace


def _base(tmp_path: Path) -> dict[str, Any]:
    trace = write_trace(tmp_path / "t.csv", noisy_daily(0.08, seed=17))
    return {
        "trace": str(trace),
        "workload": "discord-bot",
        "scale_to_peak_replicas": 10,
        "predictive": {"forecaster": "last"},
    }


def _jobs(tmp_path: Path) -> list[Job]:
    return build_jobs(
        _base(tmp_path), None, [50, 90], [0.9], [0.02], ["discord-bot"], controller_for
    )


def test_grid_has_frontier_oracle_and_budget_variants(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    labels = [(j.policy, j.budget) for j in jobs]
    assert labels == [
        ("predictive@0.9", None),
        ("hpa-cpu@50", None),
        ("hpa-cpu@90", None),
        ("oracle", None),
        ("predictive@0.9", 0.02),
    ]
    assert jobs[-1].scenario["budget"] == {"hourlyLimit": 0.02}
    # A scenario's own budget does not leak into the unbudgeted baseline.
    with_budget = {**_base(tmp_path), "budget": {"hourlyLimit": 9.0}}
    rows = build_jobs(with_budget, None, [50], [], [0.5], ["discord-bot"], controller_for)
    assert [j.scenario.get("budget") for j in rows] == [None, None, None, {"hourlyLimit": 0.5}]


def _key(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["policy"], r["budget_hourly"], r["cost_usd"], r["tau_u_pct"]) for r in rows]


def test_process_pool_matches_serial(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    serial = run_sweep(jobs, "serial")
    parallel = run_sweep(jobs, "processes", workers=2)
    assert _key(serial) == _key(parallel)
    oracle = next(r for r in serial if r["policy"] == "oracle")
    assert oracle["cost_vs_oracle"] == pytest.approx(1.0)
    budgeted = next(r for r in serial if r["budget_hourly"] is not None)
    unbudgeted = serial[0]
    assert budgeted["cost_usd"] <= unbudgeted["cost_usd"]
    assert budgeted["budget_clamped_ticks"] > 0


@pytest.mark.slow
def test_dask_local_cluster_matches_serial(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)[:4]
    assert _key(run_sweep(jobs, "dask", workers=2)) == _key(run_sweep(jobs, "serial"))


def test_sweep_command_prints_rows(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    base = _base(tmp_path)
    scenario.write_text(
        f"trace: {base['trace']}\nworkload: discord-bot\nscale_to_peak_replicas: 10\n"
        "predictive: {forecaster: last}\n",
        encoding="utf-8",
    )
    out = tmp_path / "rows.csv"
    result = CliRunner().invoke(
        build_app(),
        ["sweep", str(scenario), "--target", "50,90", "--quantile", "0.9",
         "--engine", "serial", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "hpa-cpu@50" in result.output and "oracle" in result.output
    assert out.read_text().startswith("workload,budget_hourly,policy,")


def test_refinement_runs_the_targets_around_each_predictive_tau_u(tmp_path: Path) -> None:
    from simulations.sweep import refine_jobs

    jobs = _jobs(tmp_path)
    rows: list[dict[str, Any]] = [
        {"tau_u_pct": 0.5},  # predictive@0.9
        {"tau_u_pct": 0.0},  # hpa-cpu@50
        {"tau_u_pct": 3.0},  # hpa-cpu@90
        {"tau_u_pct": 0.0},  # oracle: the same bracket
        {"tau_u_pct": 5.0},  # predictive@0.9 under the budget: beyond the sweep
    ]
    extra = refine_jobs(jobs, rows)
    assert [j.policy for j in extra] == [f"hpa-cpu@{t}" for t in range(51, 90)]
    assert all(j.budget is None and j.scenario == jobs[0].scenario for j in extra)
    # A sweep of one target has no bracket; the real run appends its refinement rows.
    assert refine_jobs(jobs[:2] + jobs[3:], rows[:2] + rows[3:]) == []
    few = build_jobs(_base(tmp_path), None, [60, 80], [0.9], [], ["discord-bot"], controller_for)
    out = run_sweep(few, "serial")
    assert [r["policy"] for r in out[: len(few)]] == [j.policy for j in few]
    added = [r["policy"] for r in out[len(few) :]]
    # On this trace the predictive tau_U (~2.6 %) lies between the HPA's at 60 and 80 %.
    assert out[1]["tau_u_pct"] <= out[0]["tau_u_pct"] < out[2]["tau_u_pct"]
    assert added == [f"hpa-cpu@{t}" for t in range(61, 80)]
    assert _key(run_sweep(few, "serial", refine=False)) == _key(out[: len(few)])
