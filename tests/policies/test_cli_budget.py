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
    spent = rate * 15 * 24  # 15 days so far; 15 days left at the same rate
    assert f"prod: month 2026-11, spent ${spent:.2f} of $500" in out
    assert f"current burn ${rate:.4f}/h" in out
    assert f"projected month-end ${2 * spent:.2f} ({200 * spent / 500:.0f}% of the limit)" in out
    assert f"prod/refinory-ai: ${20 * 0.0200425 * 360:.2f}" in out
    assert "alert:" not in out  # 32 % spent is below the first threshold, 63 % projected


def test_report_corrupt_ledger_is_exit_2(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    path = tmp_path / "ledger.json"
    path.write_text("{")
    code, _, err = run(["budget", "report", "--ledger", str(path)], capsys, monkeypatch)
    assert code == 2 and "not valid JSON" in err and "Traceback" not in err


def _budget_file(tmp_path: Path, monthly: float) -> Path:
    text = (
        (EXAMPLES / "prod.yaml")
        .read_text()
        .replace("monthlyLimit: 500", f"monthlyLimit: {monthly}")
    )
    path = tmp_path / "budget.yaml"
    path.write_text(text)
    return path


def test_ledger_report_projects_as_the_controller_does(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    """The user's fault: a hot start of the month, then the guard paced spend down.

    The month's average burn projected $381 (382 % of a $100 limit) while the
    controller's metric said $95. Both now come from ``policies.ledger.project``
    called as the controller calls it: spend so far + current hourly cost x hours left.
    """
    from datetime import UTC, datetime, timedelta

    from autoscaler.ledger_store import LedgerStore
    from policies.ledger import LedgerState, accrue, project

    start = datetime(2026, 11, 1, tzinfo=UTC)
    hot = start + timedelta(days=5)
    state, _ = accrue(LedgerState.start(start), {"w": 40}, {"w": 0.4}, hot)  # $16/h: $1920
    state, _ = accrue(state, {"w": 1}, {"w": 0.02}, hot + timedelta(hours=6))  # now $0.02/h
    path = tmp_path / "ledger.json"
    LedgerStore(path).put("prod", state)
    now = "2026-11-06T06:00:00Z"
    budget = _budget_file(tmp_path, 2000)
    args = ["budget", "report", "--ledger", str(path), "--now", now, "--budget-file", str(budget)]
    code, out, err = run(args, capsys, monkeypatch)
    assert code == 0, err
    when = datetime(2026, 11, 6, 6, tzinfo=UTC)
    expected = project(state, when, monthly_limit=2000, thresholds=(50.0, 75.0, 90.0))
    hours_left = (datetime(2026, 12, 1, tzinfo=UTC) - when).total_seconds() / 3600
    assert expected.projected == pytest.approx(1920 + 0.12 + 0.02 * hours_left)
    assert f"projected month-end ${expected.projected:.2f} (" in out
    assert "current burn $0.0200/h" in out
    # The month's average ($16.02/h x 30 days) would have said ~$11,500.
    assert "exceeds the monthly limit" not in out


def test_ledger_report_read_later_shows_the_same_projection(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    """Read a while after the controller saved it, the ledger projects the same figure."""
    from datetime import UTC, datetime, timedelta

    from autoscaler.ledger_store import LedgerStore
    from policies.ledger import LedgerState, accrue, project

    start = datetime(2026, 11, 1, tzinfo=UTC)
    state, _ = accrue(LedgerState.start(start), {"w": 3}, {"w": 0.5}, start + timedelta(days=2))
    path = tmp_path / "ledger.json"
    LedgerStore(path).put("prod", state)
    figures = set()
    for now in ("2026-11-03T00:00:00Z", "2026-11-03T00:05:00Z", "2026-11-04T00:00:00Z"):
        args = ["budget", "report", "--ledger", str(path), "--now", now]
        code, out, err = run(args, capsys, monkeypatch)
        assert code == 0, err
        figures.add(out.split("projected month-end $")[1].split()[0])
    at_save = project(state, state.as_of)  # what the controller published at the save
    assert figures == {f"{at_save.projected:.2f}"} == {f"{72 + 1.5 * 28 * 24:.2f}"}


# ------------------------------------------------- hostile input: one line, exit 2


def _one_error_line(code: int, out: str, err: str, path: Path, expected: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {path}"), err
    assert expected in err, err


def _json_with_monthly_limit(text: str) -> str:
    data = json.dumps(GOOD)
    assert '"monthlyLimit": 8000' in data
    return data.replace('"monthlyLimit": 8000', f'"monthlyLimit": {text}')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_json_with_monthly_limit("9" * 5000), "more than 4,300 digits"),
        (_json_with_monthly_limit("1" + "0" * 400), "too large"),
        ("[" * 100_000, "nested too deeply"),
        (
            json.dumps({**GOOD, "budget": {**GOOD["budget"], "now": "9999-12-31T23:59:59Z"}}),
            "budget.now: time 9999-12-31T23:59:59+00:00 is out of range",
        ),
        (
            json.dumps({**GOOD, "budget": {**GOOD["budget"], "now": "0001-01-01T00:00:00+01:00"}}),
            "budget.now: time 0001-01-01T00:00:00+01:00 is out of range",
        ),
        (_json_with_monthly_limit("true"), "budget.monthlyLimit: expected a number, not a boolean"),
        (_json_with_monthly_limit('"500"'), "budget.monthlyLimit: expected a number, not a string"),
        (
            json.dumps({**GOOD, "budget": {**GOOD["budget"], "spentThisMonth": "12"}}),
            "budget.spentThisMonth: expected a number",
        ),
        (
            json.dumps({**GOOD, "prices": {"cpuPerCoreHour": True}}),
            "prices.cpuPerCoreHour: expected a number, not a boolean",
        ),
        (
            json.dumps({**GOOD, "nodePools": {"spot": {"spotCpuPerCoreHour": "0.01"}}}),
            "nodePools.spot.spotCpuPerCoreHour: expected a number",
        ),
        (
            json.dumps({**GOOD, "workloads": [{**GOOD["workloads"][0], "maxReplicas": True}]}),
            "workloads[0].maxReplicas",
        ),
        (
            json.dumps({**GOOD, "workloads": [{**GOOD["workloads"][0], "minReplicas": 10**40}]}),
            "workloads[0].minReplicas",
        ),
        (
            json.dumps(
                {**GOOD, "workloads": [{**GOOD["workloads"][0], "requests": {"cpu": 10**4000}}]}
            ),
            "absurdly large",
        ),
    ],
    ids=[
        "5000-digit-int",
        "400-digit-int",
        "100000-nested",
        "now-9999",
        "now-year-1-offset",
        "money-true",
        "money-string",
        "spent-string",
        "price-bool",
        "pool-price-string",
        "replicas-bool",
        "replicas-huge",
        "quantity-huge",
    ],
)
def test_allocate_hostile_input_is_one_line_exit_2(
    tmp_path: Path, capsys: Any, monkeypatch: Any, text: str, expected: str
) -> None:
    path = tmp_path / "REQUEST.json"
    path.write_text(text)
    code, out, err = run(["budget", "allocate", "--input", str(path)], capsys, monkeypatch)
    _one_error_line(code, out, err, path, expected)


def _prod_yaml(old: str, new: str) -> str:
    text = (EXAMPLES / "prod.yaml").read_text()
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_prod_yaml("monthlyLimit: 500", "monthlyLimit: " + "9" * 5000), "more than 4,300 digits"),
        ("[" * 100_000, "nested too deeply"),
        ("spec: " + "[" * 100_000, "nested too deeply"),
        (
            _prod_yaml("monthlyLimit: 500", "monthlyLimit: yes"),
            "spec.monthlyLimit: expected a number, not a boolean",
        ),
        (
            _prod_yaml("monthlyLimit: 500", "monthlyLimit: true"),
            "spec.monthlyLimit: expected a number, not a boolean",
        ),
        (
            _prod_yaml("monthlyLimit: 500", "monthlyLimit: '500'"),
            "spec.monthlyLimit: expected a number, not a string",
        ),
        (_prod_yaml("hourlyLimit: 1.00", "hourlyLimit: on"), "spec.hourlyLimit: expected a number"),
        (
            _prod_yaml("alertThresholds: [50, 75, 90]", "alertThresholds: [50, yes]"),
            "spec.alertThresholds[1]",
        ),
        (
            _prod_yaml(
                "  defaultPriority: 0", "  defaultPriority: 0\n  prices: {gpuPerHour: '0.9'}"
            ),
            "spec.prices.gpuPerHour",
        ),
        (
            _prod_yaml(
                "  defaultPriority: 0",
                "  defaultPriority: 0\n  nodePools: {spot: {spotCpuPerCoreHour: yes}}",
            ),
            "spec.nodePools.spot.spotCpuPerCoreHour",
        ),
    ],
    ids=[
        "5000-digit-int",
        "100000-nested",
        "100000-nested-inside",
        "monthly-yes",
        "monthly-true",
        "monthly-quoted",
        "hourly-on",
        "threshold-yes",
        "price-quoted",
        "pool-price-yes",
    ],
)
def test_validate_hostile_input_is_one_line_exit_2(
    tmp_path: Path, capsys: Any, monkeypatch: Any, text: str, expected: str
) -> None:
    path = tmp_path / "budget.yaml"
    path.write_text(text)
    code, out, err = run(["budget", "validate", str(path)], capsys, monkeypatch)
    _one_error_line(code, out, err, path, expected)


def test_report_now_out_of_range_is_one_line(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    path = tmp_path / "ledger.json"
    path.write_text('{"version": 1, "ledgers": {}}')
    args = ["budget", "report", "--ledger", str(path), "--now", "9999-12-31T23:59:59Z"]
    code, out, err = run(args, capsys, monkeypatch)
    assert code == 2 and err.count("\n") == 1 and "--now: time 9999-12-31" in err


def test_validate_lists_every_problem(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    """Four mistakes in one file: four lines, each with its own line number, in order."""
    text = _prod_yaml("hourlyLimit: 1.00", "hourlyLimit: true")
    text = text.replace("monthlyLimit: 500", "monthlyLimit: -500").replace("pacing:", "pacng:")
    text = text.replace("alertThresholds: [50, 75, 90]", "alertThresholds: [50, 75, 2000]")
    text = text.replace("name: tooling", "name: compute")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    second = tmp_path / "second.yaml"
    second.write_text(_prod_yaml("mode: hard", "mode: strict"))
    code, out, err = run(["budget", "validate", str(bad), str(second)], capsys, monkeypatch)
    assert code == 2 and out == "" and "more problem" not in err

    def line_of(word: str) -> int:
        return next(i for i, t in enumerate(text.splitlines(), 1) if word in t)

    assert err.splitlines() == [
        f"error: {bad}:{line_of('hourlyLimit')}: spec.hourlyLimit: expected a number,"
        " not a boolean (YAML reads yes, no, on, off, true and false as booleans): write"
        " the amount as a number, e.g. 500 (got True)",
        f"error: {bad}:{line_of('monthlyLimit')}: spec.monthlyLimit: Input should be greater"
        " than or equal to 0 (got -500)",
        f"error: {bad}:{line_of('pacng')}: spec.pacng: unknown field 'pacng' (remove it or"
        " fix its spelling)",
        f"error: {bad}:{line_of('alertThresholds')}: spec.alertThresholds: alert thresholds"
        " ['2000'] are not percentages in (0, 1000] (got [50, 75, 2000])",
        f"error: {bad}:{line_of('priorityTiers')}: spec.priorityTiers: duplicate priority"
        " tier names ['compute'] (give each tier its own name) (got [{'name':"
        " 'customer-facing', 'priority': 100, 'workloads'...)",
        f"error: {second}:{line_of('mode:')}: spec.mode: Input should be 'hard' or 'soft'"
        " (got 'strict')",
    ]


def test_validate_every_document_and_duplicate_keys(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    good = (EXAMPLES / "prod.yaml").read_text()
    twice = good.replace("monthlyLimit: 500", "monthlyLimit: 500\n  monthlyLimit: 5000")
    path = tmp_path / "two.yaml"
    path.write_text(_prod_yaml("pacing: even", "pacing: fast") + "\n---\n" + twice)
    code, out, err = run(["budget", "validate", str(path)], capsys, monkeypatch)
    assert code == 2 and out.count("ok: ") == 0
    lines = err.splitlines()
    assert len(lines) == 2 and "spec.pacing" in lines[0]
    assert "duplicate key 'monthlyLimit'" in lines[1]
