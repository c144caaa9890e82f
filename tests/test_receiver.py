"""The test receiver itself: it must catch a bad signature (or the delivery tests could not fail),
answer as scripted, and stop promptly."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from poller.deliver.signing import headers
from tests.receiver import Receiver

KEY = "MySecretEventSignatureKey"
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
NID = "n-1"
BODY = b'{"id":"n-1","message":{"eventId":"n-1","raw":{"objectType":"contacts"},"events":[]}}'


def post(receiver: Receiver, body: bytes = BODY, *, key: str | None = KEY, nid: str = NID, ts: int | None = None,
         standard: bool = True, **extra: str) -> httpx.Response:
    hdrs = headers(nid, body, key, int(time.time()) if ts is None else ts, standard_webhooks=standard,
                   user_agent="poller/test")
    hdrs.update(extra)
    with httpx.Client(timeout=5) as client:
        return client.post(receiver.url("/hook"), content=body, headers=hdrs)


@pytest.mark.parametrize("key", [KEY, WHSEC], ids=["plain", "whsec"])
def test_a_correct_request_verifies(make_receiver: Callable[..., Receiver], key: str) -> None:
    receiver = make_receiver(key)
    assert post(receiver, key=key).status_code == 200
    receiver.assert_all_verified()
    (got,) = receiver.requests
    assert got.body == BODY and got.notification_id == NID and got.answer == 200 and got.path == "/hook"


@pytest.mark.parametrize("what", ["body", "key", "stale", "ids", "unsigned"])
def test_a_bad_request_is_caught(make_receiver: Callable[..., Receiver], what: str) -> None:
    receiver = make_receiver(KEY)
    if what == "body":
        hdrs = headers(NID, BODY, KEY, int(time.time()), standard_webhooks=True, user_agent="t")
        with httpx.Client() as client:
            client.post(receiver.url(), content=BODY.replace(b"contacts", b"contactz"), headers=hdrs)
    elif what == "key":
        post(receiver, key=KEY + "x")
    elif what == "stale":
        post(receiver, ts=int(time.time()) - 3600)
    elif what == "ids":
        post(receiver, nid="n-2")  # the headers' id is not the body's
    else:
        post(receiver, key=None)
    problems = receiver.problems()
    assert problems
    with pytest.raises(AssertionError):
        receiver.assert_all_verified()
    if what == "body":  # both signatures broke
        assert any("Elements-Webhook-Signature" in p for p in problems)
        assert any("Standard Webhooks" in p for p in problems)


def test_unsigned_and_standard_off(make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(None, standard_webhooks=False)
    post(receiver, key=None, standard=False)
    receiver.assert_all_verified()
    post(receiver, key=None, standard=True)  # webhook-* headers where none are expected
    assert receiver.problems()


def test_scripted_answers(make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    receiver.respond(503, times=2)
    receiver.respond(410, when=lambda r: r.notification_id == "gone", times=None)
    receiver.respond(429, retry_after=120)
    assert [post(receiver).status_code for _ in range(3)] == [503, 503, 429]
    assert post(receiver).status_code == 200
    gone = BODY.replace(b"n-1", b"gone")
    assert post(receiver, gone, nid="gone").status_code == 410
    assert post(receiver, gone, nid="gone").status_code == 410
    receiver.status = 500
    r = post(receiver)
    assert r.status_code == 500
    assert [r.answer for r in receiver.requests] == [503, 503, 429, 200, 410, 410, 500]
    receiver.assert_all_verified()


def test_retry_after_header_and_drop_and_delay(make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    receiver.respond(503, retry_after=30)
    assert post(receiver).headers["retry-after"] == "30"
    receiver.respond(drop=True)
    with pytest.raises(httpx.TransportError):
        post(receiver)
    assert receiver.requests[-1].answer is None
    receiver.respond(None, delay_s=0.2)
    start = time.monotonic()
    assert post(receiver).status_code == 200
    assert time.monotonic() - start >= 0.2


def test_stop_is_prompt_even_with_a_slow_request_and_idle_keepalive(make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    client = httpx.Client(timeout=60)
    idle = httpx.Client(timeout=60)
    try:
        idle.post(receiver.url(), content=b"{}")  # leaves an idle keep-alive connection
        hdrs = headers(NID, BODY, KEY, int(time.time()), standard_webhooks=True, user_agent="t")
        hanging = threading.Thread(target=lambda: _swallow(client, receiver.url(), hdrs), daemon=True)
        receiver.respond(None, delay_s=30)
        hanging.start()
        receiver.wait_for(2, timeout=5)
        start = time.monotonic()
        receiver.stop()
        assert time.monotonic() - start < 2
        hanging.join(5)
        assert not hanging.is_alive()
    finally:
        client.close()
        idle.close()


def _swallow(client: httpx.Client, url: str, hdrs: dict[str, str]) -> None:
    try:
        client.post(url, content=BODY, headers=hdrs)
    except httpx.TransportError:
        pass


def test_a_request_cut_off_mid_body_is_not_a_received_notification(make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    host, port = receiver.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":")
    deadline = time.monotonic() + 5
    while receiver.aborted == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert receiver.aborted == 1 and receiver.requests == []
