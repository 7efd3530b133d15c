"""Parsing of the units users type: durations and quantile lists.

One definition for every command and file: ``autoscaler backtest --horizon 2m``,
``forecast --step 60s``, ``simulate --outage 26h/10m``, the Prometheus settings.
Bad input is an ``InputError`` naming where it came from and what to write instead.
"""

from __future__ import annotations

import math
import re

from models.errors import InputError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "y": 31_536_000}


def parse_duration(text: str, where: str, allow_zero: bool = False) -> float:
    """Seconds in a Prometheus-style duration (``90s``, ``2m``, ``1h30m``, ``14d``).

    A bare number is seconds. Positive unless ``allow_zero`` (then ``0`` is fine).
    """
    s = str(text).strip()
    fix = "write e.g. 90s, 2m, 1h30m or 14d"
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if math.isfinite(value) and (value > 0 or (allow_zero and value == 0)):
            return value
        raise InputError(where, f"duration {text!r} must be positive", fix)
    pos = 0
    total = 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s or (total <= 0 and not allow_zero) or not math.isfinite(total):
        raise InputError(where, f"{text!r} is not a duration", fix)
    return total


def parse_quantile_list(text: str, where: str = "--quantiles") -> list[tuple[str, float]]:
    """``"0.5,0.9"`` -> [("0.5", 0.5), ("0.9", 0.9)], keeping the text as given.

    Each level strictly between 0 and 1, each given once.
    """
    out: list[tuple[str, float]] = []
    for part in str(text).split(","):
        p = part.strip()
        try:
            q = float(p)
        except ValueError as err:
            raise InputError(where, f"{p!r} is not a number", "write e.g. 0.5,0.9") from err
        if not math.isfinite(q) or not 0 < q < 1:
            raise InputError(where, f"{p} is not between 0 and 1", "write e.g. 0.5,0.9")
        if any(q == v for _, v in out):
            raise InputError(where, f"{p} is given twice", "list each level once")
        out.append((p, q))
    return out


def parse_quantiles(text: str, where: str = "--quantiles") -> list[float]:
    """``"0.5,0.9"`` -> [0.5, 0.9], sorted."""
    return sorted(q for _, q in parse_quantile_list(text, where))
