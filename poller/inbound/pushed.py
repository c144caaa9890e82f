"""Pushed events -> notifications in the §7 shape, as polling makes them. Pure.

The envelope is polling's; ``message.raw`` is the provider's payload holding only the
notification's own events, and each event carries its own ``objectType``. ``pollDate`` is when
the request was received. Ids are stable: an event's id comes from (instance, its content), a
notification's from its event ids, so the same request normalised twice makes the same bodies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from hashlib import sha1

from poller.events.event import EventIds
from poller.events.notify import Envelope, NotificationBody, created_date, iso_z, notification_id
from poller.inbound.normalise import Pushed
from poller.jsonio import dumps

__all__ = ["WEBHOOK_RESOURCE", "event_ids", "build_pushed"]

# the outbox keeps each instance's pushed notifications in one queue, in arrival order, under
# the resource key "<instance id>/webhook"
WEBHOOK_RESOURCE = "webhook"


def event_ids(instance_id: str, events: Sequence[Pushed]) -> list[str]:
    # (Pushed.version, inline: a batch's thousand property calls cost a tenth of its ids)
    return EventIds(instance_id, WEBHOOK_RESOURCE).many((e.object_id, "c:" + sha1(e.content).hexdigest())
                                                        for e in events)


def build_pushed(envelope: Envelope, chosen: Sequence[tuple[int, str, Pushed]],
                 raw_for: Callable[[Sequence[int]], object], *, received_ms: int,
                 created_ms: int) -> list[NotificationBody]:
    """``chosen``: (position in the request, event id, event) of the events to announce, in order."""
    size = max(1, envelope.batch_size)
    created, received = created_date(created_ms), iso_z(received_ms)  # (the same for every notification)
    out = []
    for start in range(0, len(chosen), size):
        chunk = chosen[start:start + size]
        ids = tuple(eid for _, eid, _ in chunk)
        nid = notification_id(ids)
        body = _body(envelope, nid, chunk, raw_for([pos for pos, _, _ in chunk]), received, created)
        out.append(NotificationBody(nid, body, ids))
    return out


def _body(envelope: Envelope, nid: str, chunk: Sequence[tuple[int, str, Pushed]], raw: object, received: str,
          created: str) -> bytes:
    return dumps({
        "severity": "medium",
        "createdDate": created,
        "topic": f"instance-{envelope.instance_id}-{envelope.element_key}-events",
        "action": "create",
        "id": nid,
        "message": {
            "elementKey": envelope.element_key,
            "instanceId": envelope.instance_id,
            "instance_id": envelope.instance_id,
            "instanceName": envelope.instance_name,
            "instanceTags": list(envelope.tags),
            "eventId": nid,
            "raw": raw,
            "events": [{
                "date": iso_z(e.stamp_ms),
                "elementKey": envelope.element_key,
                "pollDate": received,
                "eventType": e.event_type,
                "hubKey": envelope.hub_key,
                "objectId": e.object_id,
                "objectType": e.object_type,
                "id": eid,
            } for _, eid, e in chunk],
        },
    })
