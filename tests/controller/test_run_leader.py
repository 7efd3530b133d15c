"""``autoscaler run`` against the Kubernetes API (kmock) with leader election on.

The wiring of the entry point: the elector's ``is_leader()`` gates the controller's
writes and ``seconds_left`` fences the client. The process must take the Lease, write
the owned HPAs and the statuses as leader, and release the Lease on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.controller.kmockharness import KmockCluster
from tests.controller.test_cli_run import DOCS
from tests.integration.promfixture import PrometheusServer, free_port

KINDS = {
    "PredictiveAutoscaler": "autoscaling.predictive.io/v1alpha1/predictiveautoscalers",
    "CostBudget": "autoscaling.predictive.io/v1alpha1/costbudgets",
    "Deployment": "apps/v1/deployments",
}
HPA = "autoscaling/v2/horizontalpodautoscalers"
LEASES = "coordination.k8s.io/v1/leases"


def test_run_takes_the_lease_writes_as_leader_and_releases(
    prom: PrometheusServer, tmp_path: Path
) -> None:
    cluster = KmockCluster()
    proc = None
    try:
        for doc in DOCS:
            meta = doc["metadata"]
            cluster.put(KINDS[doc["kind"]], meta.get("namespace"), meta["name"], doc)
        config = tmp_path / "settings.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "prometheus": {
                        "url": prom.url,
                        "step_seconds": 60,
                        "backfill_seconds": 21600,
                    },
                    "loop": {"stale_after_seconds": 3600, "sync_seconds": 1},
                    "ledger": {"path": str(tmp_path / "ledger.json")},
                    "shadow": {"path": str(tmp_path / "shadow.jsonl")},
                    "api": {"bind": f"127.0.0.1:{free_port()}", "insecure": True},
                    "observability": {"metrics_port": 0},
                    "kube": {"host": cluster.url},
                    "leader": {
                        "namespace": "ops",
                        "identity": "pod-a",
                        "lease_duration_seconds": 3,
                        "renew_deadline_seconds": 2,
                        "retry_period_seconds": 0.5,
                    },
                }
            )
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", "from autoscaler.cli import main; main()"]
            + ["run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 40
        hpa = status = None
        while time.monotonic() < deadline and not (hpa and status):
            assert proc.poll() is None, "autoscaler run exited early"
            hpa = cluster.get(HPA, "shop", "web")
            pa = cluster.get(KINDS["PredictiveAutoscaler"], "shop", "web")
            status = (pa or {}).get("status")
            time.sleep(0.3)
        assert hpa is not None, "the leader never wrote the owned HPA"
        assert status, "the leader never wrote the PA status"
        lease = cluster.get(LEASES, "ops", "predictive-autoscaler-leader")
        assert lease is not None and lease["spec"]["holderIdentity"] == "pod-a"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        lease = cluster.get(LEASES, "ops", "predictive-autoscaler-leader")
        assert lease is not None and lease["spec"]["holderIdentity"] == ""  # released
        logs = proc.stderr.read().decode() if proc.stderr else ""
        events = [json.loads(x).get("event") for x in logs.splitlines() if x.startswith("{")]
        assert "leader_acquired" in events
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        cluster.close()
