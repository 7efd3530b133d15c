"""GitOps examples: each Argo CD Application and Flux Kustomization points at a path
that exists and builds (one of the kustomizations tests/deploy/test_manifests.py checks),
and syncs server-side (the generated CRDs need it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import BUILDS, DEPLOY, REPO

GITOPS = DEPLOY / "gitops"


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def build_name(repo_path: str) -> str:
    target = (REPO / repo_path).resolve()
    names = [name for name, path in BUILDS.items() if path.resolve() == target]
    assert names, f"{repo_path} is not one of the checked kustomizations"
    return names[0]


@pytest.mark.parametrize("path", sorted((GITOPS / "argocd").glob("*.yaml")), ids=lambda p: p.name)
def test_argocd_application(path: Path) -> None:
    (app,) = docs(path)
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    spec = app["spec"]
    assert build_name(spec["source"]["path"]).startswith("clusters/")
    assert "ServerSideApply=true" in spec["syncPolicy"]["syncOptions"]
    assert spec["syncPolicy"]["automated"]["prune"] is True
    assert spec["source"]["targetRevision"]


@pytest.mark.parametrize("path", sorted((GITOPS / "flux").glob("*.yaml")), ids=lambda p: p.name)
def test_flux_kustomization(path: Path) -> None:
    objects = {d["kind"]: d for d in docs(path)}
    assert set(objects) == {"GitRepository", "Kustomization"}
    ks, repo = objects["Kustomization"], objects["GitRepository"]
    assert ks["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert ks["spec"]["sourceRef"] == {"kind": "GitRepository", "name": repo["metadata"]["name"]}
    assert ks["metadata"]["namespace"] == repo["metadata"]["namespace"]
    assert build_name(ks["spec"]["path"]).startswith("clusters/")
    assert ks["spec"]["prune"] is True


def test_every_cluster_has_both_examples() -> None:
    clusters = {n.split("/")[1] for n in BUILDS if n.startswith("clusters/")}
    assert {p.stem for p in (GITOPS / "argocd").glob("*.yaml")} == clusters
    assert {p.stem for p in (GITOPS / "flux").glob("*.yaml")} == clusters
