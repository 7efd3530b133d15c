"""Scores, the timeline CSV, JSON and the self-contained HTML report of a real run."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulations.report import (
    ScoredResult,
    score,
    summary_text,
    to_json,
    write_html,
    write_timeline,
)
from simulations.scenario import prepare, scenario_from_dict, simulate
from tests.simulations.test_engine import noisy_daily, write_trace


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> ScoredResult:
    path = write_trace(tmp_path_factory.mktemp("r") / "t.csv", noisy_daily(0.25, seed=21))
    sc = scenario_from_dict(
        {
            "trace": str(path),
            "workload": "jdk-workspace",
            "scale_to_peak_replicas": 20,
            "policies": ["hpa-cpu", "static", "oracle"],
            "frontier_targets": [50, 70, 90],
            "frontier_refine": False,
        },
        "test",
    )
    return score(simulate(prepare(sc)))


def test_scores_are_consistent_with_the_timelines(scored: ScoredResult) -> None:
    result = scored.result
    w = result.prepared.workload
    for name, tl in result.timelines.items():
        s = scored.scores[name]
        assert s.replica_hours == pytest.approx(tl.alive.sum() * 15 / 3600)
        assert s.cost_usd == pytest.approx(s.replica_hours * w.hourly_price)
        short = tl.demand > tl.ready * w.capacity_rps * result.prepared.scenario.slo_utilization
        assert s.tau_u_pct == pytest.approx(100.0 * short.mean())
    assert scored.scores["oracle"].tau_u_pct == 0.0
    assert scored.scores["oracle"].cost_vs_oracle == pytest.approx(1.0)
    assert scored.scores["static"].cost_vs_oracle > 1.0
    # hpa-cpu at 70 % sits on its own frontier: cost vs the HPA at equal tau_U is 1.
    assert sorted(scored.frontier) == [50, 70, 90]
    hpa = scored.scores["hpa-cpu"]
    assert hpa.cost_vs_hpa_at_equal_tau_u == pytest.approx(1.0)
    assert hpa.gap_closed == pytest.approx(0.0, abs=1e-9)


def test_timeline_has_one_row_per_tick_and_policy(scored: ScoredResult, tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    write_timeline(scored, out)
    head = out.read_text().splitlines()[0]
    assert head.startswith("timestamp,policy,demand,replicas,ready_replicas")
    df = pd.read_csv(out)
    n = len(scored.result.prepared.demand)
    assert df.groupby("policy").size().to_dict() == dict.fromkeys(scored.result.timelines, n)
    first = df[df["policy"] == "oracle"]["timestamp"]
    assert first.iloc[0].endswith("Z") and pd.Timestamp(first.iloc[1]) - pd.Timestamp(
        first.iloc[0]
    ) == pd.Timedelta(seconds=15)


def test_json_has_no_nan_or_inf(scored: ScoredResult) -> None:
    text = json.dumps(to_json(scored), allow_nan=False)
    data = json.loads(text)
    assert set(data["policies"]) == {"hpa-cpu", "static", "oracle"}
    for row in data["policies"].values():
        for v in row.values():
            assert not (isinstance(v, float) and not math.isfinite(v))


def test_html_report_is_self_contained(scored: ScoredResult, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    png = tmp_path / "main.png"
    write_html(scored, out, main_png=png)
    html = out.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(re.findall(r"src='data:image/png;base64,", html)) >= 5
    assert not re.search(r"(src|href)=['\"]https?://", html)
    for name in ("hpa-cpu", "static", "oracle", "tauU%", "gap closed"):
        assert name in html
    # Without a predictive run there is nothing to compare prediction with.
    assert "Where prediction beat reaction" not in html


def test_summary_table_lists_every_policy(scored: ScoredResult) -> None:
    text = summary_text(scored)
    lines = text.splitlines()
    assert "jdk-workspace" in lines[0]
    for name in scored.result.timelines:
        assert any(line.startswith(name) for line in lines)
    assert np.isfinite(scored.scores["hpa-cpu"].replica_hours)


def test_parallel_runs_give_the_serial_result(scored: ScoredResult) -> None:
    prepared = scored.result.prepared
    parallel = simulate(prepared, workers=2)
    for name, tl in scored.result.timelines.items():
        other = parallel.timelines[name]
        assert np.array_equal(tl.replicas, other.replicas)
        assert np.array_equal(tl.ready, other.ready)
    assert sorted(parallel.frontier) == sorted(scored.result.frontier)
    for target, tl in scored.result.frontier.items():
        assert np.array_equal(tl.alive, parallel.frontier[target].alive)


def test_refined_frontier_puts_an_hpa_on_it_where_the_chord_would_not(tmp_path: Path) -> None:
    # The HPA at 65 % scored against a sweep of 50 and 80 % only: the chord between them
    # lies above the (convex) frontier, so an HPA run looks as if it closed part of its
    # own gap. With the integer targets in between run as well, it sits on the frontier.
    path = write_trace(tmp_path / "t.csv", noisy_daily(0.25, seed=21))
    data = {
        "trace": str(path),
        "workload": "jdk-workspace",
        "scale_to_peak_replicas": 20,
        "policies": ["hpa-cpu@65", "oracle"],
        "frontier_targets": [50, 80],
    }
    coarse = score(simulate(prepare(scenario_from_dict({**data, "frontier_refine": False}, "t"))))
    assert sorted(coarse.frontier) == [50, 80]
    assert coarse.scores["hpa-cpu@65"].gap_closed is not None
    assert coarse.scores["hpa-cpu@65"].gap_closed > 0.01
    fine = score(simulate(prepare(scenario_from_dict(data, "t")), workers=2))
    assert sorted(fine.frontier) == list(range(50, 81))
    # Target 65 is the policy's own run, reused rather than run twice.
    assert fine.frontier[65].cost_usd == fine.scores["hpa-cpu@65"].cost_usd
    assert fine.scores["hpa-cpu@65"].gap_closed == pytest.approx(0.0, abs=1e-9)
