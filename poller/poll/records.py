"""What detection reads from a record, and what it reports about a page. Pure: no I/O, no clock.

A resource's :class:`DetectSpec` says where its records keep their id and dates; the readers
here turn a record into its object id (always text), its stamp (epoch ms, through the Java
pattern and the lenient fallbacks of DESIGN.md §2) and, for resources without dates, its
content hash; :func:`created_reader` decides CREATED or UPDATED for an id never seen (§4 step 4).
:class:`PageResult` and :class:`Skips` are what both detection loops report.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field

from poller import jsonio, jsonpath
from poller.errors import DateFormatError
from poller.events.event import CREATED, UPDATED, Event
from poller.javadate import DateFormat
from poller.javadate.zone import to_ms

__all__ = ["DateField", "DetectSpec", "PageResult", "Skips", "TooDeep", "content_hash", "created_reader", "date_value",
           "event_order", "field_names", "id_problem", "new_event", "object_id_text", "parse_value", "raw_text",
           "read_date", "top_key"]


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


@dataclass
class Skips:
    """Records passed over, by reason, with the first example of each (for one log line per poll)."""

    no_id: int = 0
    bad_date: int = 0
    before_since: int = 0
    in_future: int = 0
    too_deep: int = 0
    seen: int = 0
    examples: dict[str, str] = field(default_factory=dict)

    def note(self, reason: str, example: str | Callable[[], str]) -> None:
        """Count a skip; ``example`` may be a callable, formatted only for the first of its kind."""
        setattr(self, reason, getattr(self, reason) + 1)
        if reason not in self.examples:
            self.examples[reason] = example() if callable(example) else example

    @property
    def total(self) -> int:
        return self.no_id + self.bad_date + self.before_since + self.in_future + self.too_deep + self.seen

    @property
    def problems(self) -> int:
        """Records that could not be read (not those merely old or already announced)."""
        return self.no_id + self.bad_date + self.too_deep

    def add(self, other: Skips) -> None:
        for name in ("no_id", "bad_date", "before_since", "in_future", "too_deep", "seen"):
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


def object_id_text(value: object) -> str | None:
    """``objectId`` is always a string; None when the record has no usable id (see ``id_problem``)."""
    if value is jsonpath.MISSING or value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value if value.strip() and _unicode(value) else None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):  # 1e400 and 2e400 both read as inf: not an id to tell records by
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except RecursionError:  # an id nested too deeply to write down is no id
        return None
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


def id_problem(value: object) -> str:
    """Why ``value`` is not a usable id, in words for the skip message."""
    if value is jsonpath.MISSING:
        return "missing"
    if value is None or isinstance(value, bool):
        return f"is {json.dumps(value)}"
    if isinstance(value, str) and not value.strip():
        return "is blank"
    if isinstance(value, float) and not math.isfinite(value):
        return "is a number beyond a double's range (such ids cannot be told apart)"
    return "is not valid Unicode (a lone surrogate)"


class TooDeep(Exception):
    """A record nested more deeply than the encoders can take (``depth`` levels)."""

    def __init__(self, depth: int) -> None:
        super().__init__(f"nested {depth} levels deep")
        self.depth = depth


def content_hash(record: object) -> str:
    """A digest of the record's canonical JSON; raises :class:`TooDeep` for one nested too deeply."""
    try:
        canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    except RecursionError:
        raise TooDeep(jsonio.depth(record)) from None
    # surrogatepass: a lone surrogate (from a JSON escape) hashes too; valid text is plain UTF-8
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def read_date(record: object, date: DateField) -> tuple[int | None, bool, str]:
    """(epoch ms or None, fell back, the raw text for messages)."""
    value = date_value(record, date.path)
    if value is jsonpath.MISSING or value is None:
        return None, False, "missing"
    ms, fell_back = parse_value(value, date.format)
    return ms, fell_back, repr(value)


def date_value(record: object, path: tuple[jsonpath.Segment, ...]) -> object:
    if len(path) == 1 and isinstance(record, dict):  # the common case: a top-level field
        return record.get(path[0], jsonpath.MISSING) if isinstance(path[0], str) else jsonpath.MISSING
    return jsonpath.get(record, path)


def parse_value(value: object, fmt: DateFormat) -> tuple[int | None, bool]:
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


def raw_text(record: object, date: DateField) -> str:
    """How a record's date reads in messages (formatted only for the first skip of its kind)."""
    value = date_value(record, date.path)
    return "missing" if value is jsonpath.MISSING or value is None else repr(value)


def top_key(path: tuple[jsonpath.Segment, ...] | None) -> str | None:
    """The key when ``path`` is one top-level string segment: the records' common shape."""
    return path[0] if path is not None and len(path) == 1 and isinstance(path[0], str) else None


new_event = tuple.__new__  # Event(...) without NamedTuple's argument handling: detection makes thousands
event_order = operator.itemgetter(4, 1)  # (stamp_ms, object_id)


def created_reader(spec: DetectSpec) -> Callable[[object, int, int, object, bool], tuple[str, bool]] | None:
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
        key = top_key(path)
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
                created, fell_back = parse_value(value, fmt)
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
        created_read, fell_back, _ = read_date(record, spec.created)
        if created_read is None:
            return UPDATED, fell_back
        created = created_read
    updated = stamp
    if spec.updated is not None and spec.updated is not spec.stamp_field:
        updated_read, _, _ = read_date(record, spec.updated)
        updated = updated_read if updated_read is not None else stamp
    if abs(updated - created) <= spec.created_tolerance_ms or created >= since_ms:
        return CREATED, fell_back
    return UPDATED, fell_back


def field_names(record: object, limit: int = 8) -> str:
    """The record's keys, never its values (they may be personal data, and this goes to logs)."""
    if not isinstance(record, dict):
        return f"(a {type(record).__name__}, not an object)"
    names = list(record)[:limit]
    return ", ".join(map(str, names)) + (", ..." if len(record) > limit else "") if names else "(none)"
