"""A webhook receiver: real HTTP/1.1 on 127.0.0.1, in a thread, for tests.

    receiver = Receiver(key="MySecret").start()             # or the make_receiver fixture
    receiver.url("/hook")                                  # the callback URL to configure
    receiver.respond(503, times=2)                         # the next two requests get a 503
    receiver.respond(410, when=lambda r: r.resource == "contacts")   # forever, for those only
    receiver.respond(429, retry_after=120)                 # adds ``Retry-After: 120``
    receiver.respond(None, delay_s=0.02, times=None)        # answer normally, but slowly
    receiver.respond(drop=True)                            # close the connection, no answer
    receiver.status = 503                                  # the answer when no rule matches (200)
    ...
    receiver.assert_all_verified()
    assert [r.notification_id for r in receiver.requests] == [...]
    receiver.stop()

It checks every request exactly as a receiver of poller's notifications would, and records what
it found (``Received.problems``; ``assert_all_verified`` raises when any request has one):

- ``Elements-Webhook-Signature: sha256=<base64 HMAC-SHA256(key UTF-8, body)>`` recomputed with
  plain :mod:`hmac` over the exact body bytes (with a key; without one the header must be absent);
- the Standard Webhooks headers with the ``standardwebhooks`` package, ``Webhook(secret).verify``:
  the secret is the key itself when it starts with ``whsec_``, else ``whsec_`` + base64 of the
  key's UTF-8 bytes (the package base64-decodes whatever follows the prefix). The package checks
  ``webhook-timestamp`` against ``datetime.now()`` with 5 minutes of tolerance; under freezegun
  that is the frozen clock, which tests keep equal to the ``now`` they pass the engine. With
  ``standard_webhooks=False`` no ``webhook-*`` header may be present;
- ``Elements-Webhook-Id`` present, equal to ``webhook-id`` (when sent), to the envelope ``id`` and
  to ``message.eventId``; the body is JSON.

Answers (``respond``): rules are tried in the order added; the first one that matches the request
(``when`` is a predicate on the :class:`Received` request; ``None`` matches all) and has ``times``
left (``None``: forever) answers it. A rule answers ``status`` (``None``: the default ``status``)
with ``body`` and ``headers``; ``delay_s`` waits first (a slow endpoint; ``stop()`` cuts the
wait short); ``drop=True`` closes the connection without answering (a network error for the
client). Without a matching rule, ``status`` (default 200) is answered.

Every complete request is recorded in ``requests`` (:class:`Received`: number, method, path, headers with
lower-case names, the exact body bytes, arrival time from ``time.time()`` — frozen time under
freezegun — and the answer given: a status, or ``None`` when dropped). A request whose body
never fully arrives (the sender died mid-send) is not one an application would see: it is only
counted, in ``aborted``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from standardwebhooks import Webhook

from tests.loopback import LoopbackHandler, LoopbackServer, LoopbackService

__all__ = ["Received", "Receiver", "Rule", "elements_signature", "standard_secret"]


def elements_signature(key: str, body: bytes) -> str:
    """What a Cloud Elements receiver recomputes: ``sha256=`` + base64 HMAC-SHA256(key UTF-8, body)."""
    return "sha256=" + base64.b64encode(hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()).decode()


def standard_secret(key: str) -> str:
    """The secret to give ``standardwebhooks.Webhook`` for a signature key (see the module docstring)."""
    if key.startswith("whsec_"):
        return key
    return "whsec_" + base64.b64encode(key.encode("utf-8")).decode("ascii")


@dataclass
class Rule:
    status: int | None = 503
    body: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False
    times: int | None = 1
    when: Callable[[Received], bool] | None = None
    used: int = 0

    def matches(self, request: Received) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        return self.when is None or bool(self.when(request))


@dataclass(frozen=True)
class Received:
    number: int  # 1-based, in arrival order
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes  # exactly as received
    at: float  # time.time() on arrival (the frozen clock under freezegun)
    problems: tuple[str, ...] = ()  # what verification found wrong; empty when all is well
    answer: int | None = None  # the status answered; None when the connection was dropped

    @cached_property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def notification_id(self) -> str | None:
        return self.headers.get("elements-webhook-id")

    @property
    def event_ids(self) -> list[str]:
        return [e["id"] for e in self.json["message"]["events"]]

    @property
    def resource(self) -> str:
        return self.json["message"]["raw"]["objectType"]

    @property
    def object_ids(self) -> list[str]:
        return [e["objectId"] for e in self.json["message"]["events"]]


class Receiver(LoopbackService):
    """See the module docstring. ``key``: the signature key the sender was configured with (``None``:
    expect unsigned requests); ``standard_webhooks``: whether ``webhook-*`` headers are expected."""

    def __init__(self, key: str | None = None, *, standard_webhooks: bool = True, status: int = 200) -> None:
        self.key = key
        self.standard_webhooks = standard_webhooks
        self.status = status
        self.rules: list[Rule] = []
        self.requests: list[Received] = []
        self.aborted = 0  # requests whose body never fully arrived (not in ``requests``)
        self.lock = threading.RLock()
        self.arrived = threading.Condition(self.lock)
        self._webhook = Webhook(standard_secret(key)) if key else None

    # -- set-up ---------------------------------------------------------------------------------
    def respond(self, status: int | None = 503, *, times: int | None = 1, when: Callable[[Received], bool] | None = None,
                body: bytes | str | None = None, headers: dict[str, str] | None = None,
                retry_after: float | str | None = None, delay_s: float = 0.0, drop: bool = False) -> Rule:
        hdrs = dict(headers or {})
        if retry_after is not None:
            hdrs["Retry-After"] = str(retry_after)
        rule = Rule(status, body, hdrs, delay_s, drop, times, when)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        with self.lock:
            self.rules.clear()

    # -- lifetime -------------------------------------------------------------------------------
    def url(self, path: str = "/hook") -> str:
        return self.base_url + "/" + path.lstrip("/")

    def _attach(self, server: LoopbackServer) -> None:
        server.receiver = self  # type: ignore[attr-defined]

    # -- reading what arrived -------------------------------------------------------------------
    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def delivered(self) -> list[Received]:
        """The requests answered with a 2xx."""
        return [r for r in self.snapshot() if r.answer is not None and 200 <= r.answer < 300]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least ``count`` requests arrived (real time; raises on timeout)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"only {len(self.requests)} of {count} requests arrived in {timeout} s")
                self.arrived.wait(left)
            return list(self.requests)

    def problems(self) -> list[str]:
        return [f"request {r.number} ({r.notification_id}): {p}" for r in self.snapshot() for p in r.problems]

    def assert_all_verified(self) -> None:
        problems = self.problems()
        assert not problems, "\n".join(problems[:20])

    # -- verification (called from handler threads) ---------------------------------------------
    def verify(self, headers: dict[str, str], body: bytes) -> list[str]:
        problems: list[str] = []
        nid = headers.get("elements-webhook-id")
        if not nid:
            problems.append("no Elements-Webhook-Id header")
        signature = headers.get("elements-webhook-signature")
        if self.key is None:
            if signature is not None:
                problems.append("Elements-Webhook-Signature sent without a key")
            if "webhook-signature" in headers:
                problems.append("webhook-signature sent without a key")
        elif signature is None:
            problems.append("no Elements-Webhook-Signature header")
        elif not hmac.compare_digest(signature.encode(), elements_signature(self.key, body).encode()):
            problems.append(f"Elements-Webhook-Signature {signature!r} does not match the body")
        if self.standard_webhooks:
            if headers.get("webhook-id") != nid:
                problems.append(f"webhook-id {headers.get('webhook-id')!r} != Elements-Webhook-Id {nid!r}")
            if not headers.get("webhook-timestamp", "").isdigit():
                problems.append(f"webhook-timestamp {headers.get('webhook-timestamp')!r} is not integer seconds")
            if self._webhook is not None:
                try:
                    self._webhook.verify(body, headers, json_parse=False)
                except Exception as exc:  # WebhookVerificationError, or a malformed header
                    problems.append(f"Standard Webhooks verification failed: {type(exc).__name__}: {exc}")
        else:
            extra = sorted(h for h in headers if h.startswith("webhook-"))
            if extra:
                problems.append(f"standard webhooks are off but {extra} were sent")
        try:
            data = json.loads(body)
        except ValueError as exc:
            problems.append(f"the body is not JSON: {exc}")
        else:
            if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
                problems.append("the body is not a notification envelope")
            else:
                if data.get("id") != nid:
                    problems.append(f"envelope id {data.get('id')!r} != Elements-Webhook-Id {nid!r}")
                if data["message"].get("eventId") != nid:
                    problems.append(f"message.eventId {data['message'].get('eventId')!r} != Elements-Webhook-Id {nid!r}")
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            problems.append(f"Content-Type {headers.get('content-type')!r}")
        return problems

    def _receive(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[Rule | None, int | None]:
        at = time.time()
        problems = tuple(self.verify(headers, body)) if method == "POST" else ("not a POST",)
        with self.lock:
            probe = Received(len(self.requests) + 1, method, path, headers, body, at, problems)
            rule = next((r for r in self.rules if r.matches(probe)), None)
            if rule is not None:
                rule.used += 1
                if rule.times is not None:
                    rule.times -= 1
            if rule is not None and rule.drop:
                answer = None
            elif rule is not None and rule.status is not None:
                answer = rule.status
            else:
                answer = self.status
            self.requests.append(Received(probe.number, method, path, headers, body, at, problems, answer))
            self.arrived.notify_all()
        return rule, answer


class _Server(LoopbackServer):
    receiver: Receiver


class _Handler(LoopbackHandler):
    server: _Server

    def _body(self) -> bytes | None:
        """The whole body, or None when the client went away before sending all of it."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline()
                if not line.endswith(b"\n"):
                    return None
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        line = self.rfile.readline()
                        if not line.endswith(b"\n"):
                            return None
                        if line in (b"\r\n", b"\n"):
                            return b"".join(chunks)
                chunk = self.rfile.read(size)
                if len(chunk) < size or not self.rfile.readline().endswith(b"\n"):
                    return None
                chunks.append(chunk)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def _serve(self, method: str) -> None:
        body = self._body()
        if body is None:  # an aborted request (the sender was killed mid-send): no application sees it
            self.close_connection = True
            with self.server.receiver.lock:
                self.server.receiver.aborted += 1
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        rule, answer = self.server.receiver._receive(method, self.path, headers, body)
        if rule is not None and rule.delay_s and self.server.stopping.wait(rule.delay_s):
            self.close_connection = True
            return
        if answer is None:  # drop
            self.close_connection = True
            return
        payload = rule.body if rule is not None and rule.body is not None else b'{"ok":true}' if answer < 300 else b""
        payload = payload.encode() if isinstance(payload, str) else payload
        self.send_response(answer)
        for name, value in (rule.headers if rule is not None else {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_GET(self) -> None:
        self._serve("GET")


Receiver.server_class, Receiver.handler_class = _Server, _Handler
