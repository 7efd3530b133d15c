"""``autoscaler simulate --objects``: the user's own objects through the controller.

The acceptance case of the "one loop" issue, on a seeded synthetic trace (not a
bundled one): a PredictiveAutoscaler ``prod/refinory-ai`` (20 req/s per replica), its
Deployment (500m / 1Gi: $0.020043/h per replica at OpenCost's default prices) and a
hard CostBudget of $0.50/h, replayed with two metrics outages. The budget allows 24
replicas and must never be exceeded; during an outage the replicas never go below the
lowest of the five minutes before the data stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
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
  query: rate(http_requests_total{workload="refinory-ai"}[2m])
  capacityPerReplica: 20
  leadTimeSeconds: 105
  maxReplicas: 100
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: refinory-ai, namespace: prod}
spec:
  replicas: 4
  template:
    spec:
      containers:
      - name: app
        resources:
          requests: {cpu: 500m, memory: 1Gi}
---
apiVersion: autoscaling.predictive.io/v1alpha1
kind: CostBudget
metadata: {name: prod}
spec:
  environment: prod
  selector: {namespaces: [prod]}
  mode: hard
  hourlyLimit: 0.50
"""

OUTAGES = [(26 * 60, 10), (40 * 60, 20)]  # minutes from the start, minutes long


def _trace(path: Path, days: float = 2.0) -> Path:
    """Per-second rates with a daily cycle whose peak (~700/s) needs ~41 replicas."""
    rng = np.random.default_rng(17)
    n = int(days * 1440)
    t = np.arange(n) / 1440.0
    rate = 330 + 300 * np.sin(2 * np.pi * (t - 0.3)) + 25 * rng.standard_normal(n)
    return write_trace(path, list(np.round(np.maximum(rate, 5.0))))


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), args)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def timeline(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    d = tmp_path_factory.mktemp("objects")
    (d / "o.yaml").write_text(OBJECTS)
    out = d / "tl.csv"
    args = [
        "simulate", "--objects", str(d / "o.yaml"), "--trace", str(_trace(d / "t.csv")),
        "--value-unit", "per-second", "--days", "2", "--startup-seconds", "90",
        "--slo-utilization", "0.85", "--no-frontier", "--timeline", str(out),
    ]  # fmt: skip
    for off, dur in OUTAGES:
        args += ["--outage", f"{off}m/{dur}m"]
    code, text = _run(args)
    assert code == 0, text
    assert "predictive" in text
    return pd.read_csv(out, parse_dates=["timestamp"])


def test_rows_are_named_predictive_and_keep_the_columns(timeline: pd.DataFrame) -> None:
    assert set(timeline["policy"]) == {"predictive"}
    assert list(timeline.columns[:6]) == [
        "timestamp", "policy", "demand", "replicas", "ready_replicas", "pods",
    ]  # fmt: skip
    for column in ("hpa_max_replicas", "budget_clamped", "spend_dollars", "fallback"):
        assert column in timeline.columns


def test_a_hard_budget_of_050_per_hour_never_runs_more_than_24(timeline: pd.DataFrame) -> None:
    assert timeline["pods"].max() <= 24
    assert timeline["replicas"].max() <= 24
    assert timeline["budget_clamped"].any(), "the budget never bound"
    assert (timeline["hpa_max_replicas"] == 24).any()  # the owned HPA's maxReplicas
    hourly = timeline["pods"] * 0.0200425
    assert hourly.max() <= 0.50


def test_an_outage_never_makes_a_new_low(timeline: pd.DataFrame) -> None:
    t0 = timeline["timestamp"].iloc[0]
    for off, dur in OUTAGES:
        start = t0 + pd.Timedelta(minutes=off)
        end = start + pd.Timedelta(minutes=dur)
        before = timeline[
            (timeline["timestamp"] >= start - pd.Timedelta(minutes=5))
            & (timeline["timestamp"] < start)
        ]
        during = timeline[(timeline["timestamp"] >= start) & (timeline["timestamp"] < end)]
        assert during["fallback"].all(), "the outage did not reach the controller"
        assert during["replicas"].min() >= before["replicas"].min()


@pytest.mark.parametrize(
    ("objects", "outage", "message"),
    [
        (OBJECTS.split("---")[0], "1h/5m", "its target Deployment prod/refinory-ai"),
        (OBJECTS + "---\n" + OBJECTS.split("---")[0].replace("refinory-ai", "b"), "1h/5m",
         "one PredictiveAutoscaler"),
        (OBJECTS, "1h", "is not OFFSET/DURATION"),
        (OBJECTS, "1h/-5m", "is not a duration"),
        ("kind: [", "1h/5m", "not valid YAML"),
    ],
)  # fmt: skip
def test_bad_objects_and_outages_are_one_line(
    tmp_path: Path,
    objects: str,
    outage: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through the console script's entry point: one line on stderr, exit 2."""
    (tmp_path / "o.yaml").write_text(objects)
    monkeypatch.setattr(
        sys,
        "argv",
        ["autoscaler", "simulate", "--objects", str(tmp_path / "o.yaml"),
         "--trace", str(_trace(tmp_path / "t.csv", 0.2)), "--value-unit", "per-second",
         "--no-frontier", "--outage", outage],
    )  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
