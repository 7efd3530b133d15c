"""The settings the manifests give ``autoscaler run`` are valid for the real settings model.

The Deployment mounts a settings file and adds ``AUTOSCALER_*`` environment variables
per cluster. pydantic-settings ignores environment variables that name no field, so a
misspelt variable would silently do nothing: each one is checked against the model,
then the file plus the variables are loaded with ``autoscaler.settings.load_settings``.
Certificate paths are pointed at files made here (the model checks they exist).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from tests.deploy.conftest import BUILDS, kustomize_build, one

settings_module = pytest.importorskip("autoscaler.settings")


def container_and_config(build: str) -> tuple[dict[str, Any], dict[str, Any]]:
    objects = kustomize_build(build)
    pod = one(objects, "Deployment", "predictive-autoscaler")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    args = container["args"]
    path = Path(args[args.index("--config") + 1])
    assert path.parent == Path(mount["mountPath"])
    data = one(objects, "ConfigMap", volumes["config"]["configMap"]["name"])["data"]
    return container, yaml.safe_load(data[path.name])


def field_exists(name: str) -> bool:
    """Does ``AUTOSCALER_GROUP__FIELD`` name a field of ControllerSettings?"""
    model: type[BaseModel] = settings_module.ControllerSettings
    parts = name.removeprefix("AUTOSCALER_").lower().split("__")
    for i, part in enumerate(parts):
        info = model.model_fields.get(part)
        if info is None:
            return False
        if i < len(parts) - 1:
            sub = info.annotation
            if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
                return False
            model = sub
    return True


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_settings_file_and_env_load(build: str, tmp_path: Path) -> None:
    container, config = container_and_config(build)
    env = {
        e["name"]: e["value"]
        for e in container.get("env", [])
        if e["name"].startswith("AUTOSCALER_")
    }
    for name in env:
        assert field_exists(name), f"{build}: {name} is not a setting (it would be ignored)"
    # The pod's paths do not exist here: point them at real files, keep everything else.
    for key in ("tls_cert", "tls_key", "requestheader_client_ca"):
        fake = tmp_path / key
        fake.write_text("placeholder\n", encoding="utf-8")
        assert config["api"][key].startswith("/var/run/autoscaler/")
        config["api"][key] = str(fake)
    path = tmp_path / "autoscaler.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = settings_module.load_settings(path)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert settings.kube.in_cluster is True
    assert settings.leader.enabled is True
    assert settings.api.insecure is False
    assert settings.api.bind.endswith(":6443")
    assert settings.api.keda_bind is not None and settings.api.keda_bind.endswith(":9443")
    assert settings.observability.metrics_port == 8080
    if "AUTOSCALER_PROMETHEUS__URL" in env:
        assert settings.prometheus.url == env["AUTOSCALER_PROMETHEUS__URL"]
    # the Lease namespace is where the Role grants Lease access
    objects = kustomize_build(build)
    role = one(objects, "Role", "predictive-autoscaler:leader-election")
    assert role["metadata"]["namespace"] == settings.leader.namespace
    # the state volume holds the ledger
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert str(settings.ledger.path).startswith(mounts["state"] + "/")


def test_a_misspelt_setting_is_caught() -> None:
    assert field_exists("AUTOSCALER_PROMETHEUS__URL")
    assert not field_exists("AUTOSCALER_PROMETHEUS__URI")
    assert not field_exists("AUTOSCALER_MANAGE_HPA")
