"""The CRDs in deploy/base/crds are generated from the models, structural, and valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from autoscaler.kube import crdgen
from models.errors import InputError
from policies.objects import PredictiveAutoscaler

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "deploy" / "base" / "crds"
FORBIDDEN = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "const", "uniqueItems"}

SAMPLE_PA: dict[str, Any] = {
    "apiVersion": "autoscaling.predictive.io/v1alpha1",
    "kind": "PredictiveAutoscaler",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {
        "targetRef": {"name": "web"},
        "query": "sum by (namespace, workload) (rate(http_requests_total[1m]))",
        "capacityPerReplica": 50,
        "riskQuantile": 0.95,
        "fallback": {"holdSeconds": 120, "mode": "Static", "staticReplicas": 3},
    },
}


def _crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(CRD_DIR.glob("*.yaml"))]


def _walk(node: Any, path: str = "") -> list[str]:
    """Paths of nodes that break Kubernetes' structural-schema rules."""
    bad: list[str] = []
    if not isinstance(node, dict):
        return bad
    bad += [f"{path}.{key}" for key in FORBIDDEN & node.keys()]
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        bad.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        bad.append(f"{path}: properties with additionalProperties")
    for key, child in node.get("properties", {}).items():
        bad += _walk(child, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            bad += _walk(node[key], f"{path}[{key}]")
    return bad


def test_generated_files_are_up_to_date() -> None:
    assert crdgen.main(["--check", str(CRD_DIR)]) == 0


def test_predictive_autoscaler_crd_exists_with_names() -> None:
    names = {c["spec"]["names"]["plural"]: c for c in _crds()}
    pa = names["predictiveautoscalers"]
    assert pa["spec"]["group"] == "autoscaling.predictive.io"
    assert pa["spec"]["scope"] == "Namespaced"
    assert pa["spec"]["names"]["shortNames"] == ["pa"]
    version = pa["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    assert {c["name"] for c in version["additionalPrinterColumns"]} >= {"Target", "Replicas"}


@pytest.mark.parametrize("crd", _crds(), ids=lambda c: c["spec"]["names"]["plural"])
def test_crd_is_valid_kubernetes_and_structural(crd: dict[str, Any]) -> None:
    kubernetes_validate.validate(crd, "1.31.0", strict=True)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []
    for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
        # every printer column must point at a field the schema declares
        parts = column["jsonPath"].strip(".").split(".")
        if parts[0] == "metadata":
            continue
        node = schema
        for part in parts:
            node = node["properties"][part]


def _pa_schema() -> dict[str, Any]:
    crd = next(c for c in _crds() if c["spec"]["names"]["kind"] == "PredictiveAutoscaler")
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_sample_object_passes_schema_and_model() -> None:
    # OpenAPI v3.0 uses boolean exclusiveMinimum, as JSON Schema draft 4 does.
    jsonschema.Draft4Validator(_pa_schema()).validate(SAMPLE_PA)
    pa = PredictiveAutoscaler.parse(SAMPLE_PA)
    assert pa.spec.fallback.mode == "Static"
    assert pa.spec.target_utilization == 0.85  # documented default
    assert pa.spec.wire()["targetRef"]["kind"] == "Deployment"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capacityPerReplica", 0),
        ("riskQuantile", 1.0),
        ("riskQuantile", 0.5),
        ("riskTarget", 0.0),
        ("mode", "Sometimes"),
    ],
)
def test_bad_spec_rejected_by_schema_and_model(field: str, value: Any) -> None:
    bad = {**SAMPLE_PA, "spec": {**SAMPLE_PA["spec"], field: value}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(_pa_schema()).validate(bad)
    with pytest.raises(InputError, match=field):
        PredictiveAutoscaler.parse(bad)


def test_min_above_max_is_an_input_error() -> None:
    bad = {**SAMPLE_PA, "spec": {**SAMPLE_PA["spec"], "minReplicas": 5, "maxReplicas": 2}}
    with pytest.raises(InputError, match="minReplicas"):
        PredictiveAutoscaler.parse(bad)


def test_capacity_and_lead_time_may_be_omitted() -> None:
    """Without the two fields the object is valid (the controller learns them); with
    them given, they are what the decision path uses, as before."""
    from autoscaler.controller.workload import scaling_spec
    from policies.knobs import DEFAULT_LEAD_SECONDS

    spec = {k: v for k, v in SAMPLE_PA["spec"].items() if k != "capacityPerReplica"}
    bare = {**SAMPLE_PA, "spec": spec}
    jsonschema.Draft4Validator(_pa_schema()).validate(bare)
    assert "capacityPerReplica" not in _pa_schema()["properties"]["spec"]["required"]
    pa = PredictiveAutoscaler.parse(bare)
    assert pa.spec.capacity_per_replica is None and pa.spec.lead_time_seconds is None
    unknown = scaling_spec(pa, 3600.0, "last")
    assert unknown.capacity_per_replica is None
    assert unknown.lead_seconds == DEFAULT_LEAD_SECONDS
    assert unknown.capacity_note  # the decision's reason says why
    # Given: used as they are, whatever a calibration might have learnt.
    from autoscaler.controller.learning import Learnt

    given = PredictiveAutoscaler.parse(
        {**SAMPLE_PA, "spec": {**SAMPLE_PA["spec"], "leadTimeSeconds": 90}}
    )
    learnt = Learnt(capacity=7.0, low=6.0, high=8.0, lead_seconds=40.0)
    for knowledge in (None, learnt):
        s = scaling_spec(given, 3600.0, "last", learnt=knowledge)
        assert (s.capacity_per_replica, s.lead_seconds, s.capacity_note) == (50.0, 90.0, "")
    # The API server no longer fills a lead time in (an omitted one is learnt).
    lead = _pa_schema()["properties"]["spec"]["properties"]["leadTimeSeconds"]
    assert lead.get("default") is None
