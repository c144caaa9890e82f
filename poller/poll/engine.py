"""One poll of one resource: state -> URL -> pages -> detection -> one transaction per page.

The cursor moves only after the last page (``Store.finish_poll``); a failed page fails the
poll, keeping what earlier pages committed (their versions are seen, so nothing repeats).
``now`` is always passed in: this module never reads the clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from time import perf_counter
from typing import Any

import httpx

from poller import jsonpath
from poller.config import EngineConfig, InstanceConfig, ResourceConfig, templates
from poller.errors import FetchError
from poller.events.notify import (MAX_RECORD_DEPTH, Envelope, NotificationBody, RecordsTooDeep, build_notifications,
                                  hub_key, iso_z)
from poller.gcpause import collector_paused
from poller.httpclient import retry_after_cap_s
from poller.javadate.zone import from_ms, to_ms
from poller.loopturn import turn
from poller.poll.detect import HASH_RETENTION_MS, detect_page, next_cursor
from poller.poll.fetch import FetchSpec, Page, PaginationSpec, fetch_pages
from poller.poll.records import DateField, DetectSpec, PageResult, Skips, TooDeep, content_hash, object_id_text
from state import Notification, ResourceState, Store

__all__ = ["PollOutcome", "PollPlan", "known_seen_from", "plan_poll", "poll_pages", "poll_resource", "resource_key",
           "detect_spec", "fetch_spec"]

log = logging.getLogger(__name__)
_SEQ_SCALE = 1_000_000  # seq = poll start (ms) * scale + position within the poll
# A page is detected and written in parts of this many records, each part in one transaction
# with the event loop free in between: a 500,000-record page held the loop 14 s (no /healthz,
# no deliveries, no watchdog). A crash between parts is a crash between pages: the parts
# written keep their notifications and seen versions together, the cursor has not moved, and
# the next poll announces the rest.
CHUNK_RECORDS = 1_000
# A poll that wrote more seen versions than this prunes the old ones in parts of this many rows
# after the cursor has moved, a transaction each, the loop free between them: a backfill of
# 500,000 records pruned them in one DELETE that held the loop 0.5 s. Pruning only forgets
# versions older than the window, so a crash between parts leaves only rows the next poll prunes.
PRUNE_PART_ROWS = 20_000
_HOUR_MS = 3600 * 1000


def resource_key(instance: InstanceConfig, resource: ResourceConfig) -> str:
    return f"{instance.id}/{resource.name}"


@dataclass
class PollOutcome:
    key: str
    ok: bool = True
    baseline: bool = False
    pages: int = 0
    records: int = 0
    events: int = 0
    notifications: int = 0
    fallbacks: int = 0
    skips: Skips = field(default_factory=Skips)
    events_by_type: Counter[str] = field(default_factory=Counter)  # CREATED / UPDATED
    cursor_ms: int | None = None
    clock_skew_ms: int | None = None  # the provider's Date minus our clock, when one was believed
    clock_skew_ignored_ms: int | None = None  # the same, for a Date too far off to believe
    incomplete_pages: int = 0  # full pages after which nothing said where the next one was
    future_stamps: int = 0  # events stamped beyond our clock plus engine.maxClockSkewSeconds
    duration_s: float = 0.0
    error: str | None = None
    retry_after: datetime | None = None

    def add_page(self, result: PageResult, notifications: int, *, new_page: bool = True) -> None:
        self.pages += new_page  # (False: the next part of a page split by CHUNK_RECORDS)
        self.records += result.records
        self.events += len(result.events)
        self.events_by_type.update(e.event_type for e in result.events)
        self.notifications += notifications
        self.fallbacks += result.fallbacks
        self.skips.add(result.skips)

    def summary(self) -> str:
        head = f"{self.key}: {'ok' if self.ok else 'FAILED'}"
        kind = " baseline" if self.baseline else ""
        # seen: versions announced before (the overlap of the windows), not a problem
        text = (f"{head}{kind} pages={self.pages} records={self.records} events={self.events} "
                f"seen={self.skips.seen} skipped={self.skips.total - self.skips.seen} "
                f"duration={self.duration_s:.2f}s")
        if self.fallbacks:
            text += f" date_fallbacks={self.fallbacks}"
        return text + (f" error: {self.error}" if self.error else "")


@dataclass(frozen=True)
class PollPlan:
    """Where a poll starts: the window, and whether it is the baseline."""

    since: datetime
    baseline: bool
    lookback_ms: int


def detect_spec(instance: InstanceConfig, resource: ResourceConfig) -> DetectSpec:
    dates = resource.dates
    updated = created = None
    if dates.updated_path is not None and dates.updated_format is not None:
        updated = DateField(dates.updated_field or "", dates.updated_path, dates.updated_format)
    if dates.created_path is not None and dates.created_format is not None:
        created = DateField(dates.created_field or "", dates.created_path, dates.created_format)
    return DetectSpec(
        instance_id=instance.id, resource=resource.name, id_field=resource.id_field, id_path=resource.id_path,
        updated=updated, created=created, filter_by_updated=resource.filter_by_updated_date,
        filter_by_current_date=resource.filter_by_current_date,
        created_tolerance_ms=int(resource.created_check_tolerance_seconds * 1000),
    )


def fetch_spec(instance: InstanceConfig, resource: ResourceConfig, url: str, engine: EngineConfig) -> FetchSpec:
    p = resource.pagination
    pagination = PaginationSpec(
        kind=p.type, param=p.param, header=p.header, path=p.path,
        start=p.start if p.start is not None else (0 if p.type == "offset" else 1),
        max_pages=p.max_pages, page_size_param=p.page_size_param, more_path=p.more_path,
    )
    # header values, and text that came from ${env:...} in the URL (the template marks it secret)
    secrets = tuple(str(v) for _, v in instance.api.headers if str(v))
    secrets += tuple(part.text for part in resource.url.parts
                     if isinstance(part, templates.Literal) and part.secret and part.text)
    return FetchSpec(
        resource=resource_key(instance, resource), url=url, headers=dict(instance.api.headers),
        timeout_s=instance.api.timeout_seconds, page_size=resource.page_size,
        send_page_size=not resource.url.uses_page_size, records_path=resource.records_path,
        pagination=pagination, max_response_bytes=engine.max_response_bytes, secrets=secrets,
        max_retry_after_s=retry_after_cap_s(instance.refresh_interval_seconds),
    )


def envelope(instance: InstanceConfig, resource: ResourceConfig, engine: EngineConfig) -> Envelope:
    return Envelope(
        instance_id=instance.id, instance_name=instance.name, element_key=instance.element_key,
        tags=instance.tags, resource=resource.name,
        hub_key=hub_key(resource.url.display, instance.element_key),
        batch_size=engine.delivery.batch_size,
    )


def plan_poll(cursor_ms: int | None, resource: ResourceConfig, engine: EngineConfig, now: datetime,
              seen_from_ms: int | None = None) -> PollPlan:
    """``seen_from_ms``: where the remembered versions begin (ResourceState.seen_from_ms). The
    window never starts before it: a lookback made longer (lookbackSeconds, pollDelay) reaches
    back past what was pruned under the shorter one, where every record would look new and be
    announced again; it takes its full length as the cursor moves on, one lookback later."""
    lookback_ms = int(max(resource.poll_delay_seconds, engine.lookback_seconds) * 1000)
    if cursor_ms is not None:
        since_ms = cursor_ms - lookback_ms
        if seen_from_ms is not None and since_ms < seen_from_ms <= cursor_ms:
            since_ms = seen_from_ms
        return PollPlan(from_ms(since_ms), False, lookback_ms)
    if resource.initial_cursor is not None:
        return PollPlan(resource.initial_cursor, False, lookback_ms)
    # A baseline remembers one lookback more than a poll looks back, so that a provider clock
    # somewhat behind ours, or a Date header cut to the second, leaves no gap (see finish below).
    return PollPlan(now - timedelta(milliseconds=2 * lookback_ms), True, lookback_ms)


def known_seen_from(state: ResourceState, cursor_ms: int | None) -> int | None:
    """Where the resource's remembered versions begin, for a poll from ``cursor_ms``: not known
    when the cursor was set back (poll.cursor_clamped), as set_cursor also forgets it."""
    return state.seen_from_ms if cursor_ms == state.cursor_ms else None


# resource key -> when its provider's Date was last warned about (a poll's start, ms): at every
# poll of a daemon, one WARNING per resource and minute would bury the other logs (the anomaly
# metric still counts every poll); again after an hour, and anew once a Date was believed
_SKEW_WARNED: dict[str, int] = {}


def _skew_level(key: str, now_ms: int) -> int:
    last = _SKEW_WARNED.get(key)
    if last is not None and 0 <= now_ms - last < _HOUR_MS:
        return logging.DEBUG
    _SKEW_WARNED[key] = now_ms
    return logging.WARNING


def render_url(resource: ResourceConfig, since: datetime, now: datetime) -> str:
    return templates.render(resource.url, since, now, resource.page_size)


def lookup_ids(records: list, spec: DetectSpec) -> set[str]:
    if spec.id_path is None:
        return set(_hashes(records))
    path = spec.id_path
    if len(path) == 1 and isinstance(path[0], str):  # the common case: a top-level field (jsonpath.get, inlined)
        key, missing = path[0], jsonpath.MISSING
        values = (r.get(key, missing) if isinstance(r, dict) else missing for r in records)
        ids = {v if type(v) is str and v.isascii() and v.strip() else object_id_text(v) for v in values}
        ids.discard(None)
        return ids  # type: ignore[return-value]
    ids = (object_id_text(jsonpath.get(r, path)) for r in records)
    return {i for i in ids if i is not None}


def _hashes(records: list) -> Iterator[str]:
    for record in records:
        try:
            yield content_hash(record)
        except TooDeep:
            pass  # detection skips it and says why


async def poll_pages(client: httpx.AsyncClient, instance: InstanceConfig, resource: ResourceConfig,
                     engine: EngineConfig, plan: PollPlan, now: datetime, outcome: PollOutcome, *,
                     sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                     wait: Callable[[Awaitable[Any]], Awaitable[Any]] | None = None,
                     ) -> AsyncIterator[tuple[Page, PollPlan, datetime | None]]:
    """Pages of the poll (``poller once``, the daemon and ``poller explain`` all read these), each
    with the plan it was fetched for and the provider's clock as far as it can be believed.

    The first response's ``Date`` is believed when it is within ``engine.maxClockSkewSeconds`` of
    our clock (a provider answering with year 9999 must not move the cursor there); further off, it
    is ignored and reported. A baseline whose first response shows the server's clock behind ours
    by more than the lookback starts again from the server's now - lookback (DESIGN §4)."""
    max_skew_ms = int(engine.max_clock_skew_seconds * 1000)
    server_date: datetime | None = None
    started = perf_counter()  # (the Date is of the answer: a wait for it is not the provider's skew)
    for attempt in range(2):
        restart = False
        url = render_url(resource, plan.since, now)
        async with aclosing(fetch_pages(client, fetch_spec(instance, resource, url, engine), sleep=sleep,
                                        wait=wait)) as pages:
            async for page in pages:
                if page.number == 1 and attempt == 0 and page.server_date is not None:
                    skew = to_ms(page.server_date) - to_ms(now) - int((perf_counter() - started) * 1000)
                    if abs(skew) > max_skew_ms:
                        outcome.clock_skew_ignored_ms = skew
                        log.log(_skew_level(outcome.key, to_ms(now)), "poll.clock_skew_ignored", extra={
                            "resource": outcome.key, "clock_skew_ms": skew, "server_date": page.server_date.isoformat(),
                            "max_clock_skew_s": engine.max_clock_skew_seconds})
                    else:
                        _SKEW_WARNED.pop(outcome.key, None)
                        outcome.clock_skew_ms = skew
                        server_date = page.server_date
                        if plan.baseline and -skew > plan.lookback_ms:
                            log.info("poll.baseline_restart", extra={"resource": outcome.key, "clock_skew_ms": skew})
                            plan = PollPlan(page.server_date - timedelta(milliseconds=2 * plan.lookback_ms), True,
                                            plan.lookback_ms)
                            restart = True
                            break
                yield page, plan, server_date
        if not restart:
            return


async def poll_resource(client: httpx.AsyncClient, store: Store, engine: EngineConfig, instance: InstanceConfig,
                        resource: ResourceConfig, now: datetime,
                        timer: Callable[[], float] = perf_counter, *,
                        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                        wait: Callable[[Awaitable[Any]], Awaitable[Any]] | None = None) -> PollOutcome:
    """Poll one resource once; never raises for provider problems (they are in the outcome).
    ``sleep`` and ``wait`` go to fetch (retry waits, requests: see fetch_pages)."""
    key = resource_key(instance, resource)
    started = timer()
    outcome = PollOutcome(key)
    now_ms = to_ms(now)
    state, max_seq = store.poll_state(key)  # one read
    cursor_ms = _believable_cursor(store, key, state.cursor_ms, now_ms, engine)
    seen_from_ms = known_seen_from(state, cursor_ms)
    plan = plan_poll(cursor_ms, resource, engine, now, seen_from_ms)
    outcome.baseline = plan.baseline
    spec = detect_spec(instance, resource)
    env = envelope(instance, resource, engine)
    server_now_ms: int | None = None
    max_stamp: int | None = None
    future_limit_ms = now_ms + int(engine.max_clock_skew_seconds * 1000)
    future_example: str | None = None
    # after every notification the resource already has, even if the clock stepped back
    seq = max(now_ms * _SEQ_SCALE, (max_seq or 0) + 1)
    seen_written = 0
    first_cursor_ms: int | None = None
    pages = poll_pages(client, instance, resource, engine, plan, now, outcome, sleep=sleep, wait=wait)
    try:
        async with aclosing(pages):
            async for page, plan, server_date in pages:
                if server_now_ms is None and server_date is not None:
                    server_now_ms = to_ms(server_date)
                records = page.records
                if plan.baseline and page.number == 1 and cursor_ms is None and spec.has_dates:
                    # Watching begins here, as a baseline that fails says (below): one killed or
                    # stopped before its end must not be redone from scratch by the next run, which
                    # would swallow every change made in between. (Written with the first page, once
                    # its response has settled the window: see poll_pages.)
                    first_cursor_ms = _baseline_cursor(plan, server_now_ms)
                for start in range(0, max(1, len(records)), CHUNK_RECORDS):
                    if start:  # a large page: let the event loop run between its parts
                        await turn()
                    part = records[start:start + CHUNK_RECORDS]
                    if len(records) > CHUNK_RECORDS:
                        # freed a part at a time: 500,000 records freed at once held the loop 0.1 s
                        records[start:start + CHUNK_RECORDS] = [None] * len(part)
                    result, notifications = _commit_page(store, part, spec, env, instance, key, plan, now_ms, seq,
                                                         first_cursor_ms=first_cursor_ms)
                    first_cursor_ms = None
                    del part
                    seq += notifications
                    seen_written += len(result.new_versions) + len(result.touched)
                    outcome.add_page(result, notifications, new_page=not start)
                    if result.max_stamp_ms is not None:
                        max_stamp = result.max_stamp_ms if max_stamp is None else max(max_stamp, result.max_stamp_ms)
                        if result.max_stamp_ms > future_limit_ms:
                            ahead = [e for e in result.events if e.stamp_ms > future_limit_ms]
                            outcome.future_stamps += len(ahead)
                            if ahead and future_example is None:
                                future_example = f"record {ahead[0].object_id}: {iso_z(ahead[0].stamp_ms)}"
                if page.incomplete:
                    outcome.incomplete_pages += 1
                    log.warning("poll.pagination_incomplete", extra={
                        "resource": key, "page": page.number, "records": len(page.records),
                        "pagination": resource.pagination.type,
                        "hint": "a full page, and nothing in the response says where the next one is: "
                                "check the pagination settings (`poller explain` shows every page)"})
        if outcome.records and outcome.skips.problems == outcome.records:
            raise _Unreadable(f"{key}: no record could be read, so nothing moves: {_skip_text(outcome.skips)}")
    except (FetchError, _Unreadable) as exc:
        outcome.ok = False
        outcome.error = str(exc)
        outcome.retry_after = exc.retry_after if isinstance(exc, FetchError) else None
        # A baseline that fails still fixes when watching began: the retry then announces what
        # changes from here on, instead of starting a new baseline that would swallow those changes.
        # (Not for a resource without dates: with no window to bound it, that retry would announce
        # every record of the pages never reached. It is a baseline again, which announces the new
        # versions of the records it had seen: see detect_page.)
        store.fail_poll(key, instance.id, resource.name, now_ms=now_ms, error=outcome.error,
                        next_due_ms=to_ms(outcome.retry_after) if outcome.retry_after else None,
                        first_cursor_ms=_baseline_cursor(plan, server_now_ms)
                        if plan.baseline and spec.has_dates else None)
        outcome.duration_s = timer() - started
        log.warning("poll.failed", extra={"resource": key, "error": outcome.error})
        return outcome
    if plan.baseline:
        server_now_ms = _baseline_cursor(plan, server_now_ms)
    cursor = next_cursor(cursor_ms, max_stamp, server_now_ms if server_now_ms is not None else now_ms,
                         baseline=plan.baseline, has_dates=spec.has_dates, poll_start_ms=now_ms)
    # After a poll, the resource's date versions all lie within a lookback of its cursor: the
    # prune went that far, and what was written since is in the window. So a poll that left the
    # cursor where it was (most polls: nothing new) has nothing to prune, and skips the DELETEs.
    # (The one case this leaves: a lookback shortened by a new configuration keeps its old rows
    # until the cursor next moves. They cost room, not correctness: no record in the window can
    # carry their versions.) Content-hash resources move their cursor on every poll.
    cursor_moved = cursor != cursor_ms
    prune_before_ms = cursor - plan.lookback_ms if spec.has_dates and cursor_moved else None
    prune_hash_before_ms = _hash_prune_before(state.last_success_ms, now_ms) if cursor_moved else None
    in_parts = seen_written > PRUNE_PART_ROWS
    # where the remembered date versions begin from now on: the prune's bound, or, not known yet
    # (a first poll, a state file from before migration 0009), this poll's window, which it saw whole
    seen_from = prune_before_ms
    if seen_from is None and spec.has_dates and seen_from_ms is None:
        seen_from = to_ms(plan.since)
    if store.defer_quiet_polls and not cursor_moved and not seen_written and not outcome.events and _settled(state) \
            and seen_from is None:
        store.finish_quiet_poll(key, now_ms=now_ms)  # only its time and count to write: with others, soon
    else:
        store.finish_poll(key, instance.id, resource.name, cursor_ms=cursor, now_ms=now_ms,
                          prune_before_ms=None if in_parts else prune_before_ms,
                          prune_hash_before_ms=None if in_parts else prune_hash_before_ms, events=outcome.events,
                          seen_from_ms=seen_from)
    after: tuple[str, str] | None = None
    while in_parts:
        await turn()
        _, after = store.prune_seen_part(key, before_ms=prune_before_ms, hash_before_ms=prune_hash_before_ms,
                                         after=after, rows=PRUNE_PART_ROWS)
        in_parts = after is not None
    outcome.cursor_ms = cursor
    outcome.duration_s = timer() - started
    _report(outcome, spec, future_example)
    # a poll that changed nothing says so at DEBUG only (the daemon logs a summary a minute):
    # at 100,000 resources one INFO line each would be 1.8 GB of logs a day
    level = logging.INFO if outcome.events or outcome.baseline else logging.DEBUG
    if log.isEnabledFor(level):
        log.log(level, "poll.done", extra={"resource": key, "summary": outcome.summary(),
                                           "clock_skew_ms": outcome.clock_skew_ms, "cursor": cursor})
    return outcome


def _settled(state: ResourceState) -> bool:
    """The resource has a row, and no failure, backoff or removal mark for a poll to clear."""
    return (state.last_poll_ms is not None and not state.consecutive_failures and state.next_due_ms is None
            and state.last_error is None and state.removed_ms is None)


def _hash_prune_before(previous_success_ms: int | None, now_ms: int) -> int:
    """Content-hash versions not seen for 24 h are forgotten, but never one seen by the previous
    successful poll: after the clock jumps a day ahead, every version would look a day old, and
    forgetting them all would announce every record again. (Versions still returned are touched
    at most hourly, hence the hour of margin.)"""
    before = now_ms - HASH_RETENTION_MS
    if previous_success_ms is not None:
        before = min(before, previous_success_ms - _HOUR_MS)
    return before


class _Unreadable(Exception):
    """Every record of the poll was unreadable (no id, no date, too deep): the poll fails, and
    its cursor (or an initialCursor backfill still to do) stays where it was."""


def _believable_cursor(store: Store, key: str, cursor_ms: int | None, now_ms: int, engine: EngineConfig) -> int | None:
    """The stored cursor, or our clock when it is further ahead than engine.maxClockSkewSeconds.

    Such a cursor (left by an earlier poller that believed a provider's Date of year 9999, or by
    our own clock that ran ahead and was set back) would skip every change as older than the
    window, for ever. It is set back, once, and said."""
    if cursor_ms is None or cursor_ms <= now_ms + int(engine.max_clock_skew_seconds * 1000):
        return cursor_ms
    log.warning("poll.cursor_clamped", extra={"resource": key, "cursor": iso_z(cursor_ms), "now": iso_z(now_ms)})
    store.set_cursor(key, now_ms)
    return now_ms


def _report(outcome: PollOutcome, spec: DetectSpec, future_example: str | None) -> None:
    """The warnings of a successful poll: records that could not be read, stamps from the future,
    a date format that matched nothing."""
    key, skips = outcome.key, outcome.skips
    if skips.problems or skips.in_future:
        log.warning("poll.records_skipped", extra={"resource": key, "skips": _skip_text(skips)})
    if outcome.future_stamps:
        log.warning("poll.future_stamps", extra={
            "resource": key, "count": outcome.future_stamps, "example": future_example,
            "note": "announced, but the cursor does not follow them past our clock plus engine.maxClockSkewSeconds"})
    seconds = skips.examples.get("seconds_as_ms")
    if seconds is not None and spec.stamp_field is not None:
        log.warning("poll.dates_look_like_seconds", extra={
            "resource": key, "field": spec.stamp_field.name, "example": seconds,
            "note": "the format is milliseconds, and these numbers are dates in early 1970 read as epoch "
                    "milliseconds: they look like epoch seconds. Records that old fall before every polling "
                    "window, so none of them is announced (check the provider's date fields and "
                    "datesConfiguration)"})
    dated = outcome.records - skips.problems
    if spec.has_dates and outcome.fallbacks and dated and outcome.fallbacks >= dated:
        stamp = spec.stamp_field
        assert stamp is not None
        log.warning("poll.date_format_mismatch", extra={
            "resource": key, "field": stamp.name, "pattern": stamp.format.pattern, "dates": outcome.fallbacks,
            "example": skips.examples.get("date_fallback"),
            "note": "no date matched the configured pattern; they were read as ISO-8601 or epoch numbers "
                    "instead (check datesConfiguration)"})


def _baseline_cursor(plan: PollPlan, server_now_ms: int | None) -> int:
    """A baseline's cursor. It remembered everything from since = (our now, or the provider's after
    a restart) - 2 * lookback; its cursor is the earlier of that now and the provider's Date, so
    the next window (cursor - lookback) starts inside what the baseline remembered (no spurious
    announcements), and no later than the provider's clock (no gap for late commits)."""
    window_end = to_ms(plan.since) + 2 * plan.lookback_ms
    return window_end if server_now_ms is None else min(window_end, server_now_ms)


def _commit_page(store: Store, records: list, spec: DetectSpec, env: Envelope, instance: InstanceConfig, key: str,
                 plan: PollPlan, now_ms: int, seq: int, *, first_cursor_ms: int | None = None) -> tuple[PageResult, int]:
    """Detect one page (or part of one: CHUNK_RECORDS) and write its notifications and seen
    versions in one transaction (with ``first_cursor_ms``: see Store.record_page)."""
    with collector_paused():  # tens of thousands of short-lived tuples, strings and dicts, no cycles
        seen = store.seen_versions(key, lookup_ids(records, spec))
        result = detect_page(records, seen, spec, since_ms=to_ms(plan.since), now_ms=now_ms,
                             baseline=plan.baseline)
        bodies = notifications_of(result, env, now_ms)
        rows = [Notification(id=b.id, resource_key=key, instance_id=instance.id, resource=env.resource,
                             callback_url=instance.callback_url or "", created_ms=now_ms, body=b.body,
                             event_ids=b.event_ids, seq=seq + i) for i, b in enumerate(bodies)]
        seen_rows = [*result.new_versions, *result.touched]  # (object id, version, stamp ms): SeenVersion's fields
        if rows or seen_rows or first_cursor_ms is not None:  # a page with nothing new writes nothing
            store.record_page(key, instance.id, env.resource, rows, seen_rows, first_cursor_ms=first_cursor_ms)
    return result, len(rows)


def notifications_of(result: PageResult, env: Envelope, now_ms: int) -> list[NotificationBody]:
    """The page's notification bodies; the events of records nested too deeply to be sent are
    taken out of ``result`` first, as skips (``poller explain`` decides by this too)."""
    try:
        return build_notifications(result.events, env, poll_ms=now_ms, created_ms=now_ms)
    except RecordsTooDeep as exc:  # rare: skip those records, and announce the others
        _drop_too_deep(result, exc)
        return build_notifications(result.events, env, poll_ms=now_ms, created_ms=now_ms)


def _drop_too_deep(result: PageResult, exc: RecordsTooDeep) -> None:
    """Take the events of records nested too deeply out of the page's result, as skips: their
    versions are not remembered, so they are reported again as long as the provider sends them."""
    dropped = {(e.object_id, e.version) for e, _ in exc.events}
    result.events[:] = [e for e in result.events if (e.object_id, e.version) not in dropped]
    result.new_versions[:] = [v for v in result.new_versions if (v[0], v[1]) not in dropped]
    for event, depth in exc.events:
        result.skips.note("too_deep", f"record {event.object_id}: nested {depth} levels deep "
                                      f"(more than {MAX_RECORD_DEPTH})")


_PROBLEMS = ("no_id", "bad_date", "in_future", "too_deep")


def _skip_text(skips: Skips) -> str:
    parts = [f"{name}={getattr(skips, name)}" for name in _PROBLEMS if getattr(skips, name)]
    examples = "; ".join(f"{k}: {v}" for k, v in skips.examples.items() if k in _PROBLEMS)
    return ", ".join(parts) + (f" (e.g. {examples})" if examples else "")

