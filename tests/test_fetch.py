"""Fetching: pagination, retries, Retry-After, limits, messages, masking (DESIGN.md §5, §9).

Unit tests drive ``fetch_pages`` through ``httpx.MockTransport``; the last ones go over
loopback to the fake provider of tests/fakeprovider.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from poller import jsonio, jsonpath, redact
from poller.errors import FetchError
from poller.httpclient import parse_retry_after
from poller.poll.fetch import FetchSpec, Page, PaginationSpec, fetch_pages
from poller.poll.pagination import first_url, next_link, parse_link_header, set_query_params
from poller.redact import mask_url
from tests.fakeprovider import FakeProvider

BASE = "https://api.example.com/v2/contacts"
DATE = "Mon, 20 Aug 2018 15:29:34 GMT"
DATE_DT = datetime(2018, 8, 20, 15, 29, 34, tzinfo=timezone.utc)


class Sleeps(list):
    """The injected sleep: records each wait, never sleeps."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


Handler = Callable[[httpx.Request], httpx.Response]


def fetch(handler: Handler, spec: FetchSpec, *, random: Callable[[], float] = lambda: 0.0,
          ) -> tuple[list[Page], FetchError | None, Sleeps, list[httpx.Request]]:
    """All pages of ``spec`` from ``handler``: (pages, the error that ended it or None, sleeps, requests)."""
    requests: list[httpx.Request] = []
    sleeps = Sleeps()

    def recording(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return handler(request)

    async def main() -> tuple[list[Page], FetchError | None]:
        pages: list[Page] = []
        async with httpx.AsyncClient(transport=httpx.MockTransport(recording)) as client:
            try:
                async for page in fetch_pages(client, spec, sleep=sleeps, random=random):
                    pages.append(page)
            except FetchError as exc:
                return pages, exc
        return pages, None

    pages, error = asyncio.run(main())
    return pages, error, sleeps, requests


def spec(url: str = BASE, **kw: Any) -> FetchSpec:
    return FetchSpec(resource="7950647/contacts", url=url, headers=kw.pop("headers", {}), **kw)


def items(start: int, count: int) -> list[dict]:
    return [{"id": str(i)} for i in range(start, start + count)]


def ids(pages: list[Page]) -> list[str]:
    return [r["id"] for p in pages for r in p.records]


def params(request: httpx.Request) -> dict[str, str]:
    return dict(request.url.params)


def ok(body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


# -- pagination kinds ------------------------------------------------------------------------------

def test_single_page_and_page_fields() -> None:
    pages, error, sleeps, reqs = fetch(lambda r: ok(items(0, 3), {"Date": DATE}), spec(page_size=50))
    assert error is None and sleeps == []
    [page] = pages
    assert (page.number, page.status, page.server_date) == (1, 200, DATE_DT)
    assert page.records == items(0, 3)
    assert page.raw_bytes == len(json.dumps(items(0, 3), separators=(",", ":")).encode())
    assert page.url == BASE + "?pageSize=50" == str(reqs[0].url)


def test_page_size_added_unless_present_other_params_kept() -> None:
    url = BASE + "?where=lastModifiedDate%3E%3D%272018-08-20%27&pageSize=7"
    _, _, _, reqs = fetch(lambda r: ok([]), spec(url, page_size=200))
    assert str(reqs[0].url) == url  # untouched, encoding included
    _, _, _, reqs = fetch(lambda r: ok([]), spec(BASE + "?q=a+b", page_size=200,
                                                 pagination=PaginationSpec(page_size_param="limit")))
    assert str(reqs[0].url) == BASE + "?q=a+b&limit=200"


def test_link_follows_next_relative_and_absolute() -> None:
    links = {
        "1": '<https://api.example.com/v2/contacts?page=1>; rel="prev", <?cursor=2&pageSize=2>; rel="next"',
        "2": '</v2/contacts?cursor=3&pageSize=2>; rel="next last"; title="x, y"',
        "3": '<https://api.example.com/v2/contacts?cursor=4&pageSize=2>; REL=Next',
        "4": '<https://api.example.com/v2/contacts?cursor=1>; rel="first"',
    }

    def handler(request: httpx.Request) -> httpx.Response:
        n = request.url.params.get("cursor", "1")
        return ok(items(int(n) * 10, 2), {"Link": links[n]})

    pages, error, _, reqs = fetch(handler, spec(page_size=2, pagination=PaginationSpec(kind="link")))
    assert error is None and [p.number for p in pages] == [1, 2, 3, 4]
    assert [str(r.url) for r in reqs] == [BASE + "?pageSize=2"] + [
        f"{BASE}?cursor={n}&pageSize=2" for n in (2, 3, 4)]
    assert ids(pages)[:2] == ["10", "11"] and len(ids(pages)) == 8


def test_link_relative_to_the_request_path() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return ok(items(0, 1), {"Link": '<next-page?p=2>; rel="next"'} if len(seen) == 1 else {})

    fetch(handler, spec("https://api.example.com/v2/contacts/list", pagination=PaginationSpec(kind="link")))
    assert seen[1] == "https://api.example.com/v2/contacts/next-page?p=2"


def test_link_parser() -> None:
    assert parse_link_header('<a,b>; rel="next"; title="c, d", <e>; rel=prev') == [
        ("a,b", {"rel": "next", "title": "c, d"}), ("e", {"rel": "prev"})]
    assert next_link('<a>; rel="prev"') is None
    assert next_link(None) is None
    assert next_link('<x>; rel="last next"') == "x"
    assert next_link('<x>; rel=prev; rel=next') is None  # RFC 8288: the first rel counts


def test_next_page_token_replaces_param_and_keeps_others() -> None:
    tokens = {"stale": "t/2+", "t/2+": "t3"}

    def handler(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("nextPage")
        nxt = tokens.get(token)
        return ok(items(len(token or "") * 10, 2), {"elements-next-page-token": nxt} if nxt else {})

    url = BASE + "?where=a%3D1&nextPage=stale&b=2"
    pages, error, _, reqs = fetch(handler, spec(url, pagination=PaginationSpec(kind="nextPageToken")))
    assert error is None and len(pages) == 3
    assert str(reqs[1].url) == BASE + "?where=a%3D1&nextPage=t%2F2%2B&b=2"
    assert params(reqs[2]) == {"where": "a=1", "nextPage": "t3", "b": "2"}


def test_next_page_token_custom_header_and_param() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return ok(items(1, 1), {}) if "after" in request.url.params else ok(items(0, 1), {"X-Next": "abc"})

    pages, _, _, reqs = fetch(handler, spec(pagination=PaginationSpec(kind="nextPageToken", header="x-next",
                                                                       param="after")))
    assert len(pages) == 2 and params(reqs[1]) == {"after": "abc"}


def test_page_numbers_from_start_stop_at_short_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params["p"])
        return ok(items(n * 10, 3 if n < 2 else 1))

    url = BASE + "?p=9&where=x"
    pages, error, _, reqs = fetch(handler, spec(url, page_size=3, pagination=PaginationSpec(kind="page", param="p",
                                                                                            start=0)))
    assert error is None and len(pages) == 3
    assert [str(r.url) for r in reqs] == [f"{BASE}?p={n}&where=x&pageSize=3" for n in (0, 1, 2)]


def test_page_without_page_size_stops_at_empty_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params["page"])
        return ok(items(n * 10, 2) if n <= 3 else [])

    pages, _, _, reqs = fetch(handler, spec(pagination=PaginationSpec(kind="page")))
    assert [len(p.records) for p in pages] == [2, 2, 2, 0]
    assert [params(r)["page"] for r in reqs] == ["1", "2", "3", "4"]


def test_offset_advances_by_records_and_stops_at_short_page() -> None:
    data = items(0, 25)

    def handler(request: httpx.Request) -> httpx.Response:
        start, size = int(request.url.params["offset"]), int(request.url.params["limit"])
        return ok(data[start:start + size])

    pages, error, _, reqs = fetch(handler, spec(page_size=10, pagination=PaginationSpec(
        kind="offset", start=0, page_size_param="limit")))
    assert error is None and ids(pages) == [r["id"] for r in data]
    assert [params(r)["offset"] for r in reqs] == ["0", "10", "20"]


def test_offset_full_last_page_costs_one_empty_request() -> None:
    data = items(0, 20)

    def handler(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params["offset"])
        return ok(data[start:start + 10])

    pages, _, _, reqs = fetch(handler, spec(page_size=10, pagination=PaginationSpec(kind="offset", start=0)))
    assert [len(p.records) for p in pages] == [10, 10, 0] and len(reqs) == 3


@pytest.mark.parametrize("last", [{}, {"next": None}, {"next": ""}, {"next": False}, {"next": {}}, {"next": []}])
def test_cursor_from_body_until_missing_null_or_empty(last: dict) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        meta = {"next": 42} if cursor == "old" else {"next": "c 3"} if cursor == "42" else last
        return ok({"data": items({"old": 0, "42": 2}.get(cursor, 4), 2), "meta": meta})

    pages, error, _, reqs = fetch(handler, spec(
        BASE + "?cursor=old&x=1", records_path=("data",),
        pagination=PaginationSpec(kind="cursor", path=jsonpath.parse("meta.next"))))
    assert error is None and len(pages) == 3
    assert [str(r.url) for r in reqs] == [BASE + "?cursor=old&x=1", BASE + "?cursor=42&x=1",
                                          BASE + "?cursor=c%203&x=1"]


@pytest.mark.parametrize("found, said", [({"next": "p2"}, "an object"), (["p2"], "a list"), (True, "true")])
def test_a_cursor_that_is_not_one_fails_the_poll_instead_of_ending_it_after_page_1(found: object, said: str) -> None:
    """pagination.path "meta" for "meta.next": the poll stopped after page 1, and said nothing."""
    pages, error, _, reqs = fetch(lambda r: ok({"data": items(0, 2), "meta": found}), spec(
        records_path=("data",), pagination=PaginationSpec(kind="cursor", path=jsonpath.parse("meta"))))
    assert len(reqs) == 1 and isinstance(error, FetchError), error
    assert f"expected the next cursor (a string or a number) at pagination.path, found {said}: point " \
           "pagination.path at the cursor itself" in str(error)


@pytest.mark.parametrize("kind", ["link", "nextPageToken", "cursor", "page"])
def test_every_kind_stops_on_an_empty_page(kind: str) -> None:
    headers = {"Link": '<?more=1>; rel="next"', "elements-next-page-token": "more"}
    pages, _, _, reqs = fetch(lambda r: ok({"data": [], "next": "more"}, headers), spec(
        records_path=("data",), pagination=PaginationSpec(kind=kind, path=("next",))))
    assert len(reqs) == 1 and pages[0].records == []


def test_max_pages_fails_the_poll_after_yielding_the_pages() -> None:
    """Stopping quietly would let the cursor move past the records of the pages never fetched."""
    pages, error, _, reqs = fetch(lambda r: ok(items(5 * int(r.url.params["page"]), 5)), spec(
        page_size=5, pagination=PaginationSpec(kind="page", max_pages=3)))
    assert len(pages) == 3 and len(reqs) == 3
    assert isinstance(error, FetchError) and "more pages remain after maxPages=3" in str(error)
    assert error.resource == "7950647/contacts"


def test_a_next_page_on_another_origin_is_refused() -> None:
    """API headers (tokens) must not travel to another host, scheme or port."""
    pages, error, _, reqs = fetch(lambda r: ok(items(0, 2), {"Link": '<https://evil.example/c?page=2>; rel="next"'}),
                                  spec(pagination=PaginationSpec(kind="link")))
    assert len(pages) == 1 and len(reqs) == 1
    assert isinstance(error, FetchError) and "another origin" in str(error)


def test_max_pages_does_not_warn_when_the_last_page_is_the_limit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "poller.poll.fetch")
    fetch(lambda r: ok(items(0, 5) if r.url.params["page"] == "1" else items(0, 2)),
          spec(page_size=5, pagination=PaginationSpec(kind="page", max_pages=2)))
    assert not [r for r in caplog.records if r.getMessage() == "fetch.max_pages"]


def test_a_pagination_cycle_fails_the_poll_at_once() -> None:
    """The same next URL again (the token never changes) would loop until maxPages: it fails at once."""
    served = iter(range(1000))
    pages, error, _, reqs = fetch(lambda r: ok(items(next(served), 1), {"elements-next-page-token": "same"}),
                                  spec(pagination=PaginationSpec(kind="nextPageToken")))
    assert len(reqs) == 2 and len(pages) == 2
    assert isinstance(error, FetchError)
    assert "pagination cycle: page 2 leads back to page 2 (https://api.example.com/v2/contacts?nextPage=same)" in str(error)


@pytest.mark.parametrize(("kind", "extra"), [("page", {}), ("offset", {}), ("nextPageToken", {}), ("link", {})])
def test_a_page_identical_to_an_earlier_one_fails_the_poll_at_once(kind: str, extra: dict) -> None:
    """json-server 1.0 answers past-the-end pages with the last one; a provider that ignores the
    page parameter sends page 1 again. Before, page pagination ran to maxPages (1,000 requests)."""
    def handler(request: httpx.Request) -> httpx.Response:
        n = len(seen)
        seen.append(request)
        headers = {"elements-next-page-token": f"t{n}", "Link": f'<{BASE}?p={n + 1}>; rel="next"'}
        return ok(items(0, 5) if n >= 1 else items(100, 5), headers)  # page 2, 3, ...: all the same

    seen: list[httpx.Request] = []
    pages, error, _, reqs = fetch(handler, spec(page_size=5, pagination=PaginationSpec(kind=kind, **extra)))
    assert len(reqs) == 3 and len(pages) == 2
    assert isinstance(error, FetchError) and f"page 3 is the same as page 2: the provider ignores the pagination ({kind})" \
        in str(error)
    assert ("set pagination.morePath" in str(error)) == (kind in ("page", "offset"))


@pytest.mark.parametrize("kind", ["page", "cursor"])
def test_a_page_of_the_same_records_in_a_fresh_envelope_fails_the_poll_at_once(kind: str) -> None:
    """A request id in the envelope, or a new cursor token with every answer, made every body
    differ: the poll ran to maxPages (1,000 requests), then said to raise it."""
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok({"requestId": f"r{len(seen)}", "next": f"token-{len(seen)}", "data": items(0, 5)})

    seen: list[httpx.Request] = []
    pages, error, _, reqs = fetch(handler, spec(page_size=5, records_path=("data",), pagination=PaginationSpec(
        kind=kind, path=("next",) if kind == "cursor" else None)))
    assert len(reqs) == 2 and len(pages) == 1, len(reqs)
    assert isinstance(error, FetchError) and f"page 2 is the same as page 1: the provider ignores the pagination " \
        f"({kind})" in str(error)


def test_query_param_helpers() -> None:
    assert set_query_params("http://h/p?a=1&b=2&a=3#f", {"a": "x y", "c": "&"}) == "http://h/p?a=x%20y&b=2&c=%26#f"
    assert set_query_params("http://h/p?page%20size=1", {"page size": "2"}, only_missing=True) == \
        "http://h/p?page%20size=1"
    assert first_url(PaginationSpec(kind="offset", start=0), "http://h/p", None) == "http://h/p?offset=0"


def test_pagination_docstring_examples() -> None:
    import doctest

    import poller.poll.pagination

    result = doctest.testmod(poller.poll.pagination)
    assert result.attempted >= 4 and result.failed == 0


def test_pagination_spec_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown pagination kind"):
        PaginationSpec(kind="pages")
    with pytest.raises(ValueError, match="cursor pagination needs"):
        PaginationSpec(kind="cursor")


# -- errors and retries ----------------------------------------------------------------------------

def sequence(*responses: httpx.Response | Exception) -> Handler:
    """A handler answering with ``responses`` in turn (the last one repeated)."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler


def test_retry_after_seconds_waits_inline() -> None:
    pages, error, sleeps, reqs = fetch(sequence(httpx.Response(429, headers={"Retry-After": "7"}),
                                                ok(items(0, 1))), spec())
    assert error is None and len(pages) == 1 and len(reqs) == 2
    assert sleeps == [7.0]


def test_retry_after_http_date_measured_against_the_date_header() -> None:
    later = format_datetime(DATE_DT + timedelta(seconds=4), usegmt=True)
    _, error, sleeps, _ = fetch(sequence(httpx.Response(503, headers={"Retry-After": later, "Date": DATE}),
                                         ok([])), spec())
    assert error is None and sleeps == [4.0]


def test_long_retry_after_fails_at_once_with_retry_after() -> None:
    before = datetime.now(timezone.utc)
    _, error, sleeps, reqs = fetch(lambda r: httpx.Response(429, headers={"Retry-After": "120"}), spec())
    assert sleeps == [] and len(reqs) == 1
    assert error is not None and error.status == 429 and error.retry_after is not None
    assert before + timedelta(seconds=120) <= error.retry_after <= datetime.now(timezone.utc) + timedelta(seconds=120)
    assert "Retry-After '120'" in str(error)


def test_http_date_reads_every_header_and_keeps_the_last_for_the_polls_that_repeat_it() -> None:
    from poller.httpclient import http_date

    first = http_date("Wed, 02 Dec 2026 10:00:00 GMT")
    second = http_date("Wed, 02 Dec 2026 10:00:01 +0100")
    assert first == datetime(2026, 12, 2, 10, 0, 0, tzinfo=timezone.utc)
    assert second == datetime(2026, 12, 2, 9, 0, 1, tzinfo=timezone.utc)
    assert http_date("Wed, 02 Dec 2026 10:00:01 +0100") is second  # the same text: read once
    assert http_date("not a date") is None and http_date("") is None
    assert http_date("Wed, 02 Dec 2026 10:00:00 GMT") == first


def test_long_retry_after_as_http_date() -> None:
    later = format_datetime(DATE_DT + timedelta(hours=1), usegmt=True)
    before = datetime.now(timezone.utc)
    _, error, sleeps, _ = fetch(lambda r: httpx.Response(503, headers={"Retry-After": later, "Date": DATE}), spec())
    assert sleeps == [] and error is not None and error.status == 503 and error.retry_after is not None
    # an hour from now by our clock, whatever the provider's clock says
    assert abs((error.retry_after - before - timedelta(hours=1)).total_seconds()) < 5


def test_short_retry_after_every_time_fails_after_three_attempts() -> None:
    _, error, sleeps, reqs = fetch(lambda r: httpx.Response(429, headers={"Retry-After": "2"}), spec())
    assert len(reqs) == 3 and sleeps == [2.0, 2.0]
    assert error is not None and error.status == 429 and error.retry_after is not None


@pytest.mark.parametrize("value, expected", [
    ("0", 0.0), (" 10 ", 10.0), ("1.5", 1.5), ("soon", None), ("", None), (None, None), ("-3", None),
    ("Mon, 20 Aug 2018 15:29:44 GMT", 10.0), ("Mon, 20 Aug 2018 15:29:00 GMT", 0.0),
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, DATE_DT) == expected


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_retried_three_attempts_then_fail(status: int) -> None:
    _, error, sleeps, reqs = fetch(lambda r: httpx.Response(status, text="upstream down"), spec())
    assert len(reqs) == 3 and sleeps == [0.5, 1.0]
    assert isinstance(error, FetchError) and error.status == status
    assert str(error) == (f"7950647/contacts: HTTP {status} from {BASE}: provider error: "
                          "text/plain 'upstream down' (after 3 attempts)")


def test_backoff_has_jitter() -> None:
    _, _, sleeps, _ = fetch(lambda r: httpx.Response(500), spec(), random=lambda: 1.0)
    assert sleeps == [0.625, 1.25]


def test_server_error_then_success() -> None:
    pages, error, sleeps, _ = fetch(sequence(httpx.Response(500), ok(items(0, 2))), spec())
    assert error is None and ids(pages) == ["0", "1"] and sleeps == [0.5]


def test_network_error_retried() -> None:
    pages, error, sleeps, _ = fetch(sequence(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                             ok(items(0, 1))), spec())
    assert error is None and len(pages) == 1 and sleeps == [0.5, 1.0]


def test_network_error_every_time_fails() -> None:
    _, error, sleeps, reqs = fetch(sequence(httpx.ConnectError("Connection refused")), spec())
    assert len(reqs) == 3 and len(sleeps) == 2
    assert error is not None and error.status is None
    assert str(error) == (f"7950647/contacts: {BASE}: network error: ConnectError: Connection refused "
                          "(after 3 attempts)")
    assert isinstance(error.__cause__, httpx.ConnectError)


def test_non_json_2xx_retried_then_fails_saying_what_was_found() -> None:
    page = httpx.Response(200, text="<html><body>Maintenance</body></html>", headers={"Content-Type": "text/html"})
    _, error, sleeps, reqs = fetch(lambda r: page, spec())
    assert len(reqs) == 3 and sleeps == [0.5, 1.0]
    assert error is not None and error.status == 200
    assert error.reason == ("expected a JSON body, found text/html '<html><body>Maintenance</body></html>' "
                            "(after 3 attempts)")


def test_non_json_then_json_succeeds() -> None:
    pages, error, _, _ = fetch(sequence(httpx.Response(200, content=b""), ok(items(0, 1))), spec())
    assert error is None and len(pages) == 1


def test_empty_body_message() -> None:
    _, error, _, _ = fetch(lambda r: httpx.Response(200, content=b"  "), spec())
    assert error is not None and error.reason.startswith("expected a JSON body, found an empty body")


def test_no_content_is_an_empty_page() -> None:
    pages, error, _, _ = fetch(lambda r: httpx.Response(204), spec(records_path=("data",)))
    assert error is None and pages[0].records == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_client_errors_fail_at_once(status: int) -> None:
    _, error, sleeps, reqs = fetch(lambda r: httpx.Response(status, json={"message": "no"}), spec())
    assert len(reqs) == 1 and sleeps == []
    assert error is not None and error.status == status
    assert error.reason == "request refused: application/json '{\"message\":\"no\"}'"


def test_a_refusal_without_a_content_type_says_so() -> None:
    _, error, _, _ = fetch(lambda r: httpx.Response(404, content=b"nope"), spec())
    assert error is not None and error.reason == "request refused: a body without Content-Type: 'nope'"


def test_unfollowed_redirect_names_the_target() -> None:
    _, error, _, reqs = fetch(lambda r: httpx.Response(302, headers={"Location": "https://login.example.com/"}),
                              spec())
    assert len(reqs) == 1 and error is not None and error.status == 302
    assert error.reason == "unexpected redirect to https://login.example.com/"


def test_429_without_retry_after_backs_off() -> None:
    _, error, sleeps, reqs = fetch(lambda r: httpx.Response(429), spec())
    assert len(reqs) == 3 and sleeps == [0.5, 1.0] and error is not None and error.retry_after is None


def test_body_over_the_cap_by_content_length() -> None:
    _, error, sleeps, reqs = fetch(lambda r: ok(items(0, 100)), spec(max_response_bytes=100))
    assert len(reqs) == 1 and sleeps == []
    assert error is not None and error.status == 200
    assert "larger than the limit of 100 bytes" in error.reason


def test_body_over_the_cap_while_streaming_stops_reading() -> None:
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        yield b"["
        while True:
            sent.append(1)
            yield b'{"id": "x"},' * 100

    _, error, _, reqs = fetch(lambda r: httpx.Response(200, content=endless()), spec(max_response_bytes=10_000))
    assert len(reqs) == 1 and error is not None
    assert error.reason == "response body is larger than the limit of 10000 bytes"
    assert len(sent) <= 10  # stopped soon after the cap


def test_body_at_the_cap_is_accepted() -> None:
    body = json.dumps(items(0, 3)).encode()
    pages, error, _, _ = fetch(lambda r: httpx.Response(200, content=body), spec(max_response_bytes=len(body)))
    assert error is None and len(pages[0].records) == 3


@pytest.mark.parametrize("body, records_path, message", [
    ({"items": [], "total": 0}, None, "expected a JSON array of records, found an object with keys: items, total"),
    ({"items": [], "total": 0}, "data",
     "expected a JSON array of records at 'data' (recordsPath), found no 'data' in an object with keys: items, total"),
    ({"data": "oops"}, "data", "expected a JSON array of records at 'data' (recordsPath), found a string 'oops'"),
    ({"r": {"list": {"a": 1}}}, "r.list", "expected a JSON array of records at 'r.list' (recordsPath), "
                                          "found an object with keys: a"),
    ({"r": [{"x": 1}]}, "r[0]['x y']", "expected a JSON array of records at \"r[0]['x y']\" (recordsPath), "
                                       "found no \"r[0]['x y']\" in an object with keys: r"),
    ("text", None, "expected a JSON array of records, found a string 'text'"),
    (3, None, "expected a JSON array of records, found the number 3"),
])
def test_records_path_messages(body: object, records_path: str | None, message: str) -> None:
    path = jsonpath.parse(records_path) if records_path else None
    _, error, sleeps, reqs = fetch(lambda r: ok(body), spec(records_path=path))
    assert len(reqs) == 1 and sleeps == []  # not retried
    assert error is not None and error.status == 200 and error.reason == message


@pytest.mark.parametrize("empty", [None, {}])
def test_null_or_an_empty_object_at_records_path_is_an_empty_page(empty: object) -> None:
    """("data": null for no results; PHP's json_encode writes an empty array as {}.) They failed
    every poll that found nothing new."""
    pages, error, _, reqs = fetch(lambda r: ok({"data": empty, "total": 0}), spec(records_path=("data",)))
    assert error is None and len(reqs) == 1 and [p.records for p in pages] == [[]]


def test_records_path_nested() -> None:
    pages, _, _, _ = fetch(lambda r: ok({"response": {"rows": items(0, 2)}}),
                           spec(records_path=jsonpath.parse("response.rows")))
    assert ids(pages) == ["0", "1"]


def test_pages_arrive_before_a_later_failure() -> None:
    seen: list[int] = []

    async def main() -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            n = int(request.url.params["page"])
            return ok(items(n, 2)) if n < 3 else httpx.Response(500)

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            with pytest.raises(FetchError) as info:
                async for page in fetch_pages(client, spec(page_size=2, pagination=PaginationSpec(kind="page")),
                                              sleep=Sleeps()):
                    seen.append(page.number)
            assert info.value.status == 500 and "page=3" in info.value.url

    asyncio.run(main())
    assert seen == [1, 2]


def test_headers_and_timeout_are_sent() -> None:
    _, _, _, reqs = fetch(lambda r: ok([]), spec(headers={"Authorization": "User abc", "Accept": "application/json"},
                                                 timeout_s=12.5))
    assert reqs[0].headers["authorization"] == "User abc"
    assert reqs[0].extensions["timeout"] == {"connect": 12.5, "read": 12.5, "write": 12.5, "pool": 12.5}


@pytest.mark.parametrize("value", [None, "yesterday"])
def test_server_date_absent_or_unreadable(value: str | None) -> None:
    pages, _, _, _ = fetch(lambda r: ok([], {"Date": value} if value else {}), spec())
    assert pages[0].server_date is None


def test_server_date_is_aware_utc() -> None:
    pages, _, _, _ = fetch(lambda r: ok([], {"Date": "Mon, 20 Aug 2018 17:29:34 +0200"}), spec())
    assert pages[0].server_date == DATE_DT and pages[0].server_date.tzinfo == timezone.utc


def test_invalid_url_fails_at_once() -> None:
    sleeps = Sleeps()

    async def main() -> FetchError:
        async with httpx.AsyncClient() as client:  # a real transport, which checks the scheme; nothing is sent
            with pytest.raises(FetchError) as info:
                async for _ in fetch_pages(client, spec("api.example.com/v2/contacts?token=abc"), sleep=sleeps):
                    pass
        return info.value

    error = asyncio.run(main())
    assert sleeps == [] and error.status is None
    assert error.reason.startswith("invalid URL: UnsupportedProtocol") and "abc" not in str(error)


# -- secrets ---------------------------------------------------------------------------------------

def test_mask_url() -> None:
    assert mask_url("https://u:pw@h/p?apiKey=k1&access_token=t&X-Amz-Signature=s&client_secret=c&q=1&page=2") == \
        "https://u:***@h/p?apiKey=***&access_token=***&X-Amz-Signature=***&client_secret=***&q=1&page=2"
    assert mask_url("https://h/p/sekret%2Fx?q=sekret/x", ("sekret/x",)) == "https://h/p/***?q=***"
    assert mask_url("https://h/p?password", ()) == "https://h/p?password"
    assert mask_url("https://h/p?sig=1&design=2&Authorization=3") == "https://h/p?sig=***&design=2&Authorization=***"
    # names written percent-encoded or with + are read decoded, as before
    assert mask_url("https://h/p?api%5Fkey=1&q=2") == "https://h/p?api%5Fkey=***&q=2"
    assert mask_url("https://h/p?to+ken=1") == "https://h/p?to+ken=1"  # ("to ken": not a name that means a token)
    assert mask_url("https://h/p?%74oken=1") == "https://h/p?%74oken=***"


@given(st.lists(st.sampled_from(["a", "k", "ey", "to", "ken", "%", "+", "%3A", "%6B", "%4B", "%20", "%E2%84%AA",
                                  "%C5%BF", "sig", "?", "=", "&"]), max_size=10).map("".join))
@example("https://h/p?%E2%84%AAey=1")  # the Kelvin sign then "ey": "Key"
@example("https://h/p?to%4Ben=1")
def test_a_url_is_searched_for_sensitive_names_as_if_unquoted(url: str) -> None:
    # (the short way skips the unquoting when no escape can become a letter; "%E2%84%AA" is the Kelvin sign)
    assert redact._maybe_sensitive(url) == bool(redact._SENSITIVE.search(unquote_plus(url))), url


def test_secrets_masked_in_page_urls_and_errors() -> None:
    url = BASE + "/t0ps3cr3t?user=me&token=abc123"

    def handler(request: httpx.Request) -> httpx.Response:
        if "page=2" in str(request.url):
            return httpx.Response(401, text="bad credentials t0ps3cr3t")
        return ok(items(0, 1))

    pages, error, _, reqs = fetch(handler, spec(url, page_size=1, secrets=("t0ps3cr3t",),
                                                pagination=PaginationSpec(kind="page")))
    assert "abc123" in str(reqs[0].url)  # the real request is unmasked
    assert pages[0].url == BASE + "/***?user=me&token=***&pageSize=1&page=1"
    assert error is not None and "t0ps3cr3t" not in str(error) and "abc123" not in str(error)
    assert str(error) == ("7950647/contacts: HTTP 401 from " + BASE + "/***?user=me&token=***&pageSize=1&page=2: "
                          "request refused: text/plain 'bad credentials ***'")


def test_secrets_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "poller.poll.fetch")
    fetch(sequence(httpx.Response(500), ok([])), spec(BASE + "?apikey=zz9", headers={"Authorization": "zz8"},
                                                      secrets=("zz8",)))
    text = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "fetch.retry" in text and "fetch.page" in text
    assert "zz9" not in text and "zz8" not in text


# -- over loopback, against the fake provider ------------------------------------------------------

KINDS = {
    "none": PaginationSpec(),
    "link": PaginationSpec(kind="link"),
    "nextPageToken": PaginationSpec(kind="nextPageToken"),
    "page": PaginationSpec(kind="page"),
    "offset": PaginationSpec(kind="offset", start=0),
    "cursor": PaginationSpec(kind="cursor", path=jsonpath.parse("meta.next_cursor")),
}
REQUESTS = {"none": 1, "link": 25, "nextPageToken": 25, "page": 26, "offset": 26, "cursor": 25}


def loopback(provider: FakeProvider, fspec: FetchSpec, sleeps: Sleeps | None = None,
             ) -> tuple[list[Page], FetchError | None]:
    async def main() -> tuple[list[Page], FetchError | None]:
        pages: list[Page] = []
        async with httpx.AsyncClient() as client:
            try:
                async for page in fetch_pages(client, fspec, sleep=Sleeps() if sleeps is None else sleeps,
                                                random=lambda: 0.0):
                    pages.append(page)
            except FetchError as exc:
                return pages, exc
        return pages, None

    return asyncio.run(main())


def stamped(n: int) -> list[dict]:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return [{"id": str(i), "updated": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")}
            for i in range(n)]


@pytest.mark.parametrize("kind", list(KINDS))
def test_loopback_each_kind_2500_records(kind: str, make_fake_provider: Callable[..., FakeProvider]) -> None:
    provider = make_fake_provider(style=kind)
    provider.records.extend(stamped(2600))
    since = "2024-01-01T00:01:40Z"  # the first 100 records are older
    records_path = ("data",) if kind == "cursor" else None
    pages, error = loopback(provider, spec(provider.url(f"/contacts?updatedSince={since}"), page_size=100,
                                           records_path=records_path, pagination=KINDS[kind]))
    assert error is None
    assert ids(pages) == [str(i) for i in range(100, 2600)]
    assert len(provider.requests) == REQUESTS[kind] == len(pages)
    assert all(r.query["updatedSince"] == since and r.query["pageSize"] == "100" for r in provider.requests)
    assert all(p.status == 200 and p.server_date is not None for p in pages)


def test_loopback_500_on_page_3_fails_after_pages_1_and_2(make_fake_provider: Callable[..., FakeProvider]) -> None:
    provider = make_fake_provider(style="page")
    provider.records.extend(stamped(2500))
    provider.fail(500, page=3, times=3)
    sleeps = Sleeps()
    pages, error = loopback(provider, spec(provider.url("/contacts"), page_size=100,
                                           pagination=KINDS["page"]), sleeps)
    assert [p.number for p in pages] == [1, 2] and ids(pages) == [str(i) for i in range(200)]
    assert error is not None and error.status == 500 and error.url.endswith("page=3")
    assert [r.page for r in provider.requests] == [1, 2, 3, 3, 3] and len(sleeps) == 2
    # the next poll completes
    pages, error = loopback(provider, spec(provider.url("/contacts"), page_size=100, pagination=KINDS["page"]))
    assert error is None and len(ids(pages)) == 2500


def test_loopback_retry_after_and_garbage_then_success(fake_provider: FakeProvider) -> None:
    fake_provider.records.extend(stamped(3))
    fake_provider.fail(429, retry_after=3)
    fake_provider.fail(200, body=b"<html>oops</html>", headers={"Content-Type": "text/html"})
    sleeps = Sleeps()
    pages, error = loopback(fake_provider, spec(fake_provider.url("/c")), sleeps)
    assert error is None and len(ids(pages)) == 3 and sleeps == [3.0, 1.0]
    assert [r.fault.status if r.fault else None for r in fake_provider.requests] == [429, 200, None]


def test_loopback_dropped_connection_is_a_network_error(fake_provider: FakeProvider) -> None:
    fake_provider.records.extend(stamped(3))
    fake_provider.fail(drop=True, times=2)
    sleeps = Sleeps()
    pages, error = loopback(fake_provider, spec(fake_provider.url("/c")), sleeps)
    assert error is None and len(ids(pages)) == 3 and len(sleeps) == 2


def test_loopback_slow_response_times_out(fake_provider: FakeProvider) -> None:
    fake_provider.fail(None, delay_s=5, times=None)  # the server waits; stop() interrupts it
    pages, error = loopback(fake_provider, spec(fake_provider.url("/c"), timeout_s=0.1))
    assert pages == [] and error is not None and "no complete response within 0.1 s" in error.reason
    deadline = time.monotonic() + 5
    while len(fake_provider.requests) < 3 and time.monotonic() < deadline:  # the server may lag the client
        time.sleep(0.01)
    assert len(fake_provider.requests) == 3


@pytest.mark.parametrize("offset", [-300, 300])
def test_loopback_provider_clock_offset(offset: int, make_fake_provider: Callable[..., FakeProvider]) -> None:
    provider = make_fake_provider(clock_offset_s=offset)
    pages, _ = loopback(provider, spec(provider.url("/c")))
    skew = (pages[0].server_date - datetime.now(timezone.utc)).total_seconds()  # type: ignore[operator]
    assert abs(skew - offset) < 3


def test_loopback_large_body_refused(fake_provider: FakeProvider) -> None:
    fake_provider.records.extend(stamped(1000))
    pages, error = loopback(fake_provider, spec(fake_provider.url("/c"), max_response_bytes=4096))
    assert pages == [] and error is not None and "larger than the limit of 4096 bytes" in error.reason


# -- the fake provider itself ----------------------------------------------------------------------

@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def test_fake_since_filter_is_inclusive_and_keeps_unreadable_stamps(
        fake_provider: FakeProvider, http: httpx.Client) -> None:
    fake_provider.records.extend([{"id": "a", "updated": "2024-01-01T00:00:00Z"},
                                  {"id": "b", "updated": "2024-01-01T01:00:00+01:00"},
                                  {"id": "c", "updated": "2024-01-01T00:00:01Z"},
                                  {"id": "d", "updated": "garbage"},
                                  {"id": "e", "updated": 1704067200000}])

    def served(since: str) -> list[str]:
        return [r["id"] for r in http.get(fake_provider.url(f"/x?updatedSince={since}")).json()]

    assert served("2024-01-01T00:00:00Z") == ["a", "b", "c", "d", "e"]
    assert served("1704067200001") == ["c", "d"]
    fake_provider.default.inclusive = False
    assert served("2024-01-01T00:00:00Z") == ["c", "d"]
    bad = http.get(fake_provider.url("/x?updatedSince=2024-01-01T00:00:00+00:00"))  # "+" unencoded: a space
    assert bad.status_code == 400 and "cannot read updatedSince" in bad.text
    assert served("2024-01-01T00:00:00%2B00:00") == ["c", "d"]


def test_fake_collections_records_key_and_absolute_links(
        fake_provider: FakeProvider, http: httpx.Client) -> None:
    accounts = fake_provider.add_collection("/accounts", style="link", page_size=2, records_key="items",
                                            link_absolute=True, page_start=0)
    accounts.records.extend(stamped(3))
    fake_provider.records.append({"id": "default"})
    response = http.get(fake_provider.url("/accounts?q=1"))
    assert [r["id"] for r in response.json()["items"]] == ["0", "1"] and response.json()["total"] == 3
    assert response.headers["link"] == f'<{fake_provider.url("/accounts?q=1&page=1")}>; rel="next"'
    assert http.get(fake_provider.url("/contacts")).json() == [{"id": "default"}]
    assert [r.path for r in fake_provider.requests] == ["/accounts", "/contacts"]


def test_fake_faults_by_request_number_forever_and_request_log(
        fake_provider: FakeProvider, http: httpx.Client) -> None:
    fake_provider.fail(418, request=2, body="teapot")
    always = fake_provider.fail(502, page=5, times=None)
    assert http.get(fake_provider.url("/x")).status_code == 200
    assert http.get(fake_provider.url("/x")).text == "teapot"
    assert http.get(fake_provider.url("/x")).status_code == 200
    fake_provider.default.style = "offset"
    assert [http.get(fake_provider.url("/x?offset=400")).status_code for _ in range(2)] == [502, 502]
    assert always.times is None
    last = fake_provider.requests[-1]
    assert (last.number, last.page, last.query, last.fault) == (5, 5, {"offset": "400"}, always)
    assert last.headers["host"].startswith("127.0.0.1:")


def test_fake_stop_is_prompt_with_idle_keep_alive_connections(make_fake_provider: Callable[..., FakeProvider],
                                                              ) -> None:
    provider = make_fake_provider()
    with httpx.Client() as client:
        assert client.get(provider.url("/x")).status_code == 200  # the connection stays open, idle
        provider.stop()
    provider.stop()  # twice is harmless
    with pytest.raises(RuntimeError, match="not started"):
        provider.url("/x")


def test_retries_within_a_poll_are_no_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """A failing poll is one warning (poll.failed, from the engine), not one per attempt: 10,000
    refused ports logged three per poll."""
    caplog.set_level(logging.INFO, "poller.poll.fetch")
    fetch(sequence(httpx.Response(500), httpx.Response(500), httpx.Response(500)), spec(BASE))
    retries = [r for r in caplog.records if r.getMessage() == "fetch.retry"]
    assert len(retries) == 2 and {r.levelno for r in retries} == {logging.INFO}


@pytest.mark.parametrize("deep", [False, True], ids=["plain", "a-record-past-the-decoders"])
def test_a_large_page_is_decoded_in_parts_with_other_tasks_running_between(monkeypatch: pytest.MonkeyPatch,
                                                                          deep: bool) -> None:
    """Also with a record nested past what the decoders take, which made the whole body decoded
    at once (0.4 s of a 44 MB page with the loop held): only its part is cut (jsonsteps)."""
    from poller.poll import fetch as fetch_module, jsonsteps

    monkeypatch.setattr(jsonsteps, "STEP", 256)
    monkeypatch.setattr(fetch_module, "STEPPED_BYTES", 512)
    monkeypatch.setattr(fetch_module, "_decode", lambda *a: pytest.fail("the body was decoded whole"))
    records = [{"id": str(i), "note": "a [bracket, \"quote\" and {brace}"} for i in range(300)]
    body = json.dumps({"data": records, "more": False}).encode()
    if deep:
        body = body.replace(b'{"id": "150"', b'{"v": ' + _nested(1100).encode() + b', "id": "150"')
        records = jsonio.loads(jsonio.cut_deep(body, jsonio.CUT_LEVELS + 1))["data"]  # type: ignore[index]
        assert jsonio.depth(records[150]) == 1101
    ticks: list[int] = []  # the other task's count each time the walk went on

    async def main() -> list[Page]:
        count = 0

        async def other() -> None:
            nonlocal count
            while True:
                await asyncio.sleep(0)
                count += 1

        original = jsonsteps.decode

        def decode(data: bytes, path: Any) -> Iterator[None]:
            walk = original(data, path)
            while True:
                try:
                    next(walk)
                except StopIteration as done:
                    return done.value
                ticks.append(count)
                yield

        monkeypatch.setattr(jsonsteps, "decode", decode)
        task = asyncio.create_task(other())
        await asyncio.sleep(0)
        try:
            async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body))) as c:
                return [p async for p in fetch_pages(c, spec(records_path=("data",)), sleep=Sleeps(), random=lambda: 0.0)]
        finally:
            task.cancel()

    pages = asyncio.run(main())
    assert [p.records for p in pages] == [records]
    assert len(ticks) > 20 and ticks[-1] > ticks[0]  # parts, and the other task ran between them


def test_a_large_body_that_is_not_json_is_said_as_a_small_one_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from poller.poll import fetch as fetch_module

    monkeypatch.setattr(fetch_module, "STEPPED_BYTES", 16)
    page = httpx.Response(200, text="<html><body>Maintenance</body></html>", headers={"Content-Type": "text/html"})
    _, error, _, reqs = fetch(lambda r: page, spec())
    assert len(reqs) == 3 and error is not None
    assert error.reason == ("expected a JSON body, found text/html '<html><body>Maintenance</body></html>' "
                            "(after 3 attempts)")
    bom = httpx.Response(200, content=b"\xef\xbb\xbf" + json.dumps(items(0, 5)).encode())
    pages, error, _, _ = fetch(lambda r: bom, spec())  # read whole, as before (json reads the BOM)
    assert error is None and ids(pages) == [str(i) for i in range(5)]


def test_a_url_that_carries_its_page_size_gets_no_second_one() -> None:
    """``"url": "/a?limit=${pageSize}", "pageSize": 25``: the page size is in the URL under the
    provider's own name; adding pageSize=25 beside it made strict APIs refuse the request."""
    from poller.config import load_config_text
    from poller.poll.engine import fetch_spec

    def spec_for(url: str) -> FetchSpec:
        config = load_config_text(json.dumps({"id": "i", "element": {"key": "crm"}, "api": {
            "baseUrl": "https://api.example.com/v1"}, "configuration": {
            "event.notification.enabled": True, "event.notification.callback.url": "http://127.0.0.1:9/h",
            "event.poller.configuration": {"a": {"url": url, "idField": "id", "pageSize": 25,
                                                 "pagination": {"type": "page"}}}}}), "c.json", {}).config
        [(instance, resource)] = list(config.resources())
        now = datetime(2024, 1, 1, tzinfo=timezone.utc)
        return fetch_spec(instance, resource, resource.url.render(now, now, resource.page_size), config.engine)

    _, _, _, reqs = fetch(lambda r: httpx.Response(200, json=[]), spec_for("/a?limit=${pageSize}"))
    assert str(reqs[0].url) == "https://api.example.com/v1/a?limit=25&page=1"
    _, _, _, reqs = fetch(lambda r: httpx.Response(200, json=[]), spec_for("/a"))
    assert str(reqs[0].url) == "https://api.example.com/v1/a?pageSize=25&page=1"  # (§9: sent when not in the URL)


# -- records nested past the decoders (jsonio.cut_deep) ------------------------------------------------

def _nested(levels: int, leaf: str = '"leaf"') -> str:
    return "[" * levels + leaf + "]" * levels


def test_a_deep_envelope_keeps_its_records_whole_when_another_record_is_cut() -> None:
    """The levels kept are counted below the records: with recordsPath 100 levels deep, a record
    of 505 levels (under the 512 limit) beside one of 1,100 was sent with its deepest part
    replaced by the cut marker."""
    path = ("a",) * 99 + ("data",)
    records = '[{"id": "ok", "v": ' + _nested(504) + '}, {"id": "deep", "v": ' + _nested(1100) + "}]"
    body = "".join('{"a": ' for _ in range(99)) + '{"data": ' + records + "}" * 100
    pages, error, _, _ = fetch(lambda r: httpx.Response(200, content=body.encode()), spec(records_path=path))
    assert error is None, error
    ok_record, deep = pages[0].records
    assert json.dumps(ok_record["v"]) == _nested(504)  # as the provider sent it
    assert jsonio.depth(deep) == 1101 and jsonio.depth(ok_record) == 505


def test_a_record_of_about_a_thousand_levels_in_an_envelope_does_not_fail_the_page_digest() -> None:
    """(orjson reads up to 1,024 levels; json.dumps, re-encoding the records to compare pages,
    raised RecursionError: every poll of the resource failed.)"""
    body = '{"data": [{"id": "ok"}, {"id": "deep", "v": ' + _nested(1010) + "}]}"
    pages, error, _, _ = fetch(lambda r: httpx.Response(200, content=body.encode()), spec(records_path=("data",)))
    assert error is None and [r["id"] for r in pages[0].records] == ["ok", "deep"]
