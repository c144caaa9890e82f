"""poller.sockcheck: the polling client's cheaper idle-connection check, on a real loopback server."""

from __future__ import annotations

import asyncio
import socket
from contextlib import AsyncExitStack

import httpcore
import httpx
from httpcore._utils import is_socket_readable  # the reference: the check it replaces

from poller import sockcheck
from poller.httpclient import HttpClients


class _Server:
    """HTTP/1.1 on 127.0.0.1 with keep-alive; counts connections and can drop the idle ones."""

    def __init__(self) -> None:
        self.opened = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        self.writers.append(writer)
        try:
            while (await reader.readuntil(b"\r\n\r\n")):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def drop_connections(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        await asyncio.sleep(0.05)  # the FINs reach the client's sockets

    async def stop(self) -> None:
        assert self.server is not None
        await self.drop_connections()
        self.server.close()
        await self.server.wait_closed()


def test_the_polling_client_reuses_connections_and_replaces_one_the_provider_closed() -> None:
    async def main() -> tuple[bool, int, int, list[int]]:
        server = _Server()
        base = await server.start()
        try:
            async with AsyncExitStack() as stack:
                client = await HttpClients(stack).get(True)
                installed = type(client._transport._pool._network_backend) is sockcheck._Backend  # type: ignore[attr-defined]
                statuses = [(await client.get(f"{base}/a")).status_code for _ in range(3)]
                after_reuse = server.opened
                await server.drop_connections()  # idle in the pool, closed by the provider
                statuses.append((await client.get(f"{base}/b")).status_code)  # found closed: a new one
                return installed, after_reuse, server.opened, statuses
        finally:
            await server.stop()

    assert asyncio.run(main()) == (True, 1, 2, [200, 200, 200, 200])


def test_is_readable_answers_as_httpcore_does() -> None:
    a, b = socket.socketpair()
    try:
        assert sockcheck.is_readable(a) is is_socket_readable(a) is False  # idle, open
        b.sendall(b"x")
        assert sockcheck.is_readable(a) is is_socket_readable(a) is True
        a.recv(1)
        b.close()
        assert sockcheck.is_readable(a) is is_socket_readable(a) is True  # the end of the stream
    finally:
        a.close()
        b.close()
    assert sockcheck.is_readable(a) is is_socket_readable(a) is True  # closed: no descriptor
    assert sockcheck.is_readable(None) is True


def test_a_client_without_its_own_pool_is_left_alone() -> None:
    async def main() -> tuple[bool, bool]:
        mocked = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
        stock = httpx.AsyncClient()
        try:
            first = sockcheck.install(stock)
            again = sockcheck.install(stock)  # (wrapped once, not twice)
            inner = stock._transport._pool._network_backend._inner  # type: ignore[attr-defined]
            assert not isinstance(inner, sockcheck._Backend)
            assert isinstance(inner, httpcore.AsyncNetworkBackend)
            return sockcheck.install(mocked), first and again
        finally:
            await mocked.aclose()
            await stock.aclose()

    assert asyncio.run(main()) == (False, True)
