"""Simulated pods: readiness after start-up, deletion order on scale-down, seeded start-ups."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simulations.pods import PodSet
from simulations.workloads import StartupTime


def _fixed(seconds: float) -> PodSet:
    return PodSet(lambda: seconds, "p")


def test_a_pod_is_ready_exactly_after_its_start_up_time() -> None:
    pods = _fixed(90.0)
    pods.scale_to(3, now=1000.0)
    assert (pods.alive, pods.ready_count) == (3, 0)
    assert pods.advance(1089.9) == 0
    assert pods.ready_count == 0
    assert pods.advance(1090.0) == 3
    assert (pods.alive, pods.ready_count) == (3, 3)


def test_scale_down_removes_not_ready_pods_first_newest_first() -> None:
    pods = _fixed(60.0)
    pods.seed_ready(2, now=0.0)
    pods.scale_to(4, now=10.0)  # p-3, p-4 start at 10
    pods.scale_to(5, now=20.0)  # p-5 starts at 20
    pods.scale_to(3, now=30.0)
    # The two newest starting pods go; both Ready pods and the oldest starter stay.
    assert [p.name for p in pods.ready] == ["p-1", "p-2"]
    assert [p.name for p in pods.starting] == ["p-3"]
    pods.scale_to(1, now=31.0)
    assert pods.starting == [] and [p.name for p in pods.ready] == ["p-1"]


def test_ready_pods_are_removed_most_recently_ready_first() -> None:
    durations = itertools.cycle([30.0, 10.0])
    pods = PodSet(lambda: next(durations), "p")
    pods.scale_to(2, now=0.0)  # p-1 ready at 30, p-2 ready at 10
    pods.advance(10.0)
    pods.advance(30.0)
    assert [p.name for p in pods.ready] == ["p-2", "p-1"]
    pods.scale_to(1, now=40.0)
    assert [p.name for p in pods.ready] == ["p-2"]


def test_lognormal_start_ups_are_seeded_and_centred_on_the_median() -> None:
    s = StartupTime(distribution="lognormal", seconds=120.0, sigma=0.3, seed=3)
    a = [s.sampler().draw() for _ in range(1)]
    sampler1, sampler2 = s.sampler(), s.sampler()
    draws1 = np.array([sampler1.draw() for _ in range(2000)])
    draws2 = np.array([sampler2.draw() for _ in range(2000)])
    assert np.array_equal(draws1, draws2)
    assert a[0] == draws1[0]
    assert np.median(draws1) == pytest.approx(120.0, rel=0.05)
    assert s.quantile(0.99) > s.quantile(0.5) == pytest.approx(120.0)
    other = StartupTime(distribution="lognormal", seconds=120.0, sigma=0.3, seed=4).sampler()
    assert other.draw() != draws1[0]


def test_fixed_start_up_is_exact() -> None:
    s = StartupTime(distribution="fixed", seconds=90.0)
    sampler = s.sampler()
    assert {sampler.draw() for _ in range(10)} == {90.0}
    assert s.quantile(0.99) == 90.0
