"""The spend ledger: integration, month rollover, projection, and persistence across restarts."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from autoscaler.ledger_store import LedgerCorruptError, LedgerStore
from policies.ledger import LedgerState, accrue, month_key, project

T0 = datetime(2026, 11, 15, 12, tzinfo=UTC)
PRICES = {"a": Decimal("0.02"), "b": 0.5}


def test_accrue_integrates_replicas_times_price_times_hours() -> None:
    state = LedgerState.start(T0)
    state, note = accrue(state, {"a": 10, "b": 2}, PRICES, T0 + timedelta(minutes=30))
    assert note.hours == Decimal("0.5")
    assert state.spent == Decimal("0.5") * (10 * Decimal("0.02") + 2 * Decimal("0.5"))
    assert state.by_workload == {"a": Decimal("0.1"), "b": Decimal("0.5")}
    assert state.as_of == T0 + timedelta(minutes=30)


def test_many_small_steps_equal_one_big_step() -> None:
    step = LedgerState.start(T0)
    for i in range(1, 241):  # one hour in 15-s syncs
        step, _ = accrue(step, {"a": 3}, PRICES, T0 + timedelta(seconds=15 * i))
    whole, _ = accrue(LedgerState.start(T0), {"a": 3}, PRICES, T0 + timedelta(hours=1))
    assert step.spent == whole.spent == Decimal("0.06")


def test_month_rollover_splits_the_interval() -> None:
    start = datetime(2026, 11, 30, 23, tzinfo=UTC)
    state, _ = accrue(LedgerState.start(start), {"a": 1}, {"a": 1.0}, start + timedelta(hours=3))
    assert state.month == "2026-12"
    assert state.closed_months == {"2026-11": Decimal(1)}
    assert state.spent == Decimal(2) and state.by_workload == {"a": Decimal(2)}


def test_rollover_across_several_months() -> None:
    start = datetime(2026, 12, 31, 12, tzinfo=UTC)
    end = datetime(2027, 3, 1, 12, tzinfo=UTC)
    state, _ = accrue(LedgerState.start(start), {"a": 1}, {"a": 1.0}, end)
    assert state.month == "2027-03" and state.spent == Decimal(12)
    assert state.closed_months == {
        "2026-12": Decimal(12),
        "2027-01": Decimal(31 * 24),
        "2027-02": Decimal(28 * 24),
    }


def test_clock_going_backwards_accrues_nothing() -> None:
    state, _ = accrue(LedgerState.start(T0), {"a": 1}, PRICES, T0 + timedelta(hours=1))
    again, note = accrue(state, {"a": 100}, PRICES, T0)
    assert again == state and note.skipped == "clock went backwards"


def test_missing_price_is_an_error_not_zero() -> None:
    with pytest.raises(KeyError, match="'c'"):
        accrue(LedgerState.start(T0), {"c": 1}, PRICES, T0 + timedelta(hours=1))


def test_projection_from_current_rate_and_thresholds() -> None:
    state, _ = accrue(LedgerState.start(T0 - timedelta(hours=100)), {"a": 1}, {"a": 4.0}, T0)
    # spent 400; 372 h left at $1/h -> 772
    p = project(state, T0, [1.0], monthly_limit=700)
    assert p.spent == 400 and p.projected == pytest.approx(772)
    assert p.crossed == (50.0,)
    assert any("exceeds the monthly limit" in a for a in p.alerts)


def test_projection_follows_the_forecast_then_holds_the_last_value() -> None:
    state = LedgerState.start(T0)
    p = project(state, T0, [10.0, 10.0, 0.0])
    assert p.projected == pytest.approx(20.0)
    month_end = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    late, _ = accrue(state, {}, {}, month_end)
    assert project(late, month_end, [2.0, 100.0]).projected == pytest.approx(1.0)


def test_projection_of_a_stale_month_counts_zero() -> None:
    state, _ = accrue(LedgerState.start(T0), {"a": 1}, {"a": 1.0}, T0 + timedelta(hours=1))
    p = project(state, datetime(2026, 12, 2, tzinfo=UTC), [0.0])
    assert p.spent == 0 and p.month == "2026-12"


def test_month_key_is_utc() -> None:
    from datetime import timezone

    assert month_key(datetime(2026, 12, 1, 1, tzinfo=timezone(timedelta(hours=2)))) == "2026-11"


# ------------------------------------------------------------------------- the store


def test_store_roundtrip_is_exact(tmp_path: Path) -> None:
    store = LedgerStore(tmp_path / "ledger.json")
    assert store.load() == {}
    state, _ = accrue(LedgerState.start(T0), {"a": 7}, PRICES, T0 + timedelta(seconds=15))
    store.put("prod", state)
    store.put("dev", LedgerState.start(T0))
    loaded = LedgerStore(tmp_path / "ledger.json").load()
    assert loaded["prod"] == state and set(loaded) == {"prod", "dev"}


def test_restart_loses_nothing(tmp_path: Path) -> None:
    """Stop after every tick and restart from the file: same spend as running through."""
    path = tmp_path / "ledger.json"
    through = LedgerState.start(T0)
    LedgerStore(path).put("prod", LedgerState.start(T0))
    for i in range(1, 41):
        now = T0 + timedelta(seconds=15 * i)
        replicas = {"a": i % 7, "b": 1}
        through, _ = accrue(through, replicas, PRICES, now)
        store = LedgerStore(path)  # a new process each tick
        restored = store.get("prod")
        assert restored is not None
        store.put("prod", accrue(restored, replicas, PRICES, now)[0])
    assert LedgerStore(path).get("prod") == through


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ledger.json"
    store = LedgerStore(path)
    old = LedgerState.start(T0)
    store.put("prod", old)
    before = path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    new, _ = accrue(old, {"a": 1}, PRICES, T0 + timedelta(hours=1))
    with pytest.raises(OSError):
        store.put("prod", new)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.json"]  # no temp file left


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"version": 1, "ledgers": {"prod": {"month": "2026-11"', "not valid JSON"),
        ('{"version": 9, "ledgers": {}}', "unknown ledger format version 9"),
        ("[]", "unknown ledger format version 'list'"),
        (
            '{"version": 1, "ledgers": {"prod": {"month": "2026-11",'
            ' "asOf": "2026-11-15T12:00:00Z", "spent": "-3"}}}',
            "ledgers.prod.spent",
        ),
        ("", "not valid JSON"),
    ],
    ids=["truncated", "version", "not-an-object", "negative-spend", "empty"],
)
def test_corrupt_file_is_a_clear_error_never_a_reset(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "ledger.json"
    path.write_text(content)
    with pytest.raises(LedgerCorruptError) as err:
        LedgerStore(path).load()
    assert message in str(err.value) and str(path) in str(err.value)
    assert "move it aside" in str(err.value)
    assert path.read_text() == content  # untouched


def test_file_is_readable_json(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    state, _ = accrue(LedgerState.start(T0), {"a": 1}, PRICES, T0 + timedelta(hours=1))
    LedgerStore(path).put("prod", state)
    raw = json.loads(path.read_text())
    assert raw["version"] == 1 and raw["ledgers"]["prod"]["spent"] == "0.02"


def test_projection_is_spend_plus_current_hourly_cost_times_hours_left() -> None:
    """The one method: the ledger's current hourly cost (what ran last), not an average."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    state, _ = accrue(LedgerState.start(start), {"a": 10, "b": 1}, PRICES, T0)
    state, _ = accrue(state, {"a": 1}, PRICES, T0 + timedelta(hours=1))
    assert state.hourly_cost == Decimal("0.02")
    now = T0 + timedelta(hours=1)
    p = project(state, now, monthly_limit=1000)
    hours_left = (datetime(2026, 12, 1, tzinfo=UTC) - now).total_seconds() / 3600
    assert p.hourly_cost == 0.02 and p.hours_left == hours_left
    assert p.projected == pytest.approx(float(state.spent) + 0.02 * hours_left)
    # Time not yet accrued is taken at the current rate: the figure does not move.
    assert project(state, now + timedelta(hours=5), monthly_limit=1000) == p


def test_projection_of_a_closed_month_is_its_total() -> None:
    start = datetime(2026, 11, 30, 23, tzinfo=UTC)
    state, _ = accrue(LedgerState.start(start), {"a": 1}, {"a": 1.0}, start + timedelta(hours=3))
    p = project(state, start)
    assert p.spent == p.projected == 1.0 and p.hours_left == 0


def test_ledger_without_hourly_cost_still_loads(tmp_path: Path) -> None:
    """Ledgers written before ``hourlyCost`` was kept load; the cost is then unknown."""
    path = tmp_path / "ledger.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "ledgers": {
                    "prod": {"month": "2026-11", "asOf": "2026-11-15T12:00:00Z", "spent": "3.5"}
                },
            }
        )
    )
    state = LedgerStore(path).load()["prod"]
    assert state.hourly_cost is None
    assert project(state, T0).projected == 3.5


def test_ledger_time_out_of_range_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "ledgers": {"prod": {"month": "9999-12", "asOf": "9999-12-31T23:59:59Z"}},
            }
        )
    )
    with pytest.raises(LedgerCorruptError, match="out of range"):
        LedgerStore(path).load()
