"""One delivery attempt: a committed notification POSTed, signed, and what came of it.

:class:`Sender` writes nothing: poller.deliver.engine decides what to send when, and records
the attempts. ``next_attempt_ms`` is pure arithmetic, so tests move a frozen clock instead of
sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from time import perf_counter

import aiohttp
from yarl import URL

from poller import USER_AGENT
from poller.config import Config, InstanceConfig
from poller.deliver.client import proxy_for
from poller.deliver.signing import headers as signed_headers
from poller.httpclient import parse_retry_after
from poller.javadate.zone import to_ms
from poller.redact import mask_text, mask_url
from state import AttemptResult, Pending

__all__ = ["DeliveryReport", "DeliveryResult", "Sender", "next_attempt_ms", "MAX_RETRY_AFTER_S", "JITTER"]

log = logging.getLogger(__name__)
MAX_RETRY_AFTER_S = 24 * 3600
MAX_ANSWER_BYTES = 64 * 1024  # of a receiver's answer, read to keep the connection alive
# how long the rest of an answer is waited for once its status came: a receiver streaming a slow
# body after its 2xx held each attempt for the whole timeout (one notification per 15 s)
DRAIN_S = 1.0
JITTER = 0.1  # each scheduled wait is stretched or shrunk by up to 10%


def next_attempt_ms(attempts: int, now_ms: int, schedule: Sequence[float], *, retry_after_s: float | None = None,
                    random: Callable[[], float] = _random.random) -> int | None:
    """When to try again after ``attempts`` failed attempts, or None when none is left.

    The n-th failure waits ``schedule[n-1]`` seconds, give or take :data:`JITTER`; a
    ``Retry-After`` asking for longer (up to 24 h) wins. With the default schedule that is
    10 attempts over about 3.3 days.
    """
    if attempts > len(schedule):
        return None
    delay = schedule[attempts - 1] * (1 + JITTER * (2 * random() - 1))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return now_ms + int(delay * 1000)


@dataclass(frozen=True)
class DeliveryResult:
    notification_id: str
    resource_key: str
    url: str
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    next_attempt_ms: int | None  # None when delivered or dead

    @property
    def dead(self) -> bool:
        return not self.ok and self.next_attempt_ms is None

    def summary(self) -> str:
        if self.ok:
            return f"{self.notification_id} -> {self.url}: delivered ({self.status_code}) in {self.duration_ms} ms"
        what = "dead letter" if self.dead else "will retry"
        return f"{self.notification_id} -> {self.url}: FAILED ({self.error}); {what}"


@dataclass
class DeliveryReport:
    results: list[DeliveryResult] = field(default_factory=list)
    # pending notifications not attempted, by instance id: their instance is not configured here
    unsendable: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def counts(self) -> dict[str, int]:
        return {"attempted": len(self.results), "delivered": sum(r.ok for r in self.results),
                "failed": sum(not r.ok for r in self.results), "dead": sum(r.dead for r in self.results)}


async def _drain(response: aiohttp.ClientResponse) -> None:
    read = 0
    while chunk := await response.content.readany():
        read += len(chunk)
        if read > MAX_ANSWER_BYTES:
            response.close()
            return


class Sender:
    """Sends one notification at a time (callers run several at once); writes nothing."""

    def __init__(self, client: aiohttp.ClientSession, config: Config, clock: Callable[[], datetime],
                 random: Callable[[], float], *, retired: Mapping[str, InstanceConfig] | None = None) -> None:
        self.client = client
        self.delivery = config.engine.delivery
        self.clock = clock
        self.random = random
        # ``retired``: instances a reload removed, kept to deliver what they left in the outbox
        self.instances = {**(retired or {}), **{i.id: i for i in config.instances}}

    async def _post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> tuple[int, str | None]:
        """The status and Retry-After of one POST. The whole attempt is bounded, not only each
        read (a receiver trickling bytes must not hold delivery hostage); a status that arrived
        in time stands even when the rest of the answer does not (its 2xx is a delivery)."""
        try:
            target = URL(url)
        except (TypeError, ValueError) as exc:
            raise aiohttp.InvalidURL(url, str(exc)) from None
        proxy, proxy_auth = proxy_for(target.scheme, target.host or "")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        response = await asyncio.wait_for(self.client.post(
            target, data=body, headers=headers, allow_redirects=False, proxy=proxy, proxy_auth=proxy_auth), timeout_s)
        try:
            # the answer is read to its end (a little of it: nobody looks at it), so that the
            # connection goes back to the pool; a longer or a slower one is not worth reading:
            # that connection is closed instead
            await asyncio.wait_for(_drain(response), max(0.0, min(DRAIN_S, deadline - loop.time())))
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError):  # the status came: it is the answer
            response.close()
        finally:
            response.release()
        return response.status, response.headers.get("Retry-After")

    def sendable(self, instance_id: str) -> bool:
        """A notification of an instance not configured in this process waits (one a reload
        removed is still sent: see ``retired``): its signature key is not known here, and sending
        it unsigned would teach the receiver to accept unsigned requests."""
        return instance_id in self.instances

    async def send(self, entry: Pending, body: bytes) -> tuple[DeliveryResult, AttemptResult]:
        """POST ``body`` (the notification ``entry``) once: what came of it, to report and to record."""
        instance = self.instances[entry.instance_id]
        url = entry.callback_url  # retargeted to the instance's current callback
        shown = mask_url(url, instance.callback_secrets)
        key = str(instance.signature_key) if instance.signature_key else None
        now = self.clock()
        headers = signed_headers(entry.id, body, key, int(now.timestamp()),
                                 standard_webhooks=self.delivery.standard_webhooks, user_agent=USER_AGENT)
        started = perf_counter()
        status: int | None = None
        retry_after: float | None = None
        error: str | None = None
        permanent = False
        try:
            status, retry_header = await self._post(url, body, headers, self.delivery.timeout_seconds)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
                retry_after = parse_retry_after(retry_header, None, now)
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
            error, permanent = f"invalid callback URL: {exc}", True  # no retry can fix it: a dead letter
        except asyncio.TimeoutError:
            error = f"no answer within {self.delivery.timeout_seconds:g} s"
        except aiohttp.ServerDisconnectedError:  # (its text is aiohttp's repr of the half-read message)
            error = "the connection was closed before the answer's status and headers were complete"
        except aiohttp.ClientResponseError as exc:
            # raised by aiohttp's parser only (nothing here raises for a status): its "400" is
            # aiohttp's own code for a bad answer, which the receiver never sent
            text = exc.message if len(exc.message) <= 200 else exc.message[:197] + "..."
            error = f"the answer is not valid HTTP: {text}"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - recorded as a failed attempt, never a wedged queue
            error = f"{type(exc).__name__}: {exc}"
        duration = int((perf_counter() - started) * 1000)
        done_ms = to_ms(self.clock())
        if error is None:
            log.info("delivery.delivered", extra={"notification": entry.id, "resource": entry.resource_key,
                                                  "status": status, "duration_ms": duration})
            return (DeliveryResult(entry.id, entry.resource_key, shown, True, status, None, duration, None),
                    AttemptResult(entry.id, done_ms, True, status, None, duration))
        # the URL as shown (masked) wherever the error quotes it; masking the whole error as if it
        # were a URL leaves a password in place when the URL does not parse
        error = mask_text(error.replace(url, shown), instance.callback_secrets)
        upcoming = None if status == 410 or permanent else next_attempt_ms(
            entry.attempts + 1, done_ms, self.delivery.retry_schedule, retry_after_s=retry_after, random=self.random)
        event = "delivery.dead_letter" if upcoming is None else "delivery.retry_scheduled"
        log.warning(event, extra={"notification": entry.id, "resource": entry.resource_key, "error": error,
                                  "attempts": entry.attempts + 1})
        return (DeliveryResult(entry.id, entry.resource_key, shown, False, status, error, duration, upcoming),
                AttemptResult(entry.id, done_ms, False, status, error, duration, upcoming))
