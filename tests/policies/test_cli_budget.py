"""``autoscaler budget``: allocate, validate and report through the real CLI entry point.

Each test runs ``autoscaler.cli.main`` in-process with real files, exactly as a user
would; bad input must end with exit status 2 and one ``error:`` line, no traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from autoscaler.cli import main

from .test_budget_schema import GOOD

EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"


def run(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["autoscaler", *args])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


def test_allocate_json(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    req = _write(tmp_path / "REQUEST.json", GOOD)
    code, out, err = run(["budget", "allocate", "--input", str(req)], capsys, monkeypatch)
    assert code == 0, err
    result = json.loads(out)
    assert result["hourlyCap"] == 12.5 and result["infeasible"] is False
    (w,) = result["workloads"]
    assert w["name"] == "prod/refinory-ai" and w["replicas"] == 30
    assert w["bindingConstraint"] == "none" and w["reason"]


def test_allocate_to_output_file(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    req = _write(tmp_path / "REQUEST.json", GOOD)
    dest = tmp_path / "RESULT.json"
    code, out, _ = run(
        ["budget", "allocate", "--input", str(req), "--output", str(dest)], capsys, monkeypatch
    )
    assert code == 0 and out == ""
    assert json.loads(dest.read_text())["workloads"][0]["replicas"] == 30


def test_allocate_jsonl_one_result_per_line_in_order(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    lines = []
    for limit in (0.1, 5.0, 0.05):
        req = json.loads(json.dumps(GOOD))
        req["budget"]["hourlyLimit"] = limit
        lines.append(json.dumps(req))
    path = tmp_path / "what-if.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    code, out, err = run(["budget", "allocate", "--input", str(path)], capsys, monkeypatch)
    assert code == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["hourlyCap"] for r in results] == [0.1, 5.0, 0.05]
    assert [r["workloads"][0]["replicas"] for r in results] == [4, 30, 2]


def test_missing_now_uses_the_current_time(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    req = json.loads(json.dumps(GOOD))
    del req["budget"]["now"]
    code, out, err = run(
        ["budget", "allocate", "--input", str(_write(tmp_path / "r.json", req))],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert json.loads(out)["hourlyCap"] is not None


def _edit(path: list[Any], value: Any) -> Any:
    def apply(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


BAD_REQUESTS = [
    ("unknown-field", _edit(["workloads", 0, "desiredReplica"], 3), "unknown field"),
    ("negative-money", _edit(["budget", "spentThisMonth"], -1), "budget.spentThisMonth"),
    ("bad-quantity", _edit(["workloads", 0, "requests", "cpu"], "500 m"), "'500 m'"),
    ("min-above-max", _edit(["workloads", 0, "minReplicas"], 99), "minReplicas 99 > maxReplicas"),
    (
        "duplicate-names",
        lambda d: d["workloads"].append(dict(d["workloads"][0])),
        "duplicate workload names",
    ),
    ("malformed-date", _edit(["budget", "now"], "15/11/2026"), "budget.now"),
]


@pytest.mark.parametrize(
    ("edit", "expected"), [(e, x) for _, e, x in BAD_REQUESTS], ids=[i for i, _, _ in BAD_REQUESTS]
)
def test_bad_request_is_one_line_exit_2(
    tmp_path: Path, capsys: Any, monkeypatch: Any, edit: Any, expected: str
) -> None:
    req = json.loads(json.dumps(GOOD))
    edit(req)
    path = _write(tmp_path / "REQUEST.json", req)
    code, out, err = run(["budget", "allocate", "--input", str(path)], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {path}")
    assert expected in err and "Traceback" not in err


def test_bad_request_names_the_line(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    req = json.loads(json.dumps(GOOD))
    req["workloads"][0]["maxReplicas"] = -3
    path = _write(tmp_path / "REQUEST.json", req)
    _, _, err = run(["budget", "allocate", "--input", str(path)], capsys, monkeypatch)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "maxReplicas" in t)
    assert f"{path}:{line}: workloads[0].maxReplicas" in err


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("REQUEST.json", "{not json", "REQUEST.json:1: not valid JSON"),
        ("batch.jsonl", json.dumps(GOOD) + "\n{oops\n", "batch.jsonl:2: not valid JSON"),
        (
            "batch.jsonl",
            json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "budget": {"mode": "strict"}}) + "\n",
            "batch.jsonl:2: budget.mode",
        ),
        ("empty.jsonl", "\n", "no requests"),
    ],
    ids=["json-syntax", "jsonl-syntax", "jsonl-field", "jsonl-empty"],
)
def test_bad_files(
    tmp_path: Path, capsys: Any, monkeypatch: Any, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    code, _, err = run(["budget", "allocate", "--input", str(path)], capsys, monkeypatch)
    assert code == 2 and expected in err and "Traceback" not in err


def test_missing_file(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    code, _, err = run(
        ["budget", "allocate", "--input", str(tmp_path / "nope.json")], capsys, monkeypatch
    )
    assert code == 2 and "no such file" in err


def test_validate_examples(capsys: Any, monkeypatch: Any) -> None:
    paths = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    code, out, err = run(["budget", "validate", *paths], capsys, monkeypatch)
    assert code == 0, err
    assert out.count("ok: ") == len(paths) >= 3


def test_validate_names_file_line_and_field(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    bad = tmp_path / "bad.yaml"
    text = (EXAMPLES / "prod.yaml").read_text().replace("monthlyLimit: 500", "monthlyLimit: -500")
    bad.write_text(text)
    typo = tmp_path / "typo.yaml"
    typo.write_text((EXAMPLES / "staging.yaml").read_text().replace("pacing:", "pacng:"))
    good = EXAMPLES / "dev.yaml"
    code, out, err = run(
        ["budget", "validate", str(bad), str(good), str(typo)], capsys, monkeypatch
    )
    assert code == 2 and "ok: " in out
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "monthlyLimit" in t)
    assert f"{bad}:{line}: spec.monthlyLimit" in err
    assert "typo.yaml:" in err and "unknown field 'pacng'" in err
    assert "Traceback" not in err


def test_validate_bad_yaml(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("spec:\n  environment: [prod\n")
    code, _, err = run(["budget", "validate", str(bad)], capsys, monkeypatch)
    assert code == 2 and "not valid YAML" in err


def test_report_needs_a_budget_or_frontier(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    code, _, err = run(["budget", "report", "demo"], capsys, monkeypatch)
    assert code == 2 and "no budget" in err


@pytest.mark.slow
def test_report_frontier_on_the_demo(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    """The demo scenario, cut to 1.2 hours so that the test stays short."""
    png = tmp_path / "frontier.png"
    args = ["budget", "report", "demo-budget", "--frontier", "--days", "0.05"]
    args += ["--budgets", "0.25,0.9", "--png", str(png), "--workers", "2"]
    code, out, err = run(args, capsys, monkeypatch)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for label in ("predictive, scenario budget", "predictive @ $0.250/h", "oracle (no budget)"):
        assert label in out


@pytest.mark.slow
def test_report_ledger_agrees_with_the_simulator_cost() -> None:
    """The spend ledger integrates the same pods the simulator's scorer charges for."""
    from autoscaler.cli.budget import _Job, _run_job
    from simulations.scenario import load_scenario

    sc, base = load_scenario("demo-budget")
    data = sc.model_dump(mode="json", exclude_none=True)
    data["period"]["days"] = 0.05
    data.pop("budget")
    row = _run_job(_Job(data, str(base), "oracle", "oracle", {"hourly_limit": 0.3}))
    assert row.ledger_spent == pytest.approx(row.cost_usd, rel=1e-6)
    assert row.over_limit_pct is not None and row.month == "1995-07"


def test_report_from_a_ledger_file(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from autoscaler.ledger_store import LedgerStore
    from policies.ledger import LedgerState, accrue

    start = datetime(2026, 11, 1, tzinfo=UTC)
    state, _ = accrue(
        LedgerState.start(start),
        {"prod/refinory-ai": 20, "prod/event-gateway": 10},
        {"prod/refinory-ai": 0.0200425, "prod/event-gateway": 0.003690725},
        start + timedelta(days=15),
    )
    path = tmp_path / "ledger.json"
    LedgerStore(path).put("prod", state)
    args = ["budget", "report", "--ledger", str(path), "--now", "2026-11-16T00:00:00Z"]
    args += ["--budget-file", str(EXAMPLES / "prod.yaml")]
    code, out, err = run(args, capsys, monkeypatch)
    assert code == 0, err
    rate = 20 * 0.0200425 + 10 * 0.003690725  # $ per hour
    spent = rate * 15 * 24  # 15 days so far; 15 days left at the same average rate
    assert f"prod: month 2026-11, spent ${spent:.2f} of $500" in out
    assert f"average burn ${rate:.4f}/h" in out
    assert f"projected month-end ${2 * spent:.2f} ({200 * spent / 500:.0f}% of the limit)" in out
    assert f"prod/refinory-ai: ${20 * 0.0200425 * 360:.2f}" in out
    assert "alert:" not in out  # 32 % spent is below the first threshold, 63 % projected


def test_report_corrupt_ledger_is_exit_2(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    path = tmp_path / "ledger.json"
    path.write_text("{")
    code, _, err = run(["budget", "report", "--ledger", str(path)], capsys, monkeypatch)
    assert code == 2 and "not valid JSON" in err and "Traceback" not in err
