"""Notifications: the Cloud Elements shape, batching, stable ids."""

from __future__ import annotations

import dataclasses
import json

import pytest

from poller.events.event import CREATED, UPDATED, Event, event_id
from poller.events.notify import Envelope, build_notifications, hub_key, iso_z, notification_id

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


# -- the spliced bodies are the encoded dicts, byte for byte ----------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from poller import jsonio  # noqa: E402
from poller.events.notify import body_dict  # noqa: E402

ODD = st.text(alphabet=st.sampled_from(['a', 'é', '"', '\\', '\n', '\x00', '\x7f', '\u2028', '😀', '/', '<', ' ']),
              max_size=6)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | ODD
    | st.just("lone \ud800 surrogate"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def events_and_envelope(draw: st.DrawFn) -> tuple[list[Event], Envelope]:
    envelope = Envelope(
        instance_id=draw(st.one_of(st.integers(0, 2**40), ODD)), instance_name=draw(ODD | st.just("x\udc00")),
        element_key=draw(ODD), tags=tuple(draw(st.lists(ODD, max_size=2))), resource=draw(ODD),
        hub_key=draw(ODD), batch_size=draw(st.sampled_from([1, 3, 10])))
    events = []
    for i, (oid, record) in enumerate(draw(st.lists(st.tuples(st.just(None) | ODD, JSON_VALUE), max_size=12))):
        oid = str(i) if oid is None else oid + str(i)
        stamp = draw(st.integers(0, 2**44))
        events.append(Event(event_id("i", "r", oid, f"d:{stamp}"), oid, draw(st.sampled_from([CREATED, UPDATED])),
                            f"d:{stamp}", stamp, record))
    return events, envelope


@settings(max_examples=300, deadline=None)
@given(events_and_envelope(), st.integers(0, 2**44))
def test_bodies_are_the_encoded_dicts_byte_for_byte(case: tuple[list[Event], Envelope], poll_ms: int) -> None:
    events, envelope = case
    out = build_notifications(events, envelope, poll_ms=poll_ms, created_ms=poll_ms + 7)
    size = envelope.batch_size
    assert [i for n in out for i in n.event_ids] == [e.id for e in events]
    for k, n in enumerate(out):
        chunk = events[k * size:(k + 1) * size]
        assert n.body == jsonio.dumps(body_dict(envelope, n.id, chunk, poll_ms=poll_ms, created_ms=poll_ms + 7))
        body = json.loads(n.body)  # always JSON, whatever the records held
        assert [e["objectId"] for e in body["message"]["events"]] == [e.object_id for e in chunk]


def test_a_record_with_a_lone_surrogate_is_sent_escaped_as_the_provider_wrote_it() -> None:
    e = event(0)
    e = e._replace(record={"note": "a\ud800b"})
    [n] = build_notifications([e], ENVELOPE, poll_ms=POLL_MS, created_ms=POLL_MS)
    assert b'"a\\ud800b"' in n.body and n.body.isascii()
    assert json.loads(n.body)["message"]["raw"]["invoices"] == [{"note": "a\ud800b"}]


@pytest.mark.parametrize("odd", ['"', '\\', '\n', '\x00', '\x1f', '\x7f', 'é', '\u2028', '😀'])
def test_an_object_id_needing_escapes_is_escaped_as_orjson_would(odd: str) -> None:
    events = [event(i) for i in range(3)]
    events[1] = events[1]._replace(object_id=f"a{odd}b")
    [n] = build_notifications(events, ENVELOPE, poll_ms=POLL_MS, created_ms=POLL_MS)
    assert n.body == jsonio.dumps(body_dict(ENVELOPE, n.id, events, poll_ms=POLL_MS, created_ms=POLL_MS))
    assert json.loads(n.body)["message"]["events"][1]["objectId"] == f"a{odd}b"


def test_created_date_is_remade_for_each_second_it_is_asked_for() -> None:
    from poller.events.notify import created_date

    # (one text is kept for the last second asked: asking across seconds, back and forth, must
    # never give another second's text)
    assert created_date(1_534_779_007_000) == created_date(1_534_779_007_999) == "Mon Aug 20 15:30:07 UTC 2018"
    assert created_date(1_534_779_008_000) == "Mon Aug 20 15:30:08 UTC 2018"
    assert created_date(1_534_779_007_500) == "Mon Aug 20 15:30:07 UTC 2018"
    assert created_date(-1) == "Wed Dec 31 23:59:59 UTC 1969"  # (before 1970: the second below)
