"""The reconcile loop: Prometheus in, decisions out, written where the cluster sees them.

Every ``loop.sync_seconds`` (15 s) on its own thread, with an injected clock:

1. read the PredictiveAutoscalers and CostBudgets (``Cluster``);
2. fetch load history with one batched ``history_by`` per distinct query (autoscalers
   that share a query, typically a whole environment, share one ``query_range``); the
   first tick backfills ``prometheus.backfill_seconds`` so the loop never starts cold;
3. per workload, ``autoscaler.decision.decide()``: the very path the simulator runs
   (refit on a schedule, cheap update + predict every tick);
4. the **fallback** policy when data is missing (below);
5. the cost guard per environment, all of its workloads at once
   (``policies.costguard.allocate``), and the spend ledger (``policies.ledger``),
   persisted atomically (``autoscaler.ledger_store``) by the leader;
6. ``served_value`` and one ``DecisionStore.publish(..., replace_all=True)`` for
   every ``Active`` workload; ``ForecastOnly`` workloads are recorded, never served;
7. Kubernetes writes (owned HPA with ``maxReplicas`` = budget ceiling, statuses,
   Events) only when this instance is the leader and not in dry-run;
8. metrics and structured logs; every clamp is a log line and a counter increment.

Fallback (named policy, tested): data is *missing* for a workload when its newest
finite sample is older than ``loop.stale_after_seconds`` or its query failed. Then
the last good decision is held for ``spec.fallback.holdSeconds``, after which the
spec's mode applies (``CurrentReplicas``, ``Static``, ``Reactive``). Whatever the mode,
a fallback decision is never below the replicas running now: missing data never
scales down. An Event marks the start and the end of every fallback.

Nothing here blocks the API: the store swaps a snapshot and readers never wait.
Callers: ``autoscaler.cli.run`` (``run``, ``--once``, ``explain``), the benchmarks.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autoscaler.clock import Clock
from autoscaler.decision import (
    Decision,
    ScalingSpec,
    WorkloadState,
    decide,
    replicas_for,
    served_value,
)
from autoscaler.kube.cluster import Budget, Cluster, TargetInfo
from autoscaler.kube.crds import (
    Condition,
    CostBudgetStatus,
    PredictiveAutoscaler,
    PredictiveAutoscalerStatus,
)
from autoscaler.kube.events import rfc3339
from autoscaler.kube.hpa import METRIC_NAME, metric_labels
from autoscaler.ledger_store import LedgerStore
from autoscaler.logging import log_event
from autoscaler.metrics import ControllerMetrics
from autoscaler.settings import ControllerSettings
from autoscaler.sources.base import MetricSource
from autoscaler.store import DecisionStore, MetricValue
from models.errors import AutoscalerError, RetryableError
from models.registry import FORECASTERS
from policies.budget import (
    AllocationRequest,
    AllocationResult,
    BudgetRequest,
    ForecastRequest,
    WorkloadRequest,
)
from policies.costguard import allocate, replica_prices
from policies.ledger import LedgerState, accrue, month_key, project
from policies.prices import Prices

log = logging.getLogger(__name__)

#: Environment name of workloads no CostBudget covers (no cost guard, no ledger).
NO_BUDGET = ""


@dataclass
class Workload:
    """Everything the loop keeps about one PredictiveAutoscaler between ticks."""

    pa: PredictiveAutoscaler
    spec: ScalingSpec
    state: WorkloadState = field(default_factory=WorkloadState)
    #: unix time of the newest finite sample taken into the history.
    last_sample: float | None = None
    #: end of the last successful query covering this workload (None: never fetched).
    fetched_until: float | None = None
    #: start of the oldest window fetched, and how far back the backfill should go.
    backfilled_from: float | None = None
    backfill_target: float | None = None
    #: when data was first seen missing (None while data flows).
    missing_since: float | None = None
    fallback: bool = False
    #: the last decision made on fresh data (held during fallback).
    last_good: Decision | None = None
    #: forecasts awaiting their outcome: (made at, due at, forecast load).
    pending: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=64))
    budget_clamped: bool = False
    #: one replica's requests as last read from the target (pricing survives an
    #: unreadable target; None: never read, so the price is unknown).
    known_requests: dict[str, str] | None = None
    #: what was last written to the API (to skip writes that change nothing).
    hpa_written: tuple[int, float] | None = None  # (ceiling, when)
    status_written: tuple[tuple[Any, ...], float] | None = None  # (essentials, when)
    result: WorkloadResult | None = None


@dataclass(frozen=True)
class WorkloadResult:
    """One workload's outcome of a tick (what is served, recorded and explained)."""

    key: str
    namespace: str
    name: str
    target: str
    mode: str
    environment: str
    decision: Decision
    current_replicas: int
    served: float
    observed_load: float | None
    forecast_load: float | None
    risk_quantile: float
    model: str
    ceiling: int
    hourly_cost: float
    budget_reason: str = ""
    data_error: str = ""
    #: seconds from decision to ready capacity, and load one replica serves at the
    #: target utilisation (the shadow report needs both to score a decision).
    lead_seconds: float = 0.0
    per_replica: float = 0.0


@dataclass(frozen=True)
class EnvironmentResult:
    """One environment's outcome of a tick: the guard's cap and the ledger."""

    name: str
    budget: str
    hourly_cap: float | None
    hourly_cost: float
    infeasible: bool
    spend: float
    projection: float
    monthly_limit: float | None
    clamped: tuple[str, ...]
    alerts: tuple[str, ...]


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconcile did; ``--once`` prints it, the benchmark times it."""

    time: float
    duration_seconds: float
    queries: int
    workloads: tuple[WorkloadResult, ...]
    environments: tuple[EnvironmentResult, ...]
    errors: tuple[str, ...] = ()
    leader: bool = False

    def by_key(self) -> dict[str, WorkloadResult]:
        return {w.key: w for w in self.workloads}


def _ts(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def scaling_spec(
    pa: PredictiveAutoscaler,
    refit_seconds: float,
    fallback_model: str,
    history_seconds: float = 14 * 86400.0,
) -> ScalingSpec:
    """The pure decision path's view of a PredictiveAutoscaler.

    ``history_seconds`` (what ``decide`` keeps) is the Prometheus backfill window, so
    history fetched is history kept.
    """
    s = pa.spec
    model = s.forecaster if s.forecaster in FORECASTERS else fallback_model
    return ScalingSpec(
        namespace=pa.metadata.namespace,
        name=pa.metadata.name,
        capacity_per_replica=s.capacity_per_replica,
        target_utilization=s.target_utilization,
        min_replicas=s.min_replicas,
        max_replicas=s.max_replicas,
        lead_seconds=s.lead_time_seconds,
        risk_quantile=s.risk_quantile,
        risk_target=s.risk_target,
        model=model,
        refit_seconds=refit_seconds,
        history_seconds=history_seconds,
    )


class ShadowRecorder:
    """Appends ForecastOnly decisions as JSON lines (``autoscaler report`` reads them)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes

    def record(self, results: list[WorkloadResult]) -> None:
        if not results:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > self.max_bytes:
            self.path.replace(self.path.with_name(self.path.name + ".1"))
        with self.path.open("a", encoding="utf-8") as out:
            for r in results:
                out.write(json.dumps(shadow_record(r), separators=(",", ":")) + "\n")


def shadow_record(r: WorkloadResult) -> dict[str, Any]:
    d = r.decision
    return {
        "time": d.time,
        "workload": r.key,
        "target": r.target,
        "current": r.current_replicas,
        "desired": d.desired_replicas,
        "replicas": d.replicas,
        "observed": r.observed_load,
        "forecast": r.forecast_load,
        "quantile": r.risk_quantile,
        "lead": r.lead_seconds,
        "per_replica": r.per_replica,
        "constraint": d.binding_constraint,
        "fallback": d.fallback,
    }


def _ledger_from_status(budget: Budget, when: datetime) -> LedgerState | None:
    """A ledger seeded from a CostBudget status written this month, else None."""
    status = budget.status
    stamp = str(status.get("lastUpdateTime") or "")
    try:
        as_of = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        spent = Decimal(str(status.get("spendDollars", 0)))
    except (ValueError, ArithmeticError):
        return None
    if as_of.tzinfo is None or month_key(as_of) != month_key(when) or as_of > when or spent < 0:
        return None
    return LedgerState(month=month_key(as_of), as_of=as_of, spent=spent)


@dataclass(frozen=True)
class ShadowSummary:
    """How ForecastOnly decisions of one workload compare with what happened."""

    workload: str
    scored: int
    #: mean replicas the forecast asked for / that actually ran one lead time later.
    predicted_mean: float
    actual_mean: float
    #: share of decisions whose replicas were below what the observed peak needed.
    predicted_short: float
    actual_short: float
    #: replica-hours over the scored span: predicted vs actual.
    predicted_replica_hours: float
    actual_replica_hours: float


def read_shadow(path: Path) -> list[dict[str, Any]]:
    """Records of a shadow file (and its rotated ``.1``), oldest first; bad lines skipped."""
    records: list[dict[str, Any]] = []
    for part in (path.with_name(path.name + ".1"), path):
        if not part.exists():
            continue
        for line in part.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash mid-write: the rest is still good
            if isinstance(rec, dict) and "workload" in rec and "time" in rec:
                records.append(rec)
    records.sort(key=lambda r: float(r["time"]))
    return records


def shadow_report(records: list[dict[str, Any]]) -> list[ShadowSummary]:
    """Score each shadow decision against the load that followed it.

    A decision at ``t`` is scored when records exist past ``t + lead``: the replicas
    *needed* are ``ceil(peak observed load in (t, t + lead] / per_replica)``; the
    forecast was short if it asked for fewer; reality was short if the replicas
    running at ``t + lead`` were fewer. Decisions without a later observation are not
    scored (the report says how many were).
    """
    by: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by.setdefault(str(rec["workload"]), []).append(rec)
    out: list[ShadowSummary] = []
    for workload, recs in sorted(by.items()):
        times = [float(r["time"]) for r in recs]
        pred: list[int] = []
        act: list[int] = []
        p_short = a_short = 0
        p_hours = a_hours = 0.0
        for i, rec in enumerate(recs):
            lead = float(rec.get("lead") or 0.0)
            per = float(rec.get("per_replica") or 0.0)
            t = times[i]
            if lead <= 0 or per <= 0 or times[-1] < t + lead:
                continue
            window = [
                float(r["observed"])
                for r, tt in zip(recs[i + 1 :], times[i + 1 :], strict=True)
                if tt <= t + lead and r.get("observed") is not None
            ]
            later = next(r for r, tt in zip(recs, times, strict=True) if tt >= t + lead)
            if not window:
                continue
            needed = math.ceil(max(window) / per - 1e-9)
            predicted, actual = int(rec["replicas"]), int(later["current"])
            pred.append(predicted)
            act.append(actual)
            p_short += predicted < needed
            a_short += actual < needed
            step = (times[i + 1] - t) / 3600.0 if i + 1 < len(recs) else 0.0
            p_hours += predicted * step
            a_hours += actual * step
        n = len(pred)
        out.append(
            ShadowSummary(
                workload=workload,
                scored=n,
                predicted_mean=sum(pred) / n if n else 0.0,
                actual_mean=sum(act) / n if n else 0.0,
                predicted_short=p_short / n if n else 0.0,
                actual_short=a_short / n if n else 0.0,
                predicted_replica_hours=p_hours,
                actual_replica_hours=a_hours,
            )
        )
    return out


class Controller:
    """The reconcile loop. Thread-safety: one thread calls ``reconcile``; readers use
    ``last_report`` (an immutable object swapped whole)."""

    def __init__(
        self,
        settings: ControllerSettings,
        source: MetricSource,
        cluster: Cluster,
        store: DecisionStore,
        clock: Clock,
        metrics: ControllerMetrics | None = None,
        ledger: LedgerStore | None = None,
        is_leader: Callable[[], bool] = lambda: True,
        dry_run: bool = False,
    ) -> None:
        self.settings = settings
        self.source = source
        self.cluster = cluster
        self.store = store
        self.clock = clock
        self.metrics = metrics or ControllerMetrics()
        self.ledger_store = ledger if ledger is not None else LedgerStore(settings.ledger.path)
        self.is_leader = is_leader
        self.dry_run = dry_run
        self.shadow = ShadowRecorder(settings.shadow.path, settings.shadow.max_bytes)
        self.workloads: dict[str, Workload] = {}
        self.ledgers: dict[str, LedgerState] = {}
        self._ledgers_loaded = False
        self._ledgers_leader = False
        self._autoscalers: list[PredictiveAutoscaler] = []
        self._budgets: list[Budget] = []
        self.last_report: ReconcileReport | None = None
        self._fetched_cold = False

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event) -> None:
        """Reconcile every ``sync_seconds`` until ``stop`` is set; never raises."""
        period = self.settings.loop.sync_seconds
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.reconcile()
            except Exception:  # a bug must not kill the loop: log it, try again next tick
                log.exception("reconcile failed")
            stop.wait(max(0.0, period - (time.monotonic() - started)))

    def reconcile(self) -> ReconcileReport:
        """One tick: read, fetch, decide, guard, publish, write. Returns what it did."""
        started = time.perf_counter()
        now = self.clock.now()
        leader = self.is_leader() and not self.dry_run
        errors: list[str] = []
        self._refresh_objects(errors)
        assignments = self._sync_workloads()
        data, data_errors, queries = self._fetch(now)
        if not self._fetched_cold:  # a first fetch is enough work for one tick
            queries += self._backfill_older(now)
        targets = self._targets(errors)
        decisions: dict[str, Decision] = {}
        observed: dict[str, float | None] = {}
        for key, w in self.workloads.items():
            target = targets.get(key)
            current = self._current(w, target)
            ready = None if target is None else target.ready
            new = data.get(key)
            observed[key] = self._observe(w, new)
            decisions[key] = self._decide(w, now, new, current, data_errors.get(key, ""), ready)
        env_results, allocations = self._guard(now, assignments, decisions, targets, leader)
        results: list[WorkloadResult] = []
        for key, w in self.workloads.items():
            decision, ceiling, cost, budget_reason = allocations.get(
                key, (decisions[key], w.spec.max_replicas, 0.0, "")
            )
            current = decision.current_replicas
            active = w.pa.spec.mode == "Active"
            forecast = decision.forecast
            q = w.spec.risk_quantile
            result = WorkloadResult(
                key=key,
                namespace=w.pa.metadata.namespace,
                name=w.pa.metadata.name,
                target=w.pa.spec.target_ref.name,
                mode=w.pa.spec.mode,
                environment=assignments.get(key, NO_BUDGET),
                decision=decision,
                current_replicas=current,
                served=served_value(decision.replicas, current) if active else 0.0,
                observed_load=observed[key],
                forecast_load=None if forecast is None else forecast.quantile(q),
                risk_quantile=q,
                model=forecast.model if forecast is not None else "",
                ceiling=ceiling,
                hourly_cost=cost,
                budget_reason=budget_reason,
                data_error=data_errors.get(key, ""),
                lead_seconds=w.spec.lead_seconds,
                per_replica=w.spec.capacity_per_replica * w.spec.target_utilization,
            )
            w.result = result
            results.append(result)
        self._publish(now, results)
        if leader:  # one writer for the shared file; followers would duplicate records
            self._record_shadow(results, errors)
        if leader:
            self._write(now, results, env_results, errors)
        self._observe_metrics(now, results, env_results)
        duration = time.perf_counter() - started
        self.metrics.reconcile_duration.observe(duration)
        report = ReconcileReport(
            time=now,
            duration_seconds=duration,
            queries=queries,
            workloads=tuple(results),
            environments=tuple(env_results),
            errors=tuple(errors),
            leader=leader,
        )
        log_event(
            log,
            "reconcile",
            f"reconciled {len(results)} workloads in {duration:.3f}s",
            workloads=len(results),
            queries=queries,
            duration_seconds=round(duration, 4),
            fallback=sum(1 for r in results if r.decision.fallback),
            errors=len(errors),
            leader=leader,
        )
        self.last_report = report
        return report

    # ---------------------------------------------------------- objects and data

    def _refresh_objects(self, errors: list[str]) -> None:
        """Re-read the objects; on an API failure keep the last known ones."""
        try:
            self._autoscalers = self.cluster.list_autoscalers()
        except AutoscalerError as err:
            errors.append(f"list PredictiveAutoscalers: {err}")
            log_event(log, "kube_error", str(err), logging.WARNING, call="list_autoscalers")
        try:
            self._budgets = self.cluster.list_budgets()
        except AutoscalerError as err:
            errors.append(f"list CostBudgets: {err}")
            log_event(log, "kube_error", str(err), logging.WARNING, call="list_budgets")

    def _sync_workloads(self) -> dict[str, str]:
        """Add new autoscalers, update changed ones, forget deleted ones.

        Returns workload key -> environment (CostBudget name, or ``NO_BUDGET``).
        """
        loop = self.settings.loop
        seen: set[str] = set()
        for pa in self._autoscalers:
            key = pa.key
            seen.add(key)
            spec = scaling_spec(
                pa,
                loop.refit_seconds,
                loop.fallback_model,
                self.settings.prometheus.backfill_seconds,
            )
            w = self.workloads.get(key)
            if w is None:
                self.workloads[key] = Workload(pa=pa, spec=spec)
            else:
                if spec.model != w.spec.model:
                    w.state.forecaster = None  # a different model: refit at once
                w.pa, w.spec = pa, spec
        for key in [k for k in self.workloads if k not in seen]:
            gone = self.workloads.pop(key)
            self.metrics.forget(gone.pa.metadata.namespace, gone.pa.spec.target_ref.name)
            log_event(log, "workload_removed", f"{key} deleted; no longer served", workload=key)
        return {key: self._environment(w.pa) for key, w in self.workloads.items()}

    def _environment(self, pa: PredictiveAutoscaler) -> str:
        if pa.spec.budget_ref:
            return (
                pa.spec.budget_ref
                if any(b.name == pa.spec.budget_ref for b in self._budgets)
                else NO_BUDGET
            )
        for budget in self._budgets:
            if budget.spec.selector.matches(pa.metadata.namespace, dict(pa.metadata.labels)):
                return budget.name
        return NO_BUDGET

    def _fetch(self, now: float) -> tuple[dict[str, pd.Series], dict[str, str], int]:
        """One batched query per distinct query (and window kind); per-workload series.

        A workload never fetched gets ``loop.initial_backfill_seconds`` of history at
        once (so it does not start cold); older history arrives page by page on later
        ticks (``_backfill_older``). Afterwards each tick asks only for the steps after
        the newest sample taken (a step still empty because of scrape lag is asked for
        again), but never for more than the stale limit: older gaps stay gaps.
        """
        prom = self.settings.prometheus
        loop = self.settings.loop
        step = float(prom.step_seconds)
        end = math.floor(now / step) * step
        initial = min(loop.initial_backfill_seconds, prom.backfill_seconds)
        groups: dict[tuple[str, bool], list[Workload]] = {}
        for w in self.workloads.values():
            groups.setdefault((w.pa.spec.query, w.fetched_until is None), []).append(w)
        out: dict[str, pd.Series] = {}
        failed: dict[str, str] = {}
        queries = 0
        self._fetched_cold = False
        for (query, cold), members in groups.items():
            if cold:
                self._fetched_cold = True
                start = now - initial
            else:
                since = min(
                    w.last_sample if w.last_sample is not None else (w.fetched_until or now)
                    for w in members
                )
                start = max(since + step, now - loop.stale_after_seconds - step)
            start = math.floor(start / step) * step
            if end < start:
                continue
            queries += 1
            answer = self._query(query, start, end, step, members, failed)
            if answer is None:
                continue
            for w in members:
                w.fetched_until = end
                if cold:
                    w.backfilled_from = start
                    w.backfill_target = now - prom.backfill_seconds
                series = answer.get((w.pa.metadata.namespace, w.pa.spec.target_ref.name))
                if series is not None:
                    out[w.pa.key] = series
        return out, failed, queries

    def _query(
        self,
        query: str,
        start: float,
        end: float,
        step: float,
        members: list[Workload],
        failed: dict[str, str] | None,
    ) -> dict[tuple[str, ...], pd.Series] | None:
        """``history_by`` with errors logged (and noted per workload); None on failure."""
        try:
            answer = self.source.history_by(query, start, end, step)
        except AutoscalerError as err:
            log_event(
                log,
                "query_failed",
                f"history query failed: {err}",
                logging.WARNING,
                query=query,
                workloads=len(members),
                retryable=isinstance(err, RetryableError),
            )
            if failed is not None:
                for w in members:
                    failed[w.pa.key] = str(err)
            return None
        # Without the source's attrs: pandas deep-copies attrs on every operation,
        # which costs seconds per tick over 1,000 histories.
        return {
            key: pd.Series(series.to_numpy(dtype=float), index=series.index, dtype=float)
            for key, series in answer.items()
        }

    def _backfill_older(self, now: float) -> int:
        """Fetch one older page of history for one group of workloads; returns queries.

        Bounded: at most one query of ``loop.backfill_page_seconds`` per tick, so the
        14-day backfill of 1,000 workloads never makes a tick overrun its sync. The
        page is prepended to each history; the models refit once the backfill is
        complete (until then they forecast from the initial window).
        """
        step = float(self.settings.prometheus.step_seconds)
        page = self.settings.loop.backfill_page_seconds
        groups: dict[tuple[str, float], list[Workload]] = {}
        for w in self.workloads.values():
            if (
                w.backfilled_from is not None
                and w.backfill_target is not None
                and w.backfilled_from - step >= w.backfill_target
            ):
                groups.setdefault((w.pa.spec.query, w.backfilled_from), []).append(w)
        if not groups:
            return 0
        (query, upto), members = max(groups.items(), key=lambda kv: len(kv[1]))
        target = min(w.backfill_target or upto for w in members)
        start = math.floor(max(target, upto - page) / step) * step
        end = upto - step
        answer = self._query(query, start, end, step, members, None)
        if answer is None:
            return 1
        for w in members:
            w.backfilled_from = start
            older = answer.get((w.pa.metadata.namespace, w.pa.spec.target_ref.name))
            if older is None or not np.isfinite(older.to_numpy(dtype=float)).any():
                continue
            hist = w.state.history
            if not hist.empty:
                older = older[older.index < hist.index[0]]
            if older.empty:
                continue
            w.state.history = older if hist.empty else pd.concat([older, hist])
            if w.backfill_target is None or start - step < w.backfill_target:
                # Complete: refit on the whole history at the next decide. Refitting
                # after every page would cost a full refit per tick for ~15 minutes.
                w.state.fitted_at = None
        log_event(
            log,
            "backfill_page",
            f"backfilled {len(members)} workloads back to {rfc3339(start)}",
            logging.DEBUG,
            workloads=len(members),
            start=start,
        )
        return 1

    def _targets(self, errors: list[str]) -> dict[str, TargetInfo | None]:
        out: dict[str, TargetInfo | None] = {}
        for key, w in self.workloads.items():
            try:
                out[key] = self.cluster.target(w.pa.metadata.namespace, w.pa.spec.target_ref)
            except AutoscalerError as err:
                errors.append(f"read target of {key}: {err}")
                out[key] = None
        return out

    def _current(self, w: Workload, target: TargetInfo | None) -> int:
        """Replicas running now; unknown (API error) = what we last saw or decided."""
        if target is not None:
            return target.replicas
        if w.result is not None:
            return w.result.current_replicas
        return w.spec.min_replicas

    def _observe(self, w: Workload, series: pd.Series | None) -> float | None:
        if series is None or series.empty:
            return None
        values = series.to_numpy(dtype=float)
        finite = np.flatnonzero(np.isfinite(values))
        return float(values[finite[-1]]) if finite.size else None

    # ------------------------------------------------------------- decide + fallback

    def _new_samples(self, w: Workload, series: pd.Series | None) -> pd.Series:
        """Samples after the last one taken, up to the newest finite one.

        Trailing NaN (a scrape gap at the end) is not taken: those steps may still
        be filled in later, and ``decide`` never takes a sample twice.
        """
        # numpy positions, not pandas masks: this runs for 1,000 workloads every tick.
        if series is None or series.empty:
            return pd.Series(dtype=float)
        finite = np.flatnonzero(np.isfinite(series.to_numpy(dtype=float)))
        if not finite.size:
            return pd.Series(dtype=float)
        first = 0
        if w.last_sample is not None:
            first = int(series.index.searchsorted(_ts(w.last_sample), side="right"))
        out: pd.Series = series.iloc[first : int(finite[-1]) + 1].astype(float)
        return out

    def _decide(
        self,
        w: Workload,
        now: float,
        series: pd.Series | None,
        current: int,
        data_error: str,
        ready: int | None = None,
    ) -> Decision:
        new = self._new_samples(w, series)
        if not new.empty:
            w.last_sample = float(new.index[-1].timestamp())
        base = decide(now, w.spec, w.state, new, current, ready)
        fresh = (
            not data_error
            and w.last_sample is not None
            and now - w.last_sample <= self.settings.loop.stale_after_seconds
            and not base.fallback
        )
        if fresh:
            if w.fallback:
                self._fallback_ended(w, now)
            w.last_good = base
            if base.forecast is not None:
                w.pending.append(
                    (now, now + w.spec.lead_seconds, base.forecast.quantile(w.spec.risk_quantile))
                )
            return base
        return self._fallback(w, now, base, current, data_error)

    def _fallback(
        self, w: Workload, now: float, base: Decision, current: int, data_error: str
    ) -> Decision:
        fb = w.pa.spec.fallback
        why = data_error or (
            "no load data yet"
            if w.last_sample is None
            else f"newest sample is {now - w.last_sample:.0f}s old"
        )
        if not w.fallback:
            w.fallback = True
            w.missing_since = now
            log_event(
                log,
                "fallback_started",
                f"{w.pa.key}: load data missing ({why}); fallback starts",
                logging.WARNING,
                namespace=w.pa.metadata.namespace,
                workload=w.pa.spec.target_ref.name,
                reason=why,
            )
            self._event(
                w,
                "FallbackStarted",
                f"Load data missing ({why}); holding, then {fb.mode}",
                now,
                "Warning",
            )
        since = w.missing_since if w.missing_since is not None else now
        elapsed = now - since
        spec = w.spec
        if elapsed < fb.hold_seconds and w.last_good is not None:
            replicas = w.last_good.replicas
            how = f"holding the last decision ({replicas}) for {fb.hold_seconds:g}s"
        elif fb.mode == "Static" and fb.static_replicas > 0:
            replicas = fb.static_replicas
            how = f"fallback Static: {replicas} replicas"
        elif fb.mode == "Reactive":
            last = w.state.history.dropna()
            load = float(last.iloc[-1]) if not last.empty else 0.0
            replicas = min(max(replicas_for(load, spec), spec.min_replicas), spec.max_replicas)
            how = f"fallback Reactive: last load {load:.4g}/s needs {replicas}"
        else:
            replicas = current
            how = f"fallback CurrentReplicas: {current}"
        if replicas < current:
            # The one rule that matters most: missing data never scales down.
            how += f"; kept at the {current} running (missing data never scales down)"
            replicas = current
        return Decision(
            workload=spec.key,
            time=now,
            current_replicas=current,
            forecast=base.forecast,
            desired_replicas=replicas,
            replicas=replicas,
            binding_constraint="none",
            reason=f"load data missing ({why}); {how}",
            fallback=True,
        )

    def _fallback_ended(self, w: Workload, now: float) -> None:
        since = w.missing_since or now
        w.fallback = False
        w.missing_since = None
        log_event(
            log,
            "fallback_ended",
            f"{w.pa.key}: load data back after {now - since:.0f}s",
            namespace=w.pa.metadata.namespace,
            workload=w.pa.spec.target_ref.name,
            seconds=round(now - since, 1),
        )
        self._event(
            w, "FallbackEnded", f"Load data is back after {now - since:.0f}s", now, "Normal"
        )

    def _event(self, w: Workload, reason: str, message: str, now: float, kind: str) -> None:
        if not self.is_leader() or self.dry_run:
            return
        try:
            self.cluster.event(
                w.pa, reason, message, now, "Warning" if kind == "Warning" else "Normal"
            )
        except AutoscalerError as err:
            log.warning("event %s on %s failed: %s", reason, w.pa.key, err)

    # ------------------------------------------------------------------ cost guard

    def _load_ledgers(self, leader: bool, when: datetime) -> None:
        """Load the ledgers at start, and again on becoming leader.

        A new leader takes over from what the old one persisted (the file, on a shared
        volume), and for an environment the file lacks, from the spend the old leader
        wrote into the CostBudget status (same month only): a failover loses no spend.
        A corrupt file raises: the spend is never silently reset to zero.
        """
        if self._ledgers_loaded and not (leader and not self._ledgers_leader):
            return
        loaded = dict(self.ledger_store.load())
        for budget in self._budgets:
            if budget.name in loaded:
                continue
            seeded = _ledger_from_status(budget, when)
            if seeded is not None:
                loaded[budget.name] = seeded
        for name, state in self.ledgers.items():
            # Keep what we accrued ourselves if it is further along than the file.
            if name not in loaded or loaded[name].as_of < state.as_of:
                loaded[name] = state
        self.ledgers = loaded
        self._ledgers_loaded = True
        self._ledgers_leader = leader

    def _guard(
        self,
        now: float,
        assignments: Mapping[str, str],
        decisions: dict[str, Decision],
        targets: Mapping[str, TargetInfo | None],
        leader: bool,
    ) -> tuple[list[EnvironmentResult], dict[str, tuple[Decision, int, float, str]]]:
        """Clamp each environment's decisions to its budget; accrue and persist spend."""
        budgets = {b.name: b for b in self._budgets}
        envs: dict[str, list[str]] = {}
        for key, env in assignments.items():
            if env != NO_BUDGET and env in budgets:
                envs.setdefault(env, []).append(key)
        if not envs:
            return [], {}
        when = _dt(now)
        self._load_ledgers(leader, when)
        results: list[EnvironmentResult] = []
        out: dict[str, tuple[Decision, int, float, str]] = {}
        dirty = False
        for env, keys in sorted(envs.items()):
            budget = budgets[env]
            # A target that cannot be read, and never could, has no price: the budget
            # cannot limit what it does not know the cost of, so such a workload is held
            # at what runs until its target can be read (priced at $0 it would escape).
            hold: dict[str, int] = {}
            for key in keys:
                target = targets.get(key)
                if target is not None:
                    self.workloads[key].known_requests = dict(target.requests)
                elif self.workloads[key].known_requests is None:
                    w = self.workloads[key]
                    hold[key] = max(decisions[key].current_replicas, w.spec.min_replicas)
            try:
                request, result = self._allocate(budget, keys, decisions, when, hold)
            except AutoscalerError as err:
                log_event(log, "guard_failed", f"{env}: {err}", logging.ERROR, environment=env)
                continue
            prices = replica_prices(request)
            ledger = self.ledgers.get(env) or LedgerState.start(when)
            ran = {key: t.replicas for key in keys if (t := targets.get(key)) is not None}
            ledger, _note = accrue(ledger, ran, {k: prices[k] for k in ran}, when)
            self.ledgers[env] = ledger
            dirty = True
            spec = budget.spec
            projection = project(
                ledger,
                when,
                [result.hourly_cost],
                spec.monthly_limit,
                spec.alert_thresholds,
            )
            clamped: list[str] = []
            for key, alloc in zip(keys, result.workloads, strict=True):
                d = decisions[key]
                # A hard budget that binds is also the owned HPA's maxReplicas, so nothing
                # can push past the allocation. One that does not bind leaves maxReplicas
                # alone: tracking every allocation would rewrite the HPA each tick and cut
                # through its scale-down stabilisation.
                held = key in hold and alloc.replicas < d.replicas
                binds = alloc.binding_constraint == "budget" or held
                ceiling = (
                    alloc.replicas
                    if spec.mode == "hard" and binds
                    else self.workloads[key].spec.max_replicas
                )
                if held:
                    clamped.append(key)
                    why = (
                        f"held at the {hold[key]} replicas running: the target cannot be"
                        " read, so its price per replica is unknown and the budget cannot"
                        " pay for more; it is priced again once the target can be read"
                    )
                    d = d.clamped(alloc.replicas, "budget", f"{d.reason}; {why}")
                elif alloc.binding_constraint == "budget" and alloc.replicas < d.replicas:
                    clamped.append(key)
                    d = d.clamped(alloc.replicas, "budget", f"{d.reason}; {alloc.reason}")
                out[key] = (d, max(1, ceiling), alloc.hourly_cost, alloc.reason)
            results.append(
                EnvironmentResult(
                    name=spec.environment,
                    budget=env,
                    hourly_cap=result.hourly_cap,
                    hourly_cost=result.hourly_cost,
                    infeasible=result.infeasible,
                    spend=float(ledger.spent) if ledger.month == month_key(when) else 0.0,
                    projection=projection.projected,
                    monthly_limit=spec.monthly_limit,
                    clamped=tuple(clamped),
                    alerts=tuple(result.alerts) + tuple(projection.alerts),
                )
            )
        if dirty and leader:
            try:
                self.ledger_store.save(self.ledgers)
            except OSError as err:
                log_event(log, "ledger_save_failed", str(err), logging.ERROR)
        return results, out

    def _allocate(
        self,
        budget: Budget,
        keys: list[str],
        decisions: Mapping[str, Decision],
        when: datetime,
        hold: Mapping[str, int],
    ) -> tuple[AllocationRequest, AllocationResult]:
        """The allocation request for one environment, and its result.

        Prices come from ``Workload.known_requests`` (refreshed by ``_guard`` from the
        targets read this tick); ``hold`` caps what unpriceable workloads may ask for.
        """
        spec = budget.spec
        ledger = self.ledgers.get(budget.name)
        spent = (
            ledger.spent if ledger is not None and ledger.month == month_key(when) else Decimal(0)
        )
        workloads: list[WorkloadRequest] = []
        for key in keys:
            w = self.workloads[key]
            d = decisions[key]
            tiered = any(
                w.pa.metadata.namespace in t.namespaces or key in t.workloads
                for t in spec.priority_tiers
            )
            priority = (
                spec.priority_of(
                    w.pa.metadata.namespace, w.pa.metadata.name, dict(w.pa.metadata.labels)
                )
                if tiered or not w.pa.spec.priority
                else w.pa.spec.priority
            )
            forecast = None
            if d.forecast is not None and not d.fallback:
                q = w.spec.risk_quantile
                forecast = ForecastRequest(
                    capacity_per_replica=w.spec.capacity_per_replica * w.spec.target_utilization,
                    quantiles={str(k): float(v) for k, v in d.forecast.quantiles.items()}
                    or {str(q): d.forecast.quantile(q)},
                )
            workloads.append(
                WorkloadRequest(
                    name=key,
                    priority=priority,
                    min_replicas=w.spec.min_replicas,
                    max_replicas=max(w.spec.max_replicas, d.replicas),
                    # A fallback decision (never below current) is what the guard clamps;
                    # an unpriceable one (``hold``) asks for no more than what runs.
                    desired_replicas=min(d.replicas, hold.get(key, d.replicas)),
                    requests=dict(w.known_requests or {}),
                    forecast=forecast,
                )
            )
        request = AllocationRequest(
            budget=BudgetRequest(
                hourly_limit=spec.hourly_limit,
                monthly_limit=spec.monthly_limit,
                spent_this_month=float(spent),
                now=when,
                pacing=spec.pacing,
                mode=spec.mode,
            ),
            prices=spec.prices.apply(Prices()) if spec.prices is not None else None,
            node_pools=dict(spec.node_pools),
            workloads=workloads,
        )
        return request, allocate(request, now=when)

    # ------------------------------------------------------------- outputs

    def _publish(self, now: float, results: list[WorkloadResult]) -> None:
        values = [
            MetricValue(
                namespace=r.namespace,
                name=METRIC_NAME,
                labels=metric_labels(self.workloads[r.key].pa),
                value=r.served,
                timestamp=now,
            )
            for r in results
            if r.mode == "Active"
        ]
        # replace_all: a deleted autoscaler (or one switched to ForecastOnly) stops being served.
        self.store.publish(values, replace_all=True)
        self.metrics.store_last_update.set(now)

    def _record_shadow(self, results: list[WorkloadResult], errors: list[str]) -> None:
        shadow = [r for r in results if r.mode == "ForecastOnly"]
        if not shadow or self.dry_run:
            return
        try:
            self.shadow.record(shadow)
        except OSError as err:
            errors.append(f"shadow record: {err}")

    def _write(
        self,
        now: float,
        results: list[WorkloadResult],
        envs: list[EnvironmentResult],
        errors: list[str],
    ) -> None:
        """Leader-only Kubernetes writes; each failure is logged and the rest go on."""
        resync = self.settings.loop.resync_seconds
        for r in results:
            w = self.workloads[r.key]
            try:
                # Writes are skipped when nothing that matters changed, with a full
                # resync every ``resync_seconds``: 1,000 autoscalers must not cost
                # 2,000 API requests per tick (client-go's default budget is 5 QPS).
                if (
                    self.settings.loop.manage_hpas
                    and r.mode == "Active"
                    and (
                        w.hpa_written is None
                        or w.hpa_written[0] != r.ceiling
                        or now - w.hpa_written[1] >= resync
                    )
                ):
                    self.cluster.ensure_hpa(w.pa, r.ceiling)
                    w.hpa_written = (r.ceiling, now)
                d = r.decision
                essentials = (
                    d.replicas,
                    d.desired_replicas,
                    d.binding_constraint,
                    d.fallback,
                    r.ceiling,
                    r.current_replicas,
                    w.pa.metadata.generation,
                )
                if (
                    w.status_written is None
                    or w.status_written[0] != essentials
                    or now - w.status_written[1] >= self.settings.loop.status_interval_seconds
                ):
                    self.cluster.patch_status(w.pa, self._status(w, r, now))
                    w.status_written = (essentials, now)
            except AutoscalerError as err:
                errors.append(f"write {r.key}: {err}")
                log_event(log, "kube_error", f"{r.key}: {err}", logging.WARNING, workload=r.key)
            clamped = r.decision.binding_constraint == "budget"
            if clamped != w.budget_clamped:
                w.budget_clamped = clamped
                self._event(
                    w,
                    "BudgetClampStarted" if clamped else "BudgetClampEnded",
                    r.budget_reason or "within budget again",
                    now,
                    "Warning" if clamped else "Normal",
                )
        for env in envs:
            status = CostBudgetStatus(
                spend_dollars=round(env.spend, 6),
                projection_dollars=round(env.projection, 6),
                hourly_cost_dollars=round(env.hourly_cost, 6),
                infeasible=env.infeasible,
                clamped_workloads=list(env.clamped),
                last_update_time=rfc3339(now),
                conditions=[
                    Condition(
                        type="OverBudget",
                        status="True" if env.clamped or env.infeasible else "False",
                        reason="Clamped" if env.clamped else "WithinBudget",
                        message="; ".join(env.alerts)[:1000],
                        last_transition_time=rfc3339(now),
                    )
                ],
            )
            try:
                self.cluster.patch_budget_status(env.budget, status)
            except AutoscalerError as err:
                errors.append(f"write CostBudget {env.budget}: {err}")

    def _status(self, w: Workload, r: WorkloadResult, now: float) -> PredictiveAutoscalerStatus:
        d = r.decision
        stamp = rfc3339(now)
        return PredictiveAutoscalerStatus(
            observed_generation=w.pa.metadata.generation,
            last_decision_time=stamp,
            current_replicas=r.current_replicas,
            desired_replicas=d.desired_replicas,
            replicas=d.replicas,
            served_value=r.served,
            forecast_load=round(r.forecast_load or 0.0, 6),
            risk_quantile=r.risk_quantile,
            forecaster=r.model,
            binding_constraint=d.binding_constraint,
            reason=d.reason[:1000],
            fallback_active=d.fallback,
            budget_ceiling=r.ceiling,
            conditions=[
                Condition(
                    type="Ready",
                    status="True",
                    reason="Serving" if r.mode == "Active" else "ForecastOnly",
                    message=f"{d.replicas} replicas ({d.binding_constraint})",
                    last_transition_time=stamp,
                ),
                Condition(
                    type="Fallback",
                    status="True" if d.fallback else "False",
                    reason="DataMissing" if d.fallback else "DataFresh",
                    message=d.reason[:500] if d.fallback else "",
                    last_transition_time=stamp,
                ),
            ],
        )

    def _observe_metrics(
        self, now: float, results: list[WorkloadResult], envs: list[EnvironmentResult]
    ) -> None:
        m = self.metrics
        m.is_leader.set(1 if self.is_leader() else 0)
        for r in results:
            d = r.decision
            labels = (r.namespace, r.target)
            if r.forecast_load is not None:
                m.forecast_load.labels(*labels, f"{r.risk_quantile:g}").set(r.forecast_load)
            if r.observed_load is not None:
                m.observed_load.labels(*labels).set(r.observed_load)
            m.desired_replicas.labels(*labels).set(d.desired_replicas)
            m.served_replicas.labels(*labels).set(d.replicas)
            m.current_replicas.labels(*labels).set(r.current_replicas)
            m.fallback_active.labels(*labels).set(1 if d.fallback else 0)
            constraint = "fallback" if d.fallback else d.binding_constraint
            if constraint != "none":
                m.clamps.labels(*labels, constraint).inc()
                log_event(
                    log,
                    "clamp",
                    f"{r.key}: {constraint}: {d.reason}",
                    namespace=r.namespace,
                    workload=r.target,
                    constraint=constraint,
                    desired=d.desired_replicas,
                    replicas=d.replicas,
                    current=r.current_replicas,
                )
            self._forecast_error(self.workloads[r.key], now)
        for env in envs:
            name = env.name
            m.budget_spend.labels(name).set(env.spend)
            m.budget_projection.labels(name).set(env.projection)
            if env.monthly_limit is not None:
                m.budget_monthly_limit.labels(name).set(env.monthly_limit)
            if env.hourly_cap is not None:
                m.budget_hourly_cap.labels(name).set(env.hourly_cap)
            m.budget_hourly_cost.labels(name).set(env.hourly_cost)
            m.budget_infeasible.labels(name).set(1 if env.infeasible else 0)

    def _forecast_error(self, w: Workload, now: float) -> None:
        """Score forecasts whose lead window has passed: (observed peak - f) / f."""
        hist = w.state.history
        while w.pending and w.pending[0][1] <= now:
            made, due, forecast = w.pending.popleft()
            if hist.empty or hist.index[-1] < _ts(due) or forecast <= 0:
                continue
            window = hist[(hist.index > _ts(made)) & (hist.index <= _ts(due))].dropna()
            if window.empty:
                continue
            ratio = (float(window.max()) - forecast) / forecast
            self.metrics.forecast_error_ratio.labels(
                w.pa.metadata.namespace, w.pa.spec.target_ref.name
            ).set(ratio)

    # ------------------------------------------------------------------ helpers

    def explain(self, key: str) -> str:
        """Why ``key`` (namespace/name) has its replica count, from the last reconcile."""
        report = self.last_report
        r = report.by_key().get(key) if report is not None else None
        if r is None:
            known = ", ".join(sorted(self.workloads)) or "none"
            return f"{key}: no such PredictiveAutoscaler (known: {known})"
        return explain_text(r, report.environments if report else ())


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
