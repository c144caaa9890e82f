"""The inbound route over real HTTP on 127.0.0.1: aiohttp's listener, poller.inbound.routes, a real
state file. What the provider sees (status, body) and what is kept (or not)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from poller.config import load_config_text
from poller.daemon.httpserver import HttpServer
from poller.daemon.metrics import Metrics
from poller.inbound.receive import Receiver
from poller.inbound.routes import InboundRoutes
from poller.inbound.tokens import resolve_tokens
from state import StateError, Store, open_store
from tests.test_inbound import DATA, cm_body
from tests.test_metrics import value

NOW_MS = 1_700_000_000_000
TOKEN = "t0ken-for-the-tests-0123456789"
EVENT = {"Type": "Subscribe", "EmailAddress": "a@x", "Date": "2010-12-14 11:32:00"}
SECRET = "generic-element-signing-secret"


def config_text(**engine: Any) -> str:
    def instance(name: str, element: str, **conf: object) -> dict:
        return {"element": {"key": element}, "name": name, "configuration": {
            "event.notification.enabled": True, "event.notification.callback.url": "http://127.0.0.1:9/cb",
            "event.webhook.token": TOKEN, **conf}}
    return json.dumps({"engine": engine, "instances": [
        {**instance("cm", "campaignmonitor", **{"events.list.ids": "L1,96c0bbdaa54760c8d9e62a2b7ffa2e13"}), "id": "cm"},
        {**instance("mc", "mailchimp"), "id": "mc"},
        {**instance("shop", "shopify", **{"event.webhook.verify": {
            "type": "hmac", "header": "X-Signature", "algorithm": "sha256", "encoding": "hex", "prefix": "sha256=",
            "secret": SECRET}}), "id": "shop"},
    ]})


class Harness:
    def __init__(self, store: Store, server: HttpServer, metrics: Metrics) -> None:
        self.store, self.server, self.metrics = store, server, metrics
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}")

    def url(self, instance: str, token: str = TOKEN) -> str:
        return f"/webhooks/{instance}/{token}"

    async def raw(self, data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        try:
            writer.write(data)
            return await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def outcome_count(self, instance: str, outcome: str) -> float | None:
        return value(self.metrics, "poller_inbound_requests_total", instance=instance, outcome=outcome)


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, *, max_body: int = 4 * 1024 * 1024, body_timeout_s: float = 30.0,
                  store: Store | None = None) -> AsyncIterator[Harness]:
    config = load_config_text(config_text(), "config.json", {}).config
    with contextlib.ExitStack() as stack:
        if store is None:
            store = stack.enter_context(open_store(tmp_path / "poller.db"))
        receiver = Receiver(store, config)
        tokens = resolve_tokens(store, config, NOW_MS)
        metrics = Metrics()
        routes = InboundRoutes(lambda: receiver, lambda: tokens, lambda: max_body, lambda: NOW_MS,
                               observe=metrics.observe_inbound, body_timeout_s=body_timeout_s)
        server = HttpServer(routes=routes.add, name="webhooks")
        await server.start("127.0.0.1", 0)
        harness = Harness(store, server, metrics)
        try:
            yield harness
        finally:
            await harness.client.aclose()
            await server.close()


def run(tmp_path: Path, test: Callable[[Harness], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        async with serving(tmp_path, **options) as harness:
            await test(harness)
    asyncio.run(main())


def test_a_post_is_committed_before_the_200_and_a_retry_announces_nothing(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        first = await h.client.post(h.url("cm"), content=cm_body(EVENT), headers={"Content-Type": "application/json"})
        assert (first.status_code, first.text) == (200, "accepted\n")
        assert len(h.store.notifications()) == 1  # in the state file when the 200 arrived
        again = await h.client.post(h.url("cm"), content=cm_body(EVENT), headers={"Content-Type": "application/json"})
        assert (again.status_code, again.text) == (200, "duplicate\n")
        assert len(h.store.notifications()) == 1
        assert [r.outcome for r in h.store.inbound_requests()] == ["duplicate", "accepted"]
        assert h.outcome_count("cm", "accepted") == 1 and h.outcome_count("cm", "duplicate") == 1

    run(tmp_path, test)


def test_xml_and_chunked_bodies_are_read(tmp_path: Path) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        data = (DATA / "cm_subscribe.xml").read_bytes()
        for i in range(0, len(data), 7):
            yield data[i:i + 7]

    async def test(h: Harness) -> None:
        response = await h.client.post(h.url("cm"), content=chunks(), headers={"Content-Type": "application/xml"})
        assert response.status_code == 200, response.text
        [kept] = h.store.inbound_requests()
        assert kept.request.body == (DATA / "cm_subscribe.xml").read_bytes()

    run(tmp_path, test)


def test_a_wrong_token_or_instance_is_404_and_not_stored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def test(h: Harness) -> None:
        for path in (h.url("cm", "wrong-token-0123456789"), h.url("nobody"), h.url("cm", TOKEN + "x"),
                     "/webhooks/cm", "/webhooks/cm/" + TOKEN + "/more"):
            response = await h.client.post(path, content=cm_body(EVENT))
            assert response.status_code == 404, path
        assert h.store.inbound_requests() == []
        assert h.outcome_count("", "not_found") == 3  # no series for names nobody configured

    with caplog.at_level(logging.DEBUG):
        run(tmp_path, test)
    server_side = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records
                            if r.name.startswith(("poller", "aiohttp", "asyncio")))
    assert "inbound.refused" in server_side
    assert TOKEN not in server_side and "wrong-token" not in server_side


def test_mailchimp_validator_get_and_empty_post_get_200_and_store_nothing(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        get = await h.client.get(h.url("mc"))
        empty = await h.client.post(h.url("mc"), content=b"")
        assert (get.status_code, get.text, empty.status_code) == (200, "", 200)
        assert h.store.inbound_requests() == [] and h.store.notifications() == []
        form = (DATA / "mc_subscribe.form").read_bytes()
        posted = await h.client.post(h.url("mc"), content=form,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert posted.status_code == 200
        [note] = h.store.notifications()
        [event] = json.loads(note.notification.body)["message"]["events"]
        assert (event["eventType"], event["objectId"], event["hubKey"]) == ("CREATED", "8a25ff1d98", "mailchimp")

    run(tmp_path, test)


def test_a_get_handshake_is_200_for_every_kind_and_stores_nothing(tmp_path: Path) -> None:
    """DESIGN §10: GET on the same path is for handshakes, whichever provider (a signed generic
    element too: a GET carries no event to verify). A wrong token is still 404."""
    async def test(h: Harness) -> None:
        for instance in ("cm", "mc", "shop"):
            get = await h.client.get(h.url(instance))
            assert (get.status_code, get.text) == (200, ""), instance
            head = await h.client.head(h.url(instance))
            assert head.status_code == 200, instance
            assert (await h.client.get(h.url(instance, TOKEN[:-1] + "x"))).status_code == 404
        assert h.store.inbound_requests() == [] and h.store.notifications() == []

    run(tmp_path, test)


def test_an_oversized_body_is_413_before_it_is_read_even_with_expect_continue(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        big = cm_body(*[EVENT] * 50)
        assert len(big) > 1000
        response = await h.client.post(h.url("cm"), content=big)
        assert response.status_code == 413 and "engine.webhooks.maxBodyBytes" in response.text
        # Expect: 100-continue: refused before the body is sent (no 100 Continue first)
        head = (f"POST {h.url('cm')} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n"
                "Connection: close\r\n\r\n").encode()
        reply = await h.raw(head)
        assert reply.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in reply
        # a small one with Expect gets its 100 Continue, then the answer
        small = cm_body(EVENT)
        reader, writer = await asyncio.open_connection("127.0.0.1", h.server.port)
        writer.write((f"POST {h.url('cm')} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(small)}\r\n"
                      "Content-Type: application/json\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").encode())
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(small)
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200 ")
        writer.close()

        # chunked, so no Content-Length: cut off once the limit is passed
        async def endless() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b"x" * 500

        chunked = await h.client.post(h.url("cm"), content=endless())
        assert chunked.status_code == 413
        assert [r.outcome for r in h.store.inbound_requests()] == ["accepted"]
        assert h.outcome_count("cm", "too_large") == 3

    run(tmp_path, test, max_body=1000)


def test_a_compressed_body_is_415(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        response = await h.client.post(h.url("cm"), content=b"\x1f\x8b...", headers={"Content-Encoding": "gzip"})
        assert response.status_code == 415 and "Content-Encoding gzip" in response.text
        assert h.store.inbound_requests() == []

    run(tmp_path, test)


def test_a_body_that_never_finishes_is_408(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", h.server.port)
        writer.write((f"POST {h.url('cm')} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{").encode())
        reply = await asyncio.wait_for(reader.read(), 5)
        assert reply.startswith(b"HTTP/1.1 408 ")
        writer.close()
        assert h.store.inbound_requests() == []

    run(tmp_path, test, body_timeout_s=0.2)


@pytest.mark.parametrize("send", [
    b"Content-Length: 1000\r\n\r\n0123456789",  # hangs up part-way: our handler sees it
    b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nzz\r\n",  # bad framing: aiohttp answers 400 itself
    b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nabc",
], ids=["hung-up", "bad-chunk", "huge-chunk"])
def test_a_sender_that_breaks_off_its_body_gets_one_line_not_a_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, send: bytes) -> None:
    """(aiohttp logged `Error handling request` at ERROR with a 25-line traceback for a sender
    that hung up mid-body: anyone can flood the log that way.)"""
    caplog.set_level(logging.DEBUG)
    hung_up = b"Content-Length" in send

    async def test(h: Harness) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", h.server.port)
        writer.write(f"POST {h.url('cm')} HTTP/1.1\r\nHost: x\r\n".encode() + send)
        await writer.drain()
        if hung_up:
            writer.close()
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await asyncio.wait_for(reader.read(), 5)
        writer.close()
        for _ in range(100):  # (the handler sees the close a moment later)
            if h.outcome_count("cm", "aborted") or not hung_up:
                break
            await asyncio.sleep(0.02)
        assert h.outcome_count("cm", "aborted") == (1 if hung_up else None)
        assert h.store.inbound_requests() == []

    run(tmp_path, test)
    refused = [(r.levelno, r.outcome, r.reason) for r in caplog.records  # type: ignore[attr-defined]
               if r.getMessage() == "inbound.refused"]
    assert refused == ([(logging.WARNING, "aborted", "the connection was closed before the whole body came")]
                       if hung_up else [])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], \
        [r.getMessage() for r in caplog.records]


def test_an_unreadable_body_is_kept_as_rejected_with_its_reason(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        response = await h.client.post(h.url("cm"), content=b"{not json", headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        [kept] = h.store.inbound_requests()
        assert kept.outcome == "rejected" and kept.reason == response.text.strip()

    run(tmp_path, test)


def test_a_batch_with_an_event_left_out_is_accepted_and_says_so(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps({"ListID": "L1", "Events": [
        {"Type": "Subscribe", "EmailAddress": "a@x", "Date": "2010-12-14 11:32:00"},
        {"Type": "Subscribe", "Date": "2010-12-14 11:32:00"}]}).encode()

    async def test(h: Harness) -> None:
        response = await h.client.post(h.url("cm"), content=body, headers={"Content-Type": "application/json"})
        assert (response.status_code, response.text) == (200, "accepted\n")
        [kept] = h.store.inbound_requests()
        assert (kept.outcome, kept.events) == ("accepted", 1)
        assert kept.reason == "Events[1] is CREATED but has no EmailAddress (the record's id): left out"
        [note] = h.store.notifications()
        assert [e["objectId"] for e in json.loads(note.notification.body)["message"]["events"]] == ["a@x"]

    with caplog.at_level(logging.INFO):
        run(tmp_path, test)
    [line] = [r for r in caplog.records if r.getMessage() == "inbound.accepted"]
    assert line.levelno == logging.WARNING and "left out" in line.__dict__["problems"]


def test_a_failed_commit_answers_503_with_retry_after(tmp_path: Path) -> None:
    class Failing(Store):
        def record_inbound_many(self, *args: Any, **kwargs: Any) -> Any:
            raise StateError("disk I/O error")

    async def main() -> None:
        with open_store(tmp_path / "poller.db") as real:
            real.__class__ = Failing
            async with serving(tmp_path, store=real) as h:
                response = await h.client.post(h.url("cm"), content=cm_body(EVENT))
                assert response.status_code == 503 and response.headers["retry-after"] == "30"
                real.__class__ = Store
                assert real.notifications() == []

    asyncio.run(main())


def test_a_bad_signature_is_401_and_kept_without_its_secret_header(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps([{"id": "o1", "type": "created", "date": "2024-01-02T03:04:05Z"}]).encode()
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()

    async def test(h: Harness) -> None:
        json_type = {"Content-Type": "application/json"}
        for signature in (None, "sha256=" + "0" * 64, good[:-1] + ("0" if good[-1] != "0" else "1")):
            headers = dict(json_type, **({"X-Signature": signature} if signature else {}))
            response = await h.client.post(h.url("shop"), content=body, headers=headers)
            assert response.status_code == 401, signature
        accepted = await h.client.post(h.url("shop"), content=body, headers=dict(json_type, **{"X-Signature": good}))
        assert accepted.status_code == 200, accepted.text
        kept = h.store.inbound_requests()
        assert [(r.outcome, r.status) for r in kept] == [("accepted", 200)] + [("rejected", 401)] * 3
        [note] = h.store.notifications()
        [event] = json.loads(note.notification.body)["message"]["events"]
        assert (event["eventType"], event["objectId"]) == ("CREATED", "o1")
        assert h.outcome_count("shop", "unauthorized") == 3

    with caplog.at_level(logging.DEBUG):
        run(tmp_path, test)
    server_side = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records if r.name.startswith("poller"))
    assert SECRET not in server_side and good not in server_side


def test_a_slowloris_of_200_connections_does_not_deny_the_webhook_route(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        h.server.max_connections = 64
        slow = []
        try:
            for _ in range(200):
                reader, writer = await asyncio.open_connection("127.0.0.1", h.server.port)
                writer.write(f"POST {h.url('cm')} HTTP/1.1\r\nHost: x\r\nContent-Le".encode())
                slow.append(writer)
            for i in range(5):
                response = await h.client.post(h.url("cm"), content=cm_body({**EVENT, "EmailAddress": f"u{i}@x"}),
                                               headers={"Content-Type": "application/json"})
                assert response.status_code == 200
            assert h.server.evicted >= 200 - 64
        finally:
            for writer in slow:
                writer.close()
        assert len(h.store.notifications()) == 5

    run(tmp_path, test)
