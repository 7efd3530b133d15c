"""Every kustomization builds, every object validates, and the install is what we promise.

Real tools only: ``kubectl kustomize`` renders the overlays, the ``kubernetes-validate``
package checks built-in kinds against the Kubernetes OpenAPI schemas (strict: unknown
fields fail), and our CRDs' own schemas check the custom objects (tests/deploy/crdschema.py).
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import BUILDS, DEPLOY, ENV_OVERLAYS, REPO, find, kustomize_build, one
from tests.deploy.crdschema import crd_validators, errors

#: Oldest and newest Kubernetes minors we validate against. kubernetes-validate 1.37.0
#: ships schemas for 1.25-1.37; 1.29 is the oldest minor still commonly run in managed
#: clusters, 1.37 the newest the package knows.
K8S_VERSIONS = ("1.29", "1.37")

#: Third-party kinds for which no schema is available offline; each one gets the
#: structural checks below instead. Any other kind without a schema fails the test.
THIRD_PARTY = {
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "ClusterTriggerAuthentication"),
}
OUR_GROUP = "autoscaling.predictive.io"
SERVICES = ("event-gateway", "discord-bot", "refinory-ai", "jdk-workspace")


def crd_files() -> list[dict[str, Any]]:
    crds = []
    for name in ("predictiveautoscalers.yaml", "costbudgets.yaml"):
        path = DEPLOY / "base" / "crds" / name
        assert path.exists(), f"{path} is missing: run `python -m autoscaler.kube.crdgen`"
        crds.append(yaml.safe_load(path.read_text(encoding="utf-8")))
    return crds


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_kustomization_builds(build: str) -> None:
    objects = kustomize_build(build)
    assert objects, f"{build} renders nothing"
    keys = [(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), f"{build} renders duplicates"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("build", sorted(BUILDS))
def test_objects_validate_against_kubernetes_schemas(build: str, version: str) -> None:
    validators = crd_validators(crd_files())
    problems: list[str] = []
    for obj in kustomize_build(build):
        key = (obj["apiVersion"], obj["kind"])
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if key in validators:
            problems += [f"{where}: {e}" for e in errors(validators[key], obj)]
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if key not in THIRD_PARTY:
                problems.append(f"{where}: no schema for {key} and not a known third-party kind")
        except kubernetes_validate.ValidationError as err:
            problems.append(f"{where}: {err.message} at {list(err.path)}")
    assert not problems, "\n".join(problems)


def test_crd_schema_check_rejects_a_typo() -> None:
    """The CRD validation is strict: a misspelt field fails rather than being pruned."""
    validators = crd_validators(crd_files())
    pa = one(kustomize_build("overlays/prod"), "PredictiveAutoscaler", "refinory-ai")
    validator = validators[(pa["apiVersion"], pa["kind"])]
    assert errors(validator, pa) == []
    bad = yaml.safe_load(yaml.safe_dump(pa))
    bad["spec"]["maxReplica"] = bad["spec"].pop("maxReplicas")
    assert any("maxReplica" in e for e in errors(validator, bad))
    bad = yaml.safe_load(yaml.safe_dump(pa))
    bad["spec"]["riskQuantile"] = 1.0
    assert errors(validator, bad)


@pytest.mark.parametrize("overlay,env", sorted(ENV_OVERLAYS.items()))
def test_environment_objects(overlay: str, env: str) -> None:
    """Each environment overlay carries its CostBudget and a PA per platform service."""
    objects = kustomize_build(overlay)
    budget = one(objects, "CostBudget", env)
    assert budget["spec"]["environment"] == env
    assert "namespace" not in budget["metadata"], "CostBudget is cluster-scoped"
    pas = find(objects, "PredictiveAutoscaler")
    assert sorted(p["metadata"]["name"] for p in pas) == sorted(SERVICES)
    for pa in pas:
        spec = pa["spec"]
        assert pa["metadata"]["namespace"] == env
        assert spec["minReplicas"] <= spec["maxReplicas"], "CEL rule: min <= max"
        assert spec["budgetRef"] == env
        assert pa["metadata"]["namespace"] in budget["spec"]["selector"]["namespaces"]
        assert spec["targetRef"]["name"] == pa["metadata"]["name"]


@pytest.mark.parametrize("overlay,env", sorted(ENV_OVERLAYS.items()))
def test_cost_budgets_parse_with_the_policy_model(overlay: str, env: str) -> None:
    """The budgets finance commits are the ones the cost guard accepts."""
    budget_module = pytest.importorskip("policies.budget")
    obj = one(kustomize_build(overlay), "CostBudget", env)
    manifest = budget_module.parse_model(budget_module.CostBudgetManifest, obj, where=overlay)
    assert manifest.spec.environment == env


def test_nonprod_cluster_installs_once_for_two_environments() -> None:
    objects = kustomize_build("clusters/nonprod")
    assert len(find(objects, "APIService")) == 1
    assert len(find(objects, "Deployment")) == 1
    assert sorted(b["metadata"]["name"] for b in find(objects, "CostBudget")) == ["dev", "staging"]
    namespaces = {p["metadata"]["namespace"] for p in find(objects, "PredictiveAutoscaler")}
    assert namespaces == {"dev", "staging"}


# --- the promises of the install, checked on every build that installs the server ----


def installs() -> list[str]:
    return sorted(BUILDS)


@pytest.mark.parametrize("build", installs())
def test_deployment_is_non_root_and_bounded(build: str) -> None:
    objects = kustomize_build(build)
    dep = one(objects, "Deployment", "predictive-autoscaler")
    spec = dep["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["serviceAccountName"] == "predictive-autoscaler"
    one(objects, "ServiceAccount", "predictive-autoscaler")
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        for key in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][key]), f"{key} missing"
        assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["https"] == 6443 and ports["metrics"] == 8080
        assert c["args"][:2] == ["run", "--config"]
    for c in pod.get("initContainers", []):
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"cpu", "memory"} <= set(c["resources"]["limits"])
    # every volume a container mounts exists, and the state volume is a shared claim
    volumes = {v["name"]: v for v in pod["volumes"]}
    for c in pod["containers"] + pod.get("initContainers", []):
        for mount in c["volumeMounts"]:
            assert mount["name"] in volumes, f"{c['name']}: no volume {mount['name']}"
    claim = volumes["state"]["persistentVolumeClaim"]["claimName"]
    pvc = one(objects, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "both replicas share the ledger"
    config_map = volumes["config"]["configMap"]["name"]
    assert "autoscaler.yaml" in one(objects, "ConfigMap", config_map)["data"]
    # the PDB protects the pods this Deployment makes
    pdb = one(objects, "PodDisruptionBudget", "predictive-autoscaler")
    labels = spec["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] == 1


@pytest.mark.parametrize("build", installs())
def test_rbac_is_least_privilege(build: str) -> None:
    objects = kustomize_build(build)
    sa = {
        "kind": "ServiceAccount",
        "name": "predictive-autoscaler",
        "namespace": "autoscaler-system",
    }
    delegator = [
        b
        for b in find(objects, "ClusterRoleBinding")
        if b["roleRef"]["name"] == "system:auth-delegator"
    ]
    assert len(delegator) == 1 and sa in delegator[0]["subjects"]
    reader = [
        b
        for b in find(objects, "RoleBinding")
        if b["roleRef"]["name"] == "extension-apiserver-authentication-reader"
    ]
    assert len(reader) == 1
    assert reader[0]["metadata"]["namespace"] == "kube-system"
    assert reader[0]["roleRef"]["kind"] == "Role"
    assert sa in reader[0]["subjects"]
    for role in find(objects, "ClusterRole") + find(objects, "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"], f"{role['metadata']['name']}: wildcard verb"
            assert "secrets" not in rule.get("resources", []), "no access to Secrets"
            if "external.metrics.k8s.io" not in rule["apiGroups"]:
                assert "*" not in rule["resources"], f"{role['metadata']['name']}: wildcard"
    main = one(objects, "ClusterRole", "predictive-autoscaler")
    writes = {
        (g, r)
        for rule in main["rules"]
        if set(rule["verbs"]) & {"create", "update", "patch", "delete"}
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert ("apps", "deployments") not in writes, "the HPA scales workloads, not us"
    assert (OUR_GROUP, "predictiveautoscalers") not in writes, "status only, never the spec"


@pytest.mark.parametrize("build", [b for b in installs() if b != "overlays/keda"])
def test_apiservice_points_at_our_service(build: str) -> None:
    objects = kustomize_build(build)
    api = one(objects, "APIService", "v1beta1.external.metrics.k8s.io")
    assert api["spec"]["group"] == "external.metrics.k8s.io"
    assert api["spec"]["version"] == "v1beta1"
    assert api["spec"].get("insecureSkipTLSVerify") is not True
    ref = api["spec"]["service"]
    svc = one(objects, "Service", ref["name"])
    assert svc["metadata"]["namespace"] == ref["namespace"]
    port = next(p for p in svc["spec"]["ports"] if p["port"] == ref["port"])
    assert port["targetPort"] == "https"
    cert_ref = api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    namespace, name = cert_ref.split("/")
    cert = one(objects, "Certificate", name)
    assert cert["metadata"]["namespace"] == namespace
    assert f"{ref['name']}.{ref['namespace']}.svc" in cert["spec"]["dnsNames"]
    dep = one(objects, "Deployment", "predictive-autoscaler")
    secrets = [
        v["secret"]["secretName"]
        for v in dep["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    ]
    assert cert["spec"]["secretName"] in secrets
    # the HPA controller may read external metrics
    hpa = [
        b
        for b in find(objects, "ClusterRoleBinding")
        if {
            "kind": "ServiceAccount",
            "name": "horizontal-pod-autoscaler",
            "namespace": "kube-system",
        }
        in b["subjects"]
    ]
    assert len(hpa) == 1


@pytest.mark.parametrize("build", installs())
def test_network_policy_admits_only_apiserver_and_prometheus(build: str) -> None:
    objects = kustomize_build(build)
    policy = one(objects, "NetworkPolicy", "predictive-autoscaler")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    dep = one(objects, "Deployment", "predictive-autoscaler")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    sources: dict[str, set[int]] = {}
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from"), "every ingress rule names its sources"
        assert rule.get("ports"), "every ingress rule names its ports"
        for peer in rule["from"]:
            assert set(peer) in ({"ipBlock"}, {"namespaceSelector", "podSelector"})
            cidr = peer.get("ipBlock", {}).get("cidr")
            assert cidr not in ("0.0.0.0/0", "::/0")
            # the base's TEST-NET placeholder must be replaced by every build
            assert cidr != "192.0.2.0/24", "control-plane CIDR not set"
            if cidr:
                who = "apiserver"
            else:
                ns = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                who = {"monitoring": "prometheus", "keda": "keda"}[ns]
                if who == "prometheus":
                    app = peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                    assert app == "prometheus"
            sources.setdefault(who, set()).update(p["port"] for p in rule["ports"])
    # KEDA clusters: KEDA's operator calls our gRPC scaler; the API server never calls us.
    if build == "overlays/keda":
        assert sources == {"keda": {9443}, "prometheus": {8080}}
    else:
        assert sources == {"apiserver": {6443}, "prometheus": {8080}}


@pytest.mark.parametrize("build", installs())
def test_scrape_annotations_and_service_monitor(build: str) -> None:
    objects = kustomize_build(build)
    dep = one(objects, "Deployment", "predictive-autoscaler")
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    svc = one(objects, "Service", "predictive-autoscaler")
    for monitor in find(objects, "ServiceMonitor"):
        names = {p["name"] for p in svc["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= names
        # API latency is relayed to the metrics port; /metrics on https needs credentials.
        assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"metrics"}
        assert (
            monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        )


def test_keda_overlay_serves_through_keda_only() -> None:
    objects = kustomize_build("overlays/keda")
    assert find(objects, "APIService") == [], "KEDA owns external.metrics.k8s.io there"
    assert find(objects, "ClusterRole", "predictive-autoscaler:external-metrics-reader") == []
    svc = one(objects, "Service", "predictive-autoscaler")
    grpc_port = next(p for p in svc["spec"]["ports"] if p["name"] == "keda-grpc")
    scaled = one(objects, "ScaledObject", "event-gateway")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "external"
    ns = svc["metadata"]["namespace"]
    address = f"{svc['metadata']['name']}.{ns}.svc:{grpc_port['port']}"
    assert trigger["metadata"]["scalerAddress"] == address
    auth = trigger["authenticationRef"]
    one(objects, auth["kind"], auth["name"])
    # the scaled workload has a PredictiveAutoscaler that produces its decisions
    pa = one(objects, "PredictiveAutoscaler", trigger["metadata"]["workload"])
    assert pa["metadata"]["namespace"] == scaled["metadata"]["namespace"]
    assert scaled["spec"]["fallback"]["replicas"] >= pa["spec"]["minReplicas"]


@pytest.mark.parametrize("overlay,env", sorted(ENV_OVERLAYS.items()))
def test_budgets_are_the_cost_guards_examples(overlay: str, env: str) -> None:
    """One budget per environment, the same one the cost guard ships and tests."""
    example = yaml.safe_load((REPO / "policies" / "examples" / f"{env}.yaml").read_text("utf-8"))
    built = one(kustomize_build(overlay), "CostBudget", env)
    assert built["spec"] == example["spec"]
    assert built["metadata"]["name"] == example["metadata"]["name"]


@pytest.mark.parametrize("overlay,env", sorted(ENV_OVERLAYS.items()))
def test_pa_priorities_match_the_budget_tiers(overlay: str, env: str) -> None:
    budget_module = pytest.importorskip("policies.budget")
    objects = kustomize_build(overlay)
    spec = budget_module.parse_model(
        budget_module.CostBudgetManifest, one(objects, "CostBudget", env), where=overlay
    ).spec
    for pa in find(objects, "PredictiveAutoscaler"):
        ns, name = pa["metadata"]["namespace"], pa["metadata"]["name"]
        assert pa["spec"]["priority"] == spec.priority_of(ns, name), f"{ns}/{name}"


def test_budget_cli_validates_the_overlay_budgets() -> None:
    """What finance runs (docs/finance.md) accepts every budget we deploy."""
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "autoscaler"
    files = sorted(str(p) for p in (DEPLOY / "components").glob("env-*/costbudget.yaml"))
    assert len(files) == 3
    proc = subprocess.run(
        [str(cli), "budget", "validate", *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok:") == 3
