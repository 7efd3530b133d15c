"""Load history for the loop: one batched query per distinct query, and the backfill.

A workload never fetched gets ``loop.initial_backfill_seconds`` of history at once (so
it does not start cold); older history arrives page by page on later ticks
(``backfill_older``), at most one query per tick. Afterwards each tick asks only for
the steps after the newest sample taken (a step still empty because of scrape lag is
asked for again), but never for more than the stale limit: older gaps stay gaps.

Query steps lie on a grid of ``prometheus.step_seconds`` from the epoch, shifted by
``prometheus.step_offset_seconds`` (0 for a live cluster; the simulator lines the grid
up with the trace's own rows).

Callers: ``autoscaler.controller.loop``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from autoscaler.controller.workload import Workload
from autoscaler.kube.events import rfc3339
from autoscaler.logging import log_event
from autoscaler.settings import ControllerSettings
from autoscaler.sources.base import MetricSource
from models.errors import AutoscalerError, RetryableError

LOG = logging.getLogger("autoscaler.controller")


class History:
    """Fetches each tick's new samples and pages in older history."""

    def __init__(
        self, settings: ControllerSettings, source: MetricSource, log: logging.Logger = LOG
    ) -> None:
        self.log = log
        self.settings = settings
        self.source = source
        #: whether the last ``fetch`` was a cold one (a first fetch is enough for a tick).
        self.fetched_cold = False
        #: no workload has older history left to page in (reset by a cold fetch).
        self.backfilled = False
        #: series behind each step's sum, by workload key, from the last ``fetch``.
        self.counts: dict[str, np.ndarray] = {}
        self._last_counts: dict[tuple[str, ...], np.ndarray] = {}

    def _floor(self, t: float, step: float) -> float:
        offset = self.settings.prometheus.step_offset_seconds
        return math.floor((t - offset) / step) * step + offset

    def fetch(
        self, now: float, workloads: Mapping[str, Workload]
    ) -> tuple[dict[str, pd.Series], dict[str, str], int]:
        """Per-workload series, per-workload errors, and the number of queries sent.

        How many input series were behind each step's sum (when the source says, as
        ``attrs["series_count"]``) is kept in ``self.counts`` by workload key.
        """
        prom = self.settings.prometheus
        loop = self.settings.loop
        step = float(prom.step_seconds)
        end = self._floor(now, step)
        initial = min(loop.initial_backfill_seconds, prom.backfill_seconds)
        groups: dict[tuple[str, bool], list[Workload]] = {}
        for w in workloads.values():
            groups.setdefault((w.pa.spec.query, w.fetched_until is None), []).append(w)
        out: dict[str, pd.Series] = {}
        failed: dict[str, str] = {}
        queries = 0
        self.fetched_cold = False
        self.counts = {}
        for (query, cold), members in groups.items():
            if cold:
                self.fetched_cold = True
                self.backfilled = False
                start = now - initial
            else:
                since = min(
                    w.last_sample if w.last_sample is not None else (w.fetched_until or now)
                    for w in members
                )
                start = max(since + step, now - loop.stale_after_seconds - step)
            start = self._floor(start, step)
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
                key = (w.pa.metadata.namespace, w.pa.spec.target_ref.name)
                series = answer.get(key)
                if series is not None:
                    out[w.pa.key] = series
                    if key in self._last_counts:
                        self.counts[w.pa.key] = self._last_counts[key]
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
                self.log,
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
        # which costs seconds per tick over 1,000 histories. The series counts are
        # kept aside.
        self._last_counts = {
            key: np.asarray(series.attrs["series_count"], dtype=float)
            for key, series in answer.items()
            if "series_count" in series.attrs
        }
        return {
            key: series
            if not series.attrs and series.dtype == float
            else pd.Series(series.to_numpy(dtype=float), index=series.index, dtype=float)
            for key, series in answer.items()
        }

    def backfill_older(self, now: float, workloads: Mapping[str, Workload]) -> int:
        """Fetch one older page of history for one group of workloads; returns queries.

        Bounded: at most one query of ``loop.backfill_page_seconds`` per tick, so the
        14-day backfill of 1,000 workloads never makes a tick overrun its sync. The
        page is prepended to each history; the models refit once the backfill is
        complete (until then they forecast from the initial window).
        """
        if self.backfilled and not self.fetched_cold:
            return 0
        step = float(self.settings.prometheus.step_seconds)
        page = self.settings.loop.backfill_page_seconds
        groups: dict[tuple[str, float], list[Workload]] = {}
        for w in workloads.values():
            if (
                w.backfilled_from is not None
                and w.backfill_target is not None
                and w.backfilled_from - step >= w.backfill_target
            ):
                groups.setdefault((w.pa.spec.query, w.backfilled_from), []).append(w)
        if not groups:
            self.backfilled = True  # until a new workload is fetched cold
            return 0
        (query, upto), members = max(groups.items(), key=lambda kv: len(kv[1]))
        target = min(w.backfill_target or upto for w in members)
        start = self._floor(max(target, upto - page), step)
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
            self.log,
            "backfill_page",
            f"backfilled {len(members)} workloads back to {rfc3339(start)}",
            logging.DEBUG,
            workloads=len(members),
            start=start,
        )
        return 1
