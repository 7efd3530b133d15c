"""A loopback TCP proxy whose connections can be frozen: the API server "hangs".

``FreezableProxy(upstream_port)`` listens on 127.0.0.1 and forwards bytes both ways.
``freeze()`` stops forwarding on every connection, open or new (new ones are accepted
and never answered), which is what a half-dead API server, a stalled load balancer or
a partitioned node looks like to the client: connect works, the answer never comes.
``thaw()`` forwards again. Every loop polls with a short timeout and ends on ``close()``.
"""

from __future__ import annotations

import select
import socket
import threading


class FreezableProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._start(self._accept)

    def _start(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(t)
        t.start()

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            self._start(self._pump, client, upstream)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        try:
            while not self._closed.is_set():
                if self._frozen.is_set():  # hold the bytes: the peer waits forever
                    self._closed.wait(0.05)
                    continue
                ready, _, _ = select.select([a, b], [], [], 0.05)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            threads, sockets = list(self._threads), list(self._sockets)
        for t in threads:
            t.join(2)
        for s in sockets:
            s.close()
