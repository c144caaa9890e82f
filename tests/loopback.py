"""What the test servers on 127.0.0.1 (fakeprovider, receiver) share: a port of their own, a
thread, start and stop (or ``with``), keep-alive handlers that stop promptly, no Nagle stalls,
and no noise when a client goes away."""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

__all__ = ["LoopbackHandler", "LoopbackServer", "LoopbackService"]

_Service = TypeVar("_Service", bound="LoopbackService")


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.connections_opened = 0  # (keep-alive: a client reusing its connections opens few)

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that went away is no news
            super().handle_error(request, client_address)  # type: ignore[arg-type]

    def close_connections(self) -> None:
        """Wake handler threads waiting on idle keep-alive connections, so that stop() returns."""
        with self.connections_lock:
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class LoopbackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers
    server: LoopbackServer
    timeout = 30  # an idle keep-alive connection is closed after this long

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle stalls
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
            self.server.connections_opened += 1

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


class LoopbackService:
    """A server on 127.0.0.1, port 0, served by a thread. Subclasses name their ``server_class``
    and ``handler_class``, and ``_attach`` the server to themselves (handlers reach the service
    through it)."""

    server_class: type[LoopbackServer] = LoopbackServer
    handler_class: type[LoopbackHandler] = LoopbackHandler
    _server: LoopbackServer | None = None
    _thread: threading.Thread | None = None

    def _attach(self, server: LoopbackServer) -> None:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"the {type(self).__name__} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def connections_opened(self) -> int:
        """Connections clients opened so far (a client keeping its connections alive opens few)."""
        return self._server.connections_opened if self._server is not None else 0

    def start(self: _Service) -> _Service:
        server = self.server_class(("127.0.0.1", 0), self.handler_class)
        self._attach(server)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join()

    def __enter__(self: _Service) -> _Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
