"""Kubernetes resource quantities (``500m``, ``1Gi``, ``1e3``, ``1.5``) as exact decimals.

Why our own parser: the price of a replica is its requests times the prices, and a
budget check compares sums of those prices with a cap, so the arithmetic must be exact
(``decimal.Decimal``) and the parser must accept exactly what the API server accepts
(``k8s.io/apimachinery/pkg/api/resource.Quantity``) and reject everything else with a
message that names the field. Callers: ``policies.prices`` (per-replica price),
``policies.budget`` (request validation), and through them the CLI and the simulator.

Grammar (from ``resource.Quantity``)::

    quantity ::= sign? number suffix
    number   ::= digits | digits "." digits? | "." digits
    suffix   ::= binarySI | decimalSI | ("e" | "E") sign? digits
    binarySI ::= Ki | Mi | Gi | Ti | Pi | Ei
    decimalSI::= n | u | m | "" | k | M | G | T | P | E

``1E`` is one exa; ``1E3`` is one thousand (an exponent needs digits after it).

``format_quantity`` is the other direction, as the API server serves values: exactly
what Go's ``Quantity.String()`` emits for DecimalSI, so fixtures and round trips match:
the value rounded up to nano precision, written as ``m * 10**e`` with integer ``m`` and
the largest ``e`` in {-9, -6, ..., 18} that keeps ``m`` an integer, then ``m`` plus the
suffix for ``e``. Floats are never formatted directly (``0.1`` must be ``100m``, not
``100.00000000000001m``).
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from models.errors import InputError

_BINARY: dict[str, Decimal] = {
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_DECIMAL: dict[str, Decimal] = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}

_QUANTITY_RE = re.compile(
    r"""^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))
        (?:(?P<exp>[eE][+-]?[0-9]+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$""",
    re.VERBOSE,
)

#: One GiB in bytes: memory prices are per GiB-hour (as OpenCost's ``RAM``).
GIB = Decimal(2) ** 30

#: Exponents beyond this are typos, not quantities: Kubernetes caps quantities near 2^63.
_MAX_EXPONENT = 30

#: Beyond any real request (10^27 bytes is a thousand yottabytes; the grammar's largest
#: suffixed numbers stay below it): a longer JSON integer is a typo, and would turn a
#: price into infinity.
_MAX_QUANTITY = Decimal(10) ** 27

_FIX = "write a Kubernetes quantity such as 500m, 2, 1.5, 1Gi, 128Mi or 1e3"


def parse_quantity(value: object, where: str, *, allow_negative: bool = False) -> Decimal:
    """Parse a Kubernetes quantity into an exact ``Decimal`` in base units.

    ``value`` may be a string in Kubernetes notation or a plain JSON number (int or
    float, as YAML and JSON write ``cpu: 2``). ``where`` names the field for the error
    (``workloads[0].requests.cpu``). Negative quantities are rejected unless
    ``allow_negative``: a request cannot be negative.
    """
    if isinstance(value, bool):
        # bool is an int subclass; ``cpu: true`` is a typo, never a quantity.
        raise InputError(where, f"expected a quantity, got boolean {value!r}", _FIX)
    if isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(where, f"quantity {value!r} is not finite", _FIX)
        # repr() is the shortest string that round-trips: 0.1 stays 0.1, not 0.1000000000000000055
        result = Decimal(repr(value))
    elif isinstance(value, str):
        result = _parse_text(value, where)
    else:
        raise InputError(where, f"expected a quantity, got {type(value).__name__}", _FIX)
    if abs(result) > _MAX_QUANTITY:
        raise InputError(where, f"quantity {_clip(value)} is absurdly large", _FIX)
    if result < 0 and not allow_negative:
        raise InputError(where, f"quantity {value!r} is negative", "requests must be >= 0")
    return result


def _clip(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse_text(text: str, where: str) -> Decimal:
    match = _QUANTITY_RE.match(text.strip()) if text.strip() == text else None
    if match is None:
        raise InputError(where, f"bad quantity {text!r}", _FIX)
    number = Decimal(match["number"])
    if match["exp"] is not None:
        exponent = int(match["exp"][1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise InputError(where, f"quantity {text!r} has an absurd exponent", _FIX)
        try:
            return number.scaleb(exponent)
        except InvalidOperation as err:  # pragma: no cover - guarded by _MAX_EXPONENT
            raise InputError(where, f"bad quantity {text!r}", _FIX) from err
    suffix = match["suffix"] or ""
    factor = _BINARY.get(suffix) or _DECIMAL[suffix]
    return number * factor


def cpu_cores(value: object, where: str) -> Decimal:
    """A CPU quantity in cores (``500m`` -> 0.5)."""
    return parse_quantity(value, where)


def memory_gib(value: object, where: str) -> Decimal:
    """A memory quantity in GiB (``512Mi`` -> 0.5, ``1G`` -> 0.931...)."""
    return parse_quantity(value, where) / GIB


# ----------------------------------------------------------------- formatting

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
