"""Scoring of a simulated run: elasticity, SLO, cost, and the HPA cost frontier.

Pure numpy functions over per-tick arrays (one element per simulator tick of ``dt``
seconds; ``dt`` may be a scalar or an array of tick lengths). The simulator's report and
the ``simulate``/``sweep`` commands call ``score_run`` for every policy, then
``cost_frontier`` / ``cost_at_tau_u`` / ``gap_closed`` to compare the predictive policy
with the stock HPA at equal under-provisioning.

Definitions (SPEC Research Group elasticity metrics: Herbst, Kounev, Weber, Groenda,
"BUNGEE: an elasticity benchmark for self-adaptive IaaS cloud environments", SEAMS 2015,
and Herbst et al., "Ready for Rain? A View from SPEC Research on the Future of Cloud
Metrics", SPEC RG tech report 2016):

* demand ``d_t`` is the request rate (requests/s) of tick t; supply ``s_t`` is what the
  ready pods serve within the SLO: ``ready_t * capacity * slo_utilization`` (default
  0.85). A tick is **under-provisioned** when ``d_t > s_t``, over-provisioned when
  ``s_t > d_t``;
* accuracy ``theta_U = 100/T * sum(max(d - s, 0) / d * dt)`` and
  ``theta_O = 100/T * sum(max(s - d, 0) / d * dt)``, in % of demand. A tick with zero
  demand contributes 0 to both (the ratio is undefined there; it still counts in T);
* timeshare ``tau_U = 100/T * sum(dt where d > s)`` and ``tau_O`` likewise, in % of time;
* instability ``upsilon = 100/(T - dt_1) * sum(dt where sgn(ds) != sgn(dd))``: the share of
  time in which supply and demand move in different directions, and jitter
  ``j = (E_S - E_D) / T`` in adaptations per hour, where E_S counts supply changes and
  E_D demand changes. For both, demand is taken in resource units as the paper does:
  the minimal number of pods that meet the SLO, ``ceil(d / (capacity * slo_utilization))``;
* SLO-violation minutes: time with p99 above the SLO (0.5 s); a NaN p99 (no requests,
  no pods) is not a violation;
* cost: replica-hours of the pods that exist (a pod costs from creation to removal).

The HPA frontier. Sweeping ``hpa-cpu`` targets gives points (tau_U, cost). Their lower
envelope (Pareto: for each tau_U the cheapest run that under-provisions at most that
much) is made monotone non-increasing in tau_U and read by linear interpolation. The
frontier is convex where the HPA's tau_U climbs steeply with its target (between 70 and
80 % on a smooth trace it goes from ~0.05 % to ~6 %), so a chord between coarse targets
overstates the HPA's cost in between: ``refine_targets`` names the integer targets (the
HPA's own resolution) between the two sweep points that bracket a policy's tau_U, and
the simulator runs them too. Outside
the sampled tau_U range the frontier is unknown: the default answer is NaN (say
"outside the sweep"), ``outside="clamp"`` returns the nearest end point instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from models.errors import InputError

__all__ = [
    "DEFAULT_SLO_SECONDS",
    "DEFAULT_SLO_UTILIZATION",
    "ElasticityMetrics",
    "Frontier",
    "RunScore",
    "cost_at_tau_u",
    "cost_frontier",
    "refine_targets",
    "demand_units",
    "elasticity_metrics",
    "gap_closed",
    "jitter",
    "instability",
    "latency_percentiles",
    "replica_hours",
    "score_run",
    "slo_violation_minutes",
    "supply_rps",
    "theta_o",
    "theta_u",
    "tau_o",
    "tau_u",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_SLO_UTILIZATION = 0.85  # fraction of a pod's 100 %-CPU rate usable within the SLO
DEFAULT_SLO_SECONDS = 0.5  # the platform SLO: p99 < 500 ms


def _array(values: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise InputError(name, f"must be a 1-d per-tick array, got shape {arr.shape}", "")
    if not np.all(np.isfinite(arr)):
        raise InputError(name, "contains NaN or inf", "fill or drop missing ticks first")
    if np.any(arr < 0):
        raise InputError(name, "contains negative values", "")
    return arr


def _dt(dt: float | npt.ArrayLike, n: int) -> FloatArray:
    arr = np.asarray(dt, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise InputError("dt", f"must be a scalar or one value per tick ({n}), got {arr.shape}", "")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError("dt", "tick lengths must be finite and > 0 seconds", "")
    return arr


def _same_length(*arrays: FloatArray) -> None:
    lengths = {a.shape[0] for a in arrays}
    if len(lengths) != 1:
        raise InputError("per-tick arrays", f"have different lengths {sorted(lengths)}", "")


def supply_rps(
    ready_replicas: npt.ArrayLike,
    capacity_rps: float,
    slo_utilization: float = DEFAULT_SLO_UTILIZATION,
) -> FloatArray:
    """What the ready pods serve within the SLO: ``ready * capacity * slo_utilization``."""
    if not capacity_rps > 0 or not math.isfinite(capacity_rps):
        raise InputError("capacity_rps", f"must be > 0 requests/s, got {capacity_rps}", "")
    if not 0 < slo_utilization <= 1:
        raise InputError(
            "slo_utilization", f"must be in (0, 1], got {slo_utilization}", "default is 0.85"
        )
    return _array(ready_replicas, "ready_replicas") * capacity_rps * slo_utilization


def demand_units(
    demand: npt.ArrayLike, capacity_rps: float, slo_utilization: float = DEFAULT_SLO_UTILIZATION
) -> FloatArray:
    """Demand in resource units: the fewest pods that meet the SLO, ``ceil(d / (cap * u))``."""
    per_pod = float(supply_rps(np.ones(1), capacity_rps, slo_utilization)[0])
    units: FloatArray = np.ceil(_array(demand, "demand") / per_pod)
    return units


def _weighted_share(mask: BoolArray, dt: FloatArray) -> float:
    return float(100.0 * np.sum(dt[mask]) / np.sum(dt)) if dt.size else math.nan


def tau_u(demand: npt.ArrayLike, supply: npt.ArrayLike, dt: float | npt.ArrayLike) -> float:
    """Under-provisioning timeshare: % of time with demand > supply."""
    d, s = _array(demand, "demand"), _array(supply, "supply")
    _same_length(d, s)
    return _weighted_share(d > s, _dt(dt, d.size))


def tau_o(demand: npt.ArrayLike, supply: npt.ArrayLike, dt: float | npt.ArrayLike) -> float:
    """Over-provisioning timeshare: % of time with supply > demand."""
    d, s = _array(demand, "demand"), _array(supply, "supply")
    _same_length(d, s)
    return _weighted_share(s > d, _dt(dt, d.size))


def _relative_gap(num: FloatArray, d: FloatArray) -> FloatArray:
    out = np.zeros_like(d)
    np.divide(num, d, out=out, where=d > 0)
    return out


def theta_u(demand: npt.ArrayLike, supply: npt.ArrayLike, dt: float | npt.ArrayLike) -> float:
    """Under-provisioning accuracy: time-averaged missing supply, in % of demand."""
    d, s = _array(demand, "demand"), _array(supply, "supply")
    _same_length(d, s)
    w = _dt(dt, d.size)
    if not d.size:
        return math.nan
    return float(100.0 * np.sum(_relative_gap(np.maximum(d - s, 0.0), d) * w) / np.sum(w))


def theta_o(demand: npt.ArrayLike, supply: npt.ArrayLike, dt: float | npt.ArrayLike) -> float:
    """Over-provisioning accuracy: time-averaged excess supply, in % of demand."""
    d, s = _array(demand, "demand"), _array(supply, "supply")
    _same_length(d, s)
    w = _dt(dt, d.size)
    if not d.size:
        return math.nan
    return float(100.0 * np.sum(_relative_gap(np.maximum(s - d, 0.0), d) * w) / np.sum(w))


def instability(
    demand_units_: npt.ArrayLike, supply_units: npt.ArrayLike, dt: float | npt.ArrayLike
) -> float:
    """% of time (after the first tick) in which supply and demand change in different
    directions (one up, the other down or flat, and so on): ``sgn(ds) != sgn(dd)``.

    Pass demand and supply in the same units (resource units: ``demand_units`` and
    ready pods). The change into tick t is weighed by tick t's length.
    """
    d, s = _array(demand_units_, "demand"), _array(supply_units, "supply")
    _same_length(d, s)
    w = _dt(dt, d.size)
    if d.size < 2:
        return math.nan
    differs = np.sign(np.diff(s)) != np.sign(np.diff(d))
    return float(100.0 * np.sum(w[1:][differs]) / np.sum(w[1:]))


def jitter(
    demand_units_: npt.ArrayLike, supply_units: npt.ArrayLike, dt: float | npt.ArrayLike
) -> float:
    """``(E_S - E_D) / T`` in adaptations per hour: > 0 the supply changes more often
    than the demand (oscillation), < 0 less often (sluggish)."""
    d, s = _array(demand_units_, "demand"), _array(supply_units, "supply")
    _same_length(d, s)
    w = _dt(dt, d.size)
    if not d.size:
        return math.nan
    e_s = int(np.count_nonzero(np.diff(s)))
    e_d = int(np.count_nonzero(np.diff(d)))
    return float((e_s - e_d) / (np.sum(w) / 3600.0))


@dataclass(frozen=True)
class ElasticityMetrics:
    """The SPEC RG elasticity metrics of one run (see the module docstring for units)."""

    theta_u: float  # % of demand
    theta_o: float  # % of demand
    tau_u: float  # % of time
    tau_o: float  # % of time
    instability: float  # % of time
    jitter: float  # adaptations per hour


def elasticity_metrics(
    demand: npt.ArrayLike,
    ready_replicas: npt.ArrayLike,
    capacity_rps: float,
    dt: float | npt.ArrayLike,
    slo_utilization: float = DEFAULT_SLO_UTILIZATION,
) -> ElasticityMetrics:
    """All six elasticity metrics from demand (requests/s) and ready pods per tick."""
    d = _array(demand, "demand")
    ready = _array(ready_replicas, "ready_replicas")
    _same_length(d, ready)
    s = supply_rps(ready, capacity_rps, slo_utilization)
    units = demand_units(d, capacity_rps, slo_utilization)
    return ElasticityMetrics(
        theta_u=theta_u(d, s, dt),
        theta_o=theta_o(d, s, dt),
        tau_u=tau_u(d, s, dt),
        tau_o=tau_o(d, s, dt),
        instability=instability(units, ready, dt),
        jitter=jitter(units, ready, dt),
    )


def slo_violation_minutes(
    p99_seconds: npt.ArrayLike, dt: float | npt.ArrayLike, slo_seconds: float = DEFAULT_SLO_SECONDS
) -> float:
    """Minutes with p99 latency above the SLO (``+inf`` counts; NaN does not)."""
    p = np.asarray(p99_seconds, dtype=np.float64)
    if p.ndim != 1:
        raise InputError("p99", f"must be a 1-d per-tick array, got shape {p.shape}", "")
    w = _dt(dt, p.size)
    with np.errstate(invalid="ignore"):
        violating = p > slo_seconds
    return float(np.sum(w[violating]) / 60.0)


def replica_hours(pods: npt.ArrayLike, dt: float | npt.ArrayLike) -> float:
    """Pod-hours: the pods that exist in each tick (ready or not) times its length."""
    n = _array(pods, "pods")
    return float(np.sum(n * _dt(dt, n.size)) / 3600.0)


def latency_percentiles(
    p99_seconds: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    percentiles: Sequence[float] = (50.0, 90.0, 99.0, 100.0),
) -> dict[str, float]:
    """Percentiles of the per-tick p99 (seconds), optionally weighted (e.g. by requests).

    Ticks with a NaN p99 (no requests, no pods) are left out; ``+inf`` (overload) stays
    in and shows as ``inf``. Keys are ``"p50"``, ``"p90"``, ... of the tick distribution.
    """
    p = np.asarray(p99_seconds, dtype=np.float64)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != p.shape:
        raise InputError("weights", "must have one value per tick", "")
    keep = ~np.isnan(p) & (w > 0)
    p, w = p[keep], w[keep]
    out: dict[str, float] = {}
    if not p.size:
        return {f"p{q:g}": math.nan for q in percentiles}
    order = np.argsort(p, kind="stable")
    p, cum = p[order], np.cumsum(w[order])
    total = cum[-1]
    for q in percentiles:
        # The smallest value whose cumulative weight reaches q % (inverted CDF).
        idx = int(np.searchsorted(cum, q / 100.0 * total, side="left"))
        out[f"p{q:g}"] = float(p[min(idx, p.size - 1)])
    return out


@dataclass(frozen=True)
class RunScore:
    """Everything the report shows for one policy's run."""

    elasticity: ElasticityMetrics
    slo_violation_minutes: float
    replica_hours: float
    cost: float  # replica_hours * hourly price of one replica
    latency: dict[str, float]

    def as_dict(self) -> dict[str, float]:
        row: dict[str, float] = dict(asdict(self.elasticity))
        row["slo_violation_minutes"] = self.slo_violation_minutes
        row["replica_hours"] = self.replica_hours
        row["cost"] = self.cost
        row.update({f"latency_{k}": v for k, v in self.latency.items()})
        return row


def score_run(
    demand: npt.ArrayLike,
    ready_replicas: npt.ArrayLike,
    pods: npt.ArrayLike,
    p99_seconds: npt.ArrayLike,
    capacity_rps: float,
    dt: float | npt.ArrayLike,
    *,
    replica_hourly_price: float = 0.0,
    slo_utilization: float = DEFAULT_SLO_UTILIZATION,
    slo_seconds: float = DEFAULT_SLO_SECONDS,
) -> RunScore:
    """Score one policy's run. ``pods`` are the pods that exist (they cost), ``ready``
    those that serve; latency percentiles are weighted by the requests of each tick."""
    d = _array(demand, "demand")
    hours = replica_hours(pods, dt)
    return RunScore(
        elasticity=elasticity_metrics(d, ready_replicas, capacity_rps, dt, slo_utilization),
        slo_violation_minutes=slo_violation_minutes(p99_seconds, dt, slo_seconds),
        replica_hours=hours,
        cost=hours * replica_hourly_price,
        latency=latency_percentiles(p99_seconds, d * _dt(dt, d.size)),
    )


# --------------------------------------------------------------------------------------
# Cost at equal under-provisioning
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frontier:
    """The HPA's cost-versus-tau_U frontier: tau_U strictly increasing, cost strictly
    decreasing (dominated sweep points are dropped)."""

    tau_u: tuple[float, ...]
    cost: tuple[float, ...]
    #: the largest tau_U of any sweep point, dominated or not: up to there the frontier
    #: continues flat at its last cost (that run reached it no dearer).
    tau_u_max: float = math.nan

    @property
    def sampled_range(self) -> tuple[float, float]:
        """The tau_U range the sweep covered (where the frontier is known)."""
        hi = self.tau_u[-1] if math.isnan(self.tau_u_max) else max(self.tau_u_max, self.tau_u[-1])
        return self.tau_u[0], hi


def cost_frontier(tau_u_points: Sequence[float], cost_points: Sequence[float]) -> Frontier:
    """The lower envelope of sweep points (tau_U %, cost).

    Points are sorted by tau_U; of equal tau_U the cheapest wins; a point that costs at
    least as much as one with less under-provisioning is dominated and dropped. What
    remains is the cheapest cost for which the HPA reaches each tau_U.
    """
    if len(tau_u_points) != len(cost_points):
        raise InputError("frontier", "tau_u and cost need one value per sweep point", "")
    if not tau_u_points:
        raise InputError("frontier", "needs at least one sweep point", "sweep hpa-cpu targets")
    pts = sorted(
        zip((float(t) for t in tau_u_points), (float(c) for c in cost_points), strict=True)
    )
    if not all(math.isfinite(t) and math.isfinite(c) for t, c in pts):
        raise InputError("frontier", "sweep points must be finite", "")
    taus: list[float] = []
    costs: list[float] = []
    for t, c in pts:
        if costs and c >= costs[-1]:
            # Dominated: no cheaper than a run that under-provisions less. Of equal
            # tau_U the cheapest sorts first, so this also drops the dearer duplicates.
            continue
        taus.append(t)
        costs.append(c)
    return Frontier(tuple(taus), tuple(costs), pts[-1][0])


def refine_targets(sweep: dict[int, float], tau_u_values: Sequence[float]) -> list[int]:
    """The integer hpa-cpu targets to add so the frontier is exact at each ``tau_u_values``.

    ``sweep`` maps the targets run so far (%) to their tau_U (%). For every pair of
    neighbouring targets whose tau_U values bracket a policy's tau_U (``lo <= tau <
    hi``: at ``tau == hi`` the frontier is that run's own cost, and between two runs of
    equal tau_U the dearer one is dominated anyway), every integer target strictly
    between the two is returned (sorted, without the ones already run).
    Linear interpolation between neighbouring *integer* targets is then as fine as the
    HPA itself can be set (``averageUtilization`` is an integer percentage). A tau_U
    outside the sweep's range, or NaN, needs nothing.
    """
    targets = sorted(sweep)
    extra: set[int] = set()
    for tau in tau_u_values:
        if not math.isfinite(tau):
            continue
        for a, b in zip(targets, targets[1:], strict=False):
            lo, hi = sorted((sweep[a], sweep[b]))
            if lo <= tau < hi:
                extra.update(range(a + 1, b))
    return sorted(extra - set(targets))


def cost_at_tau_u(
    frontier: Frontier, tau_u_value: float, outside: Literal["nan", "clamp"] = "nan"
) -> float:
    """The HPA's cost at ``tau_u_value`` by linear interpolation on the frontier.

    Beyond the last frontier point but within the sweep, the cost stays flat. Outside
    ``[min tau_U, max tau_U]`` of the sweep: NaN by default (no HPA run was that good, or
    that bad, so there is nothing to compare with); ``outside="clamp"`` returns the end
    point's cost.
    """
    if not math.isfinite(tau_u_value):
        return math.nan
    lo, hi = frontier.sampled_range
    if (tau_u_value < lo or tau_u_value > hi) and outside == "nan":
        return math.nan
    return float(np.interp(tau_u_value, frontier.tau_u, frontier.cost))


def gap_closed(hpa_cost_at_tau: float, policy_cost: float, oracle_cost: float) -> float:
    """Share of the HPA-to-oracle cost gap the policy closes, as a fraction.

    ``(hpa - policy) / (hpa - oracle)``: 1 = as cheap as the oracle, 0 = no better than
    the HPA, < 0 = dearer than the HPA. NaN when there is no gap (``hpa <= oracle``) or
    any input is NaN.
    """
    gap = hpa_cost_at_tau - oracle_cost
    if not (math.isfinite(gap) and math.isfinite(policy_cost)) or gap <= 0:
        return math.nan
    return (hpa_cost_at_tau - policy_cost) / gap
