"""Which URL to fetch next (DESIGN.md §5, §9 "URLs"). Pure: no I/O, no clock.

    >>> spec = PaginationSpec(kind="page")
    >>> url = first_url(spec, "https://api.example.com/contacts?where=x", page_size=2)
    >>> url
    'https://api.example.com/contacts?where=x&pageSize=2&page=1'
    >>> next_url(spec, url, headers={}, body=[{}, {}], records=2, page_number=1, page_size=2)
    'https://api.example.com/contacts?where=x&pageSize=2&page=2'
    >>> next_url(spec, url, headers={}, body=[{}], records=1, page_number=1, page_size=2) is None
    True

Kinds: ``none`` (one page), ``link`` (RFC 8288 ``Link: <...>; rel="next"``, relative targets
resolved against the request URL), ``nextPageToken`` (a response header carries the token,
sent back as a query parameter), ``page`` (page numbers from ``start``), ``offset`` (record
offsets from ``start``, advanced by the records received), ``cursor`` (a value in the body,
sent back as a query parameter; stop when it is missing, null or "") and ``nextUrl`` (the next
page's URL in the body: Datasette's ``next_url``, ``links.next``, ``@odata.nextLink``,
``paging.next``; relative ones resolved against the request URL; stop when missing, null or "").
``page`` and ``offset`` stop at an empty page or one shorter than the page size, or, with
``more_path``, when the body says there is no more (false, null, missing or empty there).

Query parameters are added to the URL, or replace those of the same name in place; the other
parameters keep their exact original encoding, since providers differ in what they accept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus, urljoin, urlsplit, urlunsplit

from poller import jsonpath

__all__ = ["KINDS", "PaginationError", "PaginationSpec", "first_url", "next_url", "parse_link_header",
           "set_query_params"]

KINDS = ("none", "link", "nextPageToken", "page", "offset", "cursor", "nextUrl")
_DEFAULT_PARAM = {"nextPageToken": "nextPage", "page": "page", "offset": "offset", "cursor": "cursor"}
_DEFAULT_HEADER = "elements-next-page-token"


class PaginationError(ValueError):
    """The response says where the next page is in a way that cannot be followed."""


@dataclass(frozen=True, slots=True)
class PaginationSpec:
    """How to fetch the next page. ``param``/``header`` default per kind (see the module docstring);
    ``start`` is the first page number (``page``) or offset (``offset``); ``path`` is the parsed JSON
    path of the next cursor (``cursor``) or URL (``nextUrl``), required for those; ``more_path``
    (``page``, ``offset``) the path of a value saying whether more pages follow."""

    kind: str = "none"
    param: str | None = None
    start: int = 1
    header: str | None = None
    path: tuple | None = None
    max_pages: int = 1000
    page_size_param: str = "pageSize"
    more_path: tuple | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown pagination kind {self.kind!r} (one of: {', '.join(KINDS)})")
        if self.kind in ("cursor", "nextUrl") and not self.path:
            raise ValueError(f"{self.kind} pagination needs the path of the next {self.kind} value in the body")

    @property
    def param_name(self) -> str:
        return self.param or _DEFAULT_PARAM.get(self.kind, "")

    @property
    def header_name(self) -> str:
        return self.header or _DEFAULT_HEADER


def set_query_params(url: str, params: Mapping[str, str], *, only_missing: bool = False) -> str:
    """``url`` with each of ``params`` set: an existing parameter of that name is replaced where it
    stands (later duplicates dropped), a new one appended. ``only_missing`` keeps existing values."""
    if not params:
        return url
    scheme, netloc, path, query, fragment = urlsplit(url)
    parts = [p for p in query.split("&") if p] if query else []
    out: list[str] = []
    done: set[str] = set()
    for part in parts:
        name = unquote_plus(part.split("=", 1)[0])
        if name in params:
            if name in done:
                continue
            done.add(name)
            if only_missing:
                out.append(part)
                continue
            out.append(_pair(name, params[name]))
        else:
            out.append(part)
    out.extend(_pair(name, value) for name, value in params.items() if name not in done)
    return urlunsplit((scheme, netloc, path, "&".join(out), fragment))


def _pair(name: str, value: str) -> str:
    return f"{quote(name, safe='')}={quote(str(value), safe='')}"


def first_url(spec: PaginationSpec, url: str, page_size: int | None) -> str:
    """The URL of the first page: ``url`` plus the page size and the first page or offset."""
    if page_size is not None:
        url = set_query_params(url, {spec.page_size_param: str(page_size)}, only_missing=True)
    if spec.kind in ("page", "offset"):
        url = set_query_params(url, {spec.param_name: str(spec.start)})
    return url


def next_url(spec: PaginationSpec, request_url: str, *, headers: Mapping[str, str], body: object,
             records: int, page_number: int, page_size: int | None) -> str | None:
    """The URL of the page after the one fetched from ``request_url`` (page ``page_number``,
    1-based, holding ``records`` records), or ``None`` when it was the last. ``headers`` must be
    case-insensitive (``httpx.Headers``) or have lower-case keys. ``max_pages`` is the caller's job."""
    if records == 0 or spec.kind == "none":
        return None
    if spec.kind == "link":
        target = next_link(headers.get("link"))
        return urljoin(request_url, target) if target else None
    if spec.kind == "nextPageToken":
        token = headers.get(spec.header_name.lower()) or headers.get(spec.header_name)
        token = token.strip() if token else ""
        return set_query_params(request_url, {spec.param_name: token}) if token else None
    if spec.kind == "cursor":
        value = jsonpath.get(body, spec.path or ())
        if value is jsonpath.MISSING or value is None or value is False or value in ("", [], {}):
            return None
        if value is True or isinstance(value, (dict, list)):
            # a path to the object holding the cursor ("meta" for "meta.next"): taken as no cursor,
            # paging stopped after page 1 without a word
            raise PaginationError(f"expected the next cursor (a string or a number) at pagination.path, found "
                                  f"{'true' if value is True else 'an object' if isinstance(value, dict) else 'a list'}"
                                  f": point pagination.path at the cursor itself")
        text = str(value)
        if text.lower().startswith(("http://", "https://")):
            raise PaginationError("the next cursor (pagination.path) is a URL, not a cursor: with "
                                  '{"type": "nextUrl", "path": ...} poller follows it as the next page')
        return set_query_params(request_url, {spec.param_name: text})
    if spec.kind == "nextUrl":
        value = jsonpath.get(body, spec.path or ())
        if value is jsonpath.MISSING or value is None or value is False or value == "":
            return None
        if not isinstance(value, str):
            raise PaginationError(f"expected the next page's URL (a string) at pagination.path, found "
                                  f"{'an object' if isinstance(value, dict) else type(value).__name__}")
        return urljoin(request_url, value.strip())
    if spec.more_path is not None:
        # page / offset with morePath: the provider says whether more pages follow
        more = jsonpath.get(body, spec.more_path)
        if more is jsonpath.MISSING or more is None or more is False or more in ("", [], {}):
            return None
    elif page_size is not None and records < page_size:
        return None  # page / offset: a page shorter than the page size is the last
    if spec.kind == "page":
        return set_query_params(request_url, {spec.param_name: str(spec.start + page_number)})
    current = _query_value(request_url, spec.param_name)
    offset = int(current) if current is not None and current.lstrip("-").isdigit() else spec.start
    return set_query_params(request_url, {spec.param_name: str(offset + records)})


def _query_value(url: str, name: str) -> str | None:
    for part in urlsplit(url).query.split("&"):
        key, _, value = part.partition("=")
        if unquote_plus(key) == name:
            return unquote_plus(value)
    return None


def parse_link_header(value: str | None) -> list[tuple[str, dict[str, str]]]:
    """The links of an RFC 8288 ``Link`` header: ``[(target, {param: value})]``, names lower-cased.
    Commas inside ``<...>`` and in quoted values belong to them; they do not separate links."""
    links: list[tuple[str, dict[str, str]]] = []
    text = value or ""
    i, n = 0, len(text)
    while (i := text.find("<", i)) >= 0 and (end := text.find(">", i + 1)) >= 0:
        target, i = text[i + 1:end].strip(), end + 1
        params: dict[str, str] = {}
        while (m := _PARAM.match(text, i)) is not None:
            name, i = m.group(1).lower(), m.end()
            raw = ""
            if m.group(2):  # "=": a quoted string or a token follows
                if text.startswith('"', i):
                    q = _QUOTED.match(text, i)
                    raw = re.sub(r"\\(.)", r"\1", q.group(1)) if q else text[i + 1:]
                    i = q.end() if q else n
                else:
                    t = _TOKEN.match(text, i)
                    raw, i = t.group(0).strip(), t.end()  # type: ignore[union-attr]
            params.setdefault(name, raw)  # RFC 8288: the first occurrence counts
        links.append((target, params))
    return links


_PARAM = re.compile(r"\s*;\s*([^=;,\s]+)\s*(=)?\s*")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_TOKEN = re.compile(r"[^;,]*")


def next_link(value: str | None) -> str | None:
    """The target of the first link whose ``rel`` includes ``next`` (case-insensitive)."""
    for target, params in parse_link_header(value):
        if "next" in params.get("rel", "").lower().split():
            return target
    return None
