"""Learning what users cannot know: capacity per replica and lead time.

A PredictiveAutoscaler may omit ``capacityPerReplica`` and ``leadTimeSeconds``. For
such a workload the controller calibrates on a schedule (once as soon as it has load
history, then every ``learning.interval_seconds``; sooner, every
``learning.retry_seconds``, while nothing could be learnt) through the metric source it
already has: ``autoscaler.sources.cluster_metrics.calibrate_workload`` with the load
history the loop already holds (no extra load query), so only the cAdvisor and
kube-state-metrics series are fetched. Calibrations run after the tick's decision, at
most ``learning.max_per_tick`` per tick; a learnt value applies from the next tick.

The pure decision path never sees where a value came from: ``scaling_spec`` lays the
learnt values into the ``ScalingSpec``, and a capacity that is neither given nor
learnt is ``None`` there (``decide`` then holds the replicas running and says why).

Callers: ``autoscaler.controller.loop``, ``.workload`` (``scaling_spec``), ``.writer``
(status), ``.explain``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from autoscaler.logging import log_event
from autoscaler.sources.base import MetricSource
from autoscaler.sources.cluster_metrics import WorkloadRef, calibrate_workload
from models.calibration import lead_time_seconds, startup_stats
from models.errors import AutoscalerError, InputError
from policies.knobs import DEFAULT_LEAD_SECONDS
from policies.objects import PredictiveAutoscaler, TargetRef

Source = Literal["spec", "learnt", "default", "none"]


@dataclass(frozen=True)
class KnobInUse:
    """A value the decision uses, where it came from, and how sure we are of it."""

    value: float | None
    source: Source
    #: the interval of a learnt capacity (its ``level``, 95 % by default).
    low: float | None = None
    high: float | None = None
    #: a learnt value's basis, or why there is none yet.
    detail: str = ""


@dataclass
class Learnt:
    """What calibration learnt about one workload (mutable, one per Workload)."""

    capacity: float | None = None
    low: float | None = None
    high: float | None = None
    level: float = 0.95
    #: change points in the capacity fit's window (a release that moved it).
    changes: int = 0
    lead_seconds: float | None = None
    lead_detail: str = ""
    #: unix time of the last calibration that learnt the capacity / ran at all.
    capacity_at: float | None = None
    attempted_at: float | None = None
    #: why the capacity could not be learnt at the last attempt ("" when it was).
    capacity_note: str = ""
    #: when the next calibration is due (None: at the first tick with load history).
    next_at: float | None = None
    attempts: int = 0


def needs_learning(pa: PredictiveAutoscaler) -> bool:
    """Whether the spec leaves anything for the controller to learn."""
    return pa.spec.capacity_per_replica is None or pa.spec.lead_time_seconds is None


def capacity_in_use(pa: PredictiveAutoscaler, learnt: Learnt | None) -> KnobInUse:
    given = pa.spec.capacity_per_replica
    if given is not None:
        return KnobInUse(given, "spec")
    if learnt is not None and learnt.capacity is not None:
        detail = f"{learnt.level:.0%} interval; {learnt.changes} change points in the window"
        if learnt.capacity_note:
            detail += f"; last attempt: {learnt.capacity_note}"
        return KnobInUse(learnt.capacity, "learnt", learnt.low, learnt.high, detail)
    return KnobInUse(None, "none", detail=pending_note(learnt))


def lead_in_use(pa: PredictiveAutoscaler, learnt: Learnt | None) -> KnobInUse:
    given = pa.spec.lead_time_seconds
    if given is not None:
        return KnobInUse(given, "spec")
    if learnt is not None and learnt.lead_seconds is not None:
        return KnobInUse(learnt.lead_seconds, "learnt", detail=learnt.lead_detail)
    return KnobInUse(
        DEFAULT_LEAD_SECONDS, "default", detail=learnt.lead_detail if learnt is not None else ""
    )


#: a range selector (not a subquery's ``[1h:5m]``): ``rate(x[2m])`` -> ``2m``.
_RANGE = re.compile(r"\[\s*((?:\d+(?:ms|s|m|h|d|w|y))+)\s*\]")


def load_rate_window(query: str, default: str = "5m") -> str:
    """The rate window of the PA's load query, for the CPU rate of the calibration.

    CPU and load must be smoothed alike: regressing a 5-minute CPU rate on a 2-minute
    load rate attenuates the slope (the load's extra noise is not in the CPU), and
    the capacity comes out ~15 % high (measured on tests/calibsynth.py's workload).
    A query with no range, or several different ones, gets ``default``.
    """
    found = set(_RANGE.findall(query))
    return found.pop() if len(found) == 1 else default


def pending_note(learnt: Learnt | None) -> str:
    """Why there is no learnt capacity yet (the decision's reason quotes it)."""
    if learnt is None or learnt.attempted_at is None:
        return "calibration runs once the load history is in"
    return learnt.capacity_note or "calibration pending"


class Learner:
    """Runs the scheduled calibrations of the workloads that need them."""

    def __init__(
        self,
        source: MetricSource,
        *,
        interval_seconds: float,
        retry_seconds: float,
        window_seconds: float,
        step_seconds: int,
        max_per_tick: int,
        log: logging.Logger,
        pod_startups: Callable[[str, TargetRef], list[tuple[float, float]]] | None = None,
    ) -> None:
        #: the start-up's fallback source: the target's pods' conditions (the cluster).
        self.pod_startups = pod_startups
        self.source = source
        self.interval_seconds = interval_seconds
        self.retry_seconds = retry_seconds
        self.window_seconds = window_seconds
        self.step_seconds = step_seconds
        self.max_per_tick = max_per_tick
        self.log = log

    def calibrate(
        self, now: float, pa: PredictiveAutoscaler, history: pd.Series, learnt: Learnt
    ) -> bool:
        """One calibration of ``pa`` at ``now`` on its held load history; True when the
        values in use changed. Never raises: a failure is kept as the reason."""
        learnt.attempted_at = now
        learnt.attempts += 1
        before = (learnt.capacity, learnt.low, learnt.high, learnt.lead_seconds)
        kind = pa.spec.target_ref.kind.lower()
        ns, name = pa.metadata.namespace, pa.spec.target_ref.name
        ok = False
        if history.dropna().empty:
            learnt.capacity_note = "no load history yet"
        elif kind not in ("deployment", "statefulset"):
            learnt.capacity_note = f"cannot calibrate a {pa.spec.target_ref.kind}"
        else:
            try:
                cal = calibrate_workload(
                    self.source,
                    WorkloadRef(ns, kind, name),  # type: ignore[arg-type]
                    history,
                    end=now,
                    window_seconds=self.window_seconds,
                    step_seconds=self.step_seconds,
                    rate_window=load_rate_window(pa.spec.query),
                )
            except AutoscalerError as err:
                learnt.capacity_note = f"calibration failed: {err}"
            else:
                if cal.capacity is not None:
                    final = cal.capacity.final
                    learnt.capacity, learnt.low, learnt.high = final.capacity, final.low, final.high
                    learnt.level = cal.capacity.level
                    learnt.changes = len(cal.capacity.changes)
                    learnt.capacity_at = now
                    learnt.capacity_note = ""
                    ok = True
                else:
                    learnt.capacity_note = _why(cal.capacity_error)
                if cal.lead_time_seconds is not None:
                    learnt.lead_seconds = cal.lead_time_seconds
                    p90 = cal.startup.p90 if cal.startup is not None else float("nan")
                    pods = cal.startup.pods if cal.startup is not None else 0
                    learnt.lead_detail = f"start-up p90 {p90:.0f}s over {pods} pods + one sync"
                else:
                    learnt.lead_detail = _why(cal.startup_error)
                    self._lead_from_pods(pa, learnt)
        needs_capacity = pa.spec.capacity_per_replica is None
        done = ok or not needs_capacity
        learnt.next_at = now + (self.interval_seconds if done else self.retry_seconds)
        after = (learnt.capacity, learnt.low, learnt.high, learnt.lead_seconds)
        if ok:
            log_event(
                self.log,
                "capacity_learnt",
                f"{pa.key}: capacity {learnt.capacity:.4g}/s per replica"
                f" [{learnt.low:.4g}, {learnt.high:.4g}]",
                namespace=ns,
                workload=name,
                capacity=learnt.capacity,
                low=learnt.low,
                high=learnt.high,
                lead_seconds=learnt.lead_seconds,
            )
        elif needs_capacity:
            log_event(
                self.log,
                "capacity_not_learnt",
                f"{pa.key}: {learnt.capacity_note}",
                logging.WARNING if learnt.attempts > 1 else logging.INFO,
                namespace=ns,
                workload=name,
            )
        return after != before

    def _lead_from_pods(self, pa: PredictiveAutoscaler, learnt: Learnt) -> None:
        """No start-up series in Prometheus: the pods' conditions from the API instead."""
        if self.pod_startups is None:
            return
        try:
            pairs = self.pod_startups(pa.metadata.namespace, pa.spec.target_ref)
            stats = startup_stats(pairs, where="pod conditions")
            learnt.lead_seconds = lead_time_seconds(stats.p90)
        except AutoscalerError as err:
            learnt.lead_detail += f"; pod conditions: {err}"
            return
        learnt.lead_detail = (
            f"start-up p90 {stats.p90:.0f}s over {stats.pods} pods (from their Ready"
            " conditions: kube-state-metrics has none) + one sync"
        )


def _why(err: InputError | None) -> str:
    if err is None:
        return "not enough data"
    return f"{err.where}: {err.problem}"
