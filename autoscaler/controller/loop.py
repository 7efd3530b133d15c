"""The reconcile loop: Prometheus in, decisions out, written where the cluster sees them.

Every ``loop.sync_seconds`` (15 s) on its own thread, with an injected clock:

1. read the PredictiveAutoscalers and CostBudgets (``Cluster``);
2. fetch load history (``autoscaler.controller.history``): one batched query per
   distinct query; the first tick backfills, so the loop never starts cold;
3. read each target's replicas, Ready replicas and requests;
4. ``policies.tick.plan_tick``: decide, fallback, cost guard, served values (the whole
   decision, pure; the simulator runs this same loop);
5. one ``DecisionStore.publish(..., replace_all=True)`` for every ``Active`` workload;
   ``ForecastOnly`` workloads are recorded, never served;
6. Kubernetes writes (``autoscaler.controller.writer``), the spend ledger persisted
   atomically, Events: only while this instance leads, asked before every write;
7. metrics and structured logs; every clamp is a log line and a counter increment.

A ledger file that cannot be read stops only the cost guard: budgeted workloads hold
their last allocation, the rest is served as usual, and
``autoscaler_cost_guard_unavailable`` says why (alert ``AutoscalerCostGuardUnavailable``).
Nothing here blocks the API: the store swaps a snapshot and readers never wait.

Callers: ``autoscaler.cli.run`` (``run``, ``--once``, ``explain``), the simulator's
controller adapter (``autoscaler.cli.simworld``), the benchmarks.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
import pandas as pd

from autoscaler.clock import Clock
from autoscaler.controller.explain import explain_text
from autoscaler.controller.history import History
from autoscaler.controller.learning import (
    Learner,
    Learnt,
    capacity_in_use,
    lead_in_use,
    needs_learning,
)
from autoscaler.controller.results import ReconcileReport, WorkloadResult
from autoscaler.controller.shadow import ShadowRecorder
from autoscaler.controller.workload import Workload, scaling_spec
from autoscaler.controller.writer import Writer
from autoscaler.kube.cluster import Cluster
from autoscaler.kube.hpa import METRIC_NAME, metric_labels
from autoscaler.logging import log_event
from autoscaler.metrics import ControllerMetrics
from autoscaler.settings import ControllerSettings
from autoscaler.sources.base import MetricSource
from autoscaler.store import MetricValue
from models.common import unix_seconds
from models.errors import AutoscalerError
from policies.decision import ScalingSpec
from policies.ledger import LedgerState, month_key
from policies.objects import Budget, PredictiveAutoscaler, TargetInfo
from policies.tick import (
    NO_BUDGET,
    EnvironmentResult,
    Observation,
    TickPlan,
    environment_of,
    plan_tick,
)

LOG = logging.getLogger("autoscaler.controller")


class LedgerBackend(Protocol):
    """Where the spend ledgers persist (``autoscaler.ledger_store.LedgerStore``)."""

    def load(self) -> dict[str, LedgerState]: ...

    def save(self, ledgers: dict[str, LedgerState]) -> None: ...


class Store(Protocol):
    """Where served values go (``autoscaler.store.DecisionStore``)."""

    def publish(self, values: list[MetricValue], replace_all: bool = False) -> None: ...


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


#: recent samples kept per workload for scoring forecasts (a lead window's worth).
_RECENT = 2048


@dataclass(frozen=True)
class _Gauges:
    """A workload's gauge children, looked up once."""

    labels: tuple[str, str]
    quantile: str
    forecast_load: Any
    observed_load: Any
    desired_replicas: Any
    served_replicas: Any
    current_replicas: Any
    fallback_active: Any


class Controller:
    """The reconcile loop. Thread-safety: one thread calls ``reconcile``; readers use
    ``last_report`` (an immutable object swapped whole)."""

    def __init__(
        self,
        settings: ControllerSettings,
        source: MetricSource,
        cluster: Cluster,
        store: Store,
        clock: Clock,
        metrics: ControllerMetrics | None = None,
        ledger: LedgerBackend | None = None,
        is_leader: Callable[[], bool] = lambda: True,
        dry_run: bool = False,
        log: logging.Logger = LOG,
    ) -> None:
        from autoscaler.ledger_store import LedgerStore

        #: where the loop logs (the simulator hands in a quiet logger of its own).
        self.log = log
        self.settings = settings
        self.source = source
        self.cluster = cluster
        self.store = store
        self.clock = clock
        self.metrics = metrics or ControllerMetrics()
        self.ledger_store: LedgerBackend = (
            ledger if ledger is not None else LedgerStore(settings.ledger.path)
        )
        self.is_leader = is_leader
        self.dry_run = dry_run
        self.history = History(settings, source, log)
        learning = settings.learning
        self.learner = Learner(
            source,
            interval_seconds=learning.interval_seconds,
            retry_seconds=learning.retry_seconds,
            window_seconds=learning.window_seconds,
            step_seconds=settings.prometheus.step_seconds,
            max_per_tick=learning.max_per_tick,
            log=log,
            pod_startups=cluster.pod_startups,
        )
        # Through a lambda: ``autoscaler run`` swaps ``is_leader`` for the elector's.
        self.writer = Writer(settings, cluster, lambda: self.is_leader(), dry_run, log)
        self.shadow = ShadowRecorder(settings.shadow.path, settings.shadow.max_bytes)
        self.workloads: dict[str, Workload] = {}
        self.ledgers: dict[str, LedgerState] = {}
        self._ledgers_loaded = False
        self._ledgers_leader = False
        self._autoscalers: list[PredictiveAutoscaler] = []
        self._budgets: list[Budget] = []
        #: recent (stamp, value) samples per workload, to score forecasts.
        self._recent: dict[str, deque[tuple[float, float]]] = {}
        self._children: dict[str, _Gauges] = {}
        #: (autoscalers, budgets, assignments) of the last sync, reused while the cluster
        #: hands back the very same lists.
        self._assigned: tuple[object, object, dict[str, str]] | None = None
        self.last_report: ReconcileReport | None = None
        self.last_plan: TickPlan | None = None

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event) -> None:
        """Reconcile every ``sync_seconds`` until ``stop`` is set; never raises."""
        period = self.settings.loop.sync_seconds
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.reconcile()
            except Exception:  # a bug must not kill the loop: log it, try again next tick
                self.log.exception("reconcile failed")
            stop.wait(max(0.0, period - (time.monotonic() - started)))

    def reconcile(self) -> ReconcileReport:
        """One tick: read, fetch, decide, guard, publish, write. Returns what it did."""
        started = time.perf_counter()
        now = self.clock.now()
        leader = self.is_leader() and not self.dry_run
        errors: list[str] = []
        self._refresh_objects(errors)
        assignments = self._sync_workloads()
        data, data_errors, queries = self.history.fetch(now, self.workloads)
        if not self.history.fetched_cold:  # a first fetch is enough work for one tick
            queries += self.history.backfill_older(now, self.workloads)
        targets = self._targets(errors)
        observations = {
            key: Observation(
                series=data.get(key),
                series_count=self.history.counts.get(key),
                data_error=data_errors.get(key, ""),
                target=targets.get(key),
                current=self._current(w, targets.get(key)),
            )
            for key, w in self.workloads.items()
        }
        ledger_error = ""
        if any(env != NO_BUDGET for env in assignments.values()):
            ledger_error = self._load_ledgers(leader, datetime.fromtimestamp(now, UTC))
            if ledger_error:
                errors.append(ledger_error)
        plan = plan_tick(
            now,
            self.workloads,
            observations,
            assignments,
            self._budgets,
            self.ledgers,
            self.settings.loop.stale_after_seconds,
            ledger_error,
        )
        self.last_plan = plan
        results = [self._result(key, w, plan) for key, w in self.workloads.items()]
        # After the decision (what is learnt applies from the next tick), and not on a
        # tick that fetched cold: a first fetch is enough work for one tick.
        if not self.history.fetched_cold:
            self._learn(now)
        self._log_events(plan)
        self._publish(now, results)
        if leader:  # one writer for the shared file; followers would duplicate records
            if self.writer.may_write():
                self._record_shadow(results, errors)
            self.writer.events(now, plan.events, self.workloads)
            self.writer.write(now, results, plan.environments, self.workloads, errors)
            if plan.ledgers_changed and self.writer.may_write():
                try:
                    self.ledger_store.save(self.ledgers)
                except OSError as err:
                    log_event(self.log, "ledger_save_failed", str(err), logging.ERROR)
        if self.metrics.enabled:
            self._remember(data)
            self._observe_metrics(now, results, plan.environments)
        duration = time.perf_counter() - started
        if self.metrics.enabled:
            self.metrics.reconcile_duration.observe(duration)
        report = ReconcileReport(
            time=now,
            duration_seconds=duration,
            queries=queries,
            workloads=tuple(results),
            environments=tuple(plan.environments),
            errors=tuple(errors),
            leader=leader,
        )
        if self.log.isEnabledFor(logging.INFO):
            log_event(
                self.log,
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

    def _result(self, key: str, w: Workload, plan: TickPlan) -> WorkloadResult:
        p = plan.workloads[key]
        decision = p.decision
        forecast = decision.forecast
        q = w.spec.risk_quantile
        result = WorkloadResult(
            key=key,
            namespace=w.pa.metadata.namespace,
            name=w.pa.metadata.name,
            target=w.pa.spec.target_ref.name,
            mode=w.pa.spec.mode,
            environment=p.environment,
            decision=decision,
            current_replicas=decision.current_replicas,
            served=p.served,
            observed_load=p.observed_load,
            forecast_load=None if forecast is None else forecast.quantile(q),
            risk_quantile=q,
            model=forecast.model if forecast is not None else "",
            ceiling=p.ceiling,
            hourly_cost=p.hourly_cost,
            budget_reason=p.budget_reason,
            data_error=p.data_error,
            lead_seconds=w.spec.lead_seconds,
            per_replica=(w.spec.capacity_per_replica or 0.0) * w.spec.target_utilization,
            capacity=w.capacity_use,
            lead_time=w.lead_use,
        )
        w.result = result
        if forecast is not None and not decision.fallback and result.forecast_load is not None:
            w.pending.append(
                (decision.time, decision.time + w.spec.lead_seconds, result.forecast_load)
            )
        return result

    def _log_events(self, plan: TickPlan) -> None:
        for ev in plan.events:
            w = self.workloads.get(ev.key)
            ns, target = (w.pa.metadata.namespace, w.pa.spec.target_ref.name) if w else ("", "")
            if ev.reason == "FallbackStarted":
                log_event(
                    self.log,
                    "fallback_started",
                    f"{ev.key}: {ev.message}",
                    logging.WARNING,
                    namespace=ns,
                    workload=target,
                )
            elif ev.reason == "FallbackEnded":
                log_event(
                    self.log,
                    "fallback_ended",
                    f"{ev.key}: {ev.message}",
                    namespace=ns,
                    workload=target,
                )

    # ---------------------------------------------------------- objects and data

    def _refresh_objects(self, errors: list[str]) -> None:
        """Re-read the objects; on an API failure keep the last known ones."""
        try:
            self._autoscalers = self.cluster.list_autoscalers()
        except AutoscalerError as err:
            errors.append(f"list PredictiveAutoscalers: {err}")
            log_event(self.log, "kube_error", str(err), logging.WARNING, call="list_autoscalers")
        try:
            self._budgets = self.cluster.list_budgets()
        except AutoscalerError as err:
            errors.append(f"list CostBudgets: {err}")
            log_event(self.log, "kube_error", str(err), logging.WARNING, call="list_budgets")

    def _sync_workloads(self) -> dict[str, str]:
        """Add new autoscalers, update changed ones, forget deleted ones.

        Returns workload key -> environment (CostBudget name, or ``NO_BUDGET``).
        """
        if (
            self._assigned is not None
            and self._assigned[0] is self._autoscalers
            and self._assigned[1] is self._budgets
        ):
            return self._assigned[2]  # the very same lists (an informer's cache): no change
        seen: set[str] = set()
        for pa in self._autoscalers:
            key = pa.key
            seen.add(key)
            w = self.workloads.get(key)
            if w is not None and w.pa is pa:
                continue  # the very object of the last tick: nothing changed
            learnt: Learnt | None = None
            if needs_learning(pa):
                learnt = (w.learnt if w is not None else None) or Learnt()
            spec = self._spec(pa, learnt)
            if w is None:
                w = self.workloads[key] = Workload(pa=pa, spec=spec)
            else:
                if spec.model != w.spec.model:
                    w.state.forecaster = None  # a different model: refit at once
                w.pa, w.spec = pa, spec
            w.learnt = learnt
            self._knobs_in_use(w)
            w.metric_labels = metric_labels(pa)
        for key in [k for k in self.workloads if k not in seen]:
            gone = self.workloads.pop(key)
            self._recent.pop(key, None)
            self._children.pop(key, None)
            self.metrics.forget(gone.pa.metadata.namespace, gone.pa.spec.target_ref.name)
            log_event(
                self.log, "workload_removed", f"{key} deleted; no longer served", workload=key
            )
        assignments = {key: self._environment(w.pa) for key, w in self.workloads.items()}
        self._assigned = (self._autoscalers, self._budgets, assignments)
        return assignments

    def _spec(self, pa: PredictiveAutoscaler, learnt: Learnt | None) -> ScalingSpec:
        loop = self.settings.loop
        return scaling_spec(
            pa,
            loop.refit_seconds,
            loop.fallback_model,
            self.settings.prometheus.backfill_seconds,
            learnt,
        )

    def _knobs_in_use(self, w: Workload) -> None:
        """Record (and export) the capacity and lead time the spec now uses."""
        capacity, lead = capacity_in_use(w.pa, w.learnt), lead_in_use(w.pa, w.learnt)
        if (capacity, lead) == (w.capacity_use, w.lead_use):
            return
        if self.metrics.enabled:
            self.metrics.export_knobs(
                w.pa.metadata.namespace, w.pa.spec.target_ref.name, capacity, lead
            )
        w.capacity_use, w.lead_use = capacity, lead

    def _learn(self, now: float) -> None:
        """Calibrate the workloads whose learning is due (at most ``max_per_tick``).

        A workload is first calibrated right after the first tick that took load
        history, then every ``learning.interval_seconds`` (``retry_seconds`` while the
        capacity could not be learnt). A few float comparisons per workload otherwise.
        """
        left = self.settings.learning.max_per_tick
        for w in self.workloads.values():
            learnt = w.learnt
            if learnt is None:
                continue
            if learnt.next_at is None:
                if w.last_sample is None:
                    continue  # no history yet: the first calibration waits for it
            elif now < learnt.next_at:
                continue
            if left <= 0:
                break
            left -= 1
            self.learner.calibrate(now, w.pa, w.state.history, learnt)
            w.spec = self._spec(w.pa, learnt)
            self._knobs_in_use(w)

    def _environment(self, pa: PredictiveAutoscaler) -> str:
        return environment_of(pa, self._budgets)

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

    # ------------------------------------------------------------------ ledgers

    def _load_ledgers(self, leader: bool, when: datetime) -> str:
        """Load the ledgers at start, and again on becoming leader; "" or why not.

        A new leader takes over from what the old one persisted (the file, on a shared
        volume), and for an environment the file lacks, from the spend the old leader
        wrote into the CostBudget status (same month only): a failover loses no spend.
        A corrupt file is never read as zero spend and never overwritten: the cost
        guard stops (its workloads hold their last allocation) until it can be read.
        """
        if self._ledgers_loaded and not (leader and not self._ledgers_leader):
            return ""
        try:
            loaded = dict(self.ledger_store.load())
        except AutoscalerError as err:
            log_event(self.log, "ledger_unreadable", str(err), logging.ERROR)
            return f"ledger unreadable: {err}"
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
        return ""

    # ------------------------------------------------------------- outputs

    def _publish(self, now: float, results: list[WorkloadResult]) -> None:
        values = [
            MetricValue(
                namespace=r.namespace,
                name=METRIC_NAME,
                labels=self.workloads[r.key].metric_labels,
                value=r.served,
                timestamp=now,
            )
            for r in results
            if r.mode == "Active"
        ]
        # replace_all: a deleted autoscaler (or one switched to ForecastOnly) stops being served.
        self.store.publish(values, replace_all=True)
        if self.metrics.enabled:
            self.metrics.store_last_update.set(now)

    def _record_shadow(self, results: list[WorkloadResult], errors: list[str]) -> None:
        shadow = [r for r in results if r.mode == "ForecastOnly"]
        if not shadow or self.dry_run:
            return
        try:
            self.shadow.record(shadow)
        except OSError as err:
            errors.append(f"shadow record: {err}")

    def _remember(self, data: dict[str, pd.Series]) -> None:
        """Keep the newest samples of each workload for scoring its forecasts."""
        for key, series in data.items():
            if series.empty:
                continue
            recent = self._recent.setdefault(key, deque(maxlen=_RECENT))
            stamps = unix_seconds(series.index)
            values = series.to_numpy(dtype=float)
            first = int(np.searchsorted(stamps, recent[-1][0], side="right")) if recent else 0
            for s, v in zip(stamps[first:].tolist(), values[first:].tolist(), strict=True):
                if math.isfinite(v):
                    recent.append((s, v))

    def _observe_metrics(
        self, now: float, results: list[WorkloadResult], envs: list[EnvironmentResult]
    ) -> None:
        m = self.metrics
        m.is_leader.set(1 if self.is_leader() else 0)
        step = float(self.settings.prometheus.step_seconds)
        for r in results:
            d = r.decision
            labels = (r.namespace, r.target)
            g = self._gauges(r, labels)
            if r.forecast_load is not None:
                g.forecast_load.set(r.forecast_load)
            median = None if d.forecast is None else d.forecast.quantiles.get(m.MEDIAN)
            if median is not None:  # the band's middle: the panel draws q0.5 to the risk q
                m.forecast_load.labels(*labels, f"{m.MEDIAN:g}").set(median)
            if r.observed_load is not None:
                g.observed_load.set(r.observed_load)
            g.desired_replicas.set(d.desired_replicas)
            g.served_replicas.set(d.replicas)
            g.current_replicas.set(r.current_replicas)
            g.fallback_active.set(1 if d.fallback else 0)
            constraint = "fallback" if d.fallback else d.binding_constraint
            if constraint != "none":
                budget = r.environment if r.environment != NO_BUDGET else m.NO_ENVIRONMENT
                m.clamps.labels(*labels, constraint, budget).inc()
                if self.log.isEnabledFor(logging.INFO):
                    log_event(
                        self.log,
                        "clamp",
                        f"{r.key}: {constraint}: {d.reason}",
                        namespace=r.namespace,
                        workload=r.target,
                        constraint=constraint,
                        desired=d.desired_replicas,
                        replicas=d.replicas,
                        current=r.current_replicas,
                    )
            self._forecast_error(self.workloads[r.key], now, step)
        for env in envs:
            name = env.name
            m.cost_guard_unavailable.labels(name).set(1 if env.error else 0)
            if env.error:
                continue
            m.budget_spend.labels(name).set(env.spend)
            m.budget_projection.labels(name).set(env.projection)
            if env.monthly_limit is not None:
                m.budget_monthly_limit.labels(name).set(env.monthly_limit)
            if env.hourly_cap is not None:
                m.budget_hourly_cap.labels(name).set(env.hourly_cap)
            m.budget_hourly_cost.labels(name).set(env.hourly_cost)
            m.budget_infeasible.labels(name).set(1 if env.infeasible else 0)

    def _gauges(self, r: WorkloadResult, labels: tuple[str, str]) -> _Gauges:
        """One workload's gauge children (looking them up by labels costs microseconds
        each, eight times per workload per tick)."""
        q = f"{r.risk_quantile:g}"
        g = self._children.get(r.key)
        if g is None or g.labels != labels or g.quantile != q:
            m = self.metrics
            g = _Gauges(
                labels,
                q,
                m.forecast_load.labels(*labels, q),
                m.observed_load.labels(*labels),
                m.desired_replicas.labels(*labels),
                m.served_replicas.labels(*labels),
                m.current_replicas.labels(*labels),
                m.fallback_active.labels(*labels),
            )
            self._children[r.key] = g
        return g

    def _forecast_error(self, w: Workload, now: float, step: float) -> None:
        """Score forecasts whose lead window has been observed: (observed peak - f) / f.

        A forecast made at ``t`` for ``(t, t + lead]`` is scored once the samples cover
        that window (the newest sample's interval reaches its end), which on a live
        clock is a scrape or two after ``t + lead``; one whose window never gets covered
        (data stopped) is dropped after the stale limit.
        """
        recent = self._recent.get(w.key)
        newest = recent[-1][0] + step if recent else -np.inf
        give_up = self.settings.loop.stale_after_seconds
        while w.pending and w.pending[0][1] <= now:
            made, due, forecast = w.pending[0]
            if newest < due:
                if now - due > give_up:
                    w.pending.popleft()
                    continue
                break
            w.pending.popleft()
            if forecast <= 0 or recent is None:
                continue
            peak = -math.inf
            for s, v in reversed(recent):  # the window is the newest few samples
                if s <= made:
                    break
                if s <= due and v > peak:
                    peak = v
            if peak == -math.inf:
                continue
            ratio = (peak - forecast) / forecast
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
