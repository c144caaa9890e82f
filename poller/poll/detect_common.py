"""Detection's lean loop: the page shape nearly every provider sends. Pure: no I/O, no clock.

:func:`poller.poll.detect.detect_page` tries it first and falls back to the general loop when
it returns None; both decide exactly the same for the pages this one takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from poller import jsonpath
from poller.events.event import UPDATED, Event, EventIds
from poller.poll.records import DetectSpec, PageResult, Skips, created_reader, event_order, new_event, top_key

__all__ = ["detect_common_page"]

_NO_STAMP = -(1 << 62)


def detect_common_page(records: list[Any], seen: Mapping[str, Mapping[str, int]], spec: DetectSpec, *,
                        since_ms: int, now_ms: int, baseline: bool) -> PageResult | None:
    """``detect_page`` for the page shape nearly every provider sends, or None for any other.

    The shape: objects whose id is a top-level non-blank string, unique on the page, and whose
    stamp is a top-level string the format's fast reader settles, none in the future when that
    is filtered. The general loop would decide exactly the same for such a page; this one skips
    its per-record branching (the bookkeeping for ids repeated on a page, paths, other types),
    which is most of detection's time on a large page. Anything else (one record is enough)
    returns None, and the caller runs the general loop from the start: nothing is half done.
    """
    id_key = top_key(spec.id_path)
    stamp_field = spec.stamp_field
    if id_key is None or stamp_field is None:
        return None
    stamp_key = top_key(stamp_field.path)
    fast = stamp_field.format.fast_ms
    if stamp_key is None or fast is None:
        return None
    missing = jsonpath.MISSING
    object_ids = [r.get(id_key, missing) if type(r) is dict else missing for r in records]
    try:
        if len(set(object_ids)) != len(object_ids):
            return None  # an id twice on the page (or two records without one)
        "".join(object_ids).encode()  # every id a string, and valid Unicode (no lone surrogate)
    except (TypeError, UnicodeEncodeError):
        return None
    check_future = spec.filter_by_current_date and not baseline
    read_created = created_reader(spec)
    ids = EventIds(spec.instance_id, spec.resource)
    events: list[Event] = []
    new_versions: list[tuple[str, str, int]] = []
    new_append = new_versions.append
    event_append = events.append
    seen_get = seen.get
    skips = Skips()
    examples = skips.examples
    max_stamp = _NO_STAMP
    seen_count = before_since = fallbacks = 0
    for record, object_id in zip(records, object_ids):
        if not object_id.strip():
            return None
        value = record.get(stamp_key)
        if type(value) is not str:
            return None
        stamp = fast(value)
        if stamp is None:
            return None
        if stamp < since_ms:
            before_since += 1
            if "before_since" not in examples:
                examples["before_since"] = f"record {object_id}: {stamp_field.name} = {value!r}"
            continue
        if check_future and stamp > now_ms:
            return None
        if stamp > max_stamp:
            max_stamp = stamp
        version = f"d:{stamp}"
        known = seen_get(object_id)
        if known:
            if version in known:
                seen_count += 1
                if "seen" not in examples:
                    examples["seen"] = f"record {object_id} version {version}"
                continue
            event_type = UPDATED
        elif read_created is None:
            event_type = UPDATED
        else:
            event_type, created_fell_back = read_created(record, stamp, since_ms, value, False)
            fallbacks += created_fell_back
        new_append((object_id, version, stamp))
        if not baseline or known:  # (as detect_page: a new version of an id a baseline knows)
            event_append(new_event(Event, (ids(object_id, version), object_id, event_type, version, stamp, record)))
    skips.seen = seen_count
    skips.before_since = before_since
    events.sort(key=event_order)
    return PageResult(events, new_versions, [], None if max_stamp == _NO_STAMP else max_stamp, len(records),
                      skips, fallbacks)


