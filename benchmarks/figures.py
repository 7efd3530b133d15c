"""Regenerate every benchmark page in docs/benchmarks/ from the current code: one command.

    make figures
    # which runs:
    python benchmarks/figures.py
        [--areas forecasting,simulator,cost-guard,controller,api,prometheus,hpa]
        [--days 7] [--every 5] [--workers 2] [--out docs/benchmarks] [--index docs/benchmarks.md]

One page per area (``forecasting.md``, ``simulator.md``, ``cost-guard.md``,
``controller.md``, ``api.md``, ``prometheus.md``, ``hpa.md``) and the short index
``docs/benchmarks.md``. Every table on a page is written here from the output of ONE
benchmark script, run in a fresh process, whose exact command is printed above the
table; each page names the commit, the machine (and its load before and after) and the
scope of the run, and each table a baseline measured in the same run. Nothing on those
pages is edited by hand: to change a figure, change the code and run this again.

Scope (so that the whole run fits in well under 40 minutes on 2 shared cores): the
forecast backtests score every ``--every``-th origin; the simulations use the first
``--days`` days of each trace; the API load runs 3 rounds of 3-s ``wrk`` runs (the
script's default is 6 s); the Prometheus source backfills 24 h. ``--quick --trace
FILE`` is the smoke test's mode: one tiny trace, few models, no slow parts (no API
load, Prometheus or HPA-latency run; ``tests/test_figures.py``).

The NYC taxi result rests on its 30-minute steps; the forecasting and simulator pages
also score the same data, cut to its first ``VARIANT_DAYS`` days, at 30 minutes and
linearly interpolated to 1 minute (``step_variants``), so that the dependence shows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AREAS = ("forecasting", "simulator", "cost-guard", "controller", "api", "prometheus", "hpa")
TAXI = ROOT / "simulations" / "traces" / "nab_nyc_taxi_30min.csv"
VARIANT_DAYS = 14
HOURS = 48  # reconcile.py's default history
MODELS = "auto,last,seasonal-naive,seasonal-naive-weekly,last-hour-mean"
SIMPLE = ("last", "seasonal-naive", "seasonal-naive-weekly", "last-hour-mean")
HEADLINE = ("<!-- headline -->", "<!-- /headline -->")


@dataclass
class Options:
    out: Path
    index: Path
    areas: tuple[str, ...]
    days: float = 7.0
    every: int = 5
    workers: int = 2
    quick: bool = False
    trace: Path | None = None
    work: Path = ROOT / "out" / "figures"
    before: str = "a6aa0cb"
    commit: str = ""


@dataclass
class Run:
    """One benchmark script, run once in a fresh process."""

    argv: list[str]
    stdout: str
    wall: float
    cpu: float
    ok: bool
    error: str = ""

    @property
    def command(self) -> str:
        args = [a if not a.startswith(str(ROOT)) else os.path.relpath(a, ROOT) for a in self.argv]
        return "python " + " ".join(shlex.quote(a) for a in args[1:])


@dataclass
class Page:
    title: str
    scope: str
    headline: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


# --- the run's facts --------------------------------------------------------------------


def git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def commit() -> str:
    """The short hash of HEAD, and whether the code (not the docs) differs from it."""
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", ".", ":!docs", ":!out")
    return head + (" with uncommitted changes to the code" if dirty else "")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.machine()}, {cpu}, {os.cpu_count()} cores (shared), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def run(argv: Sequence[str], timeout: float | None = None) -> Run:
    """Run one benchmark script with this checkout's code first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")]))
    argv = [sys.executable, *argv]
    print("$", " ".join(argv), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # A session of its own, so that a timeout also ends what the script started (the
    # reconcile benchmark's Prometheus server), and nothing else.
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        ok = proc.returncode == 0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        ok, err = False, f"stopped after {timeout:g} s"
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    wall = time.perf_counter() - t0
    tail = "\n".join(err.strip().splitlines()[-5:])
    print(f"  {'ok' if ok else 'FAILED'} in {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    if not ok:
        print(tail, file=sys.stderr)
    return Run(argv, out, wall, cpu, ok, tail)


def script(name: str) -> str:
    return str(ROOT / "benchmarks" / name)


def fence(text: str, lang: str = "") -> list[str]:
    return [f"```{lang}", text.rstrip(), "```", ""]


def ran(r: Run) -> list[str]:
    line = f"({r.wall:.0f} s wall, {r.cpu:.0f} s CPU)"
    if r.ok:
        return [*fence(r.command), line, ""]
    return [*fence(r.command), f"**Did not finish** {line}: {r.error or 'no output'}", ""]


def fmt(x: Any, spec: str = ".3f") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return format(x, spec)


# --- traces -----------------------------------------------------------------------------


def step_variants(trace: Path, into: Path, days: float = VARIANT_DAYS) -> tuple[Path, Path]:
    """The first ``days`` days of ``trace`` at its own step, and the same data linearly
    interpolated to 1-minute rows (the rate per second interpolated between the interval
    midpoints, held flat at the ends; written as a count per minute, i.e. 60 x the rate,
    so that the default ``per-interval`` loader reads it)."""
    from models.traces import load_trace

    tr = load_trace(trace)
    y, step = tr.series, float(tr.step_seconds)
    y = y[y.index < y.index[0] + pd.Timedelta(days=days)]
    into.mkdir(parents=True, exist_ok=True)
    stem = trace.stem.rsplit("_", 1)[0] if re.search(r"_\d+(min|s|h)$", trace.stem) else trace.stem
    own = into / f"{stem}_{days:g}d_{step / 60:g}min.csv"
    fine = into / f"{stem}_{days:g}d_interp_1min.csv"
    t0 = y.index[0]
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    pd.DataFrame({"timestamp": y.index.strftime(stamp), "value": y.to_numpy()}).to_csv(
        own, index=False
    )
    mid = (y.index - t0).total_seconds().to_numpy() + step / 2
    grid = np.arange(0.0, len(y) * step, 60.0)
    rate = np.interp(grid + 30.0, mid, y.to_numpy() / step)
    idx = t0 + pd.to_timedelta(grid, unit="s")
    pd.DataFrame({"timestamp": idx.strftime(stamp), "value": np.round(rate * 60.0, 3)}).to_csv(
        fine, index=False
    )
    return own, fine


def tiny_trace(path: Path, days: float = 3.0, step: int = 300, seed: int = 1) -> Path:
    """A small seeded trace (daily cycle, Poisson counts) for the smoke test."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(days * 86400 / step)) * step
    rate = 40 * (1 + 0.6 * np.sin(2 * np.pi * t / 86400))
    idx = pd.date_range("2026-01-05", periods=t.size, freq=f"{step}s", tz="UTC")
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"timestamp": idx.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": rng.poisson(rate)}
    ).to_csv(path, index=False)
    return path


# --- forecasting ------------------------------------------------------------------------


def leaderboard_table(data: dict[str, Any], horizon: str = "120s") -> list[str]:
    rows = [
        "| trace | best simple baseline (same run) | baseline q0.9 pinball "
        "| `auto` q0.9 pinball | **auto / baseline** | `auto` q0.9 coverage |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, table in data.items():
        if not key.endswith(f"@ {horizon}"):
            continue
        trace = key.rsplit(" @ ", 1)[0]
        auto = table.get("auto", {})
        base = auto.get("baseline") or next(iter(table.values())).get("baseline", "-")
        base_loss = table.get(base, {}).get("pinball", {}).get("0.9")
        rows.append(
            f"| {trace} | {base} | {fmt(base_loss, '.4g')} "
            f"| {fmt(auto.get('pinball', {}).get('0.9'), '.4g')} "
            f"| **{fmt(auto.get('pinball_ratio', {}).get('0.9'))}** "
            f"| {fmt(auto.get('coverage', {}).get('0.9'))} |"
        )
    return [*rows, ""]


def ratios(data: dict[str, Any], horizon: str = "120s") -> dict[str, float]:
    out = {}
    for key, table in data.items():
        if key.endswith(f"@ {horizon}") and "auto" in table:
            out[key.rsplit(" @ ", 1)[0]] = table["auto"].get("pinball_ratio", {}).get("0.9")
    return out


def forecasting(o: Options) -> Page:
    models = "auto,last" if o.quick else MODELS
    every = max(o.every, 10) if o.quick else o.every
    page = Page(
        "Forecasting",
        f"rolling-origin backtests scoring every {every}th origin (`--every {every}`, "
        "the leaderboard's stride option: scoring every origin takes about that many "
        "times longer; the ratios move with the stride, by up to ~0.1 on Twitter in "
        "earlier runs), horizon 2 minutes, "
        f"warm-up one day from the series' start, refit daily; models {models}",
    )
    lb = o.work / "leaderboard.json"
    traces = ["--no-bundled", "--trace-files", str(o.trace)] if o.trace else []
    argv = [script("forecast_leaderboard.py"), "--every", str(every), "--horizons", "120"]
    r = run([*argv, "--models", models, *traces, "--json", str(lb)])
    page.body += [
        "## Accuracy against the simple baselines",
        "",
        "The q0.9 pinball loss of `auto` divided by that of the best of the simple "
        f"baselines ({', '.join(SIMPLE)}), each scored on the same origins in the same "
        "run (bar: <= 0.85), and the share of actual values at or below `auto`'s q0.9 "
        "(bar: 0.87-0.93).",
        "",
        *ran(r),
    ]
    if r.ok:
        data = json.loads(lb.read_text())
        page.body += leaderboard_table(data)
        rs = {k: v for k, v in ratios(data).items() if v is not None}
        if rs:
            met = sorted(k for k, v in rs.items() if v <= 0.85)
            page.headline.append(
                f"`auto` q0.9 pinball / best simple baseline, 2-min horizon, every {every}th "
                f"origin: {', '.join(f'{k} {v:.2f}' for k, v in rs.items())} "
                f"(bar <= 0.85: met on {len(met)} of {len(rs)}). Depends on the stride "
                "(ratios moved by up to ~0.1 with it before), on the horizon being one "
                "step on the 30-min and hourly traces, and on the whole trace being scored"
            )
    else:
        page.missing.append(f"the leaderboard: {r.error}")

    # What the taxi figure rests on: the same days at 30 minutes and at 1 minute.
    src = o.trace or TAXI
    vdays = 2 if o.quick else VARIANT_DAYS
    own, fine = step_variants(src, o.work / "variants", days=vdays)
    lb2 = o.work / "leaderboard-steps.json"
    r = run(
        [*argv, "--models", models, "--no-bundled", "--trace-files", str(own), str(fine)]
        + ["--json", str(lb2)]
    )
    page.body += [
        "## What the taxi figure rests on: its 30-minute steps",
        "",
        f"The same data, cut to its first {vdays} days, at "
        "its own 30-minute step and linearly interpolated to 1-minute rows "
        "(`step_variants` in `benchmarks/figures.py`). At 30-minute steps a 2-minute "
        "horizon is one step (30 minutes ahead, where `last` is weak); at 1 minute it is "
        "2 steps, and `last` is a much harder baseline.",
        "",
        *ran(r),
    ]
    if r.ok:
        data = json.loads(lb2.read_text())
        page.body += leaderboard_table(data)
        rs = ratios(data)
        if len(rs) == 2:
            (a, va), (b, vb) = rs.items()
            page.headline.append(
                f"taxi, the same first {vdays} days: {fmt(va, '.2f')} at its 30-min steps, "
                f"{fmt(vb, '.2f')} interpolated to 1 min (the whole-trace figure above "
                "also depends on which days are scored)"
            )
    else:
        page.missing.append(f"the step variants: {r.error}")

    if o.quick:
        page.missing.append(
            "the cost per decision (`benchmarks/forecast_cost.py`): not run in quick mode"
        )
        return page
    r = run([script("forecast_cost.py"), "--models", "last,auto"])
    page.body += [
        "## Cost of one decision",
        "",
        "Forecast update + predict per decision on 14 days of 1-minute history, including "
        "the amortised refits (bar: <= 5 ms); `last` is the baseline of the same run. "
        "Scope: the script's default, six hours of decisions replayed. Wall-clock times "
        "move with the machine's load (see the load average above).",
        "",
        *ran(r),
    ]
    if r.ok:
        table = [ln for ln in r.stdout.splitlines() if ln.startswith("|")]
        page.body += [*[ln for ln in r.stdout.splitlines() if not ln.startswith("|")], ""]
        page.body += [*table, ""]
        rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in table]
        base_ms = next((c[1] for c in rows if c and c[0] == "last"), "?")
        for cells in rows:
            if cells and cells[0] == "auto":
                page.headline.append(
                    f"forecast update per decision, `auto`: {cells[1]} ms mean incl. refits "
                    f"(bar <= 5 ms; `last` {base_ms} ms in the same run; wall time, so it "
                    "moves with the machine's load)"
                )
    else:
        page.missing.append(f"the cost per decision: {r.error}")
    return page


# --- simulator and scaling against the HPA ----------------------------------------------


def pvh_table(rows: dict[str, Any]) -> list[str]:
    out = [
        "| trace | predictive tau_U % | predictive cost / oracle | predictive cost / HPA "
        "at equal tau_U | **gap closed** | hpa-cpu@70 tau_U % | hpa-cpu@70 cost / oracle "
        "| seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for trace, r in rows.items():
        p, h = r.get("predictive", {}), r.get("hpa-cpu@70", {})
        out.append(
            f"| {trace} | {fmt(p.get('tau_u_pct'), '.2f')} | {fmt(p.get('cost_vs_oracle'))} "
            f"| {fmt(p.get('cost_vs_hpa_at_equal_tau_u'))} "
            f"| **{fmt(p.get('gap_closed'), '.2f')}** | {fmt(h.get('tau_u_pct'), '.2f')} "
            f"| {fmt(h.get('cost_vs_oracle'))} | {fmt(r.get('seconds'), '.0f')} |"
        )
    return [*out, ""]


def simulator(o: Options) -> Page:
    days = o.days
    page = Page(
        "Simulator, and scaling against the stock HPA",
        f"the first {days:g} days of each trace, `--workers {o.workers}`; issue 4's "
        "setting (20 req/s per replica, 90 s start-up, SLO at 85 % utilisation, trace "
        "scaled so that its 99.9th percentile needs 40 replicas); the simulator runs the "
        "real controller for the predictive policy",
    )
    js = o.work / "predictive-vs-hpa.json"
    traces = ["--traces", str(o.trace)] if o.trace else ["--unseen"]
    argv = [script("predictive_vs_hpa.py"), "--days", f"{days:g}", "--workers", str(o.workers)]
    r = run([*argv, *traces, "--json", str(js)])
    page.body += [
        "## Predictive against the HPA at equal under-provisioning",
        "",
        "The baseline is the stock HPA (`hpa-cpu`), run in the same run at every frontier "
        "target and read off at the integer target whose tau_U matches the predictive "
        "policy's; the gap closed is the share of the HPA-to-oracle cost gap the "
        "predictive policy closes at that tau_U (bar: >= 0.5; `-` where the HPA reaches "
        "no tau_U that low at any target from 10 %, so there is nothing to compare at "
        "equal tau_U). Bundled traces first, then the "
        "held-out ones of `benchmarks/unseen_traces.py` (seed 0).",
        "",
        *ran(r),
    ]
    if r.ok:
        rows = json.loads(js.read_text())
        page.body += pvh_table(rows)
        gaps = {k: v["predictive"].get("gap_closed") for k, v in rows.items()}
        taus = [v["predictive"]["tau_u_pct"] for v in rows.values()]
        over = [k for k, v in rows.items() if v["predictive"]["tau_u_pct"] > 1.0]
        page.headline.append(
            f"predictive tau_U at defaults, {len(taus)} traces (5 bundled, 9 held-out), "
            f"first {days:g} days: "
            f"{min(taus):.2f}-{max(taus):.2f} % (bar <= 1 %: "
            + (f"over on {', '.join(over)})" if over else "met on all)")
        )
        met = [k for k, v in gaps.items() if v is not None and v >= 0.5]
        page.headline.append(
            f"share of the HPA-to-oracle gap closed at equal tau_U, first {days:g} days, "
            f"fixed 90-s start-up (bar >= 0.5, met on {len(met)} of {len(gaps)}; `-`: the "
            "HPA never gets that low): "
            + ", ".join(f"{k} {fmt(v, '.2f')}" for k, v in gaps.items())
        )
    else:
        page.missing.append(f"predictive vs HPA: {r.error}")

    src = o.trace or TAXI
    own, fine = step_variants(src, o.work / "variants", days=2 if o.quick else VARIANT_DAYS)
    js2 = o.work / "predictive-vs-hpa-steps.json"
    r = run([*argv, "--traces", str(own), str(fine), "--json", str(js2)])
    page.body += [
        "## What the taxi figure rests on: its 30-minute steps",
        "",
        "The same taxi days at 30-minute steps and interpolated to 1 minute (see the "
        "forecasting page); at 30 minutes every step is a jump the HPA only sees after "
        "it, which a forecaster of the daily cycle sees coming.",
        "",
        *ran(r),
    ]
    if r.ok:
        rows = json.loads(js2.read_text())
        page.body += pvh_table(rows)
        g = [fmt(v["predictive"].get("gap_closed"), ".2f") for v in rows.values()]
        if len(g) == 2:
            page.headline.append(
                f"taxi gap closed, first {days:g} days: {g[0]} at its 30-min steps, {g[1]} "
                "with the same data interpolated to 1 min: the taxi result rests on its "
                "30-minute steps"
            )
    else:
        page.missing.append(f"the taxi step variants: {r.error}")

    if o.quick:
        page.missing.append("simulator speed (`benchmarks/simulate_ab.py`): not run in quick mode")
        return page
    md = o.out / "simulate-ab.md"
    shown = os.path.relpath(md, ROOT) if md.is_relative_to(ROOT) else str(md)
    rounds = 2
    r = run(
        [script("simulate_ab.py"), "--before", o.before, "--rounds", str(rounds)] + ["--md", shown],
        timeout=900,
    )
    page.body += [
        "## Simulator speed: the 28-day NASA trace, four policies",
        "",
        f"This code against `{o.before}` (the baseline, exported with `git archive` and run "
        f"alternately in the same run); {rounds} rounds each, medians (bar: <= 60 s wall). "
        "Its own page, `simulate-ab.md`, is written by the same command.",
        "",
        *ran(r),
    ]
    if r.ok and md.exists():
        text = md.read_text()
        lines = text.splitlines()
        start = next((i for i, ln in enumerate(lines) if ln.startswith("machine:")), 0)
        page.body += [*lines[start:], ""]
        m = re.search(r"after / before: wall ([\d.]+)x, CPU ([\d.]+)x", text)
        after = re.search(r"\| after \| (\w+) \| \d+ \| ([\d.]+) \| ([\d.]+) \|", text)
        if after:
            page.headline.append(
                f"28-day NASA trace, four policies, serially: {after.group(2)} s wall, "
                f"{after.group(3)} s CPU (bar < 60 s; x{m.group(1) if m else '?'} the wall "
                f"time of {o.before} in the same run; {rounds} round(s), so it moves with "
                "the machine's load)"
            )
    else:
        page.missing.append(f"simulator speed: {r.error}")
    return page


# --- cost guard -------------------------------------------------------------------------


def cost_guard(o: Options) -> Page:
    n, rep, base = (50, 1, 20) if o.quick else (1000, 7, 200)
    page = Page(
        "Cost guard",
        f"{n} workloads, median of {rep} runs; linear-scan baseline on {base} workloads",
    )
    r = run(
        [script("costguard_allocate.py")]
        + ["--workloads", str(n), "--repeat", str(rep), "--baseline-workloads", str(base)]
    )
    page.body += [
        "## Allocation time",
        "",
        "`policies.costguard.allocate` for one environment with the budget binding, and "
        "when everything fits; the baseline is the same greedy with a linear scan for the "
        "next replica instead of a heap (the script checks that both allocate the same).",
        "",
        *ran(r),
    ]
    if r.ok:
        page.body += fence(r.stdout)
        m = re.search(r"allocate, budget binding\s+([\d.]+) ms", r.stdout)
        s = re.search(r"linear-scan baseline\s+([\d.]+) ms\s+\((\d+)x", r.stdout)
        if m:
            page.headline.append(
                f"cost guard, {n} workloads, budget binding: {m.group(1)} ms per allocation"
                + (f" (linear scan {s.group(2)}x slower at {base} workloads)" if s else "")
                + " (wall time: moves with load)"
            )
    else:
        page.missing.append(f"allocation time: {r.error}")
    page.missing.append(
        "the property tests (8 invariants x 500 examples) are tests, not figures: "
        "`pytest -q tests -k property`"
    )
    return page


# --- controller and API speed -----------------------------------------------------------


def controller(o: Options) -> Page:
    page = Page(
        "Controller: one reconcile of 1,000 workloads",
        f"one reconcile of 1,000 workloads against a real local Prometheus, {HOURS} h of "
        "history (the script's default; 14 days not measured)",
    )
    if o.quick or not (shutil.which("prometheus") and shutil.which("promtool")):
        why = "quick mode" if o.quick else "no `prometheus`/`promtool` on this machine"
        page.missing.append(
            f"reconcile of 1,000 workloads: not run ({why}): "
            f"`python benchmarks/reconcile.py --workloads 1000 --hours {HOURS}`"
        )
    else:
        r = run(
            [script("reconcile.py"), "--workloads", "1000", "--hours", str(HOURS)],
            timeout=600,
        )
        page.body += [
            "## One reconcile of 1,000 workloads",
            "",
            "`Controller.reconcile()` as `autoscaler run` calls it (one batched query to a "
            "real Prometheus, forecasts, cost guard, ledger, publish); the baseline is the "
            "same window fetched with one query per workload, in the same run (bar: within "
            "one 15-s sync).",
            "",
            *ran(r),
        ]
        if r.ok:
            page.body += fence(r.stdout)
            worst = re.search(r"worst tick ([\d.]+)s = (\d+%)", r.stdout)
            warm = re.search(r"warm ticks: median ([\d.]+)s", r.stdout)
            fetch = re.search(r"batched ([\d.]+)s .* per workload ([\d.]+)s", r.stdout)
            if worst:
                page.headline.append(
                    f"reconcile of 1,000 workloads, {HOURS} h of history: worst tick "
                    f"{worst.group(1)} s ({worst.group(2)} of the 15-s sync)"
                    + (f", warm median {warm.group(1)} s" if warm else "")
                    + (
                        f"; fetching 6 h: batched {fetch.group(1)} s vs one query per "
                        f"workload {fetch.group(2)} s (same run). Local Prometheus, wall time"
                        if fetch
                        else ""
                    )
                )
        else:
            page.body += fence(r.stdout[-3000:]) if r.stdout else []
            page.missing.append(f"reconcile: {r.error}")
    page.body += [
        "The External Metrics API's load figures have their own page, `api.md`, and the "
        "Prometheus source's (batched tick, backfill) `prometheus.md`.",
        "",
    ]
    return page


# --- External Metrics API load ----------------------------------------------------------

API_ROUNDS, API_SECONDS = 3, 3.0


def api_row(text: str, name: str) -> dict[str, float] | None:
    """One row of ``api_load.py``'s table, by its exact run name."""
    for ln in text.splitlines():
        if ln.startswith(name) and ln[len(name) : len(name) + 1] == " ":
            vals = ln[len(name) :].split()
            if len(vals) == 8:
                keys = ("rps", "vs_base", "p50", "p90", "p99", "max", "err", "cpu_us")
                return dict(zip(keys, map(float, vals), strict=True))
    return None


def api(o: Options) -> Page:
    page = Page(
        "External Metrics API: load",
        f"{API_ROUNDS} interleaved rounds x 13 runs x {API_SECONDS:g} s of `wrk -t1 -c5` "
        "(the script's default is 3 rounds x 6 s: runs halved to fit the shared machine, "
        "so the p99s are noisier); 1,000 series, one selected per "
        "request by `labelSelector`; reconcile of 1,000 `seasonal-naive` workloads every 5 s",
    )
    if o.quick or not shutil.which("wrk"):
        why = "quick mode" if o.quick else "`wrk` is not installed (Debian package `wrk`)"
        page.missing.append(f"the API load run: not run ({why}): `python benchmarks/api_load.py`")
        return page
    r = run(
        [script("api_load.py"), "--rounds", str(API_ROUNDS), "--duration", f"{API_SECONDS:g}"],
        timeout=600,
    )
    page.body += [
        "## Requests per second and latency, against a trivial handler",
        "",
        "Setup, all in one process except the load generator (`wrk`, Debian package): "
        "1,000 series `autoscaler_desired_replicas{workload=w0000..w0999}`; every request "
        "lists one of them by `labelSelector` (as an HPA does), rotating over all 1,000; 5 "
        "connections (the HPA controller's five workers). The **baseline** is a trivial "
        'FastAPI handler (`return Response(b"ok")`) under the same uvicorn settings, '
        "measured in the same run, interleaved round by round. *thread* = `ServerThread` "
        "(uvicorn in a thread of the benchmark process); *child process* = `ServerProcess` "
        "(what `autoscaler run` uses); *reconcile running* = a thread running "
        "`update` + `predict` for 1,000 workloads and publishing them every 5 s (every "
        "publish invalidates the response cache); *paced* = each connection waits 3 ms "
        "between requests, the shape of HPA traffic; *response cache off* = every request "
        "computed afresh, the realistic case since each HPA asks once per 15-s publish; "
        "*CPU hog thread* = a pure-Python loop in the process, the worst case for sharing "
        "a GIL. CPU us/req is the serving process's CPU per request (runs without a "
        "reconcile or hog). Target: >= 1,000 req/s with 5 clients at p99 <= 10 ms while a "
        "reconcile of 1,000 workloads runs.",
        "",
        *ran(r),
    ]
    if not r.ok:
        page.body += fence(r.stdout[-3000:]) if r.stdout else []
        page.missing.append(f"the API load run: {r.error}")
        return page
    page.body += fence(r.stdout.strip(), "text")
    base = api_row(r.stdout, "baseline: trivial FastAPI handler")
    paced_base = api_row(r.stdout, "baseline: trivial handler, paced 3 ms/conn")
    idle = api_row(r.stdout, "ours (thread): list, idle")
    real = api_row(r.stdout, "ours (child process): cache off, reconcile running, paced 3 ms")
    hog_t = api_row(r.stdout, "ours (thread): CPU hog thread, paced 3 ms")
    hog_c = api_row(r.stdout, "ours (child): CPU hog thread, paced 3 ms")
    if real and paced_base:
        met = real["rps"] >= 1000 and real["p99"] <= 10
        page.headline.append(
            f"child process (as `autoscaler run`), response cache off, reconcile of 1,000 "
            f"workloads running, paced 3 ms x 5 connections: {real['rps']:.0f} req/s at "
            f"p99 {real['p99']:.1f} ms (target >= 1,000 req/s at p99 <= 10 ms: "
            f"{'met' if met else 'not met'}); the trivial handler paced the same way in the "
            f"same run: {paced_base['rps']:.0f} req/s at p99 {paced_base['p99']:.1f} ms"
        )
    if idle and base:
        page.headline.append(
            f"closed loop, thread, idle: {idle['rps']:.0f} req/s, p99 {idle['p99']:.1f} ms, "
            f"{idle['cpu_us']:.0f} us CPU/req, against the trivial FastAPI handler's "
            f"{base['rps']:.0f} req/s, p99 {base['p99']:.1f} ms, {base['cpu_us']:.0f} us "
            f"CPU/req in the same run (x{idle['rps'] / base['rps']:.2f})"
        )
    if hog_t and hog_c:
        page.headline.append(
            f"with a pure-Python CPU hog in the process, paced: thread {hog_t['rps']:.0f} "
            f"req/s at p50 {hog_t['p50']:.2f} ms, child process {hog_c['rps']:.0f} req/s at "
            f"p50 {hog_c['p50']:.2f} ms: why `autoscaler run` serves from a child process"
        )
    page.body += [
        "Latencies are wall time on a shared machine whose load is given above: the p99 of "
        "paced runs is set largely by the scheduler (compare the paced baseline's); the "
        "ratios against the baseline of the same run are the figures to compare across "
        "runs. Earlier figures (6-s runs, the script's default) are in `docs/decisions.md`.",
        "",
    ]
    return page


# --- the Prometheus source --------------------------------------------------------------

PROM_WORKLOADS, PROM_HOURS, PROM_REPEAT = 1000, 24, 5


def prometheus(o: Options) -> Page:
    n, hours, rep = (50, 1, 1) if o.quick else (PROM_WORKLOADS, PROM_HOURS, PROM_REPEAT)
    page = Page(
        "The Prometheus source",
        f"{n} workloads backfilled with {hours} h of 1-minute samples into a throw-away "
        f"local Prometheus; the batched tick and its baseline are medians of {rep} "
        f"interleaved runs; the backfill of the whole {hours} h window, medians of "
        f"{max(1, rep // 2)} run(s) with and without gzip (a 14-day backfill is not measured)",
    )
    if o.quick or not (shutil.which("prometheus") and shutil.which("promtool")):
        why = "quick mode" if o.quick else "no `prometheus`/`promtool` on this machine"
        page.missing.append(
            f"the Prometheus source: not run ({why}): "
            f"`python benchmarks/prometheus_source.py --workloads {n} --hours {hours}`"
        )
        return page
    r = run(
        [script("prometheus_source.py")]
        + ["--workloads", str(n), "--hours", str(hours), "--repeat", str(rep)],
        timeout=600,
    )
    page.body += [
        "## Batched tick against one request per workload; the start-up backfill",
        "",
        "`PrometheusSource` against a real Prometheus on loopback (Debian `prometheus` and "
        "`promtool`), the workloads being slices of the bundled NASA trace as counters "
        "`http_requests_total{namespace, workload}`. The **batched tick** is one "
        '`history_by("rate(http_requests_total[2m])")` (one `sum by (namespace, '
        "workload)` `query_range` over the last 15 minutes, parsing into pandas included); "
        "the **baseline**, interleaved with it round by round in the same run, is one "
        "`history` request per workload for the same window, what a controller without "
        "batching would send. The **backfill** fetches the whole window for all workloads, "
        "without and with gzip, interleaved.",
        "",
        *ran(r),
    ]
    if not r.ok:
        page.body += fence(r.stdout[-3000:]) if r.stdout else []
        page.missing.append(f"the Prometheus source: {r.error}")
        return page
    page.body += fence(r.stdout.strip(), "text")
    tick = re.search(r"batched tick .*: median (\d+) ms", r.stdout)
    naive = re.search(r"one request per workload .*: median (\d+) ms .* = (\d+)x", r.stdout)
    back = re.search(
        r"backfill \((\d+) points x (\d+) workloads, (\d+) request\(s\)\): median (\d+) ms "
        r"without gzip, (\d+) ms with gzip \(ratio ([\d.]+)\)",
        r.stdout,
    )
    if tick and naive:
        page.headline.append(
            f"one tick for {n} workloads: batched (1 request) {tick.group(1)} ms against "
            f"{naive.group(1)} ms for one request per workload in the same run: "
            f"{naive.group(2)}x cheaper (median of {rep}; loopback, wall time)"
        )
    if back:
        page.headline.append(
            f"backfill of {hours} h ({back.group(1)} points x {back.group(2)} workloads, "
            f"{back.group(3)} request(s)): {int(back.group(4)) / 1000:.1f} s without gzip, "
            f"{int(back.group(5)) / 1000:.1f} s with it (x{back.group(6)}): gzip stays off "
            "by default"
        )
    return page


# --- HPA emulation and the latency model ------------------------------------------------


def hpa(o: Options) -> Page:
    page = Page(
        "HPA emulation and the M/M/c latency model",
        "the script's default: `mmc_p99` on 161,280 ticks (28 days of 15-s ticks), "
        "median of 5, against a pure-Python per-tick loop on 5,000 ticks, median of 3; "
        "the HPA calls, medians of 5 runs of 20,000 syncs / 5,000 calls",
    )
    if o.quick:
        page.missing.append(
            "HPA emulation and latency model: not run in quick mode: "
            "`python benchmarks/hpa_latency.py`"
        )
        return page
    r = run([script("hpa_latency.py")], timeout=600)
    page.body += [
        "## Latency model: `simulations.latency.mmc_p99`",
        "",
        "161,280 ticks, 2-80 ready pods of 20 req/s, load 30-95 %. The baseline is a plain "
        "pure-Python per-tick loop over the same model (Erlang B recursion, scalar "
        "bisection of the same tail), timed in the same run on 5,000 ticks and reported "
        "per tick; the script also reports how far the two disagree. "
        "Then `simulations.hpa` per call, as the engine calls it once per tick and policy. "
        "There is no faster baseline for the HPA: it is plain, branchy per-sync Python "
        "whose every sync depends on the previous one.",
        "",
        *ran(r),
    ]
    if not r.ok:
        page.missing.append(f"HPA emulation and latency model: {r.error}")
        return page
    page.body += fence(r.stdout.strip(), "text")
    vec = re.search(r"vectorised: \d+ ticks in ([\d.]+) s .*; ([\d.]+) us/tick", r.stdout)
    base = re.search(r"pure-Python loop: .*; ([\d.]+) us/tick", r.stdout)
    speed = re.search(r"speed-up \(per tick\): (\d+)x; max relative difference .*: (\S+)", r.stdout)
    if vec and base and speed:
        page.headline.append(
            f"`mmc_p99`, 161,280 ticks: {vec.group(1)} s ({vec.group(2)} us/tick) against "
            f"{base.group(1)} us/tick for a pure-Python loop in the same run: "
            f"{speed.group(1)}x, max relative difference {speed.group(2)}"
        )
    calls = dict(re.findall(r"^(.+?): ([\d.]+) us/call", r.stdout, flags=re.M))
    if calls:
        page.headline.append(
            "per call: "
            + "; ".join(f"{k} {v} us" for k, v in calls.items())
            + " (wall time: moves with load)"
        )
    return page


# --- pages ------------------------------------------------------------------------------


def write_page(o: Options, name: str, page: Page, argv: list[str], started: str) -> Path:
    path = o.out / f"{name}.md"
    lines = [
        f"# {page.title}",
        "",
        "Written by `make figures` (`benchmarks/figures.py`); do not edit by hand.",
        "",
        f"- command: `{' '.join(['python benchmarks/figures.py', *argv]).strip()}`",
        f"- commit: {o.commit or commit()}",
        f"- date: {started}",
        f"- machine: {machine()}; load average {started_load[0]} -> {load()}",
        f"- scope: {page.scope}",
        "",
        "## Headline",
        "",
        HEADLINE[0],
        *[f"- {h}" for h in page.headline or ["(nothing finished)"]],
        HEADLINE[1],
        "",
        *page.body,
    ]
    if page.missing:
        lines += ["## Not regenerated this run", "", *[f"- {m}" for m in page.missing], ""]
    o.out.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {path}", flush=True)
    return path


def write_index(o: Options) -> None:
    """The short index: each page's headline, read back from the pages themselves."""
    rel = os.path.relpath(o.out, o.index.parent)
    lines = [
        "# Benchmarks",
        "",
        "What the current code does, one page per area. Every table is written by "
        "`make figures` (`benchmarks/figures.py`, which runs one benchmark script per "
        "table); each page names the command, the commit, the machine and the baseline "
        "measured in the same run. Figures measured before and no longer reproduced are in "
        "`docs/decisions.md`, with their dates.",
        "",
        "Scope, to fit in ~20 minutes on 2 shared cores: forecasts scored at every 5th "
        "origin; simulations on the first 7 days of each trace (earlier records used 14); "
        "the API load in 3 rounds of 3-s runs (the script's default: 6-s runs); the "
        "Prometheus source on 24 h of history (14 days not measured). "
        "Quality figures (pinball loss, coverage, tau_U, cost, gap closed) do not depend "
        "on the machine's load; times do, so each is next to a baseline timed in the same "
        "run.",
        "",
    ]
    titles = {
        "forecasting": "Forecasting",
        "simulator": "Simulator, and scaling against the stock HPA",
        "cost-guard": "Cost guard",
        "controller": "Controller: one reconcile of 1,000 workloads",
        "api": "External Metrics API: load",
        "prometheus": "The Prometheus source",
        "hpa": "HPA emulation and the M/M/c latency model",
    }
    for name, title in titles.items():
        path = o.out / f"{name}.md"
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        if HEADLINE[0] not in text:
            continue
        head = text.split(HEADLINE[0], 1)[1].split(HEADLINE[1], 1)[0].strip()
        meta = [
            ln for ln in text.splitlines() if ln.startswith(("- commit:", "- date:", "- scope:"))
        ]
        lines += [f"## [{title}]({rel}/{name}.md)", "", head, "", *meta, ""]
    lines += [
        "## Not regenerated by `make figures`",
        "",
        "- the local Compose stack (`deploy/compose/`): needs a Docker engine and the "
        "Compose plugin, which this machine does not have. Its earlier figures (time to "
        "the first forecast, image size, the deploy checks' run time) are history in "
        "`docs/decisions.md` (2026-12-05), with the commit they were measured at.",
        "",
        "Scripts no page runs today (their figures, where any were published, are history "
        "in `docs/decisions.md`): `benchmarks/forecast_reference.py` and "
        "`forecast_leaderboard.py --clairvoyant` (non-causal references), "
        "`benchmarks/clairvoyant_bound.py`, `benchmarks/regime_split.py`, "
        "`benchmarks/simulate_speed.py` (engine against a plain per-tick loop), and "
        "`predictive_vs_hpa.py --peak 400` (the World-Cup-like check).",
        "",
    ]
    o.index.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {o.index}", flush=True)


BUILDERS: dict[str, Callable[[Options], Page]] = {
    "forecasting": forecasting,
    "simulator": simulator,
    "cost-guard": cost_guard,
    "controller": controller,
    "api": api,
    "prometheus": prometheus,
    "hpa": hpa,
}
started_load = [load()]


def main(argv: list[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--areas", default=",".join(AREAS), help=f"some of {','.join(AREAS)}")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    ap.add_argument("--index", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--days", type=float, default=7.0, help="days of each simulated trace")
    ap.add_argument("--every", type=int, default=5, help="score every N-th forecast origin")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--before", default="a6aa0cb", help="baseline revision of simulate_ab")
    ap.add_argument("--work", type=Path, default=ROOT / "out" / "figures")
    ap.add_argument("--quick", action="store_true", help="smoke-test mode: needs --trace")
    ap.add_argument("--trace", type=Path, default=None, help="use this trace only")
    args = ap.parse_args(argv)
    areas = tuple(a for a in args.areas.split(",") if a)
    bad = [a for a in areas if a not in AREAS]
    if bad:
        ap.error(f"unknown area(s) {bad}; use some of {','.join(AREAS)}")
    o = Options(
        out=args.out.resolve(),
        index=args.index.resolve(),
        areas=areas,
        days=args.days,
        every=args.every,
        workers=args.workers,
        quick=args.quick,
        trace=args.trace.resolve() if args.trace else None,
        work=args.work.resolve(),
        before=args.before,
        commit=commit(),  # read once: a commit made during the run must not relabel it
    )
    o.work.mkdir(parents=True, exist_ok=True)
    shown = argv if argv is not None else sys.argv[1:]
    written = []
    for name in areas:
        started_load[0] = load()
        started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        t0 = time.perf_counter()
        page = BUILDERS[name](o)
        page.scope += f"; this page took {time.perf_counter() - t0:.0f} s wall"
        written.append(write_page(o, name, page, list(shown), started))
    write_index(o)
    return written


if __name__ == "__main__":
    main()
