"""The ``MetricSource`` protocol: where a workload's load history comes from.

The controller asks a source for history every tick (one batched call for all the
workloads of an environment) and once at start-up for the backfill window. The
Prometheus implementation is ``autoscaler.sources.prometheus``; any PromQL API
(Thanos, Mimir, VictoriaMetrics) goes through it too.

Conventions every source keeps (the forecasters rely on them):

* a history is a float ``pandas.Series`` on an evenly spaced UTC ``DatetimeIndex``
  (``freq`` = the step) covering the requested range on multiples of the step;
* a missing sample is NaN, never 0 ("no data" is not "no load"); a workload with no
  data at all is an absent key in ``history_by``, and an all-NaN series in ``history``;
* what a source noticed about the data is in ``series.attrs`` (see ``SeriesAttrs``),
  so that the caller can tell a stale or cleaned series from a healthy one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypedDict, runtime_checkable

import numpy as np
import pandas as pd

#: A point in time: unix seconds, or a timezone-aware datetime / pandas Timestamp.
TimeLike = float | int | datetime | pd.Timestamp

#: The labels that ``history_by`` groups by unless told otherwise.
DEFAULT_BY: tuple[str, ...] = ("namespace", "workload")


class SeriesAttrs(TypedDict, total=False):
    """Keys a source puts in ``series.attrs`` (all optional for other sources)."""

    #: the query as sent.
    query: str
    #: the grouping key (``history_by``) or () for ``history``.
    key: tuple[str, ...]
    #: True when the newest finite sample is older than the source's stale limit.
    stale: bool
    #: unix seconds of the newest finite sample, or None when there is none.
    last_sample: float | None
    #: samples dropped (turned into NaN) because they were NaN or +/-Inf.
    non_finite: int
    #: samples dropped (turned into NaN) because they were negative.
    negative: int
    #: how many series were combined into this one (multiple-series policy).
    combined: int
    #: ``history_by`` only: how many input series were behind the sum at each step, a
    #: read-only float ``numpy.ndarray`` aligned with the series index (same length),
    #: NaN where unknown (no input series at that step, so the sum is NaN too). A drop
    #: in the count tells "fewer series behind the sum" (pods not scraped) from "less
    #: load". Being an array, it makes ``pd.concat`` of series that still carry it
    #: fail on comparing attrs: drop the attrs first (the controller does).
    series_count: np.ndarray


@runtime_checkable
class MetricSource(Protocol):
    """Load history for one query, or for many workloads in one batched query."""

    def history(self, query: str, start: TimeLike, end: TimeLike, step: float) -> pd.Series:
        """The single series ``query`` returns over [start, end] every ``step`` seconds."""
        ...

    def history_by(
        self,
        query: str,
        start: TimeLike,
        end: TimeLike,
        step: float,
        by: Sequence[str] = DEFAULT_BY,
    ) -> dict[tuple[str, ...], pd.Series]:
        """``query`` summed by the ``by`` labels: one series per label-value tuple."""
        ...


def is_stale(series: pd.Series) -> bool:
    """True when the source marked ``series`` stale (its data stopped some time ago)."""
    return bool(series.attrs.get("stale", False))


def has_data(series: pd.Series) -> bool:
    """True when ``series`` holds at least one real (finite) sample."""
    return bool(series.notna().any())
