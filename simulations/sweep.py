"""Parameter sweeps: a grid of (workload, budget, policy) runs, in parallel.

A sweep starts from one scenario and varies hpa-cpu targets, predictive risk quantiles,
budgets (hourly limits) and workloads. Every grid point is an independent job (prepare
the scenario variant, run one policy, score it), so the jobs run in parallel across
processes (``concurrent.futures``) or, with ``engine="dask"``, on a ``dask.distributed``
cluster (a ``LocalCluster`` here; point ``scheduler`` at a real one when a sweep
outgrows the machine). There is no home-made distribution.

After the runs, each workload/budget variant's rows are compared with its oracle run
(cost vs oracle) and its hpa-cpu target runs (the frontier: cost vs the HPA at equal
tau_U and the share of the gap closed), exactly as in a single simulation.

Callers: ``autoscaler sweep``; tests; benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from models.errors import InputError
from simulations.jobs import run_jobs
from simulations.world import ControllerFactory

Engine = Literal["processes", "dask", "serial"]


@dataclass(frozen=True)
class Job:
    """One grid point: a scenario variant (as plain data, so it pickles) and one policy."""

    scenario: dict[str, Any]
    base: str | None
    policy: str
    workload: str
    budget: float | None
    #: builds the controller ``predictive`` runs (top-level function: it pickles).
    controller: ControllerFactory | None = None


def run_job(job: Job) -> dict[str, Any]:
    """Prepare the variant, run the policy, return its score as a flat row."""
    from simulations.report import score_timeline
    from simulations.scenario import Result, prepare, run_policy, scenario_from_dict
    from simulations.strategies import make_strategy

    sc = scenario_from_dict(job.scenario, "sweep")
    prepared = prepare(sc, Path(job.base) if job.base else None, controller=job.controller)
    timeline = run_policy(prepared, make_strategy(job.policy, "sweep"))
    result = Result(prepared, {job.policy: timeline})
    s, _ = score_timeline(timeline, result)
    row: dict[str, Any] = {"workload": job.workload, "budget_hourly": job.budget}
    row.update(asdict(s))
    return row


def build_jobs(
    scenario: dict[str, Any],
    base: str | None,
    targets: Sequence[int],
    quantiles: Sequence[float],
    budgets: Sequence[float],
    workloads: Sequence[str],
    controller: ControllerFactory | None = None,
) -> list[Job]:
    """The grid: per workload x budget, the hpa-cpu targets, the quantiles, and the oracle."""
    names = list(workloads) or [scenario.get("workload", "refinory-ai")]
    budget_levels: list[float | None] = [None, *budgets] if budgets else [None]
    jobs: list[Job] = []
    for wl in names:
        for budget in budget_levels:
            variant = dict(scenario)
            variant["workload"] = wl
            label = wl if isinstance(wl, str) else str(wl.get("name", "workload"))
            # The unbudgeted baseline really has no budget, even if the scenario has one.
            variant.pop("budget", None)
            if budget is not None:
                variant["budget"] = {"hourlyLimit": budget}
            policies: list[str] = [f"predictive@{q:g}" for q in quantiles] or ["predictive"]
            if budget is None:
                # The frontier and the oracle do not depend on our budget: run them once.
                policies += [f"hpa-cpu@{t}" for t in targets] + ["oracle"]
            for p in policies:
                jobs.append(Job(variant, base, p, label, budget, controller))
    return jobs


def _compare(rows: list[dict[str, Any]]) -> None:
    """Add cost vs oracle, vs the hpa-cpu frontier at equal tau_U, and gap closed."""
    from simulations.report import PolicyScore, compare

    by_workload: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_workload.setdefault(r["workload"], []).append(i)
    fields = set(PolicyScore.__dataclass_fields__)
    for idx in by_workload.values():
        scores = [PolicyScore(**{k: v for k, v in rows[i].items() if k in fields}) for i in idx]
        oracle = next((s.cost_usd for s in scores if s.policy == "oracle"), None)
        frontier = [s for s in scores if s.policy.startswith("hpa-cpu@")]
        compare(scores, frontier, oracle)
        for i, s in zip(idx, scores, strict=True):
            rows[i].update(asdict(s))


def run_sweep(
    jobs: Sequence[Job],
    engine: Engine = "processes",
    workers: int = 2,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    refine: bool = True,
) -> list[dict[str, Any]]:
    """Run every job; rows come back in job order whatever the engine.

    With ``refine`` (the default), a second round then runs, per workload, every integer
    hpa-cpu target between the two swept targets whose tau_U bracket a predictive or
    the oracle's row's (``scoring.refine_targets``): the HPA's cost at that tau_U is
    then read off real runs, not a chord that overstates it. Those rows follow the
    others.
    """
    if workers < 1:
        raise InputError("--workers", f"{workers} workers", "use 1 or more")
    rows = _run_rows(jobs, engine, workers, scheduler, progress)
    if refine:
        extra = refine_jobs(jobs, rows)
        if extra:
            rows += _run_rows(extra, engine, workers, scheduler, progress)
    _compare(rows)
    return rows


def refine_jobs(jobs: Sequence[Job], rows: Sequence[dict[str, Any]]) -> list[Job]:
    """The hpa-cpu runs that make each workload's frontier exact at its rows' tau_U."""
    from simulations.scoring import refine_targets

    extra: list[Job] = []
    for wl in dict.fromkeys(j.workload for j in jobs):
        idx = [i for i, j in enumerate(jobs) if j.workload == wl]
        sweep: dict[int, float] = {}
        for i in idx:
            kind, _, arg = jobs[i].policy.partition("@")
            if kind == "hpa-cpu" and jobs[i].budget is None and arg.isdigit():
                sweep[int(arg)] = float(rows[i]["tau_u_pct"])
        taus = [
            float(rows[i]["tau_u_pct"])
            for i in idx
            if rows[i]["tau_u_pct"] is not None
            and (jobs[i].policy.startswith("predictive") or jobs[i].policy == "oracle")
        ]
        base = next((jobs[i] for i in idx if jobs[i].budget is None), None)
        if base is None or len(sweep) < 2:
            continue
        for t in refine_targets(sweep, taus):
            extra.append(Job(base.scenario, base.base, f"hpa-cpu@{t}", wl, None, base.controller))
    return extra


def _run_rows(
    jobs: Sequence[Job],
    engine: Engine,
    workers: int,
    scheduler: str | None,
    progress: Callable[[int, int], None] | None,
) -> list[dict[str, Any]]:
    total = len(jobs)
    rows: list[dict[str, Any]]
    if engine == "serial" or total <= 1:
        rows = []
        for i, job in enumerate(jobs):
            rows.append(run_job(job))
            if progress is not None:
                progress(i + 1, total)
    elif engine == "processes":
        rows = run_jobs(run_job, jobs, workers, progress)
    elif engine == "dask":
        rows = _run_dask(jobs, workers, scheduler, progress)
    else:
        raise InputError("--engine", f"unknown engine {engine!r}", "use processes, dask or serial")
    return rows


def _run_dask(
    jobs: Sequence[Job],
    workers: int,
    scheduler: str | None,
    progress: Callable[[int, int], None] | None,
) -> list[dict[str, Any]]:
    """On dask.distributed: a LocalCluster of ``workers`` processes, or ``scheduler``."""
    import importlib

    # dask.distributed ships without complete type hints: treat it as Any, here only.
    dd: Any = importlib.import_module("dask.distributed")
    Client, LocalCluster, as_completed = dd.Client, dd.LocalCluster, dd.as_completed
    cluster = None
    if scheduler is None:
        # Loopback only, no dashboard: a sweep must not open ports to the network.
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = client.map(run_job, list(jobs), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        rows: list[dict[str, Any] | None] = [None] * len(futures)
        for done, fut in enumerate(as_completed(futures), start=1):
            rows[index[fut.key]] = fut.result()
            if progress is not None:
                progress(done, len(futures))
        return [r for r in rows if r is not None]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
