"""The staleness policy: a decision older than ``max_age_seconds`` is not served.

Policy (docs/api.md): a stale series is left out of the list, so the HPA gets no value for
that metric and holds its replica count (``FailedGetExternalMetric``); it is never turned
into zero. The metric stays known (200 with ``items: []``, not 404). Also checks that the
response cache never serves a value past its age, and that republishing revives it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from autoscaler.api.server import ServerThread, create_app
from autoscaler.api.settings import ApiSettings
from autoscaler.store import DecisionStore, MetricValue
from tests.api.conftest import Kubectl, ManualClock

pytestmark = pytest.mark.integration

MAX_AGE = 120.0
NAME = "autoscaler_desired_replicas"


@pytest.fixture
def setup() -> Iterator[tuple[DecisionStore, ManualClock, client.CustomObjectsApi, Kubectl]]:
    clock = ManualClock(1_800_000_000.0)
    store = DecisionStore()
    settings = ApiSettings(bind="127.0.0.1:0", insecure=True, max_age_seconds=MAX_AGE)
    with ServerThread(create_app(store, settings, clock=clock), settings) as server:
        cfg = client.Configuration()
        cfg.host = f"http://127.0.0.1:{server.port}"
        api = client.ApiClient(cfg)
        yield store, clock, client.CustomObjectsApi(api), Kubectl(cfg.host)
        api.close()


def served(api: client.CustomObjectsApi, selector: str = "") -> dict[str, str]:
    body = api.list_namespaced_custom_object(
        "external.metrics.k8s.io", "v1beta1", "prod", NAME, label_selector=selector
    )
    assert body["items"] is not None
    return {i["metricLabels"]["workload"]: i["value"] for i in body["items"]}


def test_stale_series_left_out_fresh_ones_served(
    setup: tuple[DecisionStore, ManualClock, client.CustomObjectsApi, Kubectl],
) -> None:
    store, clock, api, kubectl = setup
    t0 = clock.now()
    store.publish(
        [
            MetricValue("prod", NAME, {"workload": "old"}, 4.0, t0 - 100.0),
            MetricValue("prod", NAME, {"workload": "new"}, 7.0, t0),
        ]
    )
    assert served(api) == {"old": "4", "new": "7"}  # both fresh; answer is now cached
    clock.t = t0 + 19.0  # "old" is 119 s old: still fresh
    assert served(api) == {"old": "4", "new": "7"}
    clock.t = t0 + 20.0  # "old" reaches MAX_AGE: stale, even though the answer was cached
    assert served(api) == {"new": "7"}
    assert served(api, "workload=old") == {}  # 200 with items [], never null, never 404
    clock.t = t0 + MAX_AGE + 1.0
    assert served(api) == {}
    metrics = kubectl.raw("/metrics").stdout
    line = next(
        ln for ln in metrics.splitlines() if ln.startswith("autoscaler_api_stale_items_total")
    )
    assert float(line.split()[-1]) >= 3
    # The controller publishes again: served again.
    store.publish([MetricValue("prod", NAME, {"workload": "old"}, 5.0, clock.now())])
    assert served(api) == {"old": "5"}


def test_future_timestamps_are_served(
    setup: tuple[DecisionStore, ManualClock, client.CustomObjectsApi, Kubectl],
) -> None:
    """Clock skew between controller and API replicas must not hide a fresh value."""
    store, clock, api, _ = setup
    store.publish([MetricValue("prod", NAME, {"workload": "skew"}, 2.0, clock.now() + 5.0)])
    assert served(api) == {"skew": "2"}
