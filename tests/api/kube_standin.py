"""A small loopback stand-in for kube-apiserver's TokenReview and SubjectAccessReview.

The API server under test calls these through the official ``kubernetes`` client, over
real HTTP, exactly as it would call kube-apiserver. The stand-in answers from a token
table and an allow-list, and records every review it received so tests can check the
attributes we send and that answers are cached.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class KubeStandIn:
    #: bearer token -> (username, groups)
    tokens: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    #: allowed (user, verb, resource-or-path, namespace) tuples; resource "" for paths.
    allowed: set[tuple[str, str, str, str]] = field(default_factory=set)
    token_reviews: list[dict[str, Any]] = field(default_factory=list)
    access_reviews: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False
    #: While True, every review hangs (a kube-apiserver that accepted the connection and
    #: never answers) until ``release()`` or ``hang_seconds`` pass, whichever is first.
    hang: bool = False
    hang_seconds: float = 30.0
    _released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        """End every hanging review now (and any later one, until ``hang`` is set again)."""
        self.hang = False
        self._released.set()

    def start(self) -> KubeStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if standin.hang:
                    standin._released.wait(standin.hang_seconds)  # bounded: never forever
                if standin.fail:
                    self._reply(500, {"kind": "Status", "code": 500, "message": "boom"})
                    return
                if self.path == "/apis/authentication.k8s.io/v1/tokenreviews":
                    standin.token_reviews.append(body)
                    hit = standin.tokens.get(body["spec"]["token"])
                    status: dict[str, Any] = {"authenticated": hit is not None}
                    if hit:
                        status["user"] = {"username": hit[0], "groups": hit[1]}
                    self._reply(201, {**body, "status": status})
                elif self.path == "/apis/authorization.k8s.io/v1/subjectaccessreviews":
                    standin.access_reviews.append(body)
                    spec = body["spec"]
                    if "resourceAttributes" in spec:
                        ra = spec["resourceAttributes"]
                        key = (spec["user"], ra["verb"], ra["resource"], ra.get("namespace", ""))
                    else:
                        na = spec["nonResourceAttributes"]
                        key = (spec["user"], na["verb"], na["path"], "")
                    self._reply(201, {**body, "status": {"allowed": key in standin.allowed}})
                else:
                    self._reply(404, {"kind": "Status", "code": 404})

            def _reply(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
