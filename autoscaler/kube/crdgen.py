"""Generate the CustomResourceDefinitions in ``deploy/base/crds/`` from the pydantic models.

Why generated: a hand-written OpenAPI schema drifts from the code that reads the
objects. Here the schema *is* the models (``policies.objects`` and
``policies.budget.CostBudget``), converted to a Kubernetes *structural* schema:
``$ref`` inlined, ``Optional`` turned into ``nullable``, JSON-Schema-2020 keywords the
API server rejects (``title``, ``const``, numeric ``exclusiveMinimum``, ``uniqueItems``,
``additionalProperties`` next to ``properties``) rewritten or dropped, and free-form
values marked ``x-kubernetes-preserve-unknown-fields``.

Run ``python -m autoscaler.kube.crdgen deploy/base/crds`` after changing a model;
``--check`` exits 1 when the files on disk differ (the test suite runs the check).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from policies.objects import (
    CB_KIND,
    CB_PLURAL,
    GROUP,
    PA_KIND,
    PA_PLURAL,
    VERSION,
    CostBudgetStatus,
    PredictiveAutoscalerSpec,
    PredictiveAutoscalerStatus,
)

#: Keys that Kubernetes' structural-schema validation accepts and we keep as they are.
_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
}


def structural(schema: Mapping[str, Any], defs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Turn a pydantic JSON schema into a Kubernetes structural OpenAPI v3 schema."""
    defs = dict(defs if defs is not None else schema.get("$defs", {}))
    node = dict(schema)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = {**target, **node}  # sibling keys (description, default) win
        return structural(merged, defs)
    out: dict[str, Any] = {}
    for combo in ("anyOf", "oneOf"):
        if combo in node:
            options = [o for o in node.pop(combo) if o.get("type") != "null"]
            nullable = len(options) < len(schema[combo])
            if len(options) != 1:
                # A real union has no structural form: accept anything, validate in pydantic.
                out["x-kubernetes-preserve-unknown-fields"] = True
            else:
                out.update(structural({**options[0]}, defs))
            if nullable:
                out["nullable"] = True
    if "allOf" in node and len(node["allOf"]) == 1:
        out.update(structural(node.pop("allOf")[0], defs))
    if "const" in node:
        out["enum"] = [node.pop("const")]
    for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if key in node and not isinstance(node[key], bool):
            out[bound] = node.pop(key)
            out[key] = True
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if isinstance(node.get(key), bool):
            out[key] = node[key]
    for key, value in node.items():
        if key in _KEEP:
            out[key] = value.replace("``", "`") if key == "description" else value
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {k: structural(v, defs) for k, v in node["properties"].items()}
        if node.get("required"):
            out["required"] = sorted(node["required"])
    elif node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = structural(node["additionalProperties"], defs)
    elif node.get("type") == "object":
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "items" in node:
        out["items"] = structural(node["items"], defs)
    if "type" not in out and "x-kubernetes-preserve-unknown-fields" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    # Defaults that are objects must validate against the schema; pydantic emits them
    # fully, but an empty dict default is clearer and the API server fills the rest.
    if isinstance(out.get("default"), dict):
        out["default"] = {}
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of a pydantic model, with camelCase (wire) names."""
    return structural(model.model_json_schema(by_alias=True, mode="validation"))


def _column(name: str, path: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "jsonPath": path, **extra}


def _crd(
    *,
    kind: str,
    plural: str,
    short: list[str],
    scope: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "annotations": {"predictive.io/generated-by": "python -m autoscaler.kube.crdgen"},
        },
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["autoscaling"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def predictive_autoscaler_crd() -> dict[str, Any]:
    """The PredictiveAutoscaler CRD (namespaced, short name ``pa``)."""
    return _crd(
        kind=PA_KIND,
        plural=PA_PLURAL,
        short=["pa"],
        scope="Namespaced",
        spec={
            **model_schema(PredictiveAutoscalerSpec),
            # The API server rejects min > max itself (CEL), before the controller sees it.
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must not exceed maxReplicas",
                }
            ],
        },
        status=model_schema(PredictiveAutoscalerStatus),
        description=(
            "Forecasts a workload's load and serves the replica count it needs on the"
            " External Metrics API; the controller owns an HPA that consumes it."
        ),
        columns=[
            _column("Target", ".spec.targetRef.name"),
            _column("Mode", ".spec.mode"),
            _column("Min", ".spec.minReplicas", "integer"),
            _column("Max", ".spec.maxReplicas", "integer"),
            _column("Current", ".status.currentReplicas", "integer"),
            _column("Desired", ".status.desiredReplicas", "integer"),
            _column("Replicas", ".status.replicas", "integer"),
            _column("Forecast", ".status.forecastLoad", "number"),
            _column("Constraint", ".status.bindingConstraint"),
            _column("Fallback", ".status.fallbackActive", "boolean"),
            _column("Reason", ".status.reason", priority=1),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
    )


def cost_budget_crd(spec_model: type[BaseModel]) -> dict[str, Any]:
    """The CostBudget CRD (cluster-scoped, short name ``cb``); spec from the cost guard."""
    spec = model_schema(spec_model)
    props = spec.get("properties", {})
    columns = [_column("Environment", ".spec.environment")] if "environment" in props else []
    columns += [
        _column(name, f".spec.{field}", "number")
        for name, field in (
            ("Monthly", "monthlyLimitDollars"),
            ("Monthly", "monthlyLimit"),
            ("Hourly-Cap", "hourlyCapDollars"),
            ("Hourly-Cap", "hourlyLimitDollars"),
            ("Hourly-Cap", "hourlyLimit"),
        )
        if field in props
    ]
    unique: dict[str, dict[str, Any]] = {}
    for column in columns:
        unique.setdefault(column["name"], column)
    columns = list(unique.values())
    columns += [
        _column("Spend", ".status.spendDollars", "number"),
        _column("Projection", ".status.projectionDollars", "number"),
        _column("Cost/h", ".status.hourlyCostDollars", "number"),
        _column("Infeasible", ".status.infeasible", "boolean"),
        _column("Clamped", ".status.clampedWorkloads", priority=1),
        _column("Age", ".metadata.creationTimestamp", "date"),
    ]
    return _crd(
        kind=CB_KIND,
        plural=CB_PLURAL,
        short=["cb"],
        scope="Cluster",
        spec=spec,
        status=model_schema(CostBudgetStatus),
        description=(
            "An environment's hourly and monthly cost limits with priorities; status holds"
            " the spend to date (from the persisted ledger) and the month-end projection."
        ),
        columns=columns,
    )


def _budget_model() -> type[BaseModel] | None:
    import importlib

    try:
        module = importlib.import_module("policies.budget")
    except ImportError:  # the cost guard has not landed yet: generate what we can
        return None
    model = getattr(module, "CostBudget", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model
    return None


class _NoAliases(yaml.SafeDumper):
    """A schema used twice (two fields of one model) is written out twice, not as a
    YAML anchor and alias: the API server accepts either, people reading it do not."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_all() -> dict[str, str]:
    """File name -> YAML text for every CRD."""
    docs = {f"{PA_PLURAL}.yaml": predictive_autoscaler_crd()}
    budget = _budget_model()
    if budget is not None:
        docs[f"{CB_PLURAL}.yaml"] = cost_budget_crd(budget)
    header = "# GENERATED by `python -m autoscaler.kube.crdgen deploy/base/crds`. Do not edit.\n"
    return {
        name: header + yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, width=100)
        for name, doc in docs.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if files differ")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for name, text in render_all().items():
        path = args.outdir / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        sys.stderr.write(
            "stale CRDs (run python -m autoscaler.kube.crdgen deploy/base/crds): "
            + ", ".join(stale)
            + "\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
