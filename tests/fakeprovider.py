"""A fake provider API: real HTTP/1.1 on 127.0.0.1, in a thread, for tests.

    provider = FakeProvider(style="page", page_size=100).start()     # or the fake_provider fixture
    provider.records.extend({"id": str(i), "updated": "2024-01-01T00:00:00Z"} for i in range(2500))
    url = provider.url("/contacts?updatedSince=2023-12-31T00:00:00Z")
    provider.fail(500, page=3, times=3)       # page 3 fails on its next three requests
    ...
    assert provider.requests[0].query["pageSize"] == "100"
    provider.stop()

What it serves (every path; ``add_collection(path, ...)`` gives a path its own records and style):

- the records of the collection, in list order, filtered by the ``since_param`` query
  parameter (default ``updatedSince``): a record is served when its ``updated_field`` is at or
  after ``since`` (``>=``; ``inclusive=False`` makes it ``>``). Both are read by ``parse_time``
  (default: ISO-8601 with ``Z`` or an offset, naive meaning UTC, or epoch milliseconds); a record
  whose stamp cannot be read is always served; a ``since`` that cannot be read gets a 400 (as a
  real provider would: a ``+`` left unencoded in the query arrives as a space). ``records`` is a plain list: mutate it between
  polls (under ``provider.lock`` if a request may be running).
- paginated in ``style`` with ``page_size`` records a page (the request's ``page_size_param``,
  default ``pageSize``, wins when present):

  ============== ===================================================================
  none           every record in one response
  link           ``?page=N``; ``Link: </path?...&page=N+1>; rel="next"`` (a relative
                 target; ``link_absolute=True`` for an absolute one), none on the last page
  nextPageToken  header ``elements-next-page-token: <opaque>``, sent back as ``?nextPage=``
  page           ``?page=N`` from ``page_start`` (1); a short or empty page is the last
  offset         ``?offset=N`` (from 0); a short or empty page is the last
  cursor         body ``{"data": [...], "meta": {"next_cursor": "<opaque>" | null}}``,
                 sent back as ``?cursor=``
  nextUrl        body ``{"rows": [...], "next_url": "/path?...&_next=<opaque>" | null}``
                 (Datasette's shape; ``link_absolute=True`` for an absolute URL)
  ============== ===================================================================

  ``more_field`` (page, offset): the body is ``{records_key or "data": [...], more_field: <the next
  page number> | null}`` (json-server 1.0's ``next``); ``past_end_repeats_last``: a page past the
  end is answered with the last page (json-server 1.0 does this).

  The body is a bare JSON array, or ``{records_key: [...]}`` when ``records_key`` is set (cursor
  always uses an object, ``records_key`` defaulting to ``data``).
- a ``Date`` header from the local clock plus ``clock_offset_s`` (the provider's clock ahead
  when positive, behind when negative).

Faults (``fail``): match a request by its number (``request=K``, 1-based, counted from start),
by the page it asks for (``page=K``), by its path (``path="/slow"``) or any request, ``times`` times (``None``: forever). A fault
answers ``status`` with ``body`` and ``headers`` (``retry_after`` adds ``Retry-After``), or, with
``status=None``, answers normally; ``delay_s`` waits first (a slow response); ``trickle_s`` sends
the body a byte at a time, that long apart (a stalling response); ``drop=True``
closes the connection without an answer (a network error for the client). Example: a garbage
2xx body is ``fail(200, body=b"<html>oops")``.

Every request is recorded in ``requests`` (:class:`Request`: number, method, path, query,
headers with lower-case names, page, fault applied).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from urllib.parse import parse_qsl, quote, urlsplit

from tests.loopback import LoopbackHandler, LoopbackServer, LoopbackService

__all__ = ["Collection", "FakeProvider", "Fault", "Request", "parse_time"]

STYLES = ("none", "link", "nextPageToken", "page", "offset", "cursor", "nextUrl")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_time(text: object) -> datetime | None:
    """ISO-8601 (``Z`` or an offset; naive is UTC) or epoch milliseconds; ``None`` when unreadable."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return EPOCH + timedelta(milliseconds=text)
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    if text.lstrip("-").isdigit():
        return EPOCH + timedelta(milliseconds=int(text))
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "zZ" else text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@dataclass
class Collection:
    """The records served at one path, and how. Every field may be changed while serving."""

    records: list[dict] = field(default_factory=list)
    style: str = "none"
    page_size: int = 100
    page_size_param: str = "pageSize"
    records_key: str | None = None
    since_param: str | None = "updatedSince"
    updated_field: str = "updated"
    inclusive: bool = True
    parse_time: Callable[[object], datetime | None] = parse_time
    page_param: str = "page"
    page_start: int = 1
    offset_param: str = "offset"
    token_header: str = "elements-next-page-token"
    token_param: str = "nextPage"
    cursor_param: str = "cursor"
    link_absolute: bool = False
    more_field: str | None = None
    past_end_repeats_last: bool = False

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown style {self.style!r} (one of: {', '.join(STYLES)})")

    def visible(self, query: dict[str, str]) -> list[dict] | None:
        """The records matching ``query``; ``None`` when its ``since`` cannot be read (a 400)."""
        if not self.since_param or self.since_param not in query:
            return list(self.records)
        since = self.parse_time(query[self.since_param])
        if since is None:
            return None
        out = []
        for record in self.records:
            stamp = self.parse_time(record.get(self.updated_field))
            if stamp is None or stamp > since or (self.inclusive and stamp == since):
                out.append(record)
        return out


@dataclass
class Fault:
    status: int | None = 500
    body: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False
    request: int | None = None
    page: int | None = None
    times: int | None = 1
    trickle_s: float = 0.0  # send the body one byte at a time, this long apart (a stalling provider)
    path: str | None = None  # only requests for this path

    def matches(self, number: int, page: int, path: str = "/") -> bool:
        if self.times is not None and self.times <= 0:
            return False
        return ((self.request is None or self.request == number) and (self.page is None or self.page == page)
                and (self.path is None or self.path == path))


@dataclass(frozen=True)
class Request:
    number: int
    method: str
    path: str
    query: dict[str, str]  # last value of each parameter
    query_string: str
    headers: dict[str, str]  # lower-case names
    page: int  # the 1-based page it asked for (by the collection's pagination)
    fault: Fault | None


class FakeProvider(LoopbackService):
    """See the module docstring. ``options`` configure the default collection (served at every
    path without its own); ``clock_offset_s`` shifts the ``Date`` header."""

    def __init__(self, *, clock_offset_s: float = 0.0, **options: object) -> None:
        self.default = Collection(**options)  # type: ignore[arg-type]
        self.collections: dict[str, Collection] = {}
        self.clock_offset_s = clock_offset_s
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.lock = threading.RLock()

    # -- set-up ---------------------------------------------------------------------------------
    @property
    def records(self) -> list[dict]:
        """The default collection's records."""
        return self.default.records

    def add_collection(self, path: str, **options: object) -> Collection:
        collection = Collection(**options)  # type: ignore[arg-type]
        self.collections[path] = collection
        return collection

    def collection(self, path: str) -> Collection:
        return self.collections.get(path, self.default)

    def fail(self, status: int | None = 500, *, page: int | None = None, request: int | None = None,
             times: int | None = 1, body: bytes | str | None = None, headers: dict[str, str] | None = None,
             retry_after: float | str | None = None, delay_s: float = 0.0, drop: bool = False,
             trickle_s: float = 0.0, path: str | None = None) -> Fault:
        hdrs = dict(headers or {})
        if retry_after is not None:
            hdrs["Retry-After"] = str(retry_after)
        fault = Fault(status, body, hdrs, delay_s, drop, request, page, times, trickle_s, path)
        with self.lock:
            self.faults.append(fault)
        return fault

    def now(self) -> datetime:
        """The provider's clock (the local clock plus ``clock_offset_s``)."""
        return datetime.now(timezone.utc) + timedelta(seconds=self.clock_offset_s)

    # -- lifetime -------------------------------------------------------------------------------
    def url(self, path_and_query: str = "/") -> str:
        return self.base_url + "/" + path_and_query.lstrip("/")

    def _attach(self, server: LoopbackServer) -> None:
        server.provider = self  # type: ignore[attr-defined]

    # -- serving (called from handler threads) ---------------------------------------------------
    def _respond(self, method: str, target: str,
                 headers: Iterable[tuple[str, str]]) -> tuple[Fault | None, int, dict[str, str], bytes]:
        split = urlsplit(target)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        with self.lock:
            collection = self.collection(split.path)
            size = _int(query.get(collection.page_size_param), collection.page_size)
            start, page = self._position(collection, query, size)
            number = len(self.requests) + 1
            fault = next((f for f in self.faults if f.matches(number, page, split.path)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
            self.requests.append(Request(number, method, split.path, query, split.query,
                                         {k.lower(): v for k, v in headers}, page, fault))
            if fault is not None and fault.status is not None:
                body = fault.body.encode() if isinstance(fault.body, str) else fault.body
                if body is None:
                    body = json.dumps({"error": f"fake failure {fault.status}"}).encode()
                return fault, fault.status, {"Content-Type": "application/json", **fault.headers}, body
            visible = collection.visible(query)
        if visible is None:
            message = f"cannot read {collection.since_param}={query[collection.since_param]!r}"
            return fault, 400, {"Content-Type": "application/json"}, json.dumps({"error": message}).encode()
        if collection.style == "none":
            chunk, more = visible, False
        else:
            if collection.past_end_repeats_last and visible and start >= len(visible):
                start = (len(visible) - 1) // size * size
            chunk = visible[start:start + size]
            more = start + size < len(visible)
        out_headers = {"Content-Type": "application/json", **(fault.headers if fault else {})}
        payload: object = chunk
        if collection.style == "link" and more:
            next_target = _with_param(split.path, split.query, collection.page_param,
                                      str(collection.page_start + page))
            if collection.link_absolute:
                next_target = self.base_url + next_target
            out_headers["Link"] = f'<{next_target}>; rel="next"'
        elif collection.style == "nextPageToken" and more:
            out_headers[collection.token_header] = _token("t", start + size)
        if collection.style == "cursor":
            payload = {collection.records_key or "data": chunk,
                       "meta": {"next_cursor": _token("c", start + size) if more else None}}
        elif collection.style == "nextUrl":
            next_target = _with_param(split.path, split.query, "_next", _token("n", start + size))
            if collection.link_absolute:
                next_target = self.base_url + next_target
            payload = {collection.records_key or "rows": chunk, "next_url": next_target if more else None}
        elif collection.more_field:
            payload = {collection.records_key or "data": chunk,
                       collection.more_field: page + collection.page_start if more else None}
        elif collection.records_key:
            payload = {collection.records_key: chunk, "total": len(visible)}
        return fault, 200, out_headers, json.dumps(payload).encode()

    @staticmethod
    def _position(c: Collection, query: dict[str, str], size: int) -> tuple[int, int]:
        """The index of the first record asked for, and the 1-based page number."""
        if c.style in ("link", "page"):
            page = _int(query.get(c.page_param), c.page_start) - c.page_start + 1
            return (page - 1) * size, page
        if c.style == "offset":
            start = _int(query.get(c.offset_param), 0)
        elif c.style == "nextPageToken":
            start = _untoken("t", query.get(c.token_param))
        elif c.style == "cursor":
            start = _untoken("c", query.get(c.cursor_param))
        elif c.style == "nextUrl":
            start = _untoken("n", query.get("_next"))
        else:
            start = 0
        return start, start // max(size, 1) + 1


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _token(kind: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{offset}".encode()).decode().rstrip("=")


def _untoken(kind: str, token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, offset = text.partition(":")
        return int(offset) if prefix == kind else 0
    except ValueError:
        return 0


def _with_param(path: str, query: str, name: str, value: str) -> str:
    parts = [p for p in query.split("&") if p and p.split("=", 1)[0] != name]
    parts.append(f"{name}={quote(value, safe='')}")
    return f"{path}?{'&'.join(parts)}"


class _Server(LoopbackServer):
    provider: FakeProvider


class _Handler(LoopbackHandler):
    server: _Server

    def date_time_string(self, timestamp: float | None = None) -> str:
        offset = self.server.provider.clock_offset_s
        return formatdate((time.time() if timestamp is None else timestamp) + offset, usegmt=True)

    def do_GET(self) -> None:
        fault, status, headers, body = self.server.provider._respond("GET", self.path, self.headers.items())
        if fault is not None and fault.delay_s and self.server.stopping.wait(fault.delay_s):
            self.close_connection = True
            return
        if fault is not None and fault.drop:
            self.close_connection = True
            return
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault is not None and fault.trickle_s:
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                if self.server.stopping.wait(fault.trickle_s):
                    break
            self.close_connection = True
            return
        self.wfile.write(body)


FakeProvider.server_class, FakeProvider.handler_class = _Server, _Handler
