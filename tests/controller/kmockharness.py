"""Run the kmock Kubernetes API emulator on a loopback port in a background thread.

kmock is asyncio-based; the controller and its Kubernetes wrapper are synchronous and
use the official client over real HTTP. So the emulator gets its own event loop in a
daemon thread and the test talks to it through its URL, exactly as the controller
would talk to a real API server. ``call`` runs a coroutine function on that loop
(to add reactions or inspect objects thread-safely).

kmock alone stores every write as a recursive dict merge, assigns no
``resourceVersion`` and treats ``/status`` like the main resource, so a product bug
that relies on those semantics would pass every test. ``StrictEmulator`` is a thin
layer over it that enforces what our code depends on, as kube-apiserver does:

* every stored version gets a new ``metadata.resourceVersion`` (and a ``uid`` at
  creation); a write whose ``metadata.resourceVersion`` (or ``uid``) differs from the
  stored one is refused with 409 Conflict, and nothing is stored. A write that changes
  nothing is not stored and keeps its resourceVersion (as the real server does);
* for resources with the status subresource (our CRDs, HPAs, workloads), a write to
  the main resource keeps the stored ``.status`` (and a create drops it), and a write
  to ``/status`` keeps everything but ``.status``; ``/status`` of a resource without
  that subresource is 404;
* ``application/merge-patch+json`` is RFC 7386 (null deletes a key, a list replaces
  the whole list), ``application/strategic-merge-patch+json`` merges the lists that
  have a patch merge key in the built-in types (by that key) and is refused with 415
  on custom resources, ``application/json-patch+json`` is RFC 6902; PUT replaces.

User reactions (``emulator[...] << 409``) still answer after a write that passed
these checks was stored (kmock's documented behaviour); writes refused here never
reach the reactions.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import threading
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import aiohttp.web
import jsonpatch
import kmock
from kmock._internal.k8s import KubernetesError

from autoscaler.kube.client import KubeClient

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

#: Plurals served with the status subresource (ours: see deploy/base/crds/).
STATUS_SUBRESOURCE = frozenset(
    {
        "predictiveautoscalers",
        "costbudgets",
        "horizontalpodautoscalers",
        "deployments",
        "statefulsets",
        "replicasets",
    }
)
#: API groups of custom resources (strategic merge patch is refused on them).
CUSTOM_GROUPS = frozenset({"autoscaling.predictive.io"})

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

#: Lists that strategic merge patch merges by a key (from the built-in types' Go tags);
#: every other list is replaced whole. ``None``: a list of scalars merged as a set.
MERGE_KEYS: dict[str, str | None] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "finalizers": None,
}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: null deletes, objects merge, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge patch, the subset the built-ins need (merge keys above)."""
    if isinstance(patch, list) and field in MERGE_KEYS and isinstance(target, list):
        key = MERGE_KEYS[field]
        if key is None:
            return list(target) + [v for v in patch if v not in target]
        out = [dict(item) for item in target if isinstance(item, dict)]
        for item in patch:
            if not isinstance(item, dict):
                continue
            index = next((i for i, old in enumerate(out) if old.get(key) == item.get(key)), None)
            if item.get("$patch") == "delete":
                if index is not None:
                    out.pop(index)
            elif index is None:
                out.append({k: v for k, v in item.items() if not k.startswith("$")})
            else:
                out[index] = strategic_merge_patch(out[index], item)
        return out
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if name.startswith("$"):
            continue  # directives ($setElementOrder, $retainKeys): not needed here
        if value is None:
            result.pop(name, None)
        else:
            result[name] = strategic_merge_patch(result.get(name), value, name)
    return result


def _error(status: int, reason: str, message: str) -> KubernetesError:
    return KubernetesError(status=status, reason=reason, message=message, details={})


class StrictEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """kmock's emulator with resourceVersion preconditions, /status and patch types."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.revision = 0

    def next_version(self) -> str:
        self.revision += 1
        return str(self.revision)

    def stamp(self, obj: dict[str, Any], namespace: str | None, name: str) -> dict[str, Any]:
        """A freshly created object's server-side metadata."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["name"] = name
        if namespace is not None:
            meta["namespace"] = namespace
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault(
            "creationTimestamp",
            datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        meta["generation"] = 1
        meta["resourceVersion"] = self.next_version()
        return obj

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        method = request.method.value if request.method is not None else ""
        if request.resource is None or method not in {"POST", "PUT", "PATCH"}:
            return await super()._handle(request)
        async with self._lock:
            try:
                stored = await self._write(request, method)
            except KubernetesError as exc:
                return await self._render_error(exc)
        if method == "PUT":  # kmock has no PUT route: answer it here
            return aiohttp.web.json_response(stored)
        # Skip kmock's own (merging) store; keep its reactions and default answers.
        return await super(kmock.KubernetesEmulator, self)._handle(request)

    async def _write(self, request: Any, method: str) -> dict[str, Any]:
        resource = request.resource
        plural = resource.plural or ""
        has_status = plural in STATUS_SUBRESOURCE
        if request.subresource not in (None, "status") or (
            request.subresource == "status" and not has_status
        ):
            raise _error(404, "NotFound", f"no subresource {request.subresource} of {plural}")
        data = request.data
        if method == "POST":
            if request.name is not None or not isinstance(data, dict):
                raise _error(405, "MethodNotAllowed", "POST to a collection only")
            meta = data.get("metadata") or {}
            name = meta.get("name")
            if not name:
                raise _error(422, "Invalid", "metadata.name: Required value")
            namespace = request.namespace or meta.get("namespace")
            key = (resource, namespace, name)
            if key in self._objects and not self._objects[key].deleted:
                raise _error(409, "AlreadyExists", f'{plural} "{name}" already exists')
            obj = self.stamp(data, namespace, name)
            if has_status:
                obj.pop("status", None)  # the status strategy: create ignores .status
            if key in self._objects:
                self._objects[key].create(obj)
            else:
                self._objects[key] = obj
            await self._publish(resource, "ADDED", obj)
            return obj
        key = (resource, request.namespace, request.name)
        if request.name is None or key not in self._objects or self._objects[key].deleted:
            raise _error(404, "NotFound", f'{plural} "{request.name}" not found')
        current: dict[str, Any] = copy.deepcopy(self._objects[key].last.raw)
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        if method == "PUT":
            if not isinstance(data, dict):
                raise _error(400, "BadRequest", "PUT needs an object")
            candidate = copy.deepcopy(data)
        elif content_type == MERGE:
            candidate = merge_patch(current, data)
        elif content_type == STRATEGIC:
            if resource.group in CUSTOM_GROUPS:
                raise _error(
                    415, "UnsupportedMediaType", "strategic merge patch on a custom resource"
                )
            candidate = strategic_merge_patch(current, data)
        elif content_type == JSON_PATCH:
            try:
                candidate = jsonpatch.apply_patch(current, data, in_place=False)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
                raise _error(422, "Invalid", str(err)) from err
        else:
            raise _error(415, "UnsupportedMediaType", f"PATCH as {content_type!r}")
        old_meta = current.get("metadata") or {}
        new_meta = candidate.get("metadata") or {}
        # Preconditions: the resourceVersion / uid the writer sent must be the stored one.
        for field in ("resourceVersion", "uid"):
            sent = new_meta.get(field)
            if sent and sent != old_meta.get(field):
                raise _error(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {plural} "{request.name}": the object'
                    " has been modified; please apply your changes to the latest version"
                    f" and try again ({field} {sent} != {old_meta.get(field)})",
                )
        if request.subresource == "status":
            result = copy.deepcopy(current)  # /status: only .status changes
            if "status" in candidate:
                result["status"] = candidate["status"]
            else:
                result.pop("status", None)
        else:
            result = candidate
            if has_status:  # the main resource: .status changes are ignored
                if "status" in current:
                    result["status"] = current["status"]
                else:
                    result.pop("status", None)
        meta = result.setdefault("metadata", {})
        for field in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if result == current:
            return current  # a no-op write stores nothing and keeps the version
        if result.get("spec") != current.get("spec"):
            meta["generation"] = int(old_meta.get("generation") or 1) + 1
        meta["resourceVersion"] = self.next_version()
        self._objects[key].history.append(result)
        await self._publish(resource, "MODIFIED", result)
        return result

    async def _publish(self, resource: Any, kind: str, obj: dict[str, Any]) -> None:
        await self._buses[resource].put({"type": kind, "object": obj})


class KmockCluster:
    """A ``StrictEmulator`` served on 127.0.0.1 from a background loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.emulator: StrictEmulator
        self._server: kmock.Server
        self.url = self.call(self._start)

    async def _start(self) -> str:
        self.emulator = StrictEmulator()
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
        """Store ``obj`` as it is (test set-up), with a new resourceVersion (and uid)."""

        def store() -> None:
            stamped = copy.deepcopy(obj)
            meta = stamped.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta["resourceVersion"] = self.emulator.next_version()
            self.emulator.objects[(resource, namespace, name)] = stamped

        self.do(store)

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


class RaceAfterRead(KubeClient):
    """Runs ``hook`` once right after its next GET answers: another writer's turn
    between our read and our write."""

    hook: Callable[[], None] | None = None

    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        answer = super().request(method, path, body, **kw)
        if method == "GET" and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return answer
