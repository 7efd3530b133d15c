"""Partial data must not scale down into an outage (acceptance, run as a user would).

A real Prometheus holds 6 h of ``http_requests_total`` from four pods of ``shop/web``
at 25 req/s each; pods 2 and 3 stop being scraped in the last 4 minutes (overloaded
pods fail scrapes first). ``sum(rate(...))`` halves while every remaining series is
fresh. ``autoscaler run --once --dry-run --json`` on a Deployment running 12 replicas
must not decide fewer than 12; the control, with every pod scraped, decides 10-16
(100 req/s at 10 req/s per replica and the 85 % target needs 12).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.promfixture import start_partial_scrape

pytestmark = pytest.mark.integration

OBJECTS: list[dict[str, Any]] = [
    {
        "apiVersion": "autoscaling.predictive.io/v1alpha1",
        "kind": "PredictiveAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "targetRef": {"name": "web"},
            "query": "rate(http_requests_total[2m])",
            "capacityPerReplica": 10,
        },
    },
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "replicas": 12,
            "template": {
                "spec": {
                    "containers": [{"name": "app", "resources": {"requests": {"cpu": "500m"}}}]
                }
            },
        },
        "status": {"replicas": 12, "readyReplicas": 12},
    },
]


def _decide(tmp_path: Path, stopped: tuple[str, ...] | None) -> dict[str, Any]:
    kwargs = {} if stopped is None else {"stopped": stopped}
    with start_partial_scrape(tmp_path / "prom", **kwargs) as prom:
        settings = tmp_path / "s.yaml"
        settings.write_text(
            yaml.safe_dump(
                {
                    "prometheus": {"url": prom.url},
                    "ledger": {"path": str(tmp_path / "ledger.json")},
                    "shadow": {"path": str(tmp_path / "shadow.jsonl")},
                    "observability": {"metrics_port": 0},
                }
            )
        )
        objects = tmp_path / "o.yaml"
        objects.write_text(yaml.safe_dump_all(OBJECTS))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOSCALER_")}
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "autoscaler"),
                "run",
                "--once",
                "--dry-run",
                "--json",
                "--config",
                str(settings),
                "--objects",
                str(objects),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    (web,) = [w for w in report["workloads"] if w["workload"] == "shop/web"]
    return dict(web)


def test_partial_scrape_does_not_scale_down(tmp_path: Path) -> None:
    web = _decide(tmp_path, None)
    assert web["replicas"] >= 12, web
    assert web["fallback"] and "partial data" in web["reason"], web


def test_every_pod_scraped_decides_what_the_load_needs(tmp_path: Path) -> None:
    web = _decide(tmp_path, ())
    assert 10 <= web["replicas"] <= 16, web
    assert not web["fallback"], web
