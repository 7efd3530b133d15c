"""Scores, tables, timelines and the HTML report of a simulation.

``score(result)`` turns every policy's timeline into its figures (via
``simulations.scoring`` for the SPEC elasticity metrics, SLO minutes, the hpa-cpu
cost-versus-tau_U frontier and the share of the HPA-to-oracle gap closed, and
``simulations.latency`` for the per-tick p99). The writers then render them:

* ``summary_text``: the table the CLI prints;
* ``to_json``: the same figures as JSON (``inf``/``nan`` become ``null``);
* ``write_timeline``: one CSV row per 15-s tick and policy;
* ``write_html``: one self-contained HTML file (matplotlib PNGs inlined as base64):
  demand against capacity per policy, replicas, latency, cost over time, the frontier,
  where prediction beat reaction, and the scoring table.

Supply for scoring is what Ready pods serve within the SLO: ``ready x capacity x
slo_utilization``; cost counts every pod that exists, Ready or not.

Callers: ``autoscaler.cli.simulate``, ``simulations.sweep``, benchmarks.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulations import scoring
from simulations.engine import Timeline, p99_latency
from simulations.scenario import Result, run_policy
from simulations.strategies import Oracle

#: Display order of policy kinds in tables and plots.
_ORDER = ("hpa-cpu", "hpa-rps", "predictive", "oracle", "static")


@dataclass
class PolicyScore:
    """One policy's figures. Percentages are 0-100; ``None`` where undefined."""

    policy: str
    tau_u_pct: float
    tau_o_pct: float
    theta_u_pct: float
    theta_o_pct: float
    instability_pct: float
    jitter_per_hour: float
    slo_violation_minutes: float
    #: percentiles over ticks (weighted by requests) of the per-tick p99 latency, seconds.
    latency_p99_p50_s: float | None
    latency_p99_p90_s: float | None
    latency_p99_p99_s: float | None
    replica_hours: float
    cost_usd: float
    cost_vs_oracle: float | None = None
    hpa_cost_at_equal_tau_u: float | None = None
    cost_vs_hpa_at_equal_tau_u: float | None = None
    gap_closed: float | None = None
    budget_clamped_ticks: int | None = None


@dataclass
class ScoredResult:
    """A simulation with its scores, its latency series and the hpa-cpu frontier."""

    result: Result
    scores: dict[str, PolicyScore]
    latency: dict[str, np.ndarray]
    #: hpa-cpu target (%) -> its score, for the frontier.
    frontier: dict[int, PolicyScore] = field(default_factory=dict)


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def score_timeline(tl: Timeline, result: Result) -> tuple[PolicyScore, np.ndarray]:
    """The figures of one timeline (without the frontier comparisons) and its p99 series."""
    prep = result.prepared
    w = prep.workload
    lat = p99_latency(tl, w)
    run = scoring.score_run(
        tl.demand,
        tl.ready,
        tl.alive,
        lat,
        w.capacity_rps,
        prep.demand.tick_seconds,
        replica_hourly_price=w.hourly_price,
        slo_utilization=prep.scenario.slo_utilization,
        slo_seconds=w.latency.slo_p99_seconds,
    )
    e = run.elasticity
    clamped = tl.extra.get("budget_clamped")
    return (
        PolicyScore(
            policy=tl.policy,
            tau_u_pct=e.tau_u,
            tau_o_pct=e.tau_o,
            theta_u_pct=e.theta_u,
            theta_o_pct=e.theta_o,
            instability_pct=e.instability,
            jitter_per_hour=e.jitter,
            slo_violation_minutes=run.slo_violation_minutes,
            latency_p99_p50_s=_finite_or_none(run.latency.get("p50", math.nan)),
            latency_p99_p90_s=_finite_or_none(run.latency.get("p90", math.nan)),
            latency_p99_p99_s=_finite_or_none(run.latency.get("p99", math.nan)),
            replica_hours=run.replica_hours,
            cost_usd=run.cost,
            budget_clamped_ticks=None if clamped is None else int(np.count_nonzero(clamped)),
        ),
        lat,
    )


def compare(
    scores: list[PolicyScore], frontier: list[PolicyScore], oracle_cost: float | None
) -> None:
    """Fill cost vs oracle, vs the hpa-cpu frontier at equal tau_U, and the gap closed."""
    curve = None
    if len(frontier) >= 2:
        curve = scoring.cost_frontier(
            [f.tau_u_pct for f in frontier], [f.cost_usd for f in frontier]
        )
    for s in scores:
        if oracle_cost is not None and oracle_cost > 0:
            s.cost_vs_oracle = s.cost_usd / oracle_cost
        if curve is None:
            continue
        hpa_cost = _finite_or_none(scoring.cost_at_tau_u(curve, s.tau_u_pct))
        if hpa_cost is None or hpa_cost <= 0:
            continue
        s.hpa_cost_at_equal_tau_u = hpa_cost
        s.cost_vs_hpa_at_equal_tau_u = s.cost_usd / hpa_cost
        if oracle_cost is not None:
            s.gap_closed = _finite_or_none(scoring.gap_closed(hpa_cost, s.cost_usd, oracle_cost))


def score(result: Result) -> ScoredResult:
    """Score every policy; add cost vs oracle and vs the hpa-cpu frontier at equal tau_U."""
    scores: dict[str, PolicyScore] = {}
    latency: dict[str, np.ndarray] = {}
    for name, tl in result.timelines.items():
        scores[name], latency[name] = score_timeline(tl, result)
    frontier: dict[int, PolicyScore] = {}
    for target, tl in sorted(result.frontier.items()):
        existing = next((s for n, s in scores.items() if result.timelines[n] is tl), None)
        frontier[target] = existing if existing is not None else score_timeline(tl, result)[0]
    if "oracle" in scores:
        oracle_cost = scores["oracle"].cost_usd
    else:
        # Cost vs oracle needs the oracle even when it was not asked for (it is cheap).
        oracle_cost = score_timeline(run_policy(result.prepared, Oracle()), result)[0].cost_usd
    compare(list(scores.values()), list(frontier.values()), oracle_cost)
    return ScoredResult(result, scores, latency, frontier)


def _ordered(names: list[str]) -> list[str]:
    def key(n: str) -> tuple[int, str]:
        kind = n.partition("@")[0]
        return (_ORDER.index(kind) if kind in _ORDER else len(_ORDER), n)

    return sorted(names, key=key)


def _fmt(x: float | int | None, spec: str) -> str:
    if x is None:
        return "-"
    return format(x, spec)


_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("tauU%", "tau_u_pct", ".2f"),
    ("thetaU%", "theta_u_pct", ".2f"),
    ("tauO%", "tau_o_pct", ".1f"),
    ("thetaO%", "theta_o_pct", ".1f"),
    ("jitter/h", "jitter_per_hour", ".2f"),
    ("SLO-min", "slo_violation_minutes", ".1f"),
    ("p99 p50 s", "latency_p99_p50_s", ".3f"),
    ("p99 p99 s", "latency_p99_p99_s", ".3f"),
    ("rep-h", "replica_hours", ".1f"),
    ("cost $", "cost_usd", ".2f"),
    ("x oracle", "cost_vs_oracle", ".3f"),
    ("x HPA@tauU", "cost_vs_hpa_at_equal_tau_u", ".3f"),
    ("gap closed", "gap_closed", ".2f"),
)


def table_rows(scored: ScoredResult) -> list[list[str]]:
    """Header plus one row per policy, as text."""
    rows = [["policy", *(c[0] for c in _COLUMNS)]]
    for name in _ordered(list(scored.scores)):
        s = asdict(scored.scores[name])
        rows.append([name, *(_fmt(s[attr], spec) for _, attr, spec in _COLUMNS)])
    return rows


def summary_text(scored: ScoredResult) -> str:
    """A plain-text table: the scenario line, then one row per policy."""
    prep = scored.result.prepared
    d = prep.demand
    start = pd.Timestamp(d.start, unit="s", tz="UTC")
    days = len(d) * d.tick_seconds / 86400.0
    head = (
        f"{prep.scenario.name}: {prep.workload.name} on {Path(prep.trace.path).name}, "
        f"{days:.2f} days from {start:%Y-%m-%d %H:%M}Z, {len(d)} ticks of "
        f"{d.tick_seconds:g}s, trace x{prep.scale_factor:.4g}, "
        f"under-provisioned = demand > ready x {prep.workload.capacity_rps:g}/s x "
        f"{prep.scenario.slo_utilization:g}"
    )
    rows = table_rows(scored)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [head]
    for j, r in enumerate(rows):
        lines.append(
            "  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(r))
        )
        if j == 0:
            lines.append("  ".join("-" * wd for wd in widths))
    if scored.frontier:
        pts = ", ".join(
            f"{t}%: tauU {s.tau_u_pct:.2f}% ${s.cost_usd:.2f}" for t, s in scored.frontier.items()
        )
        lines.append(f"hpa-cpu frontier: {pts}")
    lines += learnt_capacity_text(scored)
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def to_json(scored: ScoredResult) -> dict[str, Any]:
    """The scores as a JSON-ready mapping (no NaN or inf: those become null)."""
    prep = scored.result.prepared
    d = prep.demand
    out: dict[str, Any] = _clean(
        {
            "scenario": prep.scenario.name,
            "workload": prep.workload.name,
            "trace": prep.trace.path,
            "start": pd.Timestamp(d.start, unit="s", tz="UTC").isoformat(),
            "ticks": len(d),
            "tick_seconds": d.tick_seconds,
            "scale_factor": prep.scale_factor,
            "slo_utilization": prep.scenario.slo_utilization,
            "hourly_price_per_replica": prep.workload.hourly_price,
            "policies": {n: asdict(scored.scores[n]) for n in _ordered(list(scored.scores))},
            "frontier": {str(t): asdict(s) for t, s in scored.frontier.items()},
        }
    )
    return out


def write_timeline(scored: ScoredResult, path: Path) -> None:
    """One CSV row per tick and policy; header starts ``timestamp,policy,demand,...``."""
    frames = []
    for name in _ordered(list(scored.result.timelines)):
        tl = scored.result.timelines[name]
        df = tl.frame()
        df["p99_latency_s"] = scored.latency[name]
        frames.append(df)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(frames, ignore_index=True).to_csv(path, index=False, float_format="%.6g")


# ---------------------------------------------------------------------------- HTML


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _downsample(times: np.ndarray, values: np.ndarray, points: int = 3000) -> tuple[Any, Any]:
    """At most ``points`` per series for plotting: the max of each bucket keeps peaks."""
    n = values.size
    k = max(1, int(math.ceil(n / points)))
    m = n // k * k
    t = pd.to_datetime(times[:m:k], unit="s", utc=True)
    if k == 1:
        return t, values[:m]
    return t, values[:m].reshape(-1, k).max(axis=1)


def main_figure(scored: ScoredResult) -> Any:
    """Demand against capacity (Ready x capacity x SLO utilisation), one panel per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prep = scored.result.prepared
    cap = prep.workload.capacity_rps * prep.scenario.slo_utilization
    names = _ordered(list(scored.result.timelines))
    # One y scale for all panels, so that over-provisioning compares at a glance.
    fig, axes = plt.subplots(
        len(names), 1, figsize=(12, 2.2 * len(names)), sharex=True, sharey=True
    )
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, names, strict=True):
        tl = scored.result.timelines[name]
        t, dem = _downsample(tl.times, tl.demand)
        _, sup = _downsample(tl.times, tl.ready * cap)
        ax.plot(t, dem, color="black", lw=0.6, label="demand (req/s)")
        ax.plot(t, sup, color="tab:blue", lw=0.8, label="ready capacity at SLO util.")
        s = scored.scores[name]
        ax.set_title(
            f"{name}: tauU {s.tau_u_pct:.2f}%, cost ${s.cost_usd:.2f}"
            + (f" ({s.cost_vs_oracle:.2f}x oracle)" if s.cost_vs_oracle else ""),
            fontsize=9,
            loc="left",
        )
        ax.set_ylabel("req/s")
        ax.legend(loc="upper right", fontsize=7)
    fig.suptitle(f"{prep.workload.name} on {Path(prep.trace.path).name}: demand vs capacity", y=1.0)
    fig.tight_layout()
    return fig


def _series_figure(scored: ScoredResult, title: str, ylabel: str, key: str) -> Any:
    import matplotlib.pyplot as plt

    prep = scored.result.prepared
    tick = prep.demand.tick_seconds
    fig, ax = plt.subplots(figsize=(12, 3.2))
    for name in _ordered(list(scored.result.timelines)):
        tl = scored.result.timelines[name]
        if key == "replicas":
            values = tl.replicas.astype(float)
        elif key == "latency":
            values = np.where(np.isfinite(scored.latency[name]), scored.latency[name], 10.0)
            values = np.nan_to_num(values, nan=0.0)
        else:
            values = np.cumsum(tl.alive) * tick / 3600.0 * prep.workload.hourly_price
        t, v = _downsample(tl.times, values)
        ax.plot(t, v, lw=0.8, label=name)
    if key == "latency":
        ax.set_yscale("log")
        ax.axhline(prep.workload.latency.slo_p99_seconds, color="red", ls="--", lw=0.8)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    return fig


def learnt_capacity(scored: ScoredResult) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(times, learnt capacity) of every run whose controller learnt it (NaN while
    it held the replicas for lack of one)."""
    return {
        name: (tl.times, np.asarray(tl.extra["capacity_learnt"], dtype=float))
        for name, tl in scored.result.timelines.items()
        if "capacity_learnt" in tl.extra
    }


def learnt_capacity_text(scored: ScoredResult) -> list[str]:
    """One line per learning run: when it was first learnt, and where it ended, against
    the workload's true capacity."""
    truth = scored.result.prepared.workload.capacity_rps
    lines = []
    for name, (times, values) in learnt_capacity(scored).items():
        known = np.flatnonzero(np.isfinite(values))
        if not known.size:
            lines.append(f"{name}: capacity never learnt (held the replicas running)")
            continue
        first = (times[known[0]] - times[0]) / 60.0
        lines.append(
            f"{name}: capacity learnt after {first:.0f} min; final {values[known[-1]]:.4g}/s,"
            f" range {np.nanmin(values):.4g}-{np.nanmax(values):.4g}/s, against the true"
            f" {truth:g}/s"
        )
    return lines


def _learnt_figure(scored: ScoredResult) -> Any | None:
    import matplotlib.pyplot as plt

    runs = learnt_capacity(scored)
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(12, 3.2))
    for name, (times, values) in runs.items():
        ax.plot(pd.to_datetime(times, unit="s", utc=True), values, lw=1.0, label=f"{name} (learnt)")
    truth = scored.result.prepared.workload.capacity_rps
    ax.axhline(truth, color="black", ls="--", lw=0.8, label=f"true {truth:g}/s")
    ax.set_ylabel("load per replica at 100 % CPU")
    ax.set_title(
        "capacityPerReplica the controller learnt, against the truth", fontsize=10, loc="left"
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _frontier_figure(scored: ScoredResult) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if scored.frontier:
        pts = sorted((s.tau_u_pct, s.cost_usd, t) for t, s in scored.frontier.items())
        ax.plot(
            [p[0] for p in pts], [p[1] for p in pts], "o-", color="gray", label="hpa-cpu targets"
        )
        for x, y, t in pts:
            ax.annotate(f"{t}%", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for name, s in scored.scores.items():
        if name.startswith(("predictive", "oracle", "hpa-rps", "static")):
            ax.plot([s.tau_u_pct], [s.cost_usd], "*", ms=10, label=name)
    ax.set_xlabel("tau_U: % of time under-provisioned")
    ax.set_ylabel("cost $")
    ax.set_title("cost vs under-provisioning (hpa-cpu frontier)", fontsize=10, loc="left")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _beat_figure(scored: ScoredResult) -> Any | None:
    """Where prediction beat reaction: the day on which hpa-cpu fell short most often."""
    import matplotlib.pyplot as plt

    tls = scored.result.timelines
    pred = next((n for n in tls if n.startswith("predictive")), None)
    react = next((n for n in tls if n.startswith("hpa-cpu")), None)
    if pred is None or react is None:
        return None
    prep = scored.result.prepared
    cap = prep.workload.capacity_rps * prep.scenario.slo_utilization
    a, b = tls[react], tls[pred]
    short_a = a.demand > a.ready * cap
    short_b = b.demand > b.ready * cap
    won = short_a & ~short_b
    lost = short_b & ~short_a
    per_day = int(round(86400 / prep.demand.tick_seconds))
    n = a.demand.size
    if n > per_day:
        counts = np.convolve(won.astype(float), np.ones(per_day), mode="valid")
        start = int(np.argmax(counts))
    else:
        start = 0
    sl = slice(start, min(n, start + per_day))
    t = pd.to_datetime(a.times[sl], unit="s", utc=True)
    fig, ax = plt.subplots(figsize=(12, 3.5))
    ax.plot(t, a.demand[sl], color="black", lw=0.7, label="demand")
    ax.plot(t, a.ready[sl] * cap, lw=0.8, label=f"{react} ready capacity")
    ax.plot(t, b.ready[sl] * cap, lw=0.8, label=f"{pred} ready capacity")
    top = float(max(a.demand[sl].max(), 1.0))
    ax.fill_between(
        t,
        0,
        top,
        where=won[sl],
        color="green",
        alpha=0.25,
        step="post",
        label=f"{pred} covered, {react} short ({int(won.sum())} ticks overall)",
    )
    ax.fill_between(
        t,
        0,
        top,
        where=lost[sl],
        color="red",
        alpha=0.25,
        step="post",
        label=f"{react} covered, {pred} short ({int(lost.sum())} ticks overall)",
    )
    ax.set_title(
        "where prediction beat reaction (the day with the most such ticks)", fontsize=10, loc="left"
    )
    ax.set_ylabel("req/s")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def _table_html(scored: ScoredResult) -> str:
    rows = table_rows(scored)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html(
    scored: ScoredResult,
    path: Path,
    main_png: Path | None = None,
    beat_png: Path | None = None,
) -> None:
    """Write the self-contained report; optionally also the main plot and the
    where-prediction-beat-reaction plot as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    prep = scored.result.prepared
    main = main_figure(scored)
    if main_png is not None:
        main_png.parent.mkdir(parents=True, exist_ok=True)
        main.savefig(main_png, dpi=80, bbox_inches="tight")
    figures = [("Demand against capacity, per policy", _png(main))]
    figures.append(
        (
            "Replicas (spec.replicas after each HPA sync)",
            _png(_series_figure(scored, "replicas", "replicas", "replicas")),
        )
    )
    figures.append(
        (
            "p99 latency (M/M/c; unstable ticks drawn at 10 s)",
            _png(_series_figure(scored, "p99 latency", "seconds", "latency")),
        )
    )
    figures.append(
        ("Cumulative cost", _png(_series_figure(scored, "cumulative cost", "$", "cost")))
    )
    figures.append(("Cost against under-provisioning", _png(_frontier_figure(scored))))
    learnt = _learnt_figure(scored)
    if learnt is not None:
        figures.append(("Learnt capacity against the truth", _png(learnt)))
    beat = _beat_figure(scored)
    if beat is not None:
        if beat_png is not None:
            beat_png.parent.mkdir(parents=True, exist_ok=True)
            beat.savefig(beat_png, dpi=72, bbox_inches="tight")
        figures.append(("Where prediction beat reaction", _png(beat)))
    imgs = "".join(
        f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{data}'/>"
        for title, data in figures
    )
    summary = html.escape(summary_text(scored))
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Simulation: {html.escape(prep.scenario.name)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;
text-align:right}}td:first-child{{text-align:left}}img{{max-width:100%}}</style></head>
<body><h1>Simulation: {html.escape(prep.scenario.name)}</h1>
<pre>{summary}</pre>
<h2>Scores</h2>{_table_html(scored)}
<p>tau = share of time, theta = share of demand (SPEC elasticity metrics); supply =
ready pods x capacity x SLO utilisation. "x HPA@tauU" is the cost relative to the hpa-cpu
frontier read at the policy's tau_U; "gap closed" = (HPA cost at that tau_U - cost) /
(HPA cost at that tau_U - oracle cost).</p>
{imgs}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
