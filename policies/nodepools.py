"""Which node pool a workload runs on, read from its pod template, and how it is priced.

Why: a replica on a spot node costs the spot rates (OpenCost's ``spotCPU`` and
``spotRAM``, a fifth of on demand), and a budget sized for spot is infeasible when the
same replicas are priced on demand. The pool is decided by the pod template: its
``nodeSelector`` and the *required* terms of its node affinity (preferred terms and
tolerations only allow a pool, they do not pick it). Two things are read:

* the pool's **name**, from the label a provider puts on its nodes
  (``POOL_LABELS``: GKE ``cloud.google.com/gke-nodepool``, EKS
  ``eks.amazonaws.com/nodegroup``, Karpenter ``karpenter.sh/nodepool``, AKS
  ``kubernetes.azure.com/agentpool``, and the common ``node-pool`` / ``nodepool``),
  matched against the CostBudget's ``nodePools`` keys for that pool's price overrides;
* the **capacity type**, spot or on demand, from the providers' capacity labels
  (``CAPACITY_LABELS``: ``karpenter.sh/capacity-type: spot``,
  ``eks.amazonaws.com/capacityType: SPOT``, ``cloud.google.com/gke-spot: "true"``, ...):
  a workload that requires spot nodes is priced at the spot rates even if the budget
  lists no pool for it (a Karpenter pool mixes both, so the capacity label decides).

A label counts only if every node the pod may land on must carry it: the node selector
fixes it, or every required affinity term (terms are ORed) restricts it with ``In``.
Anything the reader cannot make sense of (a malformed affinity from a static file)
reads as "no pool": the workload is then priced at the environment's prices, as before.

Callers: ``autoscaler.kube.cluster.target_info`` (``read_node_pool``, into
``TargetInfo.node_pool``), the controller and tests (``pricing_pool``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

#: Node labels that name the node's pool, most specific first.
POOL_LABELS: tuple[str, ...] = (
    "cloud.google.com/gke-nodepool",
    "eks.amazonaws.com/nodegroup",
    "karpenter.sh/nodepool",
    "karpenter.sh/provisioner-name",
    "kubernetes.azure.com/agentpool",
    "agentpool",
    "node-pool",
    "nodepool",
)

#: Capacity-type labels: label -> (values meaning spot, values meaning on demand).
CAPACITY_LABELS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "karpenter.sh/capacity-type": (frozenset({"spot"}), frozenset({"on-demand", "reserved"})),
    "eks.amazonaws.com/capacityType": (frozenset({"SPOT"}), frozenset({"ON_DEMAND"})),
    "cloud.google.com/gke-spot": (frozenset({"true"}), frozenset({"false"})),
    "cloud.google.com/gke-preemptible": (frozenset({"true"}), frozenset({"false"})),
    "kubernetes.azure.com/scalesetpriority": (frozenset({"spot"}), frozenset({"regular"})),
    "node.kubernetes.io/lifecycle": (frozenset({"spot"}), frozenset({"normal", "on-demand"})),
}


@dataclass(frozen=True)
class NodePool:
    """Where a workload's replicas run, as far as prices care."""

    #: the pool's name ("" = not fixed by the pod template, or not priced separately)
    name: str = ""
    #: True: spot nodes required; False: on-demand nodes required; None: not fixed
    spot: bool | None = None


def required_node_labels(pod_spec: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """Label -> the values that every node the pod may be scheduled on must have.

    A label absent from the result is not fixed (some node without it, or with any
    value, is allowed). Malformed parts are ignored.
    """
    fixed: dict[str, frozenset[str]] = {}
    selector = pod_spec.get("nodeSelector")
    if isinstance(selector, Mapping):
        for key, value in selector.items():
            if isinstance(key, str) and isinstance(value, str | int | bool):
                fixed[key] = frozenset({_text(value)})
    for key, values in _affinity_labels(pod_spec).items():
        fixed[key] = fixed[key] & values if key in fixed else values
    return fixed


def _affinity_labels(pod_spec: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """Labels that every required node-affinity term restricts with ``In``."""
    affinity = pod_spec.get("affinity")
    node = affinity.get("nodeAffinity") if isinstance(affinity, Mapping) else None
    required = (
        node.get("requiredDuringSchedulingIgnoredDuringExecution")
        if isinstance(node, Mapping)
        else None
    )
    terms = required.get("nodeSelectorTerms") if isinstance(required, Mapping) else None
    if not isinstance(terms, list) or not terms:
        return {}
    per_term: list[dict[str, frozenset[str]]] = []
    for term in terms:
        allowed: dict[str, frozenset[str]] = {}
        expressions = term.get("matchExpressions") if isinstance(term, Mapping) else None
        for expr in expressions if isinstance(expressions, list) else []:
            if not isinstance(expr, Mapping) or expr.get("operator") != "In":
                continue
            key, values = expr.get("key"), expr.get("values")
            if not isinstance(key, str) or not isinstance(values, list):
                continue
            these = frozenset(_text(v) for v in values if isinstance(v, str | int | bool))
            allowed[key] = allowed[key] & these if key in allowed else these
        per_term.append(allowed)
    # Terms are ORed: a label is fixed only if every term fixes it (to any of the union).
    common = set.intersection(*(set(t) for t in per_term))
    return {key: frozenset().union(*(t[key] for t in per_term)) for key in common}


def _text(value: str | int | bool) -> str:
    if isinstance(value, bool):  # YAML's unquoted true in a nodeSelector
        return "true" if value else "false"
    return str(value)


def read_node_pool(pod_spec: Mapping[str, Any]) -> NodePool:
    """The node pool a pod template requires: its name and capacity type (module doc)."""
    if not isinstance(pod_spec, Mapping):
        return NodePool()
    labels = required_node_labels(pod_spec)
    name = ""
    for key in POOL_LABELS:
        values = labels.get(key)
        if values is not None and len(values) == 1:
            (name,) = values
            break
    spot: bool | None = None
    for key, (spot_values, on_demand_values) in CAPACITY_LABELS.items():
        values = labels.get(key)
        if not values:
            continue
        if values <= spot_values:
            spot = True
        elif values <= on_demand_values and spot is None:
            spot = False
    return NodePool(name=name, spot=spot)


def pricing_pool(
    read: NodePool, node_pools: Collection[str], explicit: str = ""
) -> tuple[NodePool, str]:
    """What to price a workload at, given its budget's ``nodePools`` keys; and a warning.

    * ``explicit`` (the PredictiveAutoscaler's ``nodePool``) names a pool of the budget:
      its overrides decide, including ``spot``. A name the budget does not list is not
      priced as a pool (a warning says so), and the pod template's reading is used.
    * Otherwise the pool read from the pod template: its name if the budget lists it
      (else "", the environment's prices), and its capacity type (spot rates if it
      requires spot nodes, whatever the budget lists).

    The result goes into ``WorkloadRequest(node_pool=pool.name, spot=pool.spot)``; its
    name is always "" or a key of ``node_pools``, so the request always validates.
    """
    warning = ""
    if explicit:
        if explicit in node_pools:
            return NodePool(name=explicit, spot=None), ""
        warning = (
            f"nodePool {explicit!r} is not in the CostBudget's nodePools"
            f" (known: {sorted(node_pools) or 'none'}); priced by the pod template instead"
        )
    name = read.name if read.name in node_pools else ""
    return NodePool(name=name, spot=read.spot), warning
