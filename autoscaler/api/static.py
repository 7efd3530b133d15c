"""Static values for ``autoscaler serve --values FILE.json`` (development, demos, tests).

The file is ``{"metrics": [{"namespace": "prod", "name": "autoscaler_desired_replicas",
"labels": {"workload": "refinory-ai"}, "value": 12.5, "timestamp": 1767225600}]}``.
An entry without ``timestamp`` is "always fresh": ``StaticPublisher`` re-stamps it with
the current time every ``refresh_seconds``, as a running controller would. An entry with a
timestamp keeps it, so it ages and turns stale like a real decision (useful to try the
staleness policy). A bad file raises ``InputError`` naming the entry and field.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autoscaler.clock import Clock
from autoscaler.store import DecisionStore, MetricValue
from models.errors import InputError, validation_input_error


class StaticMetric(BaseModel):
    """One entry of the values file."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    #: the served value (replicas for autoscaler_desired_replicas); finite, >= 0.
    value: float = Field(ge=0.0, allow_inf_nan=False)
    #: unix seconds of the decision; absent = always fresh.
    timestamp: float | None = Field(default=None, allow_inf_nan=False)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if "/" in v or v in (".", ".."):
            raise ValueError("a metric name cannot contain '/' or be '.' or '..'")
        return v.lower()


class StaticValues(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: list[StaticMetric]


def load_values_file(path: Path) -> StaticValues:
    """Parse and validate a values file; ``InputError`` with the file and field if bad."""
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(str(path), f"cannot read: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}", f"not valid JSON: {err.msg}") from err
    try:
        return StaticValues.model_validate(raw)
    except ValidationError as err:
        raise validation_input_error(
            err,
            str(path),
            'expected {"metrics": [{"namespace", "name", "labels", "value", "timestamp"?}]}',
        ) from err


class StaticPublisher:
    """Publishes a values file into a store, re-stamping undated entries periodically."""

    def __init__(
        self, values: StaticValues, store: DecisionStore, clock: Clock, refresh_seconds: float
    ) -> None:
        self._values = values
        self._store = store
        self._clock = clock
        self._refresh = refresh_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="static-values", daemon=True)

    def publish_once(self) -> None:
        now = self._clock.now()
        self._store.publish(
            (
                MetricValue(
                    m.namespace,
                    m.name,
                    m.labels,
                    m.value,
                    now if m.timestamp is None else m.timestamp,
                )
                for m in self._values.metrics
            ),
            replace_all=True,
        )

    def _loop(self) -> None:
        while not self._stop.wait(self._refresh):
            self.publish_once()

    def start(self) -> StaticPublisher:
        self.publish_once()
        if any(m.timestamp is None for m in self._values.metrics):
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
