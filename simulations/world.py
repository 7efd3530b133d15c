"""The simulated world the controller runs in: a trace-replay source and a cluster.

The simulator does not re-implement the controller. It swaps the world around it, as
SimPy swaps a real-time environment for a simulated one:

* the clock: ``simulations.clock.SimClock``, advanced one HPA sync per tick;
* the metric source: ``TraceSource``, the trace's rows as a PromQL backend would
  answer ``history_by`` (each row visible from the start of its interval, never
  earlier), failing with a retryable error during a replayed outage while demand goes
  on;
* the cluster: ``SimCluster``, the PredictiveAutoscalers, CostBudgets and targets the
  controller lists and reads (replicas, Ready replicas and requests as the emulated
  pods have them), and the owned HPA's ``maxReplicas`` the controller writes, which the
  emulated HPA obeys.

The controller itself comes from the caller as a ``ControllerFactory``: only the CLI
(``autoscaler.cli.simworld``) may import the controller, so the simulator is handed
one (layering: ``models <- policies <- simulations <- autoscaler``).

Callers: ``simulations.strategies.predictive``, the parity test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from models.common import unix_seconds
from models.errors import InputError, RetryableError
from policies.decision import HPA_TOLERANCE
from policies.objects import Budget, PredictiveAutoscaler, TargetInfo, TargetRef
from simulations.clock import SimClock
from simulations.hpa import HorizontalController, replicas_from_external
from simulations.pods import PodSet


@dataclass(frozen=True)
class Outage:
    """A metrics outage: the source fails from ``start`` for ``seconds`` (unix s)."""

    start: float
    seconds: float

    @property
    def end(self) -> float:
        return self.start + self.seconds


def parse_outage(text: str, trace_start: float, where: str = "--outage") -> Outage:
    """``OFFSET/DURATION`` from the trace's start, e.g. ``26h/10m`` or ``3600/600``."""
    from models.units import parse_duration

    offset, sep, duration = text.partition("/")
    if not sep:
        raise InputError(where, f"{text!r} is not OFFSET/DURATION", "e.g. --outage 26h/10m")
    off = parse_duration(offset, f"{where} offset")
    dur = parse_duration(duration, f"{where} duration")
    if dur <= 0:
        raise InputError(where, f"duration {duration!r} is not positive", "e.g. 26h/10m")
    return Outage(trace_start + off, dur)


class TraceSource:
    """A ``MetricSource`` that replays observed load (rate/s per observation window).

    ``observed`` is stamped at each window's start, when the window's (constant) rate
    becomes visible, as ``simulations.engine.Demand`` defines it. ``history_by``
    answers as a PromQL backend does, under ``autoscaler.sources.base``'s contract: an
    evenly spaced series on the query's grid over ``[start, end]``, never past the
    clock's now (nothing from the future), NaN where the trace has no row (a gap), no
    series at all where there is no sample; or it raises ``RetryableError`` while an
    outage is on.
    """

    def __init__(
        self,
        observed: pd.Series,
        clock: SimClock,
        keys: Sequence[tuple[str, str]],
        outages: Sequence[Outage] = (),
        scale: Mapping[tuple[str, str], float] | None = None,
    ) -> None:
        self._index = pd.DatetimeIndex(observed.index)
        self._stamps = unix_seconds(self._index)
        self._values = observed.to_numpy(dtype=float)
        self._series = pd.Series(self._values, index=self._index, dtype=float)
        self.clock = clock
        self.keys = list(keys)
        self.outages = sorted(outages, key=lambda o: o.start)
        self.scale = dict(scale or {})
        self.requests_sent = 0

    def _check(self) -> None:
        now = self.clock.now()
        for o in self.outages:
            if o.start <= now < o.end:
                raise RetryableError(
                    f"simulated metrics outage from {o.start:.0f} for {o.seconds:g}s"
                )

    def _grid(self, start: float, end: float, step: float) -> pd.Series:
        """The samples on the query's grid ``start, start + step, ... <= end`` (and not
        after now), NaN where the trace has no row: what a PromQL backend answers."""
        end = min(float(end), self.clock.now())
        if end < start:
            return pd.Series(dtype=float)
        n = int(math.floor((end - start) / step + 1e-9)) + 1
        last = start + (n - 1) * step
        lo = int(np.searchsorted(self._stamps, start - 1e-6, side="left"))
        hi = int(np.searchsorted(self._stamps, last + 1e-6, side="right"))
        if (
            hi - lo == n
            and abs(self._stamps[lo] - start) < 1e-6
            and abs(self._stamps[hi - 1] - last) < 1e-6
        ):
            # Every grid point has its row (evenly spaced rows, no gap): a slice.
            return self._series.iloc[lo:hi]
        grid = start + step * np.arange(n, dtype=float)
        values = np.full(n, np.nan)
        if hi > lo:
            pos = np.rint((self._stamps[lo:hi] - start) / step).astype(np.int64)
            on_grid = np.abs(start + pos * step - self._stamps[lo:hi]) < 1e-6
            values[pos[on_grid]] = self._values[lo:hi][on_grid]
        index = pd.DatetimeIndex(pd.to_datetime(grid, unit="s", utc=True))
        return pd.Series(values, index=index, dtype=float)

    def history(self, query: str, start: Any, end: Any, step: float) -> pd.Series:
        self._check()
        self.requests_sent += 1
        return self._grid(_seconds(start), _seconds(end), float(step))

    def history_by(
        self,
        query: str,
        start: Any,
        end: Any,
        step: float,
        by: Sequence[str] = ("namespace", "workload"),
    ) -> dict[tuple[str, ...], pd.Series]:
        self._check()
        self.requests_sent += 1
        series = self._grid(_seconds(start), _seconds(end), float(step))
        if not np.isfinite(series.to_numpy()).any():
            return {}  # a PromQL backend returns no series where there is no sample
        out: dict[tuple[str, ...], pd.Series] = {}
        for key in self.keys:
            factor = self.scale.get(key, 1.0)
            out[key] = series * factor if factor != 1.0 else series
        return out


class PodMetricsSource(TraceSource):
    """``TraceSource`` plus the cAdvisor and kube-state-metrics series of the emulated
    pods, for the controller's calibration (``calibrate_workload``'s queries).

    The simulator records, each tick, the demand and the pods alive and Ready
    (``record``); a pod burns ``idle`` cores while alive plus ``per_load`` cores per unit
    of load it serves (the demand, shared by the Ready pods, up to their CPU limit),
    times seeded lognormal noise. Queries are told apart by the metric they name:
    ``container_cpu_usage_seconds_total`` (``count(...)``: pods, else: cores),
    ``kube_pod_container_resource_requests`` (the request), ``kube_pod_created`` and
    ``kube_pod_status_ready_time`` (per pod, from ``pods``' creation log); anything
    else is the load trace. A grid point ``g`` holds the mean over the ticks in
    ``[g, g + step)``: the trace's own convention (a row is the rate from its stamp on).
    """

    def __init__(
        self,
        observed: pd.Series,
        clock: SimClock,
        keys: Sequence[tuple[str, str]],
        *,
        ticks: int,
        idle_cores: float,
        cores_per_load: float,
        request_cores: float,
        limit_cores: float,
        noise: float,
        seed: int,
        outages: Sequence[Outage] = (),
    ) -> None:
        super().__init__(observed, clock, keys, outages)
        self.idle_cores = idle_cores
        self.cores_per_load = cores_per_load
        self.request_cores = request_cores
        self.limit_cores = limit_cores
        self._times = np.full(ticks, np.nan)
        self._alive = np.zeros(ticks)
        self._cores = np.zeros(ticks)
        self._noise = np.exp(noise * np.random.default_rng(seed).standard_normal(ticks))
        self._n = 0
        #: the pods ever created (``PodSet.created_log``), set by the simulator.
        self.pods: list[Any] = []

    def record(self, i: int, now: float, demand: float, alive: int, ready: int) -> None:
        """One tick's pods and load (a few array stores: the per-tick path)."""
        served = min(demand, ready * (self.limit_cores - self.idle_cores) / self.cores_per_load)
        self._times[i] = now
        self._alive[i] = alive
        self._cores[i] = (self.idle_cores * alive + self.cores_per_load * served) * self._noise[i]
        self._n = i + 1

    def _means(self, start: float, end: float, step: float) -> tuple[pd.DatetimeIndex, Any]:
        end = min(float(end), self.clock.now())
        n = max(int(math.floor((end - start) / step + 1e-9)) + 1, 0)
        grid = start + step * np.arange(n, dtype=float)
        times = self._times[: self._n]
        lo = np.searchsorted(times, grid, side="left")
        hi = np.searchsorted(times, grid + step, side="left")
        counts = hi - lo
        csum_alive = np.concatenate([[0.0], np.cumsum(self._alive[: self._n])])
        csum_cores = np.concatenate([[0.0], np.cumsum(self._cores[: self._n])])
        with np.errstate(invalid="ignore", divide="ignore"):
            alive = (csum_alive[hi] - csum_alive[lo]) / counts
            cores = (csum_cores[hi] - csum_cores[lo]) / counts
        alive = np.where((counts > 0) & (alive > 0), alive, np.nan)
        cores = np.where(np.isfinite(alive), cores, np.nan)
        index = pd.DatetimeIndex(pd.to_datetime(grid, unit="s", utc=True))
        return index, (alive, cores)

    def history(self, query: str, start: Any, end: Any, step: float) -> pd.Series:
        if "container_cpu_usage_seconds_total" in query:
            self._check()
            self.requests_sent += 1
            index, (alive, cores) = self._means(_seconds(start), _seconds(end), float(step))
            values = alive if query.lstrip().startswith("count") else cores
            return pd.Series(values, index=index, dtype=float)
        if "kube_pod_container_resource_requests" in query:
            self._check()
            self.requests_sent += 1
            index, (alive, _cores) = self._means(_seconds(start), _seconds(end), float(step))
            values = np.where(np.isfinite(alive), self.request_cores, np.nan)
            return pd.Series(values, index=index, dtype=float)
        return super().history(query, start, end, step)

    def history_by(
        self,
        query: str,
        start: Any,
        end: Any,
        step: float,
        by: Sequence[str] = ("namespace", "workload"),
    ) -> dict[tuple[str, ...], pd.Series]:
        created = "kube_pod_created" in query
        if not created and "kube_pod_status_ready_time" not in query:
            return super().history_by(query, start, end, step, by)
        self._check()
        self.requests_sent += 1
        at = min(_seconds(end), self.clock.now())
        window = _range_seconds(query)
        index = pd.DatetimeIndex(pd.to_datetime([at], unit="s", utc=True))
        out: dict[tuple[str, ...], pd.Series] = {}
        for pod in self.pods:
            if pod.created < at - window or pod.created > at:
                continue
            if created:
                value = pod.created
            elif pod.ready and pod.ready_at <= at:
                value = pod.ready_at
            else:
                continue
            out[(pod.name,)] = pd.Series([float(value)], index=index, dtype=float)
        return out


def _range_seconds(query: str) -> float:
    """The first ``[...]`` range of a query in seconds (the calibration's window)."""
    from models.units import parse_duration

    start = query.find("[")
    stop = query.find("]", start)
    if start < 0 or stop < 0:
        return math.inf
    return float(parse_duration(query[start + 1 : stop], "query range"))


def _seconds(t: Any) -> float:
    if isinstance(t, int | float):
        return float(t)
    return float(pd.Timestamp(t).timestamp())


@dataclass
class SimTarget:
    """One scaled workload as the emulated cluster holds it, updated every tick."""

    requests: Mapping[str, str]
    #: the workload's ``spec.replicas`` (what the HPA set), Ready pods, existing pods.
    replicas: int = 1
    ready: int = 0
    alive: int = 0
    _info: TargetInfo | None = field(default=None, repr=False)

    def observe(self, current: int, pods: PodSet) -> None:
        """What runs now: ``spec.replicas`` as the HPA last set it, and the pods."""
        self.replicas = current
        self.ready = pods.ready_count
        self.alive = pods.alive

    def info(self) -> TargetInfo:
        cached = self._info
        if cached is None or cached.replicas != self.replicas or cached.ready != self.ready:
            cached = self._info = TargetInfo(self.replicas, self.requests, self.ready)
        return cached


@dataclass
class SimCluster:
    """The ``Cluster`` the controller sees in a simulation.

    It lists the given objects (the very same objects every tick, as an informer's
    cache would), reads targets from the emulated pods, and keeps what the controller
    writes: the owned HPA's ``maxReplicas`` (which the emulated HPA obeys), the last
    statuses, and the Events.
    """

    autoscalers: list[PredictiveAutoscaler]
    budgets: list[Budget]
    targets: dict[tuple[str, str], SimTarget]
    #: owned HPA maxReplicas by workload key (namespace/name), as last written.
    hpa_max: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, Any] = field(default_factory=dict)
    budget_statuses: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[float, str, str, str]] = field(default_factory=list)

    def list_autoscalers(self) -> list[PredictiveAutoscaler]:
        return self.autoscalers

    def list_budgets(self) -> list[Budget]:
        return self.budgets

    def target(self, namespace: str, ref: TargetRef) -> TargetInfo | None:
        t = self.targets.get((namespace, ref.name))
        return None if t is None else t.info()

    def ensure_hpa(self, pa: PredictiveAutoscaler, ceiling: int) -> str:
        self.hpa_max[pa.key] = int(ceiling)
        return "updated"

    def patch_status(self, pa: PredictiveAutoscaler, status: Any) -> None:
        self.statuses[pa.key] = status

    def patch_budget_status(self, name: str, status: Any) -> None:
        self.budget_statuses[name] = status

    def event(
        self, pa: PredictiveAutoscaler, reason: str, message: str, now: float, kind: str
    ) -> None:
        self.events.append((now, pa.key, reason, message))

    def pod_startups(self, namespace: str, ref: TargetRef) -> list[tuple[float, float]]:
        """None here: a simulation that learns reads start-ups from its pod metrics."""
        return []


@dataclass(frozen=True)
class WorkloadTick:
    """One workload's outcome of one controller tick, as the simulator records it."""

    #: replicas after every clamp (what the served value makes the HPA run).
    replicas: int
    #: the external-metric value served.
    served: float
    #: the forecast at the risk quantile (NaN when there is none).
    forecast: float
    #: the owned HPA's maxReplicas.
    ceiling: int
    budget_clamped: bool
    fallback: bool
    #: the capacity per replica the decision used (NaN while it is not known).
    capacity: float = math.nan


@dataclass(frozen=True)
class EnvironmentTick:
    """One environment's outcome of one controller tick."""

    spend: float
    hourly_cost: float
    hourly_cap: float


class SimController(Protocol):
    """The controller, as the simulator drives it: one reconcile per tick."""

    def tick(self) -> tuple[Mapping[str, WorkloadTick], Mapping[str, EnvironmentTick]]: ...


@dataclass
class SimWorld:
    """What a controller needs to run in simulation (handed to the factory)."""

    clock: SimClock
    source: TraceSource
    cluster: SimCluster
    #: the observation step (the trace's, or ``observe_seconds``) and its grid phase.
    step_seconds: float
    step_offset_seconds: float
    tick_seconds: float
    #: seconds between forecaster refits (None: the controller's default).
    refit_seconds: float | None = None


#: Builds the controller for a world (``autoscaler.cli.simworld.controller_for``).
ControllerFactory = Callable[[SimWorld], SimController]


def world_for(
    observed: pd.Series,
    start: float,
    tick_seconds: float,
    step_seconds: float,
    cluster: SimCluster,
    outages: Sequence[Outage] = (),
    scale: Mapping[tuple[str, str], float] | None = None,
    refit_seconds: float | None = None,
) -> SimWorld:
    """The world for a replay of ``observed`` from ``start``: a fresh clock, the trace
    source answering every target of ``cluster`` (times its ``scale``), and a query
    grid on the trace's own rows."""
    clock = SimClock(start)
    source = TraceSource(observed, clock, list(cluster.targets), outages, scale)
    return SimWorld(
        clock=clock,
        source=source,
        cluster=cluster,
        step_seconds=step_seconds,
        step_offset_seconds=float(start % step_seconds),
        tick_seconds=tick_seconds,
        refit_seconds=refit_seconds,
    )


def observed_step(observed: pd.Series, default: float) -> float:
    """The spacing of the observed samples (the trace's step, or ``observe_seconds``)."""
    idx = observed.index
    if len(idx) >= 2:
        return float((idx[1] - idx[0]).total_seconds())
    return float(default)


def owned_hpa_sync(
    hpa: HorizontalController,
    ceiling: int,
    workload_max: int,
    served: float,
    current: int,
    pods: PodSet,
    now: float,
) -> int:
    """One sync of the HPA the controller owns, as the emulated cluster runs it: its
    ``maxReplicas`` is what the controller wrote (within the workload's bound), and it
    consumes our metric as a real HPA does: External, ``AverageValue`` target 1."""
    hpa.max_replicas = max(hpa.min_replicas, min(ceiling, workload_max))
    proposal = replicas_from_external(
        current,
        [round(served * 1000.0)],
        "AverageValue",
        1000,
        HPA_TOLERANCE,
        ready_pods=len(pods.ready),
        status_replicas=pods.alive,
    )
    return int(hpa.sync(now, current, [proposal]))
