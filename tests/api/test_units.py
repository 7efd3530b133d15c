"""Unit tests of the pieces under the API: Quantity strings, selectors, the store.

Table-driven with ids. Quantity rows are the spec's table (section 1.3) and are checked
against the kubernetes client's reference parser too; selector rows cover every
operator of apimachinery's grammar and its malformed forms.
"""

from __future__ import annotations

import math
import re
import threading
import time
from decimal import ROUND_CEILING, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.utils.quantity import parse_quantity

from autoscaler.api.selector import parse_selector
from autoscaler.store import DecisionStore, MetricValue
from models.errors import InputError
from policies.quantity import format_quantity

QUANTITIES = [
    (0, "0", 0),
    (0.1, "100m", 100),
    (1.5, "1500m", 1500),
    (42, "42", 42000),
    (1200, "1200", 1_200_000),
    (2000, "2k", 2_000_000),
    (1_500_000, "1500k", 1_500_000_000),
    (2_000_000, "2M", 2_000_000_000),
    (1234.5, "1234500m", 1_234_500),
    (-0.25, "-250m", -250),
    (0.0001, "100u", 1),
    (1e-10, "1n", 1),
    (12.5, "12500m", 12500),
    (3e18, "3E", 3 * 10**21),
]


@pytest.mark.parametrize(("value", "text", "milli"), QUANTITIES, ids=[q[1] for q in QUANTITIES])
def test_quantity_canonical(value: float, text: str, milli: int) -> None:
    assert format_quantity(value) == text
    parsed = parse_quantity(text)
    assert math.ceil(parsed * Decimal(1000)) == milli
    assert "." not in text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_quantity_rejects_non_finite(value: float) -> None:
    with pytest.raises(InputError):
        format_quantity(value)


LABELS = {"app": "web", "tier": "front", "n": "5", "empty": ""}
SELECTORS = [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=api", False),
    ("app!=api", True),
    ("missing!=x", True),
    ("app in (api,web)", True),
    ("app in (api)", False),
    ("app notin (api)", True),
    ("missing notin (a)", True),
    ("missing in (a)", False),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("app=web,tier=front", True),
    ("app=web,tier=back", False),
    (" app = web , tier in ( front , back ) ", True),
    ("empty=", True),
    ("n>4", True),
    ("n<5", False),
    ("example.com/app", False),
]


@pytest.mark.parametrize(("text", "match"), SELECTORS, ids=[s[0] or "empty" for s in SELECTORS])
def test_selector_matches(text: str, match: bool) -> None:
    assert parse_selector(text).matches(LABELS) is match


BAD = [
    "app in (a",
    "app in a",
    "app===web",
    "!",
    ",",
    "a,,b",
    "app=web,",
    "bad$key",
    "app=bad value",
    "app in (a b)",
    "n>x",
    "(app)",
    "app notin",
    "app=" + "x" * 64,
]


@pytest.mark.parametrize("text", BAD, ids=range(len(BAD)))
def test_selector_malformed(text: str) -> None:
    with pytest.raises(InputError):
        parse_selector(text)


def mv(ns: str, workload: str, value: float, ts: float = 1.0) -> MetricValue:
    return MetricValue(ns, "Autoscaler_Desired_Replicas", {"workload": workload}, value, ts)


def test_store_publish_query_remove() -> None:
    store = DecisionStore()
    store.publish([mv("prod", "a", 1.0), mv("prod", "b", 2.0), mv("dev", "a", 3.0)])
    assert store.has_metric("AUTOSCALER_DESIRED_REPLICAS")
    assert [m.name for m in store.metric_names()] == ["autoscaler_desired_replicas"]
    assert sorted(v.value for v in store.query("prod", "autoscaler_desired_replicas", None)) == [
        1.0,
        2.0,
    ]
    sel = parse_selector("workload=a")
    assert [v.value for v in store.query("prod", "Autoscaler_Desired_Replicas", sel)] == [1.0]
    store.publish([mv("prod", "a", 5.0)])  # overwrite one series
    assert sorted(v.value for v in store.query("prod", "autoscaler_desired_replicas", None)) == [
        2.0,
        5.0,
    ]
    store.remove("prod", "autoscaler_desired_replicas", {"workload": "b"})
    assert [v.value for v in store.query("prod", "autoscaler_desired_replicas", None)] == [5.0]
    store.publish([mv("dev", "z", 9.0)], replace_all=True)
    assert store.query("prod", "autoscaler_desired_replicas", None) == []
    v0 = store.version
    store.remove("prod", "nothing", {})
    assert store.version == v0  # removing an unknown series is not a change


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0], ids=["nan", "inf", "negative"])
def test_store_rejects_bad_values_atomically(value: float) -> None:
    store = DecisionStore()
    with pytest.raises(InputError):
        store.publish([mv("prod", "ok", 1.0), mv("prod", "bad", value)])
    assert store.query("prod", "autoscaler_desired_replicas", None) == []  # nothing half-applied


def test_store_concurrent_readers_see_whole_snapshots() -> None:
    """Readers never see a half-published batch while a writer replaces everything."""
    store = DecisionStore()
    n = 200
    store.publish([mv("prod", f"w{i}", 0.0) for i in range(n)])
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            values = {v.value for v in store.query("prod", "autoscaler_desired_replicas", None)}
            if len(values) != 1:
                errors.append(f"mixed snapshot: {sorted(values)[:3]}")
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 2.0
    gen = 0
    while time.monotonic() < deadline and gen < 200:
        gen += 1
        store.publish([mv("prod", f"w{i}", float(gen)) for i in range(n)], replace_all=True)
    stop.set()
    for t in threads:
        t.join(5)
    assert not errors
    assert gen > 10


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.floats(min_value=0, max_value=1e15, allow_nan=False, allow_infinity=False))
def test_quantity_round_trips_through_reference_parser(value: float) -> None:
    """Any finite value: canonical form, and the parser gets it back (rounded up to nano)."""
    text = format_quantity(value)
    assert re.fullmatch(r"-?\d+[numkMGTPE]?", text), text
    exact = Decimal(repr(value)).quantize(Decimal("1e-9"), rounding=ROUND_CEILING)
    assert parse_quantity(text) == exact
    # Largest exponent: the mantissa of a suffixed form is never a multiple of 1000.
    digits = text.rstrip("numkMGTPE")
    if text[-1:] in "numkMGTPE" and text[-1:] != "E":
        assert int(digits) % 1000 != 0


@pytest.mark.parametrize(("text", "_match"), SELECTORS, ids=[s[0] or "empty" for s in SELECTORS])
def test_store_indexed_query_equals_full_scan(text: str, _match: bool) -> None:
    """The label index never changes a result: same series as filtering every one."""
    store = DecisionStore()
    apps, tiers, ns = ["web", "api", "db"], ["front", "back"], ["0", "5", "9"]
    store.publish(
        MetricValue("p", "m", {"app": a, "tier": t, "n": n}, 1.0, 1.0)
        for a in apps
        for t in tiers
        for n in ns
    )
    store.publish([MetricValue("p", "m", {"app": "web"}, 2.0, 1.0)])  # a partial publish
    store.remove("p", "m", {"app": "api", "tier": "back", "n": "5"})
    selector = parse_selector(text)
    expected = [v for v in store.all_values() if selector.matches(v.labels)]
    got = store.query("p", "m", selector)
    assert sorted(map(repr, got)) == sorted(map(repr, expected))
