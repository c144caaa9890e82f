"""Detection: which records of a page are changes worth announcing. Pure: no I/O, no clock.

The rules are DESIGN.md §4. A record's *stamp* is its updated date (its created date when
``filterByUpdatedDate`` is false or no updated field is configured); its *version* is
``d:<stamp ms>``, or ``h:<content hash>`` for resources without dates. A version is announced
once: the state remembers the versions seen within the lookback window, and a page is judged
against them (plus the versions earlier records of the same poll added).

    result = detect_page(records, seen, spec, since_ms=..., now_ms=..., baseline=False)
    result.events        # CREATED / UPDATED, ordered by stamp then object id
    result.new_versions  # what the store must remember
    cursor = next_cursor(old_cursor_ms, result.max_stamp_ms, server_now_ms, ...)

``detect`` is the one-page convenience form that also computes the next cursor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from poller import jsonpath
from poller.javadate import MILLISECONDS
from poller.events.event import CREATED, UPDATED, Event, EventIds, event_id
from poller.poll.detect_common import detect_common_page
from poller.poll.records import (
    DateField,
    DetectSpec,
    PageResult,
    Skips,
    TooDeep,
    content_hash,
    created_reader,
    event_order,
    field_names,
    id_problem,
    new_event,
    object_id_text,
    parse_value,
    raw_text,
    top_key,
)

__all__ = [
    "CREATED",
    "UPDATED",
    "DateField",
    "DetectSpec",
    "Event",
    "PageResult",
    "Skips",
    "detect",
    "detect_page",
    "event_id",
    "next_cursor",
    "HASH_RETENTION_MS",
]

HASH_RETENTION_MS = 24 * 3600 * 1000
# Stamps of the ``milliseconds`` format in early 1970 (1970-01-02 to 1973-03-03): the same numbers
# read as epoch seconds are 1973 to 5138. Nearly always a provider sending seconds, whose records
# then all fall before every polling window: detection notes an example, and the poll warns.
SECONDS_AS_MS = (100_000_000, 100_000_000_000)
_NOTHING: frozenset[str] = frozenset()
_TOUCH_AFTER_MS = 3600 * 1000  # refresh a content-hash version's stamp at most hourly (one write, not one per poll)


def detect_page(
    records: Iterable[Any],
    seen: Mapping[str, Mapping[str, int]],
    spec: DetectSpec,
    *,
    since_ms: int,
    now_ms: int,
    baseline: bool = False,
) -> PageResult:
    """Judge one page of records against the versions already seen.

    ``seen`` maps object id -> {version: stamp ms} for (at least) the ids on this page; it is
    not modified. A baseline page remembers every version it returns and announces only new
    versions of ids already seen: those come from an earlier baseline that was stopped or
    failed part-way (of a resource without dates, whose next poll is a baseline again).
    """
    if type(records) is list:
        common = detect_common_page(records, seen, spec, since_ms=since_ms, now_ms=now_ms, baseline=baseline)
        if common is not None:
            return common
    stamp_field = spec.stamp_field
    ids = EventIds(spec.instance_id, spec.resource)
    no_versions: dict[str, int] = {}
    events: list[Event] = []
    new_versions: list[tuple[str, str, int]] = []
    touched: list[tuple[str, str, int]] = []
    added: dict[str, set[str]] = {}
    skips = Skips()
    examples = skips.examples
    fallbacks = 0
    max_stamp: int | None = None
    count = 0
    seen_count = 0  # date versions already seen (added to skips.seen at the end)
    id_path = spec.id_path
    id_key = top_key(id_path)
    missing = jsonpath.MISSING
    get_path = jsonpath.get
    seen_get = seen.get
    added_get = added.get
    new_append = new_versions.append
    event_append = events.append
    read_created = None
    stamp_path: tuple = ()
    if stamp_field is not None:
        stamp_path = stamp_field.path
        stamp_key = top_key(stamp_path)
        stamp_one = len(stamp_path) == 1
        stamp_format = stamp_field.format
        stamp_fast = stamp_format.fast_ms
        check_future = spec.filter_by_current_date and not baseline
        read_created = created_reader(spec)
        epoch_ms = stamp_format.pattern == MILLISECONDS
    for count, record in enumerate(records, 1):  # count: how many records, after the loop
        if id_path is None:
            try:
                object_id: str | None = content_hash(record)
            except TooDeep as exc:
                skips.note("too_deep", f"a record {exc} (its fields: {field_names(record)})")
                continue
        else:
            if id_key is not None and isinstance(record, dict):
                raw_id = record.get(id_key, missing)
            else:
                raw_id = get_path(record, id_path)
            object_id = object_id_text(raw_id)
            if object_id is None:
                skips.note("no_id", lambda: f"{spec.id_field} {id_problem(raw_id)} in a record with fields "
                                            f"{field_names(record)}")
                continue
        known = seen_get(object_id, no_versions)
        mine = added_get(object_id, _NOTHING)
        if stamp_field is None:
            try:
                version = "h:" + (object_id if id_path is None else content_hash(record))
            except TooDeep as exc:
                skips.note("too_deep", f"record {object_id}: {exc}")
                continue
            stamp = now_ms
            # Only the id's latest content counts as seen: open -> closed -> open is two changes.
            latest = max(known, key=known.__getitem__) if known else None
            if version in mine or (version == latest and not mine):
                skips.note("seen", f"record {object_id} version {version}")
                if version == latest and known[version] < now_ms - _TOUCH_AFTER_MS:
                    touched.append((object_id, version, now_ms))  # keep it from being pruned
                continue
            event_type = UPDATED  # no created date to know it by (DESIGN §4.4), even for an id never seen
        else:
            # the stamp: read_date, inlined for the common case (a str the fast path settles)
            if stamp_one and isinstance(record, dict):
                value = record.get(stamp_key, missing) if stamp_key is not None else missing
            else:
                value = get_path(record, stamp_path)
            stamp_read: int | None
            fell_back = False
            if type(value) is str and stamp_fast is not None:
                stamp_read = stamp_fast(value)
                if stamp_read is None:
                    stamp_read, fell_back = parse_value(value, stamp_format)
                    fallbacks += fell_back
            elif value is missing or value is None:
                stamp_read = None
            else:
                stamp_read, fell_back = parse_value(value, stamp_format)
                fallbacks += fell_back
            if stamp_read is None:
                skips.note("bad_date",
                           lambda: f"record {object_id}: {stamp_field.name} = {raw_text(record, stamp_field)}")
                continue
            stamp = stamp_read
            if fell_back and "date_fallback" not in examples:
                examples["date_fallback"] = f"record {object_id}: {stamp_field.name} = {value!r}"
            if epoch_ms and SECONDS_AS_MS[0] <= stamp < SECONDS_AS_MS[1] and "seconds_as_ms" not in examples:
                examples["seconds_as_ms"] = f"record {object_id}: {stamp_field.name} = {value!r}"
            if stamp < since_ms:
                skips.note("before_since",
                           lambda: f"record {object_id}: {stamp_field.name} = {raw_text(record, stamp_field)}")
                continue
            if check_future and stamp > now_ms:
                # (a baseline remembers it anyway: it existed before we started)
                skips.note("in_future",
                           lambda: f"record {object_id}: {stamp_field.name} = {raw_text(record, stamp_field)}")
                continue
            if max_stamp is None or stamp > max_stamp:
                max_stamp = stamp
            version = f"d:{stamp}"
            if version in known or version in mine:
                seen_count += 1
                if "seen" not in examples:
                    examples["seen"] = f"record {object_id} version {version}"
                continue
            if known or mine or read_created is None:
                event_type = UPDATED
            else:
                event_type, created_fell_back = read_created(record, stamp, since_ms, value, fell_back)
                fallbacks += created_fell_back
        if mine is _NOTHING:
            added[object_id] = {version}
        else:
            mine.add(version)
        new_append((object_id, version, stamp))
        if not baseline or known:  # (a baseline announces a new version of an id it already knows)
            event_append(new_event(Event, (ids(object_id, version), object_id, event_type, version, stamp, record)))
    skips.seen += seen_count
    if read_created is not None and len(new_versions) > len(added) and events:
        _created_first(events, added, seen, read_created, stamp_path, since_ms)
    events.sort(key=event_order)
    return PageResult(events, new_versions, touched, max_stamp, count, skips, fallbacks)


def _created_first(events: list[Event], added: Mapping[str, set[str]], seen: Mapping[str, Mapping[str, int]],
                   read_created: Any, stamp_path: tuple, since_ms: int) -> None:
    """An id never seen that is on the page twice (two versions): the CREATED check belongs to
    its earliest version, not to the one that came first on the page, or the receiver would get
    UPDATED, then CREATED (events go out in stamp order)."""
    twice = {object_id for object_id, versions in added.items() if len(versions) > 1 and not seen.get(object_id)}
    where: dict[str, list[int]] = {}
    for i, event in enumerate(events):
        if event.object_id in twice:
            where.setdefault(event.object_id, []).append(i)
    for places in where.values():
        places.sort(key=lambda i: (events[i].stamp_ms, events[i].version))
        first = events[places[0]]
        kind, _ = read_created(first.record, first.stamp_ms, since_ms, jsonpath.get(first.record, stamp_path), False)
        events[places[0]] = first._replace(event_type=kind)
        for i in places[1:]:
            events[i] = events[i]._replace(event_type=UPDATED)


def next_cursor(old_ms: int | None, max_stamp_ms: int | None, server_now_ms: int, *, baseline: bool,
                has_dates: bool, poll_start_ms: int) -> int:
    """DESIGN §4 step 5: the cursor moves forward to the newest stamp, never past the server's clock."""
    if not has_dates:
        candidate = poll_start_ms
    elif baseline:
        candidate = server_now_ms
    elif max_stamp_ms is None:
        return old_ms if old_ms is not None else server_now_ms
    else:
        candidate = min(max_stamp_ms, server_now_ms)
    return candidate if old_ms is None else max(old_ms, candidate)


def detect(records: Iterable[Any], seen: Mapping[str, Mapping[str, int]], spec: DetectSpec, *, since_ms: int,
           now_ms: int, server_now_ms: int | None = None, cursor_ms: int | None = None,
           baseline: bool = False) -> tuple[PageResult, int]:
    """One page as a whole poll: (result, the next cursor)."""
    result = detect_page(records, seen, spec, since_ms=since_ms, now_ms=now_ms, baseline=baseline)
    cursor = next_cursor(cursor_ms, result.max_stamp_ms, server_now_ms if server_now_ms is not None else now_ms,
                         baseline=baseline, has_dates=spec.has_dates, poll_start_ms=now_ms)
    return result, cursor
