"""The HTTP client side of polling (pooled httpx clients), and what delivery shares with it:
reading the ``Retry-After`` and ``Date`` headers of a response. (Delivery's own client:
poller.deliver.client.)
"""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from poller import USER_AGENT

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpClients", "http_date", "parse_retry_after", "retry_after_cap_s"]

_LONGEST_S = 10 * 365 * 86400.0  # what any Retry-After is read as at most, before the callers' own caps


class HttpClients:
    """One pooled httpx.AsyncClient per TLS setting (verification is fixed per client)."""

    def __init__(self, stack: AsyncExitStack, transport: httpx.AsyncBaseTransport | None = None, *,
                 max_connections: int = 100) -> None:
        self._stack = stack
        self._transport = transport
        self._max_connections = max_connections
        self._clients: dict[bool, httpx.AsyncClient] = {}

    async def get(self, verify: bool) -> httpx.AsyncClient:
        client = self._clients.get(verify)
        if client is None:
            import httpx  # (here: delivery reads Retry-After with this module, and needs no httpx)

            from poller import sockcheck

            client = httpx.AsyncClient(verify=verify, headers={"User-Agent": USER_AGENT}, transport=self._transport,
                                       follow_redirects=False,
                                       # as many connections as polls may be under way, waiting ones too:
                                       # a provider that does not answer must not keep the others from a connection
                                       limits=httpx.Limits(max_connections=max(100, self._max_connections),
                                                           max_keepalive_connections=100))
            sockcheck.install(client)
            self._clients[verify] = await self._stack.enter_async_context(client)
        return client


def parse_retry_after(value: str | None, server_date: datetime | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP date), or ``None``
    when absent or unreadable. A date is compared with the response's ``Date`` when known (both
    are the server's clock), else with ``now`` (default: the local clock); never negative."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return min(float(value), _LONGEST_S)  # "999999999999999" must not overflow a datetime
    when = http_date(value)
    if when is None:
        return None
    reference = server_date or now or datetime.now(timezone.utc)
    return min(_LONGEST_S, max(0.0, (when - reference).total_seconds()))


def retry_after_cap_s(interval_s: float) -> float:
    """The longest a provider's Retry-After may keep a resource from being polled: max(1 h, 4
    intervals). One 429 with "Retry-After: 999999999" must not silence a resource for 30 years."""
    return max(3600.0, 4 * interval_s)


_last_date: tuple[str, datetime | None] = ("", None)  # the last Date read, and what it said


def http_date(value: str | None) -> datetime | None:
    global _last_date
    if not value:
        return None
    last = _last_date  # (one read: another thread may replace it meanwhile)
    if last[0] == value:  # a Date header has whole seconds: the polls of one second share it
        return last[1]
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:  # pragma: no cover  (Python < 3.10 returned None)
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    when = when.astimezone(timezone.utc)
    _last_date = (value, when)
    return when
