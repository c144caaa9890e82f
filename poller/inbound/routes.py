"""``POST /webhooks/{instanceId}/{token}`` (and ``GET`` for handshakes) on aiohttp (DESIGN §10).

The token is checked first (404 and nothing stored when it is wrong), then the size (413, from
``Content-Length`` before any byte of the body is read, also for ``Expect: 100-continue``),
then the body is read within a deadline and handed to :class:`~poller.inbound.receive.Receiver`,
which commits before this answers. Logs name the instance, the outcome and the reason; never
the token, a secret or the body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from poller.inbound.receive import Answer, Receiver
from poller.inbound.tokens import token_matches

__all__ = ["InboundRoutes", "BODY_TIMEOUT_S"]

log = logging.getLogger(__name__)
BODY_TIMEOUT_S = 30.0  # to send the whole body, once the head is in
PATH = "/webhooks/{instance}/{token}"


class _TooLarge(Exception):
    pass


class InboundRoutes:
    """The inbound routes of one daemon. ``receiver()``, ``tokens()`` and ``max_body_bytes()`` are
    read per request, so a reload applies to the next one."""

    def __init__(self, receiver: Callable[[], Receiver], tokens: Callable[[], Mapping[str, str]],
                 max_body_bytes: Callable[[], int], clock_ms: Callable[[], int], *,
                 observe: Callable[[str, str, Mapping[str, int], float], None] | None = None,
                 body_timeout_s: float = BODY_TIMEOUT_S) -> None:
        self.receiver = receiver
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes
        self.clock_ms = clock_ms
        self.observe = observe
        self.body_timeout_s = body_timeout_s

    def add(self, app: web.Application) -> None:
        resource = app.router.add_resource(PATH)
        resource.add_route("POST", self.handle, expect_handler=self._expect)
        resource.add_route("GET", self.handle)  # handshakes (DESIGN §10)
        resource.add_route("HEAD", self.handle)  # (a resource's GET route does not take HEAD by itself)

    async def _expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: refuse a wrong token or an oversized body before it is sent."""
        if request.headers.get("Expect", "").lower() != "100-continue":
            return web.HTTPExpectationFailed(text="unknown Expect header\n")
        refusal = self._precheck(request, time.perf_counter())
        if refusal is not None:
            return refusal
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    def _instance_of(self, request: web.Request):  # -> InstanceConfig | None
        instance_id = request.match_info["instance"]
        instance = self.receiver().instances.get(instance_id)
        expected = self.tokens().get(instance_id) if instance is not None else None
        return instance if token_matches(expected, request.match_info["token"]) else None

    def _precheck(self, request: web.Request, started: float) -> web.Response | None:
        instance = self._instance_of(request)
        if instance is None:
            return self._answer("", Answer(404, "not_found", "not found"), started)
        length = request.content_length
        limit = self.max_body_bytes()
        if length is not None and length > limit:
            return self._answer(instance.id, Answer(413, "too_large", f"the body is larger than {limit} bytes "
                                                                      "(engine.webhooks.maxBodyBytes)"), started)
        coding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if coding not in ("", "identity"):
            return self._answer(instance.id, Answer(415, "unsupported", f"Content-Encoding {coding[:40]} is not "
                                                                        "accepted: send the body as it is"), started)
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        refusal = self._precheck(request, started)
        if refusal is not None:
            return refusal
        instance = self._instance_of(request)
        assert instance is not None
        limit = self.max_body_bytes()
        try:
            body = await asyncio.wait_for(_read(request, limit), self.body_timeout_s)
        except _TooLarge:
            return self._answer(instance.id, Answer(413, "too_large", f"the body is larger than {limit} bytes "
                                                                      "(engine.webhooks.maxBodyBytes)"), started)
        except asyncio.TimeoutError:
            return self._answer(instance.id, Answer(408, "timeout", f"the body was not received within "
                                                                    f"{self.body_timeout_s:g} s"), started)
        except (ConnectionResetError, HttpProcessingError) as exc:
            # the sender hung up, or broke the framing, part-way through the body: nothing to keep,
            # and anyone can do it, so one line (aiohttp logged an ERROR with its traceback)
            reason = ("the connection was closed before the whole body came" if isinstance(exc, ConnectionResetError)
                      else f"the body is not valid HTTP: {str(exc.message).split(':')[0][:80]}")
            return self._answer(instance.id, Answer(400, "aborted", reason), started)
        answer = await self.receiver().receive_async(instance, request.method, request.headers.get("Content-Type"),
                                                     list(request.headers.items()), body, self.clock_ms())
        return self._answer(instance.id, answer, started)

    def _answer(self, instance_id: str, answer: Answer, started: float) -> web.Response:
        seconds = time.perf_counter() - started
        if self.observe is not None:
            self.observe(instance_id, answer.outcome, answer.events, seconds)
        extra: dict[str, object] = {"instance": instance_id or None, "outcome": answer.outcome,
                                    "status": answer.status}
        if answer.request_id is not None:
            extra["request"] = answer.request_id
        if answer.outcome in ("accepted", "duplicate"):
            extra["events"] = sum(answer.events.values())
            if answer.reason:  # events left out, dates not read: said once per request, and kept with it
                extra["problems"] = answer.reason
                log.warning("inbound.accepted", extra=extra)
            else:
                log.info("inbound.accepted", extra=extra)
        elif answer.outcome == "handshake":
            log.info("inbound.handshake", extra=extra)
        else:
            extra["reason"] = answer.reason
            log.log(logging.ERROR if answer.status == 503 else logging.WARNING, "inbound.refused", extra=extra)
        if answer.status == 200:
            body = "" if answer.outcome == "handshake" else f"{answer.outcome}\n"
        else:
            body = f"{answer.reason}\n"
        headers = {"Cache-Control": "no-store"}
        if answer.status == 503:
            headers["Retry-After"] = "30"
        return web.Response(status=answer.status, text=body, content_type="text/plain", charset="utf-8",
                            headers=headers)


async def _read(request: web.Request, limit: int) -> bytes:
    """The body, chunked or not, refusing to hold more than ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            raise _TooLarge()
        parts.append(chunk)
