"""The in-memory ``DecisionStore``: the one place the External Metrics API reads values from.

The controller (or ``autoscaler serve --values``) publishes the latest served value per
PredictiveAutoscaler; the API server and the KEDA scaler read it on every request. The
HPA controller calls us every 15 s with five workers for the whole cluster, so reads
must be cheap and must never wait for a reconcile: writers build a new snapshot and
swap one reference (copy-on-write), readers take the current reference without a lock.

Data-edge policy: values must be finite and non-negative (``publish`` raises
``InputError`` otherwise); "absent" is never turned into zero here. Staleness is decided
by the reader (``autoscaler.api``), from each value's ``timestamp``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from autoscaler.api.selector import LabelSelector
from models.errors import InputError

#: Name of the metric we serve, one series per PredictiveAutoscaler.
DESIRED_REPLICAS_METRIC = "autoscaler_desired_replicas"

LabelKey = tuple[tuple[str, str], ...]


def label_key(labels: Mapping[str, str]) -> LabelKey:
    """Labels as a hashable, order-independent key."""
    return tuple(sorted(labels.items()))


@dataclass(frozen=True)
class MetricValue:
    """One served series: a metric name, its labels, the value and when it was decided."""

    namespace: str
    #: metric name, stored lower-case (the HPA lower-cases the name it requests).
    name: str
    labels: Mapping[str, str]
    value: float
    #: unix seconds of the decision that produced ``value``.
    timestamp: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name.lower())
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))


@dataclass(frozen=True)
class MetricName:
    """One advertised metric (for discovery): its lower-case name and how many series."""

    name: str
    series: int


BucketKey = tuple[str, str]
#: (label name, label value) -> the series of one bucket that carry it.
LabelIndex = Mapping[tuple[str, str], tuple[MetricValue, ...]]


@dataclass(frozen=True)
class _Snapshot:
    """Immutable view: (namespace, name) -> label key -> value, plus a version number.

    ``index`` maps each bucket's (label, value) pairs to its series, so that a query with
    an equality or ``in`` requirement (what every HPA sends) looks at a handful of series
    instead of scanning all of them.
    """

    version: int = 0
    series: Mapping[BucketKey, Mapping[LabelKey, MetricValue]] = field(default_factory=dict)
    names: frozenset[str] = frozenset()
    index: Mapping[BucketKey, LabelIndex] = field(default_factory=dict)


def _index_bucket(bucket: Mapping[LabelKey, MetricValue]) -> LabelIndex:
    index: dict[tuple[str, str], list[MetricValue]] = {}
    for value in bucket.values():
        for pair in value.labels.items():
            index.setdefault(pair, []).append(value)
    return {pair: tuple(values) for pair, values in index.items()}


def _validate(value: MetricValue) -> None:
    where = f"metric {value.namespace}/{value.name}{dict(value.labels)}"
    if not value.namespace:
        raise InputError(where, "namespace is empty", "give the PredictiveAutoscaler's namespace")
    if not value.name or "/" in value.name or value.name in (".", ".."):
        raise InputError(where, f"invalid metric name {value.name!r}", "use a name without '/'")
    if not isinstance(value.value, (int, float)) or isinstance(value.value, bool):
        raise InputError(where, f"value {value.value!r} is not a number")
    if not math.isfinite(value.value) or value.value < 0:
        raise InputError(
            where, f"value {value.value} is not finite and non-negative", "never serve NaN/Inf/<0"
        )
    if not math.isfinite(value.timestamp):
        raise InputError(where, f"timestamp {value.timestamp} is not finite")


class DecisionStore:
    """Thread-safe store of served values; readers never block on writers."""

    def __init__(self) -> None:
        self._write_lock = threading.Lock()
        self._snap = _Snapshot()
        self._listeners: list[Callable[[int], None]] = []

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(version)`` after every change (from the writer's thread).

        Used to mirror the store into the API server's own process
        (``autoscaler.api.process``); listeners must be quick and must not raise.
        """
        self._listeners.append(listener)

    @property
    def version(self) -> int:
        """Increases on every change; lets readers cache serialised answers."""
        return self._snap.version

    def publish(self, values: Iterable[MetricValue], replace_all: bool = False) -> None:
        """Add or overwrite series; with ``replace_all`` the result holds only ``values``."""
        batch = list(values)
        for value in batch:
            _validate(value)
        with self._write_lock:
            old = self._snap
            series: dict[BucketKey, dict[LabelKey, MetricValue]] = (
                {} if replace_all else {k: dict(v) for k, v in old.series.items()}
            )
            for value in batch:
                series.setdefault((value.namespace, value.name), {})[label_key(value.labels)] = (
                    value
                )
            touched = None if replace_all else {(v.namespace, v.name) for v in batch}
            self._swap(old, series, touched)

    def remove(self, namespace: str, name: str, labels: Mapping[str, str]) -> None:
        """Forget one series (its PredictiveAutoscaler was deleted); unknown ones are ignored."""
        with self._write_lock:
            old = self._snap
            key = (namespace, name.lower())
            if label_key(labels) not in old.series.get(key, {}):
                return
            series = {k: dict(v) for k, v in old.series.items()}
            del series[key][label_key(labels)]
            if not series[key]:
                del series[key]
            self._swap(old, series, {key})

    def _swap(
        self,
        old: _Snapshot,
        series: dict[BucketKey, dict[LabelKey, MetricValue]],
        touched: set[BucketKey] | None,
    ) -> None:
        """Install a new snapshot; re-index only the buckets that changed (None = all)."""
        index = {
            key: (
                old.index[key]
                if touched is not None and key not in touched and key in old.index
                else _index_bucket(bucket)
            )
            for key, bucket in series.items()
        }
        self._snap = _Snapshot(
            version=old.version + 1,
            series=series,
            names=frozenset(name for _, name in series),
            index=index,
        )
        for listener in self._listeners:
            listener(self._snap.version)

    def has_metric(self, name: str) -> bool:
        """Whether any namespace has a series of this metric (case-insensitive)."""
        return name.lower() in self._snap.names

    def query(self, namespace: str, name: str, selector: LabelSelector | None) -> list[MetricValue]:
        """Series of ``name`` in ``namespace`` whose labels match ``selector`` (None = all)."""
        snap = self._snap  # one consistent snapshot for the whole query
        key = (namespace, name.lower())
        bucket = snap.series.get(key)
        if not bucket:
            return []
        if selector is None or selector.empty:
            return list(bucket.values())
        index = snap.index.get(key, {})
        candidates: Iterable[MetricValue] = bucket.values()
        smallest = len(bucket)
        for req in selector.requirements:
            if req.op in ("=", "in"):
                # A series has one value per label, so the per-value lists are disjoint.
                hits = [v for val in req.values for v in index.get((req.key, val), ())]
                if len(hits) < smallest:
                    candidates, smallest = hits, len(hits)
        return [v for v in candidates if selector.matches(v.labels)]

    def metric_names(self) -> list[MetricName]:
        """Every metric name with at least one series, sorted, for discovery."""
        snap = self._snap
        counts: dict[str, int] = {}
        for (_, name), bucket in snap.series.items():
            counts[name] = counts.get(name, 0) + len(bucket)
        return [MetricName(name, counts[name]) for name in sorted(counts)]

    def all_values(self) -> list[MetricValue]:
        """Every series (for the KEDA scaler and debugging)."""
        return [v for bucket in self._snap.series.values() for v in bucket.values()]
