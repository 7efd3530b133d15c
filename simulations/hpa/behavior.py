"""The ``behavior`` API types and their defaulting.

``ScalingPolicy``, ``ScalingRules`` and ``Behavior`` are autoscaling/v2's
``HPAScalingPolicy``, ``HPAScalingRules`` and ``HorizontalPodAutoscalerBehavior``
(``k8s.io/api/autoscaling/v2/types.go``); ``default_scale_up_rules``,
``default_scale_down_rules`` and ``parse_behavior`` are the API server's defaulting
(``pkg/apis/autoscaling/v2/defaults.go``: ``GenerateHPAScaleUpRules``,
``GenerateHPAScaleDownRules``, ``SetDefaults_HorizontalPodAutoscalerBehavior``). Nothing
here has a counterpart in ``pkg/controller/podautoscaler``: the controller reads these
already-defaulted objects. The limits the controller derives from them live, as
upstream, in ``simulations.hpa.controller`` (``horizontal.go``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from models.errors import InputError, validation_input_error

__all__ = [
    "Behavior",
    "ScalingPolicy",
    "ScalingRules",
    "default_scale_down_rules",
    "default_scale_up_rules",
    "parse_behavior",
]


class ScalingPolicy(BaseModel):
    """One rate policy: at most ``value`` pods (or percent) per ``periodSeconds``."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0, description="pods, or percent of the replicas at period start")
    period_seconds: int = Field(
        alias="periodSeconds", ge=1, le=1800, description="seconds the policy looks back"
    )


class ScalingRules(BaseModel):
    """``HPAScalingRules`` of one direction, already defaulted field by field.

    ``stabilization_window_seconds=None`` (only possible for scale-down) means "use the
    controller's ``--horizontal-pod-autoscaler-downscale-stabilization``" (300 s).
    ``tolerance`` (KEP-4951) is the per-direction tolerance; ``None`` = the global one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    stabilization_window_seconds: int | None = Field(
        default=None, alias="stabilizationWindowSeconds", ge=0, le=3600
    )
    select_policy: Literal["Max", "Min", "Disabled"] = Field(default="Max", alias="selectPolicy")
    policies: tuple[ScalingPolicy, ...] = Field(default=(), min_length=1)
    tolerance: float | None = Field(default=None, ge=0)

    @field_validator("tolerance", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Any:
        # The API field is a Quantity: accept "0.05" or "50m" as well as a number.
        if isinstance(value, str):
            text = value.strip()
            scale = Decimal(1)
            if text.endswith("m"):
                text, scale = text[:-1], Decimal("0.001")
            try:
                return float(Decimal(text) * scale)
            except InvalidOperation as err:
                raise ValueError(f"not a quantity: {value!r}") from err
        return value

    def to_dict(self) -> dict[str, Any]:
        """The rules in Kubernetes field names (unset window as ``None``)."""
        return {
            "stabilizationWindowSeconds": self.stabilization_window_seconds,
            "selectPolicy": self.select_policy,
            "policies": [
                {"type": p.type, "value": p.value, "periodSeconds": p.period_seconds}
                for p in self.policies
            ],
        }


_DEFAULT_SCALE_UP: dict[str, Any] = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
_DEFAULT_SCALE_DOWN: dict[str, Any] = {
    "stabilizationWindowSeconds": None,
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def _validation_to_input_error(err: ValidationError, where: str) -> InputError:
    fix = "see the autoscaling/v2 HorizontalPodAutoscalerBehavior reference"
    return validation_input_error(err, where, fix, dotted=True)


def _defaulted_rules(
    given: Mapping[str, Any] | None, defaults: Mapping[str, Any], where: str
) -> ScalingRules:
    merged: dict[str, Any] = dict(defaults)
    if given is not None:
        if not isinstance(given, Mapping):
            raise InputError(where, f"must be a mapping, got {type(given).__name__}", "")
        # Each field the user set wins; a given policies list replaces the default list.
        merged.update({k: v for k, v in given.items() if v is not None})
    try:
        return ScalingRules.model_validate(merged)
    except ValidationError as err:
        raise _validation_to_input_error(err, where) from err


def default_scale_up_rules(given: Mapping[str, Any] | None = None) -> ScalingRules:
    """API defaulting of ``behavior.scaleUp`` (upstream ``GenerateHPAScaleUpRules``)."""
    return _defaulted_rules(given, _DEFAULT_SCALE_UP, "behavior.scaleUp")


def default_scale_down_rules(given: Mapping[str, Any] | None = None) -> ScalingRules:
    """API defaulting of ``behavior.scaleDown`` (upstream ``GenerateHPAScaleDownRules``)."""
    return _defaulted_rules(given, _DEFAULT_SCALE_DOWN, "behavior.scaleDown")


@dataclass(frozen=True)
class Behavior:
    """A defaulted ``spec.behavior``: both directions always present."""

    scale_up: ScalingRules
    scale_down: ScalingRules


def parse_behavior(behavior: Mapping[str, Any] | Behavior) -> Behavior:
    """Default a user's ``behavior`` mapping the way the API server does.

    A missing direction gets that direction's default rules; within a direction each
    missing field takes its default. An HPA *without* behavior is not this: pass
    ``behavior=None`` to ``HorizontalController`` for the legacy path.
    """
    if isinstance(behavior, Behavior):
        return behavior
    if not isinstance(behavior, Mapping):
        raise InputError("behavior", f"must be a mapping, got {type(behavior).__name__}", "")
    unknown = set(behavior) - {"scaleUp", "scaleDown"}
    if unknown:
        raise InputError(
            "behavior", f"unknown field(s) {sorted(unknown)}", "only scaleUp and scaleDown exist"
        )
    return Behavior(
        default_scale_up_rules(behavior.get("scaleUp")),
        default_scale_down_rules(behavior.get("scaleDown")),
    )
