"""Benchmark: how long ``policies.costguard.allocate`` takes for one environment.

The controller runs the guard across every workload of an environment every 15 s, so
the figure that matters is the time for ~1,000 workloads with a binding budget.
Prints medians over repeated runs for: parsing the request (pydantic), allocating with
the budget binding (heap), allocating when everything fits (fast path), and a baseline
measured in the same run: the same greedy with a linear scan for the best next replica
instead of a heap (what a straightforward implementation does), on a smaller size.

    nice .venv/bin/python benchmarks/costguard_allocate.py [--workloads 1000] [--repeat 7]

Not a test: it asserts nothing about time; it checks that heap and scan agree.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from decimal import Decimal
from typing import Any

from policies.budget import AllocationRequest
from policies.costguard import (
    _Item,
    _Shortfall,
    _UniformGap,
    allocate,
    effective_hourly_cap,
    replica_prices,
)

CPU = ["100m", "250m", "500m", "1", "2"]
MEMORY = ["128Mi", "512Mi", "1Gi", "2Gi"]


def make_request(n: int, binding: float, seed: int = 7) -> dict[str, Any]:
    """``n`` workloads in 4 tiers; the hourly limit is ``binding`` x the desired cost."""
    rnd = random.Random(seed)
    workloads = []
    for i in range(n):
        lo = rnd.randint(1, 3)
        desired = rnd.randint(lo, 50)
        w: dict[str, Any] = {
            "name": f"ns{i % 37}/w{i:05d}",
            "priority": rnd.choice([0, 10, 50, 100]),
            "minReplicas": lo,
            "maxReplicas": 60,
            "desiredReplicas": desired,
            "requests": {"cpu": rnd.choice(CPU), "memory": rnd.choice(MEMORY)},
        }
        if i % 2 == 0:
            base = desired * 20 * rnd.uniform(0.5, 1.0)
            w["forecast"] = {
                "capacityPerReplica": 20,
                "quantiles": {"0.5": base, "0.9": base * 1.2, "0.99": base * 1.4},
            }
        workloads.append(w)
    request = AllocationRequest.model_validate(
        {"budget": {"now": "2026-11-15T12:00:00Z"}, "workloads": workloads}
    )
    prices = replica_prices(request)
    desired_cost = sum(
        prices[w.name] * min(w.desired_replicas, w.max_replicas) for w in request.workloads
    )
    return {
        "budget": {
            "now": "2026-11-15T12:00:00Z",
            "hourlyLimit": float(desired_cost) * binding,
            "monthlyLimit": 1e6,
        },
        "workloads": workloads,
    }


def scan_baseline(request: AllocationRequest) -> dict[str, int]:
    """The same allocation with a linear scan per replica instead of a heap."""
    assert request.budget.now is not None
    cap = effective_hourly_cap(request.budget, request.budget.now).cap
    assert cap is not None
    prices = replica_prices(request)
    items = [
        _Item(
            i,
            w,
            prices[w.name],
            w.min_replicas,
            min(w.desired_replicas, w.max_replicas),
            w.min_replicas,
        )
        for i, w in enumerate(request.workloads)
    ]
    money = cap - sum((it.price * it.lo for it in items), Decimal(0))
    for prio in sorted({it.workload.priority for it in items}, reverse=True):
        live = [it for it in items if it.workload.priority == prio and it.target > it.lo]
        curves = {
            it.index: _Shortfall(it.workload.forecast)
            if it.workload.forecast
            else _UniformGap(it.lo, it.target)
            for it in live
        }
        while live:
            best = min(live, key=lambda it, c=curves: _scan_key(it, c))  # type: ignore[misc]
            if best.price > money:
                live.remove(best)
                continue
            best.replicas += 1
            money -= best.price
            if best.replicas >= best.target:
                live.remove(best)
    return {it.workload.name: it.replicas for it in items}


def _scan_key(it: _Item, curves: dict[int, _Shortfall | _UniformGap]) -> tuple[float, str]:
    c = curves[it.index]
    return (-(c(it.replicas) - c(it.replicas + 1)) / float(it.price), it.workload.name)


def median_seconds(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--baseline-workloads", type=int, default=200)
    args = ap.parse_args()

    data = make_request(args.workloads, binding=0.5)
    request = AllocationRequest.model_validate(data)
    fits = AllocationRequest.model_validate(make_request(args.workloads, binding=1.01))
    result = allocate(request)
    added = sum(w.replicas for w in result.workloads) - sum(
        w.min_replicas for w in request.workloads
    )
    parse = median_seconds(lambda: AllocationRequest.model_validate(data), args.repeat)
    heap = median_seconds(lambda: allocate(request), args.repeat)
    fast = median_seconds(lambda: allocate(fits), args.repeat)
    print(
        f"{args.workloads} workloads, budget at 50 % of desired cost "
        f"({added} replicas handed out above minimums), median of {args.repeat}:"
    )
    print(f"  parse request (pydantic)      {parse * 1e3:8.1f} ms")
    print(f"  allocate, budget binding      {heap * 1e3:8.1f} ms")
    print(f"  allocate, everything fits     {fast * 1e3:8.1f} ms")

    one = AllocationRequest.model_validate(make_request(1, binding=0.5, seed=3))
    calls = 2000
    per_call = median_seconds(lambda: [allocate(one) for _ in range(calls)], 3) / calls
    print(
        f"  1 workload, budget binding    {per_call * 1e3:8.3f} ms per call"
        " (the simulator's per-tick call)"
    )

    small_data = make_request(args.baseline_workloads, binding=0.5)
    small = AllocationRequest.model_validate(small_data)
    got = {w.name: w.replicas for w in allocate(small).workloads}
    assert got == scan_baseline(small), "heap and linear scan disagree"
    heap_small = median_seconds(lambda: allocate(small), args.repeat)
    scan_small = median_seconds(lambda: scan_baseline(small), max(3, args.repeat // 2))
    print(f"{args.baseline_workloads} workloads, same allocation (checked equal):")
    print(f"  heap (allocate)               {heap_small * 1e3:8.1f} ms")
    print(
        f"  linear-scan baseline          {scan_small * 1e3:8.1f} ms"
        f"   ({scan_small / heap_small:.0f}x the heap)"
    )


if __name__ == "__main__":
    main()
