"""Validate custom objects against our CRDs' OpenAPI v3 schemas with ``jsonschema``.

Why: the API server prunes unknown fields of a CRD object without a word, so a typo in
an example (``maxReplica:``) would silently become the default. These checks are
stricter than the API server on purpose: unknown fields are errors.

How: the CRD's ``openAPIV3Schema`` is OpenAPI 3.0 (draft-4 style boolean
``exclusiveMinimum``, ``nullable``); it is converted to a draft-4 JSON Schema with
``additionalProperties: false`` wherever the schema lists properties. CEL rules
(``x-kubernetes-validations``) cannot be evaluated here; callers check the ones they
know (min <= max) by hand.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema


def to_json_schema(node: Any) -> Any:
    """OpenAPI v3 (structural CRD schema) -> draft-4 JSON Schema, strict on unknown fields."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    out.pop("nullable", None)
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_validators(crds: list[dict[str, Any]]) -> dict[tuple[str, str], jsonschema.Draft4Validator]:
    """(apiVersion, kind) -> validator for every served version of every CRD."""
    out: dict[tuple[str, str], jsonschema.Draft4Validator] = {}
    for crd in crds:
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served", True):
                continue
            schema = to_json_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            jsonschema.Draft4Validator.check_schema(schema)
            out[(f"{group}/{version['name']}", kind)] = jsonschema.Draft4Validator(schema)
    return out


def errors(validator: jsonschema.Draft4Validator, obj: dict[str, Any]) -> list[str]:
    """Every schema violation of ``obj``, as ``path: message`` lines."""
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in validator.iter_errors(obj)
    ]
