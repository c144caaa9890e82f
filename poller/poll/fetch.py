"""One resource's pages through an injected ``httpx.AsyncClient`` (DESIGN.md §5, §9).

    async with aclosing(fetch_pages(client, spec)) as pages:
        async for page in pages:        # each page as soon as it is decoded
            handle(page.records)

Knows nothing of detection or state. Errors (all :class:`~poller.errors.FetchError`, naming the
resource, the masked URL and the status):

- 5xx, network errors and a 2xx body that is not JSON: 3 attempts in all, waits of about 0.5 s
  and 1 s with jitter (through the injected ``sleep`` and ``random``); a 429 without
  ``Retry-After`` is treated the same way;
- 429/503 with ``Retry-After`` (seconds or an HTTP date) of at most 10 s: wait that long and try
  again (an attempt); longer: fail at once with ``retry_after`` set, without waiting;
- other 4xx, and 3xx (redirects are not followed: API headers must not go elsewhere): fail at once;
- a body over ``max_response_bytes`` (counted while streaming), or JSON without a record array:
  fail at once, saying what was found.

Secrets stay out of what this module produces: URLs in pages, errors and logs have ``spec.secrets`` and the
values of query parameters named like token/key/secret/password/signature masked as ``***``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random as _random
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

from poller import jsonio, jsonpath
from poller.errors import FetchError
from poller.httpclient import http_date, parse_retry_after
from poller.loopturn import turn
from poller.poll import jsonsteps
from poller.poll.body import ACCEPT_ENCODING, BodyEncodingError, BodyTooLarge, BoundedBody
from poller.poll.pagination import PaginationError, PaginationSpec, first_url, next_url
from poller.redact import mask_text, mask_url

__all__ = ["FetchSpec", "Page", "PaginationSpec", "fetch_pages"]

_T = TypeVar("_T")

log = logging.getLogger(__name__)

ATTEMPTS = 3
BACKOFF_S = 0.5  # waits: 0.5 s, 1 s (each up to 25 % longer: jitter)
JITTER = 0.25
MAX_INLINE_WAIT_S = 10.0
_ERROR_BODY_BYTES = 4096  # how much of an error response we read for its message
# A body larger than this is decoded and hashed in steps, the event loop running between them:
# at once, 2 MiB take 20-40 ms on a slow core, 60 MB a second (issue 12: never over 100 ms)
STEPPED_BYTES = 2 * jsonsteps.STEP


@dataclass(frozen=True, slots=True)
class FetchSpec:
    """What to fetch. ``url`` is rendered and absolute; ``records_path`` is a parsed JSON path
    (``None``: the body itself must be the array); ``secrets`` are masked wherever a URL or a
    message is produced (header values, query tokens)."""

    resource: str
    url: str = field(repr=False)  # may hold secrets; Page.url and errors carry the masked form
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout_s: float = 30.0
    page_size: int | None = None
    # False: the URL carries the page size itself (${pageSize} under a parameter of its own), so
    # pagination.pageSizeParam is not added beside it (page_size still tells a short page)
    send_page_size: bool = True
    records_path: tuple | None = None
    pagination: PaginationSpec = PaginationSpec()
    max_response_bytes: int = 64 * 1024 * 1024
    secrets: tuple[str, ...] = field(default=(), repr=False)
    max_retry_after_s: float = 3600.0  # a longer Retry-After is cut to this (httpclient.retry_after_cap_s)


@dataclass(frozen=True, slots=True)
class Page:
    """One decoded page. ``number`` is 1-based, ``url`` masked, ``server_date`` the response's
    ``Date`` header (aware UTC, ``None`` when absent or unreadable), ``raw_bytes`` the body's size.
    ``incomplete``: the page is full (``page_size`` records, or as many as the largest page of the
    poll so far when there is no page size) and nothing says where the next page is: the
    provider may have more that the pagination settings do not reach."""

    number: int
    url: str
    status: int
    records: list
    server_date: datetime | None
    raw_bytes: int
    incomplete: bool = False  # a full page, and nothing says where the next one is


@dataclass(slots=True)
class _Response:
    status: int
    headers: httpx.Headers
    body: bytes


class _Retry(Exception):
    """A failure worth another attempt, after ``wait`` seconds (``None``: the backoff)."""

    def __init__(self, error: FetchError, wait: float | None = None) -> None:
        self.error = error
        self.wait = wait


async def fetch_pages(client: httpx.AsyncClient, spec: FetchSpec, *,
                      sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                      random: Callable[[], float] = _random.random,
                      wait: Callable[[Awaitable[_Response]], Awaitable[_Response]] | None = None,
                      ) -> AsyncIterator[Page]:
    """Yield the pages of ``spec`` one by one; raise :class:`FetchError` when one cannot be had.
    Pages already yielded stay yielded: a failure on page 3 comes after pages 1 and 2.

    ``sleep`` waits before a retry; ``wait(request)`` awaits each request (the daemon's slots let
    go of a poll's slot through both: see poller.daemon.dispatch)."""
    pagination = spec.pagination
    url: str | None = first_url(pagination, spec.url, spec.page_size if spec.send_page_size else None)
    number = 0
    requested: dict[str, int] = {}  # URL -> the page it fetched
    digests: dict[bytes, int] = {}  # body digest -> the page that had it
    largest = 0  # the most records a page of this poll had so far
    while url is not None:
        number += 1
        masked = mask_url(url, spec.secrets)
        requested[url] = number
        response, body = await _fetch_json(client, spec, url, masked, sleep, random, waiter=wait)
        records = _records(spec, masked, response.status, body)
        try:
            following = next_url(pagination, url, headers=response.headers, body=body, records=len(records),
                                 page_number=number, page_size=spec.page_size)
        except PaginationError as exc:
            raise FetchError(spec.resource, masked, str(exc), status=response.status) from None
        del body  # the page's records are all we keep
        if records and (number > 1 or following is not None):  # (a poll of one page: nothing to compare)
            # In an envelope, the records: a request id or a fresh cursor token in it must not
            # hide a page that comes back (1,000 requests per poll, then "raise maxPages")
            digest = await (_digest(response.body) if spec.records_path is None
                            else _records_digest(records, response.body))
            if digest in digests:
                # json-server 1.0 answers pages past the end with the last one; a provider that
                # ignores the page parameter sends page 1 again: either way the walk cannot end
                raise FetchError(spec.resource, masked, f"page {number} is the same as page {digests[digest]}: "
                                 f"the provider ignores the pagination ({pagination.kind}){_hint(pagination)}",
                                 status=response.status)
            digests[digest] = number
        full = (len(records) >= spec.page_size) if spec.page_size is not None else (number > 1 and len(records) >= largest)
        largest = max(largest, len(records))
        page = Page(number, masked, response.status, records, _server_date(response.headers),
                    len(response.body), incomplete=bool(records) and full and following is None
                    and not (pagination.kind in ("page", "offset") and pagination.more_path is not None))
        log.debug("fetch.page", extra={"resource": spec.resource, "page": number, "url": masked,
                                       "status": response.status, "records": len(records),
                                       "bytes": page.raw_bytes})
        del response
        yield page
        if following is not None and following in requested:
            raise FetchError(spec.resource, masked, f"pagination cycle: page {number} leads back to page "
                             f"{requested[following]} ({mask_url(following, spec.secrets)})")
        if following is not None and number >= pagination.max_pages:
            # Stopping quietly would move the cursor past records on the pages never fetched.
            raise FetchError(spec.resource, masked, f"more pages remain after maxPages={pagination.max_pages}; "
                             "the poll is not complete (raise pagination.maxPages)")
        if following is not None and _origin(following) != _origin(url):
            # API headers (tokens) must not travel to another host.
            raise FetchError(spec.resource, masked, f"the next page is on another origin "
                             f"({mask_url(following, spec.secrets)}); refusing to send the API headers there")
        url = following


def _hint(pagination: PaginationSpec) -> str:
    if pagination.kind in ("page", "offset") and pagination.more_path is None:
        return "; if its body says whether more pages follow, set pagination.morePath"
    return ""


async def _fetch_json(client: httpx.AsyncClient, spec: FetchSpec, url: str, masked: str,
                      sleep: Callable[[float], Awaitable[object]], random: Callable[[], float], *,
                      waiter: Callable[[Awaitable[_Response]], Awaitable[_Response]] | None = None,
                      ) -> tuple[_Response, object]:
    """One page's response and decoded body, with the retries of DESIGN §9."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            request = _get(client, spec, url, masked)
            response = await (waiter(request) if waiter is not None else request)
            return response, await _decode_in_steps(spec, masked, response)
        except _Retry as retry:
            if attempt == ATTEMPTS:
                last = retry.error
                # a short Retry-After on the last attempt still says when to come back
                until = _now() + timedelta(seconds=retry.wait) if retry.wait is not None else None
                raise FetchError(spec.resource, masked, f"{last.reason} (after {ATTEMPTS} attempts)",
                                 status=last.status, retry_after=until) from retry.__cause__
            wait = retry.wait if retry.wait is not None else BACKOFF_S * 2 ** (attempt - 1) * (1 + JITTER * random())
            # INFO: a retry is no failure yet; the poll that fails after its last attempt says so,
            # once (10,000 refused ports logged three warnings per poll)
            log.info("fetch.retry", extra={"resource": spec.resource, "url": masked, "attempt": attempt,
                                           "wait_s": round(wait, 3), "status": retry.error.status,
                                           "reason": retry.error.reason})
            await sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


if sys.version_info >= (3, 11):
    async def _within(request: Awaitable[_T], seconds: float) -> _T:
        """``asyncio.wait_for`` without its task per call (a tenth of a no-change poll's CPU, with
        the slot's own): the deadline cancels the poll's task, and is raised as TimeoutError."""
        async with asyncio.timeout(seconds):
            return await request
else:  # pragma: no cover - Python 3.10
    _within = asyncio.wait_for


async def _get(client: httpx.AsyncClient, spec: FetchSpec, url: str, masked: str) -> _Response:
    def error(reason: str, status: int | None = None, retry_after: datetime | None = None) -> FetchError:
        return FetchError(spec.resource, masked, mask_text(reason, spec.secrets), status=status,
                          retry_after=retry_after)

    late = f"no complete response within {spec.timeout_s:g} s (api.timeoutSeconds)"
    try:
        # The whole response within the timeout, not only each read (httpx's timeouts are per
        # read): a provider sending a byte a second would otherwise hold the poll for ever.
        status, headers, body = await _within(_read(client, spec, url), spec.timeout_s)
    except (asyncio.TimeoutError, httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
        raise _Retry(error(late)) from None
    except BodyTooLarge as exc:
        raise error(str(exc), exc.status) from None
    except BodyEncodingError as exc:
        raise _Retry(error(f"cannot decode the response body: {exc}")) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:  # not worth another attempt
        raise error(f"invalid URL: {_exception_text(exc)}") from exc
    except httpx.TransportError as exc:
        raise _Retry(error(f"network error: {_exception_text(exc)}")) from exc
    except httpx.HTTPError as exc:  # TooManyRedirects, ...
        raise error(f"request failed: {_exception_text(exc)}") from exc
    if 200 <= status < 300:
        return _Response(status, headers, body)
    what = _excerpt(body, headers)
    if status in (429, 503):
        delay = parse_retry_after(headers.get("retry-after"), _server_date(headers))
        if delay is not None and delay > MAX_INLINE_WAIT_S:
            capped = delay > spec.max_retry_after_s
            until = _now() + timedelta(seconds=min(delay, spec.max_retry_after_s))
            shown = headers["retry-after"].strip()
            shown = repr(shown if len(shown) <= 40 else shown[:37] + "...")
            cap = f" (capped at {spec.max_retry_after_s:g} s)" if capped else ""
            raise error(f"rate limited: Retry-After {shown}{cap}, not before "
                        f"{until.isoformat(timespec='seconds')}; {what}", status, until)
        if delay is not None:
            raise _Retry(error(f"rate limited: Retry-After {headers['retry-after'].strip()!r}; {what}", status),
                         delay)
    if status >= 500 or status == 429:
        raise _Retry(error(f"provider error: {what}", status))
    if 300 <= status < 400 and "location" in headers:
        raise error(f"unexpected redirect to {mask_url(headers['location'], spec.secrets)}", status)
    raise error(f"request refused: {what}", status)


async def _read(client: httpx.AsyncClient, spec: FetchSpec, url: str) -> tuple[int, httpx.Headers, bytes]:
    """(status, headers, decoded body). A 2xx body over the limit raises BodyTooLarge (with
    ``status`` set); of an error response, only the first bytes are kept, for its message."""
    headers = dict(spec.headers)
    if not any(name.lower() == "accept-encoding" for name in headers):
        headers["Accept-Encoding"] = ACCEPT_ENCODING  # what BoundedBody reads, whatever httpx could
    async with client.stream("GET", url, headers=headers, timeout=spec.timeout_s) as resp:
        status, response_headers = resp.status_code, resp.headers
        ok = 200 <= status < 300
        cap = spec.max_response_bytes if ok else _ERROR_BODY_BYTES
        length = response_headers.get("content-length", "")
        if ok and length.isdigit() and int(length) > cap:
            raise BodyTooLarge(cap, 0, "", status=status, size=int(length))
        try:
            if resp.is_stream_consumed:  # built in memory (httpx.MockTransport): already decoded
                body = BoundedBody(None, cap)
                body.feed(resp.content)
            else:
                body = BoundedBody(response_headers.get("content-encoding"), cap)
                async for chunk in resp.aiter_raw():  # raw: BoundedBody undoes the encodings, counted
                    body.feed(chunk)
            return status, response_headers, body.finish()
        except BodyTooLarge as exc:
            if ok:
                exc.status = status
                raise
            return status, response_headers, body.so_far()[:cap]
        except BodyEncodingError:
            if ok:
                raise
            return status, response_headers, b""  # an error page we cannot read: its status says enough


async def _decode_in_steps(spec: FetchSpec, masked: str, response: _Response) -> object:
    """:func:`_decode`, with a large body decoded a part at a time (poller.poll.jsonsteps)."""
    if response.status != 204 and len(response.body) > STEPPED_BYTES:
        try:
            return await _in_steps(jsonsteps.decode(response.body, spec.records_path))
        except jsonsteps.NotSteppable:
            pass  # decoded whole, as any other body: its problems are said the same way
    try:
        return _decode(spec, masked, response)
    except _TooDeep:
        pass
    # A record nested past what the decoders take (about 1,000 levels): the depths are cut away
    # (jsonio.cut_deep, in steps: it is Python's time per string), and detection skips that record
    # as too deep while the others are announced, as for one of 513 levels.
    cut = await _in_steps(jsonio.cut_deep_steps(response.body, jsonio.CUT_LEVELS + len(spec.records_path or ())))
    return _decode(spec, masked, response, cut)


async def _in_steps(walk: Generator[None, None, _T]) -> _T:
    """Run ``walk`` to its value, letting the event loop run at each of its pauses."""
    try:
        while True:
            next(walk)
            await turn()
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class _TooDeep(Exception):
    """The body nests more deeply than the decoders go."""


async def _digest(body: bytes) -> bytes:
    """A page's digest (to see a page come back), a few MiB at a time."""
    digest = hashlib.blake2b(digest_size=16)
    view = memoryview(body)
    for start in range(0, len(body), STEPPED_BYTES):
        if start:
            await turn()
        digest.update(view[start:start + STEPPED_BYTES])
    return digest.digest()


async def _records_digest(records: list, body: bytes) -> bytes:
    """A digest of the page's records (to see them come back), some thousands at a time; of the
    whole body when a record cannot be encoded again (about 1,000 levels: orjson read it, and
    json's recursion cannot write it)."""
    digest = hashlib.blake2b(digest_size=16)
    for start in range(0, len(records), _DIGEST_RECORDS):
        if start:
            await turn()
        try:
            digest.update(jsonio.dumps(records[start:start + _DIGEST_RECORDS]))
        except RecursionError:
            return await _digest(body)
    return digest.digest()


_DIGEST_RECORDS = 10_000  # about 4 ms of encoding


def _decode(spec: FetchSpec, masked: str, response: _Response, body: bytes | None = None) -> object:
    if response.status == 204:  # No Content: an empty page
        return []
    try:
        return jsonio.loads(response.body if body is None else body)
    except UnicodeDecodeError as exc:
        return _decode_invalid_utf8(spec, masked, response, exc.start, body)
    except RecursionError:
        if body is None:
            raise _TooDeep from None  # see _decode_in_steps
        raise FetchError(spec.resource, masked, "the JSON body is nested too deeply to be read",
                         status=response.status) from None  # (not after cut_deep: a guard)
    except ValueError as exc:
        reason = f"expected a JSON body, found {_excerpt(response.body, response.headers)}"
        raise _Retry(FetchError(spec.resource, masked, mask_text(reason, spec.secrets),
                                status=response.status)) from exc


def _decode_invalid_utf8(spec: FetchSpec, masked: str, response: _Response, position: int,
                         body: bytes | None = None) -> object:
    """A body with bytes that are not UTF-8: each such byte is kept as a lone surrogate (U+DC80 to
    U+DCFF, Python's surrogateescape), which the notification carries escaped ("\\udcff"): nothing
    is lost, and a record id holding one is skipped as not valid Unicode. The message quotes no
    content, which would be record data in the logs."""
    text = (response.body if body is None else body).decode("utf-8", "surrogateescape")
    try:
        value = jsonio.loads(text)
    except RecursionError:
        if body is None:
            raise _TooDeep from None
        raise
    except ValueError as exc:
        reason = f"the body is not valid UTF-8 (first bad byte at offset {position}) and not JSON either"
        raise _Retry(FetchError(spec.resource, masked, reason, status=response.status)) from exc
    log.warning("fetch.invalid_utf8", extra={"resource": spec.resource, "url": masked, "offset": position,
                                             "note": "bytes that are not UTF-8 are kept as escaped lone "
                                                     "surrogates (\\udcXX)"})
    return value


def _records(spec: FetchSpec, masked: str, status: int, body: object) -> list:
    if status == 204:  # No Content: an empty page
        return []
    found = body if spec.records_path is None else jsonpath.get(body, spec.records_path)
    if isinstance(found, list):
        return found
    if spec.records_path is not None and (found is None or found == {}):
        return []  # how many APIs say "no records" ("data": null; PHP encodes an empty array as {})
    if spec.records_path is None:
        reason = f"expected a JSON array of records, found {describe(body)}"
    else:
        where = path_text(spec.records_path)
        seen = f"no {where!r} in {describe(body)}" if found is jsonpath.MISSING else describe(found)
        reason = f"expected a JSON array of records at {where!r} (recordsPath), found {seen}"
    raise FetchError(spec.resource, masked, mask_text(reason, spec.secrets), status=status)


def describe(value: object) -> str:
    """A short description of a JSON value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return f"a string {text!r}"
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    if isinstance(value, dict):
        if not value:
            return "an empty object"
        keys = ", ".join(str(k) for k in list(value)[:10]) + (", ..." if len(value) > 10 else "")
        return f"an object with keys: {keys}"
    return type(value).__name__


def path_text(path: tuple) -> str:
    """A parsed JSON path as text again: ``('data', 'items', 0)`` -> ``data.items[0]``."""
    out = ""
    for segment in path:
        if isinstance(segment, int):
            out += f"[{segment}]"
        elif re.fullmatch(r"[^.\[\]'\"\s]+", segment) and not (not out and segment[0] in "$@"):
            out += f".{segment}" if out else segment
        else:
            out += "['" + segment.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out or "$"


def _excerpt(body: bytes, headers: httpx.Headers) -> str:
    if not body.strip():
        return "an empty body"
    kind = headers.get("content-type", "").split(";")[0].strip() or "a body without Content-Type:"
    text = body[:120].decode("utf-8", "replace")
    text = " ".join(text.split())
    return f"{kind} {text[:100]!r}" + ("..." if len(body) > 100 else "")


def _exception_text(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _server_date(headers: httpx.Headers) -> datetime | None:
    return http_date(headers.get("date"))


def _now() -> datetime:
    return datetime.now(timezone.utc)
