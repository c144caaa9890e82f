"""A cheaper "has the provider closed this idle connection?" for the polling client's pool.

httpcore's connection pool asks every connection it holds whether it has expired, several times
per request (when a request comes in, when a response is closed). For an idle HTTP/1.1
connection that is ``get_extra_info("is_readable")``, and anyio answers it by building its
whole table of socket attributes, a ``getpeername`` call included, only to take the raw socket
out of it (encode/httpcore#928 is the upstream work on the pool). With the 16 connections of
``maxConcurrentPolls`` that was about 80 checks and a fifth of the CPU of a poll that found
nothing new. Here the raw socket is taken once per connection; the readability check itself
is httpcore's own (a zero-timeout ``poll``), so a connection the provider closed is still
found and replaced before it is used.

    install(client)   # a pooled httpx.AsyncClient, before its first request
"""

from __future__ import annotations

import select
import socket
from typing import TYPE_CHECKING, Any

import httpcore

if TYPE_CHECKING:
    import httpx

__all__ = ["install", "is_readable"]

_UNSET: Any = object()


def is_readable(sock: socket.socket | None) -> bool:
    """httpcore's ``is_socket_readable``: a socket gone (or without a descriptor) counts as
    readable, as if its next read returned the end of the stream."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    if not hasattr(select, "poll"):  # pragma: no cover - Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Stream(httpcore.AsyncNetworkStream):
    """A network stream that remembers its raw socket; everything else is the inner stream's."""

    __slots__ = ("_inner", "_socket")

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = _UNSET

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            if self._socket is _UNSET:  # (the same socket object for the connection's whole life)
                self._socket = self._inner.get_extra_info("socket")
            return is_readable(self._socket)
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def install(client: httpx.AsyncClient) -> bool:
    """Put the cheaper check into ``client``'s own connection pool; False (and nothing changed)
    when the client has no such pool: a custom transport (tests), a proxy, or an httpx or
    httpcore whose insides moved (then polling works as before, only dearer)."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if type(pool) is not httpcore.AsyncConnectionPool:
        return False
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.AsyncNetworkBackend):
        return False
    if not isinstance(backend, _Backend):
        pool._network_backend = _Backend(backend)  # noqa: SLF001 - see the module docstring
    return True
