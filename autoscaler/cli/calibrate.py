"""``autoscaler calibrate``: learn capacityPerReplica and leadTimeSeconds from Prometheus.

Why: every PredictiveAutoscaler needs the load one replica serves at 100 % of its CPU
request and the time a new pod takes to be Ready; nobody knows them, and guesses are
either wasteful or too late. This command reads what every Kubernetes Prometheus has
(cAdvisor CPU, kube-state-metrics owners, requests and pod times) plus the user's load
query, and fits both (``models.calibration``; queries in
``autoscaler.sources.cluster_metrics``). It prints a summary and a PredictiveAutoscaler
snippet, or ``--json``.

Capacity that cannot be learnt (no CPU series, no requests, no load, too little
data) is one error line and exit status 2; a missing start-up series is a warning
(the capacity still comes out; ``leadTimeSeconds`` is null unless ``--lead-time``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from autoscaler.cli.common import json_safe, prometheus_flags
from autoscaler.cli.forecast import _iso, parse_end
from autoscaler.sources.cluster_metrics import (
    Calibration,
    ClusterQueries,
    WorkloadRef,
    calibrate_workload,
    with_overrides,
)
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.sources.settings import load_prometheus_settings, parse_duration
from models.calibration import CapacityConfig
from models.errors import InputError, PermanentError


def report(cal: Calibration, window_s: float) -> dict[str, Any]:
    """The JSON document (also the source of the text summary)."""
    cap = cal.capacity
    assert cap is not None
    st = cal.startup
    return {
        "target": str(cal.target),
        "namespace": cal.target.namespace,
        "capacityPerReplica": cap.capacity,
        "capacityInterval": [cap.final.low, cap.final.high],
        "capacityLevel": cap.level,
        "startupSeconds": None if st is None else st.as_dict(),
        "leadTimeSeconds": cal.lead_time_seconds,
        "leadTimeSource": cal.lead_time_source,
        "window": {
            "start": _iso(cal.start),
            "end": _iso(cal.end),
            "seconds": window_s,
            "stepSeconds": cal.step_seconds,
        },
        "fit": cap.final.as_dict(),
        "changePoints": [c.as_dict() for c in cap.changes],
        "segments": [s.as_dict() for s in cap.segments],
        "wholeWindow": cap.whole_window.as_dict(),
        "usablePoints": cap.usable_points,
        "warnings": [] if cal.startup_error is None else [str(cal.startup_error)],
        "notes": cap.notes + ([] if st is None else st.notes),
        "queries": cal.queries,
    }


def _num(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}g}" if abs(v) < 10**digits else f"{v:.0f}"


def text(doc: dict[str, Any], load_query: str) -> str:
    fit = doc["fit"]
    lo, hi = doc["capacityInterval"]
    lines = [
        f"{doc['namespace']}/{doc['target']}: window {doc['window']['start']} .. "
        f"{doc['window']['end']} every {doc['window']['stepSeconds']} s "
        f"({doc['usablePoints']} usable steps)",
        "",
        f"capacity per replica: {doc['capacityPerReplica']:.4g} load units/s at 100 % of the "
        f"request ({doc['capacityLevel']:.0%} interval {lo:.4g} .. {hi:.4g})",
        f"  fitted on {fit['start']} .. {fit['end']} ({fit['points']} steps): idle "
        f"{_num(fit['idleCoresPerPod'])} cores/pod, {_num(fit['coresPerLoadUnit'])} cores per "
        f"load unit/s, request {_num(fit['requestCoresPerPod'])} cores/pod",
    ]
    for c in doc["changePoints"]:
        lines.append(
            f"  change point at {c['at']}: {c['capacityBefore']:.4g} -> {c['capacityAfter']:.4g} "
            f"({c['relativeChange']:+.0%})"
        )
    if not doc["changePoints"]:
        lines.append("  no change point in the window")
    whole = doc["wholeWindow"]["capacityPerReplica"]
    lines.append(f"  (a fit over the whole window would say {whole:.4g})")
    st = doc["startupSeconds"]
    if st is not None:
        lines.append(
            f"pod start-up (created -> Ready): p50 {st['p50']:.1f} s, p90 {st['p90']:.1f} s "
            f"over {st['pods']} pods"
        )
    if doc["leadTimeSeconds"] is not None:
        lines.append(f"lead time: {doc['leadTimeSeconds']:g} s ({doc['leadTimeSource']})")
    lines += [f"note: {n}" for n in doc["notes"]]
    lines += ["", "suggested PredictiveAutoscaler (review before applying):", ""]
    lines.append(snippet(doc, load_query))
    return "\n".join(lines)


def snippet(doc: dict[str, Any], load_query: str) -> str:
    kind = {"deployment": "Deployment", "statefulset": "StatefulSet"}[doc["target"].split("/")[0]]
    name = doc["target"].split("/", 1)[1]
    lo, hi = doc["capacityInterval"]
    # Round down: a capacity a little low costs a replica, a little high costs latency.
    capacity = math.floor(doc["capacityPerReplica"] * 10) / 10
    lead = doc["leadTimeSeconds"]
    lead_line = (
        f"  leadTimeSeconds: {lead:g}  # start-up p90 {doc['startupSeconds']['p90']:.0f} s + 15 s"
        if lead is not None and doc["startupSeconds"] is not None
        else f"  leadTimeSeconds: {lead:g}"
        if lead is not None
        else "  # leadTimeSeconds: unknown (no start-up data); set it by hand"
    )
    return "\n".join(
        [
            "apiVersion: autoscaling.predictive.io/v1alpha1",
            "kind: PredictiveAutoscaler",
            "metadata:",
            f"  name: {name}",
            f"  namespace: {doc['namespace']}",
            "spec:",
            "  targetRef:",
            "    apiVersion: apps/v1",
            f"    kind: {kind}",
            f"    name: {name}",
            f"  query: {json.dumps(load_query)}",
            f"  # learnt by autoscaler calibrate on {doc['window']['end']}: interval "
            f"{lo:.4g} .. {hi:.4g}",
            f"  capacityPerReplica: {capacity:g}",
            lead_line,
        ]
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def calibrate(
        prometheus_url: Annotated[
            str,
            typer.Option(envvar="AUTOSCALER_PROMETHEUS_URL", help="PromQL API base URL."),
        ],
        namespace: Annotated[str, typer.Option(help="Namespace of the workload.")],
        target: Annotated[str, typer.Option(help="deployment/NAME or statefulset/NAME.")],
        load_query: Annotated[
            str,
            typer.Option(help="PromQL giving ONE series of the workload's load per second."),
        ],
        json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        window: Annotated[str, typer.Option(help="History to learn from, e.g. 2d.")] = "2d",
        step: Annotated[str, typer.Option(help="Resolution, e.g. 60s.")] = "60s",
        rate_window: Annotated[
            str, typer.Option(help="rate() window of the CPU query; match the load query's.")
        ] = "5m",
        end: Annotated[
            str | None, typer.Option(help="End of the window (unix s or ISO); default now.")
        ] = None,
        lead_time: Annotated[
            str | None, typer.Option(help="Use this lead time instead of start-up p90 + 15 s.")
        ] = None,
        request_cores: Annotated[
            float | None,
            typer.Option(help="CPU request per pod in cores, instead of kube-state-metrics."),
        ] = None,
        min_change: Annotated[
            float, typer.Option(help="Smallest capacity move reported as a change (0.05 = 5 %).")
        ] = 0.05,
        min_segment: Annotated[
            str, typer.Option(help="Shortest stretch between change points, e.g. 2h.")
        ] = "2h",
        cpu_query: Annotated[
            str | None, typer.Option(help="Template: CPU cores of the workload (one series).")
        ] = None,
        pods_query: Annotated[
            str | None, typer.Option(help="Template: pods that CPU comes from (one series).")
        ] = None,
        request_query: Annotated[
            str | None, typer.Option(help="Template: mean CPU request per pod (one series).")
        ] = None,
        created_query: Annotated[
            str | None, typer.Option(help="Template: creation time per pod (by pod).")
        ] = None,
        ready_query: Annotated[
            str | None, typer.Option(help="Template: first Ready time per pod (by pod).")
        ] = None,
        pods_selector: Annotated[
            str | None,
            typer.Option(help="Template: 1-valued vector by (namespace, pod) of the pods."),
        ] = None,
        pods_selector_range: Annotated[
            str | None,
            typer.Option(help="Template: the same, for pods seen anywhere in the window."),
        ] = None,
        timeout: Annotated[str, typer.Option(help="HTTP timeout per request.")] = "30s",
        bearer_token_file: Annotated[
            Path | None, typer.Option(help="File with a bearer token.")
        ] = None,
        header: Annotated[
            list[str] | None, typer.Option(help="Extra header 'Name: value' (repeatable).")
        ] = None,
        basic_auth_user: Annotated[str | None, typer.Option(help="Basic-auth user.")] = None,
        basic_auth_password_file: Annotated[
            Path | None, typer.Option(help="File with the basic-auth password.")
        ] = None,
        ca_file: Annotated[Path | None, typer.Option(help="PEM CA bundle for TLS.")] = None,
        insecure_skip_verify: Annotated[
            bool, typer.Option(help="Do not verify the server's certificate.")
        ] = False,
    ) -> None:
        """Learn capacityPerReplica and leadTimeSeconds of a workload from Prometheus.

        Fits CPU = idle x pods + cost x load (robust, with change points for releases)
        from cAdvisor and kube-state-metrics; capacity = (request - idle) / cost. Start-up
        is creation -> Ready of the workload's pods; lead time = its p90 + one HPA sync.
        Query templates take $namespace, $name, $rate, $range, $pods and $pods_range.
        """
        ref = WorkloadRef.parse(namespace, target)
        window_s = parse_duration(window, "--window")
        step_s = parse_duration(step, "--step")
        if step_s != round(step_s) or step_s < 1:
            raise InputError("--step", f"{step!r} is not a whole number of seconds", "e.g. 60s")
        parse_duration(rate_window, "--rate-window")
        if window_s < 2 * step_s:
            raise InputError("--window", "shorter than two steps", "e.g. 2d")
        lead = None if lead_time is None else parse_duration(lead_time, "--lead-time")
        if request_cores is not None and not (math.isfinite(request_cores) and request_cores > 0):
            raise InputError("--request-cores", f"{request_cores} is not positive", "e.g. 0.5")
        if not 0 <= min_change < 1:
            raise InputError("--min-change", f"{min_change} is not in [0, 1)", "e.g. 0.05")
        config = CapacityConfig(
            min_segment_seconds=parse_duration(min_segment, "--min-segment"), min_change=min_change
        )
        queries = with_overrides(
            ClusterQueries(),
            cpu=cpu_query,
            pods=pods_query,
            request=request_query,
            created=created_query,
            ready=ready_query,
            pod_selector=pods_selector,
            pod_selector_range=pods_selector_range,
        )
        extra = prometheus_flags(
            timeout,
            header,
            ca_file,
            insecure_skip_verify,
            bearer_token_file,
            basic_auth_user,
            basic_auth_password_file,
        )
        # Calibration takes one series per query; a second one is a wrong query.
        extra["multiple_series"] = "error"
        settings = load_prometheus_settings({"url": prometheus_url, **extra}, where="prometheus")
        with PrometheusSource(settings) as source:
            try:
                cal = calibrate_workload(
                    source,
                    ref,
                    load_query,
                    end=parse_end(end),
                    window_seconds=window_s,
                    step_seconds=int(step_s),
                    rate_window=rate_window,
                    queries=queries,
                    config=config,
                    request_cores=request_cores,
                    lead_time=lead,
                )
            except PermanentError as err:
                # For this command the queries and the URL are the user's input.
                raise InputError("--prometheus-url or a query", str(err)) from err
        if cal.capacity_error is not None:
            raise cal.capacity_error
        if cal.startup_error is not None:
            typer.echo(f"warning: {cal.startup_error}", err=True)
        doc = report(cal, window_s)
        if json_out:
            typer.echo(json.dumps(json_safe(doc), indent=2, allow_nan=False))
        else:
            typer.echo(text(doc, load_query))
