"""Detection's lean loop: the page shape nearly every provider sends. Pure: no I/O, no clock.

:func:`poller.poll.detect.detect_page` tries it first and falls back to the general loop when
it returns None; both decide exactly the same for the pages this one takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import compress
from operator import itemgetter
from typing import Any

from poller.events.event import UPDATED, Event, EventIds
from poller.poll.records import DetectSpec, PageResult, Skips, created_reader, event_order, new_event, top_key

__all__ = ["detect_common_page"]

_DICT = {dict}
_STR = {str}
_STAMP = itemgetter(4)  # Event.stamp_ms


def detect_common_page(records: list[Any], seen: Mapping[str, Mapping[str, int]], spec: DetectSpec, *,
                        since_ms: int, now_ms: int, baseline: bool) -> PageResult | None:
    """``detect_page`` for the page shape nearly every provider sends, or None for any other.

    The shape: objects whose id is a top-level non-blank string, unique on the page, and whose
    stamp is a top-level string the format's fast reader settles, none in the future when that
    is filtered. The general loop would decide exactly the same for such a page; this one skips
    its per-record branching (the bookkeeping for ids repeated on a page, paths, other types),
    which is most of detection's time on a large page. Anything else (one record is enough)
    returns None, and the caller runs the general loop from the start: nothing is half done.

    The shape is checked, and the stamps read, a column at a time (ids, stamp texts, stamps,
    versions) with the interpreter's C loops (``map``, ``set``, ``min``); only the records with
    a new version take a Python loop of their own.
    """
    id_key = top_key(spec.id_path)
    stamp_field = spec.stamp_field
    if id_key is None or stamp_field is None:
        return None
    stamp_key = top_key(stamp_field.path)
    fast = stamp_field.format.fast_ms
    if stamp_key is None or fast is None or set(map(type, records)) != _DICT:
        return None
    object_ids = [r.get(id_key) for r in records]
    values = [r.get(stamp_key) for r in records]
    try:
        if len(set(object_ids)) != len(object_ids):
            return None  # an id twice on the page (or two records without one)
        "".join(object_ids).encode()  # every id a string, and valid Unicode (no lone surrogate)
    except (TypeError, UnicodeEncodeError):
        return None
    if set(map(type, values)) != _STR or not all(map(str.strip, object_ids)):
        return None  # a stamp that is not text, or a blank id
    stamps = list(map(fast, values))
    if None in stamps:
        return None
    count = len(records)
    skips = Skips()
    examples = skips.examples
    if stamps and min(stamps) < since_ms:
        keep = [stamp >= since_ms for stamp in stamps]
        first = keep.index(False)
        skips.before_since = count - sum(keep)
        examples["before_since"] = f"record {object_ids[first]}: {stamp_field.name} = {values[first]!r}"
        records, object_ids, values, stamps = (list(compress(column, keep))
                                               for column in (records, object_ids, values, stamps))
    if not stamps:
        return PageResult([], [], [], None, count, skips, 0)
    max_stamp = max(stamps)
    if spec.filter_by_current_date and not baseline and max_stamp > now_ms:
        return None
    versions = [f"d:{stamp}" for stamp in stamps]
    knowns = list(map(seen.get, object_ids))
    read_created = created_reader(spec)
    new_versions: list[tuple[str, str, int]] = []
    new_append = new_versions.append
    announced: list[tuple[str, str, int, Any, str]] = []  # (object id, version, stamp, record, event type)
    announce = announced.append
    fallbacks = 0
    for record, object_id, version, stamp, known, value in zip(records, object_ids, versions, stamps, knowns, values):
        if known:
            if version in known:
                continue  # seen: counted below
            event_type = UPDATED
        elif read_created is None:
            event_type = UPDATED
        else:
            event_type, created_fell_back = read_created(record, stamp, since_ms, value, False)
            fallbacks += created_fell_back
        new_append((object_id, version, stamp))
        if not baseline or known:  # (as detect_page: a new version of an id a baseline knows)
            announce((object_id, version, stamp, record, event_type))
    seen_count = len(stamps) - len(new_versions)
    if seen_count:
        skips.seen = seen_count
        object_id, version = next((o, v) for o, v, k in zip(object_ids, versions, knowns) if k and v in k)
        examples["seen"] = f"record {object_id} version {version}"
    event_ids = EventIds(spec.instance_id, spec.resource).many(announced)
    events = [new_event(Event, (event_id, object_id, event_type, version, stamp, record))
              for event_id, (object_id, version, stamp, record, event_type) in zip(event_ids, announced)]
    # (stamp, object id) order; by stamp alone, in C, when no two stamps are equal (the usual page)
    events.sort(key=event_order if len(set(stamps)) < len(stamps) else _STAMP)
    return PageResult(events, new_versions, [], max_stamp, count, skips, fallbacks)
