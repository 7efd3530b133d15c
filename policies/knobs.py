"""The knobs of predictive scaling: one definition, with units, ranges, defaults and docs.

Every place a user sets them reads this module:

* the CRD: ``PredictiveAutoscalerSpec`` (``policies.objects``) inherits ``ScalingKnobs``,
  and ``autoscaler.kube.crdgen`` builds its OpenAPI schema (ranges, descriptions,
  defaults) from these fields;
* the decision path: ``policies.decision.ScalingSpec`` takes its defaults from
  ``DEFAULTS``;
* the simulator: a scenario's ``predictive:`` block and ``predictive@Q`` are
  ``KnobOverrides`` (the same fields, each optional, with the same ranges), laid over
  the PredictiveAutoscaler the scenario stands for;
* the CLI: ``simulate``'s flags for these knobs take their help from the descriptions.

Callers: ``policies.objects``, ``policies.decision``, ``simulations``, ``autoscaler.cli``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel


class KubeModel(BaseModel):
    """Base: camelCase on the wire, unknown fields ignored (newer CRD versions add some)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    def wire(self) -> dict[str, Any]:
        """The object as Kubernetes JSON (camelCase keys)."""
        return self.model_dump(by_alias=True, mode="json")


_LEAD_DOC = "Seconds from a decision to ready capacity: pod start-up + one HPA sync."

#: the lead time used while a learnt one is pending (and the simulator's default).
DEFAULT_LEAD_SECONDS = 105.0


class _SharedKnobs(KubeModel):
    """The knobs both the CRD and the overrides define the same way."""

    target_utilization: float = Field(
        default=0.85,
        gt=0,
        le=1,
        description=(
            "Utilisation planned for at the risk quantile, 0-1]. 0.85 keeps p99 latency"
            " under the SLO in the platform's M/M/c model."
        ),
    )
    forecaster: str = Field(default="auto", description="Forecaster registry name (models/).")
    risk_quantile: float = Field(
        default=0.9,
        gt=0.5,
        lt=1,
        description=(
            "Forecast quantile of the peak load over the lead time that, with the median,"
            " measures how wide the forecast's upper tail is; how far capacity covers that"
            " tail is set by riskTarget."
        ),
    )
    risk_target: float = Field(
        default=0.005,
        gt=0,
        lt=0.5,
        description=(
            "Share of time the workload may be under-provisioned (load above Ready"
            " replicas x capacity x targetUtilization). The price of a miss adapts online"
            " to hold it; 0.005 = 0.5 %."
        ),
    )


class TuningKnobs(_SharedKnobs):
    """The knobs that have a sound default (everything but the capacity)."""

    lead_time_seconds: float = Field(default=DEFAULT_LEAD_SECONDS, gt=0, description=_LEAD_DOC)


class ScalingKnobs(_SharedKnobs):
    """Every knob of one workload's scaling, as the CRD has them: the capacity and the
    lead time may be omitted, and the controller then learns them from the cluster's
    metrics (``autoscaler.controller.learning``)."""

    lead_time_seconds: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description=(
            _LEAD_DOC + " Omitted: learnt from the pods' start-up (p90 + one sync);"
            f" {DEFAULT_LEAD_SECONDS:g} s until learnt."
        ),
    )
    capacity_per_replica: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description=(
            "Load units per second one replica serves at 100 % of its CPU request"
            " (autoscaler calibrate learns it from the cluster's metrics). Omitted: the"
            " controller learns it (hourly, from CPU usage against load) and holds the"
            " current replicas until it has."
        ),
    )
    min_replicas: int = Field(default=1, ge=0, description="Lower bound on replicas.")
    max_replicas: int = Field(default=100, ge=1, description="Upper bound on replicas.")


def _doc(name: str, more: str = "") -> Any:
    return Field(
        default=None, description=(TuningKnobs.model_fields[name].description or "") + more
    )


class KnobOverrides(KubeModel):
    """The tuning knobs, each optional (``None`` keeps the PredictiveAutoscaler's): the
    same fields and ranges as ``TuningKnobs`` (checked by it, not copied), plus
    ``refitSeconds``, the controller's refit period."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    target_utilization: float | None = _doc("target_utilization")
    forecaster: str | None = _doc("forecaster")
    risk_quantile: float | None = _doc("risk_quantile")
    risk_target: float | None = _doc("risk_target")
    lead_time_seconds: float | None = _doc(
        "lead_time_seconds", " Default in a simulation: the start-up p90 plus one sync."
    )
    refit_seconds: float | None = Field(
        default=None, gt=0, description="Seconds between forecaster refits (controller default)."
    )
    learn_capacity: bool | None = Field(
        default=None,
        description=(
            "Simulate a PredictiveAutoscaler without capacityPerReplica and"
            " leadTimeSeconds: the controller learns both from the emulated pods' CPU and"
            " start-up (the workload needs a cpu model)."
        ),
    )

    @model_validator(mode="after")
    def _ranges(self) -> KnobOverrides:
        try:
            TuningKnobs.model_validate(self.tuning())
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{field}: {first['msg']}") from None
        return self

    def tuning(self) -> dict[str, Any]:
        """The tuning knobs that are set, by field name."""
        return {
            k: v
            for k, v in self.model_dump(exclude={"refit_seconds", "learn_capacity"}).items()
            if v is not None
        }


def knob_defaults() -> dict[str, Any]:
    """Every knob's default, by field name (``capacity_per_replica`` has none; the lead
    time's is the one used until a learnt one is known)."""
    out = {
        name: info.default
        for name, info in ScalingKnobs.model_fields.items()
        if not info.is_required() and info.default is not None
    }
    out.update({name: info.default for name, info in TuningKnobs.model_fields.items()})
    return out


#: the defaults, for code that cannot inherit the model (``ScalingSpec``).
DEFAULTS: dict[str, Any] = knob_defaults()


def describe(name: str) -> str:
    """A knob's description (for CLI help)."""
    return str(ScalingKnobs.model_fields[name].description or "")
