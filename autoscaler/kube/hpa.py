"""The HorizontalPodAutoscaler the controller creates and owns for each PredictiveAutoscaler.

The HPA scales the target on one External metric, ``autoscaler_desired_replicas``
with ``AverageValue: 1``: the HPA then runs ``ceil(value)`` replicas, i.e. the value we
serve. Its ``maxReplicas`` is the cost guard's ceiling, a hard guard that holds even
if someone adds another metric (the HPA takes the max over its metrics).

Writes are idempotent (no write when the live spec already matches) and carry
ownerReferences, so deleting the PredictiveAutoscaler garbage-collects the HPA. A
same-named HPA that we do not own is never touched. Callers: ``autoscaler.kube.cluster``.
"""

from __future__ import annotations

import logging
from typing import Any

from autoscaler.kube.client import Conflict, KubeClient, path_for
from autoscaler.logging import log_event
from policies.objects import API_VERSION, PA_KIND, PredictiveAutoscaler

log = logging.getLogger(__name__)

METRIC_NAME = "autoscaler_desired_replicas"
MANAGED_BY = {"app.kubernetes.io/managed-by": "predictive-autoscaler"}
HPA_API = "autoscaling/v2"


def metric_labels(pa: PredictiveAutoscaler) -> dict[str, str]:
    """Labels of the served series for ``pa`` (and the HPA's selector on them)."""
    return {"workload": pa.spec.target_ref.name, "predictiveautoscaler": pa.metadata.name}


def desired_hpa(pa: PredictiveAutoscaler, ceiling: int) -> dict[str, Any]:
    """The HPA object we want for ``pa`` with ``maxReplicas = ceiling``."""
    ref = pa.spec.target_ref
    return {
        "apiVersion": HPA_API,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": pa.metadata.name,
            "namespace": pa.metadata.namespace,
            "labels": dict(MANAGED_BY),
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": PA_KIND,
                    "name": pa.metadata.name,
                    "uid": pa.metadata.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name},
            # The HPA API refuses minReplicas 0 unless HPAScaleToZero is enabled.
            "minReplicas": max(1, pa.spec.min_replicas),
            "maxReplicas": max(1, pa.spec.min_replicas, ceiling),
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {
                            "name": METRIC_NAME,
                            "selector": {"matchLabels": metric_labels(pa)},
                        },
                        "target": {"type": "AverageValue", "averageValue": "1"},
                    },
                }
            ],
        },
    }


def _owned_by(obj: dict[str, Any], pa: PredictiveAutoscaler) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("kind") == PA_KIND and r.get("name") == pa.metadata.name for r in refs)


def _matches(live: dict[str, Any], want: dict[str, Any]) -> bool:
    spec = live.get("spec", {})
    return all(spec.get(k) == v for k, v in want["spec"].items())


def ensure_hpa(client: KubeClient, pa: PredictiveAutoscaler, ceiling: int) -> str:
    """Create or update the owned HPA; returns ``created``, ``updated``, ``unchanged``
    or ``foreign`` (an HPA of that name exists and is not ours: left alone).

    A 409 (the HPA changed under us, or was created concurrently) is retried with a
    fresh read, at most three times.
    """
    want = desired_hpa(pa, ceiling)
    collection = path_for(HPA_API, "horizontalpodautoscalers", pa.metadata.namespace)
    path = f"{collection}/{pa.metadata.name}"
    for _ in range(3):
        live = client.get_or_none(path)
        try:
            if live is None:
                client.create(collection, want)
                return "created"
            if not _owned_by(live, pa):
                log_event(
                    log,
                    "hpa_foreign",
                    f"HPA {pa.key} exists and is not owned by this PredictiveAutoscaler",
                    logging.WARNING,
                    namespace=pa.metadata.namespace,
                    workload=pa.spec.target_ref.name,
                )
                return "foreign"
            if _matches(live, want):
                return "unchanged"
            patch: dict[str, Any] = {"spec": want["spec"]}
            version = live.get("metadata", {}).get("resourceVersion")
            if version:
                # A resourceVersion in a merge patch is a precondition: 409 if stale.
                patch["metadata"] = {"resourceVersion": version}
            client.merge_patch(path, patch)
            return "updated"
        except Conflict:
            continue
    raise Conflict(409, f"HPA {pa.key}: still conflicting after 3 fresh reads")
