"""Section 4 of the spec (checks 1-14), driven through kubectl and the kubernetes client.

Every check is one test named after its number. kubectl cannot set headers, so the
checks about ``Accept`` headers and Status bodies use the official kubernetes Python
client (``ApiClient.call_api`` / ``CustomObjectsApi``); neither is a hand-made HTTP call.
Check 15 (auth) lives in test_auth.py.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from kubernetes import client
from kubernetes.utils.quantity import parse_quantity

from autoscaler.api.server import ServerThread, create_app
from autoscaler.api.settings import ApiSettings
from autoscaler.store import DecisionStore
from tests.api.conftest import BASE, Kubectl, raw_call, section4_store

pytestmark = pytest.mark.integration

LIST = f"{BASE}/namespaces/default/queue_depth"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def kube(base_url: str) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    cfg.host = base_url
    api = client.ApiClient(cfg)
    yield api
    api.close()


def get_json(kubectl: Kubectl, path: str) -> Any:
    out = kubectl.raw(path)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def milli(value: str) -> int:
    """MilliValue as the HPA computes it: the reference parser's value, rounded up."""
    return math.ceil(parse_quantity(value) * Decimal(1000))


def labels_of(body: dict[str, Any]) -> list[str]:
    return sorted(item["metricLabels"].get("queue", "") for item in body["items"])


def test_check01_resource_list(kubectl: Kubectl) -> None:
    body = get_json(kubectl, BASE)
    assert body["kind"] == "APIResourceList"
    assert body["apiVersion"] == "v1"
    assert body["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    entry = {
        "name": "queue_depth",
        "singularName": "",
        "namespaced": True,
        "kind": "ExternalMetricValueList",
        "verbs": ["get"],
    }
    assert entry in body["resources"]
    for res in body["resources"]:
        assert res["name"] == res["name"].lower() and "/" not in res["name"]


def test_check01_content_type_json_and_fast(kube: client.ApiClient) -> None:
    start = time.monotonic()
    status, ctype, _ = raw_call(kube, BASE, "application/json")
    assert time.monotonic() - start < 1.0  # the aggregator's probe has a short timeout
    assert status == 200 and ctype == "application/json"


def test_check02_no_metrics_is_empty_list() -> None:
    settings = ApiSettings(bind="127.0.0.1:0", insecure=True)
    with ServerThread(create_app(DecisionStore(), settings), settings) as server:
        body = get_json(Kubectl(f"http://127.0.0.1:{server.port}"), BASE)
    assert body["resources"] == []


def test_check03_group_and_group_list(kubectl: Kubectl) -> None:
    group = get_json(kubectl, "/apis/external.metrics.k8s.io")
    gv = {"groupVersion": "external.metrics.k8s.io/v1beta1", "version": "v1beta1"}
    assert group["kind"] == "APIGroup"
    assert group["versions"][0] == gv and group["preferredVersion"] == gv
    groups = get_json(kubectl, "/apis")
    assert groups["kind"] == "APIGroupList"
    assert group in [{**g, "kind": "APIGroup", "apiVersion": "v1"} for g in groups["groups"]]


def test_check04_aggregated_discovery_falls_back(kube: client.ApiClient) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    status, ctype, body = raw_call(kube, "/apis", accept)
    # Not a v2 answer (plain JSON 200): the aggregator falls back to check 1. Never 503.
    assert status == 200 and "apidiscovery" not in ctype
    assert json.loads(body)["kind"] == "APIGroupList"
    status, _, _ = raw_call(kube, BASE, "application/json")
    assert status == 200


def test_check05_list(kubectl: Kubectl) -> None:
    body = get_json(kubectl, LIST)
    assert body["kind"] == "ExternalMetricValueList"
    assert body["apiVersion"] == "external.metrics.k8s.io/v1beta1"
    assert body["metadata"] == {}
    assert len(body["items"]) == 2
    for item in body["items"]:
        assert item["metricName"] == "queue_depth"
        assert isinstance(item["metricLabels"], dict)
        assert TS.match(item["timestamp"])
        assert isinstance(item["value"], str)
    values = {item["metricLabels"]["queue"]: item["value"] for item in body["items"]}
    assert values == {"orders": "1500m", "billing": "2k"}
    assert milli(values["orders"]) == 1500 and milli(values["billing"]) == 2_000_000
    assert sum(milli(v) for v in values.values()) == 2_001_500


def test_check05_via_custom_objects_api(kube: client.ApiClient) -> None:
    body = client.CustomObjectsApi(kube).list_namespaced_custom_object(
        "external.metrics.k8s.io", "v1beta1", "default", "queue_depth"
    )
    assert labels_of(body) == ["billing", "orders"]


def test_check06_equality_selector(kubectl: Kubectl, kube: client.ApiClient) -> None:
    body = get_json(kubectl, f"{LIST}?labelSelector=queue%3Dorders")
    assert labels_of(body) == ["orders"]
    assert body["items"][0]["value"] == "1500m"
    same = client.CustomObjectsApi(kube).list_namespaced_custom_object(
        "external.metrics.k8s.io",
        "v1beta1",
        "default",
        "queue_depth",
        label_selector="queue=orders",
    )
    assert same == body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("queue+in+%28billing%2Corders%29", ["billing", "orders"]),
        ("queue+notin+%28orders%29", ["billing"]),
        ("queue", ["billing", "orders"]),
        ("%21queue", []),
        ("queue%3D%3Dbilling", ["billing"]),
        ("queue%21%3Dbilling", ["orders"]),
    ],
    ids=["in", "notin", "exists", "not-exists", "double-equals", "not-equals"],
)
def test_check07_set_selectors(kubectl: Kubectl, query: str, expected: list[str]) -> None:
    body = get_json(kubectl, f"{LIST}?labelSelector={query}")
    assert labels_of(body) == expected
    assert body["items"] is not None


def test_check08_no_match_is_empty_items(kubectl: Kubectl) -> None:
    out = kubectl.raw(f"{LIST}?labelSelector=queue%3Dnone")
    assert out.returncode == 0
    assert '"items":[]' in out.stdout.replace(" ", "")


def test_check08_other_namespace_is_empty_items(kubectl: Kubectl) -> None:
    body = get_json(kubectl, f"{BASE}/namespaces/other/queue_depth")
    assert body["items"] == []


def test_check09_unknown_metric_404_status(kubectl: Kubectl, kube: client.ApiClient) -> None:
    out = kubectl.raw(f"{BASE}/namespaces/default/unknown_metric")
    assert out.returncode != 0 and "NotFound" in out.stderr
    code, ctype, body = raw_call(kube, f"{BASE}/namespaces/default/unknown_metric")
    assert code == 404 and ctype == "application/json"
    status = json.loads(body)
    assert status["kind"] == "Status" and status["apiVersion"] == "v1"
    assert (status["status"], status["reason"], status["code"]) == ("Failure", "NotFound", 404)


@pytest.mark.parametrize(
    "query",
    ["queue+in+%28orders", "queue%3D%3D%3Dx", "%21", "queue+in+orders", "a%2C%2Cb", "bad%24key"],
    ids=["unclosed", "triple-equals", "bare-bang", "in-without-parens", "empty-clause", "bad-key"],
)
def test_check10_malformed_selector_400(
    kubectl: Kubectl, kube: client.ApiClient, query: str
) -> None:
    out = kubectl.raw(f"{LIST}?labelSelector={query}")
    assert out.returncode != 0 and "BadRequest" in out.stderr
    code, _, body = raw_call(kube, f"{LIST}?labelSelector={query}")
    assert code == 400
    assert json.loads(body)["reason"] == "BadRequest"


def test_check11_case_insensitive_name(kubectl: Kubectl) -> None:
    assert get_json(kubectl, f"{BASE}/namespaces/default/Queue_Depth") == get_json(kubectl, LIST)
    advertised = [r["name"] for r in get_json(kubectl, BASE)["resources"]]
    for name in advertised:
        assert kubectl.raw(f"{BASE}/namespaces/default/{name.replace('|', '%7C')}").returncode == 0


def test_check12_percent_encoded_name(kubectl: Kubectl) -> None:
    body = get_json(kubectl, f"{BASE}/namespaces/default/a%7Cb")
    assert [item["value"] for item in body["items"]] == ["3"]
    assert body["items"][0]["metricName"] == "a|b"


def test_check13_protobuf_accept_gets_json(kube: client.ApiClient, kubectl: Kubectl) -> None:
    status, ctype, body = raw_call(kube, LIST, "application/vnd.kubernetes.protobuf, */*")
    assert status == 200 and ctype == "application/json"
    assert json.loads(body) == get_json(kubectl, LIST)


def test_check14_extra_query_params_ignored(kubectl: Kubectl) -> None:
    assert get_json(kubectl, f"{LIST}?timeout=30s&pretty=true") == get_json(kubectl, LIST)
    body = get_json(kubectl, f"{LIST}?labelSelector=queue%3Dorders&timeout=30s&pretty=true")
    assert labels_of(body) == ["orders"]


@pytest.mark.parametrize("path", ["/openapi/v2", "/openapi/v3"])
def test_check15_openapi_404(kubectl: Kubectl, path: str) -> None:
    out = kubectl.raw(path)
    assert out.returncode != 0 and "NotFound" in out.stderr


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
def test_health_endpoints(kubectl: Kubectl, path: str) -> None:
    out = kubectl.raw(path)
    assert out.returncode == 0 and out.stdout.strip() == "ok"


def test_own_metrics_has_latency_histogram(kubectl: Kubectl) -> None:
    assert kubectl.raw(LIST).returncode == 0
    out = kubectl.raw("/metrics")
    assert out.returncode == 0
    line = next(
        ln
        for ln in out.stdout.splitlines()
        if ln.startswith("autoscaler_api_request_duration_seconds_count")
        and 'endpoint="list"' in ln
        and 'code="200"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1


def test_internal_error_is_a_status() -> None:
    """A failure inside the list path answers 500 with a Status body, not a bare error."""

    class BrokenStore(DecisionStore):
        def query(self, *_: Any, **__: Any) -> Any:
            raise RuntimeError("boom")

    store = BrokenStore()
    section = section4_store(time.time())
    store.publish(section.all_values())
    settings = ApiSettings(bind="127.0.0.1:0", insecure=True)
    with ServerThread(create_app(store, settings), settings) as server:
        cfg = client.Configuration()
        cfg.host = f"http://127.0.0.1:{server.port}"
        code, ctype, body = raw_call(client.ApiClient(cfg), LIST)
    assert code == 500 and ctype == "application/json"
    assert json.loads(body)["reason"] == "InternalError"
