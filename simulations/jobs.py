"""One process-pool job runner for the simulator's independent runs.

Simulations are CPU-bound and independent (one strategy over one scenario), so they
spread over processes. ``run_jobs`` returns the results in job order whatever order
they finish in, reports progress per finished job, and runs serially (no pool, no
pickling) with one worker or one job. A job function must be a top-level function and
its arguments must pickle.

Callers: ``simulations.scenario`` (strategies of one scenario), ``simulations.sweep``
(grid points), ``autoscaler.cli.budget`` (budget levels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar, cast

from models.errors import InputError

J = TypeVar("J")
R = TypeVar("R")


def run_jobs(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[R]:
    """``[fn(job) for job in jobs]``, over ``workers`` processes; results in job order."""
    if workers < 1:
        raise InputError("--workers", f"{workers} workers", "use 1 or more")
    total = len(jobs)
    if workers == 1 or total <= 1:
        out: list[R] = []
        for i, job in enumerate(jobs):
            out.append(fn(job))
            if progress is not None:
                progress(i + 1, total)
        return out
    results: list[R | None] = [None] * total
    with ProcessPoolExecutor(max_workers=min(workers, total)) as pool:
        futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
        for done, fut in enumerate(as_completed(futures), start=1):
            results[futures[fut]] = fut.result()
            if progress is not None:
                progress(done, total)
    return cast(list[R], results)  # every slot was filled above
