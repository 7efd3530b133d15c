"""A synthetic Deployment for the calibration tests: load, pods, CPU, start-up (seeded).

Not a bundled trace: the load is drawn here (daily seasonality with a random phase,
AR(1) noise, bursts with random size and decay), so the fit cannot have been tuned to
it. Pods follow a reactive rule (HPA-like: up at once, down after a 5-minute
stabilisation window, at least two), start after a lognormal delay, and burn
``idle + cost * served load`` cores with multiplicative noise. A release
``release_before_end_s`` before the end rolls every pod to a new ReplicaSet whose
requests cost ``cost_increase`` more CPU.

``synth_workload`` returns the pods (for the kube-state-metrics and cAdvisor series of
the integration test) and the per-step aggregates (for the pure unit tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Pod:
    name: str
    replicaset: str
    created: float
    ready: float
    deleted: float = math.inf
    #: CPU seconds used in each step (aligned with ``Synth.times``), NaN when not alive.
    cpu_seconds: np.ndarray = field(default_factory=lambda: np.empty(0))


@dataclass
class Synth:
    times: np.ndarray  # unix seconds of each step's end
    step_s: int
    load: np.ndarray  # req/s averaged over each step
    cpu_cores: np.ndarray  # all pods of the workload, averaged over each step
    pods: np.ndarray  # pods alive during each step (fractional at the edges)
    pod_list: list[Pod]
    replicasets: list[tuple[str, float]]  # (name, created)
    request_cores: float
    capacity_before: float
    capacity_after: float
    release_at: float

    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(self.times, unit="s", utc=True))

    def startup_truth(self, end: float | None = None) -> tuple[float, float]:
        """p50 and p90 of ready - created over the pods Ready by ``end``."""
        stop = self.times[-1] if end is None else end
        d = np.array([p.ready - p.created for p in self.pod_list if p.ready <= stop])
        p50, p90 = np.quantile(d, [0.5, 0.9])
        return float(p50), float(p90)


def _rs_hash(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("bcdfghjklmnpqrstvwxz2456789"), 10))


def synth_workload(
    *,
    seed: int,
    end: float,
    days: float = 2.0,
    step_s: int = 60,
    name: str = "web",
    capacity: float = 17.3,
    cost_increase: float = 0.30,
    release_before_end_s: float = 12 * 3600,
    request_cores: float = 0.5,
    idle_cores: float = 0.05,
    base_load: float = 90.0,
    startup_median_s: float = 40.0,
    startup_sigma: float = 0.35,
    noise: float = 0.06,
    target_utilisation: float = 0.7,
    min_pods: int = 2,
) -> Synth:
    rng = np.random.default_rng(seed)
    n = int(days * 86_400 // step_s)
    times = end - (n - 1 - np.arange(n)) * step_s
    # Load: daily cycle (random phase), AR(1) multiplicative noise, bursts.
    phase = rng.uniform(0, 2 * np.pi)
    daily = 1 + 0.55 * np.sin(2 * np.pi * (times - times[0]) / 86_400 + phase)
    ar = np.zeros(n)
    shocks = rng.normal(0, 0.04, n)
    for i in range(1, n):
        ar[i] = 0.95 * ar[i - 1] + shocks[i]
    load = base_load * daily * np.exp(ar)
    for _ in range(rng.poisson(3 * days)):
        at = rng.integers(0, n)
        size = rng.uniform(0.4, 1.2) * base_load
        tau = rng.uniform(5, 30) * 60 / step_s
        k = np.arange(n - at)
        load[at:] += size * np.exp(-k / tau)
    load = np.maximum(load, 0.0)

    cost_before = (request_cores - idle_cores) / capacity
    cost_after = cost_before * (1 + cost_increase)
    release_at = end - release_before_end_s
    cost = np.where(times > release_at, cost_after, cost_before)

    # Pods: reactive rule on the previous step's load with the believed capacity.
    per_pod = capacity * target_utilisation
    rs_old = f"{name}-{_rs_hash(rng)}"
    rs_new = f"{name}-{_rs_hash(rng)}"
    replicasets = [(rs_old, times[0] - 86_400), (rs_new, release_at)]

    def new_pod(rs: str, created: float) -> Pod:
        suffix = "".join(rng.choice(list("bcdfghjklmnpqrstvwxz2456789"), 5))
        start = float(rng.lognormal(math.log(startup_median_s), startup_sigma))
        return Pod(f"{rs}-{suffix}", rs, created, created + start)

    pods: list[Pod] = []
    live: list[Pod] = []
    first = max(min_pods, math.ceil(load[0] / per_pod))
    for _ in range(first):
        p = new_pod(rs_old, times[0] - 3600 * rng.uniform(1, 5))
        pods.append(p)
        live.append(p)
    desired_hist: list[int] = []
    released = False
    for i in range(1, n):
        t0 = times[i - 1]
        desired = max(min_pods, math.ceil(load[i - 1] / per_pod))
        desired_hist.append(desired)
        target = max(desired_hist[-5:])  # 5-minute scale-down stabilisation
        rs = rs_new if released else rs_old
        if not released and t0 >= release_at:
            # Release: surge a full new ReplicaSet; old pods go when the new ones are Ready.
            released = True
            rs = rs_new
            for _ in range(max(target, len(live))):
                p = new_pod(rs_new, t0 + rng.uniform(0, step_s / 2))
                pods.append(p)
                live.append(p)
        if released:
            fresh = [p for p in live if p.replicaset == rs_new]
            if all(p.ready <= t0 for p in fresh):
                for p in [p for p in live if p.replicaset == rs_old]:
                    p.deleted = t0 + rng.uniform(0, step_s / 2)
                    live.remove(p)
        current = [p for p in live if p.replicaset == rs]
        if len(current) < target:
            for _ in range(target - len(current)):
                p = new_pod(rs, t0 + rng.uniform(0, step_s / 2))
                pods.append(p)
                live.append(p)
        elif len(current) > target:
            for p in sorted(current, key=lambda q: q.created)[target:]:
                p.deleted = t0 + rng.uniform(0, step_s / 2)
                live.remove(p)

    # CPU per pod and step: idle while alive, cost x its share of the load while Ready.
    lo = times - step_s
    alive = np.zeros((len(pods), n))
    ready = np.zeros((len(pods), n))
    for j, p in enumerate(pods):
        alive[j] = np.clip(
            (np.minimum(times, p.deleted) - np.maximum(lo, p.created)) / step_s, 0, 1
        )
        ready[j] = np.clip((np.minimum(times, p.deleted) - np.maximum(lo, p.ready)) / step_s, 0, 1)
    total_ready = ready.sum(axis=0)
    share = np.divide(ready, total_ready, out=np.zeros_like(ready), where=total_ready > 0)
    cores = idle_cores * alive + cost * load * share
    cores *= np.exp(rng.normal(0, noise, cores.shape))
    for j, p in enumerate(pods):
        p.cpu_seconds = np.where(alive[j] > 0, cores[j] * step_s, np.nan)
    return Synth(
        times=times.astype(float),
        step_s=step_s,
        load=load,
        cpu_cores=np.where(alive > 0, cores, 0.0).sum(axis=0),
        pods=alive.sum(axis=0),
        pod_list=pods,
        replicasets=replicasets,
        request_cores=request_cores,
        capacity_before=capacity,
        capacity_after=capacity / (1 + cost_increase),
        release_at=release_at,
    )
