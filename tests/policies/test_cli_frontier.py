"""``autoscaler budget frontier``: what a bigger budget buys, on the user's own objects.

The acceptance case: a hand-written PredictiveAutoscaler ``prod/refinory-ai`` (20
req/s per replica), its Deployment (500m / 1Gi: $0.020043/h a replica) and a hard
CostBudget ``prod``, replayed over 3 days of a trace no test or tuning has seen (made
here from a fixed seed: per-second rates, two daily peaks, a quiet weekend-like third
day, bursts; its peak needs ~40 replicas) at caps of $0.25, 0.35, 0.5, 0.7 and 1.0 an
hour, and uncapped. Each cap's average hourly cost stays within it; SLO-violation
minutes never grow with the cap, and the largest cap violates less than the smallest.

Then two autoscalers in two priority tiers under a cap that binds: the higher tier
gets more of what it wanted (its replicas uncapped). And bad input is one line, exit 2.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from autoscaler.cli import build_app, main
from tests.simulations.test_engine import write_trace

OBJECTS = """\
apiVersion: autoscaling.predictive.io/v1alpha1
kind: PredictiveAutoscaler
metadata: {name: refinory-ai, namespace: prod}
spec:
  targetRef: {name: refinory-ai}
  query: sum by (namespace, workload) (rate(http_requests_total{namespace="prod"}[2m]))
  capacityPerReplica: 20
  leadTimeSeconds: 105
  minReplicas: 2
  maxReplicas: 80
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: refinory-ai, namespace: prod}
spec:
  replicas: 6
  template:
    spec:
      containers:
      - name: app
        image: refinory-ai:1.4
        resources:
          requests: {cpu: 500m, memory: 1Gi}
          limits: {cpu: "1", memory: 1Gi}
---
apiVersion: autoscaling.predictive.io/v1alpha1
kind: CostBudget
metadata: {name: prod}
spec:
  environment: prod
  selector: {namespaces: [prod]}
  mode: hard
  hourlyLimit: 0.50
  monthlyLimit: 400
  pacing: none
"""

CAPS = (0.25, 0.35, 0.5, 0.7, 1.0)
SEED = 20261205


def unseen_trace(path: Path, days: float = 3.0, seed: int = SEED) -> Path:
    """Per-second rates, one row a minute: a morning and an evening peak, a lighter
    third day, AR(1) noise and a few bursts; the peak (~700/s) needs ~40 replicas at
    20/s and 85 %."""
    rng = np.random.default_rng(seed)
    n = int(days * 1440)
    t = np.arange(n) / 1440.0
    hour = (t % 1.0) * 24
    day = np.floor(t)
    shape = (
        0.25
        + 0.55 * np.exp(-(((hour - 10.5) / 2.2) ** 2))
        + 0.75 * np.exp(-(((hour - 19.0) / 2.6) ** 2))
    )
    level = np.where(day == 2, 0.7, 1.0)  # a quieter third day
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.9 * noise[i - 1] + rng.normal(0.0, 0.03)
    bursts = np.zeros(n)
    for start in rng.choice(n - 40, size=int(3 * days), replace=False):
        length = int(rng.integers(8, 30))
        bursts[start : start + length] += rng.uniform(0.1, 0.3)
    rate = 560.0 * level * shape * (1.0 + noise + bursts)
    return write_trace(path, list(np.round(np.maximum(rate, 3.0), 1)))


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), args)
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


@pytest.fixture(scope="module")
def acceptance(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Path]:
    d = tmp_path_factory.mktemp("frontier")
    (d / "objects.yaml").write_text(OBJECTS)
    png = d / "frontier.png"
    args = [
        "budget", "frontier", "--objects", str(d / "objects.yaml"),
        "--trace", str(unseen_trace(d / "unseen.csv")), "--value-unit", "per-second",
        "--days", "3", "--startup-seconds", "90",
        "--caps", ",".join(f"{c:g}" for c in CAPS), "--workers", "2",
        "--json", "--png", str(png),
    ]  # fmt: skip
    began = time.monotonic()
    code, text = _run(args)
    print(f"budget frontier, 3 days, 6 runs: {time.monotonic() - began:.1f} s")
    assert code == 0, text
    rows = json.loads(text)
    return rows, png


def test_one_row_per_cap_and_one_uncapped(acceptance: tuple[list[dict[str, Any]], Path]) -> None:
    rows, png = acceptance
    assert [r["hourlyLimit"] for r in rows] == [*CAPS, None]
    for r in rows:
        for key in ("averageHourlyCost", "monthlyCost", "sloViolationMinutes", "tauU"):
            assert isinstance(r[key], float | int), (key, r)
        assert r["monthlyCost"] == pytest.approx(r["averageHourlyCost"] * 730, rel=1e-4)
        assert r["peakHourlyCost"] >= r["averageHourlyCost"]
        assert [t["tier"] for t in r["tiers"]] == ["default"]
    assert png.exists() and png.stat().st_size > 10_000


def test_each_cap_holds_and_more_money_buys_slo(
    acceptance: tuple[list[dict[str, Any]], Path],
) -> None:
    rows, _ = acceptance
    capped = rows[:-1]
    for r in capped:
        assert r["averageHourlyCost"] <= r["hourlyLimit"], r
        # hard: the pods that ran never cost more than the cap either.
        assert r["peakHourlyCost"] <= r["hourlyLimit"] * (1 + 1e-9), r
    minutes = [r["sloViolationMinutes"] for r in capped]
    assert all(b <= a for a, b in zip(minutes, minutes[1:], strict=False)), minutes
    assert minutes[-1] < minutes[0]
    costs = [r["averageHourlyCost"] for r in capped]
    assert all(b >= a for a, b in zip(costs, costs[1:], strict=False)), costs
    # The smallest cap binds; uncapped wants more than it.
    assert capped[0]["clampedPercent"] > 0
    assert rows[-1]["averageHourlyCost"] > capped[0]["averageHourlyCost"]


def test_the_current_cap_scores_as_simulate_objects_does(tmp_path: Path) -> None:
    """Same objects, trace and flags: the frontier's run at the budget's own cap is the
    ``simulate --objects`` predictive row (the same demand, the same controller)."""
    objects = OBJECTS.replace("hourlyLimit: 0.50", "hourlyLimit: 0.20")
    (tmp_path / "o.yaml").write_text(objects)
    trace = str(unseen_trace(tmp_path / "t.csv", days=0.6, seed=SEED + 2))
    common = ["--objects", str(tmp_path / "o.yaml"), "--trace", trace,
              "--value-unit", "per-second", "--startup-seconds", "90", "--days", "0.5"]  # fmt: skip
    code, text = _run(["simulate", *common, "--no-frontier", "--json", "--workers", "1"])
    assert code == 0, text
    want = json.loads(text)["policies"]["predictive"]
    code, text = _run(["budget", "frontier", *common, "--caps", "0.2", "--json", "--workers", "1"])
    assert code == 0, text
    got = json.loads(text)[0]
    assert got["hourlyLimit"] == 0.2
    assert want["budget_clamped_ticks"] > 0, "the cap never bound"
    assert got["sloViolationMinutes"] == pytest.approx(want["slo_violation_minutes"], abs=1e-6)
    assert got["tauU"] == pytest.approx(want["tau_u_pct"], abs=1e-5)
    hours = got["hoursReplayed"]
    assert got["averageHourlyCost"] * hours == pytest.approx(want["cost_usd"], rel=1e-5)


TIERS = """\
apiVersion: autoscaling.predictive.io/v1alpha1
kind: PredictiveAutoscaler
metadata: {name: checkout, namespace: shop}
spec:
  targetRef: {name: checkout}
  query: rate(http_requests_total{workload="checkout"}[2m])
  capacityPerReplica: 20
  leadTimeSeconds: 105
  maxReplicas: 60
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: checkout, namespace: shop}
spec:
  template:
    spec:
      containers:
      - name: app
        resources:
          requests: {cpu: 500m, memory: 1Gi}
---
apiVersion: autoscaling.predictive.io/v1alpha1
kind: PredictiveAutoscaler
metadata: {name: reports, namespace: shop}
spec:
  targetRef: {name: reports}
  query: rate(http_requests_total{workload="reports"}[2m])
  capacityPerReplica: 20
  leadTimeSeconds: 105
  maxReplicas: 60
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reports, namespace: shop}
spec:
  template:
    spec:
      containers:
      - name: app
        resources:
          requests: {cpu: 500m, memory: 1Gi}
---
apiVersion: autoscaling.predictive.io/v1alpha1
kind: CostBudget
metadata: {name: shop}
spec:
  environment: shop
  selector: {namespaces: [shop]}
  mode: hard
  hourlyLimit: 0.4
  priorityTiers:
  - {name: critical, priority: 100, workloads: [shop/checkout]}
  - {name: best-effort, priority: 10, workloads: [shop/reports]}
"""


def test_the_higher_tier_gets_more_of_what_it_wanted(tmp_path: Path) -> None:
    (tmp_path / "o.yaml").write_text(TIERS)
    trace = unseen_trace(tmp_path / "t.csv", days=0.5, seed=SEED + 1)
    code, text = _run(
        ["budget", "frontier", "--objects", str(tmp_path / "o.yaml"), "--trace", str(trace),
         "--value-unit", "per-second", "--startup-seconds", "90", "--caps", "0.3",
         "--share", "shop/checkout=0.6", "--share", "shop/reports=0.6",
         "--workers", "2", "--json"]
    )  # fmt: skip
    assert code == 0, text
    rows = json.loads(text)
    assert [r["hourlyLimit"] for r in rows] == [0.3, 0.4, None]  # + the budget's own
    binding = rows[0]
    assert binding["averageHourlyCost"] <= 0.3
    assert binding["clampedPercent"] > 0
    tiers = {t["tier"]: t for t in binding["tiers"]}
    assert list(tiers) == ["critical", "best-effort"]  # highest priority first
    assert tiers["critical"]["workloads"] == ["shop/checkout"]
    critical, best_effort = tiers["critical"], tiers["best-effort"]
    # Same load, same size: uncapped they want the same; capped, the higher tier
    # keeps more of it.
    assert critical["uncappedAverageReplicas"] == pytest.approx(
        best_effort["uncappedAverageReplicas"], rel=0.05
    )
    assert critical["shareOfUncapped"] > best_effort["shareOfUncapped"] + 0.1
    workloads = {w["name"]: w for w in binding["workloads"]}
    assert (
        workloads["shop/checkout"]["sloViolationMinutes"]
        < workloads["shop/reports"]["sloViolationMinutes"]
    )


def test_text_output_names_the_tiers(tmp_path: Path) -> None:
    (tmp_path / "o.yaml").write_text(TIERS)
    trace = unseen_trace(tmp_path / "t.csv", days=0.1)
    code, text = _run(
        ["budget", "frontier", "--objects", str(tmp_path / "o.yaml"), "--trace", str(trace),
         "--value-unit", "per-second", "--caps", "0.4", "--workers", "1"]
    )  # fmt: skip
    assert code == 0, text
    assert "uncapped" in text and "0.400*" in text
    assert "critical (priority 100): shop/checkout" in text
    assert "avg $/h x 730 h" in text


DEV = """---
apiVersion: autoscaling.predictive.io/v1alpha1
kind: CostBudget
metadata: {name: dev}
spec: {environment: dev, selector: {namespaces: [dev]}, hourlyLimit: 0.1}
"""

#: an autoscaler and its Deployment in namespace dev (charged to the dev budget).
DEV_APP = "---\n" + "---".join(TIERS.split("---")[:2]).replace("shop", "dev")


@pytest.mark.parametrize(
    ("objects", "extra", "message"),
    [
        (OBJECTS.split("---\napiVersion: autoscaling.predictive.io/v1alpha1\nkind: CostBudget")[0],
         [], "no CostBudget in the files"),
        (OBJECTS, ["--caps", "0.3,lots"], "'lots' is not a number"),
        (OBJECTS, ["--caps", "0.3,-1"], "'-1' is not a dollar amount >= 0"),
        (OBJECTS, ["--caps", "0.3", "--share", "prod/nope=0.5"],
         "no PredictiveAutoscaler 'prod/nope'"),
        (OBJECTS, ["--caps", "0.3", "--share", "prod/refinory-ai=half"], "is not a number"),
        (OBJECTS, ["--caps", "0.3", "--budget", "dev"], "no CostBudget 'dev'"),
        (OBJECTS + DEV, ["--caps", "0.3", "--budget", "dev"], "'dev' covers none of the"),
        (OBJECTS + DEV + DEV_APP, [], "several CostBudgets cover the autoscalers (prod, dev)"),
        ("kind: [", [], "not valid YAML"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(
    tmp_path: Path,
    objects: str,
    extra: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through the console script's entry point: one line on stderr, exit 2."""
    (tmp_path / "o.yaml").write_text(objects)
    args = ["autoscaler", "budget", "frontier", "--objects", str(tmp_path / "o.yaml"),
            "--trace", str(unseen_trace(tmp_path / "t.csv", 0.05)), "--value-unit",
            "per-second"]  # fmt: skip
    if "--caps" not in extra:
        extra = [*extra, "--caps", "0.3"]
    monkeypatch.setattr(sys, "argv", args + extra)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_docs_show_these_objects_and_the_picture() -> None:
    """docs/finance.md's example is this test's: same objects, and the PNG is there."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "finance.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- frontier-objects -->\s*```yaml\n(.*?)```", text, re.S)
    assert match, "no ```yaml block after <!-- frontier-objects --> in docs/finance.md"
    assert match.group(1) == OBJECTS
    assert "img/budget-frontier.png" in text
    assert (root / "docs" / "img" / "budget-frontier.png").stat().st_size > 10_000
