"""``autoscaler explain``: why a workload has its replica count, in words.

Callers: ``autoscaler.controller.loop`` (``Controller.explain``), ``autoscaler.cli.run``.
"""

from __future__ import annotations

from autoscaler.controller.learning import KnobInUse
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
    if r.capacity is not None:
        lines.append(f"  capacity:   {knob_text(r.capacity, '/s per replica')}")
    if r.lead_time is not None:
        lines.append(f"  lead time:  {knob_text(r.lead_time, 's')}")
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


def knob_text(knob: KnobInUse, unit: str) -> str:
    """``12.5/s per replica (learnt, 95 % interval [11.9, 13.1]; ...)``."""
    if knob.value is None:
        return f"not known yet ({knob.detail})" if knob.detail else "not known yet"
    text = f"{knob.value:.4g}{unit} ({_SOURCE_WORDS.get(knob.source, knob.source)}"
    if knob.low is not None and knob.high is not None:
        text += f", interval [{knob.low:.4g}, {knob.high:.4g}]"
    if knob.detail:
        text += f"; {knob.detail}"
    return text + ")"


_SOURCE_WORDS = {
    "spec": "set by the user",
    "learnt": "learnt",
    "default": "default, not learnt yet",
}
