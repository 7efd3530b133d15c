"""Benchmark: one reconcile of 1,000 workloads must fit in one 15-s sync.

What is timed is ``Controller.reconcile()`` exactly as ``autoscaler run`` calls it:
ONE batched ``query_range`` to a REAL local Prometheus (Debian's, started here and
backfilled with 1,000 workloads cut from the bundled NASA trace), the forecasts of all
1,000 workloads through ``policies.decision.decide``, the cost guard over four
environments (``policies.costguard.allocate``, budgets set to clamp), the ledger
accrual and its atomic save, and one ``DecisionStore.publish`` of 1,000 values. The
cluster is a ``StaticCluster`` (objects in memory): Kubernetes writes are NOT in the
figure (in steady state they are skipped unless something changed; see
docs/controller.md).

Ticks measured:

* ``cold``: the first tick (the initial 6 h of history, fit of every model);
* ``backfill``: the next ticks, each with one older ``--page``-hour page for all
  workloads (one more query) and a refit of every model on the longer history, until
  ``--hours`` of history are in;
* ``warm``: later ticks, one step apart (query of the new step, update + predict);
* ``refit``: a tick where every model refits (``refit_seconds`` elapsed).

Baseline, same run, same data: fetching the same window with one query PER workload
(``PrometheusSource.history`` x 1,000, the naive design) against the one batched query.

Usage (2-core machine, run with nice):

    nice .venv/bin/python benchmarks/reconcile.py [--workloads 1000] [--hours 48]
        [--page 3] [--model auto] [--warm 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoscaler.controller import Controller  # noqa: E402
from autoscaler.kube.cluster import StaticCluster  # noqa: E402
from autoscaler.ledger_store import LedgerStore  # noqa: E402
from autoscaler.metrics import ControllerMetrics  # noqa: E402
from autoscaler.settings import load_settings  # noqa: E402
from autoscaler.sources.prometheus import PrometheusSource  # noqa: E402
from autoscaler.store import DecisionStore  # noqa: E402
from simulations.clock import SimClock  # noqa: E402
from tests.integration.promfixture import (  # noqa: E402
    BackfillSeries,
    PrometheusServer,
    aligned_now,
    trace_counter,
)

QUERY = "rate(http_requests_total[2m])"
ENVIRONMENTS = 4


def workload_docs(n: int, model: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for i in range(n):
        ns = f"env-{i % ENVIRONMENTS}"
        name = f"w-{i:04d}"
        docs.append(
            {
                "apiVersion": "autoscaling.predictive.io/v1alpha1",
                "kind": "PredictiveAutoscaler",
                "metadata": {"name": name, "namespace": ns, "uid": f"uid-{i}"},
                "spec": {
                    "targetRef": {"name": name},
                    "query": QUERY,
                    "capacityPerReplica": 0.5,
                    "forecaster": model,
                    "maxReplicas": 100,
                    "priority": i % 3,
                },
            }
        )
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "replicas": 4,
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "a", "resources": {"requests": {"cpu": "500m"}}}
                            ]
                        }
                    },
                },
                "status": {"replicas": 4},
            }
        )
    for e in range(ENVIRONMENTS):
        docs.append(
            {
                "apiVersion": "autoscaling.predictive.io/v1alpha1",
                "kind": "CostBudget",
                "metadata": {"name": f"env-{e}"},
                "spec": {
                    "environment": f"env-{e}",
                    "selector": {"namespaces": [f"env-{e}"]},
                    # ~ 3 replicas of 0.5 vCPU per workload: below what many want.
                    "hourlyLimit": round(n / ENVIRONMENTS * 3 * 0.5 * 0.031611, 4),
                },
            }
        )
    return docs


def backfill(n: int, hours: int, end: int) -> list[BackfillSeries]:
    points = hours * 60
    return [
        trace_counter(
            "nasa_http_jul1995_1min",
            {"namespace": f"env-{i % ENVIRONMENTS}", "workload": f"w-{i:04d}"},
            points=points,
            end=end,
            offset=(i * 37) % (39_000 - points),
        )
        for i in range(n)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--model", default="auto")
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--page", type=int, default=3, help="hours per backfill page")
    parser.add_argument("--naive", type=int, default=1000, help="workloads in the baseline")
    args = parser.parse_args(argv)
    n = args.workloads
    tmp = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    end = aligned_now(60) - 60
    t0 = time.perf_counter()
    server = PrometheusServer.start(tmp / "prom", backfill=backfill(n, args.hours, end))
    print(
        f"prometheus backfilled with {n} workloads x {args.hours} h in"
        f" {time.perf_counter() - t0:.1f}s"
    )
    try:
        settings = load_settings(
            None,
            prometheus={
                "url": server.url,
                "step_seconds": 60,
                "backfill_seconds": args.hours * 3600,
                "timeout_seconds": 60,
            },
            loop={
                "stale_after_seconds": 7200,
                "refit_seconds": 3600,
                "initial_backfill_seconds": min(args.hours, 6) * 3600,
                "backfill_page_seconds": args.page * 3600,
            },
            ledger={"path": tmp / "ledger.json"},
            shadow={"path": tmp / "shadow.jsonl"},
        )
        source = PrometheusSource(settings.prometheus)
        cluster = StaticCluster.from_documents(workload_docs(n, args.model))
        clock = SimClock(end + 30)
        store = DecisionStore()
        ctl = Controller(
            settings,
            source,
            cluster,
            store,
            clock,
            ControllerMetrics(),
            LedgerStore(tmp / "l.json"),
        )
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        sent = source.requests_sent
        c0 = time.process_time()
        cold = ctl.reconcile()
        cold_cpu = time.process_time() - c0
        print(
            f"cold tick: {cold.duration_seconds:.2f}s, {cold.queries} query,"
            f" {source.requests_sent - sent} HTTP request(s),"
            f" {sum(1 for w in cold.workloads if w.decision.fallback)} fallback,"
            f" {sum(len(e.clamped) for e in cold.environments)} clamped by budget,"
            f" {len(store.all_values())} values published; CPU {cold_cpu:.2f}s"
        )
        pages: list[float] = []
        pages_cpu: list[float] = []
        for _ in range(200):  # bounded: until every older page is in
            if all(
                w.backfilled_from is not None
                and w.backfill_target is not None
                and w.backfilled_from - 60 < w.backfill_target
                for w in ctl.workloads.values()
            ):
                break
            clock.sleep(60)
            c0 = time.process_time()
            pages.append(ctl.reconcile().duration_seconds)
            pages_cpu.append(time.process_time() - c0)
        if pages:
            print(
                f"backfill ticks (new step + one {args.page}-h page; the last refits):"
                f" {len(pages)},"
                f" median {statistics.median(pages):.2f}s, max {max(pages):.2f}s;"
                f" CPU median {statistics.median(pages_cpu):.2f}s"
            )
        warm: list[float] = []
        warm_cpu: list[float] = []
        for _ in range(args.warm):
            clock.sleep(60)
            c0 = time.process_time()
            warm.append(ctl.reconcile().duration_seconds)
            warm_cpu.append(time.process_time() - c0)
        print(
            f"warm ticks: median {statistics.median(warm):.3f}s, max {max(warm):.3f}s"
            f" over {len(warm)} ticks; CPU median {statistics.median(warm_cpu):.3f}s"
        )
        clock.sleep(3600)
        c0 = time.process_time()
        refit = ctl.reconcile()
        print(
            f"refit tick (every model refits): {refit.duration_seconds:.2f}s;"
            f" CPU {time.process_time() - c0:.2f}s"
        )
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        # Baseline: the same window, one query per workload (the naive design).
        start, stop = end - min(args.hours, 6) * 3600, end
        m = min(args.naive, n)
        t0 = time.perf_counter()
        batched = source.history_by(QUERY, start, stop, 60)
        t_batch = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(m):
            source.history(
                f'sum(rate(http_requests_total{{namespace="env-{i % ENVIRONMENTS}",'
                f'workload="w-{i:04d}"}}[2m]))',
                start,
                stop,
                60,
            )
        t_naive = (time.perf_counter() - t0) * n / m
        print(
            f"fetch {min(args.hours, 6)} h of {n} workloads: batched {t_batch:.2f}s"
            f" ({len(batched)} series, 1 query) vs one query per workload {t_naive:.2f}s"
            f" ({m} queries{'' if m == n else f', scaled to {n}'}):"
            f" {t_naive / t_batch:.1f}x"
        )
        budget = settings.loop.sync_seconds
        worst = max([cold.duration_seconds, refit.duration_seconds, *warm, *pages])
        print(
            f"worst tick {worst:.2f}s = {worst / budget:.0%} of the {budget:g}-s sync"
            f" ({'within' if worst < budget else 'OVER'} one sync)"
        )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
