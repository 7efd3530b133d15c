"""``ServerProcess``: the API server in a child process mirrors the parent's store.

Checks that what the controller publishes in the parent is served by the child (through
kubectl), that removals and replacements propagate, and that stop() ends the child.
"""

from __future__ import annotations

import json
import time

import pytest

from autoscaler.api.process import ServerProcess
from autoscaler.api.settings import ApiSettings
from autoscaler.store import DecisionStore, MetricValue
from tests.api.conftest import BASE, Kubectl

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "autoscaler_desired_replicas"
PATH = f"{BASE}/namespaces/prod/{NAME}"


def wait_for(kubectl: Kubectl, expected: dict[str, str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    seen: object = None
    while time.monotonic() < deadline:
        out = kubectl.raw(PATH)
        if out.returncode == 0:
            seen = {
                i["metricLabels"]["workload"]: i["value"] for i in json.loads(out.stdout)["items"]
            }
            if seen == expected:
                return
        elif expected == {} and "NotFound" in out.stderr:
            return
        time.sleep(0.1)
    raise AssertionError(f"child never served {expected}; last seen {seen}")


def test_child_mirrors_parent_store() -> None:
    store = DecisionStore()
    store.publish([MetricValue("prod", NAME, {"workload": "a"}, 2.0, time.time())])
    settings = ApiSettings(bind="127.0.0.1:0", insecure=True)
    server = ServerProcess(store, settings).start()
    try:
        kubectl = Kubectl(f"http://127.0.0.1:{server.port}")
        wait_for(kubectl, {"a": "2"})
        store.publish([MetricValue("prod", NAME, {"workload": "b"}, 7.5, time.time())])
        wait_for(kubectl, {"a": "2", "b": "7500m"})
        store.remove("prod", NAME, {"workload": "a"})
        wait_for(kubectl, {"b": "7500m"})
    finally:
        server.stop()
    assert not server._process.is_alive()
