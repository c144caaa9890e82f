"""Notifications in the Cloud Elements shape, formed at detection time. Pure.

Events of one resource are grouped in order into notifications of at most ``batch_size``;
each notification's body is serialised once, stored as bytes in the outbox, and re-sent
byte for byte on every retry. Ids are stable: a notification's id is derived from its event
ids, which are derived from (instance, resource, object id, version).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha1
from urllib.parse import urlsplit

import orjson

from poller import javadate
from poller.events.event import Event, uuid5_text
from poller.javadate.zone import from_ms
from poller.jsonio import depth, dumps

__all__ = ["MAX_RECORD_DEPTH", "Envelope", "NotificationBody", "RecordsTooDeep", "build_notifications",
           "created_date", "hub_key", "iso_z", "notification_id"]

_NOTIFICATION_NAMESPACE = uuid.UUID("0e3f1d8a-7c4b-5a2e-8f61-3d9b7a2c4e10")
_NOTIFICATION_NAMESPACE_BYTES = _NOTIFICATION_NAMESPACE.bytes
_JAVA_DATE = javadate.compile("EEE MMM dd HH:mm:ss zzz yyyy")  # java.util.Date.toString(), in UTC
# Deeper records are not sent: the standard library's encoder (which takes what orjson's limit of
# 254 levels refuses) recurses per level, and many receivers' parsers refuse such bodies anyway.
MAX_RECORD_DEPTH = 512


class RecordsTooDeep(Exception):
    """Events whose records nest more than MAX_RECORD_DEPTH levels: ``(event, depth)`` pairs.
    The caller drops those events (reporting them) and builds the notifications again."""

    def __init__(self, events: Sequence[tuple[Event, int]]) -> None:
        self.events = tuple(events)
        shown = ", ".join(f"{e.object_id} ({d} levels)" for e, d in self.events[:5])
        super().__init__(f"records nested more than {MAX_RECORD_DEPTH} levels deep: {shown}")


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a notification says about where its events come from."""

    instance_id: str | int
    instance_name: str
    element_key: str
    tags: tuple[str, ...]
    resource: str
    hub_key: str
    batch_size: int = 10


@dataclass(frozen=True, slots=True)
class NotificationBody:
    id: str
    body: bytes
    event_ids: tuple[str, ...]


def hub_key(url: str, element_key: str) -> str:
    """The path segment after ``/hubs/`` when the URL has one, else the element key."""
    if "hubs" not in url:  # (most URLs; asked at every poll)
        return element_key
    parts = urlsplit(url).path.split("/")
    for i, part in enumerate(parts[:-1]):
        if part == "hubs" and parts[i + 1]:
            return parts[i + 1]
    return element_key


def created_date(ms: int) -> str:
    """The envelope's ``createdDate``: ``java.util.Date.toString()`` in UTC, as Cloud Elements wrote it."""
    global _last_created
    second = ms // 1000  # (the text has seconds: the notifications of one second share it)
    last = _last_created  # (one read: another thread may replace it meanwhile)
    if last[0] != second:
        last = _last_created = (second, _JAVA_DATE.format(from_ms(second * 1000)))
    return last[1]


_last_created: tuple[int | None, str] = (None, "")


def iso_z(ms: int) -> str:
    """UTC ISO-8601 with Z, with milliseconds only when the instant has them."""
    seconds, millis = divmod(ms, 1000)
    if 0 <= seconds < 253_402_300_800:  # years 1970..9999: "yyyy-mm-ddTHH:" from a cache, then tables
        hours, secs = divmod(seconds, 3600)
        prefix = _HOURS.get(hours)
        if prefix is None:
            if len(_HOURS) >= 4096:
                _HOURS.clear()
            prefix = _HOURS[hours] = time.strftime("%Y-%m-%dT%H:", time.gmtime(hours * 3600))
        return prefix + _MM_SS[secs] + _MILLIS[millis]
    text = from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis:03d}Z" if millis else text + "Z"


_HOURS: dict[int, str] = {}  # hours since 1970 -> "yyyy-mm-ddTHH:"
_MM_SS = [f"{m:02d}:{s:02d}" for m in range(60) for s in range(60)]  # seconds in the hour -> "mm:ss"
_MILLIS = ["Z"] + [f".{i:03d}Z" for i in range(1, 1000)]


def notification_id(event_ids: Sequence[str]) -> str:
    """``str(uuid.uuid5(_NOTIFICATION_NAMESPACE, "\\x1f".join(event_ids)))``, without the UUID object."""
    x = sha1(_NOTIFICATION_NAMESPACE_BYTES + "\x1f".join(event_ids).encode()).hexdigest()
    # byte 6's high nibble (digit 12) becomes 5 (version 5); byte 8's top bits (digit 16) 10 (RFC 4122)
    return uuid5_text(x)


def build_notifications(events: Sequence[Event], envelope: Envelope, *, poll_ms: int, created_ms: int) -> list[NotificationBody]:
    """Group events (already in detection order) into serialised notifications. Raises
    :class:`RecordsTooDeep`, naming every such event of the page, before any body is made."""
    if not events:
        return []
    size = max(1, envelope.batch_size)
    layout = _Layout(envelope, poll_ms, created_ms)
    # one check for the page instead of one per event: object ids are nearly always plain text
    plain_ids = _PLAIN("".join([e.object_id for e in events])) is not None
    out: list[NotificationBody] = []
    deep: list[tuple[Event, int]] = []
    for start in range(0, len(events), size):
        chunk = events[start:start + size]
        event_ids = tuple([e.id for e in chunk])
        nid = notification_id(event_ids)
        try:
            out.append(NotificationBody(nid, layout.body(nid, chunk, plain_ids), event_ids))
        except RecordsTooDeep as exc:
            deep += exc.events
    if deep:
        raise RecordsTooDeep(deep)
    return out


_PLAIN = re.compile(r'[ !#-\[\]-~]*').fullmatch  # printable ASCII but " and \: its JSON is itself, quoted


def _json_string(text: str) -> str:
    """The JSON of a string, as orjson writes it (raises orjson.JSONEncodeError for lone surrogates)."""
    return f'"{text}"' if _PLAIN(text) else orjson.dumps(text).decode()


class _Layout:
    """The bytes of a notification body, from pieces that are the same for every body of a page.

    A body is ``dumps(body_dict(...))`` byte for byte (tests hold the two equal): the constants
    are encoded once per page, and each event's few variable strings are spliced between them;
    the records go through one ``orjson.dumps`` of the chunk's list. This is 2x cheaper than
    building and encoding the nested dicts, for every 10 events of a large page. A chunk whose
    records orjson refuses takes ``dumps(body_dict(...))`` and its fallbacks.
    """

    __slots__ = ("envelope", "poll_ms", "created_ms", "_pieces")

    def __init__(self, envelope: Envelope, poll_ms: int, created_ms: int) -> None:
        self.envelope, self.poll_ms, self.created_ms = envelope, poll_ms, created_ms
        try:
            self._pieces: tuple[bytes, bytes, bytes, bytes, tuple[str, ...]] | None = self._encode_constants()
        except orjson.JSONEncodeError:  # e.g. a lone surrogate in the instance's name: the fallbacks say what
            self._pieces = None

    def _encode_constants(self) -> tuple[bytes, bytes, bytes, bytes, tuple[str, ...]]:
        envelope, enc = self.envelope, orjson.dumps
        instance_id = enc(envelope.instance_id)
        resource = enc(envelope.resource)
        # ids (UUIDs), event types and iso_z dates are printable ASCII without " or \: spliced as they are
        head = (b'{"severity":"medium","createdDate":' + enc(created_date(self.created_ms))
                + b',"topic":' + enc(f"instance-{envelope.instance_id}-{envelope.element_key}-events")
                + b',"action":"create","id":"')
        message = (b'","message":{"elementKey":' + enc(envelope.element_key)
                   + b',"instanceId":' + instance_id + b',"instance_id":' + instance_id
                   + b',"instanceName":' + enc(envelope.instance_name)
                   + b',"instanceTags":' + enc(list(envelope.tags)) + b',"eventId":"')
        raw_head = b'","raw":{' + resource + b":"
        raw_tail = b',"objectType":' + resource + b',"pollDate":' + enc(self.poll_ms) + b'},"events":['
        event = (
            '{"date":"',
            '","elementKey":' + enc(envelope.element_key).decode() + ',"pollDate":"' + iso_z(self.poll_ms)
            + '","eventType":"',
            '","hubKey":' + enc(envelope.hub_key).decode() + ',"objectId":',
            ',"objectType":' + resource.decode() + ',"id":"',
            '"}',
        )
        return head, message, raw_head, raw_tail, event

    def body(self, nid: str, chunk: Sequence[Event], plain_ids: bool = False) -> bytes:
        """The body of the notification ``nid``; ``plain_ids``: every object id is plain text."""
        if self._pieces is not None:
            head, message, raw_head, raw_tail, (date, event_type, object_id, event_id, end) = self._pieces
            try:
                records = orjson.dumps([e.record for e in chunk])
                if plain_ids:
                    texts = [f'{date}{iso_z(e.stamp_ms)}{event_type}{e.event_type}{object_id}"{e.object_id}"'
                             f"{event_id}{e.id}{end}" for e in chunk]
                else:
                    texts = [f"{date}{iso_z(e.stamp_ms)}{event_type}{e.event_type}{object_id}"
                             f"{_json_string(e.object_id)}{event_id}{e.id}{end}" for e in chunk]
            except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits: the fallbacks below
                pass
            else:
                nid_bytes = nid.encode()
                return b"".join((head, nid_bytes, message, nid_bytes, raw_head, records, raw_tail,
                                 ",".join(texts).encode(), b"]}}"))
        deep = [(e, d) for e in chunk if (d := depth(e.record)) > MAX_RECORD_DEPTH]
        if deep:
            raise RecordsTooDeep(deep)
        return dumps(body_dict(self.envelope, nid, chunk, poll_ms=self.poll_ms, created_ms=self.created_ms))


def body_dict(envelope: Envelope, nid: str, chunk: Sequence[Event], *, poll_ms: int, created_ms: int) -> dict:
    """A notification's body as a dict (DESIGN §7's shape, keys in their order)."""
    resource = envelope.resource
    poll_date = iso_z(poll_ms)
    instance_id = envelope.instance_id
    return {
        "severity": "medium",
        "createdDate": created_date(created_ms),
        "topic": f"instance-{instance_id}-{envelope.element_key}-events",
        "action": "create",
        "id": nid,
        "message": {
            "elementKey": envelope.element_key,
            "instanceId": instance_id,
            "instance_id": instance_id,
            "instanceName": envelope.instance_name,
            "instanceTags": list(envelope.tags),
            "eventId": nid,
            "raw": {resource: [e.record for e in chunk], "objectType": resource, "pollDate": poll_ms},
            "events": [_event_dict(envelope, poll_date, e) for e in chunk],
        },
    }


def _event_dict(envelope: Envelope, poll_date: str, event: Event) -> dict:
    return {
        "date": iso_z(event.stamp_ms),
        "elementKey": envelope.element_key,
        "pollDate": poll_date,
        "eventType": event.event_type,
        "hubKey": envelope.hub_key,
        "objectId": event.object_id,
        "objectType": envelope.resource,
        "id": event.id,
    }
