"""The daemon's HTTP listeners, served by aiohttp in the daemon's own event loop.

``engine.listen`` serves ``/metrics`` and ``/healthz`` and, unless ``engine.webhooks.listen``
is set, the inbound webhook routes; with it, that second listener serves the inbound routes
alone (so it can be exposed through a reverse proxy while the rest stays private).

aiohttp parses the requests (chunked bodies, ``Expect: 100-continue``, keep-alive, bounded
request lines and headers). On top of it, for a hostile client:

* a connection must deliver a whole request head within ``timeout_s`` of opening (or of its
  last response): aiohttp's keep-alive timer, which data trickling in does not reset, closes
  it otherwise, so a slowloris holds a connection for ``timeout_s`` at most;
* at most ``max_connections`` per listener; when full, the oldest connection that is not in
  the middle of a request is closed to make room, so slow or idle clients never shut out a
  new one (only ``max_connections`` requests in progress at once do: the newcomer gets 503);
* no access log (a webhook URL holds its token).

Rendering the metrics runs in a worker thread, so a big scrape never stalls the polls; the
health callable runs on the event loop (it may touch the store, whose SQLite connection belongs
to this thread), so it must be quick.
"""

from __future__ import annotations

import asyncio
import gzip
import inspect
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from poller.daemon.metrics import CONTENT_TYPE

__all__ = ["HttpServer", "HealthCheck", "MAX_LINE_BYTES", "REQUEST_TIMEOUT_S", "max_connections"]

log = logging.getLogger(__name__)
MAX_LINE_BYTES = 8190  # request line, and each header (aiohttp's defaults)
MAX_HEADERS = 100
REQUEST_TIMEOUT_S = 10.0  # to send a whole request head, from connecting or from the last response
TEXT = "text/plain; charset=utf-8"
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n")

HealthCheck = Callable[[], tuple[bool, str] | Awaitable[tuple[bool, str]]]
Routes = Callable[[web.Application], None]


class _ProtocolLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's connection logger. A malformed request is the client's fault, and anyone can
    send one: one DEBUG line without the traceback (which would quote the request, token
    included) instead of an ERROR each time. Our own handlers' failures stay errors."""

    def exception(self, msg: object, *args: object, exc_info: object = True, **kwargs: object) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.logger.debug("http.bad_request", extra={"status": exc_info.code,
                                                         "reason": str(exc_info.message).split(":")[0][:80]})
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kwargs)  # type: ignore[arg-type]


_PROTOCOL_LOG = _ProtocolLog(logging.getLogger("poller.daemon.http"), {})


class Renderer(Protocol):
    def render(self) -> bytes: ...


def max_connections() -> int:
    """Per listener: a quarter of the open-file limit (the polls and the state file need theirs),
    between 64 and 4,096."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        soft = 1024
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(64, min(4096, soft // 4))


def text(status: int, body: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=body if body.endswith("\n") or not body else body + "\n",
                        content_type="text/plain", charset="utf-8", headers={"Cache-Control": "no-store", **headers})


class HttpServer:
    """One listener. ``metrics`` and ``health``: serve ``/metrics`` and ``/healthz``; ``routes``:
    add more (the inbound webhooks). Start with :meth:`start`, stop with :meth:`close`."""

    def __init__(self, metrics: Renderer | None = None, health: HealthCheck | None = None, *,
                 routes: Routes | None = None, timeout_s: float = REQUEST_TIMEOUT_S,
                 max_connections: int | None = None, name: str = "http") -> None:
        self.metrics = metrics
        self.health = health
        self.timeout_s = timeout_s
        self.max_connections = max_connections or globals()["max_connections"]()
        self.name = name
        self.app = web.Application(middlewares=[self._track])
        self.app.on_response_prepare.append(_server_header)
        if metrics is not None:
            self.app.router.add_get("/metrics", self._metrics)
        if health is not None:
            self.app.router.add_get("/healthz", self._healthz)
        if routes is not None:
            routes(self.app)
        self.runner: web.AppRunner | None = None
        self.site: _GuardedSite | None = None
        # (aiohttp's handlers take no weak references: entries of closed connections are dropped in admit)
        self.busy: dict[RequestHandler, int] = {}
        self.opened: dict[RequestHandler, float] = {}
        self.evicted = 0
        self.refused = 0

    def __repr__(self) -> str:
        where = f" {self.address[0]}:{self.port}" if self.site is not None else ""
        return f"<HttpServer {self.name}{where}>"

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (port 0: any free port, see :attr:`port`)."""
        if self.runner is not None:
            raise RuntimeError("the HTTP server is already started")
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, keepalive_timeout=self.timeout_s,
                               max_line_size=MAX_LINE_BYTES, max_field_size=MAX_LINE_BYTES, max_headers=MAX_HEADERS,
                               auto_decompress=False, lingering_time=1.0, shutdown_timeout=self.timeout_s,
                               logger=_PROTOCOL_LOG)
        await runner.setup()
        site = _GuardedSite(runner, host, port, guard=self)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.runner, self.site = runner, site

    @property
    def address(self) -> tuple[str, int]:
        """The first bound address (host, port)."""
        server = self.site.listener if self.site is not None else None
        if server is None or not server.sockets:
            raise RuntimeError("the HTTP server is not listening")
        name = server.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    @property
    def port(self) -> int:
        return self.address[1]

    async def close(self) -> None:
        """Stop listening, end the connections (a request in progress gets ``timeout_s``)."""
        runner, self.runner, self.site = self.runner, None, None
        if runner is not None:
            await runner.cleanup()

    # -- connections ----------------------------------------------------------------------------

    def admit(self, handler: RequestHandler) -> bool:
        """A new connection: make room if the listener is full. False: refuse it."""
        assert self.runner is not None and self.runner.server is not None
        connections = self.runner.server.connections
        if len(self.opened) > 2 * len(connections) + 64:
            live = set(connections)
            self.opened = {c: t for c, t in self.opened.items() if c in live}
            self.busy = {c: n for c, n in self.busy.items() if c in live and n}
        if len(connections) >= self.max_connections:
            idle = [c for c in connections if not self.busy.get(c)]
            if not idle:
                self.refused += 1
                return False
            oldest = min(idle, key=lambda c: self.opened.get(c, 0.0))
            oldest.force_close()
            self.evicted += 1
        self.opened[handler] = time.monotonic()
        return True

    @web.middleware
    async def _track(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        protocol = request.protocol
        self.busy[protocol] = self.busy.get(protocol, 0) + 1
        try:
            return await handler(request)
        finally:
            self.busy[protocol] -= 1
            if not self.busy[protocol]:
                del self.busy[protocol]

    # -- routes ---------------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, reason = await self._health()
        return text(200, "ok") if ok else text(503, reason)

    async def _health(self) -> tuple[bool, str]:
        assert self.health is not None
        try:
            result = self.health()
            if inspect.isawaitable(result):
                result = await result
            ok, reason = result  # type: ignore[misc]
        except Exception as exc:
            log.exception("http.health_failed")
            return False, f"health check failed: {type(exc).__name__}: {exc}"
        return bool(ok), str(reason)

    async def _metrics(self, request: web.Request) -> web.Response:
        assert self.metrics is not None
        try:
            body = await asyncio.to_thread(self.metrics.render)
        except Exception:
            log.exception("http.metrics_failed")
            return text(500, "metrics could not be rendered")
        headers = {"Cache-Control": "no-store", "Content-Type": CONTENT_TYPE}
        if _accepts_gzip(request.headers.get("Accept-Encoding", "")):
            body = await asyncio.to_thread(gzip.compress, body, 6)
            headers["Content-Encoding"] = "gzip"
        return web.Response(status=200, body=body, headers=headers)


class _Refuse(asyncio.Protocol):
    """A connection over the cap: a 503, then closed (after the client has had time to read it)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_BUSY)
        if transport.can_write_eof():
            transport.write_eof()
        self._closer = asyncio.get_running_loop().call_later(1.0, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass  # dropped: closing with unread input would reset the connection under the 503

    def connection_lost(self, exc: Exception | None) -> None:
        self._closer.cancel()


class _GuardedSite(web.TCPSite):
    """aiohttp's TCPSite with the connection cap of :meth:`HttpServer.admit` in its protocol factory."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, guard: HttpServer) -> None:
        super().__init__(runner, host, port)
        self.guard = guard
        self.listener: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None

        def factory() -> asyncio.Protocol:
            handler = server()
            return handler if self.guard.admit(handler) else _Refuse()

        self.listener = self._server = await asyncio.get_running_loop().create_server(
            factory, self._host, self._port, backlog=self._backlog)


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "poller"  # not aiohttp's, with its version, to anyone who asks


def _accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() == "gzip":
            q = params.strip().lower()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False
