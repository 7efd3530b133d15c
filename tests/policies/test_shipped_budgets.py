"""Every shipped CostBudget can pay for its environment's minimum replicas.

A budget whose minimums cost more than its cap fires the critical
``AutoscalerBudgetInfeasible`` alert on a fresh install. The shipped dev budget did:
$25 a month was sized for spot prices, but nothing shipped puts dev on spot nodes, so
its minimums were priced on demand ($0.0453/h against a pacing cap of $0.0336-0.04/h
for the first week of a month).

For each ``deploy/components/env-*``: its CostBudget and PredictiveAutoscalers; each
autoscaler's target Deployment is looked up in the same component, then among the
Deployments the local stack runs (``deploy/compose/deployments.yaml``, which runs the
dev budget), and otherwise built from ``simulations/workloads/NAME.yaml`` (the source
the autoscalers cite) with no node selector. The prices are the ones the controller
applies: requests summed by ``autoscaler.kube.cluster.target_info``, the node pool it
reads (``policies.nodepools``), the budget's ``prices`` and ``nodePools``.

The worst moment is a fresh ledger ($0 spent) at the first instant of a 31-day month:
under ``even`` pacing the cap is then the monthly limit over 744 hours, and while
spend stays within the cap the paced cap never falls (spending r <= R/H leaves
(R - r dt)/(H - dt) >= R/H), so a budget feasible then stays feasible all month.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.kube.cluster import target_info
from policies.budget import (
    AllocationRequest,
    BudgetRequest,
    CostBudgetManifest,
    WorkloadRequest,
    parse_model,
)
from policies.costguard import allocate
from policies.nodepools import pricing_pool
from policies.prices import Prices

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = REPO / "deploy" / "components"
ENVIRONMENTS = sorted(p.name.removeprefix("env-") for p in COMPONENTS.glob("env-*"))
#: First instants of 31-day months (the most hours to pace over); a fresh ledger spent nothing.
WORST = [datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)]


def _documents(paths: list[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def _deployment(env: str, name: str, shipped: list[dict[str, Any]]) -> dict[str, Any]:
    """The autoscaler's target: shipped, or in the local stack, or from the simulator."""
    local = _documents([REPO / "deploy" / "compose" / "deployments.yaml"])
    for doc in shipped + local:
        meta = doc.get("metadata") or {}
        if doc.get("kind") == "Deployment" and (meta.get("namespace"), meta.get("name")) == (
            env,
            name,
        ):
            return doc
    workload = yaml.safe_load((REPO / "simulations" / "workloads" / f"{name}.yaml").read_text())
    container = {"name": name, "resources": {"requests": workload["resources"]["requests"]}}
    return {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [container]}}}}


def environment_at_minimums(env: str, now: datetime) -> AllocationRequest:
    """The allocation request the controller makes for ``env`` with every workload at min."""
    docs = _documents(sorted((COMPONENTS / f"env-{env}").glob("*.yaml")))
    (budget_doc,) = [d for d in docs if d.get("kind") == "CostBudget"]
    spec = parse_model(CostBudgetManifest, budget_doc, f"env-{env}/costbudget.yaml").spec
    workloads = []
    for pa in (d for d in docs if d.get("kind") == "PredictiveAutoscaler"):
        target = pa["spec"]["targetRef"]["name"]
        info = target_info(_deployment(env, target, docs))
        pool, warning = pricing_pool(
            info.node_pool, spec.node_pools, explicit=pa["spec"].get("nodePool", "")
        )
        assert not warning, f"{env}/{target}: {warning}"
        low = int(pa["spec"]["minReplicas"])
        workloads.append(
            WorkloadRequest(
                name=f"{env}/{pa['metadata']['name']}",
                min_replicas=low,
                max_replicas=int(pa["spec"]["maxReplicas"]),
                desired_replicas=low,
                requests=dict(info.requests),
                node_pool=pool.name,
                spot=pool.spot,
            )
        )
    assert workloads, f"env-{env} has no PredictiveAutoscalers"
    return AllocationRequest(
        budget=BudgetRequest(
            hourly_limit=spec.hourly_limit,
            monthly_limit=spec.monthly_limit,
            spent_this_month=0.0,
            now=now,
            pacing=spec.pacing,
            mode=spec.mode,
        ),
        prices=spec.prices.apply(Prices()) if spec.prices is not None else None,
        node_pools=dict(spec.node_pools),
        workloads=workloads,
    )


@pytest.mark.parametrize("now", WORST, ids=lambda t: t.strftime("%Y-%m"))
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_shipped_budget_pays_for_the_minimum_replicas(env: str, now: datetime) -> None:
    assert ENVIRONMENTS == ["dev", "prod", "staging"]
    request = environment_at_minimums(env, now)
    result = allocate(request)
    assert result.hourly_cap is not None
    assert not result.infeasible, (
        f"env-{env}: the minimum replicas cost ${result.hourly_cost:.4f}/h at the prices"
        f" applied, more than the cap ${result.hourly_cap:.4f}/h at {now:%Y-%m-%d}: {result.alerts}"
    )
    # Some room above the minimums, or the first experiment is clamped to nothing.
    assert result.hourly_cap >= 1.2 * result.hourly_cost, (env, result.hourly_cap)


def test_examples_are_the_shipped_budgets() -> None:
    """policies/examples/ENV.yaml is what deploy/components/env-ENV ships (same spec)."""
    for env in ENVIRONMENTS:
        shipped = _documents([COMPONENTS / f"env-{env}" / "costbudget.yaml"])
        example = _documents([REPO / "policies" / "examples" / f"{env}.yaml"])
        assert shipped == example, env
