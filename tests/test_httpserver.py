"""poller.daemon.httpserver: real HTTP over 127.0.0.1, with httpx and with raw sockets for what httpx won't send."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from poller.daemon.httpserver import MetricsServer
from poller.daemon.metrics import Metrics
from poller.poll.engine import PollOutcome

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
Health = Callable[[], Any]


def healthy() -> tuple[bool, str]:
    return True, "ok"


def metrics_with_a_poll() -> Metrics:
    metrics = Metrics()
    metrics.observe_poll("acme", "contacts", PollOutcome("acme/contacts", records=3, duration_s=0.2), NOW)
    return metrics


@contextlib.asynccontextmanager
async def serving(metrics: Any = None, health: Health = healthy, **options: Any) -> AsyncIterator[MetricsServer]:
    server = MetricsServer(metrics if metrics is not None else metrics_with_a_poll(), health, **options)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()


async def raw(server: MetricsServer, data: bytes, *, eof: bool = False) -> bytes:
    """Send bytes, read the whole reply (the server closes after each response)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(data)
        if eof:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())


def test_metrics_are_served_in_the_text_format() -> None:
    async def main() -> None:
        async with serving() as server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            response = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            assert response.headers["connection"] == "close"
            assert "content-encoding" not in response.headers
            families = {f.name: f for f in text_string_to_metric_families(response.text)}
            [ok] = [s for s in families["poller_polls"].samples if s.labels["outcome"] == "ok"]
            assert ok.labels == {"instance": "acme", "resource": "contacts", "outcome": "ok"} and ok.value == 1
            with_query = await client.get("/metrics?name[]=x")
            assert with_query.status_code == 200 and "poller_polls_total" in with_query.text

    run(main)


def test_metrics_are_gzipped_when_the_client_accepts_it() -> None:
    async def main() -> None:
        async with serving() as server:
            reply = await raw(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
            head, _, body = reply.partition(b"\r\n\r\n")
            assert b"Content-Encoding: gzip" in head
            assert b"poller_polls_total" in gzip.decompress(body)
            refused = await raw(server, b"GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip;q=0\r\n\r\n")
            assert b"Content-Encoding" not in refused.partition(b"\r\n\r\n")[0]

    run(main)


def test_metrics_render_off_the_event_loop_and_health_on_it() -> None:
    threads: dict[str, int] = {}

    class Recording(Metrics):
        def render(self) -> bytes:
            threads["render"] = threading.get_ident()
            return super().render()

    def health() -> tuple[bool, str]:
        threads["health"] = threading.get_ident()
        return True, "ok"

    async def main() -> None:
        async with serving(Recording(), health) as server, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/metrics")).status_code == 200
            assert (await client.get("/healthz")).status_code == 200

    run(main)
    assert threads["health"] == threading.get_ident()  # the store's connection belongs to this thread
    assert threads["render"] != threading.get_ident()


@pytest.mark.parametrize(("health", "status", "body"), [
    (lambda: (True, "scheduler running"), 200, "ok\n"),
    (lambda: (False, "the scheduler is not running"), 503, "the scheduler is not running\n"),
    (lambda: 1 / 0, 503, "health check failed: ZeroDivisionError: division by zero\n"),
], ids=["healthy", "unhealthy", "raises"])
def test_healthz(health: Health, status: int, body: str) -> None:
    async def main() -> None:
        async with serving(health=health) as server, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            response = await client.get("/healthz")
            assert (response.status_code, response.text) == (status, body)
            assert response.headers["content-type"] == "text/plain; charset=utf-8"

    run(main)


def test_healthz_may_be_a_coroutine() -> None:
    async def health() -> tuple[bool, str]:
        await asyncio.sleep(0)
        return False, "the state file cannot be written: disk I/O error"

    async def main() -> None:
        async with serving(health=health) as server, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            response = await client.get("/healthz")
            assert (response.status_code, response.text) == (503, "the state file cannot be written: disk I/O error\n")

    run(main)


def test_head_sends_the_headers_of_get_without_a_body() -> None:
    async def main() -> None:
        async with serving() as server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            identity = {"Accept-Encoding": "identity"}
            get = await client.get("/metrics", headers=identity)
            head = await client.head("/metrics", headers=identity)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(get.content))
            assert head.headers["content-type"] == get.headers["content-type"]
            reply = await raw(server, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"\r\n\r\n")

    run(main)


def test_unknown_paths_and_methods() -> None:
    async def main() -> None:
        async with serving() as server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for path in ("/", "/metricsx", "/healthz/", "/favicon.ico"):
                assert (await client.get(path)).status_code == 404, path
            assert (await client.post("/nope", content=b"x")).status_code == 404
            response = await client.post("/metrics")
            assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"
            # a body is never read, yet the client still gets its reply (no reset)
            big = await raw(server, b"PUT /healthz HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 2_000_000)
            assert big.startswith(b"HTTP/1.1 405 ")

    run(main)


@pytest.mark.parametrize("request_bytes", [
    b"garbage\r\n\r\n",
    b"GET /metrics\r\n\r\n",
    b"GET metrics HTTP/1.1\r\n\r\n",
    b"GET /metrics SPDY/3\r\n\r\n",
    b"get /metrics HTTP/1.1\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
    b"\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello
], ids=["word", "no-version", "no-slash", "not-http", "lower-case", "bad-header", "empty", "tls"])
def test_garbage_gets_400_and_the_connection_is_closed(request_bytes: bytes) -> None:
    async def main() -> None:
        async with serving() as server:
            reply = await raw(server, request_bytes)
            assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
            assert b"Connection: close\r\n" in reply
            # the server still answers afterwards
            assert (await raw(server, b"GET /healthz HTTP/1.0\r\n\r\n")).startswith(b"HTTP/1.1 200 OK")

    run(main)


def test_a_request_cut_short_gets_400() -> None:
    async def main() -> None:
        async with serving() as server:
            assert (await raw(server, b"GET /metrics HTTP/1.1\r\nHost:", eof=True)).startswith(b"HTTP/1.1 400 ")
            assert (await raw(server, b"", eof=True)).startswith(b"HTTP/1.1 400 ")

    run(main)


def test_bare_lf_line_endings_are_accepted() -> None:
    async def main() -> None:
        async with serving() as server:
            assert (await raw(server, b"GET /healthz HTTP/1.1\nHost: x\n\n")).startswith(b"HTTP/1.1 200 OK")

    run(main)


def test_an_oversized_request_head_gets_431() -> None:
    async def main() -> None:
        async with serving(max_request_bytes=1024) as server:
            long_line = b"GET /metrics HTTP/1.1\r\nX-Long: " + b"a" * 5000 + b"\r\n\r\n"
            many_lines = b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n"
            huge = b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 100_000 + b"\r\n"
            for request_bytes in (long_line, many_lines, huge):
                assert (await raw(server, request_bytes)).startswith(b"HTTP/1.1 431 ")

    run(main)


def test_a_slow_request_head_gets_408() -> None:
    async def main() -> None:
        async with serving(timeout_s=0.2) as server:
            assert (await raw(server, b"GET /metrics HTTP/1.1\r\n")).startswith(b"HTTP/1.1 408 ")

    run(main)


def test_requests_are_served_concurrently() -> None:
    async def main() -> None:
        async with serving() as server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            responses = await asyncio.gather(*(client.get(p) for p in ["/metrics", "/healthz"] * 10))
            assert [r.status_code for r in responses] == [200] * 20

    run(main)


def test_too_many_connections_get_503() -> None:
    async def main() -> None:
        async with serving(max_connections=1) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)  # says nothing
            try:
                while not server._handlers:
                    await asyncio.sleep(0.01)
                assert (await raw(server, b"GET /healthz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 503 ")
            finally:
                writer.close()
                await writer.wait_closed()

    run(main)


def test_close_ends_idle_connections_and_stops_listening(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server = MetricsServer(metrics_with_a_poll(), healthy)
        await server.start("127.0.0.1", 0)
        port = server.port
        assert repr(server) == f"<MetricsServer 127.0.0.1:{port}>"
        with pytest.raises(RuntimeError, match="already started"):
            await server.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metr")  # a request in progress
        await writer.drain()
        while not server._handlers:
            await asyncio.sleep(0.01)
        await asyncio.wait_for(server.close(), 5)
        # closed without a reply: an end of stream, or a reset when the request was still unread
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        with contextlib.suppress(ConnectionResetError):
            await writer.wait_closed()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        await server.close()  # twice is fine
        with pytest.raises(RuntimeError, match="not listening"):
            server.port

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        run(main)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_failing_render_gets_500() -> None:
    class Broken:
        def render(self) -> bytes:
            raise RuntimeError("boom")

    async def main() -> None:
        async with serving(Broken()) as server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/metrics")).status_code == 500
            assert (await client.get("/healthz")).status_code == 200

    run(main)
