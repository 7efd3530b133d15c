"""The controller's view of the cluster: what to reconcile, and where to write results.

``Cluster`` is the small protocol the reconcile loop needs: list PredictiveAutoscalers
and CostBudgets, read a target's replicas and resource requests, and write back (the
owned HPA, statuses, Events). Two implementations:

* ``KubeCluster``: the Kubernetes API through ``KubeClient``. With ``write=False``
  (``--dry-run``, and followers under leader election) it reads everything and writes
  nothing; the writes it would have made are counted in ``skipped_writes``.
* ``StaticCluster``: objects from YAML files (PredictiveAutoscalers, CostBudgets,
  Deployments), for ``autoscaler run --once --dry-run --objects FILE`` without a
  cluster and for ``benchmarks/reconcile.py``. It records writes in memory.

Callers: ``autoscaler.controller``, ``autoscaler.cli.run``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from autoscaler.kube.client import KubeClient, NotFound, path_for
from autoscaler.kube.events import emit_event
from autoscaler.kube.hpa import ensure_hpa
from models.errors import InputError
from policies.budget import CostBudget, parse_model
from policies.nodepools import read_node_pool
from policies.objects import (
    API_VERSION,
    CB_KIND,
    CB_PLURAL,
    PA_KIND,
    PA_PLURAL,
    Budget,
    CostBudgetStatus,
    PredictiveAutoscaler,
    PredictiveAutoscalerStatus,
    TargetInfo,
    TargetRef,
)

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]

#: Plural resource name of each kind a targetRef may name.
TARGET_PLURALS = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "ReplicaSet": "replicasets",
}


class Cluster(Protocol):
    """What the reconcile loop needs from the cluster."""

    def list_autoscalers(self) -> list[PredictiveAutoscaler]: ...

    def list_budgets(self) -> list[Budget]: ...

    def target(self, namespace: str, ref: TargetRef) -> TargetInfo | None: ...

    def ensure_hpa(self, pa: PredictiveAutoscaler, ceiling: int) -> str: ...

    def patch_status(
        self, pa: PredictiveAutoscaler, status: PredictiveAutoscalerStatus
    ) -> None: ...

    def patch_budget_status(self, name: str, status: CostBudgetStatus) -> None: ...

    def event(
        self, pa: PredictiveAutoscaler, reason: str, message: str, now: float, kind: EventType
    ) -> None: ...

    def pod_startups(self, namespace: str, ref: TargetRef) -> list[tuple[float, float]]:
        """(created, Ready) unix seconds of the target's Ready pods, from their conditions
        (the start-up's fallback source where kube-state-metrics has no series)."""
        ...


def sum_resources(
    pod_spec: Mapping[str, Any], kind: str = "requests", where: str = ""
) -> dict[str, Decimal]:
    """One replica's ``requests`` (or ``limits``): the sum over its containers.

    Init containers are ignored (they do not run alongside); a container without
    them adds nothing.
    """
    from policies.quantity import parse_quantity

    totals: dict[str, Decimal] = {}
    for container in pod_spec.get("containers") or []:
        for key, value in ((container.get("resources") or {}).get(kind) or {}).items():
            totals[key] = totals.get(key, Decimal(0)) + parse_quantity(
                value, f"{where or kind}.{key}"
            )
    return totals


def sum_requests(pod_spec: Mapping[str, Any]) -> dict[str, str]:
    """One replica's requests as quantity strings (a container without requests adds
    nothing: the pod is then priced lower, and a warning says so)."""
    return {k: format(v, "f") for k, v in sum_resources(pod_spec).items()}


def target_info(obj: Mapping[str, Any]) -> TargetInfo:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    replicas = status.get("replicas")
    if replicas is None:
        replicas = spec.get("replicas", 1)
    pod_spec = ((spec.get("template") or {}).get("spec")) or {}
    # The API server omits readyReplicas when it is 0; no status at all: unknown.
    ready = int(status.get("readyReplicas") or 0) if status else None
    return TargetInfo(
        replicas=int(replicas),
        requests=sum_requests(pod_spec),
        ready=ready,
        node_pool=read_node_pool(pod_spec),
    )


def _unix(stamp: object) -> float | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def pod_startup_pairs(pods: Iterable[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(created, Ready) of every pod whose Ready condition is True: its
    ``creationTimestamp`` and the condition's ``lastTransitionTime``. (A pod that went
    unready and back shows its last transition, not its start-up: a rare overestimate.)"""
    out: list[tuple[float, float]] = []
    for pod in pods:
        created = _unix((pod.get("metadata") or {}).get("creationTimestamp"))
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready" and c.get("status") == "True":
                ready = _unix(c.get("lastTransitionTime"))
                if created is not None and ready is not None:
                    out.append((created, ready))
    return out


def match_labels(obj: Mapping[str, Any]) -> dict[str, str] | None:
    """A target's ``spec.selector.matchLabels`` (None: none, or expressions only)."""
    labels = (((obj.get("spec") or {}).get("selector")) or {}).get("matchLabels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else None


def _budget(obj: Mapping[str, Any]) -> Budget:
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", "?"))
    spec = parse_model(CostBudget, obj.get("spec") or {}, f"{CB_KIND} {name}: spec")
    return Budget(name, spec, dict(meta.get("labels") or {}), dict(obj.get("status") or {}))


def parse_autoscalers(objects: Iterable[Mapping[str, Any]]) -> list[PredictiveAutoscaler]:
    """Parse PA objects; a broken one is logged and skipped (it must not stop the rest)."""
    out: list[PredictiveAutoscaler] = []
    for obj in objects:
        try:
            out.append(PredictiveAutoscaler.parse(dict(obj)))
        except InputError as err:
            log.error("skipping invalid PredictiveAutoscaler: %s", err)
    return out


def parse_budgets(objects: Iterable[Mapping[str, Any]]) -> list[Budget]:
    out: list[Budget] = []
    for obj in objects:
        try:
            out.append(_budget(obj))
        except InputError as err:
            log.error("skipping invalid CostBudget: %s", err)
    return out


class KubeCluster:
    """The cluster through the Kubernetes API; ``write=False`` reads only."""

    def __init__(self, client: KubeClient, write: bool = True) -> None:
        self.client = client
        self.write = write
        self.skipped_writes = 0

    def list_autoscalers(self) -> list[PredictiveAutoscaler]:
        return parse_autoscalers(self.client.list(path_for(API_VERSION, PA_PLURAL)))

    def list_budgets(self) -> list[Budget]:
        try:
            return parse_budgets(self.client.list(path_for(API_VERSION, CB_PLURAL)))
        except NotFound:  # CostBudget CRD not installed: no budgets
            return []

    def target(self, namespace: str, ref: TargetRef) -> TargetInfo | None:
        plural = TARGET_PLURALS.get(ref.kind, ref.kind.lower() + "s")
        obj = self.client.get_or_none(path_for(ref.api_version, plural, namespace, ref.name))
        return None if obj is None else target_info(obj)

    def ensure_hpa(self, pa: PredictiveAutoscaler, ceiling: int) -> str:
        if not self.write:
            self.skipped_writes += 1
            return "dry-run"
        return ensure_hpa(self.client, pa, ceiling)

    def patch_status(self, pa: PredictiveAutoscaler, status: PredictiveAutoscalerStatus) -> None:
        if not self.write:
            self.skipped_writes += 1
            return
        path = path_for(API_VERSION, PA_PLURAL, pa.metadata.namespace, pa.metadata.name)
        # A merge patch of status only: idempotent, and it cannot clobber the spec.
        self.client.merge_patch(f"{path}/status", {"status": status.wire()})

    def patch_budget_status(self, name: str, status: CostBudgetStatus) -> None:
        if not self.write:
            self.skipped_writes += 1
            return
        self.client.merge_patch(
            f"{path_for(API_VERSION, CB_PLURAL, '', name)}/status", {"status": status.wire()}
        )

    def event(
        self, pa: PredictiveAutoscaler, reason: str, message: str, now: float, kind: EventType
    ) -> None:
        if not self.write:
            self.skipped_writes += 1
            return
        emit_event(self.client, pa, reason, message, now, kind)

    def pod_startups(self, namespace: str, ref: TargetRef) -> list[tuple[float, float]]:
        plural = TARGET_PLURALS.get(ref.kind, ref.kind.lower() + "s")
        obj = self.client.get_or_none(path_for(ref.api_version, plural, namespace, ref.name))
        labels = None if obj is None else match_labels(obj)
        if not labels:
            return []
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = self.client.list(path_for("v1", "pods", namespace), {"labelSelector": selector})
        return pod_startup_pairs(pods)


@dataclass
class StaticCluster:
    """Objects from YAML documents; writes are kept in memory (for dry runs and benchmarks)."""

    autoscalers: list[PredictiveAutoscaler] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    targets: dict[tuple[str, str], TargetInfo] = field(default_factory=dict)
    hpas: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, PredictiveAutoscalerStatus] = field(default_factory=dict)
    budget_statuses: dict[str, CostBudgetStatus] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    #: Pod documents, and each target's ``matchLabels``, for ``pod_startups``.
    pods: list[Mapping[str, Any]] = field(default_factory=list)
    selectors: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_documents(cls, docs: Iterable[Mapping[str, Any]]) -> StaticCluster:
        pas: list[Mapping[str, Any]] = []
        budgets: list[Mapping[str, Any]] = []
        targets: dict[tuple[str, str], TargetInfo] = {}
        pods: list[Mapping[str, Any]] = []
        selectors: dict[tuple[str, str], dict[str, str]] = {}
        for doc in docs:
            if not doc:
                continue
            kind = doc.get("kind")
            if kind == PA_KIND:
                pas.append(doc)
            elif kind == CB_KIND:
                budgets.append(doc)
            elif kind == "Pod":
                pods.append(doc)
            elif kind in TARGET_PLURALS:
                meta = doc.get("metadata") or {}
                key = (meta.get("namespace", "default"), meta.get("name", ""))
                targets[key] = target_info(doc)
                labels = match_labels(doc)
                if labels:
                    selectors[key] = labels
        return cls(
            parse_autoscalers(pas),
            parse_budgets(budgets),
            targets,
            pods=pods,
            selectors=selectors,
        )

    def pod_startups(self, namespace: str, ref: TargetRef) -> list[tuple[float, float]]:
        labels = self.selectors.get((namespace, ref.name))
        if not labels:
            return []
        chosen = [
            p
            for p in self.pods
            if ((p.get("metadata") or {}).get("namespace", "default")) == namespace
            and all(
                ((p.get("metadata") or {}).get("labels") or {}).get(k) == v
                for k, v in labels.items()
            )
        ]
        return pod_startup_pairs(chosen)

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> StaticCluster:
        docs: list[Mapping[str, Any]] = []
        for path in paths:
            try:
                docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
            except (OSError, yaml.YAMLError) as err:
                raise InputError(str(path), f"cannot read objects: {err}", "give YAML") from err
        return cls.from_documents(docs)

    def list_autoscalers(self) -> list[PredictiveAutoscaler]:
        return list(self.autoscalers)

    def list_budgets(self) -> list[Budget]:
        return list(self.budgets)

    def target(self, namespace: str, ref: TargetRef) -> TargetInfo | None:
        return self.targets.get((namespace, ref.name))

    def ensure_hpa(self, pa: PredictiveAutoscaler, ceiling: int) -> str:
        old = self.hpas.get(pa.key)
        self.hpas[pa.key] = ceiling
        return "created" if old is None else ("unchanged" if old == ceiling else "updated")

    def patch_status(self, pa: PredictiveAutoscaler, status: PredictiveAutoscalerStatus) -> None:
        self.statuses[pa.key] = status

    def patch_budget_status(self, name: str, status: CostBudgetStatus) -> None:
        self.budget_statuses[name] = status

    def event(
        self, pa: PredictiveAutoscaler, reason: str, message: str, now: float, kind: EventType
    ) -> None:
        self.events.append((pa.key, reason, message))
