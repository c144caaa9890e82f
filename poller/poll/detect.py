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

import hashlib
import json
import operator
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from poller import jsonpath
from poller.javadate import DateFormat
from poller.errors import DateFormatError
from poller.javadate.zone import to_ms

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

CREATED = "CREATED"
UPDATED = "UPDATED"
HASH_RETENTION_MS = 24 * 3600 * 1000
_NOTHING: frozenset[str] = frozenset()
_TOUCH_AFTER_MS = 3600 * 1000  # refresh a content-hash version's stamp at most hourly (one write, not one per poll)
_EVENT_NAMESPACE = uuid.UUID("6f0f7c2e-3c1a-5b8e-9d4a-0c6b2f1e9a77")
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def uuid5_text(sha1_hex: str) -> str:
    """``str(uuid.uuid5(...))`` from the SHA-1 hex digest of namespace + name (version and variant
    bits set as RFC 4122 says), without building UUID objects: detection makes thousands per page."""
    x = sha1_hex
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


@dataclass(frozen=True, slots=True)
class DateField:
    """Where a record keeps a date and how to read it."""

    name: str  # as configured, for messages
    path: tuple[jsonpath.Segment, ...]
    format: DateFormat


@dataclass(frozen=True, slots=True)
class DetectSpec:
    """What detection needs to know about a resource (built from its configuration)."""

    instance_id: str
    resource: str
    id_field: str
    id_path: tuple[jsonpath.Segment, ...] | None  # None: identify records by their content
    updated: DateField | None = None
    created: DateField | None = None
    filter_by_updated: bool = True
    filter_by_current_date: bool = False
    created_tolerance_ms: int = 10_000

    @property
    def stamp_field(self) -> DateField | None:
        if self.filter_by_updated and self.updated is not None:
            return self.updated
        return self.created if self.created is not None else self.updated

    @property
    def has_dates(self) -> bool:
        return self.stamp_field is not None


class Event(NamedTuple):
    id: str
    object_id: str
    event_type: str
    version: str
    stamp_ms: int  # the record's stamp; for hash versions, the poll's start
    record: Any


@dataclass
class Skips:
    """Records passed over, by reason, with the first example of each (for one log line per poll)."""

    no_id: int = 0
    bad_date: int = 0
    before_since: int = 0
    in_future: int = 0
    seen: int = 0
    examples: dict[str, str] = field(default_factory=dict)

    def note(self, reason: str, example: str | Callable[[], str]) -> None:
        """Count a skip; ``example`` may be a callable, formatted only for the first of its kind."""
        setattr(self, reason, getattr(self, reason) + 1)
        if reason not in self.examples:
            self.examples[reason] = example() if callable(example) else example

    @property
    def total(self) -> int:
        return self.no_id + self.bad_date + self.before_since + self.in_future + self.seen

    def add(self, other: Skips) -> None:
        for name in ("no_id", "bad_date", "before_since", "in_future", "seen"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, example in other.examples.items():
            self.examples.setdefault(reason, example)


@dataclass
class PageResult:
    events: list[Event]
    new_versions: list[tuple[str, str, int]]  # (object id, version, stamp ms) to remember
    touched: list[tuple[str, str, int]]  # hash versions seen again: refresh their stamp
    max_stamp_ms: int | None
    records: int
    skips: Skips
    fallbacks: int  # dates read by the lenient fallback (format mismatches)


def event_id(instance_id: str, resource: str, object_id: str, version: str) -> str:
    """A UUID that names one version of one record, stable forever: uuid5 of the four parts."""
    return _EventIds(instance_id, resource)(object_id, version)


class _EventIds:
    """uuid5 ids for one resource, hashing the shared prefix once (the same ids, 3x cheaper)."""

    __slots__ = ("_prefix",)

    def __init__(self, instance_id: str, resource: str) -> None:
        self._prefix = hashlib.sha1(_EVENT_NAMESPACE.bytes + f"{instance_id}\x1f{resource}\x1f".encode())

    def __call__(self, object_id: str, version: str) -> str:
        h = self._prefix.copy()
        h.update(f"{object_id}\x1f{version}".encode())
        x = h.hexdigest()  # the first 32 hex digits are the UUID's 16 bytes
        # byte 6's high nibble (digit 12) becomes 5 (version 5); byte 8's top bits (digit 16) 10 (RFC 4122)
        return uuid5_text(x)


def object_id_text(value: object) -> str | None:
    """``objectId`` is always a string; None when the record has no usable id (see ``_id_problem``)."""
    if value is jsonpath.MISSING or value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value if value.strip() and _unicode(value) else None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text if _unicode(text) else None


def _unicode(text: str) -> bool:
    """Whether ``text`` is valid Unicode: no lone UTF-16 surrogate, which a JSON escape such as
    "\\ud800" can produce and which neither SQLite nor a receiver could take as an id."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _id_problem(value: object) -> str:
    """Why ``value`` is not a usable id, in words for the skip message."""
    if value is jsonpath.MISSING:
        return "missing"
    if value is None or isinstance(value, bool):
        return f"is {json.dumps(value)}"
    if isinstance(value, str) and not value.strip():
        return "is blank"
    return "is not valid Unicode (a lone surrogate)"


def content_hash(record: object) -> str:
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    # surrogatepass: a lone surrogate (from a JSON escape) hashes too; valid text is plain UTF-8
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _read_date(record: object, date: DateField) -> tuple[int | None, bool, str]:
    """(epoch ms or None, fell back, the raw text for messages)."""
    value = _date_value(record, date.path)
    if value is jsonpath.MISSING or value is None:
        return None, False, "missing"
    ms, fell_back = _parse_value(value, date.format)
    return ms, fell_back, repr(value)


def _date_value(record: object, path: tuple[jsonpath.Segment, ...]) -> object:
    if len(path) == 1 and isinstance(record, dict):  # the common case: a top-level field
        return record.get(path[0], jsonpath.MISSING) if isinstance(path[0], str) else jsonpath.MISSING
    return jsonpath.get(record, path)


def _parse_value(value: object, fmt: DateFormat) -> tuple[int | None, bool]:
    """(epoch ms or None when unreadable, fell back) of a present, non-null date value."""
    if isinstance(value, str):
        fast = fmt.fast_ms
        if fast is not None:
            ms = fast(value)
            if ms is not None:  # what parse_lenient would say, without the datetime round trip
                return ms, False
    try:
        dt, fell_back = fmt.parse_lenient(value)
    except DateFormatError:
        return None, False
    return to_ms(dt), fell_back


def _raw_text(record: object, date: DateField) -> str:
    """How a record's date reads in messages (formatted only for the first skip of its kind)."""
    value = _date_value(record, date.path)
    return "missing" if value is jsonpath.MISSING or value is None else repr(value)


def _top_key(path: tuple[jsonpath.Segment, ...] | None) -> str | None:
    """The key when ``path`` is one top-level string segment: the records' common shape."""
    return path[0] if path is not None and len(path) == 1 and isinstance(path[0], str) else None


_new_event = tuple.__new__
_event_order = operator.itemgetter(4, 1)  # (stamp_ms, object_id)


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
    not modified. A baseline page announces nothing but remembers every version it returns.
    """
    if type(records) is list:
        common = _detect_common_page(records, seen, spec, since_ms=since_ms, now_ms=now_ms, baseline=baseline)
        if common is not None:
            return common
    stamp_field = spec.stamp_field
    ids = _EventIds(spec.instance_id, spec.resource)
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
    id_key = _top_key(id_path)
    missing = jsonpath.MISSING
    get_path = jsonpath.get
    seen_get = seen.get
    added_get = added.get
    new_append = new_versions.append
    event_append = events.append
    if stamp_field is not None:
        stamp_path = stamp_field.path
        stamp_key = _top_key(stamp_path)
        stamp_one = len(stamp_path) == 1
        stamp_format = stamp_field.format
        stamp_fast = stamp_format.fast_ms
        check_future = spec.filter_by_current_date and not baseline
        created_reader = _created_reader(spec)
    for count, record in enumerate(records, 1):  # count: how many records, after the loop
        if id_path is None:
            digest = content_hash(record)
            object_id: str | None = digest
        else:
            if id_key is not None and isinstance(record, dict):
                raw_id = record.get(id_key, missing)
            else:
                raw_id = get_path(record, id_path)
            object_id = object_id_text(raw_id)
            if object_id is None:
                skips.note("no_id", lambda: f"{spec.id_field} {_id_problem(raw_id)} in a record with fields "
                                            f"{_field_names(record)}")
                continue
        known = seen_get(object_id, no_versions)
        mine = added_get(object_id, _NOTHING)
        if stamp_field is None:
            version = "h:" + (object_id if id_path is None else content_hash(record))
            stamp = now_ms
            # Only the id's latest content counts as seen: open -> closed -> open is two changes.
            latest = max(known, key=known.__getitem__) if known else None
            if version in mine or (version == latest and not mine):
                skips.note("seen", f"record {object_id} version {version}")
                if version == latest and known[version] < now_ms - _TOUCH_AFTER_MS:
                    touched.append((object_id, version, now_ms))  # keep it from being pruned
                continue
            event_type = UPDATED if (known or mine) else CREATED
        else:
            # the stamp: _read_date, inlined for the common case (a str the fast path settles)
            if stamp_one and isinstance(record, dict):
                value = record.get(stamp_key, missing) if stamp_key is not None else missing
            else:
                value = get_path(record, stamp_path)
            stamp_read: int | None
            fell_back = False
            if type(value) is str and stamp_fast is not None:
                stamp_read = stamp_fast(value)
                if stamp_read is None:
                    stamp_read, fell_back = _parse_value(value, stamp_format)
                    fallbacks += fell_back
            elif value is missing or value is None:
                stamp_read = None
            else:
                stamp_read, fell_back = _parse_value(value, stamp_format)
                fallbacks += fell_back
            if stamp_read is None:
                skips.note("bad_date",
                           lambda: f"record {object_id}: {stamp_field.name} = {_raw_text(record, stamp_field)}")
                continue
            stamp = stamp_read
            if stamp < since_ms:
                skips.note("before_since",
                           lambda: f"record {object_id}: {stamp_field.name} = {_raw_text(record, stamp_field)}")
                continue
            if check_future and stamp > now_ms:
                # (a baseline remembers it anyway: it existed before we started)
                skips.note("in_future",
                           lambda: f"record {object_id}: {stamp_field.name} = {_raw_text(record, stamp_field)}")
                continue
            if max_stamp is None or stamp > max_stamp:
                max_stamp = stamp
            version = f"d:{stamp}"
            if version in known or version in mine:
                seen_count += 1
                if "seen" not in examples:
                    examples["seen"] = f"record {object_id} version {version}"
                continue
            if known or mine or created_reader is None:
                event_type = UPDATED
            else:
                event_type, created_fell_back = created_reader(record, stamp, since_ms, value, fell_back)
                fallbacks += created_fell_back
        if mine is _NOTHING:
            added[object_id] = {version}
        else:
            mine.add(version)
        new_append((object_id, version, stamp))
        if not baseline:
            event_append(_new_event(Event, (ids(object_id, version), object_id, event_type, version, stamp, record)))
    skips.seen += seen_count
    events.sort(key=_event_order)
    return PageResult(events, new_versions, touched, max_stamp, count, skips, fallbacks)


_NO_STAMP = -(1 << 62)


def _detect_common_page(records: list[Any], seen: Mapping[str, Mapping[str, int]], spec: DetectSpec, *,
                        since_ms: int, now_ms: int, baseline: bool) -> PageResult | None:
    """``detect_page`` for the page shape nearly every provider sends, or None for any other.

    The shape: objects whose id is a top-level non-blank string, unique on the page, and whose
    stamp is a top-level string the format's fast reader settles, none in the future when that
    is filtered. The general loop would decide exactly the same for such a page; this one skips
    its per-record branching (the bookkeeping for ids repeated on a page, paths, other types),
    which is most of detection's time on a large page. Anything else (one record is enough)
    returns None, and the caller runs the general loop from the start: nothing is half done.
    """
    id_key = _top_key(spec.id_path)
    stamp_field = spec.stamp_field
    if id_key is None or stamp_field is None:
        return None
    stamp_key = _top_key(stamp_field.path)
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
    created_reader = _created_reader(spec)
    ids = _EventIds(spec.instance_id, spec.resource)
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
        elif created_reader is None:
            event_type = UPDATED
        else:
            event_type, created_fell_back = created_reader(record, stamp, since_ms, value, False)
            fallbacks += created_fell_back
        new_append((object_id, version, stamp))
        if not baseline:
            event_append(_new_event(Event, (ids(object_id, version), object_id, event_type, version, stamp, record)))
    skips.seen = seen_count
    skips.before_since = before_since
    events.sort(key=_event_order)
    return PageResult(events, new_versions, [], None if max_stamp == _NO_STAMP else max_stamp, len(records),
                      skips, fallbacks)


def _created_reader(spec: DetectSpec) -> Callable[[object, int, int, object, bool], tuple[str, bool]] | None:
    """``_event_type`` for ids never seen, with the page's constants bound; None: always UPDATED.

    It is called as ``(record, stamp, since_ms, stamp_value, stamp_fell_back)``: the stamp's raw
    value and how it was read, reused when the created date is the same text in the same format.
    """
    if spec.created is None:
        return None
    if spec.updated is None or spec.updated is spec.stamp_field:
        # the common shapes: at most the created date to read (updated == the stamp)
        created_field = None if spec.created is spec.stamp_field else spec.created
        tolerance = spec.created_tolerance_ms
        if created_field is None:
            # created == updated == stamp (and stamp >= since): as _event_type decides
            return lambda record, stamp, since_ms, stamp_value, stamp_fell_back: (CREATED, False)
        path = created_field.path
        key = _top_key(path)
        one = len(path) == 1
        fmt = created_field.format
        fast = fmt.fast_ms
        same_format = spec.stamp_field is not None and fmt is spec.stamp_field.format
        missing = jsonpath.MISSING

        def created_type(record: object, stamp: int, since_ms: int, stamp_value: object,
                         stamp_fell_back: bool) -> tuple[str, bool]:
            if one and isinstance(record, dict):
                value = record.get(key, missing) if key is not None else missing
            else:
                value = jsonpath.get(record, path)
            fell_back = False
            if value is missing or value is None:
                return UPDATED, False
            if same_format and type(value) is str and value == stamp_value:
                # the same text in the same format: the stamp's reading (parsing is deterministic)
                created, fell_back = stamp, stamp_fell_back
            else:
                created = fast(value) if fast is not None and type(value) is str else None
            if created is None:
                created, fell_back = _parse_value(value, fmt)
                if created is None:
                    return UPDATED, fell_back
            if abs(stamp - created) <= tolerance or created >= since_ms:
                return CREATED, fell_back
            return UPDATED, fell_back

        return created_type
    return lambda record, stamp, since_ms, stamp_value, stamp_fell_back: _event_type(record, spec, stamp, since_ms,
                                                                                     False)


def _event_type(record: object, spec: DetectSpec, stamp: int, since_ms: int, id_seen: bool) -> tuple[str, bool]:
    """CREATED when the created date is known, the id is new, and created ~ updated or >= since."""
    if spec.created is None or id_seen:
        return UPDATED, False
    if spec.created is spec.stamp_field:
        created = stamp
        fell_back = False
    else:
        created_read, fell_back, _ = _read_date(record, spec.created)
        if created_read is None:
            return UPDATED, fell_back
        created = created_read
    updated = stamp
    if spec.updated is not None and spec.updated is not spec.stamp_field:
        updated_read, _, _ = _read_date(record, spec.updated)
        updated = updated_read if updated_read is not None else stamp
    if abs(updated - created) <= spec.created_tolerance_ms or created >= since_ms:
        return CREATED, fell_back
    return UPDATED, fell_back


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


def _field_names(record: object, limit: int = 8) -> str:
    """The record's keys, never its values (they may be personal data, and this goes to logs)."""
    if not isinstance(record, dict):
        return f"(a {type(record).__name__}, not an object)"
    names = list(record)[:limit]
    return ", ".join(map(str, names)) + (", ..." if len(record) > limit else "") if names else "(none)"
