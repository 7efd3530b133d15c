"""Every Kubernetes API call the controller makes is allowed by the RBAC we deploy.

Least privilege is only half the promise; the other half is that the controller can do
its job. This runs the real controller (``autoscaler run --once``, writes on) and the
real leader elector against kmock, the Kubernetes API emulator, loaded with the prod
and dev overlays' PredictiveAutoscalers and CostBudgets and their Deployments. Every request
kmock saw is turned into RBAC terms (verb, API group, resource, subresource, namespace)
and checked against the rules of the built ClusterRole and Role, as the API server's
RBAC authorizer would. Prometheus is unreachable on purpose: the workloads go to
fallback, which still creates the HPAs and writes statuses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import REPO, find, kustomize_build, one
from tests.required import require_module

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def cluster() -> Iterator[Any]:
    # kmock is in requirements.lock: missing, it fails under CI=true (never a silent skip).
    kmockharness = require_module("tests.controller.kmockharness")
    c = kmockharness.KmockCluster()
    try:
        yield c
    finally:
        c.close()


def allowed(rules: list[dict[str, Any]], verb: str, group: str, resource: str) -> bool:
    for rule in rules:
        if group not in rule.get("apiGroups", []) and "*" not in rule.get("apiGroups", []):
            continue
        if resource not in rule.get("resources", []) and "*" not in rule.get("resources", []):
            continue
        if verb in rule["verbs"] or "*" in rule["verbs"]:
            return True
    return False


def rbac_attributes(request: Any) -> tuple[str, str, str, str]:
    """(verb, group, resource[/subresource], namespace) of one request kmock saw."""
    method = request.method.value
    resource = request.resource
    assert resource is not None, f"not a resource request: {request.url}"
    has_name = bool(request.name)
    verb = {
        "GET": "get" if has_name else ("watch" if request.params.get("watch") else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if has_name else "deletecollection",
    }[method]
    plural = resource.plural + (f"/{request.subresource}" if request.subresource else "")
    return verb, resource.group or "", plural, request.namespace or ""


def test_controller_and_leader_election_need_nothing_we_do_not_grant(
    cluster: Any, tmp_path: Path
) -> None:
    # prod's budget selects by namespace; dev's by labels as well: both, in one cluster
    objects = kustomize_build("overlays/prod")
    for overlay, env in (("overlays/prod", "prod"), ("overlays/dev", "dev")):
        built = kustomize_build(overlay)
        for pa in find(built, "PredictiveAutoscaler"):
            meta = pa["metadata"]
            obj = {**pa, "metadata": {**meta, "uid": f"uid-{env}-{meta['name']}", "generation": 1}}
            cluster.put(
                "autoscaling.predictive.io/v1alpha1/predictiveautoscalers",
                meta["namespace"],
                meta["name"],
                obj,
            )
        budget = one(built, "CostBudget", env)
        cluster.put(
            "autoscaling.predictive.io/v1alpha1/costbudgets",
            None,
            env,
            {**budget, "metadata": {**budget["metadata"], "uid": f"uid-{env}"}},
        )
        deployments = (REPO / "deploy/compose/deployments.yaml").read_text("utf-8")
        for dep in yaml.safe_load_all(deployments):
            dep["metadata"]["namespace"] = env
            cluster.put("apps/v1/deployments", env, dep["metadata"]["name"], dep)

    # The deployed settings, pointed at kmock and at a Prometheus that is not there.
    config = yaml.safe_load((REPO / "deploy/base/autoscaler.yaml").read_text("utf-8"))
    config["kube"] = {"host": cluster.url, "in_cluster": False, "retries": 1}
    config["prometheus"] = {"url": "http://127.0.0.1:9", "timeout_seconds": 1}
    config["api"] = {"bind": "127.0.0.1:6443", "insecure": True}
    config["ledger"]["path"] = str(tmp_path / "ledger.json")
    config["shadow"]["path"] = str(tmp_path / "shadow.jsonl")
    path = tmp_path / "autoscaler.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOSCALER_")}
    cli = str(Path(sys.executable).parent / "autoscaler")
    done = subprocess.run(
        [cli, "run", "--once", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    # Leader election with the deployed Lease namespace and name.
    from autoscaler.clock import WallClock
    from autoscaler.kube.client import KubeClient, KubeSettings
    from autoscaler.kube.leader import LeaderElector, LeaderSettings

    leader = LeaderSettings(
        **yaml.safe_load((REPO / "deploy/base/autoscaler.yaml").read_text())["leader"]
    )
    elector = LeaderElector(
        KubeClient(KubeSettings(host=cluster.url)), leader, "pod-a", WallClock()
    )
    assert elector.try_acquire_or_renew()
    assert elector.try_acquire_or_renew()

    cluster_rules = one(objects, "ClusterRole", "predictive-autoscaler")["rules"]
    role = one(objects, "Role", "predictive-autoscaler:leader-election")
    seen = {rbac_attributes(r) for r in cluster.requests()}
    # the run did the work we expect of it (so an empty request log cannot pass)
    verbs = {(v, res) for v, _, res, _ in seen}
    assert ("create", "horizontalpodautoscalers") in verbs, sorted(seen)
    assert ("patch", "predictiveautoscalers/status") in verbs, sorted(seen)
    assert any(res == "leases" for _, _, res, _ in seen)

    def denied(rules: list[dict[str, Any]]) -> list[str]:
        out = []
        for verb, group, resource, namespace in sorted(seen):
            ok = allowed(rules, verb, group, resource) or (
                namespace == role["metadata"]["namespace"]
                and allowed(role["rules"], verb, group, resource)
            )
            if not ok:
                out.append(f"{verb} {group or 'core'}/{resource} in {namespace or 'cluster'}")
        return out

    assert not denied(cluster_rules), "RBAC would deny: " + "; ".join(denied(cluster_rules))
    # and the check can fail: without the HPA rule the controller could not work
    no_hpa = [r for r in cluster_rules if "horizontalpodautoscalers" not in r["resources"]]
    assert any("horizontalpodautoscalers" in d for d in denied(no_hpa))
