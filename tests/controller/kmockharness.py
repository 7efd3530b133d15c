"""Run the kmock Kubernetes API emulator on a loopback port in a background thread.

kmock is asyncio-based; the controller and its Kubernetes wrapper are synchronous and
use the official client over real HTTP. So the emulator gets its own event loop in a
daemon thread and the test talks to it through its URL, exactly as the controller
would talk to a real API server. ``call`` runs a coroutine function on that loop
(to add reactions or inspect objects thread-safely).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import kmock

T = TypeVar("T")

#: Resources the controller touches, declared so that lists and discovery work.
RESOURCES: dict[str, dict[str, Any]] = {
    "autoscaling.predictive.io/v1alpha1/predictiveautoscalers": {
        "kind": "PredictiveAutoscaler",
        "namespaced": True,
    },
    "autoscaling.predictive.io/v1alpha1/costbudgets": {"kind": "CostBudget", "namespaced": False},
    "autoscaling/v2/horizontalpodautoscalers": {
        "kind": "HorizontalPodAutoscaler",
        "namespaced": True,
    },
    "apps/v1/deployments": {"kind": "Deployment", "namespaced": True},
    "coordination.k8s.io/v1/leases": {"kind": "Lease", "namespaced": True},
    "v1/events": {"kind": "Event", "namespaced": True},
}


class KmockCluster:
    """A kmock ``KubernetesEmulator`` served on 127.0.0.1 from a background loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.emulator: kmock.KubernetesEmulator
        self._server: kmock.Server
        self.url = self.call(self._start)

    async def _start(self) -> str:
        self.emulator = kmock.KubernetesEmulator()
        await self.emulator.__aenter__()
        for key, info in RESOURCES.items():
            self.emulator.resources[key] = info
        self._server = kmock.Server(self.emulator)
        await self._server.__aenter__()
        return str(self._server.url).rstrip("/")

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    def do(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the emulator's loop (kmock's state is not thread-safe)."""

        async def wrapper() -> T:
            return fn()

        return self.call(wrapper)

    def put(self, resource: str, namespace: str | None, name: str, obj: dict[str, Any]) -> None:
        self.do(lambda: self.emulator.objects.__setitem__((resource, namespace, name), obj))

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            key = (kmock.resource(resource), namespace, name)
            if key not in self.emulator.objects or self.emulator.objects[key].deleted:
                return None
            raw: dict[str, Any] = self.emulator.objects[key].raw
            return raw

        return self.do(read)

    def requests(self) -> list[Any]:
        return self.do(lambda: list(self.emulator))

    def close(self) -> None:
        async def stop() -> None:
            await self._server.__aexit__(None, None, None)
            await self.emulator.__aexit__(None, None, None)

        try:
            self.call(stop)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
