"""Notifications in the Cloud Elements shape, formed at detection time. Pure.

Events of one resource are grouped in order into notifications of at most ``batch_size``;
each notification's body is serialised once, stored as bytes in the outbox, and re-sent
byte for byte on every retry. Ids are stable: a notification's id is derived from its event
ids, which are derived from (instance, resource, object id, version).
"""

from __future__ import annotations

import json
import time
import uuid
from hashlib import sha1
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from poller import javadate
from poller.javazone import from_ms
from poller.detect import Event, uuid5_text
from poller.jsonio import dumps

__all__ = ["Envelope", "NotificationBody", "build_notifications", "hub_key", "iso_z", "notification_id"]

_NOTIFICATION_NAMESPACE = uuid.UUID("0e3f1d8a-7c4b-5a2e-8f61-3d9b7a2c4e10")
_NOTIFICATION_NAMESPACE_BYTES = _NOTIFICATION_NAMESPACE.bytes
_JAVA_DATE = javadate.compile("EEE MMM dd HH:mm:ss zzz yyyy")  # java.util.Date.toString(), in UTC


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
    parts = urlsplit(url).path.split("/")
    for i, part in enumerate(parts[:-1]):
        if part == "hubs" and parts[i + 1]:
            return parts[i + 1]
    return element_key


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
    """Group events (already in detection order) into serialised notifications."""
    out: list[NotificationBody] = []
    size = max(1, envelope.batch_size)
    topic = f"instance-{envelope.instance_id}-{envelope.element_key}-events"
    poll_date = iso_z(poll_ms)
    created_date = _JAVA_DATE.format(from_ms(created_ms))
    element_key = envelope.element_key
    instance_id = envelope.instance_id
    instance_name = envelope.instance_name
    tags = envelope.tags
    resource = envelope.resource
    key = envelope.hub_key
    for start in range(0, len(events), size):
        chunk = events[start:start + size]
        event_ids = tuple([e.id for e in chunk])
        nid = notification_id(event_ids)
        body = {
            "severity": "medium",
            "createdDate": created_date,
            "topic": topic,
            "action": "create",
            "id": nid,
            "message": {
                "elementKey": element_key,
                "instanceId": instance_id,
                "instance_id": instance_id,
                "instanceName": instance_name,
                "instanceTags": list(tags),
                "eventId": nid,
                "raw": {resource: [e.record for e in chunk], "objectType": resource, "pollDate": poll_ms},
                "events": [
                    {
                        "date": iso_z(stamp_ms),
                        "elementKey": element_key,
                        "pollDate": poll_date,
                        "eventType": event_type,
                        "hubKey": key,
                        "objectId": object_id,
                        "objectType": resource,
                        "id": event_id,
                    }
                    for event_id, object_id, event_type, _, stamp_ms, _ in chunk
                ],
            },
        }
        out.append(NotificationBody(nid, dumps(body), event_ids))
    return out
