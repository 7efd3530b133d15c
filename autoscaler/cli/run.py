"""``autoscaler run``, ``autoscaler explain NAMESPACE/NAME`` and ``autoscaler report``.

``run`` starts the product: the reconcile loop on its own thread, the External Metrics
API server (TLS + delegated auth unless ``api.insecure``) in a child process that
mirrors the decision store (so forecasting never holds the request path's GIL),
leader election on another thread, the KEDA external scaler when ``api.keda_bind`` is set, and the
controller's /metrics. Settings are built here once
(``--config FILE`` + environment, see ``autoscaler.settings``) and passed down.

``run --once --dry-run`` does one reconcile, prints the decisions and touches nothing
(no Kubernetes write, no ledger write, no shadow record). ``--objects FILE`` reads
PredictiveAutoscalers, CostBudgets and Deployments from YAML instead of a cluster.

``explain`` answers "why this many replicas?" with a dry-run reconcile (decided: it
recomputes rather than asking a running controller, so it needs no extra endpoint
and shows exactly what the loop would decide now, from the same code path); it also
prints the status the running controller last wrote on the object, when there is one.

``report`` compares ForecastOnly (shadow mode) decisions with what happened.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from models.errors import InputError

log = logging.getLogger(__name__)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="YAML settings file (the environment overrides it)."),
]
ObjectsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--objects",
        help="YAML files with PredictiveAutoscalers, CostBudgets and Deployments to use"
        " instead of a cluster (repeatable).",
    ),
]


def _build(config: Path | None, objects: list[Path] | None, dry_run: bool) -> Any:
    """Settings, source, cluster, store and controller, built once."""
    from autoscaler.clock import WallClock
    from autoscaler.controller import Controller
    from autoscaler.kube.cluster import KubeCluster, StaticCluster
    from autoscaler.ledger_store import LedgerStore
    from autoscaler.metrics import ControllerMetrics
    from autoscaler.settings import load_settings
    from autoscaler.sources.prometheus import PrometheusSource
    from autoscaler.store import DecisionStore

    settings = load_settings(config)
    cluster: Any
    client = None
    if objects:
        cluster = StaticCluster.from_files(objects)
    else:
        client = _kube_client(settings.kube)
        cluster = KubeCluster(client, write=not dry_run)
    source = PrometheusSource(settings.prometheus)
    controller = Controller(
        settings,
        source,
        cluster,
        DecisionStore(),
        WallClock(),
        ControllerMetrics(),
        LedgerStore(settings.ledger.path),
        dry_run=dry_run,
    )
    return settings, controller, client


def _kube_client(kube: Any) -> Any:
    from autoscaler.kube.client import KubeClient

    try:
        return KubeClient(kube)
    except Exception as err:  # kubernetes raises ConfigException, OSError, yaml errors
        raise InputError(
            "kube",
            f"cannot configure the Kubernetes client: {err}",
            "set kube.host / kube.kubeconfig, run in a pod with kube.in_cluster,"
            " or use --objects FILE",
        ) from err


def _decisions_table(report: Any) -> str:
    rows = [
        ("WORKLOAD", "MODE", "RUN", "DESIRED", "REPLICAS", "SERVED", "FORECAST", "BINDING"),
    ]
    for r in sorted(report.workloads, key=lambda r: r.key):
        d = r.decision
        rows.append(
            (
                r.key,
                r.mode,
                str(r.current_replicas),
                str(d.desired_replicas),
                str(d.replicas),
                f"{r.served:g}",
                "-" if r.forecast_load is None else f"{r.forecast_load:.4g}",
                d.binding_constraint + (" fallback" if d.fallback else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    for env in report.environments:
        cap = "none" if env.hourly_cap is None else f"${env.hourly_cap:.4f}/h"
        lines.append(
            f"budget {env.budget}: cap {cap}, cost ${env.hourly_cost:.4f}/h, spent"
            f" ${env.spend:.2f}, projection ${env.projection:.2f}, clamped {len(env.clamped)}"
        )
    lines.append(
        f"{len(report.workloads)} workloads, {report.queries} queries,"
        f" {report.duration_seconds:.3f}s"
        + (f", {len(report.errors)} errors" if report.errors else "")
    )
    lines += [f"error: {e}" for e in report.errors]
    return "\n".join(lines)


def _report_json(report: Any) -> str:
    return json.dumps(
        {
            "time": report.time,
            "durationSeconds": report.duration_seconds,
            "queries": report.queries,
            "errors": list(report.errors),
            "workloads": [
                {
                    "workload": r.key,
                    "mode": r.mode,
                    "current": r.current_replicas,
                    "desired": r.decision.desired_replicas,
                    "replicas": r.decision.replicas,
                    "served": r.served,
                    "forecast": r.forecast_load,
                    "quantile": r.risk_quantile,
                    "binding": r.decision.binding_constraint,
                    "fallback": r.decision.fallback,
                    "reason": r.decision.reason,
                    "ceiling": r.ceiling,
                }
                for r in report.workloads
            ],
            "environments": [
                {
                    "budget": e.budget,
                    "environment": e.name,
                    "hourlyCap": e.hourly_cap,
                    "hourlyCost": e.hourly_cost,
                    "spend": e.spend,
                    "projection": e.projection,
                    "clamped": list(e.clamped),
                    "infeasible": e.infeasible,
                }
                for e in report.environments
            ],
        },
        indent=1,
    )


def _identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _serve_forever(settings: Any, controller: Any, client: Any) -> None:
    """The long-running process: leader election, loop, API server, metrics."""
    from autoscaler.api.process import ServerProcess
    from autoscaler.clock import WallClock
    from autoscaler.kube.leader import LeaderElector

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    metrics = controller.metrics
    obs = settings.observability
    if obs.metrics_port:
        metrics.serve(obs.metrics_port, obs.metrics_addr)
    threads: list[threading.Thread] = []
    elector = None
    if settings.leader.enabled and client is not None:
        elector = LeaderElector(
            client,
            settings.leader,
            settings.leader.identity or _identity(),
            WallClock(),
            on_change=lambda leader: metrics.is_leader.set(1 if leader else 0),
        )
        controller.is_leader = elector.is_leader
        client.fence = elector.seconds_left  # no Kubernetes write after the deadline
        threads.append(threading.Thread(target=elector.run, args=(stop,), name="leader"))
    threads.append(threading.Thread(target=controller.run, args=(stop,), name="reconcile"))
    # The API server runs in a child process mirroring the store: a reconcile holds
    # the GIL for seconds, and in-process every request would wait for it (the API's
    # p99 would move with the reconcile; docs/benchmarks/api.md).
    kubeconfig = Path(settings.kube.kubeconfig) if settings.kube.kubeconfig else None
    if settings.api.auth_mode == "delegated" and not settings.api.insecure and client is None:
        raise InputError(
            "api.auth_mode",
            "delegated auth needs the Kubernetes API (TokenReview)",
            "drop --objects, or set api.auth_mode front-proxy-only",
        )
    # The API child's request metrics are served with the controller's on the metrics
    # port (the one Prometheus scrapes); the serving port's /metrics needs auth.
    server = ServerProcess(
        controller.store, settings.api, kubeconfig=kubeconfig, registry=metrics.registry
    )
    server.start()
    keda = None
    if settings.api.keda_bind is not None:
        from autoscaler.api.keda.scaler import start_keda_server

        keda = start_keda_server(controller.store, settings.api, WallClock())
    for t in threads:
        t.start()
    log.info("running: API on %s, sync every %ss", settings.api.bind, settings.loop.sync_seconds)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        stop.set()
        for t in threads:
            t.join(settings.loop.sync_seconds + 10)
        if keda is not None:
            keda.stop(grace=1.0)
        server.stop()


def register(app: typer.Typer) -> None:
    """Add ``run``, ``explain`` and ``report``."""

    @app.command()
    def run(
        config: ConfigOpt = None,
        once: Annotated[bool, typer.Option(help="One reconcile, print it, exit.")] = False,
        dry_run: Annotated[
            bool, typer.Option(help="Write nothing (Kubernetes, ledger, shadow records).")
        ] = False,
        objects: ObjectsOpt = None,
        json_out: Annotated[bool, typer.Option("--json", help="With --once: JSON.")] = False,
    ) -> None:
        """Run the controller (reconcile loop + External Metrics API + leader election)."""
        from autoscaler.logging import configure_logging

        if not once and dry_run:
            raise InputError("--dry-run", "only makes sense with --once", "add --once")
        settings, controller, client = _build(config, objects, dry_run)
        if once:
            configure_logging("warning")
            report = controller.reconcile()
            typer.echo(_report_json(report) if json_out else _decisions_table(report))
            if dry_run and client is not None:
                typer.echo(f"dry run: {controller.cluster.skipped_writes} writes skipped", err=True)
            return
        configure_logging(settings.observability.log_level)
        _serve_forever(settings, controller, client)

    @app.command()
    def explain(
        workload: Annotated[str, typer.Argument(help="NAMESPACE/NAME of a PredictiveAutoscaler.")],
        config: ConfigOpt = None,
        objects: ObjectsOpt = None,
    ) -> None:
        """Why a workload has this many replicas: forecast, quantile, constraint, budget."""
        from autoscaler.logging import configure_logging

        if workload.count("/") != 1 or not all(workload.split("/")):
            raise InputError(
                "NAMESPACE/NAME", f"{workload!r} is not NAMESPACE/NAME", "e.g. shop/web"
            )
        configure_logging("warning")
        _, controller, _ = _build(config, objects, dry_run=True)
        controller.reconcile()
        if workload not in controller.workloads:
            known = ", ".join(sorted(controller.workloads)) or "none"
            raise InputError(workload, "no such PredictiveAutoscaler", f"known: {known}")
        typer.echo(controller.explain(workload))
        status = controller.workloads[workload].pa.status
        if status.last_decision_time:
            typer.echo(
                f"  last written by the running controller at {status.last_decision_time}:"
                f" {status.replicas} replicas ({status.binding_constraint}), {status.reason}"
            )

    @app.command()
    def report(
        shadow: Annotated[
            Path | None,
            typer.Option(help="Shadow records file (default: shadow.path from settings)."),
        ] = None,
        config: ConfigOpt = None,
        json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
    ) -> None:
        """Compare ForecastOnly (shadow) decisions with what actually happened."""
        from autoscaler.controller import read_shadow, shadow_report
        from autoscaler.settings import load_settings

        path = shadow or load_settings(config).shadow.path
        if not path.exists():
            raise InputError(str(path), "no shadow records", "run workloads with mode ForecastOnly")
        summaries = shadow_report(read_shadow(path))
        if json_out:
            typer.echo(json.dumps([s.__dict__ for s in summaries], indent=1))
            return
        typer.echo(
            f"{'WORKLOAD':30} {'SCORED':>6} {'PRED':>6} {'ACTUAL':>6} {'PRED-SHORT':>10}"
            f" {'ACT-SHORT':>9} {'PRED-RH':>8} {'ACT-RH':>8}"
        )
        for s in summaries:
            typer.echo(
                f"{s.workload:30} {s.scored:6d} {s.predicted_mean:6.1f} {s.actual_mean:6.1f}"
                f" {s.predicted_short:10.1%} {s.actual_short:9.1%}"
                f" {s.predicted_replica_hours:8.1f} {s.actual_replica_hours:8.1f}"
            )
