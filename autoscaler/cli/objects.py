"""A user's own objects for a replay: ``simulate --objects`` and ``budget frontier``.

Reads the PredictiveAutoscaler, CostBudgets and Deployment/StatefulSet a user already
has (the same YAML ``autoscaler run --objects`` takes) and turns them into what the
simulator replays: the objects themselves (the controller runs on them unchanged) and
the simulated workload (capacity from the autoscaler, requests and limits from the
target's pod template, start-up from ``--startup-seconds``). Every problem is one
``InputError`` naming the file and object, never a traceback.

Callers: ``autoscaler.cli.simulate``, ``autoscaler.cli.budget``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from autoscaler.kube.cluster import TARGET_PLURALS, sum_requests, sum_resources
from models.errors import InputError, yaml_problem
from policies.budget import CostBudget, parse_model
from policies.knobs import DEFAULT_LEAD_SECONDS
from policies.objects import CB_KIND, PA_KIND, Budget, PredictiveAutoscaler
from simulations.strategies.base import UserObjects
from simulations.workloads import Workload, workload_from_dict


def read_documents(paths: Sequence[Path]) -> list[tuple[str, Mapping[str, Any]]]:
    """Every mapping document of every file, with the file it came from."""
    docs: list[tuple[str, Mapping[str, Any]]] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise InputError(
                str(path), f"cannot read: {err.strerror or err}", "check the path"
            ) from None
        try:
            loaded = list(yaml.safe_load_all(text))
        except yaml.YAMLError as err:
            raise InputError(str(path), yaml_problem(err), "fix the syntax") from None
        for doc in loaded:
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise InputError(
                    str(path), "a document is not a mapping", "give Kubernetes objects"
                )
            docs.append((str(path), doc))
    if not docs:
        raise InputError("--objects", "no objects in the files given", "give YAML with objects")
    return docs


def _read_objects(
    paths: Sequence[Path],
) -> tuple[
    list[tuple[str, PredictiveAutoscaler]],
    list[Budget],
    dict[tuple[str, str], tuple[str, Mapping[str, Any]]],
]:
    """The PredictiveAutoscalers (with their files), CostBudgets and targets of ``paths``."""
    docs = read_documents(paths)
    pas: list[tuple[str, PredictiveAutoscaler]] = []
    budgets: list[Budget] = []
    targets: dict[tuple[str, str], tuple[str, Mapping[str, Any]]] = {}
    for path, doc in docs:
        kind = doc.get("kind")
        meta = doc.get("metadata") or {}
        if kind == PA_KIND:
            pa = PredictiveAutoscaler.parse(dict(doc))
            pas.append((path, pa))
        elif kind == CB_KIND:
            name = str(meta.get("name") or "")
            if not name:
                raise InputError(f"{path}: CostBudget", "metadata.name is missing", "name it")
            budget_spec = parse_model(
                CostBudget, doc.get("spec") or {}, f"{path}: CostBudget {name}"
            )
            labels = dict(meta.get("labels") or {})
            budgets.append(Budget(name, budget_spec, labels, dict(doc.get("status") or {})))
        elif kind in TARGET_PLURALS:
            key = (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
            targets[key] = (path, doc)
    return pas, budgets, targets


def load_user_objects(
    paths: Sequence[Path], startup_seconds: float | None, tick_seconds: float = 15.0
) -> tuple[UserObjects, Workload]:
    """The one PredictiveAutoscaler of ``paths``, its CostBudgets and its target."""
    pas, budgets, targets = _read_objects(paths)
    if len(pas) != 1:
        found = ", ".join(pa.key for _, pa in pas) or "none"
        raise InputError(
            "--objects",
            f"simulate replays one PredictiveAutoscaler; the files hold {len(pas)} ({found})",
            "give the files of one workload",
        )
    path, pa = pas[0]
    return _user_workload(path, pa, budgets, targets, startup_seconds, tick_seconds)


def load_user_fleet(
    paths: Sequence[Path], startup_seconds: float | None, tick_seconds: float = 15.0
) -> tuple[list[tuple[UserObjects, Workload]], list[Budget]]:
    """Every PredictiveAutoscaler of ``paths`` with its target, and the CostBudgets
    (``budget frontier``: several workloads, so that priority tiers can be modelled)."""
    pas, budgets, targets = _read_objects(paths)
    if not pas:
        raise InputError(
            "--objects", "no PredictiveAutoscaler in the files", "add your PredictiveAutoscaler"
        )
    seen: set[str] = set()
    for path, pa in pas:
        if pa.key in seen:
            raise InputError(
                f"{path}: {PA_KIND} {pa.key}", "is given twice", "give each autoscaler once"
            )
        seen.add(pa.key)
    members = [
        _user_workload(path, pa, budgets, targets, startup_seconds, tick_seconds)
        for path, pa in pas
    ]
    return members, budgets


def _user_workload(
    path: str,
    pa: PredictiveAutoscaler,
    budgets: list[Budget],
    targets: Mapping[tuple[str, str], tuple[str, Mapping[str, Any]]],
    startup_seconds: float | None,
    tick_seconds: float,
) -> tuple[UserObjects, Workload]:
    """One autoscaler with its target: the objects to replay and the simulated workload."""
    ns, name = pa.metadata.namespace or "default", pa.spec.target_ref.name
    if (ns, name) not in targets:
        raise InputError(
            f"{path}: {PA_KIND} {pa.key}",
            f"its target {pa.spec.target_ref.kind} {ns}/{name} is not in the files",
            "add the Deployment or StatefulSet it scales to --objects",
        )
    tpath, target = targets[(ns, name)]
    where = f"{tpath}: {target.get('kind')} {ns}/{name}"
    spec = target.get("spec") or {}
    pod_spec = ((spec.get("template") or {}).get("spec")) or {}
    try:
        requests = sum_requests(pod_spec)
    except InputError as err:
        raise InputError(f"{where}: {err.where}", err.problem, err.fix) from None
    if "cpu" not in requests or "memory" not in requests:
        raise InputError(
            where,
            "its containers request no CPU or no memory, so a replica has no price",
            "set resources.requests.cpu and .memory on its containers",
        )
    limits = sum_resources(pod_spec, "limits", f"{where}: limits")
    cpu_request = Decimal(requests["cpu"])
    cpu_limit = max(limits.get("cpu", cpu_request), cpu_request)
    mem_limit = max(limits.get("memory", Decimal(requests["memory"])), Decimal(requests["memory"]))
    s = pa.spec
    if s.capacity_per_replica is None:
        raise InputError(
            f"{path}: {PA_KIND} {pa.key}",
            "it has no capacityPerReplica, and the simulator needs the true capacity to"
            " emulate its pods",
            "set spec.capacityPerReplica in the file (the controller learns it in a cluster)",
        )
    if startup_seconds is None:
        # The autoscaler's own statement: lead time = pod start-up + one HPA sync.
        lead = s.lead_time_seconds if s.lead_time_seconds is not None else DEFAULT_LEAD_SECONDS
        startup_seconds = max(0.0, lead - tick_seconds)
    workload = workload_from_dict(
        {
            "name": pa.metadata.name,
            "description": f"{pa.key} from {path}",
            "resources": {
                "requests": {"cpu": requests["cpu"], "memory": requests["memory"]},
                "limits": {"cpu": format(cpu_limit, "f"), "memory": format(mem_limit, "f")},
            },
            "capacity_rps": s.capacity_per_replica,
            "startup": {"distribution": "fixed", "seconds": startup_seconds},
            "min_replicas": max(1, s.min_replicas),
            "max_replicas": s.max_replicas,
        },
        where,
    )
    replicas = spec.get("replicas")
    objects = UserObjects(
        autoscaler=pa,
        budgets=tuple(budgets),
        requests={"cpu": requests["cpu"], "memory": requests["memory"]},
        replicas=int(replicas) if isinstance(replicas, int) and replicas >= 0 else None,
    )
    return objects, workload
