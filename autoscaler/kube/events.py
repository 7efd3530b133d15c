"""Kubernetes Events on PredictiveAutoscalers (``kubectl describe pa`` shows them).

The controller emits one when fallback starts and when it ends, and when the cost
guard starts or stops clamping, so an operator sees *why* replicas changed without
reading logs. Event names are unique per object and time (``<name>.<hex nanoseconds>``),
which is what client-go's recorder does; a failed Event never fails a reconcile.
Callers: ``autoscaler.kube.cluster``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

from autoscaler.kube.client import KubeClient, path_for
from models.errors import AutoscalerError
from policies.objects import API_VERSION, PA_KIND, PredictiveAutoscaler

log = logging.getLogger(__name__)
COMPONENT = "predictive-autoscaler"


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_body(
    pa: PredictiveAutoscaler,
    reason: str,
    message: str,
    now: float,
    kind: Literal["Normal", "Warning"] = "Normal",
) -> dict[str, Any]:
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{pa.metadata.name}.{int(now * 1e9):x}",
            "namespace": pa.metadata.namespace,
        },
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": PA_KIND,
            "name": pa.metadata.name,
            "namespace": pa.metadata.namespace,
            "uid": pa.metadata.uid,
        },
        "reason": reason,
        "message": message[:1024],
        "type": kind,
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
    }


def emit_event(
    client: KubeClient,
    pa: PredictiveAutoscaler,
    reason: str,
    message: str,
    now: float,
    kind: Literal["Normal", "Warning"] = "Normal",
) -> bool:
    """Create the Event; False (and a log line) if the API server refused it."""
    try:
        client.create(
            path_for("v1", "events", pa.metadata.namespace),
            event_body(pa, reason, message, now, kind),
        )
    except AutoscalerError as err:
        log.warning("could not record event %s on %s: %s", reason, pa.key, err)
        return False
    return True
