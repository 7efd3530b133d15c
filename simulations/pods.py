"""Simulated pods of one workload: created at t, Ready after their start-up time.

The HPA only sets ``spec.replicas``; the ReplicaSet then creates or deletes pods. A new
pod is Ready after a start-up time drawn from the workload's distribution, and costs
money from creation until removal, Ready or not. On scale-down the ReplicaSet deletes
the pods that are not Ready first (newest first), then Ready pods, most recently Ready
first (the ReplicaSet's ``ActivePodsWithRanks`` order, simplified to what our pods
differ in). Removal is instant: the pod stops counting as capacity and as cost.

Callers: ``simulations.engine`` (one ``PodSet`` per policy run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Pod:
    """One pod: ``created`` and ``ready_at`` are unix seconds (simulated)."""

    name: str
    created: float
    ready_at: float
    ready: bool = False


class PodSet:
    """The pods of one workload, with the counts the engine and the HPA read each tick.

    ``draw_startup`` returns the start-up time of the next pod in seconds; pods are
    drawn in creation order from one seeded stream, so a run repeats exactly.
    """

    def __init__(self, draw_startup: Callable[[], float], name: str = "pod") -> None:
        self._draw = draw_startup
        self._name = name
        self._serial = 0
        #: not yet Ready, in creation order.
        self.starting: list[Pod] = []
        #: Ready, in the order they became Ready.
        self.ready: list[Pod] = []
        #: creation time of the newest pod ever created (an upper bound for those alive).
        self.newest_created = float("-inf")
        #: bumped on every change of the pod set or of a pod's readiness (cache key).
        self.version = 0
        #: every pod created, when a caller asks for it (kube-state-metrics' created and
        #: Ready times in a simulation that learns the lead time); None: not kept.
        self.created_log: list[Pod] | None = None

    @property
    def alive(self) -> int:
        """Pods that exist (``status.replicas``); each one costs money."""
        return len(self.starting) + len(self.ready)

    @property
    def ready_count(self) -> int:
        return len(self.ready)

    def _new(self, now: float, startup: float) -> Pod:
        self._serial += 1
        self.version += 1
        self.newest_created = max(self.newest_created, now)
        pod = Pod(f"{self._name}-{self._serial}", now, now + startup)
        if self.created_log is not None:
            self.created_log.append(pod)
        return pod

    def seed_ready(self, n: int, now: float) -> None:
        """Start with ``n`` pods that are already Ready (the state before the replay)."""
        for _ in range(n):
            pod = self._new(now, 0.0)
            pod.ready = True
            self.ready.append(pod)

    def advance(self, now: float) -> int:
        """Mark pods whose start-up has elapsed as Ready; return how many became Ready."""
        if not self.starting or min(p.ready_at for p in self.starting) > now:
            return 0
        done = sorted((p for p in self.starting if p.ready_at <= now), key=lambda p: p.ready_at)
        for p in done:
            p.ready = True
        self.starting = [p for p in self.starting if not p.ready]
        self.ready.extend(done)
        self.version += 1
        return len(done)

    def scale_to(self, replicas: int, now: float) -> None:
        """Create or delete pods so that ``replicas`` exist (the ReplicaSet's job)."""
        diff = replicas - self.alive
        if diff > 0:
            for _ in range(diff):
                self.starting.append(self._new(now, self._draw()))
        elif diff < 0:
            self.version += 1
            remove = -diff
            # Not-yet-Ready pods go first, newest first: they serve nothing yet.
            k = min(remove, len(self.starting))
            if k:
                del self.starting[len(self.starting) - k :]
            remove -= k
            if remove:
                del self.ready[len(self.ready) - remove :]
