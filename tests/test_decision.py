"""The pure decision path: decide() and the pass-through of served values via the HPA."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from policies.decision import ScalingSpec, WorkloadState, decide, replicas_for, served_value


def _series(
    values: list[float], start: str = "2026-01-01T00:01:00Z", step: str = "60s"
) -> pd.Series:
    index = pd.date_range(start, periods=len(values), freq=step)
    return pd.Series(values, index=index, dtype=float)


SPEC = ScalingSpec(
    namespace="prod",
    name="web",
    capacity_per_replica=20.0,
    min_replicas=2,
    max_replicas=30,
    model="last",
)


def test_replicas_for_uses_target_utilisation() -> None:
    assert replicas_for(17.0, SPEC) == 1
    assert replicas_for(17.01, SPEC) == 2
    assert replicas_for(0.0, SPEC) == 0


def test_no_history_holds_current_replicas() -> None:
    d = decide(0.0, SPEC, WorkloadState(), pd.Series(dtype=float), current_replicas=7)
    assert d.fallback and d.replicas == 7 and d.forecast is None


def test_unknown_capacity_holds_current_and_keeps_the_history() -> None:
    """No capacity (omitted, not learnt yet): hold what runs, say why, never scale
    down; the samples still go into the history, and once a capacity is known the
    decision follows the load."""
    from dataclasses import replace

    unknown = replace(SPEC, capacity_per_replica=None, capacity_note="only 12 steps")
    state = WorkloadState()
    y = _series([10.0] * 120)  # needs 1 replica at 20/s: far fewer than the 9 running
    now = y.index[-1].timestamp()
    d = decide(now, unknown, state, y, current_replicas=9)
    assert (d.replicas, d.desired_replicas, d.binding_constraint) == (9, 9, "none")
    assert not d.fallback and d.forecast is None
    assert d.reason.startswith("capacity not learnt yet: only 12 steps; holding the 9")
    assert len(state.history) == 120 and state.forecaster is None
    assert replicas_for(100.0, unknown) == 0
    # Below minReplicas it still rises to the minimum.
    assert decide(now, unknown, WorkloadState(), y, current_replicas=0).replicas == 2
    # Known from the next tick on: the same state decides on its history.
    d = decide(now + 15, SPEC, state, pd.Series(dtype=float), current_replicas=9)
    assert d.replicas == 2 and d.forecast is not None and "20/s per replica" in d.reason


def test_min_and_max_bind_with_reasons() -> None:
    y = _series([1.0] * 120)
    now = y.index[-1].timestamp()
    d = decide(now, SPEC, WorkloadState(), y, current_replicas=3)
    assert d.replicas == 2 and d.binding_constraint == "min" and "minReplicas" in d.reason
    y = _series([1000.0] * 120)
    d = decide(now, SPEC, WorkloadState(), y, current_replicas=3)
    assert d.replicas == 30 and d.binding_constraint == "max" and "maxReplicas" in d.reason


def test_samples_after_now_are_ignored() -> None:
    """Causality: a surge stamped after ``now`` cannot change the decision at ``now``."""
    calm = _series([100.0] * 120)
    now = calm.index[-1].timestamp()
    surge = pd.concat(
        [calm, _series([5000.0] * 10, start=str(calm.index[-1] + pd.Timedelta("60s")))]
    )
    a = decide(now, SPEC, WorkloadState(), calm, current_replicas=5)
    b = decide(now, SPEC, WorkloadState(), surge, current_replicas=5)
    assert a.replicas == b.replicas
    assert a.forecast is not None and b.forecast is not None
    assert a.forecast.quantiles == b.forecast.quantiles


def test_horizon_counts_from_the_last_sample() -> None:
    """Time since the last sample is not yet observed: it is part of the forecast window."""
    y = _series(list(np.linspace(10, 200, 120)))
    last = y.index[-1].timestamp()
    state = WorkloadState()
    d0 = decide(last, SPEC, state, y, current_replicas=5)
    d1 = decide(last + 45, SPEC, state, pd.Series(dtype=float), current_replicas=5)
    # a sample overdue by a step: the unobserved window is a step longer
    d2 = decide(last + 120, SPEC, state, pd.Series(dtype=float), current_replicas=5)
    assert d0.forecast is not None and d1.forecast is not None and d2.forecast is not None
    assert d1.forecast.horizon == d0.forecast.horizon == 2  # ceil(105 s / 60 s)
    assert d2.forecast.horizon > d0.forecast.horizon


@pytest.mark.parametrize("current", [1, 2, 3, 5, 9, 10, 11, 19, 20, 21, 50, 99, 100, 333])
def test_served_value_passes_through_the_hpa(current: int) -> None:
    """What we serve, the emulated HPA turns into the count we want (or safely more)."""
    from simulations.hpa import replicas_from_external

    for wanted in range(max(1, current // 3), current * 3 + 2):
        value = served_value(wanted, current)
        milli = round(value * 1000)
        got = replicas_from_external(current, [milli], "AverageValue", 1000, 0.1)
        if not (0.9 <= wanted / current <= 1.1) or wanted == current:
            assert got == wanted, (current, wanted, value, got)
        elif wanted > current:
            # inside the tolerance a small step up cannot be expressed: never end up short
            assert got > wanted, (current, wanted, value, got)
            assert got - wanted <= max(1, current // 10 + 1)
        else:
            assert got == current, (current, wanted, value, got)


def test_served_value_never_passes_a_hard_ceiling() -> None:
    """Escaping the tolerance band upwards must not buy more than the budget allowed."""
    from simulations.hpa import replicas_from_external

    # 27 running, 28 allowed: escaping the band would give 30; hold at 27 instead.
    value = served_value(28, 27, ceiling=28)
    got = replicas_from_external(27, [round(value * 1000)], "AverageValue", 1000, 0.1)
    assert got <= 28
    # without a ceiling the escape is allowed
    value = served_value(28, 27)
    assert replicas_from_external(27, [round(value * 1000)], "AverageValue", 1000, 0.1) == 30


def test_margin_does_not_grow_while_clamped() -> None:
    """Misses caused by a cap are not blamed on the forecast's margin."""
    from policies.decision import note_clamp

    y = _series([1000.0 + 50.0 * (i % 2) for i in range(200)])
    spec = ScalingSpec(namespace="p", name="w", capacity_per_replica=20.0, model="last")
    free, capped = WorkloadState(), WorkloadState()
    start: dict[str, float] = {}
    for i in range(1, 200):
        now = y.index[i].timestamp()
        new = y.iloc[i - 1 : i] if i > 1 else y.iloc[:1]
        decide(now, spec, free, new, current_replicas=5)  # far too few: misses
        note_clamp(capped, now)
        decide(now, spec, capped, new, current_replicas=5)
        for name, st in (("free", free), ("capped", capped)):
            if st.log_price is not None:
                start.setdefault(name, st.log_price)
    assert free.log_price is not None and free.log_price > start["free"] + 1.0
    assert capped.log_price == start["capped"]


def test_history_is_merged_lazily_trimmed_and_replaceable() -> None:
    """Samples appended tick by tick read back in order; the history is bounded; the
    controller's backfill (assigning older pages in front) keeps the newest stamp."""
    spec = ScalingSpec(
        namespace="p",
        name="w",
        capacity_per_replica=20.0,
        model="last",
        history_seconds=3600.0,
        refit_seconds=1e9,
    )
    y = _series([float(i) for i in range(200)])
    state = WorkloadState()
    for i in range(200):
        decide(y.index[i].timestamp(), spec, state, y.iloc[i : i + 1], current_replicas=3)
    h = state.history
    assert h.index.is_monotonic_increasing and h.iloc[-1] == 199.0
    # bounded: at most history_seconds (x1.25 before a trim) of samples are kept
    assert (h.index[-1] - h.index[0]).total_seconds() <= 3600.0 * 1.25
    assert state.current_rate == 199.0 and state.step == 60.0
    # an older page put in front (as the controller's backfill does)
    older = _series([5.0, 6.0], start="2025-12-31T23:00:00Z")
    state.history = pd.concat([older, h])
    assert state.last_stamp == y.index[-1].timestamp()
    # a sample not newer than the newest held is refused, a newer one is taken
    before = len(state.history)
    decide(y.index[-1].timestamp() + 30, spec, state, y.iloc[-3:-2], current_replicas=3)
    assert len(state.history) == before
    newer = _series([500.0], start=str(y.index[-1] + pd.Timedelta("60s")))
    decide(newer.index[0].timestamp(), spec, state, newer, current_replicas=3)
    assert len(state.history) == before + 1 and state.current_rate == 500.0


def test_margin_counts_misses_against_the_ready_count_when_known() -> None:
    """A scale-up that lands in time is not a miss.

    Load steps from 160/s to 180/s at the very tick two new pods turn Ready (created
    90 s earlier, at the sync before the one whose current count first shows them).
    Ten replicas serve 170/s at 85 %, twelve serve 204/s: nothing was under-provisioned.
    Given the Ready count, the margin sees no miss and falls; without it, the lower
    bound (the fewest replicas asked for within the 105-s lead) still counts the ten
    and calls it a miss.
    """
    spec = ScalingSpec(namespace="p", name="w", capacity_per_replica=20.0, model="last")
    loads = [158.0 + 4.0 * (i % 2) for i in range(29)] + [180.0] * 3
    y = _series(loads, step="15s")
    known, floor_only = WorkloadState(), WorkloadState()
    created = 23  # two pods created at tick 23, Ready 6 ticks (90 s) later
    before: dict[str, float | None] = {}
    for i in range(len(loads)):
        now = y.index[i].timestamp()
        current = 12 if i > created else 10
        ready = 12 if i >= created + 6 else 10
        new = y.iloc[i : i + 1]
        if i == created + 6:
            before = {"known": known.log_price, "floor": floor_only.log_price}
        decide(now, spec, known, new, current_replicas=current, ready_replicas=ready)
        decide(now, spec, floor_only, new, current_replicas=current)
    assert before["known"] is not None and before["floor"] is not None
    assert known.log_price is not None and known.log_price < before["known"]
    assert floor_only.log_price is not None and floor_only.log_price > before["floor"]


def test_covered_load_spends_risk_where_the_forecast_is_wide() -> None:
    """One price of a miss: a narrow forecast is covered to a high quantile, a wide one
    to a lower quantile, and the chance of a miss is width / price."""
    from policies.decision import covered_load, tail_width

    width = tail_width(100.0, 100.0 + 10.0 * np.log(5.0), 0.9)
    assert width == pytest.approx(10.0)
    log_price = float(np.log(10.0 * 10.0))  # the start: exactly q0.9
    load, risk = covered_load(100.0, 10.0, log_price)
    assert load == pytest.approx(100.0 + 10.0 * np.log(5.0)) and risk == pytest.approx(0.1)
    narrow = covered_load(100.0, 2.0, log_price)
    wide = covered_load(100.0, 40.0, log_price)
    assert narrow[1] == pytest.approx(0.02) and wide[1] == pytest.approx(0.4)
    assert narrow[0] > 100.0 + 2.0 * np.log(5.0)  # beyond its own q0.9
    assert wide[0] < 100.0 + 40.0 * np.log(5.0)  # short of its own q0.9
    assert covered_load(100.0, 0.0, log_price) == (100.0, 0.0)  # no spread: the median
    assert covered_load(100.0, 1e6, log_price) == (100.0, 0.5)  # never below the median


def test_a_long_calm_does_not_wind_the_price_down() -> None:
    """Weeks without a miss leave the cover at the median at the lowest, so the first
    surge is not paid for with hundreds of missed ticks first (integral wind-up). A big
    step makes 3,000 calm ticks worth many weeks at the default one."""
    from policies.decision import covered_load

    spec = ScalingSpec(
        namespace="p", name="w", capacity_per_replica=20.0, model="last", adapt_rate=1.0
    )
    rng = np.random.default_rng(0)
    y = _series(list(100.0 + 10.0 * rng.random(3000)), step="15s")
    state = WorkloadState()
    for i in range(len(y)):
        decide(y.index[i].timestamp(), spec, state, y.iloc[i : i + 1], current_replicas=50)
    assert state.log_price is not None and state.width > 0.0
    assert state.log_price >= np.log(2.0 * state.width) - 1e-9
    assert covered_load(100.0, state.width, state.log_price)[0] >= 100.0
    # one missed tick from there moves the cover up at once
    before = state.log_price
    decide(
        y.index[-1].timestamp() + 15.0,
        spec,
        state,
        _series([5000.0], y.index[-1].isoformat()).iloc[:0],
        current_replicas=1,
        ready_replicas=1,
    )
    assert state.log_price > before
