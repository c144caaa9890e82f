"""The daemon's small HTTP/1.1 listener (``engine.listen``): ``/metrics`` and ``/healthz``.

Built on ``asyncio.start_server``; no framework. One request per connection (every response
says ``Connection: close``), GET and HEAD only, the request head bounded in size and time, a
body never parsed (what the client still sends is dropped after the response, up to a bound,
so that closing does not reset the connection under the response). Rendering the metrics runs in a worker thread, so a big scrape never stalls
the polls; the health callable runs on the event loop (it may touch the store, whose SQLite
connection belongs to this thread), so it must be quick.

Statuses: 200; 404 unknown path; 405 other methods on a known path; 400 a request that is not
HTTP/1.x; 408 a head not finished within the timeout; 431 a head over the size bound; 500
metrics that failed to render; 503 unhealthy (the reason is the body), or too many connections.
"""

from __future__ import annotations

import asyncio
import gzip
import inspect
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Protocol

from poller.daemon.metrics import CONTENT_TYPE

__all__ = ["MetricsServer", "HealthCheck", "MAX_REQUEST_BYTES", "REQUEST_TIMEOUT_S", "MAX_CONNECTIONS"]

log = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 8192  # request line + headers
REQUEST_TIMEOUT_S = 10.0  # to read the head, and again to write the response
MAX_CONNECTIONS = 64
LINGER_S = 1.0  # after a response, how long to read what the client still sends (see _linger)
LINGER_BYTES = 1 << 20
TEXT = "text/plain; charset=utf-8"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}
ROUTES = ("/metrics", "/healthz")

HealthCheck = Callable[[], tuple[bool, str] | Awaitable[tuple[bool, str]]]


class Renderer(Protocol):
    def render(self) -> bytes: ...


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class MetricsServer:
    """Serves ``metrics.render()`` at ``/metrics`` and ``health()`` at ``/healthz``.

    ``health`` returns ``(ok, reason)`` (or an awaitable of it): 200 "ok" when ok, else 503
    with the reason.
    """

    def __init__(self, metrics: Renderer, health: HealthCheck, *, max_request_bytes: int = MAX_REQUEST_BYTES,
                 timeout_s: float = REQUEST_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS) -> None:
        self.metrics = metrics
        self.health = health
        self.max_request_bytes = max_request_bytes
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self.server: asyncio.Server | None = None
        self._handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    def __repr__(self) -> str:
        where = f" {self.address[0]}:{self.port}" if self.server is not None else ""
        return f"<MetricsServer{where}>"

    async def start(self, host: str, port: int) -> asyncio.Server:
        """Listen on ``host:port`` (port 0: any free port, see :attr:`port`)."""
        if self.server is not None:
            raise RuntimeError("the metrics server is already started")
        # the limit bounds one line of the head; _read_head bounds the head as a whole
        self.server = await asyncio.start_server(self._handle, host, port, limit=self.max_request_bytes)
        return self.server

    @property
    def address(self) -> tuple[str, int]:
        """The first bound address (host, port)."""
        if self.server is None or not self.server.sockets:
            raise RuntimeError("the metrics server is not listening")
        name = self.server.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    @property
    def port(self) -> int:
        return self.address[1]

    async def close(self) -> None:
        """Stop listening, end the connections in progress, and wait until all is closed.

        Connections are aborted rather than their handlers cancelled: a handler then sees the
        end of its stream and returns (a cancelled one would be logged as an error by asyncio's
        streams); one still rendering gets ``timeout_s`` before it is cancelled after all."""
        server, self.server = self.server, None
        if server is None:
            return
        server.close()
        for writer in self._handlers.values():
            writer.transport.abort()
        handlers = list(self._handlers)
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=self.timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await server.wait_closed()

    # -- one connection -------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self.server is None:  # accepted just before close()
            writer.transport.abort()
            return
        self._handlers[task] = writer  # type: ignore[index]
        try:
            method, path = "GET", None
            if len(self._handlers) > self.max_connections:
                status, body, content_type, extra = 503, b"too many connections\n", TEXT, {}
            else:
                try:
                    lines = await asyncio.wait_for(self._read_head(reader), self.timeout_s)
                    method, path, headers = _parse_head(lines)
                    status, body, content_type, extra = await self._route(method, path, headers)
                except _BadRequest as exc:
                    status, body, content_type, extra = exc.status, f"{exc.reason}\n".encode(), TEXT, {}
                except asyncio.TimeoutError:
                    status, body, content_type, extra = 408, b"request head not received in time\n", TEXT, {}
            log.debug("http.request", extra={"method": method, "path": path, "status": status})
            await self._send(writer, method, status, body, content_type, extra)
            await self._linger(reader, writer)
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the client went away, or does not read its response
        finally:
            self._handlers.pop(task, None)  # type: ignore[call-overload]
            writer.close()
            with suppress(Exception):
                await writer.wait_closed()

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Half-close, then read and drop what the client still sends (a body, the rest of an
        oversized head) until it closes: closing a socket with unread input sends a reset,
        which can destroy the response before the client reads it."""
        if writer.can_write_eof():
            writer.write_eof()
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(_discard(reader, LINGER_BYTES), LINGER_S)

    async def _read_head(self, reader: asyncio.StreamReader) -> list[bytes]:
        """The request line and header lines, up to the empty line (CRLF or bare LF)."""
        lines: list[bytes] = []
        size = 0
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # one line over the stream's limit
                raise _BadRequest(431, "request head too large") from None
            size += len(line)
            if size > self.max_request_bytes:
                raise _BadRequest(431, "request head too large")
            if not line.endswith(b"\n"):  # end of stream before the head ended
                raise _BadRequest(400, "incomplete request")
            if line in (b"\r\n", b"\n"):
                return lines
            lines.append(line)

    async def _route(self, method: str, path: str,
                     headers: dict[str, str]) -> tuple[int, bytes, str, dict[str, str]]:
        if path not in ROUTES:
            return 404, b"not found\n", TEXT, {}
        if method not in ("GET", "HEAD"):
            return 405, b"method not allowed\n", TEXT, {"Allow": "GET, HEAD"}
        if path == "/healthz":
            ok, reason = await self._health()
            return (200, b"ok\n", TEXT, {}) if ok else (503, f"{reason}\n".encode(), TEXT, {})
        try:
            body = await asyncio.to_thread(self.metrics.render)
        except Exception:
            log.exception("http.metrics_failed")
            return 500, b"metrics could not be rendered\n", TEXT, {}
        if _accepts_gzip(headers.get("accept-encoding", "")):
            return 200, await asyncio.to_thread(gzip.compress, body, 6), CONTENT_TYPE, {"Content-Encoding": "gzip"}
        return 200, body, CONTENT_TYPE, {}

    async def _health(self) -> tuple[bool, str]:
        try:
            result = self.health()
            if inspect.isawaitable(result):
                result = await result
            ok, reason = result  # type: ignore[misc]
        except Exception as exc:
            log.exception("http.health_failed")
            return False, f"health check failed: {type(exc).__name__}: {exc}"
        return bool(ok), str(reason)

    async def _send(self, writer: asyncio.StreamWriter, method: str, status: int, body: bytes, content_type: str,
                    extra: dict[str, str] | None = None) -> None:
        head = [f"HTTP/1.1 {status} {REASONS[status]}", f"Content-Type: {content_type}",
                f"Content-Length: {len(body)}", "Cache-Control: no-store", "Connection: close"]
        head += [f"{name}: {value}" for name, value in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if method != "HEAD":
            writer.write(body)
        await asyncio.wait_for(writer.drain(), self.timeout_s)


async def _discard(reader: asyncio.StreamReader, limit: int) -> None:
    while limit > 0:
        chunk = await reader.read(min(limit, 65536))
        if not chunk:
            return
        limit -= len(chunk)


def _parse_head(lines: list[bytes]) -> tuple[str, str, dict[str, str]]:
    """(method, path without query, headers with lower-case names) or :class:`_BadRequest`."""
    if not lines:
        raise _BadRequest(400, "empty request")
    parts = lines[0].decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3:
        raise _BadRequest(400, "malformed request line")
    method, target, version = parts
    if not method.isascii() or not method.isalpha() or not method.isupper():
        raise _BadRequest(400, "malformed request method")
    if not version.startswith("HTTP/1.") or not target.startswith("/"):
        raise _BadRequest(400, "not an HTTP/1.x request for a path")
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        name, colon, value = raw.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise _BadRequest(400, "malformed header line")
        headers[name.lower()] = value.strip()
    return method, target.split("?", 1)[0], headers


def _accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() == "gzip":
            q = params.strip().lower()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False
