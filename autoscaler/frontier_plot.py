"""The budget frontier picture: SLO-violation minutes against dollars per month.

Why a module of its own, on plain data: ``autoscaler budget report --frontier`` draws
it from simulated runs, and ``autoscaler budget frontier`` will draw it from its own
sweep; neither should need the other's types. Input is a list of ``FrontierPoint``
(one per hourly limit swept, plus the uncapped run), optional reference runs (other
policies, e.g. the stock HPA) and the hourly limit of the budget in force.

What a finance reader must get at a glance, and how the picture gives it:

* x is **dollars per month** (the run's average hourly cost x 730 h), with the
  average $/h on the top axis; y is SLO-violation minutes on a scale that is linear
  below 1 minute and logarithmic above, with plain tick labels (0, 1, 2, 5, 10, 20,
  50, ...), so 3 minutes and 1,000 minutes both read off it;
* the **knee** is marked and named: the cheapest budget that gets (nearly) the best
  SLO of the sweep; more money buys nothing beyond it (``find_knee``);
* the **current budget** is ringed and named; the **uncapped** run is marked
  "no budget";
* labels never overlap: each is placed at the first free spot around its point, and
  points that land on the same spot share one label.

Callers: ``autoscaler.cli.budget`` (``report --frontier``); ``autoscaler.cli.frontier``
(``budget frontier``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Hours in an average month (8,760 / 12): how an hourly cost becomes a monthly one.
HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class FrontierPoint:
    """One run: a budget (hourly limit; None = no budget) and what it cost and gave."""

    hourly_limit: float | None
    monthly_cost: float
    average_hourly_cost: float
    slo_violation_minutes: float
    tau_u: float = 0.0


@dataclass(frozen=True)
class Reference:
    """Another policy's run, drawn as a marker for comparison (e.g. the stock HPA)."""

    label: str
    monthly_cost: float
    slo_violation_minutes: float


@dataclass(frozen=True)
class FrontierPicture:
    """What ``plot_frontier`` drew: the knee, and each label with its box (pixels)."""

    knee: FrontierPoint | None
    #: (text, (x0, y0, x1, y1)) of every label, in display pixels
    labels: tuple[tuple[str, tuple[float, float, float, float]], ...]


def points_from_dicts(rows: Sequence[Mapping[str, Any]]) -> list[FrontierPoint]:
    """``FrontierPoint``s from camelCase dicts (the ``frontier`` command's JSON).

    Keys: ``hourlyLimit`` (null = uncapped), ``monthlyCost``, ``averageHourlyCost``,
    ``sloViolationMinutes``, ``tauU``.
    """
    return [
        FrontierPoint(
            hourly_limit=None if r.get("hourlyLimit") is None else float(r["hourlyLimit"]),
            monthly_cost=float(r["monthlyCost"]),
            average_hourly_cost=float(r["averageHourlyCost"]),
            slo_violation_minutes=float(r["sloViolationMinutes"]),
            tau_u=float(r.get("tauU", 0.0)),
        )
        for r in rows
    ]


#: How close to the best SLO the knee must be: 10 %, or 1 minute when that is more.
KNEE_TOLERANCE = 0.10
KNEE_MINUTES = 1.0


def efficient(points: Sequence[FrontierPoint]) -> list[FrontierPoint]:
    """The capped points no other capped point beats, by monthly cost.

    Beaten: another costs no more and violates the SLO no longer, and is strictly
    better on one of the two. Runs that land on the same spot (two caps the guard
    never reached) beat neither: both stay.
    """
    capped = [p for p in points if p.hourly_limit is not None]

    def beaten(p: FrontierPoint) -> bool:
        return any(
            q.monthly_cost <= p.monthly_cost
            and q.slo_violation_minutes <= p.slo_violation_minutes
            and (
                q.monthly_cost < p.monthly_cost or q.slo_violation_minutes < p.slo_violation_minutes
            )
            for q in capped
        )

    return sorted(
        (p for p in capped if not beaten(p)),
        key=lambda p: (p.monthly_cost, p.slo_violation_minutes, _limit(p)),
    )


def find_knee(points: Sequence[FrontierPoint]) -> FrontierPoint | None:
    """The budget after which more money buys (almost) no SLO: the frontier's knee.

    The cheapest capped run whose SLO-violation minutes are within 10 % (or 1 minute,
    whichever is more) of the best run's, the uncapped run included. Below it, the
    curve says what each dollar saved costs in SLO; above it, money buys nothing.
    (A maximum-curvature rule was tried: with SLO minutes spanning three orders of
    magnitude it picked a budget with 30x the violations of the best one.) None when
    no capped run comes that close: every budget swept still costs SLO.
    """
    capped = [p for p in points if p.hourly_limit is not None]
    if not capped:
        return None
    best = min(p.slo_violation_minutes for p in points)
    enough = best + max(KNEE_MINUTES, KNEE_TOLERANCE * best)
    near = [p for p in capped if p.slo_violation_minutes <= enough]
    return min(near, key=lambda p: (p.monthly_cost, _limit(p)), default=None)


def verdict(knee: FrontierPoint | None, current: FrontierPoint | None) -> str:
    """One line for finance: the knee, and the budget in force against it."""
    if knee is None:
        return "No knee: every cap swept still costs SLO minutes; sweep higher caps."
    text = (
        f"Knee: a ${_limit(knee):.2f}/h cap, {_money(knee.monthly_cost)}/month,"
        f" {_minutes(knee.slo_violation_minutes)}"
    )
    if current is None or current is knee:
        return text + (" (the current budget)" if current is knee else "")
    diff = current.monthly_cost - knee.monthly_cost
    more = current.slo_violation_minutes - knee.slo_violation_minutes
    return (
        text + f"; current ${_limit(current):.2f}/h cap: ${abs(diff):,.0f}/month"
        f" {'more' if diff >= 0 else 'less'}, {_minutes(abs(more))}"
        f" {'more' if more >= 0 else 'fewer'} SLO violation"
    )


def _money(value: float) -> str:
    return f"${value:,.0f}" if value >= 100 else f"${value:,.2f}"


def _minutes(value: float) -> str:
    return f"{value:,.0f} min" if value >= 10 else f"{value:.1f} min"


def plot_frontier(
    points: Sequence[FrontierPoint],
    path: Path,
    *,
    title: str,
    current_hourly_limit: float | None = None,
    references: Sequence[Reference] = (),
    subtitle: str = "",
) -> FrontierPicture:
    """Draw the frontier PNG at ``path``; return the knee and where the labels went.

    ``points``: the capped runs and at most one uncapped (``hourly_limit`` None).
    ``current_hourly_limit``: the budget in force; the capped point with that limit is
    ringed and named "current budget". Raises ``OSError`` if ``path`` cannot be written.
    """
    if not points:
        raise ValueError("no frontier points to plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    capped = sorted((p for p in points if p.hourly_limit is not None), key=_limit)
    uncapped = [p for p in points if p.hourly_limit is None]
    knee = find_knee(points)
    current = (
        None
        if current_hourly_limit is None
        else min(
            capped,
            key=lambda p: abs(_limit(p) - current_hourly_limit),
            default=None,
        )
    )

    fig, ax = plt.subplots(figsize=(10, 6.2), dpi=110)
    ax.set_yscale("symlog", linthresh=1.0, linscale=0.6)
    top = max(
        [p.slo_violation_minutes for p in points]
        + [r.slo_violation_minutes for r in references]
        + [10.0]
    )
    ticks = [t for t in _TICKS if t <= top * 1.6]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylim(-0.15, top * 1.8)

    front = efficient(points)
    ax.plot(
        [p.monthly_cost for p in front],
        [p.slo_violation_minutes for p in front],
        "-o",
        color="tab:blue",
        ms=6,
        lw=1.8,
        zorder=3,
        label="the frontier: predictive + cost guard, one point per hourly cap",
    )
    beaten = [p for p in capped if p not in front]
    if beaten:
        ax.plot(
            [p.monthly_cost for p in beaten],
            [p.slo_violation_minutes for p in beaten],
            "o",
            mfc="white",
            mec="tab:blue",
            mew=1.5,
            ms=7,
            zorder=3,
            label="a cap that a cheaper cap beats (costs more, no better SLO)",
        )
    for p in uncapped:
        ax.plot(
            [p.monthly_cost],
            [p.slo_violation_minutes],
            "D",
            color="tab:purple",
            ms=9,
            zorder=4,
            label="predictive, no budget",
        )
    markers = ["s", "*", "^", "v", "P", "X"]
    colors = ["tab:red", "tab:green", "tab:orange", "tab:brown", "tab:pink", "tab:gray"]
    for i, r in enumerate(references):
        ax.plot(
            [r.monthly_cost],
            [r.slo_violation_minutes],
            markers[i % len(markers)],
            color=colors[i % len(colors)],
            ms=11 if markers[i % len(markers)] == "*" else 9,
            zorder=4,
            label=r.label,
        )

    def ring(p: FrontierPoint, size: float, color: str, width: float, label: str) -> None:
        ax.plot(
            [p.monthly_cost],
            [p.slo_violation_minutes],
            "o",
            ms=size,
            mfc="none",
            mec=color,
            mew=width,
            zorder=7,
            label=label,
        )

    if current is not None:
        ring(current, 17, "black", 2, "current budget")
    if knee is not None:
        ring(
            knee,
            22,
            "tab:orange",
            3,
            "knee: the cheapest cap within 10 % (or 1 min) of the best SLO",
        )
        ax.axvline(knee.monthly_cost, color="tab:orange", lw=1, ls="--", zorder=1)

    # Labels: one per spot (points that coincide share it), placed where it is free.
    labels: list[tuple[float, float, str, str]] = []  # x, y, text, weight
    groups: list[list[FrontierPoint]] = []
    for p in capped:
        for g in groups:
            q = g[0]
            if _close(p, q, ax):
                g.append(p)
                break
        else:
            groups.append([p])
    for g in groups:
        caps = " = ".join(f"${_limit(p):.2f}/h" for p in g)
        p = g[0]
        text = f"{caps} cap: {_money(p.monthly_cost)}/mo, {_minutes(p.slo_violation_minutes)}"
        weight = "normal"
        names = []
        if knee is not None and knee in g:
            names.append("KNEE")
        if current is not None and current in g:
            names.append("CURRENT BUDGET")
        if names:
            text = " + ".join(names) + "\n" + text
            weight = "bold"
        labels.append((p.monthly_cost, p.slo_violation_minutes, text, weight))
    for p in uncapped:
        labels.append(
            (
                p.monthly_cost,
                p.slo_violation_minutes,
                f"no budget: {_money(p.monthly_cost)}/mo, {_minutes(p.slo_violation_minutes)}",
                "normal",
            )
        )
    for r in references:
        labels.append(
            (
                r.monthly_cost,
                r.slo_violation_minutes,
                f"{r.label}: {_money(r.monthly_cost)}/mo, {_minutes(r.slo_violation_minutes)}",
                "normal",
            )
        )
    # Named points first: they get the best spots.
    labels.sort(key=lambda item: item[3] != "bold")

    xs = [p.monthly_cost for p in points] + [r.monthly_cost for r in references]
    span = (max(xs) - min(xs)) or max(1.0, 0.1 * abs(xs[0]))
    ax.set_xlim(min(xs) - 0.08 * span, max(xs) + 0.45 * span)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:,.0f}"))
    ax.set_xlabel(f"dollars per month (the run's average hourly cost x {HOURS_PER_MONTH:.0f} h)")
    ax.set_ylabel("SLO-violation minutes (p99 latency above the SLO)")
    top_axis = ax.secondary_xaxis("top", functions=(_per_hour, _per_month))
    top_axis.set_xlabel("average dollars per hour")
    top_axis.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _dollars_per_hour(v)))
    heading = _plain("\n".join(t for t in (title, subtitle, verdict(knee, current)) if t))
    ax.set_title(heading, fontsize=11)
    ax.grid(alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    fig.legend(
        handles, [_plain(n) for n in names], fontsize=8, loc="lower center", ncol=2, frameon=False
    )
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    placed = _place_labels(fig, ax, labels)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return FrontierPicture(knee, tuple(placed))


#: y ticks: plain numbers a reader can read off, at 1-2-5 steps.
_TICKS = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000]


def _limit(p: FrontierPoint) -> float:
    return float("inf") if p.hourly_limit is None else p.hourly_limit


def _close(p: FrontierPoint, q: FrontierPoint, ax: Any) -> bool:
    """Whether two points land on (nearly) the same spot of the picture."""
    a = ax.transData.transform((p.monthly_cost, p.slo_violation_minutes))
    b = ax.transData.transform((q.monthly_cost, q.slo_violation_minutes))
    return bool(abs(a[0] - b[0]) < 6 and abs(a[1] - b[1]) < 6)


#: Where a label may go relative to its point (in points), nearest first: 16
#: directions at growing distances.
_OFFSETS = [
    (round(r * math.cos(math.radians(a))), round(r * math.sin(math.radians(a))))
    for r in (12, 30, 55, 85, 120)
    for a in (30, -30, 150, -150, 60, -60, 120, -120, 0, 180, 90, -90, 15, -15, 165, -165)
]


def _place_labels(
    fig: Any, ax: Any, labels: list[tuple[float, float, str, str]]
) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Annotate each point at the first offset whose box overlaps nothing placed yet."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    taken = []
    # The markers themselves are obstacles too.
    for x, y, _, weight in labels:
        cx, cy = ax.transData.transform((x, y))
        r = 18 if weight == "bold" else 9  # the knee's and the budget's rings are wider
        taken.append(_box(cx - r, cy - r, cx + r, cy + r))
    frame = ax.get_window_extent(renderer)
    out: list[tuple[str, tuple[float, float, float, float]]] = []
    for x, y, text, weight in labels:
        placed = None
        for dx, dy in _OFFSETS:
            ann = ax.annotate(
                _plain(text),
                (x, y),
                textcoords="offset points",
                xytext=(dx, dy),
                fontsize=8,
                fontweight=weight,
                ha="left" if dx > 0 else ("right" if dx < 0 else "center"),
                va="bottom" if dy >= 0 else "top",
                arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6},
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
                zorder=6,
            )
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer)  # the text alone, not the leader
            inside = (
                box.x0 >= frame.x0
                and box.x1 <= frame.x1
                and box.y0 >= frame.y0
                and box.y1 <= frame.y1
            )
            own = _box(*ax.transData.transform((x, y)), *ax.transData.transform((x, y)))
            if inside and not any(box.overlaps(t) for t in taken if not _same(t, own)):
                placed = box
                break
            ann.remove()
        if placed is None:  # nowhere free: the first spot, better than no label
            dx, dy = _OFFSETS[0]
            ann = ax.annotate(
                _plain(text),
                (x, y),
                textcoords="offset points",
                xytext=(dx, dy),
                fontsize=8,
                fontweight=weight,
                zorder=6,
            )
            ann.update_positions(renderer)
            placed = Text.get_window_extent(ann, renderer)
        taken.append(placed)
        out.append((text, (placed.x0, placed.y0, placed.x1, placed.y1)))
    return out


def _dollars_per_hour(value: float) -> str:
    """A tick of the $/h axis: cents, or tenths of a cent where a tick falls between
    (0.275 is "$0.275", not "$0.28")."""
    return f"${value:.2f}" if abs(value * 100 - round(value * 100)) < 1e-6 else f"${value:.3f}"


def _per_hour(monthly: Any) -> Any:
    return monthly / HOURS_PER_MONTH


def _per_month(hourly: Any) -> Any:
    return hourly * HOURS_PER_MONTH


def _plain(text: str) -> str:
    """Dollar signs as text, not as matplotlib's math mode."""
    return text.replace("$", r"\$")


def _box(x0: float, y0: float, x1: float, y1: float) -> Any:
    from matplotlib.transforms import Bbox

    return Bbox([[x0, y0], [x1, y1]])


def _same(a: Any, b: Any) -> bool:
    ca = ((a.x0 + a.x1) / 2, (a.y0 + a.y1) / 2)
    cb = ((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2)
    return bool(abs(ca[0] - cb[0]) < 1 and abs(ca[1] - cb[1]) < 1)
