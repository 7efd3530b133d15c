"""``autoscaler simulate``: flags, scenario files, outputs, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from autoscaler.cli import build_app, main
from simulations.scenario import SCENARIOS_DIR, load_scenario
from tests.simulations.test_engine import noisy_daily, write_trace


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), args)
    return result.exit_code, result.output


def test_flags_run_and_write_timeline_and_json(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.csv", noisy_daily(0.1, seed=2))
    timeline = tmp_path / "out" / "timeline.csv"
    code, out = _run(
        [
            "simulate",
            "--trace", str(trace),
            "--capacity-rps", "20",
            "--startup-seconds", "90",
            "--min-replicas", "2",
            "--max-replicas", "80",
            "--slo-utilization", "0.85",
            "--scale-to-peak-replicas", "40",
            "--policy", "hpa-cpu,oracle,static@30",
            "--timeline", str(timeline),
            "--json",
        ],
    )  # fmt: skip
    assert code == 0, out
    data = json.loads(out)
    assert set(data["policies"]) == {"hpa-cpu", "oracle", "static@30"}
    assert data["policies"]["oracle"]["tau_u_pct"] == 0.0
    df = pd.read_csv(timeline)
    assert list(df.columns[:5]) == ["timestamp", "policy", "demand", "replicas", "ready_replicas"]
    n = int(0.1 * 1440) * 4
    assert len(df) == 3 * n
    assert set(df[df["policy"] == "static@30"]["replicas"]) == {30}


def test_startup_seconds_is_exact_for_every_pod(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.csv", [600.0] * 10 + [6000.0] * 20)
    timeline = tmp_path / "timeline.csv"
    code, out = _run(
        ["simulate", "--trace", str(trace), "--workload", "refinory-ai",
         "--startup-seconds", "45", "--policy", "hpa-rps", "--no-frontier",
         "--timeline", str(timeline)],
    )  # fmt: skip
    assert code == 0, out
    df = pd.read_csv(timeline)
    scaled = int((df["replicas"].diff() > 0).to_numpy().argmax())
    gained = int((df["ready_replicas"].diff() > 0).to_numpy().argmax())
    # Pods created at the scale-up tick are Ready exactly 45 s (three ticks) later.
    assert scaled > 0 and (gained - scaled) * 15 == 45


@pytest.mark.parametrize(
    "args,where",
    [
        (["simulate"], "no scenario and no --trace"),
        (["simulate", "--trace", "/nonexistent.csv", "--workload", "refinory-ai"], "not found"),
        (["simulate", "--trace", "X", "--workload", "nope"], "unknown workload"),
        (["simulate", "--trace", "X", "--capacity-rps", "20"], "needs --startup-seconds"),
        (["simulate", "--trace", "X", "--workload", "refinory-ai", "--policy", "hpa-x"], "hpa-x"),
        (["simulate", "--trace", "X", "--workload", "refinory-ai", "--capacity-rps", "3"], "both"),
    ],
    ids=["nothing", "missing-trace", "unknown-workload", "no-startup", "bad-policy", "both"],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str],
    where: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through the real entry point ``main()``, as the console script runs it."""
    trace = write_trace(tmp_path / "t.csv", [60.0] * 10)
    args = [str(trace) if a == "X" else a for a in args]
    monkeypatch.setattr(sys, "argv", ["autoscaler", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert where in lines[0]


def test_console_script_exits_2_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from autoscaler.cli import main; main()", "simulate"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: simulate: no scenario and no --trace (give SCENARIO.yaml or --trace PATH)"
    ]


def test_bundled_scenarios_validate() -> None:
    files = sorted(SCENARIOS_DIR.glob("*.yaml"))
    assert any(f.name == "demo.yaml" for f in files)
    for f in files:
        sc, _ = load_scenario(f)
        assert sc.policies


def test_scenario_file_with_flag_overrides(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.csv", noisy_daily(0.3, seed=8))
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"name: s\nworkload: discord-bot\ntrace: {trace.name}\n"
        "policies: [hpa-cpu, oracle]\nscale_to_peak_replicas: 10\nfrontier_targets: [50, 90]\n",
        encoding="utf-8",
    )
    report = tmp_path / "r.html"
    code, out = _run(["simulate", str(scenario), "--days", "0.1", "--report", str(report)])
    assert code == 0, out
    assert "discord-bot" in out.splitlines()[0]
    assert "0.10 days" in out.splitlines()[0]
    assert report.read_text().startswith("<!DOCTYPE html>")
