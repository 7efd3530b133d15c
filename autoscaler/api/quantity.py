"""Canonical Kubernetes ``resource.Quantity`` strings, built with ``decimal``.

The HPA parses ``value`` as a Quantity and uses ``MilliValue()`` (rounded up). We emit
exactly what Go's ``Quantity.String()`` emits for DecimalSI, so fixtures and round trips
match: value rounded up to nano precision, written as ``m * 10**e`` with integer ``m`` and
the largest ``e`` in {-9, -6, ..., 18} that keeps ``m`` an integer, then ``m`` plus the
suffix for ``e``. Floats are never formatted directly (``0.1`` must be ``100m``, not
``100.00000000000001m``). Called by the API server when it serialises a list.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal

from models.errors import InputError

_SUFFIXES: tuple[tuple[int, str], ...] = (
    (18, "E"),
    (15, "P"),
    (12, "T"),
    (9, "G"),
    (6, "M"),
    (3, "k"),
    (0, ""),
    (-3, "m"),
    (-6, "u"),
    (-9, "n"),
)
_NANO = Decimal("1e-9")


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """The exact decimal a value stands for; floats go through ``repr`` (shortest form)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError("value", f"{value} is not a finite number", "serve finite values")
        return Decimal(repr(value))
    return Decimal(value)


def format_quantity(value: float | int | str | Decimal) -> str:
    """Canonical DecimalSI string: ``1.5 -> "1500m"``, ``2000 -> "2k"``, ``0.0001 -> "100u"``."""
    dec = to_decimal(value)
    if not dec.is_finite():
        raise InputError("value", f"{value} is not a finite number", "serve finite values")
    # Kubernetes keeps nano precision and rounds finer values up (away from -inf).
    dec = dec.quantize(_NANO, rounding=ROUND_CEILING) if dec.as_tuple().exponent < -9 else dec  # type: ignore[operator]
    if dec == 0:
        return "0"
    sign = "-" if dec < 0 else ""
    mag = abs(dec)
    for exp, suffix in _SUFFIXES:
        scaled = mag.scaleb(-exp)
        if scaled == scaled.to_integral_value():
            return f"{sign}{int(scaled)}{suffix}"
    raise AssertionError("unreachable: nano precision always yields an integer")  # pragma: no cover
