"""ForecastOnly (shadow mode): decisions recorded as JSON lines, and scored later.

``ShadowRecorder`` appends one record per ForecastOnly workload per tick (the leader
only); ``autoscaler report`` reads them back (``read_shadow``) and scores each decision
against the load that followed it (``shadow_report``).

Callers: ``autoscaler.controller.loop``, ``autoscaler.cli.run`` (``report``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoscaler.controller.results import WorkloadResult


class ShadowRecorder:
    """Appends ForecastOnly decisions as JSON lines (``autoscaler report`` reads them)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes

    def record(self, results: list[WorkloadResult]) -> None:
        if not results:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > self.max_bytes:
            self.path.replace(self.path.with_name(self.path.name + ".1"))
        with self.path.open("a", encoding="utf-8") as out:
            for r in results:
                out.write(json.dumps(shadow_record(r), separators=(",", ":")) + "\n")


def shadow_record(r: WorkloadResult) -> dict[str, Any]:
    d = r.decision
    return {
        "time": d.time,
        "workload": r.key,
        "target": r.target,
        "current": r.current_replicas,
        "desired": d.desired_replicas,
        "replicas": d.replicas,
        "observed": r.observed_load,
        "forecast": r.forecast_load,
        "quantile": r.risk_quantile,
        "lead": r.lead_seconds,
        "per_replica": r.per_replica,
        "constraint": d.binding_constraint,
        "fallback": d.fallback,
    }


@dataclass(frozen=True)
class ShadowSummary:
    """How ForecastOnly decisions of one workload compare with what happened."""

    workload: str
    scored: int
    #: mean replicas the forecast asked for / that actually ran one lead time later.
    predicted_mean: float
    actual_mean: float
    #: share of decisions whose replicas were below what the observed peak needed.
    predicted_short: float
    actual_short: float
    #: replica-hours over the scored span: predicted vs actual.
    predicted_replica_hours: float
    actual_replica_hours: float


def read_shadow(path: Path) -> list[dict[str, Any]]:
    """Records of a shadow file (and its rotated ``.1``), oldest first; bad lines skipped."""
    records: list[dict[str, Any]] = []
    for part in (path.with_name(path.name + ".1"), path):
        if not part.exists():
            continue
        for line in part.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash mid-write: the rest is still good
            if isinstance(rec, dict) and "workload" in rec and "time" in rec:
                records.append(rec)
    records.sort(key=lambda r: float(r["time"]))
    return records


def shadow_report(records: list[dict[str, Any]]) -> list[ShadowSummary]:
    """Score each shadow decision against the load that followed it.

    A decision at ``t`` is scored when records exist past ``t + lead``: the replicas
    *needed* are ``ceil(peak observed load in (t, t + lead] / per_replica)``; the
    forecast was short if it asked for fewer; reality was short if the replicas
    running at ``t + lead`` were fewer. Decisions without a later observation are not
    scored (the report says how many were).
    """
    by: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by.setdefault(str(rec["workload"]), []).append(rec)
    out: list[ShadowSummary] = []
    for workload, recs in sorted(by.items()):
        times = [float(r["time"]) for r in recs]
        pred: list[int] = []
        act: list[int] = []
        p_short = a_short = 0
        p_hours = a_hours = 0.0
        for i, rec in enumerate(recs):
            lead = float(rec.get("lead") or 0.0)
            per = float(rec.get("per_replica") or 0.0)
            t = times[i]
            if lead <= 0 or per <= 0 or times[-1] < t + lead:
                continue
            window = [
                float(r["observed"])
                for r, tt in zip(recs[i + 1 :], times[i + 1 :], strict=True)
                if tt <= t + lead and r.get("observed") is not None
            ]
            later = next(r for r, tt in zip(recs, times, strict=True) if tt >= t + lead)
            if not window:
                continue
            needed = math.ceil(max(window) / per - 1e-9)
            predicted, actual = int(rec["replicas"]), int(later["current"])
            pred.append(predicted)
            act.append(actual)
            p_short += predicted < needed
            a_short += actual < needed
            step = (times[i + 1] - t) / 3600.0 if i + 1 < len(recs) else 0.0
            p_hours += predicted * step
            a_hours += actual * step
        n = len(pred)
        out.append(
            ShadowSummary(
                workload=workload,
                scored=n,
                predicted_mean=sum(pred) / n if n else 0.0,
                actual_mean=sum(act) / n if n else 0.0,
                predicted_short=p_short / n if n else 0.0,
                actual_short=a_short / n if n else 0.0,
                predicted_replica_hours=p_hours,
                actual_replica_hours=a_hours,
            )
        )
    return out
