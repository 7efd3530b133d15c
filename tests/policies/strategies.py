"""Random cost-guard requests for the property tests.

A request is built by ``random_request(seed)`` from a plain ``random.Random(seed)``,
as the JSON-like dict a user would write in REQUEST.json, and validated through
``AllocationRequest`` so that the tests exercise the real parser. Hypothesis draws the
seeds (derandomized, so CI is deterministic). Why not one hypothesis draw per field:
on this 2-core machine that cost ~7 ms per example, a minute for 8 properties x 500
examples; seeded generation is ~10x cheaper. A failure prints the seed, and
``random_request(seed)`` rebuilds the exact request.

Sizes are small (at most 8 workloads, 45 desired replicas) so that 500 examples stay
fast, but priorities, prices and bounds collide often enough to hit ties and tier edges.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st

from policies.budget import AllocationRequest

CPU = ["50m", "100m", "250m", "500m", "1", "2", "1500m", "0.1"]
MEMORY = ["64Mi", "128Mi", "512Mi", "1Gi", "2Gi", "1.5Gi", "1G", "100M"]
PRIORITIES = [0, 10, 50, 100]
NOWS = [
    "2026-11-15T12:00:00Z",
    "2026-11-30T23:30:00Z",
    "2026-02-01T00:00:00Z",
    "2026-12-31T18:00:00+02:00",
    "2028-02-29T06:15:00Z",
]


def _forecast(rnd: random.Random) -> dict[str, Any]:
    levels = sorted(rnd.sample([0.1, 0.5, 0.75, 0.9, 0.99], rnd.randint(1, 4)))
    values = [rnd.uniform(0, 800)]
    for _ in levels[1:]:
        values.append(values[-1] + rnd.choice([0.0, rnd.uniform(0, 200)]))
    return {
        "capacityPerReplica": rnd.choice([5.0, 10.0, 20.0, 33.3]),
        "quantiles": {str(lv): v for lv, v in zip(levels, values, strict=True)},
    }


def _workload(rnd: random.Random, name: str) -> dict[str, Any]:
    lo = rnd.randint(0, 5)
    hi = rnd.randint(lo, 40)
    w: dict[str, Any] = {
        "name": name,
        "priority": rnd.choice(PRIORITIES),
        "minReplicas": lo,
        "maxReplicas": hi,
        "desiredReplicas": rnd.randint(0, 45),
        "requests": {"cpu": rnd.choice(CPU), "memory": rnd.choice(MEMORY)},
    }
    if rnd.random() < 0.5:
        w["forecast"] = _forecast(rnd)
    return w


def _budget(rnd: random.Random) -> dict[str, Any]:
    b: dict[str, Any] = {
        "now": rnd.choice(NOWS),
        "pacing": rnd.choice(["even", "none"]),
        "mode": rnd.choice(["hard", "soft"]),
    }
    if rnd.random() < 0.75:
        # Round money often, so that exact fits (cost == cap) happen.
        b["hourlyLimit"] = rnd.choice([rnd.uniform(0, 3), rnd.randint(0, 300) / 100])
    if rnd.random() < 0.5:
        b["monthlyLimit"] = rnd.uniform(0, 2000)
        b["spentThisMonth"] = rnd.uniform(0, 2000)
    return b


def random_request(seed: int, same_price_per_tier: bool = False) -> dict[str, Any]:
    """A random REQUEST.json dict; ``same_price_per_tier`` gives a tier one request size."""
    rnd = random.Random(seed)
    names = rnd.sample([f"ns/w{i}" for i in range(12)], rnd.randint(1, 8))
    ws = [_workload(rnd, name) for name in names]
    if same_price_per_tier:
        per_tier: dict[int, dict[str, str]] = {}
        for w in ws:
            w["requests"] = per_tier.setdefault(w["priority"], w["requests"])
    req: dict[str, Any] = {"budget": _budget(rnd), "workloads": ws}
    if rnd.random() < 0.3:
        req["prices"] = {"cpuPerCoreHour": rnd.choice([0.031611, 0.05, 0.01])}
    return req


SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def request_dicts(same_price_per_tier: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    return SEEDS.map(lambda seed: random_request(seed, same_price_per_tier))


def requests(same_price_per_tier: bool = False) -> st.SearchStrategy[AllocationRequest]:
    return request_dicts(same_price_per_tier).map(AllocationRequest.model_validate)
