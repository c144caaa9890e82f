"""A provider's webhook body -> normalised events (DESIGN §10's table). Pure: ``received_ms`` is given.

:func:`normalise` reads one request's body as its instance's provider sends it (Campaign Monitor
JSON or XML, Mailchimp's form, the generic element's JSON) and returns a :class:`Parsed`: the
payload as JSON, its events in order, and how to cut the payload down to some of its events
(each notification's ``raw`` holds only its own events, as for polling). A body that cannot be
read raises :class:`Refused` with the HTTP status and the reason.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from poller import javadate, jsonpath
from poller.config.types import WebhookConfig, WebhookEventsConfig
from poller.config.values import format_path, kind as json_kind
from poller.errors import DateFormatError
from poller.events.notify import MAX_RECORD_DEPTH
from poller.inbound.cmxml import XmlError, read_xml
from poller.inbound.forms import FormError, decode_form
from poller.javadate.zone import to_ms
from poller.jsonio import depth, loads

__all__ = ["CREATED", "UPDATED", "DELETED", "UNKNOWN", "Pushed", "Parsed", "Refused", "normalise", "media_type"]

CREATED, UPDATED, DELETED, UNKNOWN = "CREATED", "UPDATED", "DELETED", "UNKNOWN"
PROVIDER_DATE = "yyyy-MM-dd HH:mm:ss"  # Campaign Monitor's Date, Mailchimp's fired_at
JSON_TYPES = ("application/json", "text/json")
XML_TYPES = ("application/xml", "text/xml")
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_EVENTS = 10_000  # Campaign Monitor sends up to 1,000 a request


class Refused(Exception):
    """A body this instance cannot take: ``status`` 400 (unreadable, unknown list) or 415."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Pushed(NamedTuple):
    """One normalised event; ``content`` (canonical bytes of the provider's event) names it. (A
    named tuple: a batch makes a thousand of them, at a third of a frozen dataclass's cost.)"""

    event_type: str
    object_type: str
    object_id: str
    stamp_ms: int
    content: bytes
    # the date as written, read as UTC, 0 when there is none: the same text always gives the same
    # number (not so stamp_ms, which a changed event.webhook.timeZone moves), so the state file
    # keys the event's id under it and keeps a batch's ids side by side (migration 0007)
    date_ms: int = 0

    @property
    def version(self) -> str:
        """The version part of the event's id: a digest of what the provider said."""
        return "c:" + hashlib.sha1(self.content).hexdigest()


@dataclass(frozen=True, slots=True)
class Parsed:
    payload: object  # the provider's payload as JSON
    events: list[Pushed]
    # the payload holding only the events at these positions (each notification's message.raw)
    raw_for: Callable[[Sequence[int]], object] = field(repr=False)
    handshake: bool = False  # a validation request (Mailchimp's GET, an empty POST): no event
    # what could not be taken as the provider said it: events left out (no id, not an object)
    # and dates that could not be read (the receive time is used): logged, and kept with the request
    notes: tuple[str, ...] = ()


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def charset(content_type: str | None) -> str:
    """The ``charset`` parameter's codec (``utf-8`` when there is none); Refused 415 for one
    Python does not know."""
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            declared = value.strip().strip('"').strip()
            try:
                info = codecs.lookup(declared)
            except LookupError:
                info = None
            # (codecs also knows hex, base64, rot13, zlib and "undefined", which are not charsets)
            if info is None or not getattr(info, "_is_text_encoding", True) or info.name == "undefined":
                raise Refused(415, f"unknown charset {declared[:40]!r} in the Content-Type")
            return info.name
    return "utf-8"


def normalise(webhook: WebhookConfig, method: str, content_type: str | None, body: bytes,
              received_ms: int) -> Parsed:
    try:
        if webhook.kind == "campaignmonitor":
            parsed = _campaign_monitor(webhook, content_type, body, received_ms)
        elif webhook.kind == "mailchimp":
            parsed = _mailchimp(webhook, method, content_type, body, received_ms)
        else:
            parsed = _generic(webhook, content_type, body, received_ms)
        around = depth(parsed.raw_for([]))  # what a notification's raw holds beside its events
    except RecursionError:  # (a guard: each reader bounds what it nests)
        raise Refused(400, "the body nests too deeply to be read") from None
    except _TooDeep as exc:  # (not in an event: Campaign Monitor's ListID, say)
        raise Refused(400, f"a value of the body {exc}") from None
    if around > MAX_RECORD_DEPTH:
        raise Refused(400, f"the body nests {around} levels deep beside its events (more than "
                           f"{MAX_RECORD_DEPTH}: it could not be sent on)")
    return parsed


# -- Campaign Monitor ---------------------------------------------------------------------------

_CM_TYPES = {"Subscribe": CREATED, "Update": UPDATED}


def _campaign_monitor(webhook: WebhookConfig, content_type: str | None, body: bytes, received_ms: int) -> Parsed:
    kind = media_type(content_type)
    looks = body.lstrip()[:1]
    if kind in XML_TYPES or kind.endswith("+xml") or (not kind and looks == b"<"):
        try:
            payload: object = read_xml(body)
        except XmlError as exc:
            raise Refused(400, f"not a Campaign Monitor XML body: {exc}") from None
    elif kind in JSON_TYPES or kind.endswith("+json") or not kind:
        payload = _json(body, "Campaign Monitor", content_type)
    else:
        raise Refused(415, f"Campaign Monitor sends JSON or XML, not {kind}")
    if not isinstance(payload, dict) or not isinstance(payload.get("Events"), list):
        raise Refused(400, "not a Campaign Monitor body: expected an object with an \"Events\" list")
    list_id = payload.get("ListID")
    if webhook.list_ids:
        if not isinstance(list_id, str) or list_id not in webhook.list_ids:
            shown = json.dumps(list_id)[:80]
            raise Refused(400, f"ListID {shown} is not one of events.list.ids")
    items = payload["Events"]
    _count(items)
    notes: list[str] = []
    dates = _Dates(webhook.time_zone, received_ms, notes)
    prefix = _canonical(list_id) + b"\x1f"
    events, origin = [], []  # origin: each event's position in Events
    for i, item in enumerate(items):
        where = f"Events[{i}]"
        if not isinstance(item, dict):
            notes.append(f"{where} is not an object but {json_kind(item)}: left out")
            continue
        kind_name = item.get("Type")
        if kind_name == "Deactivate":
            event_type = DELETED if str(item.get("State", "")).strip().lower() == "deleted" else UPDATED
        else:
            event_type = _CM_TYPES.get(kind_name, UNKNOWN) if isinstance(kind_name, str) else UNKNOWN
        try:
            content = prefix + _canonical(item)
            object_id = _text(item.get("EmailAddress"))
        except _TooDeep as exc:
            notes.append(f"{where} {exc}: left out")
            continue
        if _lacks_id(object_id, event_type, where, "EmailAddress", notes):
            continue
        stamp, key = dates(item.get("Date"), f"{where}.Date")
        events.append(Pushed(event_type, "contacts", object_id, stamp, content, key))
        origin.append(i)
    _something_left(items, events, notes)

    def raw_for(positions: Sequence[int]) -> object:
        return {**payload, "Events": [items[origin[i]] for i in positions]}  # type: ignore[dict-item]

    return Parsed(payload, events, raw_for, notes=tuple(notes))


# -- Mailchimp ----------------------------------------------------------------------------------

def _mailchimp(webhook: WebhookConfig, method: str, content_type: str | None, body: bytes,
               received_ms: int) -> Parsed:
    if method == "GET" or not body.strip():  # the URL validator, or an empty POST: answered 200, no event
        return Parsed({}, [], lambda positions: {}, handshake=True)
    kind = media_type(content_type)
    if kind and kind != FORM_TYPE:
        raise Refused(415, f"Mailchimp sends {FORM_TYPE}, not {kind}")
    try:
        payload = decode_form(body, charset(content_type))
    except FormError as exc:
        raise Refused(400, f"not a Mailchimp form body: {exc}") from None
    kind_name = payload.get("type")
    if not isinstance(kind_name, str) or not kind_name:
        raise Refused(400, "not a Mailchimp form body: it has no \"type\" field")
    data = payload.get("data")
    data = data if isinstance(data, dict) else {}
    if webhook.list_ids:  # (Mailchimp signs nothing: the token and the list protect it, DESIGN §10)
        list_id = data.get("list_id")
        if not isinstance(list_id, str) or list_id not in webhook.list_ids:
            raise Refused(400, f"data[list_id] {json.dumps(list_id)[:80]} is not one of events.list.ids")
    # the record's id, and the e-mail address when a request has none (README, Mailchimp)
    object_type, id_fields, event_type = "contacts", ("id", "email"), UNKNOWN
    if kind_name == "subscribe":
        event_type = CREATED
    elif kind_name == "profile":
        event_type = UPDATED
    elif kind_name == "unsubscribe":
        event_type = DELETED if str(data.get("action", "")).strip().lower() == "delete" else UPDATED
    elif kind_name == "upemail":
        event_type, id_fields = UPDATED, ("new_id", "new_email")
    elif kind_name == "cleaned":
        event_type, id_fields = UPDATED, ("email",)
    elif kind_name == "campaign":
        event_type, object_type, id_fields = UPDATED, "campaigns", ("id",)
    object_id = next((t for t in (_text(data.get(name)) for name in id_fields) if t.strip()), "")
    id_field = " or ".join(f"data[{name}]" for name in id_fields)
    notes: list[str] = []
    if _lacks_id(object_id, event_type, f"the {kind_name} event", id_field, notes):
        raise Refused(400, notes[0].removesuffix(": left out"))  # its only event: nothing to announce
    stamp, key = _Dates(webhook.time_zone, received_ms, notes)(payload.get("fired_at"), "fired_at")
    event = Pushed(event_type, object_type, object_id, stamp, _canonical(payload), key)
    return Parsed(payload, [event], lambda positions: payload, notes=tuple(notes))


# -- the generic element ------------------------------------------------------------------------

def _generic(webhook: WebhookConfig, content_type: str | None, body: bytes, received_ms: int) -> Parsed:
    kind = media_type(content_type)
    if kind and kind not in JSON_TYPES and not kind.endswith("+json"):
        raise Refused(415, f"this element takes JSON, not {kind}")
    payload = _json(body, "JSON", content_type)
    spec = webhook.events
    if spec.path is None:
        items = payload if isinstance(payload, list) else [payload]
    else:
        items = jsonpath.get(payload, spec.path)
        if not isinstance(items, list):
            raise Refused(400, f"no array of events at {format_path(spec.path)} (event.webhook.events.path)")
    _count(items)
    date = spec.date_format or javadate.compile("yyyy-MM-dd'T'HH:mm:ssXXX", webhook.time_zone)
    types = dict(spec.types)
    notes: list[str] = []
    events, origin = [], []  # origin: each event's position among the items
    for i, item in enumerate(items):
        try:
            event = _generic_event(spec, types, date, item, received_ms, i, notes)
        except _TooDeep as exc:
            notes.append(f"event {i}{_at(spec)} {exc}: left out")
            continue
        if event is not None:
            events.append(event)
            origin.append(i)
    _something_left(items, events, notes)

    def raw_for(positions: Sequence[int]) -> object:
        chosen = [items[origin[i]] for i in positions]
        if spec.path is None:
            return chosen if isinstance(payload, list) else payload
        return _replace_at(payload, spec.path, chosen)

    return Parsed(payload, events, raw_for, notes=tuple(notes))


def _generic_event(spec: WebhookEventsConfig, types: dict[str, str], date: javadate.DateFormat, item: object,
                   received_ms: int, index: int, notes: list[str]) -> Pushed | None:
    """The event, or None (and why, in ``notes``) when it cannot be announced."""
    where = f"event {index}{_at(spec)}"
    if not isinstance(item, dict):
        notes.append(f"{where} is not an object but {json_kind(item)}: left out")
        return None
    provider_type = _first(item, spec.type_path)
    event_type = UNKNOWN
    if provider_type is not None:
        text = _text(provider_type)
        if types:  # the configured mapping, and nothing else
            event_type = types.get(text, UNKNOWN)
        elif text.strip().upper() in (CREATED, UPDATED, DELETED):  # Cloud Elements' own names
            event_type = text.strip().upper()
    object_type = spec.object_type
    if spec.object_type_path is not None:
        found = jsonpath.get(item, spec.object_type_path)
        if isinstance(found, str) and found.strip():
            object_type = found.strip()
    object_id = _text(_first(item, spec.id_path))
    if _lacks_id(object_id, event_type, where, " or ".join(format_path(p) for p in spec.id_path), notes):
        return None
    stamp = _first(item, spec.date_path)
    date_fields = " or ".join(format_path(p) for p in spec.date_path)
    return Pushed(event_type, object_type, object_id,
                  _stamp(date, stamp, received_ms, f"{where}: {date_fields}", notes) if stamp is not None
                  else received_ms, _canonical(item))


def _at(spec: WebhookEventsConfig) -> str:
    return f" (at {format_path(spec.path)})" if spec.path else ""


def _first(item: object, paths: tuple[tuple, ...]) -> object:
    for path in paths:
        value = jsonpath.get(item, path)
        if value is not jsonpath.MISSING and value is not None:
            return value
    return None


def _replace_at(value: object, path: tuple, replacement: object) -> object:
    if not path:
        return replacement
    head, rest = path[0], path[1:]
    if isinstance(value, dict) and head in value:
        return {**value, head: _replace_at(value[head], rest, replacement)}
    if isinstance(value, list) and isinstance(head, int) and -len(value) <= head < len(value):
        copy = list(value)
        copy[head] = _replace_at(copy[head], rest, replacement)
        return copy
    return value


# -- shared -------------------------------------------------------------------------------------

def _json(body: bytes, what: str, content_type: str | None) -> object:
    codec = charset(content_type)
    if codec != "utf-8":  # (JSON is UTF-8, RFC 8259; a provider that says otherwise is taken at its word)
        try:
            body = body.decode(codec).encode("utf-8", "surrogatepass")
        except UnicodeError as exc:
            where = f"{exc.reason} at byte {exc.start}" if isinstance(exc, UnicodeDecodeError) else str(exc)[:80]
            raise Refused(400, f"not a {what} body: not {codec} as its Content-Type says ({where})") from None
    try:
        return loads(body)
    except (ValueError, RecursionError) as exc:
        raise Refused(400, f"not a {what} body: not valid JSON ({str(exc).splitlines()[0][:120]})") from None


def _count(items: list) -> None:
    if len(items) > MAX_EVENTS:
        raise Refused(400, f"{len(items)} events in one request: at most {MAX_EVENTS} are taken")


def _text(value: object) -> str:
    """An object id as text: strings as they are, numbers as JSON writes them, nothing as ""."""
    if value is None or value is jsonpath.MISSING:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return _canonical(value).decode("utf-8", "replace")


class _Dates:
    """The providers' dates (``PROVIDER_DATE``) of one request -> (stamp_ms, date_ms) as
    :class:`Pushed` has them. A batch repeats a few values: each text is read once."""

    __slots__ = ("zoned", "utc", "received_ms", "notes", "seen")

    def __init__(self, time_zone: str, received_ms: int, notes: list[str]) -> None:
        self.zoned = javadate.compile(PROVIDER_DATE, time_zone)
        self.utc = javadate.compile(PROVIDER_DATE, "UTC")
        self.received_ms = received_ms
        self.notes = notes
        self.seen: dict[str, tuple[int, int]] = {}

    def __call__(self, value: object, where: str) -> tuple[int, int]:
        known = self.seen.get(value) if isinstance(value, str) else None
        if known is not None:
            return known
        stamp = _stamp(self.zoned, value, self.received_ms, where, self.notes)
        key = _stamp(self.utc, value, 0, where, [])
        if isinstance(value, str):
            self.seen[value] = (stamp, key)
        return stamp, key


def _stamp(date: javadate.DateFormat, value: object, received_ms: int, where: str, notes: list[str]) -> int:
    """The event's date in epoch ms; the receive time when it has none, or one that cannot be read
    (then said in ``notes``: the event is announced all the same, not lost over its date)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return received_ms
    try:
        instant, _ = date.parse_lenient(value.strip() if isinstance(value, str) else value)
    except (DateFormatError, OverflowError, ValueError):
        shown = json.dumps(value, ensure_ascii=False, default=str)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        notes.append(f"{where} is {shown}: not a date ({date.pattern}, ISO-8601 or epoch numbers); "
                     f"the receive time is used")
        return received_ms
    return to_ms(instant)


_TYPED = (CREATED, UPDATED, DELETED)


def _lacks_id(object_id: str, event_type: str, where: str, field: str, notes: list[str]) -> bool:
    """Whether a CREATED, UPDATED or DELETED event lacks the id that names its record (said in
    ``notes``); an UNKNOWN event may have none (DESIGN §10, "the id field when present")."""
    if event_type in _TYPED and not object_id.strip():
        notes.append(f"{where} is {event_type} but has no {field} (the record's id): left out")
        return True
    return False


def _something_left(items: list, events: list[Pushed], notes: list[str]) -> None:
    """A body whose every event had to be left out is unreadable as a whole (400, kept as
    rejected); one with some left is taken, the others said in ``notes``."""
    if items and not events:
        raise Refused(400, "no event can be announced: " + listed([n.removesuffix(": left out") for n in notes], 3))


def listed(notes: Sequence[str], limit: int) -> str:
    """The first ``limit`` notes, and how many more: for a reason that stays readable."""
    more = f" (and {len(notes) - limit} more)" if len(notes) > limit else ""
    return "; ".join(notes[:limit]) + more


class _TooDeep(Exception):
    """An event nested more deeply than a notification may carry (as a polled record: DESIGN §12)."""

    def __init__(self, levels: int) -> None:
        super().__init__(f"is nested {levels} levels deep (more than {MAX_RECORD_DEPTH})")


def _canonical(value: object) -> bytes:
    """The same bytes for the same JSON content, whatever its key order or spacing."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # an integer beyond 64 bits, a lone surrogate, 255 levels
        levels = depth(value)
        if levels > MAX_RECORD_DEPTH:
            raise _TooDeep(levels) from None
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
