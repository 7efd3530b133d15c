"""docker-compose.yml: syntax, wiring, and every file it mounts.

No Docker engine runs on these machines (``docker compose`` is not available), so
``docker compose config`` cannot be the check. Instead: the YAML is parsed and checked
against the parts of the Compose specification it uses (services with an image or a
build, ports, volumes, depends_on), every bind mount must exist in the repository, and
the files mounted into each service are checked by that service's own tool: Prometheus'
config by ``promtool check config`` (with the container paths mapped back to the
repository through the compose volumes), the autoscaler's settings by the real settings
model. When ``docker compose`` is available, ``docker compose config -q`` runs as well.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import REPO, require_tool

COMPOSE = REPO / "docker-compose.yml"
TOP_LEVEL = {"name", "services", "volumes", "networks", "configs", "secrets"}
SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "volumes", "ports",
    "depends_on", "restart", "read_only", "user", "tmpfs", "healthcheck", "working_dir",
}  # fmt: skip


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (repository-relative) for bind mounts."""
    out = {}
    for spec in service.get("volumes", []):
        source, target, *_ = spec.split(":")
        if source.startswith("./"):
            out[target] = source[2:]
    return out


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """The repository file a container path comes from, through the bind mounts."""
    p = PurePosixPath(container_path)
    for target, source in sorted(mounts(service).items(), key=lambda kv: -len(kv[0])):
        t = PurePosixPath(target)
        if p == t or t in p.parents:
            return REPO / source / p.relative_to(t)
    raise AssertionError(f"{container_path} is not mounted from the repository")


def test_structure() -> None:
    data = compose()
    assert set(data) - TOP_LEVEL <= {k for k in data if k.startswith("x-")}
    services = data["services"]
    assert {"prometheus", "grafana", "autoscaler", "loadgen"} <= set(services)
    declared = set(data.get("volumes") or {})
    for name, svc in services.items():
        assert set(svc) <= SERVICE_KEYS, f"{name}: unexpected keys {set(svc) - SERVICE_KEYS}"
        assert "image" in svc or "build" in svc, name
        if "image" in svc and "build" not in svc:
            # third-party images pinned to an exact version, never :latest
            assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", svc["image"]), svc["image"]
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
        for port in svc.get("ports", []):
            assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+", port), f"{name}: bind to loopback: {port}"
        for spec in svc.get("volumes", []):
            source, target, *mode = spec.split(":")
            assert target.startswith("/"), spec
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"
                assert mode == ["ro"], f"{name}: bind mounts are read-only: {spec}"
            else:
                assert source in declared, f"{name}: named volume {source} not declared"
    build = services["autoscaler"]["build"]
    assert (REPO / build["context"] / build["dockerfile"]).is_file()


def test_autoscaler_runs_without_a_cluster_as_non_root() -> None:
    svc = compose()["services"]["autoscaler"]
    cmd = svc["command"]
    assert cmd[0] == "run" and "--objects" in cmd, "static objects: no cluster, no writes"
    objects = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--objects"]
    kinds = set()
    for path in objects:
        for doc in yaml.safe_load_all(host_path(svc, path).read_text(encoding="utf-8")):
            kinds.add(doc["kind"])
    assert {"PredictiveAutoscaler", "CostBudget", "Deployment"} <= kinds
    assert svc["read_only"] is True
    assert not svc["user"].startswith("0")


def test_autoscaler_settings_load(tmp_path: Path) -> None:
    settings_module = pytest.importorskip("autoscaler.settings")
    svc = compose()["services"]["autoscaler"]
    cmd = svc["command"]
    config = host_path(svc, cmd[cmd.index("--config") + 1])
    settings = settings_module.load_settings(config)
    assert settings.prometheus.url == "http://prometheus:9090"
    assert settings.api.insecure is True and settings.api.host == "127.0.0.1"
    prom = yaml.safe_load((REPO / "deploy/compose/prometheus.yml").read_text("utf-8"))
    targets = {
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    assert f"autoscaler:{settings.observability.metrics_port}" in targets
    assert f"{settings.observability.metrics_addr}" == "0.0.0.0"


def test_loadgen_serves_what_the_dev_queries_read() -> None:
    svc = compose()["services"]["loadgen"]
    assert host_path(svc, "/app/tools/loadgen.py").is_file()
    args = svc["command"]
    bind = args[args.index("--bind") + 1]
    prom = yaml.safe_load((REPO / "deploy/compose/prometheus.yml").read_text("utf-8"))
    targets = {
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    assert f"loadgen:{bind.rsplit(':', 1)[1]}" in targets
    traces = host_path(svc, args[args.index("--traces-dir") + 1])
    assert any(traces.glob("*.csv"))


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    svc = compose()["services"]["prometheus"]
    flag = next(a for a in svc["command"] if a.startswith("--config.file="))
    config = yaml.safe_load(host_path(svc, flag.split("=", 1)[1]).read_text("utf-8"))
    config["rule_files"] = [str(host_path(svc, p)) for p in config["rule_files"]]
    scratch = tmp_path / "prometheus.yml"
    scratch.write_text(yaml.safe_dump(config), encoding="utf-8")
    proc = subprocess.run(
        [promtool, "check", "config", str(scratch)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_grafana_provisioning_points_at_prometheus_and_dashboards() -> None:
    data = compose()
    svc = data["services"]["grafana"]
    prov = host_path(svc, "/etc/grafana/provisioning")
    (ds,) = yaml.safe_load((prov / "datasources/prometheus.yaml").read_text("utf-8"))["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((prov / "dashboards/autoscaler.yaml").read_text("utf-8"))[
        "providers"
    ]
    dashboards = host_path(svc, provider["options"]["path"])
    assert {p.name for p in dashboards.glob("*.json")} >= {
        "autoscaler-workloads.json",
        "autoscaler-budgets.json",
    }
    home = svc["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(svc, home).is_file()


def test_a_real_compose_implementation_accepts_the_stack(tmp_path: Path) -> None:
    """``docker compose config`` (v2) where the plugin exists; else Debian's
    ``docker-compose`` 1.29 (installed by ``make system-deps``) on the same file less
    the top-level ``name``, the one Compose-spec key 1.29 predates. Neither needs a
    Docker engine. Under ``CI=true`` a missing implementation fails."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            proc = subprocess.run(
                [docker, "compose", "-f", str(COMPOSE), "config", "-q"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr
            return
    legacy = require_tool("docker-compose")
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    data.pop("name", None)
    copy = COMPOSE.parent / ".compose-v1-check.yml"
    copy.write_text(yaml.safe_dump(data), encoding="utf-8")
    try:
        proc = subprocess.run(
            [legacy, "-f", str(copy), "config", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=COMPOSE.parent,
        )
    finally:
        copy.unlink()
    assert proc.returncode == 0, proc.stderr
