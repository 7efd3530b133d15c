"""Learn ``capacityPerReplica`` and the pod start-up time from cluster metrics (pure fitting).

Why: a PredictiveAutoscaler turns forecast load into replicas with two numbers nobody
knows: the load one replica serves at 100 % of its CPU request, and how long a new pod
takes to become Ready. Both are in metrics every Kubernetes Prometheus has (cAdvisor,
kube-state-metrics); this module fits them. It does no I/O: the queries are in
``autoscaler.sources.cluster_metrics`` and the command is ``autoscaler calibrate``.

Capacity. Per step, the CPU cores used by the workload's pods are modelled as::

    cpu = idle * pods + cost * load        (no intercept)

``idle`` is the CPU of a pod serving nothing, ``cost`` the CPU per unit of load. It is
fitted robustly (statsmodels ``RLM``, Huber's norm) and the capacity at 100 % of the
per-pod request ``r`` is ``(r - idle) / cost``. Its 95 % interval comes from the delta
method on a HAC (Newey-West) covariance, because residuals of a time series are
autocorrelated and the plain standard error would be too narrow.

Releases change ``cost``. Change points are found by binary segmentation of the
regression (a Chow-type likelihood-ratio statistic, scaled by the long-run variance of
the residuals, against a Bonferroni chi-square bound over the candidate splits); a
break is kept only when the robust capacities on its two sides differ by at least
``min_change`` (5 %: smaller moves are inside the headroom a target utilisation leaves).
The capacity reported is the fit on the data after the last kept change point.

Start-up. ``startup_stats`` takes (created, ready) unix-second pairs, from
kube-state-metrics or from the Kubernetes API's pod conditions alike, and gives the
p50 and p90 of creation -> Ready. ``lead_time_seconds`` adds one HPA sync (15 s).

Every way the data can make a figure meaningless (no data, no load, no requests, CPU
not growing with load, idle above the request) is an ``InputError`` naming the series
and the fix; no capacity is ever 0, negative or infinite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.regression.linear_model import WLS
from statsmodels.robust.norms import HuberT
from statsmodels.robust.robust_linear_model import RLM

from models.errors import InputError

#: One HPA sync period: the time between a changed metric and the HPA acting on it.
HPA_SYNC_SECONDS = 15.0


@dataclass(frozen=True)
class CapacityConfig:
    """Knobs of the capacity fit; the defaults are reasoned, not tuned to a trace."""

    #: Shortest segment between change points, in seconds. Two hours hold enough load
    #: variation to separate ``idle`` from ``cost``; a burst is shorter than that.
    min_segment_seconds: float = 7200.0
    #: Smallest relative capacity move reported as a change (0.05 = 5 %): below that a
    #: move is inside the headroom of the target utilisation and not worth a refit.
    min_change: float = 0.05
    #: Significance of one change-point test (before the Bonferroni correction).
    alpha: float = 0.01
    #: At most this many change points (binary segmentation depth bound).
    max_changes: int = 5
    #: Fewer usable steps than this cannot fit two coefficients with any confidence.
    min_points: int = 30
    #: Level of the reported capacity interval.
    level: float = 0.95
    #: Detect change points at all (False: one fit over the whole window).
    detect_changes: bool = True


@dataclass(frozen=True)
class SegmentFit:
    """The robust fit on one stretch of steps."""

    start: pd.Timestamp
    end: pd.Timestamp
    points: int
    idle_cores: float
    cost_cores: float
    request_cores: float
    capacity: float
    #: ``level`` interval of the capacity (delta method, HAC covariance).
    low: float
    high: float

    @property
    def relative_halfwidth(self) -> float:
        return (self.high - self.low) / 2 / self.capacity

    def as_dict(self) -> dict[str, object]:
        return {
            "start": _iso(self.start),
            "end": _iso(self.end),
            "points": self.points,
            "capacityPerReplica": self.capacity,
            "interval": [self.low, self.high],
            "idleCoresPerPod": self.idle_cores,
            "coresPerLoadUnit": self.cost_cores,
            "requestCoresPerPod": self.request_cores,
        }


@dataclass(frozen=True)
class ChangePoint:
    """A step where the capacity moved (a release, a config change, a new node type)."""

    at: pd.Timestamp
    capacity_before: float
    capacity_after: float
    #: The segmentation statistic and the bound it beat (long-run-variance scaled).
    statistic: float
    threshold: float

    @property
    def relative_change(self) -> float:
        return self.capacity_after / self.capacity_before - 1.0

    def as_dict(self) -> dict[str, object]:
        return {
            "at": _iso(self.at),
            "capacityBefore": self.capacity_before,
            "capacityAfter": self.capacity_after,
            "relativeChange": self.relative_change,
            "statistic": self.statistic,
            "threshold": self.threshold,
        }


@dataclass(frozen=True)
class CapacityEstimate:
    """The capacity to use (``final``: after the last change point) and how it was found."""

    final: SegmentFit
    segments: list[SegmentFit]
    changes: list[ChangePoint]
    #: One fit over every usable step, for comparison (what ignoring releases gives).
    whole_window: SegmentFit
    level: float
    usable_points: int
    notes: list[str] = field(default_factory=list)

    @property
    def capacity(self) -> float:
        return self.final.capacity

    def as_dict(self) -> dict[str, object]:
        return {
            "capacityPerReplica": self.final.capacity,
            "interval": [self.final.low, self.final.high],
            "level": self.level,
            "fit": self.final.as_dict(),
            "changePoints": [c.as_dict() for c in self.changes],
            "segments": [s.as_dict() for s in self.segments],
            "wholeWindow": self.whole_window.as_dict(),
            "usablePoints": self.usable_points,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class StartupStats:
    """Pod creation -> Ready, over the pods seen."""

    p50: float
    p90: float
    pods: int
    #: pairs left out (never Ready, Ready before created, not finite).
    dropped: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"p50": self.p50, "p90": self.p90, "pods": self.pods, "dropped": self.dropped}


# --------------------------------------------------------------------------- start-up


def startup_stats(
    pairs: Iterable[tuple[float, float]], where: str = "kube_pod_status_ready_time"
) -> StartupStats:
    """p50 and p90 of ``ready - created`` (seconds) over (created, ready) pairs.

    Pairs from kube-state-metrics (``kube_pod_created``, ``kube_pod_status_ready_time``)
    or from the API's pod conditions (``metadata.creationTimestamp`` and the Ready
    condition's ``lastTransitionTime``) feed it alike. A pair that is not finite or
    whose Ready precedes its creation is dropped and counted.
    """
    arr = np.array([(float(c), float(r)) for c, r in pairs], dtype=float).reshape(-1, 2)
    ok = np.isfinite(arr).all(axis=1)
    durations = arr[ok, 1] - arr[ok, 0]
    good = durations[durations >= 0]
    dropped = len(arr) - len(good)
    if good.size == 0:
        raise InputError(
            where,
            f"no pod with both a creation and a Ready time ({len(arr)} pods seen)",
            "check that kube-state-metrics >= 2.x exports kube_pod_status_ready_time, or set "
            "the lead time by hand",
        )
    notes = []
    if good.size < 10:
        notes.append(f"only {good.size} pods started in the window: the p90 is rough")
    p50, p90 = np.quantile(good, [0.5, 0.9])
    return StartupStats(float(p50), float(p90), int(good.size), int(dropped), notes)


def lead_time_seconds(startup_p90: float, sync_seconds: float = HPA_SYNC_SECONDS) -> float:
    """The decision's lead time: start-up p90 plus one HPA sync, in whole seconds."""
    if not math.isfinite(startup_p90) or startup_p90 < 0:
        raise InputError("startup p90", f"{startup_p90!r} is not a duration", "")
    return float(math.ceil(startup_p90 + sync_seconds))


# --------------------------------------------------------------------------- capacity


def fit_capacity(
    cpu: pd.Series,
    pods: pd.Series,
    load: pd.Series,
    request: pd.Series | float,
    config: CapacityConfig | None = None,
) -> CapacityEstimate:
    """Capacity per replica at 100 % of the CPU request, with change points.

    ``cpu``: CPU cores used by all the workload's pods per step; ``pods``: how many
    pods that CPU comes from; ``load``: the workload's load per second; ``request``:
    CPU request per pod in cores (a series, or one number). All on the same index
    (``pods`` and ``load`` are reindexed to ``cpu``'s). Steps where any is missing or
    ``pods`` is below one are left out.
    """
    cfg = config or CapacityConfig()
    index = cpu.index
    req = (
        pd.Series(float(request), index=index)
        if isinstance(request, int | float)
        else request.reindex(index).astype(float)
    )
    frame = pd.DataFrame(
        {
            "cpu": cpu.astype(float),
            "pods": pods.reindex(index).astype(float),
            "load": load.reindex(index).astype(float),
            "request": req,
        }
    )
    _check_inputs(frame)
    usable = frame.dropna(subset=["cpu", "pods", "load"])
    usable = usable[(usable["pods"] >= 1) & (usable["cpu"] >= 0) & (usable["load"] >= 0)]
    if len(usable) < cfg.min_points:
        raise InputError(
            "--window",
            f"only {len(usable)} steps have CPU, pods and load together "
            f"(at least {cfg.min_points} are needed)",
            "widen --window, use a smaller --step, or wait for more data",
        )
    if not (usable["load"] > 0).any() or float(usable["load"].std()) == 0.0:
        raise InputError(
            "--load-query",
            "the load is constant (e.g. 0) at every usable step, so the CPU a unit of load "
            "costs cannot be learnt",
            "check the query's labels, or calibrate over a window with traffic",
        )
    notes: list[str] = []
    if usable["request"].isna().any():
        missing = int(usable["request"].isna().sum())
        notes.append(f"{missing} steps without a CPU request used the neighbouring request")
        usable = usable.assign(request=usable["request"].ffill().bfill())
    step_s = _step_seconds(usable.index)
    min_seg = max(cfg.min_points, int(cfg.min_segment_seconds // step_s))

    y = usable["cpu"].to_numpy()
    x = usable[["pods", "load"]].to_numpy()
    whole = _fit_segment(usable, 0, len(usable), cfg.level)
    breaks: list[int] = []
    stats_at: dict[int, tuple[float, float]] = {}
    if cfg.detect_changes and len(usable) >= 2 * min_seg:
        _binary_segmentation(y, x, 0, len(y), min_seg, cfg, breaks, stats_at)
        breaks.sort()
        breaks = _prune(usable, breaks, cfg)
    elif cfg.detect_changes:
        notes.append(
            f"{len(usable)} usable steps are too few to look for change points "
            f"(two segments of {min_seg} steps are needed)"
        )
    bounds = [0, *breaks, len(usable)]
    segments = [_fit_segment(usable, a, b, cfg.level) for a, b in pairwise(bounds)]
    changes = [
        ChangePoint(
            at=pd.Timestamp(usable.index[b]),
            capacity_before=before.capacity,
            capacity_after=after.capacity,
            statistic=stats_at[b][0],
            threshold=stats_at[b][1],
        )
        for b, before, after in zip(breaks, segments[:-1], segments[1:], strict=True)
    ]
    final = segments[-1]
    if final.relative_halfwidth > 0.25:
        notes.append(
            f"the capacity is poorly determined (+/-{final.relative_halfwidth:.0%}): the pod "
            "count follows the load too closely, or the load varies too little, to separate "
            "idle CPU from CPU per request; a longer window without releases helps"
        )
    return CapacityEstimate(
        final=final,
        segments=segments,
        changes=changes,
        whole_window=whole,
        level=cfg.level,
        usable_points=len(usable),
        notes=notes,
    )


def _check_inputs(frame: pd.DataFrame) -> None:
    if not frame["cpu"].notna().any():
        raise InputError(
            "container_cpu_usage_seconds_total",
            "no CPU usage for the workload's pods in the window",
            "check that cAdvisor (kubelet /metrics/cadvisor) is scraped and the target name, "
            "or pass --cpu-query",
        )
    if not frame["load"].notna().any():
        raise InputError(
            "--load-query",
            "the load query returned no data in the window (no data is not zero)",
            "try the query in the Prometheus UI; it must return one series",
        )
    req = frame["request"]
    if not req.notna().any():
        raise InputError(
            "kube_pod_container_resource_requests",
            'no CPU request (resource="cpu") for the workload\'s pods, so "100 % of the '
            'request" is undefined',
            "set resources.requests.cpu on the containers, or pass --request-cores",
        )
    finite = req.dropna()
    if (finite <= 0).any() or not np.isfinite(finite.to_numpy()).all():
        raise InputError(
            "kube_pod_container_resource_requests",
            "a CPU request per pod is not a positive number",
            "set resources.requests.cpu on the containers, or pass --request-cores",
        )


def _fit_segment(frame: pd.DataFrame, a: int, b: int, level: float) -> SegmentFit:
    """Huber-robust fit of cpu ~ idle*pods + cost*load on rows [a, b); HAC delta interval."""
    part = frame.iloc[a:b]
    y = part["cpu"].to_numpy()
    x = part[["pods", "load"]].to_numpy()
    where = f"steps {_iso(part.index[0])} .. {_iso(part.index[-1])}"
    if np.linalg.matrix_rank(x) < 2:
        raise InputError(
            "--load-query",
            f"{where}: the load is proportional to the pod count (or constant), so idle CPU "
            "and CPU per request cannot be told apart",
            "calibrate over a window with more load variation",
        )
    robust = RLM(y, x, M=HuberT()).fit()
    weights = np.clip(np.asarray(robust.weights, dtype=float), 1e-6, None)
    lags = _bandwidth(len(y))
    wls = WLS(y, x, weights=weights).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    idle, cost = (float(v) for v in np.asarray(robust.params))
    cov = np.asarray(wls.cov_params(), dtype=float)
    request = float(part["request"].median())
    z = float(stats.norm.ppf(0.5 + level / 2))
    cost_se = math.sqrt(cov[1, 1]) if math.isfinite(cov[1, 1]) and cov[1, 1] >= 0 else math.inf
    if not cost - z * cost_se > 0:
        # cost <= 0, or indistinguishable from 0: the capacity would be absurd or infinite.
        raise InputError(
            "--load-query",
            f"{where}: CPU does not grow measurably with this load (fitted {cost:.3g} +/- "
            f"{z * cost_se:.2g} cores per unit), so it does not measure what the pods work on",
            "use the requests (or messages) the pods serve as the load query",
        )
    if idle >= request:
        raise InputError(
            "kube_pod_container_resource_requests",
            f"{where}: an idle pod already uses {idle:.3g} cores, at or above its request of "
            f"{request:.3g}, so a replica has no capacity left at 100 % of its request",
            "raise resources.requests.cpu, or check that --cpu-query selects only this workload",
        )
    capacity = (request - idle) / cost
    grad = np.array([-1.0 / cost, -(request - idle) / cost**2])
    var = float(grad @ cov @ grad)
    se = math.sqrt(var) if math.isfinite(var) and var >= 0 else math.inf
    low = max(capacity - z * se, 0.0)
    high = capacity + z * se
    return SegmentFit(
        start=pd.Timestamp(part.index[0]),
        end=pd.Timestamp(part.index[-1]),
        points=len(part),
        idle_cores=idle,
        cost_cores=cost,
        request_cores=request,
        capacity=float(capacity),
        low=float(low),
        high=float(high),
    )


def _ssr_splits(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """SSR of the OLS fit on [0, k) plus SSR on [k, n), for every k (NaN if singular)."""
    n = len(y)
    xx = np.einsum("ni,nj->nij", x, x)
    cxx = np.concatenate([np.zeros((1, 2, 2)), np.cumsum(xx, axis=0)])
    cxy = np.concatenate([np.zeros((1, 2)), np.cumsum(x * y[:, None], axis=0)])
    cyy = np.concatenate([[0.0], np.cumsum(y * y)])

    def ssr(sxx: np.ndarray, sxy: np.ndarray, syy: np.ndarray) -> np.ndarray:
        a, b, d = sxx[:, 0, 0], sxx[:, 0, 1], sxx[:, 1, 1]
        det = a * d - b * b
        with np.errstate(divide="ignore", invalid="ignore"):
            quad = (d * sxy[:, 0] ** 2 - 2 * b * sxy[:, 0] * sxy[:, 1] + a * sxy[:, 1] ** 2) / det
        out: np.ndarray = syy - quad
        out[~(det > 1e-12 * np.maximum(a * d, 1e-300))] = np.nan
        return out

    left = ssr(cxx, cxy, cyy)
    right = ssr(cxx[n] - cxx, cxy[n] - cxy, cyy[n] - cyy)
    result: np.ndarray = left + right
    return result


def _bandwidth(n: int) -> int:
    """Newey-West lags: sqrt(n), wider than the textbook n^(2/9) rule.

    CPU residuals stay correlated for many steps (caches, GC, background work) and the
    load regressor is seasonal; the narrow rule gave a "95 %" interval holding the truth
    in 73 % of AR(1, rho=0.9) cases, sqrt(n) in ~80 % (tests/models/test_calibration.py).
    """
    return max(1, math.isqrt(max(n, 1)))


def _long_run_variance(resid: np.ndarray) -> float:
    """Newey-West (Bartlett) long-run variance of residuals."""
    n = len(resid)
    e = resid - resid.mean()
    lags = _bandwidth(n)
    lrv = float(e @ e) / n
    for lag in range(1, min(lags, n - 1) + 1):
        lrv += 2 * (1 - lag / (lags + 1)) * float(e[lag:] @ e[:-lag]) / n
    return max(lrv, float(e @ e) / n * 1e-3, 1e-300)


def _binary_segmentation(
    y: np.ndarray,
    x: np.ndarray,
    a: int,
    b: int,
    min_seg: int,
    cfg: CapacityConfig,
    breaks: list[int],
    stats_at: dict[int, tuple[float, float]],
) -> None:
    """Split [a, b) at the most likely break while it is significant; recurse."""
    if len(breaks) >= cfg.max_changes or b - a < 2 * min_seg:
        return
    ys, xs = y[a:b], x[a:b]
    split = _ssr_splits(ys, xs)
    candidates = np.arange(min_seg, b - a - min_seg + 1)
    values = split[candidates]
    if not np.isfinite(values).any():
        return
    k = int(candidates[np.nanargmin(values)])
    beta_full, *_ = np.linalg.lstsq(xs, ys, rcond=None)
    ssr_full = float(np.sum((ys - xs @ beta_full) ** 2))
    resid = np.empty(b - a)
    for lo, hi in ((0, k), (k, b - a)):
        beta, *_ = np.linalg.lstsq(xs[lo:hi], ys[lo:hi], rcond=None)
        resid[lo:hi] = ys[lo:hi] - xs[lo:hi] @ beta
    statistic = (ssr_full - float(np.nanmin(values))) / _long_run_variance(resid)
    threshold = float(stats.chi2.isf(cfg.alpha / len(candidates), df=2))
    if statistic <= threshold:
        return
    breaks.append(a + k)
    stats_at[a + k] = (float(statistic), threshold)
    _binary_segmentation(y, x, a, a + k, min_seg, cfg, breaks, stats_at)
    _binary_segmentation(y, x, a + k, b, min_seg, cfg, breaks, stats_at)


def _prune(frame: pd.DataFrame, breaks: list[int], cfg: CapacityConfig) -> list[int]:
    """Drop, smallest first, breaks whose robust capacities differ by < ``min_change``."""
    kept = list(breaks)
    while kept:
        bounds = [0, *kept, len(frame)]
        caps = []
        for a, b in pairwise(bounds):
            try:
                caps.append(_fit_segment(frame, a, b, cfg.level).capacity)
            except InputError:
                caps.append(math.nan)  # a degenerate segment: merge it away
        moves = [
            abs(after / before - 1.0) if math.isfinite(before * after) else -1.0
            for before, after in pairwise(caps)
        ]
        i = int(np.argmin(moves))
        if moves[i] >= cfg.min_change:
            break
        del kept[i]
    return kept


def _step_seconds(index: pd.Index) -> float:
    if isinstance(index, pd.DatetimeIndex) and len(index) > 1:
        d = np.diff(index.as_unit("ns").asi8) / 1e9
        d = d[d > 0]
        if d.size:
            return float(np.median(d))
    return 60.0


def _iso(ts: object) -> str:
    t = pd.Timestamp(ts)  # type: ignore[arg-type]
    if t.tzinfo is None:
        t = t.tz_localize("UTC")
    return str(t.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))
