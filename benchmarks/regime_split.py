"""Where does each policy's cost go: calm stretches against surges, day by day.

A diagnostic for issue 4, in its setting (``benchmarks/predictive_vs_hpa.py``): one
trace is run through ``predictive`` (defaults), ``oracle`` and ``hpa-cpu`` at one
target, and every tick is labelled *calm* when the largest demand within
``--window-hours`` on either side stays under ``--factor`` times the median demand of
the 24 hours around it, else *surge*. It prints, per regime and then per day of calm,
the mean replicas alive and the under-provisioned ticks of each policy, and for
``predictive`` the mean of what it asked for (the rest is what the HPA's scale-down
stabilisation held). The labels look at the future: they are for reading a run, not
for a policy.

    .venv/bin/python benchmarks/regime_split.py out/unseen/worldcup_like_1min.csv \\
        [--peak 400] [--days 14] [--hpa-target 70] [--window-hours 4] [--factor 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    from predictive_vs_hpa import scenario_data

    from autoscaler.cli.simworld import controller_for
    from models.errors import InputError
    from simulations.scenario import prepare, scenario_from_dict, simulate
    from simulations.strategies import HpaCpu

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", type=Path, help="a trace CSV")
    ap.add_argument("--peak", type=int, default=40, help="replicas the p99.9 needs at 70 %%")
    ap.add_argument("--days", type=float, default=14.0)
    ap.add_argument("--hpa-target", type=int, default=70, help="hpa-cpu target, %%")
    ap.add_argument("--window-hours", type=float, default=4.0)
    ap.add_argument("--factor", type=float, default=3.0)
    args = ap.parse_args()
    if not args.trace.is_file():
        ap.error(f"{args.trace}: no such file")
    if not 1 <= args.hpa_target <= 100:
        ap.error(f"--hpa-target {args.hpa_target}: use a percentage, 1-100")
    t0 = time.perf_counter()
    data = scenario_data(str(args.trace), args.days, args.peak, 0.0)
    data["policies"] = ["predictive", "oracle"]
    try:
        prepared = prepare(scenario_from_dict(data, str(args.trace)), controller=controller_for)
    except InputError as err:
        ap.error(str(err))
    hpa = f"hpa-cpu@{args.hpa_target}"
    result = simulate(
        prepared, frontier=False, workers=1, extra_policies=[HpaCpu(args.hpa_target, name=hpa)]
    )
    runs = result.timelines
    pred, oracle = runs["predictive"], runs["oracle"]
    demand = pd.Series(pred.demand)
    tick = float(np.median(np.diff(pred.times)))
    per_hour = round(3600 / tick)
    median = demand.rolling(24 * per_hour, center=True, min_periods=1).median()
    reach = round(args.window_hours * per_hour)
    near = demand.rolling(2 * reach + 1, center=True, min_periods=1).max()
    calm = (near < args.factor * median).to_numpy()
    per_ready = prepared.workload.capacity_rps * prepared.scenario.slo_utilization
    names = [("oracle", oracle), ("predictive", pred), (hpa, runs[hpa])]

    def misses(tl: object, mask: np.ndarray) -> int:
        return int(((tl.demand > tl.ready * per_ready) & mask).sum())  # type: ignore[attr-defined]

    print(
        f"{args.trace.name}, peak {args.peak}, {args.days:g} days; calm {calm.mean():.0%} of "
        f"ticks ({time.perf_counter() - t0:.0f} s)"
    )
    print("| regime | policy | mean replicas | under-provisioned ticks | asked for |")
    print("|---|---|---:|---:|---:|")
    for label, mask in (("calm", calm), ("surge", ~calm)):
        for name, tl in names:
            asked = f"{tl.extra['desired'][mask].mean():.2f}" if "desired" in tl.extra else ""
            print(
                f"| {label} | {name} | {tl.alive[mask].mean():.2f} | {misses(tl, mask)} | {asked} |"
            )
    day = ((pred.times - pred.times[0]) // 86_400).astype(int)
    print("\n| day | calm share | oracle | predictive | asked for | " + hpa + " | misses p / h |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for d in range(int(day.max()) + 1):
        mask = calm & (day == d)
        if mask.sum() < per_hour:
            continue
        print(
            f"| {d} | {mask.sum() / (day == d).sum():.0%} | {oracle.alive[mask].mean():.2f} "
            f"| {pred.alive[mask].mean():.2f} | {pred.extra['desired'][mask].mean():.2f} "
            f"| {runs[hpa].alive[mask].mean():.2f} | {misses(pred, mask)} / "
            f"{misses(runs[hpa], mask)} |"
        )


if __name__ == "__main__":
    main()
