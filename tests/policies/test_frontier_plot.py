"""The budget frontier picture: $/month on x, the knee and the current budget named, no overlaps."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.frontier_plot import (
    HOURS_PER_MONTH,
    FrontierPoint,
    Reference,
    find_knee,
    plot_frontier,
    points_from_dicts,
    verdict,
)

#: The 3-day demo frontier of docs/cost-guard.md: (cap $/h, spend $ over 72 h, SLO min).
DEMO = [
    (0.260, 17.31, 1147.0),
    (0.371, 25.94, 201.0),
    (0.482, 30.82, 31.0),
    (0.593, 34.55, 7.2),
    (0.600, 34.55, 7.2),
    (0.704, 32.29, 7.0),
    (0.816, 32.91, 7.0),
]


def _point(limit: float | None, spend: float, minutes: float) -> FrontierPoint:
    hourly = spend / 72
    return FrontierPoint(limit, hourly * HOURS_PER_MONTH, hourly, minutes)


def demo_points() -> list[FrontierPoint]:
    return [_point(*row) for row in DEMO] + [_point(None, 33.03, 7.0)]


def test_knee_is_the_cheapest_cap_near_the_best_slo() -> None:
    knee = find_knee(demo_points())
    assert knee is not None and knee.hourly_limit == 0.704
    # Nothing swept comes close to the best: no knee, and the picture says so.
    starved = [_point(0.2, 10, 900), _point(0.3, 15, 300), _point(None, 30, 5)]
    assert find_knee(starved) is None
    assert verdict(None, None).startswith("No knee")


def test_verdict_compares_the_current_budget_with_the_knee() -> None:
    points = demo_points()
    knee = find_knee(points)
    current = next(p for p in points if p.hourly_limit == 0.6)
    text = verdict(knee, current)
    assert text.startswith("Knee: a $0.70/h cap, $327/month, 7.0 min")
    assert "current $0.60/h cap: $23/month more, 0.2 min more SLO violation" in text


def test_points_from_the_frontier_commands_json() -> None:
    (p, q) = points_from_dicts(
        [
            {
                "hourlyLimit": 0.5,
                "monthlyCost": 300,
                "averageHourlyCost": 0.41,
                "sloViolationMinutes": 3,
                "tauU": 0.2,
            },
            {
                "hourlyLimit": None,
                "monthlyCost": 330,
                "averageHourlyCost": 0.45,
                "sloViolationMinutes": 2,
            },
        ]
    )
    assert p == FrontierPoint(0.5, 300.0, 0.41, 3.0, 0.2) and q.hourly_limit is None


def test_picture_names_knee_and_budget_and_labels_do_not_overlap(tmp_path: Path) -> None:
    path = tmp_path / "frontier.png"
    references = [
        Reference("hpa-cpu (no budget)", 25.59 / 72 * HOURS_PER_MONTH, 137.8),
        Reference("oracle (no budget)", 21.17 / 72 * HOURS_PER_MONTH, 2.0),
    ]
    picture = plot_frontier(
        demo_points(),
        path,
        title="What a budget costs in SLO: demo",
        current_hourly_limit=0.6,
        references=references,
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.knee is not None and picture.knee.hourly_limit == 0.704
    texts = [t for t, _ in picture.labels]
    assert any(t.startswith("KNEE\n$0.70/h cap: $327/mo") for t in texts), texts
    assert any(t.startswith("CURRENT BUDGET\n") and "$0.60/h" in t for t in texts), texts
    assert any(t.startswith("no budget: $335/mo") for t in texts), texts
    # The two runs that land on one spot ($0.593/h and $0.60/h) share one label.
    assert len(texts) == len(DEMO) - 1 + 1 + len(references)
    boxes = [b for _, b in picture.labels]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            assert not overlap, (a, b)


def test_plot_needs_points(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frontier points"):
        plot_frontier([], tmp_path / "x.png", title="t")


def test_report_plots_dollars_per_month(tmp_path: Path) -> None:
    """The report's rows (spend over the replay) become $/month on the picture."""
    from autoscaler.cli.budget import ReportRow, _plot_frontier

    def row(
        label: str, policy: str, limit: float | None, spend: float, minutes: float
    ) -> ReportRow:
        return ReportRow(
            label=label, policy=policy, hourly_limit=limit, cost_usd=spend,
            slo_violation_minutes=minutes, tau_u_pct=0.0, clamped_ticks=None, ticks=1,
            ledger_spent=spend, month="1995-07", burn_rate=0.0, projected=0.0, hours=72.0,
        )  # fmt: skip

    rows = [row("hpa-cpu (no budget)", "hpa-cpu", None, 25.59, 137.8)]
    rows.append(row("predictive, no budget", "predictive", None, 33.03, 7.0))
    rows += [row(f"predictive @ ${c:.3f}/h", "predictive", c, s, m) for c, s, m in DEMO]
    knee = _plot_frontier(rows, tmp_path / "f.png", "demo", 0.6)
    assert knee is not None and knee.hourly_limit == 0.704
    assert knee.monthly_cost == pytest.approx(32.29 / 72 * 730)


def test_coincident_caps_are_not_beaten_but_dearer_equal_ones_are() -> None:
    """Two caps the guard never reached land on one spot: both are on the frontier."""
    from autoscaler.frontier_plot import efficient

    a, b = _point(0.593, 28.47, 10.0), _point(0.6, 28.47, 10.0)
    knee, dearer = _point(0.704, 29.51, 7.0), _point(0.816, 29.64, 7.0)
    front = efficient([dearer, b, a, knee, _point(None, 29.91, 8.0)])
    assert front == [a, b, knee]
