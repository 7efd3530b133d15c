"""Leader election on a ``coordination.k8s.io/v1`` Lease (client-go's algorithm).

Two controller replicas run; only the leader writes to Kubernetes (HPAs, statuses,
Events) and to the spend ledger. Followers still reconcile and publish to their own
DecisionStore, so whichever replica the APIService routes to serves a fresh value.

The leader renews ``spec.renewTime`` every ``retry_period``. A candidate takes the Lease
when it is free, released, or not renewed for ``lease_duration``. Every write carries
the ``resourceVersion`` it read as a precondition, so two candidates cannot both win:
the loser gets 409 and stays a follower. A leader that cannot renew for
``renew_deadline`` steps down on its own (before anyone else can take over), and
``release()`` on shutdown hands over at once. Failover after a crash takes at most
``lease_duration + retry_period`` (17 s with the defaults), under the 30-s target.

Time comes from the injected clock. Callers: ``autoscaler run`` (a daemon thread),
the tests (short durations).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoscaler.clock import Clock
from autoscaler.kube.client import Conflict, KubeClient, path_for
from autoscaler.logging import log_event
from models.errors import AutoscalerError

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


def _parse(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class LeaderElector:
    """Acquire, renew and release one Lease; ``is_leader`` is safe to read from any thread."""

    def __init__(
        self,
        client: KubeClient,
        settings: LeaderSettings,
        identity: str,
        clock: Clock,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.identity = identity
        self.clock = clock
        self.on_change = on_change
        self._leader = False
        self._last_renew: float | None = None
        self._collection = path_for(LEASE_API, "leases", settings.namespace)
        self._path = f"{self._collection}/{settings.name}"

    @property
    def is_leader(self) -> bool:
        return self._leader

    def _set(self, leader: bool, why: str) -> None:
        if leader != self._leader:
            self._leader = leader
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
            "leaseDurationSeconds": int(round(self.settings.lease_duration_seconds)),
            "acquireTime": old.get("acquireTime") if mine else _stamp(now),
            "renewTime": _stamp(now),
            "leaseTransitions": int(old.get("leaseTransitions") or 0) + (0 if mine else 1),
        }

    def try_acquire_or_renew(self) -> bool:
        """One attempt; updates ``is_leader`` and returns it."""
        now = self.clock.now()
        try:
            won = self._attempt(now)
        except AutoscalerError as err:
            log.info("lease %s: attempt failed: %s", self._path, err)
            won = False
        if won:
            self._last_renew = now
            self._set(True, "lease acquired or renewed")
        elif self._leader:
            deadline = (self._last_renew or now) + self.settings.renew_deadline_seconds
            if now >= deadline:
                self._set(False, "could not renew before the renew deadline")
        return self._leader

    def _attempt(self, now: float) -> bool:
        lease = self.client.get_or_none(self._path)
        if lease is None:
            body = {
                "apiVersion": LEASE_API,
                "kind": "Lease",
                "metadata": {"name": self.settings.name, "namespace": self.settings.namespace},
                "spec": self._spec(now, None),
            }
            try:
                self.client.create(self._collection, body)
            except Conflict:
                return False  # another candidate created it first
            return True
        spec = lease.get("spec", {})
        holder = spec.get("holderIdentity") or ""
        renewed = _parse(spec.get("renewTime")) or 0.0
        duration = float(spec.get("leaseDurationSeconds") or self.settings.lease_duration_seconds)
        if holder and holder != self.identity and now < renewed + duration:
            return False  # someone else holds a valid lease
        patch: dict[str, Any] = {"spec": self._spec(now, lease)}
        version = lease.get("metadata", {}).get("resourceVersion")
        if version:
            patch["metadata"] = {"resourceVersion": version}
        try:
            self.client.merge_patch(self._path, patch)
        except Conflict:
            return False
        return True

    def release(self) -> None:
        """Give the lease up (on shutdown) so a follower takes over without waiting."""
        if not self._leader:
            return
        try:
            lease = self.client.get_or_none(self._path)
            if lease and lease.get("spec", {}).get("holderIdentity") == self.identity:
                self.client.merge_patch(
                    self._path, {"spec": {"holderIdentity": "", "renewTime": None}}
                )
        except AutoscalerError as err:
            log.warning("could not release lease %s: %s", self._path, err)
        self._set(False, "released")

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set, then release. Runs on its own thread."""
        while not stop.is_set():
            self.try_acquire_or_renew()
            stop.wait(self.settings.retry_period_seconds)
        self.release()
