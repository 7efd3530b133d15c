"""The controller in a simulated world: what ``autoscaler simulate`` hands the simulator.

``controller_for(world)`` builds the real ``autoscaler.controller.Controller`` around a
``simulations.world.SimWorld``: the simulated clock, the trace-replay source and the
emulated cluster. Only the world differs from ``autoscaler run``:

* settings: the sync period is the simulator's tick; the query step is the trace's
  observation step, on a grid that starts at the trace's first row; a sample counts
  as missing (fallback) once the next one is two minutes late, which on 1-minute data
  is the live default of 180 s; the rest are the defaults of ``autoscaler run``;
* the ledger lives in memory, nothing is published to an API, and the controller logs
  to a logger of its own that is silent below errors (a week is 40,000 ticks);
* it always leads, and it writes (to the emulated cluster).

It is a top-level function so that it pickles by reference into worker processes.

Callers: ``autoscaler.cli.simulate``, ``autoscaler.cli.frontier``, the
parity test, benchmarks.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autoscaler.controller import Controller
from autoscaler.controller.learning import KnobInUse
from autoscaler.metrics import ControllerMetrics
from autoscaler.settings import LoopSettings, ShadowSettings, load_settings
from autoscaler.sources.settings import PrometheusSettings
from policies.ledger import LedgerState
from simulations.world import EnvironmentTick, SimController, SimWorld, WorkloadTick

#: the simulated controller's logger: errors only, never to the root handlers.
SIM_LOG = logging.getLogger("autoscaler.simulated")
SIM_LOG.setLevel(logging.ERROR)
SIM_LOG.propagate = False
SIM_LOG.addHandler(logging.NullHandler())


class MemoryLedger:
    """The spend ledgers, kept in memory (a simulation persists nothing)."""

    def __init__(self) -> None:
        self.saved: dict[str, LedgerState] = {}

    def load(self) -> dict[str, LedgerState]:
        return dict(self.saved)

    def save(self, ledgers: Mapping[str, LedgerState]) -> None:
        self.saved = dict(ledgers)


class NullStore:
    """Served values go to the emulated HPA through the report, not to an API."""

    def publish(self, values: Any, replace_all: bool = False) -> None:
        return None


def stale_after(step_seconds: float) -> float:
    """Seconds after which the newest sample counts as missing, for a given step."""
    return max(180.0, step_seconds + 120.0)


class SimulatedController:
    """``SimController``: one reconcile per tick, reported as the simulator records it."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def tick(self) -> tuple[dict[str, WorkloadTick], dict[str, EnvironmentTick]]:
        report = self.controller.reconcile()
        workloads = {
            r.key: WorkloadTick(
                replicas=r.decision.replicas,
                served=r.served,
                forecast=r.forecast_load if r.forecast_load is not None else math.nan,
                ceiling=r.ceiling,
                budget_clamped=r.decision.binding_constraint == "budget",
                fallback=r.decision.fallback,
                capacity=_capacity(r.capacity),
            )
            for r in report.workloads
        }
        envs = {
            e.budget: EnvironmentTick(
                spend=e.spend,
                hourly_cost=e.hourly_cost,
                hourly_cap=e.hourly_cap if e.hourly_cap is not None else math.inf,
            )
            for e in report.environments
        }
        return workloads, envs


def controller_for(world: SimWorld) -> SimController:
    """The real controller, wired to a simulated world."""
    loop: dict[str, Any] = {
        "sync_seconds": world.tick_seconds,
        "stale_after_seconds": stale_after(world.step_seconds),
    }
    if world.refit_seconds is not None:
        loop["refit_seconds"] = world.refit_seconds
    # Whole group objects, not dicts: AUTOSCALER_* variables in the environment must
    # not change a simulation (they would be merged into dicts).
    settings = load_settings(
        None,
        loop=LoopSettings(**loop),
        prometheus=PrometheusSettings(
            url="http://trace-replay.invalid",
            step_seconds=max(1, int(round(world.step_seconds))),
            step_offset_seconds=world.step_offset_seconds,
        ),
        shadow=ShadowSettings(path=Path(os.devnull)),
    )
    controller = Controller(
        settings,
        world.source,
        world.cluster,
        NullStore(),
        world.clock,
        ControllerMetrics(enabled=False),  # nobody scrapes a simulation
        MemoryLedger(),
        is_leader=lambda: True,
        dry_run=False,
        log=SIM_LOG,
    )
    return SimulatedController(controller)


def _capacity(knob: KnobInUse | None) -> float:
    return knob.value if knob is not None and knob.value is not None else math.nan
