"""``autoscaler forecast``: forecast the peak of one PromQL query over a horizon.

Why: before a query goes into a PredictiveAutoscaler, its owner wants to know whether
it has data, whether it is a rate (not a bare counter), and what the forecaster makes
of it. This command runs exactly the controller's path for one query: the Prometheus
source (same settings, same edge policies) -> ``models.registry.make_forecaster`` ->
the forecast of the peak over the next ``--horizon``, at the requested quantiles.

Bad flags, a bad query or a query without data are one error line and exit status 2
(``InputError``); an unreachable or slow server is exit status 1 (``RetryableError``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from autoscaler.cli.common import prometheus_flags
from autoscaler.sources.base import has_data, is_stale
from autoscaler.sources.prometheus import PrometheusSource, to_unix
from autoscaler.sources.settings import load_prometheus_settings
from models.errors import InputError, PermanentError
from models.registry import DEFAULT_MODEL, make_forecaster
from models.units import parse_duration, parse_quantiles

log = logging.getLogger(__name__)


def parse_end(text: str | None) -> float:
    """``--end``: unix seconds or ISO-8601 with a zone; default now."""
    if text is None:
        return time.time()
    try:
        return float(text)
    except ValueError:
        pass
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        return to_unix(datetime.fromisoformat(iso), "--end")
    except ValueError as err:
        raise InputError(
            "--end", f"{text!r} is not a time", "write unix seconds or 2026-01-01T00:00:00Z"
        ) from err


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_forecast(
    *,
    url: str,
    query: str,
    horizon: str,
    quantiles: str,
    model: str,
    history: str,
    step: str,
    end: str | None,
    settings_extra: dict[str, Any],
) -> dict[str, Any]:
    """Fetch, fit, predict; return the result as a JSON-ready dict."""
    step_s = parse_duration(step, "--step")
    if step_s != round(step_s) or step_s < 1:
        raise InputError("--step", f"{step!r} is not a whole number of seconds", "e.g. 1m")
    horizon_s = parse_duration(horizon, "--horizon")
    history_s = parse_duration(history, "--history")
    levels = parse_quantiles(quantiles)
    steps = max(1, math.ceil(horizon_s / step_s))
    if history_s < 2 * step_s:
        raise InputError("--history", "shorter than two steps", "give more history, e.g. 1d")
    end_s = parse_end(end)
    forecaster = make_forecaster(model)  # unknown model: InputError before any I/O
    settings = load_prometheus_settings({"url": url, **settings_extra}, where="prometheus")
    with PrometheusSource(settings) as source:
        try:
            series = source.history(query, end_s - history_s, end_s, step_s)
        except PermanentError as err:
            # For this command the query and URL are the user's input.
            raise InputError("--query/--prometheus-url", str(err)) from err
    if not has_data(series):
        raise InputError(
            "--query",
            f"no data for {query!r} in the last {history} (no data is not zero)",
            "check the metric name and labels in the Prometheus UI, or --history",
        )
    result = forecaster.fit(series).predict(steps, levels)
    attrs = series.attrs
    return {
        "query": query,
        "url": settings.url,
        "end": _iso(end_s),
        "step_seconds": int(step_s),
        "horizon_seconds": horizon_s,
        "horizon_steps": steps,
        "history": {
            "seconds": history_s,
            "points": len(series),
            "missing": int(series.isna().sum()),
            "last_sample": _iso(attrs.get("last_sample")),
            "stale": is_stale(series),
            "non_finite": attrs.get("non_finite", 0),
            "negative": attrs.get("negative", 0),
        },
        "model": result.model or model,
        "note": result.note,
        "mean": result.mean,
        "quantiles": {f"{q:g}": result.quantile(q) for q in levels},
    }


def _text(out: dict[str, Any]) -> str:
    h = out["history"]
    lines = [
        f"query:    {out['query']}",
        f"source:   {out['url']} (end {out['end']})",
        f"history:  {h['points']} points every {out['step_seconds']} s, {h['missing']} missing, "
        f"last sample {h['last_sample']}" + (" (STALE)" if h["stale"] else ""),
        f"model:    {out['model']}" + (f" ({out['note']})" if out["note"] else ""),
        f"forecast of the peak over the next {out['horizon_seconds']:g} s "
        f"({out['horizon_steps']} steps):",
        f"  mean    {out['mean']:.6g}",
    ]
    lines += [f"  q{q:<6} {v:.6g}" for q, v in out["quantiles"].items()]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command()
    def forecast(
        prometheus_url: Annotated[
            str,
            typer.Option(
                envvar="AUTOSCALER_PROMETHEUS_URL",
                help="PromQL API base URL (Prometheus, Thanos, Mimir .../prometheus, VM).",
            ),
        ],
        query: Annotated[
            str, typer.Option(help="PromQL giving ONE series of load, e.g. sum(rate(x_total[5m])).")
        ],
        horizon: Annotated[str, typer.Option(help="Forecast the peak over this, e.g. 2m.")] = "2m",
        quantiles: Annotated[str, typer.Option(help="Comma-separated levels.")] = "0.5,0.9",
        json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        model: Annotated[str, typer.Option(help="Forecaster registry name.")] = DEFAULT_MODEL,
        history: Annotated[str, typer.Option(help="History to fit on, e.g. 1d.")] = "1d",
        step: Annotated[str, typer.Option(help="Resolution of the history, e.g. 1m.")] = "1m",
        end: Annotated[
            str | None, typer.Option(help="End of the history (unix s or ISO); default now.")
        ] = None,
        timeout: Annotated[str, typer.Option(help="HTTP timeout per request.")] = "10s",
        bearer_token_file: Annotated[
            Path | None, typer.Option(help="File with a bearer token.")
        ] = None,
        header: Annotated[
            list[str] | None,
            typer.Option(help="Extra header 'Name: value' (repeatable), e.g. X-Scope-OrgID."),
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
        """Forecast the peak of one PromQL query over --horizon (is the query predictable?)."""
        extra = prometheus_flags(
            timeout,
            header,
            ca_file,
            insecure_skip_verify,
            bearer_token_file,
            basic_auth_user,
            basic_auth_password_file,
        )
        out = run_forecast(
            url=prometheus_url,
            query=query,
            horizon=horizon,
            quantiles=quantiles,
            model=model,
            history=history,
            step=step,
            end=end,
            settings_extra=extra,
        )
        if out["history"]["stale"]:
            typer.echo(
                f"warning: the newest sample is from {out['history']['last_sample']}; "
                "the series is stale",
                err=True,
            )
        typer.echo(json.dumps(out, indent=2) if json_out else _text(out))
