"""Leader election on a ``coordination.k8s.io/v1`` Lease (client-go's algorithm).

Two controller replicas run; only the leader writes to Kubernetes (HPAs, statuses,
Events) and to the spend ledger. Followers still reconcile and publish to their own
DecisionStore, so whichever replica the APIService routes to serves a fresh value.

As in client-go (``tools/leaderelection``):

* **Observed time, not the holder's clock.** A candidate never compares the Lease's
  ``renewTime`` with its own wall clock (the two pods' clocks may differ by any
  amount). It remembers the record it last saw and *when it saw it change*, on its own
  monotonic clock (client-go's ``observedRecord``/``observedTime``), and takes a held
  Lease only after the record has not changed for ``leaseDurationSeconds`` of that
  clock. ``renewTime`` is written for people (``kubectl get lease``), read by no one.
* **Optimistic concurrency.** Every write carries the ``resourceVersion`` it read, so
  two candidates cannot both win: the loser gets 409 and stays a follower.
* **Renew deadline.** The leader renews every ``retry_period``; it is leader until
  ``renew_deadline`` after the *start* of its last successful renewal, a monotonic
  instant. ``is_leader()`` compares the two on each call, so it turns False by itself
  when the deadline passes, even while the renew thread is stuck in a hung call. Each
  API call of an attempt is bounded by the time left (never past the deadline), and
  the Lease calls bypass the client-side rate limit.
* **Why that is safe.** A follower takes over no earlier than ``lease_duration`` after
  it saw the last renewal, which it can only see after the renewal was sent; the old
  leader stopped ``renew_deadline`` after sending it, ``lease_duration -
  renew_deadline`` (5 s by default) earlier, as long as the two monotonic clocks run at
  about the same rate (client-go's assumption too).
* ``release()`` on shutdown stops the writes first, then frees the Lease (guarded by
  its resourceVersion) so a follower takes over at once.

Failover after a crash: the follower saw the last renewal within ``retry_period`` and
takes over ``lease_duration`` later (it wakes at that instant rather than at its next
poll): at most ``lease_duration + retry_period`` (17 s with the defaults), under the
30-s target. Callers: ``autoscaler run`` (a daemon thread), the tests.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoscaler.clock import Clock
from autoscaler.kube.client import MERGE_PATCH, Conflict, KubeClient, NotFound, path_for
from autoscaler.logging import log_event
from models.errors import AutoscalerError, RetryableError

log = logging.getLogger(__name__)
LEASE_API = "coordination.k8s.io/v1"


class LeaderSettings(BaseModel):
    """Leader election timing (client-go's defaults, scaled to a 30-s failover target)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key must fail, not vanish

    #: On by default: two replicas without it would both write HPAs and the ledger.
    enabled: bool = True
    #: Namespace and name of the Lease object.
    namespace: str = "predictive-autoscaler"
    name: str = "predictive-autoscaler-leader"
    #: This replica's identity; empty = hostname + random suffix (unique per process).
    identity: str = ""
    #: Seconds a lease is valid without renewal; others wait this long after a crash.
    lease_duration_seconds: float = Field(default=15.0, gt=0)
    #: Seconds the leader keeps trying to renew before it steps down itself.
    renew_deadline_seconds: float = Field(default=10.0, gt=0)
    #: Seconds between attempts to acquire or renew.
    retry_period_seconds: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _order(self) -> LeaderSettings:
        if not (self.retry_period_seconds < self.renew_deadline_seconds):
            raise ValueError("retry_period_seconds must be below renew_deadline_seconds")
        if not (self.renew_deadline_seconds < self.lease_duration_seconds):
            raise ValueError("renew_deadline_seconds must be below lease_duration_seconds")
        return self


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderCheck:
    """``elector.is_leader()``: True while this replica may write.

    A callable object rather than a method so that the old property spelling
    (``if elector.is_leader:``) fails loudly instead of always being true.
    """

    __slots__ = ("_elector",)

    def __init__(self, elector: LeaderElector) -> None:
        self._elector = elector

    def __call__(self) -> bool:
        return self._elector.holds_lease()

    def __bool__(self) -> NoReturn:
        raise TypeError("LeaderElector.is_leader is a function: call is_leader()")


class LeaderElector:
    """Acquire, renew and release one Lease; ``is_leader()`` is safe from any thread."""

    def __init__(
        self,
        client: KubeClient,
        settings: LeaderSettings,
        identity: str,
        clock: Clock,
        on_change: Callable[[bool], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.settings = settings
        self.identity = identity
        #: wall clock: only for the renewTime/acquireTime stamps people read.
        self.clock = clock
        #: every decision is timed on this (never on the Lease's stamps).
        self.monotonic = monotonic
        self.on_change = on_change
        #: ``is_leader()``: call it right before each write.
        self.is_leader = LeaderCheck(self)
        self._lock = threading.Lock()
        #: monotonic instant until which this replica may write (-inf: not leader).
        self._until = -math.inf
        #: the last Lease spec seen (canonical JSON) and when it was first seen.
        self._observed_raw: str | None = None
        self._observed_time = -math.inf
        self._observed_duration = settings.lease_duration_seconds
        self._reported = False
        self._collection = path_for(LEASE_API, "leases", settings.namespace)
        self._path = f"{self._collection}/{settings.name}"

    def holds_lease(self) -> bool:
        """True until the renew deadline of the last successful renewal (monotonic)."""
        return self.monotonic() < self._until

    def seconds_left(self) -> float:
        """Seconds of leadership left (0 when not leader), e.g. to bound a write."""
        return max(0.0, self._until - self.monotonic())

    def _report(self, why: str) -> None:
        leader = self.holds_lease()
        if leader != self._reported:
            self._reported = leader
            log_event(
                log,
                "leader_acquired" if leader else "leader_lost",
                f"{self.identity} {'became' if leader else 'is no longer'} leader: {why}",
                identity=self.identity,
                lease=f"{self.settings.namespace}/{self.settings.name}",
            )
            if self.on_change is not None:
                self.on_change(leader)

    def _spec(self, now: float, lease: dict[str, Any] | None) -> dict[str, Any]:
        old = (lease or {}).get("spec", {})
        mine = old.get("holderIdentity") == self.identity
        return {
            "holderIdentity": self.identity,
            # Others wait this long: round up, never below our own setting.
            "leaseDurationSeconds": int(math.ceil(self.settings.lease_duration_seconds)),
            "acquireTime": old.get("acquireTime") if mine else _stamp(now),
            "renewTime": _stamp(now),
            "leaseTransitions": int(old.get("leaseTransitions") or 0) + (0 if mine else 1),
        }

    def _observe(self, spec: dict[str, Any]) -> None:
        """client-go's observedRecord/observedTime: restart the timer on any change."""
        raw = json.dumps(spec, sort_keys=True)
        if raw != self._observed_raw:
            self._observed_raw = raw
            self._observed_time = self.monotonic()
            # The holder's duration (newer client-go), never below ours (older client-go
            # uses its own setting): waiting the longer of the two is the safe side.
            duration = float(spec.get("leaseDurationSeconds") or 0)
            self._observed_duration = max(duration, self.settings.lease_duration_seconds)

    def try_acquire_or_renew(self) -> bool:
        """One attempt; returns ``is_leader()`` after it."""
        start = self.monotonic()
        # Calls of this attempt end by the leader's deadline (a follower: the deadline
        # a success would give it), so one attempt never outlives the leadership.
        budget_end = (
            self._until if self.holds_lease() else start + self.settings.renew_deadline_seconds
        )
        try:
            won = self._attempt(budget_end)
        except AutoscalerError as err:
            log.info("lease %s: attempt failed: %s", self._path, err)
            won = False
        if won:
            with self._lock:
                self._until = max(self._until, start + self.settings.renew_deadline_seconds)
            self._report("lease acquired or renewed")
        else:
            self._report("could not renew before the renew deadline")
        return self.holds_lease()

    def _timeout(self, budget_end: float) -> float:
        left = budget_end - self.monotonic()
        if left <= 0:
            raise _OutOfTime(f"lease {self._path}: no time left before the renew deadline")
        return min(self.client.settings.request_timeout_seconds, left)

    def _attempt(self, budget_end: float) -> bool:
        try:
            lease: dict[str, Any] | None = self.client.request(
                "GET", self._path, timeout=self._timeout(budget_end)
            )
        except NotFound:
            lease = None
        now = self.clock.now()
        if lease is None:
            spec = self._spec(now, None)
            body = {
                "apiVersion": LEASE_API,
                "kind": "Lease",
                "metadata": {"name": self.settings.name, "namespace": self.settings.namespace},
                "spec": spec,
            }
            try:
                self.client.request(
                    "POST",
                    self._collection,
                    body,
                    timeout=self._timeout(budget_end),
                    limited=False,
                    fenced=False,
                )
            except Conflict:
                return False  # another candidate created it first
            self._observe(spec)
            return True
        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        if (
            holder
            and holder != self.identity
            and self.monotonic() < self._observed_time + self._observed_duration
        ):
            return False  # someone else holds a lease we saw change less than its duration ago
        new_spec = self._spec(now, lease)
        patch: dict[str, Any] = {"spec": new_spec}
        version = (lease.get("metadata") or {}).get("resourceVersion")
        if version:
            # A resourceVersion in a merge patch is a precondition: 409 if it is stale.
            patch["metadata"] = {"resourceVersion": version}
        try:
            self.client.request(
                "PATCH",
                self._path,
                patch,
                content_type=MERGE_PATCH,
                timeout=self._timeout(budget_end),
                limited=False,
                fenced=False,
            )
        except Conflict:
            return False
        self._observe(new_spec)
        return True

    def release(self) -> None:
        """Stop writing, then give the Lease up so a follower takes over without waiting."""
        if not (self.holds_lease() or self._reported):
            return
        with self._lock:
            self._until = -math.inf  # first: no write of ours may follow the hand-over
        try:
            budget_end = self.monotonic() + self.settings.renew_deadline_seconds
            lease = self.client.request("GET", self._path, timeout=self._timeout(budget_end))
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                patch: dict[str, Any] = {"spec": {"holderIdentity": "", "renewTime": None}}
                version = (lease.get("metadata") or {}).get("resourceVersion")
                if version:
                    patch["metadata"] = {"resourceVersion": version}
                self.client.request(
                    "PATCH",
                    self._path,
                    patch,
                    content_type=MERGE_PATCH,
                    timeout=self._timeout(budget_end),
                    limited=False,
                    fenced=False,
                )
        except AutoscalerError as err:
            log.warning("could not release lease %s: %s", self._path, err)
        self._report("released")

    def _next_wait(self) -> float:
        """``retry_period``; a follower wakes early when the held lease expires sooner."""
        wait = self.settings.retry_period_seconds
        if not self.holds_lease() and self._observed_raw is not None:
            expiry = self._observed_time + self._observed_duration - self.monotonic()
            if 0 <= expiry < wait:
                wait = expiry + 0.01
        return wait

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set, then release. Runs on its own thread."""
        while not stop.is_set():
            self.try_acquire_or_renew()
            stop.wait(self._next_wait())
        self.release()


class _OutOfTime(RetryableError):
    """An attempt's time ran out before a call could be made."""
