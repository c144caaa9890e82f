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

from poller.daemon.httpserver import MAX_LINE_BYTES, HttpServer
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
async def serving(metrics: Any = None, health: Health = healthy, **options: Any) -> AsyncIterator[HttpServer]:
    server = HttpServer(metrics if metrics is not None else metrics_with_a_poll(), health, **options)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()


GET_HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


async def raw(server: HttpServer, data: bytes, *, eof: bool = False) -> bytes:
    """Send bytes, read until the server closes (send ``Connection: close`` with a good request)."""
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
            assert response.headers["server"] == "poller"  # no library name and version for scanners
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
            reply = await raw(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept-Encoding: gzip\r\n\r\n")
            head, _, body = reply.partition(b"\r\n\r\n")
            assert b"Content-Encoding: gzip" in head
            assert b"poller_polls_total" in gzip.decompress(body)
            refused = await raw(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept-Encoding: gzip;q=0\r\n\r\n")
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
            reply = await raw(server, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"\r\n\r\n")

    run(main)


def test_unknown_paths_and_methods() -> None:
    async def main() -> None:
        async with serving() as server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for path in ("/", "/metricsx", "/healthz/", "/favicon.ico"):
                assert (await client.get(path)).status_code == 404, path
            assert (await client.post("/nope", content=b"x")).status_code == 404
            response = await client.post("/metrics")
            assert response.status_code == 405 and set(response.headers["allow"].split(",")) == {"GET", "HEAD"}
            # a body is never read, yet the client still gets its reply (no reset)
            big = await raw(server, b"PUT /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 2_000_000)
            assert big.startswith(b"HTTP/1.1 405 ")

    run(main)


@pytest.mark.parametrize("request_bytes", [
    b"garbage\r\n\r\n",
    b"GET metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /metrics SPDY/3\r\n\r\n",
    b"get /metrics HTTP/1.1\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n\r\n",  # no Host
    b"GET /healthz HTTP/1.1\nHost: x\n\n",  # bare LF: refused by the strict parser (request smuggling)
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello
], ids=["word", "no-slash", "not-http", "lower-case", "bad-header", "no-host", "bare-lf", "tls"])
def test_garbage_gets_400_and_the_connection_is_closed(request_bytes: bytes, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with serving() as server:
            reply = await raw(server, request_bytes)  # (raw reads to the end: the server closed)
            assert reply.startswith((b"HTTP/1.0 400 Bad Request\r\n", b"HTTP/1.1 400 Bad Request\r\n"))
            # the server still answers afterwards
            assert (await raw(server, b"GET /healthz HTTP/1.0\r\n\r\n")).startswith(b"HTTP/1.0 200 OK")

    with caplog.at_level(logging.INFO):
        run(main)
    # anyone can send garbage: no error line, no traceback quoting the request (it may hold a token)
    assert [r for r in caplog.records if r.levelno >= logging.INFO or r.exc_info] == []


def test_a_request_cut_short_is_closed_without_an_answer() -> None:
    async def main() -> None:
        async with serving() as server:
            assert await raw(server, b"GET /metrics HTTP/1.1\r\nHost:", eof=True) == b""
            assert await raw(server, b"", eof=True) == b""
            assert (await raw(server, GET_HEALTHZ)).startswith(b"HTTP/1.1 200 OK")

    run(main)


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    async def main() -> None:
        async with serving() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                for _ in range(3):
                    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: 3" in head
                    assert await asyncio.wait_for(reader.readexactly(3), 5) == b"ok\n"
            finally:
                writer.close()
                await writer.wait_closed()

    run(main)


def test_an_oversized_request_head_gets_400() -> None:
    async def main() -> None:
        async with serving() as server:
            long_line = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * (MAX_LINE_BYTES + 10) + b"\r\n\r\n"
            long_path = b"GET /" + b"a" * (MAX_LINE_BYTES + 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            many_lines = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200 + b"\r\n"
            for request_bytes in (long_line, long_path, many_lines):
                assert (await raw(server, request_bytes)).startswith(b"HTTP/1.0 400 "), request_bytes[:30]
            # a flood of headers is cut off (answered or reset), never buffered whole
            with contextlib.suppress(ConnectionResetError):
                huge = await raw(server, b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 100_000 + b"\r\n")
                assert huge == b"" or huge.startswith(b"HTTP/1.0 400 ")
            assert (await raw(server, GET_HEALTHZ)).startswith(b"HTTP/1.1 200 OK")

    run(main)


def test_a_slow_request_head_is_closed_even_when_bytes_trickle_in() -> None:
    async def main() -> None:
        async with serving(timeout_s=0.3) as server:
            assert await raw(server, b"GET /metrics HTTP/1.1\r\n") == b""  # closed, nothing answered
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /metrics HTTP/1.1\r\n")
            closed = False
            try:
                for _ in range(100):  # a header byte every 0.05 s: 5 s in all, far past the 0.3 s allowed
                    writer.write(b"X")
                    await writer.drain()
                    with contextlib.suppress(asyncio.TimeoutError):
                        if await asyncio.wait_for(reader.read(1), 0.05) == b"":
                            closed = True
                            break
            except ConnectionError:
                closed = True
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            assert closed, "a connection trickling a header byte by byte was kept open"

    run(main)


def test_requests_are_served_concurrently() -> None:
    async def main() -> None:
        async with serving() as server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            responses = await asyncio.gather(*(client.get(p) for p in ["/metrics", "/healthz"] * 10))
            assert [r.status_code for r in responses] == [200] * 20

    run(main)


Idle = list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]


async def open_idle(server: HttpServer, n: int) -> Idle:
    writers = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHo")  # a head begun, never finished
        writers.append((reader, writer))
    assert server.runner is not None and server.runner.server is not None
    while len(server.runner.server.connections) < min(n, server.max_connections):
        await asyncio.sleep(0.01)
    return writers


async def close_all(writers: Idle) -> None:
    for _, writer in writers:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def test_a_full_listener_closes_its_oldest_idle_connection_for_a_new_one() -> None:
    async def main() -> None:
        async with serving(max_connections=2) as server:
            writers = await open_idle(server, 2)
            try:
                assert (await raw(server, GET_HEALTHZ)).startswith(b"HTTP/1.1 200 OK")
                assert server.evicted == 1 and server.refused == 0
                assert await asyncio.wait_for(writers[0][0].read(), 5) == b""  # the oldest one went
                writers[1][1].write(b"st: x\r\nConnection: close\r\n\r\n")  # the other one is still served
                assert (await asyncio.wait_for(writers[1][0].read(), 5)).startswith(b"HTTP/1.1 200 OK")
            finally:
                await close_all(writers)

    run(main)


def test_a_listener_full_of_requests_in_progress_answers_503() -> None:
    release = asyncio.Event()

    async def main() -> None:
        async def slow_health() -> tuple[bool, str]:
            await release.wait()
            return True, "ok"

        async with serving(health=slow_health, max_connections=2) as server, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            pending = [asyncio.create_task(client.get("/healthz")) for _ in range(2)]
            while len(server.busy) < 2:
                await asyncio.sleep(0.01)
            reply = await raw(server, GET_HEALTHZ)
            assert reply.startswith(b"HTTP/1.1 503 ") and reply.endswith(b"too many connections\n")
            assert server.refused == 1
            release.set()
            assert [r.status_code for r in await asyncio.gather(*pending)] == [200, 200]

    run(main)


def test_a_slowloris_of_200_connections_does_not_deny_healthz() -> None:
    async def main() -> None:
        async with serving(max_connections=64) as server, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            writers = await open_idle(server, 200)
            try:
                for _ in range(5):
                    assert (await client.get("/healthz")).status_code == 200
                    more = await open_idle(server, 20)
                    writers += more
                assert server.evicted >= 200 - 64
            finally:
                await close_all(writers)

    run(main)


def test_close_ends_idle_connections_and_stops_listening(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server = HttpServer(metrics_with_a_poll(), healthy)
        await server.start("127.0.0.1", 0)
        port = server.port
        assert repr(server) == f"<HttpServer http 127.0.0.1:{port}>"
        with pytest.raises(RuntimeError, match="already started"):
            await server.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metr")  # a request in progress
        await writer.drain()
        assert server.runner is not None and server.runner.server is not None
        while not server.runner.server.connections:
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
