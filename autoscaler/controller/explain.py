"""``autoscaler explain``: why a workload has its replica count, in words.

Callers: ``autoscaler.controller.loop`` (``Controller.explain``), ``autoscaler.cli.run``.
"""

from __future__ import annotations

from autoscaler.controller.results import WorkloadResult
from autoscaler.kube.hpa import METRIC_NAME
from policies.tick import EnvironmentResult


def explain_text(r: WorkloadResult, envs: tuple[EnvironmentResult, ...] = ()) -> str:
    """The human explanation of one decision (``autoscaler explain``)."""
    d = r.decision
    lines = [
        f"{r.key} -> {r.mode} target {r.target}",
        f"  replicas:   {d.replicas} (desired {d.desired_replicas}, running {r.current_replicas})",
        f"  served:     {r.served:g} on {METRIC_NAME}"
        + ("" if r.mode == "Active" else " (ForecastOnly: nothing served)"),
    ]
    if r.forecast_load is not None:
        lines.append(
            f"  forecast:   q{r.risk_quantile:g} of peak load over the lead time = "
            f"{r.forecast_load:.4g}/s (model {r.model or '?'})"
        )
    else:
        lines.append("  forecast:   none (no load history)")
    if r.observed_load is not None:
        lines.append(f"  observed:   {r.observed_load:.4g}/s (newest sample)")
    lines.append(f"  binding:    {d.binding_constraint}" + ("  [FALLBACK]" if d.fallback else ""))
    lines.append(f"  why:        {d.reason}")
    env = next((e for e in envs if r.key in e.clamped or e.budget == r.environment), None)
    if env is not None:
        cap = "none" if env.hourly_cap is None else f"${env.hourly_cap:.4f}/h"
        limit = "none" if env.monthly_limit is None else f"${env.monthly_limit:.2f}"
        lines += [
            f"  budget:     {env.budget} (environment {env.name}): cap {cap}, cost now"
            f" ${env.hourly_cost:.4f}/h, this workload ${r.hourly_cost:.4f}/h",
            f"              spent ${env.spend:.2f} of {limit}; month-end projection"
            f" ${env.projection:.2f}; HPA maxReplicas {r.ceiling}",
        ]
        if r.budget_reason and r.budget_reason not in d.reason:
            lines.append(f"  guard:      {r.budget_reason}")
    else:
        lines.append(f"  budget:     none covers this workload (HPA maxReplicas {r.ceiling})")
    if r.data_error:
        lines.append(f"  data error: {r.data_error}")
    return "\n".join(lines)
