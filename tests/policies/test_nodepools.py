"""Node pools: read from the pod template, and applied to the prices of the allocation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from policies.budget import AllocationRequest, BudgetRequest, WorkloadRequest
from policies.costguard import allocate, replica_prices
from policies.nodepools import NodePool, pricing_pool, read_node_pool, required_node_labels
from policies.prices import PriceOverrides, Prices, ResourceRequests


def _terms(*terms: list[tuple[str, str, list[Any]]]) -> dict[str, Any]:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": k, "operator": o, "values": v} for k, o, v in t
                            ]
                        }
                        for t in terms
                    ]
                }
            }
        }
    }


@pytest.mark.parametrize(
    ("pod_spec", "expected"),
    [
        ({}, NodePool()),
        ({"nodeSelector": {"karpenter.sh/capacity-type": "spot"}}, NodePool("", True)),
        ({"nodeSelector": {"eks.amazonaws.com/capacityType": "ON_DEMAND"}}, NodePool("", False)),
        (
            {
                "nodeSelector": {
                    "cloud.google.com/gke-nodepool": "spot-pool",
                    "cloud.google.com/gke-spot": "true",
                }
            },
            NodePool("spot-pool", True),
        ),
        # YAML writes an unquoted true in a static file; the API server would refuse it.
        ({"nodeSelector": {"cloud.google.com/gke-spot": True}}, NodePool("", True)),
        ({"nodeSelector": {"kubernetes.azure.com/agentpool": "batch"}}, NodePool("batch", None)),
        (_terms([("karpenter.sh/capacity-type", "In", ["spot"])]), NodePool("", True)),
        # Both terms require spot (ORed terms): spot; one term does not: not fixed.
        (
            _terms(
                [
                    ("karpenter.sh/capacity-type", "In", ["spot"]),
                    ("karpenter.sh/nodepool", "In", ["a"]),
                ],
                [
                    ("karpenter.sh/capacity-type", "In", ["spot"]),
                    ("karpenter.sh/nodepool", "In", ["b"]),
                ],
            ),
            NodePool("", True),
        ),
        (
            _terms(
                [("karpenter.sh/capacity-type", "In", ["spot"])],
                [("kubernetes.io/arch", "In", ["arm64"])],
            ),
            NodePool(),
        ),
        (_terms([("karpenter.sh/capacity-type", "In", ["spot", "on-demand"])]), NodePool()),
        (_terms([("karpenter.sh/capacity-type", "NotIn", ["spot"])]), NodePool()),
        # Preferred terms pick nothing.
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 1,
                                "preference": {
                                    "matchExpressions": [
                                        {
                                            "key": "karpenter.sh/capacity-type",
                                            "operator": "In",
                                            "values": ["spot"],
                                        }
                                    ]
                                },
                            }
                        ]
                    }
                }
            },
            NodePool(),
        ),
        # Malformed parts read as "no pool", never an exception.
        ({"nodeSelector": ["spot"], "affinity": {"nodeAffinity": "x"}}, NodePool()),
        (_terms([("karpenter.sh/capacity-type", "In", "spot")]), NodePool()),
    ],
    ids=[
        "nothing",
        "karpenter-spot",
        "eks-on-demand",
        "gke-pool-and-spot",
        "unquoted-true",
        "aks-pool",
        "affinity-spot",
        "affinity-two-terms-spot",
        "affinity-one-term-unfixed",
        "affinity-either",
        "affinity-notin",
        "preferred-only",
        "malformed",
        "malformed-values",
    ],
)
def test_read_node_pool(pod_spec: dict[str, Any], expected: NodePool) -> None:
    assert read_node_pool(pod_spec) == expected


def test_selector_and_affinity_both_apply() -> None:
    spec = {"nodeSelector": {"node-pool": "a"}} | _terms([("node-pool", "In", ["a", "b"])])
    assert required_node_labels(spec) == {"node-pool": frozenset({"a"})}
    assert read_node_pool(spec) == NodePool("a", None)


def test_pricing_pool_explicit_beats_read_and_unknown_names_are_not_errors() -> None:
    pools = {"spot", "gpu"}
    assert pricing_pool(NodePool("gpu", True), pools, explicit="spot") == (NodePool("spot"), "")
    pool, warning = pricing_pool(NodePool("", True), pools, explicit="spto")
    assert pool == NodePool("", True) and "'spto' is not in the CostBudget's nodePools" in warning
    # A pool the budget does not price is the environment's prices, spot if required.
    assert pricing_pool(NodePool("batch", True), pools) == (NodePool("", True), "")
    assert pricing_pool(NodePool("gpu", None), pools) == (NodePool("gpu", None), "")


DEV_MINIMUMS = [  # the dev environment at minReplicas (deploy/components/env-dev)
    ("dev/event-gateway", {"cpu": "100m", "memory": "128Mi"}),
    ("dev/discord-bot", {"cpu": "100m", "memory": "128Mi"}),
    ("dev/refinory-ai", {"cpu": "500m", "memory": "1Gi"}),
    ("dev/jdk-workspace", {"cpu": "500m", "memory": "512Mi"}),
]


def _dev_request(read: NodePool, monthly_limit: float = 25) -> AllocationRequest:
    node_pools = {"spot": PriceOverrides(spot=True)}
    workloads = []
    for name, requests in DEV_MINIMUMS:
        pool, _ = pricing_pool(read, node_pools)
        workloads.append(
            WorkloadRequest(
                name=name,
                min_replicas=1,
                max_replicas=5,
                desired_replicas=1,
                requests=requests,
                node_pool=pool.name,
                spot=pool.spot,
            )
        )
    return AllocationRequest(
        budget=BudgetRequest(
            hourly_limit=0.10,
            monthly_limit=monthly_limit,
            now=datetime(2026, 12, 5, 0, tzinfo=UTC),
            pacing="even",
            mode="soft",
        ),
        node_pools=node_pools,
        workloads=workloads,
    )


def test_spot_workloads_are_priced_at_spot_rates() -> None:
    """The user's fault: dev on spot nodes was priced on demand, so the budget was infeasible.

    Dev's minimums cost $0.0453/h on demand against a $25/31-day pacing cap of
    $0.0386/h on 5 December (648 h left): infeasible, the critical alert. On spot nodes they
    cost $0.0095/h, and the same budget is feasible.
    """
    on_demand = allocate(_dev_request(NodePool()))
    assert on_demand.infeasible and on_demand.hourly_cost == pytest.approx(0.04534795, abs=1e-9)
    for read in (NodePool("", True), NodePool("spot", None)):
        spot = allocate(_dev_request(read))
        assert not spot.infeasible
        assert spot.hourly_cost == pytest.approx(0.009547, abs=1e-9)


def test_spot_flag_overrides_the_pool_and_the_defaults() -> None:
    resources = ResourceRequests(cpu_cores=Decimal(1), memory_gib=Decimal(1))
    request = AllocationRequest(
        budget=BudgetRequest(hourly_limit=1.0, now=datetime(2026, 12, 5, tzinfo=UTC)),
        node_pools={"od": PriceOverrides(spot=False, spotCpuPerCoreHour=0.001)},
        workloads=[
            WorkloadRequest(
                name=n,
                min_replicas=1,
                max_replicas=1,
                desired_replicas=1,
                requests={"cpu": "1", "memory": "1Gi"},
                node_pool=p,
                spot=s,
            )
            for n, p, s in [("a", "", None), ("b", "", True), ("c", "od", True), ("d", "od", None)]
        ],
    )
    prices = replica_prices(request)
    assert prices["a"] == prices["d"] == Prices().replica_hourly_price(resources)
    assert prices["b"] == Decimal("0.006655") + Decimal("0.000892")
    assert prices["c"] == Decimal("0.001") + Decimal("0.000892")


def test_target_info_carries_the_pool() -> None:
    from autoscaler.kube.cluster import target_info

    deployment = {
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "nodeSelector": {"karpenter.sh/capacity-type": "spot"},
                    "containers": [{"resources": {"requests": {"cpu": "100m"}}}],
                }
            },
        }
    }
    assert target_info(deployment).node_pool == NodePool("", True)
    del deployment["spec"]["template"]["spec"]["nodeSelector"]
    assert target_info(deployment).node_pool == NodePool()
