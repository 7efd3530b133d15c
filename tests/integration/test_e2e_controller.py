"""End to end with real parts: Prometheus, the kmock cluster, our API server, kubectl.

1. ``test_served_metric_through_kubectl``: the controller reconciles PredictiveAutoscalers
   read from the Kubernetes API emulator with history from a real Prometheus, creates
   their HPAs, and the value it serves is read back with ``kubectl get --raw`` from our
   External Metrics API server: the same request the HPA controller makes.
2. ``test_closed_loop_through_the_hpa_emulator``: the whole loop in real time. Emulated
   pods receive load and count it on a small exporter; Prometheus scrapes it every
   second; the controller (its own thread, 2-s sync) forecasts and serves; the exact
   HPA emulator (``simulations.hpa``) reads our served metric over HTTP every 2 s and
   scales the Deployment in the API emulator; the controller reads the new replica
   count from there. A load step must end with enough replicas, without ever going
   below the minimum.
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from autoscaler.api.server import ServerThread, create_app
from autoscaler.api.settings import ApiSettings
from autoscaler.clock import WallClock
from autoscaler.controller import Controller
from autoscaler.kube.client import KubeClient, KubeSettings
from autoscaler.kube.cluster import KubeCluster
from autoscaler.ledger_store import LedgerStore
from autoscaler.metrics import ControllerMetrics
from autoscaler.settings import load_settings
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.store import DecisionStore
from policies.quantity import parse_quantity
from simulations.hpa import HorizontalController, replicas_from_external
from tests.controller.kmockharness import KmockCluster
from tests.integration.promfixture import PrometheusServer, free_port, require_prometheus
from tests.required import require_tool

pytestmark = pytest.mark.integration

PA = "autoscaling.predictive.io/v1alpha1/predictiveautoscalers"
DEPLOY = "apps/v1/deployments"
HPA = "autoscaling/v2/horizontalpodautoscalers"
METRIC = "autoscaler_desired_replicas"


def pa(name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "targetRef": {"name": name},
        "query": "rate(http_requests_total[2m])",
        "capacityPerReplica": 0.5,
        "forecaster": "last",
        "maxReplicas": 50,
    }
    body.update(spec)
    return {
        "apiVersion": "autoscaling.predictive.io/v1alpha1",
        "kind": "PredictiveAutoscaler",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}"},
        "spec": body,
    }


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {
                    "containers": [{"name": "app", "resources": {"requests": {"cpu": "250m"}}}]
                }
            },
        },
        "status": {"replicas": replicas},
    }


@pytest.fixture()
def cluster() -> Iterator[KmockCluster]:
    c = KmockCluster()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture()
def api() -> Iterator[tuple[DecisionStore, str]]:
    store = DecisionStore()
    settings = ApiSettings(bind="127.0.0.1:0", insecure=True)
    server = ServerThread(create_app(store, settings), settings)
    server.start()
    try:
        yield store, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def kubectl_raw(server: str, path: str) -> dict[str, Any]:
    kubectl = require_tool("kubectl", "the kubectl package, as on the CI machine")
    done = subprocess.run(
        [kubectl, "--kubeconfig=/dev/null", f"--server={server}", "get", "--raw", path],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def external_path(selector: dict[str, str]) -> str:
    query = urllib.parse.urlencode(
        {"labelSelector": ",".join(f"{k}={v}" for k, v in selector.items())}
    )
    return f"/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/{METRIC}?{query}"


def test_served_metric_through_kubectl(
    prometheus: PrometheusServer,
    cluster: KmockCluster,
    api: tuple[DecisionStore, str],
    tmp_path: Path,
) -> None:
    store, url = api
    for name in ("web", "api"):
        cluster.put(PA, "shop", name, pa(name))
        cluster.put(DEPLOY, "shop", name, deployment(name, 2))
    settings = load_settings(
        None,
        prometheus={"url": prometheus.url, "step_seconds": 60, "backfill_seconds": 21600},
        loop={"stale_after_seconds": 3600},
        ledger={"path": tmp_path / "ledger.json"},
        shadow={"path": tmp_path / "shadow.jsonl"},
    )
    client = KubeClient(KubeSettings(host=cluster.url))
    ctl = Controller(
        settings,
        PrometheusSource(settings.prometheus),
        KubeCluster(client),
        store,
        WallClock(),
        ControllerMetrics(),
        LedgerStore(settings.ledger.path),
    )
    report = ctl.reconcile()
    assert report.errors == ()
    for name in ("web", "api"):
        decided = report.by_key()[f"shop/{name}"]
        hpa = cluster.get(HPA, "shop", name)
        assert hpa is not None
        selector = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"]
        # Exactly what the HPA controller would ask for, through kubectl.
        answer = kubectl_raw(url, external_path(selector))
        assert answer["kind"] == "ExternalMetricValueList"
        (item,) = answer["items"]
        assert item["metricName"] == METRIC
        assert float(parse_quantity(item["value"], "value")) == pytest.approx(decided.served)
        assert decided.served >= 1


# --------------------------------------------------------------------------- closed loop


class Pods:
    """Emulated pods of one Deployment: they receive the offered load and count it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests",
            "Requests received.",
            ["namespace", "workload", "pod"],
            registry=registry,
        )
        self.replicas = 1
        self.load = 20.0  # requests per second offered to the workload
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        tick = 0.25
        while not self._stop.wait(tick):
            n = max(1, self.replicas)
            for i in range(n):  # the load balancer spreads requests evenly
                self.requests.labels("shop", "web", f"web-{i}").inc(self.load * tick / n)


@pytest.mark.slow
def test_closed_loop_through_the_hpa_emulator(
    cluster: KmockCluster, api: tuple[DecisionStore, str], tmp_path: Path
) -> None:
    require_prometheus()
    store, url = api
    registry = CollectorRegistry()
    pods = Pods(registry)
    port = free_port()
    start_http_server(port, addr="127.0.0.1", registry=registry)
    pods.start()
    server = PrometheusServer.start(
        tmp_path / "prom", scrape_targets=[f"127.0.0.1:{port}"], scrape_interval_s=1.0
    )
    capacity, utilization = 10.0, 0.8
    cluster.put(
        PA,
        "shop",
        "web",
        pa(
            "web",
            query="rate(http_requests_total[5s])",
            capacityPerReplica=capacity,
            targetUtilization=utilization,
            leadTimeSeconds=6,
            minReplicas=1,
            maxReplicas=30,
            fallback={"holdSeconds": 10},
        ),
    )
    cluster.put(DEPLOY, "shop", "web", deployment("web", 1))
    settings = load_settings(
        None,
        prometheus={"url": server.url, "step_seconds": 1, "backfill_seconds": 60},
        loop={"sync_seconds": 2, "stale_after_seconds": 10, "refit_seconds": 10},
        ledger={"path": tmp_path / "ledger.json"},
        shadow={"path": tmp_path / "shadow.jsonl"},
    )
    ctl = Controller(
        settings,
        PrometheusSource(settings.prometheus),
        KubeCluster(KubeClient(KubeSettings(host=cluster.url))),
        store,
        WallClock(),
        ControllerMetrics(),
        LedgerStore(settings.ledger.path),
    )
    stop = threading.Event()
    loop = threading.Thread(target=ctl.run, args=(stop,), daemon=True)
    hpa = HorizontalController(min_replicas=1, max_replicas=30, downscale_stabilization_seconds=30)
    history: list[tuple[Any, ...]] = []
    try:
        server.wait_for("sum(rate(http_requests_total[5s]))", timeout_s=20)
        loop.start()
        started = time.monotonic()
        selector = {"workload": "web", "predictiveautoscaler": "web"}
        needed_high = math.ceil(80.0 / (capacity * utilization))
        reached = None
        while time.monotonic() - started < 60:
            elapsed = time.monotonic() - started
            pods.load = 20.0 if elapsed < 10 else 80.0  # a step in load
            current = pods.replicas
            try:
                with urllib.request.urlopen(url + external_path(selector), timeout=5) as resp:
                    items = json.loads(resp.read())["items"]
            except OSError:
                items = []
            values = [int(parse_quantity(i["value"], "value") * 1000) for i in items]
            proposal = (
                replicas_from_external(current, values, "AverageValue", 1000) if values else None
            )
            new = hpa.sync(time.monotonic(), current, [proposal])
            if new != current:
                pods.replicas = new
                cluster.put(DEPLOY, "shop", "web", deployment("web", new))
            last = ctl.last_report.by_key().get("shop/web") if ctl.last_report else None
            seen = (last.observed_load, last.forecast_load) if last else (None, None)
            history.append((round(elapsed, 1), new, pods.load, *seen, values))
            assert new >= 1
            if elapsed > 10 and new >= needed_high and reached is None:
                reached = elapsed - 10
                # hold a few more syncs to see it stays up
            if reached is not None and elapsed - 10 > reached + 6:
                break
            time.sleep(2.0)
        print("closed loop (t, replicas, load, observed, forecast):", history)
        assert reached is not None, f"never reached {needed_high} replicas: {history}"
        # After the step, replicas never dropped back below what the load needs.
        after = [h[1] for h in history if h[0] - 10 > reached]
        assert all(r >= needed_high for r in after), history
        owned = cluster.get(HPA, "shop", "web")
        assert owned is not None and owned["spec"]["maxReplicas"] == 30
    finally:
        stop.set()
        loop.join(10)
        pods.stop()
        server.stop()
