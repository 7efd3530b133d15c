"""Shared helpers for the deploy checks: tool lookup and cached kustomize builds.

Why: every manifest test needs the built overlays; building each once per session
keeps the suite fast on the shared 2-core machine. Tools (kubectl, promtool) are the
real binaries; when one is missing the test is skipped loudly, except under
``CI=true`` where a missing tool FAILS the run (a skipped check is not a green check).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

#: Every kustomization a user or GitOps applies. Each must build and validate.
BUILDS: dict[str, Path] = {
    "overlays/dev": DEPLOY / "overlays" / "dev",
    "overlays/staging": DEPLOY / "overlays" / "staging",
    "overlays/prod": DEPLOY / "overlays" / "prod",
    "overlays/keda": DEPLOY / "overlays" / "keda",
    "clusters/nonprod": DEPLOY / "clusters" / "nonprod",
    "clusters/prod": DEPLOY / "clusters" / "prod",
}
#: Overlays that carry one environment's CostBudget and PredictiveAutoscalers.
ENV_OVERLAYS = {"overlays/dev": "dev", "overlays/staging": "staging", "overlays/prod": "prod"}


def require_tool(name: str) -> str:
    """Path of ``name`` on PATH; skip (or fail under CI=true) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed: this deploy check cannot run"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: failing instead of skipping)")
        pytest.skip(message)
    return path


_BUILD_CACHE: dict[str, list[dict[str, Any]]] = {}


def kustomize_build(name: str) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize`` renders for ``BUILDS[name]`` (cached)."""
    if name not in _BUILD_CACHE:
        kubectl = require_tool("kubectl")
        proc = subprocess.run(
            [kubectl, "kustomize", str(BUILDS[name])],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"kubectl kustomize {name} failed:\n{proc.stderr}"
        _BUILD_CACHE[name] = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return _BUILD_CACHE[name]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """Objects of ``kind`` (and ``name``, when given)."""
    return [
        o
        for o in objects
        if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected exactly one {kind} {name or ''}, found {len(found)}"
    return found[0]
