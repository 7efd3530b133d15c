"""``autoscaler run --once --dry-run``, ``explain`` and ``report`` on a real Prometheus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli import build_app
from autoscaler.controller import Controller, read_shadow, shadow_report
from autoscaler.kube.cluster import StaticCluster
from autoscaler.ledger_store import LedgerStore
from autoscaler.settings import load_settings
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.store import DecisionStore
from simulations.clock import SimClock
from tests.controller.test_controller import REPLICA_PRICE, budget_doc, deployment, pa_doc
from tests.integration.promfixture import (
    PrometheusServer,
)


def write_config(tmp_path: Path, prom: PrometheusServer) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "prometheus": {"url": prom.url, "step_seconds": 60, "backfill_seconds": 21600},
                "loop": {"stale_after_seconds": 3600},
                "ledger": {"path": str(tmp_path / "ledger.json")},
                "shadow": {"path": str(tmp_path / "shadow.jsonl")},
            }
        )
    )
    return path


def write_objects(tmp_path: Path, docs: list[dict[str, Any]]) -> Path:
    path = tmp_path / "objects.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


DOCS = [
    pa_doc("shop", "web", priority=10, capacityPerReplica=0.2),
    pa_doc("shop", "api", capacityPerReplica=0.2),
    deployment("shop", "web", 3, cpu="1"),
    deployment("shop", "api", 3, cpu="1"),
    budget_doc("shop-prod", ["shop"], hourly=REPLICA_PRICE * 4 + 0.001),
]


def test_once_dry_run_prints_decisions_and_writes_nothing(
    prom: PrometheusServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, prom)
    objects = write_objects(tmp_path, DOCS)
    result = CliRunner().invoke(
        build_app(),
        [
            "run",
            "--once",
            "--dry-run",
            "--config",
            str(config),
            "--objects",
            str(objects),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {w["workload"] for w in out["workloads"]} == {"shop/web", "shop/api"}
    assert out["queries"] == 1
    assert sum(w["replicas"] for w in out["workloads"]) <= 4  # the budget holds
    assert not (tmp_path / "ledger.json").exists()  # dry run: no ledger write
    assert not (tmp_path / "shadow.jsonl").exists()


def test_explain_names_the_binding_budget(prom: PrometheusServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, prom)
    objects = write_objects(tmp_path, DOCS)
    result = CliRunner().invoke(
        build_app(), ["explain", "shop/api", "--config", str(config), "--objects", str(objects)]
    )
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "shop/api" in text and "forecast:" in text and "q0.9" in text
    assert "binding:    budget" in text
    assert "budget:     shop-prod" in text


def test_explain_unknown_workload_is_one_error_line(prom: PrometheusServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, prom)
    objects = write_objects(tmp_path, DOCS)
    result = CliRunner().invoke(
        build_app(), ["explain", "shop/nope", "--config", str(config), "--objects", str(objects)]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception) and "no such" in str(result.exception)


def test_bad_settings_file_is_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("loop: {sync_seconds: -3}\n")
    result = CliRunner().invoke(build_app(), ["run", "--once", "--config", str(bad)])
    assert result.exit_code != 0
    assert "loop.sync_seconds" in str(result.exception)


def test_shadow_report_compares_with_what_happened(
    prom: PrometheusServer, end: int, tmp_path: Path
) -> None:
    config = write_config(tmp_path, prom)
    settings = load_settings(config)
    docs = [pa_doc("shop", "web", mode="ForecastOnly"), deployment("shop", "web", 3)]
    cluster = StaticCluster.from_documents(docs)
    clock = SimClock(end - 3600)
    ctl = Controller(
        settings,
        PrometheusSource(settings.prometheus),
        cluster,
        DecisionStore(),
        clock,
        ledger=LedgerStore(settings.ledger.path),
    )
    for _ in range(60):  # one hour of ticks at 60 s
        ctl.reconcile()
        clock.sleep(60)
    records = read_shadow(settings.shadow.path)
    assert len(records) == 60
    (summary,) = shadow_report(records)
    assert summary.workload == "shop/web"
    assert summary.scored >= 50  # all but the last lead time
    assert summary.actual_mean == 3.0  # what ran: the Deployment's 3 replicas
    assert summary.predicted_mean >= 1
    result = CliRunner().invoke(build_app(), ["report", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "shop/web" in result.stdout


@pytest.mark.slow
def test_run_serves_until_sigterm(prom: PrometheusServer, tmp_path: Path) -> None:
    """The real entry point: loop + API server + /metrics, then a clean SIGTERM exit."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.integration.promfixture import free_port

    api_port, metrics_port = free_port(), free_port()
    config = tmp_path / "settings.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "prometheus": {"url": prom.url, "step_seconds": 60, "backfill_seconds": 21600},
                "loop": {"stale_after_seconds": 3600, "sync_seconds": 1},
                "ledger": {"path": str(tmp_path / "ledger.json")},
                "shadow": {"path": str(tmp_path / "shadow.jsonl")},
                "api": {"bind": f"127.0.0.1:{api_port}", "insecure": True},
                "observability": {"metrics_port": metrics_port, "metrics_addr": "127.0.0.1"},
            }
        )
    )
    objects = write_objects(tmp_path, DOCS)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from autoscaler.cli import main; main()"]
        + ["run", "--config", str(config)]
        + ["--objects", str(objects)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = (
            f"http://127.0.0.1:{api_port}/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/"
            "autoscaler_desired_replicas?labelSelector=workload%3Dweb"
        )
        items: list[Any] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not items:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    items = json.loads(resp.read())["items"]
            except OSError:
                pass
            time.sleep(0.3)
        assert items, "the API never served a value"
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert "autoscaler_workload_served_replicas" in text
        # The API child's request latency is scraped here too (AutoscalerApiLatencyHigh).
        assert 'autoscaler_api_request_duration_seconds_count{code="200",endpoint="list"}' in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        logs = proc.stderr.read().decode() if proc.stderr else ""
        first = next(line for line in logs.splitlines() if line.startswith("{"))
        assert json.loads(first)["level"] in {"info", "warning"}  # structured JSON logs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_once_dry_run_against_the_kubernetes_api(prom: PrometheusServer, tmp_path: Path) -> None:
    from tests.controller.kmockharness import KmockCluster

    cluster = KmockCluster()
    try:
        kinds = {
            "PredictiveAutoscaler": "autoscaling.predictive.io/v1alpha1/predictiveautoscalers",
            "CostBudget": "autoscaling.predictive.io/v1alpha1/costbudgets",
            "Deployment": "apps/v1/deployments",
        }
        for doc in DOCS:
            meta = doc["metadata"]
            cluster.put(kinds[doc["kind"]], meta.get("namespace"), meta["name"], doc)
        config = write_config(tmp_path, prom)
        text = config.read_text() + f"kube: {{host: '{cluster.url}'}}\n"
        config.write_text(text)
        result = CliRunner().invoke(
            build_app(), ["run", "--once", "--dry-run", "--config", str(config), "--json"]
        )
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert {w["workload"] for w in out["workloads"]} == {"shop/web", "shop/api"}
        writes = [r for r in cluster.requests() if r.method.value in {"POST", "PATCH", "PUT"}]
        assert writes == []  # dry run: reads only
    finally:
        cluster.close()
