"""Sweeps: the grid, and the same rows from serial, process-parallel and Dask runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from autoscaler.cli import build_app
from simulations.sweep import Job, build_jobs, run_sweep
from tests.simulations.test_engine import noisy_daily, write_trace


def _base(tmp_path: Path) -> dict[str, Any]:
    trace = write_trace(tmp_path / "t.csv", noisy_daily(0.08, seed=17))
    return {
        "trace": str(trace),
        "workload": "discord-bot",
        "scale_to_peak_replicas": 10,
        "predictive": {"model": "last"},
    }


def _jobs(tmp_path: Path) -> list[Job]:
    return build_jobs(_base(tmp_path), None, [50, 90], [0.9], [0.02], ["discord-bot"])


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
    rows = build_jobs(with_budget, None, [50], [], [0.5], ["discord-bot"])
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
    budgeted = serial[-1]
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
        "predictive: {model: last}\n",
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
