"""Kubernetes quantities: the suffixes of resource.Quantity, exactness, and clear rejections."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.errors import InputError
from policies.quantity import GIB, cpu_cores, memory_gib, parse_quantity

GOOD = [
    ("500m", Decimal("0.5")),
    ("2", Decimal(2)),
    ("1.5", Decimal("1.5")),
    (".5", Decimal("0.5")),
    ("5.", Decimal(5)),
    ("+3", Decimal(3)),
    ("100Ki", Decimal(102400)),
    ("1Mi", Decimal(2**20)),
    ("1Gi", Decimal(2**30)),
    ("1.5Gi", Decimal(3 * 2**29)),
    ("1Ti", Decimal(2**40)),
    ("1Pi", Decimal(2**50)),
    ("1Ei", Decimal(2**60)),
    ("1k", Decimal(1000)),
    ("1M", Decimal(10**6)),
    ("1G", Decimal(10**9)),
    ("1T", Decimal(10**12)),
    ("1P", Decimal(10**15)),
    ("1E", Decimal(10**18)),
    ("1e3", Decimal(1000)),
    ("1E3", Decimal(1000)),
    ("1.5e-3", Decimal("0.0015")),
    ("2E+2", Decimal(200)),
    ("100n", Decimal("1e-7")),
    ("250u", Decimal("0.00025")),
    ("0", Decimal(0)),
    (2, Decimal(2)),
    (0.1, Decimal("0.1")),
]


@pytest.mark.parametrize(("text", "expected"), GOOD, ids=[str(t) for t, _ in GOOD])
def test_parses_kubernetes_quantities_exactly(text: object, expected: Decimal) -> None:
    assert parse_quantity(text, "f") == expected


BAD = [
    "",
    " 1",
    "1 ",
    "1Kb",
    "1KI",
    "1gi",
    "m",
    "1.2.3",
    "1e",
    "1e3m",
    "--1",
    "1 Gi",
    "0x10",
    "1e999",
    "inf",
    "NaN",
    "1,5",
]


@pytest.mark.parametrize("text", BAD)
def test_rejects_bad_quantities_naming_the_field(text: str) -> None:
    with pytest.raises(InputError) as err:
        parse_quantity(text, "workloads[0].requests.cpu")
    assert err.value.where == "workloads[0].requests.cpu"
    assert repr(text) in err.value.problem or "absurd" in err.value.problem
    assert err.value.fix


@pytest.mark.parametrize("value", [True, None, [1], float("inf"), float("nan")])
def test_rejects_non_quantities(value: object) -> None:
    with pytest.raises(InputError):
        parse_quantity(value, "f")


def test_negative_only_when_allowed() -> None:
    with pytest.raises(InputError, match="negative"):
        parse_quantity("-1", "f")
    assert parse_quantity("-500m", "f", allow_negative=True) == Decimal("-0.5")


def test_units_for_pricing() -> None:
    assert cpu_cores("250m", "cpu") == Decimal("0.25")
    assert memory_gib("512Mi", "memory") == Decimal("0.5")
    assert memory_gib("1G", "memory") == Decimal(10**9) / GIB
    assert memory_gib("1e9", "memory") == memory_gib("1G", "memory")


# The kubernetes client's own parser as an independent oracle, on generated quantities.
_NUMBERS = st.from_regex(r"\A[+-]?([0-9]{1,6}(\.[0-9]{0,4})?|\.[0-9]{1,4})\Z")
_SUFFIXES = st.sampled_from(
    ["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
    + [f"e{e}" for e in range(-6, 7)]
    + [f"E+{e}" for e in range(4)]
)


@settings(max_examples=500, derandomize=True, deadline=None)
@given(_NUMBERS, _SUFFIXES)
def test_agrees_with_the_kubernetes_client(number: str, suffix: str) -> None:
    from kubernetes.utils import parse_quantity as kube_parse

    text = number + suffix
    assert parse_quantity(text, "f", allow_negative=True) == kube_parse(text)
