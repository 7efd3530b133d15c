"""Issue 4's table: does predictive scaling pay, on every trace?

For each trace: the workload serves 20 requests/s per replica at 100 % CPU, every pod
starts in exactly 90 s, under-provisioned means demand > Ready x 20 x 0.85, the HPA
syncs every 15 s with default behaviour, and the trace is scaled so that its 99.9th
percentile rate needs 40 replicas at 70 % utilisation (``--peak 400`` for the
World-Cup-like check). Policies: ``hpa-cpu`` swept over targets (its cost-versus-tau_U
frontier), ``predictive`` at its defaults, ``oracle``. It reports tau_U, theta_U, cost
versus the oracle, cost versus the HPA at equal tau_U, and the share of the
HPA-to-oracle gap closed: the same scoring as ``autoscaler simulate --json``.

    .venv/bin/python benchmarks/predictive_vs_hpa.py [--days 14] [--traces DIR ...]
        [--offset-days 0] [--unseen] [--peak 40] [--workers 2] [--json OUT.json]
        [--reports DIR]

``--unseen`` adds the held-out traces of ``benchmarks/unseen_traces.py`` (generated
into out/unseen first). Long traces are cut to their first ``--days`` days so that a
run fits in minutes on 2 cores; the window is the same for every policy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

FRONTIER = [10, 20, 30, 40, 50, 60, 70, 80, 90]


def scenario_data(
    trace: str, days: float, peak: int, observe: float, offset_days: float = 0.0
) -> dict[str, Any]:
    """The scenario of issue 4's setting for one trace (shared with other benchmarks)."""
    from models.traces import load_trace

    period: dict[str, Any] = {"days": days}
    if offset_days > 0:
        first = load_trace(trace).series.index[0]
        period["start"] = (first + pd.Timedelta(days=offset_days)).isoformat()

    data = {
        "name": Path(trace).stem,
        "workload": {
            "name": "issue4",
            "capacity_rps": 20.0,
            "startup": {"distribution": "fixed", "seconds": 90.0},
            "min_replicas": 1,
            "max_replicas": max(500, peak * 4),
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"cpu": "2000m", "memory": "4Gi"},
            },
        },
        "trace": str(trace),
        "period": period,
        "scale_to_peak_replicas": peak,
        "slo_utilization": 0.85,
        "policies": ["hpa-cpu", "predictive", "oracle"],
        "frontier_targets": FRONTIER,
    }
    if observe > 0:
        data["observe_seconds"] = observe
    return data


def trace_list(given: list[str] | None, unseen: bool) -> list[Path]:
    """The traces given (default: the bundled ones), plus the held-out ones if asked."""
    traces = (
        [Path(t) for t in given]
        if given
        else sorted((ROOT / "simulations" / "traces").glob("*.csv"))
    )
    if unseen:
        from unseen_traces import generate

        traces += generate(ROOT / "out" / "unseen", seed=0)
    return traces


def gather(futures: dict[str, Future[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Every run's result; bad input (a trace that will not load) ends the script with
    its one-line message and exit status 2, as the CLI does, not a traceback."""
    from models.errors import InputError

    try:
        return {name: f.result() for name, f in futures.items()}
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def run_one(
    trace: str,
    days: float,
    peak: int,
    observe: float,
    reports: Path | None = None,
    offset_days: float = 0.0,
) -> dict[str, Any]:
    from autoscaler.cli.simworld import controller_for
    from simulations import report
    from simulations.scenario import prepare, scenario_from_dict, simulate

    data = scenario_data(trace, days, peak, observe, offset_days)
    t0 = time.perf_counter()
    scenario = scenario_from_dict(data, trace)
    result = simulate(prepare(scenario, controller=controller_for), frontier=True, workers=1)
    scored = report.score(result)
    out = report.to_json(scored)
    if reports is not None:
        stem = Path(trace).stem + (f"-peak{peak}" if peak != 40 else "")
        report.write_html(scored, reports / f"{stem}.html", beat_png=reports / f"{stem}-beat.png")
    out["seconds"] = time.perf_counter() - t0
    return out


def add_run_args(ap: argparse.ArgumentParser) -> None:
    """The options every issue-4 run script shares: which traces, which window, how."""
    ap.add_argument("--traces", nargs="*", default=None, help="trace CSVs (default: bundled)")
    ap.add_argument("--unseen", action="store_true", help="add the held-out traces")
    ap.add_argument("--days", type=float, default=14.0)
    ap.add_argument("--peak", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_args(ap)
    ap.add_argument(
        "--offset-days",
        type=float,
        default=0.0,
        help="start this many days into each trace (a later window than the first)",
    )
    ap.add_argument(
        "--observe",
        type=float,
        default=0.0,
        help="seconds between the load samples the predictive policy sees; 0 (default): "
        "the trace's own resolution, each interval visible from its start as the stock "
        "HPA's CPU metric shows it",
    )
    ap.add_argument(
        "--reports",
        type=Path,
        default=None,
        help="write each trace's HTML report and its where-prediction-beat-reaction PNG here",
    )
    args = ap.parse_args()
    traces = trace_list(args.traces, args.unseen)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {
            str(t): pool.submit(
                run_one,
                str(t),
                args.days,
                args.peak,
                args.observe,
                args.reports,
                args.offset_days,
            )
            for t in traces
        }
        results = gather(futures)
    wall = time.perf_counter() - t0
    header = (
        f"{'trace':34} {'policy':14} {'tau_U %':>8} {'theta_U %':>9} {'x oracle':>8} "
        f"{'x HPA@tauU':>10} {'gap closed':>10}"
    )
    print(
        f"days={args.days:g} offset={args.offset_days:g} peak={args.peak} "
        f"observe={args.observe:g}s wall={wall:.0f}s"
    )
    print(header)
    rows: dict[str, Any] = {}
    for name, res in results.items():
        trace = Path(name).stem
        pol = res["policies"]
        front = res["frontier"]
        lines = [(f"hpa-cpu@{t}", front[str(t)]) for t in (50, 60, 70) if str(t) in front]
        lines += [("predictive", pol["predictive"]), ("oracle", pol["oracle"])]
        oracle_cost = pol["oracle"]["cost_usd"]
        rows[trace] = {}
        for label, s in lines:
            x_oracle = s["cost_usd"] / oracle_cost if oracle_cost else float("nan")
            hpa = s.get("cost_vs_hpa_at_equal_tau_u")
            gap = s.get("gap_closed")
            print(
                f"{trace:34} {label:14} {s['tau_u_pct']:8.2f} {s['theta_u_pct']:9.2f} "
                f"{x_oracle:8.2f} {'' if hpa is None else f'{hpa:10.2f}':>10} "
                f"{'' if gap is None else f'{gap:10.2f}':>10}"
            )
            rows[trace][label] = {
                "tau_u_pct": s["tau_u_pct"],
                "theta_u_pct": s["theta_u_pct"],
                "cost_vs_oracle": x_oracle,
                "cost_vs_hpa_at_equal_tau_u": hpa,
                "gap_closed": gap,
            }
        rows[trace]["frontier"] = {
            t: (v["tau_u_pct"], v["cost_usd"] / oracle_cost) for t, v in front.items()
        }
        rows[trace]["seconds"] = res["seconds"]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
