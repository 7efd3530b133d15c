"""The API semantics our code relies on: enforced by the harness, used by the product.

First the harness itself (``StrictEmulator``), so that a test passing against it means
something: resourceVersion preconditions, the status subresource, the patch types.
Then the product's writes that depend on them: statuses go to ``/status``, an HPA
update carries the resourceVersion it read (the Lease's is in
``test_leader_election.py::test_a_candidate_that_lost_the_race_after_its_read_is_not_leader``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from autoscaler.kube.client import Conflict, KubeClient, KubeSettings, NotFound, path_for
from autoscaler.kube.cluster import KubeCluster
from autoscaler.kube.hpa import HPA_API, ensure_hpa
from models.errors import PermanentError
from policies.objects import (
    API_VERSION,
    CB_PLURAL,
    PA_PLURAL,
    CostBudgetStatus,
    PredictiveAutoscaler,
    PredictiveAutoscalerStatus,
)
from tests.controller.kmockharness import JSON_PATCH, STRATEGIC, KmockCluster, RaceAfterRead

PA = f"{API_VERSION}/{PA_PLURAL}"
CB = f"{API_VERSION}/{CB_PLURAL}"
HPA = "autoscaling/v2/horizontalpodautoscalers"
DEPLOY = "apps/v1/deployments"
LEASE = "coordination.k8s.io/v1/leases"


@pytest.fixture()
def cluster() -> Iterator[KmockCluster]:
    c = KmockCluster()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture()
def client(cluster: KmockCluster) -> KubeClient:
    return KubeClient(KubeSettings(host=cluster.url, retries=1))


def pa_object(name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "PredictiveAutoscaler",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "targetRef": {"name": f"{name}-deploy"},
            "query": "sum by (namespace, workload) (rate(x_total[1m]))",
            "capacityPerReplica": 10,
            "maxReplicas": 20,
        },
    }


def create_pa(client: KubeClient, name: str = "web") -> dict[str, Any]:
    return client.create(path_for(API_VERSION, PA_PLURAL, "shop"), pa_object(name))


def pa_path(name: str = "web") -> str:
    return path_for(API_VERSION, PA_PLURAL, "shop", name)


# The harness ---------------------------------------------------------------------


def test_every_stored_version_gets_a_new_resource_version(client: KubeClient) -> None:
    created = create_pa(client)
    meta = created["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["generation"] == 1
    changed = client.merge_patch(pa_path(), {"spec": {"maxReplicas": 30}})
    assert int(changed["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert changed["metadata"]["generation"] == 2
    assert changed["metadata"]["uid"] == meta["uid"]
    same = client.merge_patch(pa_path(), {"spec": {"maxReplicas": 30}})
    assert same["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]


def test_a_stale_resource_version_is_409_and_stores_nothing(
    client: KubeClient, cluster: KmockCluster
) -> None:
    old = create_pa(client)["metadata"]["resourceVersion"]
    client.merge_patch(pa_path(), {"spec": {"maxReplicas": 30}})
    with pytest.raises(Conflict):
        client.merge_patch(
            pa_path(), {"metadata": {"resourceVersion": old}, "spec": {"maxReplicas": 5}}
        )
    with pytest.raises(Conflict):
        client.merge_patch(pa_path(), {"metadata": {"uid": "other"}, "spec": {"maxReplicas": 5}})
    live = cluster.get(PA, "shop", "web")
    assert live is not None and live["spec"]["maxReplicas"] == 30
    current = live["metadata"]["resourceVersion"]
    ok = client.merge_patch(
        pa_path(), {"metadata": {"resourceVersion": current}, "spec": {"maxReplicas": 5}}
    )
    assert ok["spec"]["maxReplicas"] == 5
    with pytest.raises(Conflict):  # a second create of the same name
        create_pa(client)


def test_merge_patch_is_rfc_7386(client: KubeClient) -> None:
    path = path_for("apps/v1", "deployments", "shop")
    body = {
        "metadata": {"name": "d", "labels": {"a": "1", "b": "2"}},
        "spec": {"template": {"spec": {"containers": [{"name": "x"}, {"name": "y"}]}}},
    }
    client.create(path, body)
    out = client.merge_patch(
        f"{path}/d",
        {
            "metadata": {"labels": {"a": None, "c": "3"}},
            "spec": {"template": {"spec": {"containers": [{"name": "z"}]}}},
        },
    )
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}  # null deletes a key
    assert out["spec"]["template"]["spec"]["containers"] == [{"name": "z"}]  # list replaced


def test_strategic_merge_patch_on_built_ins_only(client: KubeClient) -> None:
    path = path_for("apps/v1", "deployments", "shop")
    client.create(
        path,
        {
            "metadata": {"name": "d", "finalizers": ["f1"]},
            "spec": {
                "replicas": 2,
                "template": {"spec": {"containers": [{"name": "x", "image": "1"}, {"name": "y"}]}},
            },
        },
    )
    out = client.request(
        "PATCH",
        f"{path}/d",
        {
            "metadata": {"finalizers": ["f2"]},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "x", "image": "2"},
                            {"name": "y", "$patch": "delete"},
                            {"name": "w"},
                        ]
                    }
                }
            },
        },
        content_type=STRATEGIC,
    )
    containers = out["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "x", "image": "2"}, {"name": "w"}]  # merged by name
    assert out["metadata"]["finalizers"] == ["f1", "f2"]
    create_pa(client)
    with pytest.raises(PermanentError, match="415"):  # not on custom resources
        client.request("PATCH", pa_path(), {"spec": {"maxReplicas": 1}}, content_type=STRATEGIC)
    out = client.request(
        "PATCH",
        pa_path(),
        [{"op": "replace", "path": "/spec/maxReplicas", "value": 7}],
        content_type=JSON_PATCH,
    )
    assert out["spec"]["maxReplicas"] == 7


def test_status_is_a_subresource(client: KubeClient, cluster: KmockCluster) -> None:
    body = pa_object()
    body["status"] = {"replicas": 9}
    created = client.create(path_for(API_VERSION, PA_PLURAL, "shop"), body)
    assert "status" not in created  # create ignores .status
    # The main resource ignores .status ...
    out = client.merge_patch(pa_path(), {"spec": {"maxReplicas": 8}, "status": {"replicas": 3}})
    assert out["spec"]["maxReplicas"] == 8 and "status" not in out
    # ... and /status ignores everything else.
    out = client.merge_patch(
        f"{pa_path()}/status",
        {"spec": {"maxReplicas": 1}, "metadata": {"labels": {"x": "y"}}, "status": {"replicas": 3}},
    )
    assert out["status"] == {"replicas": 3}
    assert out["spec"]["maxReplicas"] == 8 and "labels" not in out["metadata"]
    live = cluster.get(PA, "shop", "web")
    assert live is not None and live["status"] == {"replicas": 3}
    # A stale resourceVersion is refused on /status too.
    with pytest.raises(Conflict):
        client.merge_patch(
            f"{pa_path()}/status",
            {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}},
        )
    # A Lease has no status subresource.
    lease_path = path_for("coordination.k8s.io/v1", "leases", "ops")
    client.create(lease_path, {"metadata": {"name": "l"}, "spec": {}})
    with pytest.raises(NotFound):
        client.merge_patch(f"{lease_path}/l/status", {"status": {}})


# The product ---------------------------------------------------------------------


def test_statuses_are_written_to_the_status_subresource(
    client: KubeClient, cluster: KmockCluster
) -> None:
    """A status sent to the main resource would be dropped by a real API server."""
    create_pa(client)
    client.create(
        path_for(API_VERSION, CB_PLURAL),
        {"apiVersion": API_VERSION, "kind": "CostBudget", "metadata": {"name": "prod"}},
    )
    pa = PredictiveAutoscaler.parse(client.get(pa_path()))
    kube = KubeCluster(client)
    kube.patch_status(pa, PredictiveAutoscalerStatus(replicas=4, desired_replicas=6))
    kube.patch_budget_status("prod", CostBudgetStatus(spend_dollars=1.5))
    live = cluster.get(PA, "shop", "web")
    assert live is not None
    assert (live["status"]["replicas"], live["status"]["desiredReplicas"]) == (4, 6)
    assert live["spec"] == pa_object()["spec"]  # the spec is untouched
    budget = cluster.get(CB, None, "prod")
    assert budget is not None and budget["status"]["spendDollars"] == 1.5


def test_an_hpa_replaced_between_read_and_write_is_not_overwritten(
    cluster: KmockCluster,
) -> None:
    """Someone deletes our HPA and creates a foreign one of the same name between our
    read and our update: the update carries the resourceVersion it read, gets 409, the
    fresh read shows a foreign HPA, and it is left alone."""
    racing = RaceAfterRead(KubeSettings(host=cluster.url, retries=1))
    pa = PredictiveAutoscaler.parse(create_pa(racing))
    assert ensure_hpa(racing, pa, ceiling=12) == "created"
    other = KubeClient(KubeSettings(host=cluster.url, retries=1))
    collection = path_for(HPA_API, "horizontalpodautoscalers", "shop")
    foreign = {
        "apiVersion": HPA_API,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "other"}},
    }

    def replace() -> None:
        other.request("DELETE", f"{collection}/web")
        other.create(collection, foreign)

    racing.hook = replace
    assert ensure_hpa(racing, pa, ceiling=7) == "foreign"
    live = cluster.get(HPA, "shop", "web")
    assert live is not None and live["spec"] == foreign["spec"]


def test_put_replaces_with_the_same_preconditions(client: KubeClient) -> None:
    created = create_pa(client)
    body = pa_object()
    body["spec"]["maxReplicas"] = 4
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    out = client.request("PUT", pa_path(), body)
    assert out["spec"]["maxReplicas"] == 4
    with pytest.raises(Conflict):  # the same (now stale) resourceVersion again
        client.request("PUT", pa_path(), body)
    with pytest.raises(NotFound):
        client.request("PUT", pa_path("nope"), pa_object("nope"))
