"""Notifications: the Cloud Elements shape, batching, stable ids."""

from __future__ import annotations

import dataclasses
import json

import pytest

from poller.detect import CREATED, UPDATED, Event, event_id
from poller.notify import Envelope, build_notifications, hub_key, iso_z, notification_id

ENVELOPE = Envelope(instance_id=7950647, instance_name="Local netsuite", element_key="netsuiteerpv2",
                    tags=("Local netsuite",), resource="invoices", hub_key="erp")
POLL_MS = 1534778974827  # 2018-08-20T15:29:34.827Z, the real payload's pollDate


def event(i: int, kind: str = CREATED, stamp: int = 1534778946000) -> Event:
    oid = str(14682 + i)
    version = f"d:{stamp}"
    return Event(event_id("7950647", "invoices", oid, version), oid, kind, version, stamp,
                 {"internalId": oid, "lastModifiedDate": "2018-08-20T15:29:06Z"})


def test_body_has_the_cloud_elements_shape() -> None:
    [n] = build_notifications([event(0)], ENVELOPE, poll_ms=POLL_MS, created_ms=POLL_MS + 33_000)
    body = json.loads(n.body)
    assert set(body) == {"severity", "createdDate", "topic", "action", "id", "message"}
    assert body["topic"] == "instance-7950647-netsuiteerpv2-events"
    assert body["createdDate"] == "Mon Aug 20 15:30:07 UTC 2018"  # java.util.Date.toString()
    assert body["id"] == n.id == body["message"]["eventId"]
    msg = body["message"]
    assert msg["instanceId"] == msg["instance_id"] == 7950647
    assert msg["instanceName"] == "Local netsuite" and msg["instanceTags"] == ["Local netsuite"]
    assert msg["raw"] == {"invoices": [event(0).record], "objectType": "invoices", "pollDate": POLL_MS}
    assert msg["events"] == [{
        "date": "2018-08-20T15:29:06Z", "elementKey": "netsuiteerpv2", "pollDate": "2018-08-20T15:29:34.827Z",
        "eventType": "CREATED", "hubKey": "erp", "objectId": "14682", "objectType": "invoices",
        "id": event(0).id,
    }]


@pytest.mark.parametrize(("count", "batch", "sizes"), [(0, 10, []), (1, 10, [1]), (10, 10, [10]),
                                                     (25, 10, [10, 10, 5]), (3, 1, [1, 1, 1])])
def test_events_are_batched_in_order(count: int, batch: int, sizes: list[int]) -> None:
    events = [event(i, UPDATED if i % 2 else CREATED) for i in range(count)]
    envelope = dataclasses.replace(ENVELOPE, batch_size=batch)
    out = build_notifications(events, envelope, poll_ms=POLL_MS, created_ms=POLL_MS)
    assert [len(n.event_ids) for n in out] == sizes
    assert [i for n in out for i in n.event_ids] == [e.id for e in events]
    for n in out:
        body = json.loads(n.body)
        assert [e["id"] for e in body["message"]["events"]] == list(n.event_ids)
        assert len(body["message"]["raw"]["invoices"]) == len(n.event_ids)


def test_ids_are_stable_across_rebuilds() -> None:
    events = [event(i) for i in range(12)]
    first = build_notifications(events, ENVELOPE, poll_ms=POLL_MS, created_ms=POLL_MS)
    again = build_notifications(events, ENVELOPE, poll_ms=POLL_MS + 5, created_ms=POLL_MS + 5)
    assert [n.id for n in first] == [n.id for n in again]
    assert first[0].id == notification_id(first[0].event_ids)
    assert len({n.id for n in first}) == 2


@pytest.mark.parametrize(("url", "expected"), [
    ("/hubs/crm/contacts?where=x", "crm"),
    ("https://api.example.com/elements/api-v2/hubs/erp/invoices", "erp"),
    ("https://api.example.com/v3/contacts", "myelement"),
    ("/hubs/", "myelement"),
])
def test_hub_key(url: str, expected: str) -> None:
    assert hub_key(url, "myelement") == expected


@pytest.mark.parametrize(("ms", "text"), [(0, "1970-01-01T00:00:00Z"), (1534778974827, "2018-08-20T15:29:34.827Z"),
                                          (1534778974000, "2018-08-20T15:29:34Z"), (-1, "1969-12-31T23:59:59.999Z")])
def test_dates_are_utc_iso_with_z(ms: int, text: str) -> None:
    assert iso_z(ms) == text
