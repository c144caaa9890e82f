"""poller.deliver.client: delivery's aiohttp session behaves as the httpx client did (real HTTP
to loopback servers): no redirect followed, no cookie kept, certifi's trust or SSL_CERT_FILE,
the environment's proxies and NO_PROXY, a long answer left unread, an invalid URL a dead letter.

tests/data/tls holds a self-signed certificate for 127.0.0.1 (valid until 2126), made with
``openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 36500
-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1,DNS:localhost``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from aiohttp import web

from poller.config import Config, load_config_text
from poller.deliver.client import delivery_session, proxy_for
from poller.deliver.engine import deliver_due
from poller.deliver.sender import DeliveryReport, DeliveryResult, Sender
from state import Notification, Pending, open_store
from tests.receiver import Receiver

TLS_DIR = Path(__file__).parent / "data" / "tls"
KEY = "client-secret"


def config(url: str, **delivery: object) -> Config:
    return load_config_text(json.dumps({"engine": {"delivery": delivery}, "instances": [
        {"id": "crm", "element": {"key": "crm"}, "configuration": {
            "event.notification.enabled": True, "event.notification.callback.url": url,
            "event.notification.signature.key": KEY,
            "event.poller.configuration": {"c": {"url": "http://127.0.0.1:9/c", "idField": "id"}}}}]}),
        "c.json", {}).config


def deliver(tmp_path: Path, url: str, count: int = 1, *, tls: ssl.SSLContext | None = None) -> DeliveryReport:
    """``count`` notifications of one resource written to a fresh outbox, then one delivery pass."""
    conf = config(url)
    with open_store(tmp_path / "p.db") as store:
        store.record_page("crm/c", "crm", "c", [
            Notification(f"n{i}", "crm/c", "crm", "c", url, 1, b'{"n": %d}' % i, (f"e{i}",), i) for i in range(count)],
            [])

        async def main() -> DeliveryReport:
            async with delivery_session(tls=tls) as client:
                return await deliver_due(client, store, conf, lambda: datetime.now(timezone.utc))

        return asyncio.run(main())


def test_a_redirect_is_not_followed_it_is_a_failed_attempt(tmp_path: Path,
                                                            make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    receiver.respond(302, headers={"Location": receiver.url("/elsewhere")})
    report = deliver(tmp_path, receiver.url("/hook"))
    assert [(r.ok, r.status_code, r.error) for r in report.results] == [(False, 302, "HTTP 302")]
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_no_cookie_is_kept_from_one_notification_to_the_next(tmp_path: Path,
                                                             make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    receiver.respond(200, headers={"Set-Cookie": "session=abc; Path=/"}, times=1)
    # (by name: a cookie jar takes no cookie from an IP address)
    report = deliver(tmp_path, receiver.url("/hook").replace("127.0.0.1", "localhost"), count=3)
    assert report.ok and len(receiver.requests) == 3
    assert all("cookie" not in r.headers for r in receiver.requests), [r.headers for r in receiver.requests]


def test_a_long_answer_is_not_read_whole_and_the_notification_is_delivered(
        tmp_path: Path, make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    receiver.respond(200, body=b"x" * (1 << 20), times=1)  # 1 MiB: more than is read of an answer
    report = deliver(tmp_path, receiver.url("/hook"), count=2)
    assert [r.ok for r in report.results] == [True, True]
    assert len(receiver.requests) == 2


def send_one_to(url: str) -> DeliveryResult:
    """One attempt at a notification whose stored callback URL is ``url`` (an older file's)."""
    conf = config("http://127.0.0.1:9/hook")

    async def main() -> DeliveryResult:
        async with delivery_session() as client:
            sender = Sender(client, conf, lambda: datetime.now(timezone.utc), lambda: 0.5)
            result, _ = await sender.send(Pending(1, "n0", "crm/c", "crm", url, 0, 0, None), b"{}")
            return result

    return asyncio.run(main())


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "http:///hook", "http://[::1/hook"])
def test_an_invalid_callback_url_makes_a_dead_letter_at_once(url: str) -> None:
    """(The configuration refuses such URLs; one can still be in the outbox of an older file.)"""
    result = send_one_to(url)
    assert result.dead and (result.error or "").startswith("invalid callback URL"), result


@pytest.mark.parametrize("url", ["http://user:S3CRETPW@127.0.0.1:1\\@evil/hook", "http://user:S3CRETPW@127.1:1/hook",
                                 "http://user:S3CRETPW@[::1/hook"])
def test_the_error_of_an_unsendable_callback_url_does_not_show_its_password(url: str) -> None:
    """The error quotes the URL: masked, also when it does not parse (this one's error was not)."""
    result = send_one_to(url)
    assert result.dead and result.error is not None and "user:***@" in result.error + result.url, result
    assert "S3CRETPW" not in result.error and "S3CRETPW" not in result.url, result


def _https_server(ctx: ssl.SSLContext, seen: list[str]) -> Callable[[], object]:
    async def hook(request: web.Request) -> web.Response:
        seen.append(request.path)
        await request.read()
        return web.Response(status=204)

    async def start() -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
        return runner, runner.addresses[0][1]

    return start


@pytest.mark.parametrize("trusted", [False, True], ids=["certifi-only", "SSL_CERT_FILE"])
def test_tls_is_verified_against_certifi_or_ssl_cert_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          trusted: bool) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(TLS_DIR / "cert.pem", TLS_DIR / "key.pem")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(TLS_DIR / "cert.pem"))
    else:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    seen: list[str] = []
    start = _https_server(server_ctx, seen)

    async def main() -> DeliveryReport:
        runner, port = await start()  # type: ignore[misc]
        try:
            url = f"https://127.0.0.1:{port}/hook"
            conf = config(url)
            with open_store(tmp_path / "p.db") as store:
                store.record_page("crm/c", "crm", "c", [Notification("n0", "crm/c", "crm", "c", url, 1, b"{}", ("e",), 0)],
                                  [])
                async with delivery_session() as client:
                    return await deliver_due(client, store, conf, lambda: datetime.now(timezone.utc))
        finally:
            await runner.cleanup()

    report = asyncio.run(main())
    [result] = report.results
    if trusted:
        assert result.ok and seen == ["/hook"], result
    else:
        assert not result.ok and seen == [], result
        assert "certificate" in (result.error or "").lower(), result.error


def test_the_environments_proxy_is_used_and_no_proxy_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                make_receiver: Callable[..., Receiver]) -> None:
    proxy, receiver = make_receiver(KEY), make_receiver(KEY)
    monkeypatch.setenv("HTTP_PROXY", proxy.url(""))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    target = "http://receiver.invalid/hook"  # resolvable by nobody: only the proxy can take it
    (tmp_path / "a").mkdir()
    report = deliver(tmp_path / "a", target)
    assert report.ok, report.results
    [got] = proxy.requests
    assert got.path == target and got.headers["host"] == "receiver.invalid"
    proxy_for.cache_clear()

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    (tmp_path / "b").mkdir()
    report = deliver(tmp_path / "b", receiver.url("/hook"))
    assert report.ok and len(receiver.requests) == 1 and len(proxy.requests) == 1


def send_to_raw_receiver(answer: bytes, timeout_s: float = 1.0, *, then_close: bool = False) -> DeliveryResult:
    """One attempt against a receiver that reads the request, writes ``answer`` and then holds
    the connection open (whatever the answer lacks never comes), or closes it (``then_close``)."""
    async def main() -> DeliveryResult:
        done = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            writer.write(answer)
            await writer.drain()
            if not then_close:
                await done.wait()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
        conf = config(url, timeoutSeconds=timeout_s)
        try:
            async with delivery_session() as client:
                sender = Sender(client, conf, lambda: datetime.now(timezone.utc), lambda: 0.5)
                result, _ = await sender.send(Pending(1, "n0", "crm/c", "crm", url, 0, 0, None), b"{}")
        finally:
            done.set()
            server.close()
            await server.wait_closed()
        return result

    return asyncio.run(main())


@pytest.mark.parametrize("status, error", [(200, None), (503, "HTTP 503")])
def test_a_status_that_came_in_time_stands_when_the_rest_of_the_answer_is_slow(status: int, error: str | None) -> None:
    """DESIGN §7: any 2xx is success. A 200 whose two bytes of body came after timeoutSeconds
    was recorded as "no answer within 1 s" and sent again."""
    result = send_to_raw_receiver(b"HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\n" % status)
    assert (result.ok, result.status_code, result.error) == (error is None, status, error), result


def test_a_2xx_whose_body_trickles_is_not_waited_for_the_whole_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """(A receiver streaming its body after a 200 held each attempt for timeoutSeconds: one
    notification per 15 s to that endpoint, and a stop cancelled attempts already answered.)"""
    from poller.deliver import sender

    monkeypatch.setattr(sender, "DRAIN_S", 0.05)
    result = send_to_raw_receiver(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n",
                                  timeout_s=60)
    assert (result.ok, result.status_code) == (True, 200), result
    assert result.duration_ms < 30_000  # (the drain's 0.05 s, not the attempt's 60 s)


def test_an_answer_cut_off_in_its_headers_says_so_in_words() -> None:
    """(lastError was aiohttp's repr: "ServerDisconnectedError: <RawResponseMessage(... code=200 ...")"""
    result = send_to_raw_receiver(b"HTTP/1.1 200 OK\r\nContent-Le", then_close=True)
    assert not result.ok and result.error == ("the connection was closed before the answer's status and "
                                              "headers were complete"), result


def test_an_answer_that_is_not_http_is_said_to_be_not_a_400() -> None:
    """aiohttp reports a bad status line as a ClientResponseError with its own code 400, which
    the receiver never sent: the error read "ClientResponseError: 400, message=...". """
    result = send_to_raw_receiver(b"SSH-2.0-OpenSSH_9.6\r\n")
    assert not result.ok and result.status_code is None, result
    assert (result.error or "").startswith("the answer is not valid HTTP: "), result
    assert "400" not in (result.error or ""), result
