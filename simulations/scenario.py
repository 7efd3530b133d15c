"""Scenarios: which workload, which trace, which policies, which budget, which period.

A scenario is a YAML file in ``simulations/scenarios/`` (or anywhere), validated by the
pydantic model ``Scenario``; the CLI can also build one from flags, and flags override a
file's fields. ``simulate(scenario)`` loads the trace, cuts the period, scales it, runs
every policy and returns the timelines; ``simulations.report`` scores them.

Trace paths are resolved relative to the scenario file, then the working directory,
then the bundled traces folder (so ``trace: nasa_http_jul1995_1min.csv`` works).

Callers: ``autoscaler.cli.simulate``, ``simulations.sweep``, benchmarks, tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from models.errors import InputError, validation_input_error, yaml_problem
from models.traces import Trace, bundled_traces_dir, load_trace
from policies.budget import BudgetRequest
from policies.knobs import KnobOverrides
from simulations import scoring
from simulations.engine import SYNC_SECONDS, Demand, Timeline, demand_from_rate
from simulations.jobs import run_jobs
from simulations.strategies import (
    STRATEGIES,
    HpaCpu,
    Predictive,
    RunContext,
    Strategy,
    make_strategy,
)
from simulations.strategies.base import UserObjects
from simulations.workloads import Workload, load_workload, workload_from_dict
from simulations.world import ControllerFactory, Outage

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"

#: hpa-cpu targets swept for the cost-versus-tau_U frontier (percent).
DEFAULT_FRONTIER_TARGETS: tuple[int, ...] = (40, 50, 60, 70, 80, 90)


class Period(BaseModel):
    """The part of the trace to replay: from ``start`` for ``days`` (or up to ``end``)."""

    model_config = ConfigDict(extra="forbid")
    start: datetime | None = None
    end: datetime | None = None
    days: Annotated[float, Field(gt=0.0)] | None = None

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("needs a timezone (append Z for UTC)")
        return v


#: a scenario's ``predictive:`` block: overrides of the knobs (``policies.knobs``),
#: e.g. ``riskTarget: 0.01`` or ``forecaster: last``.
PredictiveConfig = KnobOverrides


class Scenario(BaseModel):
    """One simulation: workload x trace x policies (x budget) over a period."""

    model_config = ConfigDict(extra="forbid")
    name: str = "scenario"
    description: str = ""
    #: a bundled workload name, a path to a workload YAML, or an inline mapping.
    workload: str | dict[str, Any] = "refinory-ai"
    trace: str
    value_unit: Literal["per-interval", "per-second"] = "per-interval"
    period: Period = Period()
    #: scale the trace so its 99.9th-percentile rate needs this many replicas at 70 %.
    scale_to_peak_replicas: Annotated[int, Field(ge=1)] | None = None
    #: "under-provisioned" means demand > Ready x capacity x this.
    slo_utilization: Annotated[float, Field(gt=0.0, le=1.0)] = 0.85
    policies: list[str] = Field(default_factory=lambda: ["hpa-cpu", "predictive", "oracle"])
    predictive: PredictiveConfig = PredictiveConfig()
    #: hpa-cpu targets (%) for the frontier; empty to skip it.
    frontier_targets: list[int] = Field(default_factory=lambda: list(DEFAULT_FRONTIER_TARGETS))
    #: also run every integer target between the two frontier targets that bracket each
    #: policy's tau_U, so the HPA's cost there is read off real runs, not a chord.
    frontier_refine: bool = True
    #: a budget for the cost guard (``policies.budget.BudgetRequest``, camelCase:
    #: hourlyLimit, monthlyLimit, spentThisMonth, pacing, mode); applied to ``predictive``.
    budget: BudgetRequest | None = None
    tick_seconds: Annotated[float, Field(gt=0.0, le=600.0)] = SYNC_SECONDS
    #: how finely the predictive policy's metric source samples the load, in seconds (a
    #: multiple of the tick); unset = the trace's own resolution, each row visible from
    #: the start of its interval (as the HPA's CPU metric shows it).
    observe_seconds: Annotated[float, Field(gt=0.0)] | None = None

    @field_validator("policies")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for name in v:
            kind = name.partition("@")[0]
            if kind not in STRATEGIES:
                raise ValueError(f"unknown policy {kind!r}; choose from {', '.join(STRATEGIES)}")
        if len(set(v)) != len(v):
            raise ValueError("a policy is listed twice")
        if not v:
            raise ValueError("list at least one policy")
        return v


def load_scenario(path: str | Path) -> tuple[Scenario, Path]:
    """Read and validate a scenario file; returns it with the folder paths are relative to."""
    p = Path(path)
    if not p.suffix and not p.exists():
        p = SCENARIOS_DIR / f"{path}.yaml"
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InputError(str(path), "file not found", "check the path") from err
    except yaml.YAMLError as err:
        raise InputError(str(p), yaml_problem(err), "fix the syntax") from err
    return scenario_from_dict(data, str(p)), p.parent


def scenario_from_dict(data: object, where: str) -> Scenario:
    if not isinstance(data, dict):
        raise InputError(where, "a scenario must be a mapping", "see docs/simulator.md")
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise validation_input_error(err, where, "see docs/simulator.md") from err


def resolve_trace(trace: str, base: Path | None) -> Path:
    """The scenario's trace file: relative to the scenario, the cwd, or bundled traces."""
    p = Path(trace)
    candidates = [p] if p.is_absolute() else []
    if not p.is_absolute():
        if base is not None:
            candidates.append(base / p)
        candidates += [Path.cwd() / p, bundled_traces_dir() / p.name]
    for c in candidates:
        if c.exists():
            return c
    raise InputError(
        f"trace {trace!r}", "file not found", "give a path or a bundled trace's file name"
    )


def resolve_workload(spec: str | dict[str, Any], base: Path | None) -> Workload:
    if isinstance(spec, dict):
        return workload_from_dict(spec, "workload")
    p = Path(spec)
    if p.suffix and base is not None and not p.is_absolute() and (base / p).exists():
        return load_workload(str(base / p))
    return load_workload(spec)


def cut_period(rate: pd.Series, period: Period, where: str = "period") -> pd.Series:
    """The rows of ``rate`` inside the period (start inclusive, end exclusive)."""
    start = period.start.astimezone(UTC) if period.start else None
    end = period.end.astimezone(UTC) if period.end else None
    if start is None:
        start = rate.index[0].to_pydatetime()
    if period.days is not None:
        by_days = start + timedelta(days=period.days)
        end = by_days if end is None else min(end, by_days)
    out = rate[rate.index >= pd.Timestamp(start)]
    if end is not None:
        out = out[out.index < pd.Timestamp(end)]
    if len(out) < 2:
        raise InputError(
            where,
            f"only {len(out)} trace rows fall in the period "
            f"({rate.index[0]:%Y-%m-%d %H:%M} to {rate.index[-1]:%Y-%m-%d %H:%M} available)",
            "choose a period inside the trace",
        )
    return out


def scale_to_peak(rate: pd.Series, workload: Workload, replicas: int) -> tuple[pd.Series, float]:
    """Scale so the 99.9th-percentile rate needs ``replicas`` at 70 % utilisation."""
    p999 = float(np.quantile(rate.to_numpy(dtype=float), 0.999))
    if p999 <= 0:
        raise InputError("--scale-to-peak-replicas", "the trace's 99.9th percentile is 0", "")
    factor = replicas * workload.capacity_rps * 0.7 / p999
    return rate * factor, factor


@dataclass
class Prepared:
    """A scenario resolved into what the engine runs."""

    scenario: Scenario
    workload: Workload
    trace: Trace
    demand: Demand
    scale_factor: float = 1.0
    #: the controller ``predictive`` runs (``autoscaler.cli.simworld.controller_for``).
    controller: ControllerFactory | None = None
    #: metrics outages replayed to ``predictive``'s source.
    outages: tuple[Outage, ...] = ()
    #: the user's own objects (``simulate --objects``), replacing the scenario's.
    objects: UserObjects | None = None


def prepare(
    scenario: Scenario,
    base: Path | None = None,
    trace: Trace | None = None,
    controller: ControllerFactory | None = None,
    outages: Sequence[Outage] = (),
    objects: UserObjects | None = None,
    workload: Workload | None = None,
) -> Prepared:
    """Load the workload and trace, cut the period, scale, and build per-tick demand.

    ``controller`` builds the controller that ``predictive`` runs; ``outages`` are
    replayed to its metric source; ``objects`` are the user's own autoscaler, budgets
    and target (then ``workload``, built from them, replaces the scenario's).
    """
    if workload is None:
        workload = resolve_workload(scenario.workload, base)
    if trace is None:
        trace = load_trace(resolve_trace(scenario.trace, base), scenario.value_unit)
    rate = cut_period(trace.rate_per_second, scenario.period)
    factor = 1.0
    if scenario.scale_to_peak_replicas is not None:
        rate, factor = scale_to_peak(rate, workload, scenario.scale_to_peak_replicas)
    demand = demand_from_rate(
        rate, trace.step_seconds, scenario.tick_seconds, scenario.observe_seconds
    )
    return Prepared(scenario, workload, trace, demand, factor, controller, tuple(outages), objects)


def build_policies(scenario: Scenario) -> list[Strategy]:
    """The scenario's strategies; ``predictive`` gets the scenario's overrides."""
    out: list[Strategy] = []
    for name in scenario.policies:
        policy = make_strategy(name, "policies")
        if isinstance(policy, Predictive):
            # predictive@Q's quantile wins over the scenario's block.
            policy.settings = scenario.predictive.model_copy(
                update={k: v for k, v in policy.settings.model_dump().items() if v is not None}
            )
        out.append(policy)
    return out


@dataclass
class Result:
    """Every strategy's timeline for one prepared scenario, plus the hpa-cpu frontier."""

    prepared: Prepared
    timelines: dict[str, Timeline]
    frontier: dict[int, Timeline] = field(default_factory=dict)


def run_policy(
    prepared: Prepared,
    policy: Strategy,
    progress: Callable[[int], None] | None = None,
) -> Timeline:
    ctx = RunContext(
        prepared.demand,
        prepared.workload,
        prepared.scenario.slo_utilization,
        prepared.scenario.budget,
        progress,
        prepared.controller,
        prepared.outages,
        prepared.objects,
    )
    return policy.run(ctx)


def _run_named(job: tuple[Prepared, Strategy]) -> Timeline:
    """One strategy run in a worker process (top level, so that it pickles)."""
    return run_policy(*job)


def simulate(
    prepared: Prepared,
    progress: Callable[[str, int, int], None] | None = None,
    frontier: bool = True,
    workers: int = 1,
    extra_policies: Sequence[Strategy] = (),
) -> Result:
    """Run every strategy (and the hpa-cpu frontier targets unless ``frontier`` is False).

    ``extra_policies`` are run (and compared with the frontier) as if the scenario
    listed them; benchmarks pass strategies no scenario file can name. With
    ``workers > 1`` the runs are spread over that many processes (each run is
    independent; results are identical to a serial run). Progress is then reported per
    finished run rather than per tick.
    """
    jobs: list[Strategy] = [*build_policies(prepared.scenario), *extra_policies]
    n_main = len(jobs)
    names = {p.name for p in jobs}
    targets: dict[int, str] = {}
    if frontier:
        for target in prepared.scenario.frontier_targets:
            name = "hpa-cpu" if target == 70 and "hpa-cpu" in names else f"hpa-cpu@{target}"
            targets[target] = name
            if name not in names:
                jobs.append(HpaCpu(target, name=name))
                names.add(name)
    done = _run_jobs(prepared, jobs, workers, progress)
    timelines = {p.name: done[p.name] for p in jobs[:n_main]}
    runs = {target: done[name] for target, name in targets.items()}
    if frontier and prepared.scenario.frontier_refine and len(runs) >= 2:
        # The frontier between two coarse targets is not the chord: add the integer
        # targets between the sweep points that bracket each strategy's tau_U.
        sweep = {t: _tau_u_pct(prepared, tl) for t, tl in runs.items()}
        main = {p.target_pct: p.name for p in jobs[:n_main] if isinstance(p, HpaCpu)}
        # Not for an hpa-cpu run that is itself a sweep point (it is on the frontier
        # already). The oracle is refined too: its gap closed is 1 by definition, but
        # its cost against the HPA at tau_U 0 is read off the same frontier.
        skip = {name for t, name in main.items() if t in runs}
        taus = [_tau_u_pct(prepared, tl) for n, tl in timelines.items() if n not in skip]
        wanted = scoring.refine_targets(sweep, taus)
        runs.update({t: timelines[main[t]] for t in wanted if t in main})
        more: list[Strategy] = [HpaCpu(t, name=f"hpa-cpu@{t}") for t in wanted if t not in main]
        if more:
            extra = _run_jobs(prepared, more, workers, progress)
            runs.update({int(p.name.partition("@")[2]): extra[p.name] for p in more})
    return Result(prepared, timelines, dict(sorted(runs.items())))


def _tau_u_pct(prepared: Prepared, tl: Timeline) -> float:
    """tau_U (%) of one timeline, as the report scores it."""
    supply = scoring.supply_rps(
        tl.ready, prepared.workload.capacity_rps, prepared.scenario.slo_utilization
    )
    return scoring.tau_u(tl.demand, supply, prepared.demand.tick_seconds)


def _run_jobs(
    prepared: Prepared,
    jobs: Sequence[Strategy],
    workers: int,
    progress: Callable[[str, int, int], None] | None,
) -> dict[str, Timeline]:
    """Run ``jobs`` (in ``workers`` processes if more than one); timelines by name."""
    n = len(prepared.demand)
    if workers > 1 and len(jobs) > 1:

        def done(i: int, total: int) -> None:
            if progress is not None:
                progress(f"{i}/{total} runs", n, n)

        timelines = run_jobs(_run_named, [(prepared, p) for p in jobs], workers, done)
        return {p.name: tl for p, tl in zip(jobs, timelines, strict=True)}
    out: dict[str, Timeline] = {}
    for policy in jobs:
        cb = None if progress is None else _bind(progress, policy.name)
        out[policy.name] = run_policy(prepared, policy, cb)
        if progress is not None:
            progress(policy.name, n, n)
    return out


def _bind(progress: Callable[[str, int, int], None], name: str) -> Callable[[int], None]:
    return lambda i: progress(name, i, -1)
