"""The stack as an operator runs it: every dashboard panel has data, every rule works.

What ``docker compose up`` runs, as local processes on loopback ports: the load
generator (tools/loadgen.py), a real Prometheus with deploy/compose/prometheus.yml and
the production alert rules, and ``autoscaler run`` with deploy/compose/autoscaler.yaml
on the dev environment's objects (deploy/components/env-dev, deploy/compose/
deployments.yaml). Only host names and ports are rewritten, the state goes to tmp_path,
and time is compressed: 1-s scrapes, rule evaluations, loop ticks and query steps, and
a 5-s lead time, so that a forecast error is scored within seconds.

Beside the dev environment, objects that put every alert's condition in place, as they
happen in production:

* ``shop``: a CostBudget that binds (hourly limit for 4 replicas, the load wants more),
  its month 60 % spent (``AutoscalerBudget50PercentSpent``);
* ``batch``: a CostBudget that cannot pay even the minimum replicas, 80 % spent
  (``AutoscalerBudgetInfeasible``, ``AutoscalerBudget75PercentSpent``);
* ``dev``: the compose budget with its month 95 % spent (``AutoscalerBudget90PercentSpent``);
* ``legacy/app``: a PredictiveAutoscaler whose query returns nothing (fallback,
  ``AutoscalerFallbackActive``).

The External Metrics API is called as the HPAs would (its latency is relayed onto the
controller's :8080). Then every panel query of both dashboards (template variables
substituted as Grafana would) must return data whose series carry the labels its legend
names, every template variable must have values, every rule must be healthy, and the
alerts above must be pending or firing for exactly the environments and workloads that
meet their condition; the service alerts must stay quiet.

Slow (under a minute once Prometheus is up): marked ``integration`` and ``slow``. Needs
Debian's prometheus; skipped loudly without it, FAILS under CI=true.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.ledger_store import LedgerStore
from policies.ledger import LedgerState, month_key
from tests.deploy.conftest import REPO
from tests.deploy.test_compose import compose
from tests.deploy.test_monitoring import DASHBOARDS, LEGEND_RE, RULES, panel_exprs, substitute
from tests.integration.promfixture import free_port
from tests.required import require_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Bound on the wait for every panel and alert condition (after the processes start).
WAIT_SECONDS = 90.0
DEV_WORKLOADS = {"event-gateway", "discord-bot", "refinory-ai", "jdk-workspace"}
LEAD_SECONDS = 5
#: OpenCost's default price of one replica requesting 1 vCPU and 1 GiB, $/h.
REPLICA_PRICE = 0.031611 + 0.004237
#: Month-to-date spend as a share of the monthly limit, per environment.
SPENT = {"shop": 0.60, "batch": 0.80, "dev": 0.95}
#: (alert, label values it must be active for), once the stack has run a little.
EXPECTED_ALERTS: dict[str, set[tuple[str, ...]]] = {
    "AutoscalerBudget50PercentSpent": {("shop",)},
    "AutoscalerBudget75PercentSpent": {("batch",)},
    "AutoscalerBudget90PercentSpent": {("dev",)},
    "AutoscalerFallbackActive": {("legacy", "app")},
}
#: Alerts that must be active for at least these (others may join: dev at 95 % spent
#: with even pacing cannot pay its minimums either).
EXPECTED_AT_LEAST: dict[str, set[tuple[str, ...]]] = {
    "AutoscalerBudgetInfeasible": {("batch",)},
}
QUIET = {"AutoscalerLeaderAbsent", "AutoscalerDecisionStoreStale", "AutoscalerCostGuardUnavailable"}
ALERT_KEYS = {
    "AutoscalerFallbackActive": ("namespace", "workload"),
}


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def query(base: str, promql: str) -> list[dict[str, Any]]:
    body = http_json(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def deployment(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": name, "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
                    ]
                },
            },
        },
        "status": {"replicas": replicas},
    }


def autoscaler_doc(namespace: str, name: str, query_text: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "query": query_text,
        "capacityPerReplica": 20,
        "forecaster": "auto",
        "minReplicas": 1,
        "maxReplicas": 50,
        "leadTimeSeconds": LEAD_SECONDS,
        "fallback": {"holdSeconds": 5, "mode": "CurrentReplicas"},
    }
    body.update(spec)
    return {
        "apiVersion": "autoscaling.predictive.io/v1alpha1",
        "kind": "PredictiveAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def budget(name: str, namespace: str, hourly: float) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling.predictive.io/v1alpha1",
        "kind": "CostBudget",
        "metadata": {"name": name},
        "spec": {
            "environment": name,
            "selector": {"namespaces": [namespace]},
            "hourlyLimit": hourly,
            "monthlyLimit": 10_000.0,
            "mode": "hard",
        },
    }


def extra_objects() -> list[dict[str, Any]]:
    """What makes every alert's condition true (see the module docstring)."""
    shop_query = 'sum by (namespace, workload) (rate(http_requests_total{namespace="shop"}[2m]))'
    batch_query = 'sum by (namespace, workload) (rate(http_requests_total{namespace="batch"}[2m]))'
    return [
        autoscaler_doc("shop", "web", shop_query, priority=10),
        autoscaler_doc("shop", "api", shop_query),
        deployment("shop", "web", 3),
        deployment("shop", "api", 3),
        budget("shop", "shop", REPLICA_PRICE * 4 + 0.001),
        autoscaler_doc("batch", "etl", batch_query, minReplicas=3),
        deployment("batch", "etl", 3),
        budget("batch", "batch", REPLICA_PRICE),
        # A load metric nobody exports (renamed, never scraped): no data, fallback.
        autoscaler_doc(
            "legacy", "app", "sum by (namespace, workload) (rate(legacy_requests_total[2m]))"
        ),
        deployment("legacy", "app", 2),
    ]


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.ports = {name: free_port() for name in ("loadgen", "prometheus", "metrics", "api")}
        self.prometheus = f"http://127.0.0.1:{self.ports['prometheus']}"
        self.api = f"http://127.0.0.1:{self.ports['api']}"
        self.monthly: dict[str, float] = {}

    def start(self, name: str, argv: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO
        )
        log.close()
        self.procs.append((name, proc))

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n{(self.tmp / f'{name}.log').read_text(errors='replace')[-2500:]}"
            for name, _ in self.procs
        )

    def check_alive(self) -> None:
        for name, proc in self.procs:
            assert proc.poll() is None, f"{name} exited early\n{self.logs()}"

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def call_api(self) -> None:
        """What an HPA does: discovery, then its metric (failures are fine early on)."""
        base = f"{self.api}/apis/external.metrics.k8s.io/v1beta1"
        for url in (
            base,
            f"{base}/namespaces/shop/autoscaler_desired_replicas?labelSelector=workload%3Dweb",
        ):
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    r.read()
            except (urllib.error.URLError, OSError):
                pass


def write_objects(tmp: Path) -> list[str]:
    """``--objects`` arguments: compose's own files (lead time shortened) and the extras."""
    cmd = compose()["services"]["autoscaler"]["command"]
    mounts = {
        "/etc/autoscaler/env-dev": "deploy/components/env-dev",
        "/etc/autoscaler/deployments.yaml": "deploy/compose/deployments.yaml",
    }
    docs: list[dict[str, Any]] = []
    for i, arg in enumerate(cmd):
        if arg == "--objects":
            path = cmd[i + 1]
            for target, source in mounts.items():
                path = path.replace(target, source)
            docs += [d for d in yaml.safe_load_all((REPO / path).read_text("utf-8")) if d]
    kinds = {d["kind"] for d in docs}
    assert {"CostBudget", "PredictiveAutoscaler", "Deployment"} <= kinds, kinds
    for d in docs:
        if d["kind"] == "PredictiveAutoscaler":
            d["spec"]["leadTimeSeconds"] = LEAD_SECONDS
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "PredictiveAutoscaler"} == (
        DEV_WORKLOADS
    )
    docs += extra_objects()
    path = tmp / "objects.yaml"
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    return ["--objects", str(path)]


def seed_ledger(path: Path, docs_path: Path) -> dict[str, float]:
    """This month's spend per environment (``SPENT`` of its monthly limit); the limits."""
    docs = list(yaml.safe_load_all(docs_path.read_text("utf-8")))
    limits = {
        d["metadata"]["name"]: float(d["spec"]["monthlyLimit"])
        for d in docs
        if d and d["kind"] == "CostBudget"
    }
    assert set(SPENT) == set(limits), limits
    now = datetime.now(UTC)
    LedgerStore(path).save(
        {
            name: LedgerState(
                month=month_key(now),
                as_of=now,
                spent=Decimal(str(round(SPENT[name] * limits[name], 2))),
            )
            for name in limits
        }
    )
    return limits


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    prometheus_bin = require_tool("prometheus", "apt-get install prometheus")
    services = compose()["services"]
    s = Stack(tmp_path)
    # Prometheus: the compose config, service names -> loopback ports, 1-s intervals.
    prom_config = yaml.safe_load((REPO / "deploy/compose/prometheus.yml").read_text("utf-8"))
    rename = {
        "loadgen:9108": f"127.0.0.1:{s.ports['loadgen']}",
        "autoscaler:8080": f"127.0.0.1:{s.ports['metrics']}",
    }
    for job in prom_config["scrape_configs"]:
        for sc in job["static_configs"]:
            sc["targets"] = [rename[t] for t in sc["targets"]]
    prom_config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    prom_config["rule_files"] = [str(RULES)]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom_config), encoding="utf-8")
    # The autoscaler: the compose settings with URLs, ports and state moved, time compressed.
    settings = yaml.safe_load((REPO / "deploy/compose/autoscaler.yaml").read_text("utf-8"))
    settings["loop"].update(sync_seconds=1, initial_backfill_seconds=600)
    settings["prometheus"].update(url=s.prometheus, step_seconds=1, backfill_seconds=600)
    settings["observability"].update(metrics_port=s.ports["metrics"], metrics_addr="127.0.0.1")
    settings["api"]["bind"] = f"127.0.0.1:{s.ports['api']}"
    state = tmp_path / "state"
    state.mkdir()
    settings["ledger"]["path"] = str(state / "ledger.json")
    settings["shadow"]["path"] = str(state / "shadow.jsonl")
    (tmp_path / "autoscaler.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    objects = write_objects(tmp_path)
    s.monthly = seed_ledger(state / "ledger.json", Path(objects[1]))
    loadgen_args = services["loadgen"]["command"]
    speed = loadgen_args[loadgen_args.index("--speed") + 1]
    load = [
        "dev/event-gateway=nasa_http_jul1995_1min.csv@300",
        "dev/discord-bot=nab_twitter_volume_aapl_5min.csv@200",
        "dev/refinory-ai=nab_elb_request_count_5min.csv@100",
        "dev/jdk-workspace=nab_nyc_taxi_30min.csv@10",
        "shop/web=nasa_http_jul1995_1min.csv@300",
        "shop/api=nasa_http_jul1995_1min.csv@200",
        "batch/etl=nab_elb_request_count_5min.csv@100",
    ]
    try:
        s.start(
            "loadgen",
            [sys.executable, "tools/loadgen.py", "--bind", f"127.0.0.1:{s.ports['loadgen']}"]
            + ["--speed", speed, "--duration", str(WAIT_SECONDS + 120)]
            + [arg for w in load for arg in ("--workload", w)],
        )
        s.start(
            "prometheus",
            [
                prometheus_bin,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{s.ports['prometheus']}",
                "--log.level=warn",
            ],
        )
        s.start(
            "autoscaler",
            [sys.executable, "-c", "from autoscaler.cli import main; main()"]
            + ["run", "--config", str(tmp_path / "autoscaler.yaml"), *objects],
        )
        yield s
    finally:
        s.stop()


# --- what is checked -------------------------------------------------------------


#: The variables as an operator picks them: one workload under the binding budget. (With
#: "All" selected Grafana puts ``.*``, which also matches a series lacking the label.)
SELECTED = {"$namespace": "shop", "$workload": "api", "$environment": "shop"}


def panel_targets() -> list[tuple[str, str, str]]:
    """(dashboard / panel / target, query, legend format): each query with its variables
    at "All" (as ``substitute`` does) and at ``SELECTED``."""
    out = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text("utf-8"))
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                title = f"{path.stem} / {panel['title']} / {target['refId']}"
                legend = target.get("legendFormat", "")
                out.append((f"{title} (all)", substitute(target["expr"]), legend))
                picked = target["expr"]
                for var, value in SELECTED.items():
                    picked = picked.replace(var, value)
                out.append((f"{title} (selected)", substitute(picked), legend))
    total = sum(len(panel_exprs(json.loads(p.read_text()))) for p in DASHBOARDS)
    assert len(out) == 2 * total
    return out


def panel_problems(base: str) -> list[str]:
    """Panels without data, or whose series lack a label their legend shows."""
    problems = []
    for title, expr, legend in panel_targets():
        rows = query(base, expr)
        if not rows:
            problems.append(f"{title}: no data for {expr}")
            continue
        for label in LEGEND_RE.findall(legend):
            if not all(label in r["metric"] for r in rows):
                problems.append(f"{title}: series without the label {label!r} of its legend")
    return problems


VARIABLE_RE = re.compile(r"label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)\s*$")


def variable_problems(base: str) -> list[str]:
    """Template variables (``label_values(series, label)``) that would offer nothing."""
    problems = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text("utf-8"))
        for var in dashboard["templating"]["list"]:
            if var["type"] != "query":
                continue
            match = VARIABLE_RE.match(var["definition"])
            assert match, var["definition"]
            series, label = substitute(match.group(1)), match.group(2)
            url = f"{base}/api/v1/label/{label}/values?" + urllib.parse.urlencode(
                {"match[]": series}
            )
            if not http_json(url)["data"]:
                problems.append(f"{path.stem} / ${var['name']}: no values")
    return problems


def active_alerts(base: str) -> dict[str, set[tuple[str, ...]]]:
    """Pending or firing alerts -> the label values that identify each instance."""
    out: dict[str, set[tuple[str, ...]]] = {}
    for row in query(base, "ALERTS"):
        m = row["metric"]
        keys = ALERT_KEYS.get(m["alertname"], ("environment",))
        out.setdefault(m["alertname"], set()).add(tuple(m.get(k, "") for k in keys))
    return out


def alert_problems(base: str) -> list[str]:
    active = active_alerts(base)
    problems = [
        f"{name}: active for {sorted(active.get(name, set()))}, expected {sorted(want)}"
        for name, want in EXPECTED_ALERTS.items()
        if active.get(name, set()) != want
    ]
    problems += [
        f"{name}: active for {sorted(active.get(name, set()))}, expected at least {sorted(want)}"
        for name, want in EXPECTED_AT_LEAST.items()
        if not want <= active.get(name, set())
    ]
    problems += [f"{name} is active" for name in QUIET & set(active)]
    return problems


def test_every_panel_and_rule_works_on_the_running_stack(stack: Stack) -> None:
    started = time.monotonic()
    deadline = started + WAIT_SECONDS
    problems: list[str] = ["not checked yet"]
    while problems and time.monotonic() < deadline:
        stack.check_alive()
        stack.call_api()
        try:
            problems = panel_problems(stack.prometheus) or alert_problems(stack.prometheus)
        except OSError as err:  # Prometheus still starting
            problems = [f"Prometheus: {err}"]
        if problems:
            time.sleep(1)
    assert not problems, f"after {WAIT_SECONDS:.0f} s: {problems}\n{stack.logs()}"
    took = time.monotonic() - started
    problems = variable_problems(stack.prometheus) + panel_problems(stack.prometheus)
    assert not problems, f"{problems}\n{stack.logs()}"

    # Every rule of the production file is loaded, evaluates without error, and its
    # expression parses and runs as a query against the live data.
    with urllib.request.urlopen(f"{stack.prometheus}/api/v1/rules", timeout=5) as r:
        groups = json.loads(r.read())["data"]["groups"]
    loaded = [rule for g in groups for rule in g["rules"]]
    in_file = [
        rule
        for g in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for rule in g["rules"]
    ]
    assert len(loaded) == len(in_file)
    for rule in loaded:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
    for rule in in_file:
        query(stack.prometheus, rule["expr"])
    # The conditions behind the alerts, read straight from the rule expressions.
    exprs = {rule.get("alert", rule.get("record")): rule["expr"] for rule in in_file}
    ratios = {
        r["metric"]["environment"]: float(r["value"][1])
        for r in query(stack.prometheus, exprs["autoscaler:budget_spent:ratio"])
    }
    for env, share in SPENT.items():
        assert ratios[env] == pytest.approx(share, abs=0.01), ratios
    # The pending ones have their expression true now; they fire after their `for`.
    states = {
        (row["metric"]["alertname"], row["metric"]["alertstate"])
        for row in query(stack.prometheus, "ALERTS")
    }
    for name in ("AutoscalerFallbackActive", "AutoscalerBudgetInfeasible"):
        assert query(stack.prometheus, exprs[name]), name
        assert (name, "pending") in states or (name, "firing") in states, states

    # What the clamps counter says per environment: who paid for the budget, who fell back.
    clamps = {
        (r["metric"]["environment"], r["metric"]["workload"], r["metric"]["constraint"])
        for r in query(stack.prometheus, "autoscaler_clamps_total")
    }
    assert ("shop", "api", "budget") in clamps, clamps
    assert ("none", "app", "fallback") in clamps, clamps

    # The controller observes what the PredictiveAutoscaler's own query yields, and
    # forecasts the same order of magnitude.
    pa = yaml.safe_load((REPO / "deploy/components/env-dev/pa-event-gateway.yaml").read_text())
    truth = {
        r["metric"]["workload"]: float(r["value"][1])
        for r in query(stack.prometheus, pa["spec"]["query"])
    }
    for wl in DEV_WORKLOADS:
        (obs,) = query(stack.prometheus, f'max(autoscaler_observed_load{{workload="{wl}"}})')
        (fc,) = query(
            stack.prometheus, f'max(autoscaler_forecast_load{{workload="{wl}",quantile="0.5"}})'
        )
        observed, forecast = float(obs["value"][1]), float(fc["value"][1])
        assert truth[wl] > 0 and observed > 0
        assert 0.33 < observed / truth[wl] < 3, f"{wl}: observed {observed}, query {truth[wl]}"
        assert 0.2 < forecast / observed < 5, f"{wl}: forecast {forecast}, observed {observed}"
    (leader,) = query(stack.prometheus, "sum(autoscaler_is_leader)")
    assert float(leader["value"][1]) == 1.0
    print(f"\noperator stack: every panel and alert condition met after {took:.1f} s")
