"""What several commands share: Prometheus connection flags and JSON-safe output.

Callers: ``autoscaler forecast``, ``autoscaler calibrate``, ``autoscaler backtest``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from models.errors import InputError
from models.units import parse_duration


def headers_from_flags(items: list[str]) -> dict[str, str]:
    """``--header 'Name: value'`` (repeatable) as a mapping."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise InputError("--header", f"{item!r} is not 'Name: value'", "e.g. X-Org: a")
        out[name.strip()] = value.strip()
    return out


def prometheus_flags(
    timeout: str,
    header: list[str] | None,
    ca_file: Path | None,
    insecure_skip_verify: bool,
    bearer_token_file: Path | None,
    basic_auth_user: str | None,
    basic_auth_password_file: Path | None,
) -> dict[str, Any]:
    """The Prometheus settings the connection flags stand for (beside ``url``)."""
    extra: dict[str, Any] = {
        "timeout_seconds": parse_duration(timeout, "--timeout"),
        "headers": headers_from_flags(header or []),
        "tls": {"ca_file": ca_file, "insecure_skip_verify": insecure_skip_verify},
    }
    if bearer_token_file is not None:
        extra["bearer_token_file"] = bearer_token_file
    if basic_auth_user is not None:
        extra["basic_auth"] = {
            "username": basic_auth_user,
            "password_file": basic_auth_password_file,
        }
    return extra


def json_safe(value: Any) -> Any:
    """JSON has no NaN or Infinity: an undefined figure becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
