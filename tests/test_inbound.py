"""poller.inbound: provider bodies -> normalised events, signatures, and persist-then-answer with a real state file.

The example bodies in tests/data/webhooks/ are the ones of ../shared/reference/webhooks.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from poller.config import load_config_text
from poller.config.types import InstanceConfig, SecretStr, VerifyConfig, WebhookConfig
from poller.inbound.cmxml import XmlError, read_xml
from poller.inbound.forms import FormError, decode_form
from poller.inbound.normalise import Refused, normalise
from poller.inbound.receive import Receiver
from poller.inbound.verify import check
from state import open_store

DATA = Path(__file__).parent / "data" / "webhooks"
NOW_MS = 1_700_000_000_000
CM = WebhookConfig(kind="campaignmonitor")
MC = WebhookConfig(kind="mailchimp")


def body(name: str) -> bytes:
    return (DATA / name).read_bytes()


def cm_body(*events: dict, list_id: str = "L1") -> bytes:
    return json.dumps({"Events": list(events), "ListID": list_id}).encode()


# -- normalisation, one row per rule of DESIGN §10's table ---------------------------------------

@pytest.mark.parametrize("event, expected", [
    ({"Type": "Subscribe", "EmailAddress": "a@x", "Date": "2010-12-14 11:32:00"},
     ("CREATED", "contacts", "a@x", "2010-12-14T11:32:00Z")),
    ({"Type": "Update", "OldEmailAddress": "old@x", "EmailAddress": "new@x", "Date": "2010-12-14 11:32:00"},
     ("UPDATED", "contacts", "new@x", "2010-12-14T11:32:00Z")),
    ({"Type": "Deactivate", "State": "Deleted", "EmailAddress": "a@x", "Date": "2011-04-27 09:41:00"},
     ("DELETED", "contacts", "a@x", "2011-04-27T09:41:00Z")),
    ({"Type": "Deactivate", "State": "Unsubscribed", "EmailAddress": "a@x", "Date": "2011-04-27 09:41:00"},
     ("UPDATED", "contacts", "a@x", "2011-04-27T09:41:00Z")),
    ({"Type": "Bounce", "EmailAddress": "a@x", "Date": "2011-04-27 09:41:00"},
     ("UNKNOWN", "contacts", "a@x", "2011-04-27T09:41:00Z")),
], ids=["subscribe", "update", "deactivate-deleted", "deactivate-other", "unknown"])
def test_campaign_monitor_rules(event: dict, expected: tuple) -> None:
    from poller.events.notify import iso_z

    parsed = normalise(CM, "POST", "application/json; charset=utf-8", cm_body(event), NOW_MS)
    [e] = parsed.events
    assert (e.event_type, e.object_type, e.object_id, iso_z(e.stamp_ms)) == expected


@pytest.mark.parametrize("name, expected", [
    ("mc_subscribe.form", ("CREATED", "contacts", "8a25ff1d98", "2009-03-26T21:35:57Z")),
    ("mc_unsubscribe.form", ("UPDATED", "contacts", "8a25ff1d98", "2009-03-26T21:40:57Z")),
    ("mc_profile.form", ("UPDATED", "contacts", "8a25ff1d98", "2009-03-26T21:31:21Z")),
    ("mc_upemail.form", ("UPDATED", "contacts", "51da8c3259", "2009-03-26T22:15:09Z")),
])
def test_mailchimp_rules_on_the_reference_bodies(name: str, expected: tuple) -> None:
    from poller.events.notify import iso_z

    parsed = normalise(MC, "POST", "application/x-www-form-urlencoded", body(name), NOW_MS)
    [e] = parsed.events
    assert (e.event_type, e.object_type, e.object_id, iso_z(e.stamp_ms)) == expected


@pytest.mark.parametrize("form, expected", [
    (b"type=unsubscribe&fired_at=2009-03-26+21%3A40%3A57&data%5Baction%5D=delete&data%5Bid%5D=x1",
     ("DELETED", "contacts", "x1")),
    (b"type=cleaned&fired_at=2009-03-26+21%3A40%3A57&data%5Bemail%5D=a%40x&data%5Breason%5D=hard",
     ("UPDATED", "contacts", "a@x")),
    (b"type=campaign&fired_at=2009-03-26+21%3A40%3A57&data%5Bid%5D=c9&data%5Bstatus%5D=sent",
     ("UPDATED", "campaigns", "c9")),
    (b"type=sms_subscribe&fired_at=2009-03-26+21%3A40%3A57&data%5Bid%5D=s1", ("UNKNOWN", "contacts", "s1")),
], ids=["unsubscribe-delete", "cleaned", "campaign", "unknown"])
def test_mailchimp_rules(form: bytes, expected: tuple) -> None:
    [e] = normalise(MC, "POST", "application/x-www-form-urlencoded", form, NOW_MS).events
    assert (e.event_type, e.object_type, e.object_id) == expected


def test_dates_without_a_zone_are_read_in_the_configured_zone() -> None:
    from poller.events.notify import iso_z

    webhook = WebhookConfig(kind="campaignmonitor", time_zone="America/New_York")
    [e] = normalise(webhook, "POST", "application/json", body("cm_subscribe.json"), NOW_MS).events
    assert iso_z(e.stamp_ms) == "2010-12-14T16:32:00Z"  # 11:32 EST


def test_campaign_monitor_xml_reads_as_the_json_names() -> None:
    from_xml = normalise(CM, "POST", "application/xml", body("cm_subscribe.xml"), NOW_MS)
    from_json = normalise(CM, "POST", "application/json", body("cm_subscribe.json"), NOW_MS)
    assert from_xml.payload == json.loads(body("cm_subscribe.json"))
    assert [e.content for e in from_xml.events] == [e.content for e in from_json.events]  # the same event ids


def test_a_batch_keeps_its_order_and_each_raw_holds_only_its_own_events() -> None:
    events = [{"Type": "Subscribe", "EmailAddress": f"u{i}@x", "Date": "2010-12-14 11:32:00"} for i in range(1000)]
    parsed = normalise(CM, "POST", "application/json", cm_body(*events), NOW_MS)
    assert [e.object_id for e in parsed.events] == [f"u{i}@x" for i in range(1000)]
    assert parsed.raw_for([3, 4]) == {"Events": events[3:5], "ListID": "L1"}


def test_list_ids_are_checked() -> None:
    webhook = WebhookConfig(kind="campaignmonitor", list_ids=("L1", "L2"))
    subscribe = {"Type": "Subscribe", "EmailAddress": "a@x"}
    assert normalise(webhook, "POST", "application/json", cm_body(subscribe, list_id="L2"), NOW_MS).events
    with pytest.raises(Refused, match=r'ListID "L3" is not one of events.list.ids') as info:
        normalise(webhook, "POST", "application/json", cm_body(subscribe, list_id="L3"), NOW_MS)
    assert info.value.status == 400


@pytest.mark.parametrize("webhook, content_type, data, status, reason", [
    (CM, "application/json", b"{not json", 400, "not a Campaign Monitor body: not valid JSON"),
    (CM, "application/json", b'{"Events": 3}', 400, 'expected an object with an "Events" list'),
    (CM, "application/x-www-form-urlencoded", b"a=b", 415, "Campaign Monitor sends JSON or XML"),
    (CM, "text/xml", b'<!DOCTYPE x [<!ENTITY a "aaa">]><x>&a;</x>', 400, "document type declaration is refused"),
    (MC, "application/json", b'{"type": "subscribe"}', 415, "Mailchimp sends application/x-www-form-urlencoded"),
    (MC, "application/x-www-form-urlencoded", b"fired_at=x", 400, 'it has no "type" field'),
    (MC, "application/x-www-form-urlencoded", b"type=a&type=b", 400, "'type' is given more than once"),
])
def test_unreadable_bodies_are_refused_with_the_reason(webhook: WebhookConfig, content_type: str, data: bytes,
                                                       status: int, reason: str) -> None:
    with pytest.raises(Refused) as info:
        normalise(webhook, "POST", content_type, data, NOW_MS)
    assert info.value.status == status and reason in info.value.reason


def test_mailchimp_get_and_empty_post_are_handshakes() -> None:
    assert normalise(MC, "GET", None, b"", NOW_MS).handshake
    assert normalise(MC, "POST", "application/x-www-form-urlencoded", b"", NOW_MS).handshake


# -- forms and XML ------------------------------------------------------------------------------

def test_forms_nest_indices_make_lists_and_empty_values_are_kept() -> None:
    form = (b"data%5Bmerges%5D%5BGROUPINGS%5D%5B1%5D%5Bid%5D=2&data[merges][GROUPINGS][0][id]=1"
            b"&data%5bmerges%5d%5bFNAME%5d=&type=profile")
    assert decode_form(form) == {"data": {"merges": {"GROUPINGS": [{"id": "1"}, {"id": "2"}], "FNAME": ""}},
                                 "type": "profile"}


def test_conflicting_form_keys_are_refused() -> None:
    with pytest.raises(FormError, match="nests under 'data\\[a\\]', which has a value"):
        decode_form(b"data[a]=1&data[a][b]=2")


@pytest.mark.parametrize("form", [
    "a=1&&b=&c", "a+b=c+d&e=%2B+%2b", "x=%E2%82%AC%20euro&y=caf%C3%A9", "a==b&c=%", "k=%zz&l=%4", "m=a%2",
    "emails=a%40b.c&n=100%25", "&&q=1&", "s=%26%3D&t=a&u=+"])
def test_flat_forms_read_as_parse_qsl_reads_them(form: str) -> None:
    from urllib.parse import parse_qsl

    assert decode_form(form.encode()) == dict(parse_qsl(form, keep_blank_values=True))


@pytest.mark.parametrize("form, problem", [
    (b"a=%FF", "the form field 'a' is not utf-8 once its %-escapes are decoded (invalid start byte)"),
    (b"%C3=1", "the form field '%C3' is not utf-8 once its %-escapes are decoded"),
    (b"=1", "the form field '' is not a name with [bracketed] parts"),
    (b"a%5Bb=1", "the form field 'a[b' is not a name"),
    (b"data%5Ba%5D=1&data[a]=2", "the form field 'data[a]' is given more than once"),
    (b"a=1&" * 10_000, "more than 10000 fields"),
    (b"a" + b"[b]" * 40 + b"=1", "nests more than 32 levels"),
])
def test_forms_that_cannot_be_read_say_why_with_the_decoded_name(form: bytes, problem: str) -> None:
    with pytest.raises(FormError) as info:
        decode_form(form)
    assert problem in str(info.value)


def test_a_field_name_seen_before_is_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    from poller.inbound import forms

    monkeypatch.setattr(forms, "_PATHS_KEPT", 2)
    form = b"data%5Bmerges%5D%5BEMAIL%5D=a%40b&data[id]=1&type=subscribe"
    assert [decode_form(form) for _ in range(3)] == [
        {"data": {"merges": {"EMAIL": "a@b"}, "id": "1"}, "type": "subscribe"}] * 3
    assert len(forms._PATHS) <= 2


def test_xml_that_is_not_well_formed_names_the_place() -> None:
    with pytest.raises(XmlError, match="line 1, column"):
        read_xml(b"<ListEvents><Events></ListEvents>")


# -- signatures of the generic element ------------------------------------------------------------

def _hmac_config(**extra: object) -> VerifyConfig:
    return VerifyConfig(type="hmac", header="x-sig", secret=SecretStr("s3cret"), **extra)  # type: ignore[arg-type]


def test_hmac_hex_with_a_prefix() -> None:
    data = b'{"id": 1}'
    good = "sha256=" + hmac.new(b"s3cret", data, hashlib.sha256).hexdigest()
    verify = _hmac_config(prefix="sha256=")
    assert check(verify, {"x-sig": good}, data, 0) is None
    assert check(verify, {"x-sig": good.upper().replace("SHA256=", "sha256=")}, data, 0) is None
    assert check(verify, {"x-sig": good}, data + b" ", 0) == "the x-sig signature does not match the body"
    assert check(verify, {}, data, 0) == "no x-sig header (event.webhook.verify.header)"


def test_hmac_base64_over_a_timestamp_within_its_tolerance() -> None:
    data = b"[]"
    stamp = "1700000000"
    good = base64.b64encode(hmac.new(b"s3cret", stamp.encode() + b"." + data, hashlib.sha512).digest()).decode()
    verify = _hmac_config(algorithm="sha512", encoding="base64", timestamp_header="x-ts")
    assert check(verify, {"x-sig": good, "x-ts": stamp}, data, 1_700_000_100) is None
    assert "more than 300 s" in str(check(verify, {"x-sig": good, "x-ts": stamp}, data, 1_700_000_400))


def test_standard_webhooks_as_the_reference_library_signs() -> None:
    from standardwebhooks import Webhook

    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    data = b'{"type": "x"}'
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(1_700_000_000, timezone.utc)
    signature = Webhook(secret).sign("msg_1", when, data.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": signature}
    verify = VerifyConfig(type="standardwebhooks", secret=SecretStr(secret))
    assert check(verify, headers, data, 1_700_000_010) is None
    assert check(verify, {**headers, "webhook-id": "msg_2"}, data, 1_700_000_010) is not None


def test_basic_auth() -> None:
    verify = VerifyConfig(type="basic", username=SecretStr("u"), password=SecretStr("p"))
    assert check(verify, {"authorization": "Basic " + base64.b64encode(b"u:p").decode()}, b"", 0) is None
    assert check(verify, {"authorization": "Basic " + base64.b64encode(b"u:q").decode()}, b"", 0) is not None
    assert check(verify, {}, b"", 0) == "no Basic Authorization header"


# -- persist, then answer: a real state file --------------------------------------------------------

def _config(element: str, **conf: object) -> tuple[object, InstanceConfig]:
    body = {"element": {"key": element}, "name": "hooks", "configuration": {
        "event.notification.enabled": True, "event.notification.callback.url": "http://127.0.0.1:9/cb", **conf}}
    config = load_config_text(json.dumps(body), "config.json", {}).config
    [instance] = config.instances
    return config, instance


def test_a_request_is_kept_with_its_notifications_and_a_retry_announces_nothing(tmp_path: Path) -> None:
    config, instance = _config("campaignmonitor", **{"events.list.ids": "L1"})
    assert instance.receives_webhooks and not instance.polled
    with open_store(tmp_path / "poller.db") as store:
        receiver = Receiver(store, config)  # type: ignore[arg-type]
        events = [{"Type": "Subscribe", "EmailAddress": f"u{i}@x", "Date": "2010-12-14 11:32:00"} for i in range(25)]
        first = receiver.receive(instance, "POST", "application/json", [("Content-Type", "application/json"),
                                                                         ("Authorization", "secret")],
                                 cm_body(*events), NOW_MS)
        assert (first.status, first.outcome, first.notifications, dict(first.events)) == (200, "accepted", 3,
                                                                                            {"CREATED": 25})
        again = receiver.receive(instance, "POST", "application/json", [], cm_body(*events), NOW_MS + 1000)
        assert (again.status, again.outcome, again.notifications) == (200, "duplicate", 0)
        # the same events in a bigger batch: only the new one is announced
        more = receiver.receive(instance, "POST", "application/json", [],
                                cm_body(*events, {"Type": "Update", "EmailAddress": "u0@x"}), NOW_MS + 2000)
        assert (more.outcome, more.notifications, dict(more.events)) == ("accepted", 1, {"UPDATED": 1})
        wrong = receiver.receive(instance, "POST", "application/json", [], cm_body(*events, list_id="L9"), NOW_MS)
        assert (wrong.status, wrong.outcome) == (400, "rejected")
        notes = store.notifications()
        assert len(notes) == 4
        message = json.loads(notes[0].notification.body)["message"]
        assert message["raw"] == {"Events": events[:10], "ListID": "L1"}
        assert [e["eventType"] for e in message["events"]] == ["CREATED"] * 10
        assert {e["hubKey"] for e in message["events"]} == {"campaignmonitor"}  # the element key (DESIGN §9)
        assert message["events"][0]["date"] == "2010-12-14T11:32:00Z"
        kept = store.inbound_requests()
        assert [r.outcome for r in kept] == ["rejected", "accepted", "duplicate", "accepted"]
        assert kept[0].reason == 'ListID "L9" is not one of events.list.ids'
        assert ("authorization", "secret") not in kept[-1].request.headers  # secrets are not kept
        assert kept[-1].notification_ids == tuple(n.notification.id for n in notes[:3])


def test_replay_after_a_config_fix_accepts_a_rejected_request(tmp_path: Path) -> None:
    config, instance = _config("campaignmonitor", **{"events.list.ids": "L1"})
    with open_store(tmp_path / "poller.db") as store:
        answer = Receiver(store, config).receive(instance, "POST", "application/json", [],  # type: ignore[arg-type]
                                                 cm_body({"Type": "Subscribe", "EmailAddress": "a@x"}, list_id="L2"),
                                                 NOW_MS)
        assert answer.status == 400
        fixed, _ = _config("campaignmonitor", **{"events.list.ids": "L1,L2"})
        [stored] = store.inbound_requests(rejected=True)
        replayed = Receiver(store, fixed).replay(stored, NOW_MS + 5)  # type: ignore[arg-type]
        assert (replayed.status, replayed.outcome, replayed.notifications) == (200, "accepted", 1)
        [after] = store.inbound_requests()
        assert (after.id, after.outcome, after.events) == (stored.id, "accepted", 1)


def test_config_makes_webhook_instances_and_checks_their_keys() -> None:
    _, mc = _config("mailchimpv3")
    assert mc.webhook is not None and mc.webhook.kind == "mailchimp" and mc.webhook.hub_key == "mailchimpv3"
    with pytest.raises(Exception) as info:
        _config("github", **{"event.webhook.verify": {"type": "hmac", "header": "x-sig"},
                             "event.webhook.timeZone": "Mars/Olympus"})
    problems = "\n".join(info.value.problems)  # type: ignore[attr-defined]
    assert 'configuration."event.webhook.verify": secret is missing' in problems
    assert 'configuration."event.webhook.timeZone"' in problems


# -- the generic element, tokens, retention ----------------------------------------------------------

def test_the_generic_element_maps_events_by_its_configuration() -> None:
    config, instance = _config("github", **{"event.webhook.events": {
        "path": "data.items", "idField": "key", "typeField": "action", "types": {"opened": "CREATED"},
        "objectTypeField": "kind", "dateField": "at", "dateFormat": "yyyy-MM-dd HH:mm:ss"}})
    assert instance.webhook is not None
    payload = {"data": {"items": [{"key": 7, "action": "opened", "kind": "issues", "at": "2024-05-01 12:00:00"},
                                  {"key": "b", "action": "closed"}]}, "other": 1}
    parsed = normalise(instance.webhook, "POST", "application/json", json.dumps(payload).encode(), NOW_MS)
    assert [(e.event_type, e.object_type, e.object_id) for e in parsed.events] == [
        ("CREATED", "issues", "7"), ("UNKNOWN", "events", "b")]
    assert parsed.events[0].stamp_ms == 1_714_564_800_000 and parsed.events[1].stamp_ms == NOW_MS  # (no date)
    assert parsed.raw_for([1]) == {"data": {"items": [payload["data"]["items"][1]]}, "other": 1}
    with pytest.raises(Refused, match=r"no array of events at data.items"):
        normalise(instance.webhook, "POST", "application/json", b'{"data": {}}', NOW_MS)
    payload["data"]["items"][1]["at"] = "nonsense"  # a date that is there but cannot be read: said
    again = normalise(instance.webhook, "POST", "application/json", json.dumps(payload).encode(), NOW_MS)
    assert [e.stamp_ms for e in again.events] == [1_714_564_800_000, NOW_MS]  # announced, at the receive time
    assert again.notes == ('event 1 (at data.items): at is "nonsense": not a date (yyyy-MM-dd HH:mm:ss, '
                           'ISO-8601 or epoch numbers); the receive time is used',)


def test_a_campaign_monitor_batch_leaves_out_only_its_events_without_an_id() -> None:
    """One bad event of a batch must not cost the others (DESIGN §10: every event is announced);
    it is left out and said, and each notification's raw keeps only its own events."""
    good = [{"Type": "Subscribe", "EmailAddress": f"a{i}@x", "Date": "2010-12-14 11:32:00"} for i in range(3)]
    items = [good[0], {"Type": "Subscribe", "Date": "2010-12-14 11:32:00"}, good[1], "junk",
             {"Type": "Update", "EmailAddress": "  "}, {**good[2], "Date": "yesterday"}]
    parsed = normalise(CM, "POST", "application/json", cm_body(*items), NOW_MS)
    assert [e.object_id for e in parsed.events] == ["a0@x", "a1@x", "a2@x"]
    assert parsed.events[2].stamp_ms == NOW_MS
    assert parsed.raw_for([1, 2]) == {"Events": [good[1], items[5]], "ListID": "L1"}
    assert parsed.notes == (
        "Events[1] is CREATED but has no EmailAddress (the record's id): left out",
        "Events[3] is not an object but a string: left out",
        "Events[4] is UPDATED but has no EmailAddress (the record's id): left out",
        'Events[5].Date is "yesterday": not a date (yyyy-MM-dd HH:mm:ss, ISO-8601 or epoch numbers); '
        "the receive time is used")
    assert normalise(CM, "POST", "application/json", cm_body(*good), NOW_MS).notes == ()


@pytest.mark.parametrize("webhook, content_type, data, reason", [
    (CM, "application/json", cm_body({"Type": "Subscribe", "Date": "2010-12-14 11:32:00"}),
     "no event can be announced: Events[0] is CREATED but has no EmailAddress (the record's id)"),
    (MC, "application/x-www-form-urlencoded", b"type=subscribe&fired_at=2009-03-26+21%3A35%3A57",
     "the subscribe event is CREATED but has no data[id] or data[email] (the record's id)"),
    (MC, "application/x-www-form-urlencoded", b"type=upemail&data%5Bid%5D=1",
     "the upemail event is UPDATED but has no data[new_id] or data[new_email] (the record's id)"),
])
def test_a_body_without_any_event_to_announce_is_refused(webhook: WebhookConfig, content_type: str, data: bytes,
                                                          reason: str) -> None:
    with pytest.raises(Refused) as info:
        normalise(webhook, "POST", content_type, data, NOW_MS)
    assert (info.value.status, info.value.reason) == (400, reason)


def test_a_mailchimp_date_that_cannot_be_read_is_the_receive_time_and_said() -> None:
    [event] = (parsed := normalise(MC, "POST", "application/x-www-form-urlencoded",
                                   b"type=subscribe&data%5Bid%5D=1&fired_at=notadate", NOW_MS)).events
    assert (event.object_id, event.stamp_ms) == ("1", NOW_MS)
    assert parsed.notes == ('fired_at is "notadate": not a date (yyyy-MM-dd HH:mm:ss, ISO-8601 or epoch numbers); '
                            "the receive time is used",)


@pytest.mark.parametrize("data, reason", [
    (b"5", "no event can be announced: event 0 is not an object but a number"),
    (b"null", "no event can be announced: event 0 is not an object but null"),
    (b'{"type": "created"}', "no event can be announced: event 0 is CREATED but has no event_object_id or id "
                             "(the record's id)"),
])
def test_the_generic_element_refuses_a_body_without_an_event_it_can_announce(data: bytes, reason: str) -> None:
    _, instance = _config("anything")
    assert instance.webhook is not None
    with pytest.raises(Refused) as info:
        normalise(instance.webhook, "POST", "application/json", data, NOW_MS)
    assert (info.value.status, info.value.reason) == (400, reason)
    mixed = normalise(instance.webhook, "POST", "application/json", b'[{"id": "1", "type": "created"}, ["x"]]', NOW_MS)
    assert [e.object_id for e in mixed.events] == ["1"]
    assert mixed.notes == ("event 1 is not an object but a list: left out",)
    # an event of an unknown type needs no id ("the id field when present")
    [unknown] = normalise(instance.webhook, "POST", "application/json", b'{"kind": "c"}', NOW_MS).events
    assert (unknown.event_type, unknown.object_id) == ("UNKNOWN", "")


def test_without_a_mapping_cloud_elements_event_fields_are_read() -> None:
    _, instance = _config("anything")
    assert instance.webhook is not None
    data = b'{"event_object_id": "42", "event_type": "deleted", "event_object_type": "deals"}'
    [e] = normalise(instance.webhook, "POST", None, data, NOW_MS).events
    assert (e.event_type, e.object_type, e.object_id, e.stamp_ms) == ("DELETED", "deals", "42", NOW_MS)


def test_tokens_are_made_once_and_a_configured_one_wins(tmp_path: Path) -> None:
    from poller.inbound.tokens import resolve_tokens, stored_tokens, token_matches, webhook_url

    body = {"engine": {"webhooks": {"publicUrl": "https://hooks.example.com/in/"}}, "instances": [
        {"element": {"key": "mailchimpv3"}, "name": "mc one", "configuration": {
            "event.notification.enabled": True, "event.notification.callback.url": "http://127.0.0.1:9/cb"}},
        {"element": {"key": "campaignmonitor"}, "name": "cm", "configuration": {
            "event.notification.enabled": True, "event.notification.callback.url": "http://127.0.0.1:9/cb",
            "event.webhook.token": "configured-token-0123"}}]}
    config = load_config_text(json.dumps(body), "config.json", {}).config
    with open_store(tmp_path / "poller.db") as store:
        assert stored_tokens(store, config) == {"cm": "configured-token-0123"}  # nothing made yet
        first = resolve_tokens(store, config, NOW_MS)
        assert first == resolve_tokens(store, config, NOW_MS + 1) == stored_tokens(store, config)
    made = first["mc one"]
    assert len(made) == 22 and first["cm"] == "configured-token-0123"
    assert token_matches(made, made) and not token_matches(made, made[:-1] + "x") and not token_matches(None, "")
    mc = config.instances[0]
    assert webhook_url(config, mc, first) == f"https://hooks.example.com/in/webhooks/mc%20one/{made}"


def test_retention_prunes_old_requests_and_event_ids(tmp_path: Path) -> None:
    config, instance = _config("campaignmonitor")
    with open_store(tmp_path / "poller.db") as store:
        receiver = Receiver(store, config)  # type: ignore[arg-type]
        old = cm_body({"Type": "Subscribe", "EmailAddress": "old@x"})
        receiver.receive(instance, "POST", "application/json", [], old, NOW_MS)
        receiver.receive(instance, "POST", "application/json", [], cm_body({"Type": "Subscribe"}), NOW_MS + 10_000)
        assert store.prune_inbound(requests_before_ms=NOW_MS + 1, events_before_ms=NOW_MS + 1) == 2
        assert len(store.inbound_requests()) == 1
        # its event id is gone with it: the old event is announced again
        assert receiver.receive(instance, "POST", "application/json", [], old, NOW_MS + 20_000).outcome == "accepted"


def test_an_events_dedupe_key_is_its_date_as_written_whatever_the_zone() -> None:
    data = cm_body({"Type": "Subscribe", "EmailAddress": "a@x", "Date": "2024-03-01 10:00:00"},
                   {"Type": "Subscribe", "EmailAddress": "b@x"})
    utc = normalise(CM, "POST", "application/json", data, NOW_MS).events
    zoned = normalise(WebhookConfig(kind="campaignmonitor", time_zone="Asia/Tokyo"), "POST", "application/json",
                      data, NOW_MS + 5).events
    assert utc[0].stamp_ms != zoned[0].stamp_ms  # the announced date follows event.webhook.timeZone ...
    assert utc[0].date_ms == zoned[0].date_ms == 1_709_287_200_000  # ... the key does not
    assert utc[1].date_ms == zoned[1].date_ms == 0  # no date: 0, not the receive time


def test_event_ids_kept_before_migration_0007_still_count_as_announced(tmp_path: Path) -> None:
    config, instance = _config("campaignmonitor")
    old = cm_body({"Type": "Subscribe", "EmailAddress": "old@x", "Date": "2024-03-01 10:00:00"})
    path = tmp_path / "poller.db"
    with open_store(path) as store:
        assert Receiver(store, config).receive(instance, "POST", "application/json", [], old,  # type: ignore[arg-type]
                                               NOW_MS).outcome == "accepted"
        with store.db.atomic():  # the file as 0006 left it: event ids keyed without a date
            store.db.executescript("""
                CREATE TABLE old_events (instance_id TEXT NOT NULL, event_id TEXT NOT NULL,
                    received_ms INTEGER NOT NULL, PRIMARY KEY (instance_id, event_id)) WITHOUT ROWID;
                INSERT INTO old_events SELECT instance_id, substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' ||
                    substr(h, 13, 4) || '-' || substr(h, 17, 4) || '-' || substr(h, 21), received_ms
                    FROM (SELECT instance_id, lower(hex(event_id)) AS h, received_ms FROM inbound_events);
                DROP TABLE inbound_events;
                DROP TABLE inbound_event_dates;
                ALTER TABLE old_events RENAME TO inbound_events;
                CREATE INDEX inbound_events_received ON inbound_events (received_ms);
                DELETE FROM _sqlite_migrations WHERE name = '0007_inbound_events_by_date';
            """)
    with open_store(path) as store:
        kept = [tuple(r) for r in store.db.execute("SELECT instance_id, date_ms FROM inbound_events")]
        assert kept == [("hooks", -1)]
        receiver = Receiver(store, config)  # type: ignore[arg-type]
        assert receiver.receive(instance, "POST", "application/json", [], old, NOW_MS + 1).outcome == "duplicate"
        new = cm_body({"Type": "Subscribe", "EmailAddress": "new@x", "Date": "2024-03-01 10:00:00"})
        assert receiver.receive(instance, "POST", "application/json", [], new, NOW_MS + 2).outcome == "accepted"
        assert receiver.receive(instance, "POST", "application/json", [], new, NOW_MS + 3).outcome == "duplicate"
        assert sorted(r[0] for r in store.db.execute("SELECT date_ms FROM inbound_events")) == [-1, 1_709_287_200_000]
        assert store.prune_inbound(requests_before_ms=NOW_MS + 10, events_before_ms=NOW_MS + 10) >= 2
        assert receiver.receive(instance, "POST", "application/json", [], old, NOW_MS + 20).outcome == "accepted"


def test_claiming_event_ids_says_which_are_new(tmp_path: Path) -> None:
    import uuid

    from state import inbound

    a, b, c, d, e, x = (str(uuid.uuid5(uuid.NAMESPACE_URL, n)) for n in "abcdex")
    with open_store(tmp_path / "poller.db") as store:
        with store.db.atomic():
            assert inbound.claim_new_events(store.db, [("i", [5, 5], [a, b], NOW_MS), ("i", [0], [c], NOW_MS)])
        with pytest.raises(LookupError), store.db.atomic():  # (the caller rolls back)
            assert not inbound.claim_new_events(store.db, [("i", [5, 5], [d, a], NOW_MS)])  # a is known
            assert not inbound.claim_new_events(store.db, [("j", [1], [x], NOW_MS), ("j", [1], [x], NOW_MS)])
            raise LookupError()
        with store.db.atomic():
            assert inbound.claim_events(store.db, "i", [(5, d), (5, a), (0, c), (9, e), (9, e)], NOW_MS) == {d, e}
            assert inbound.claim_events(store.db, "j", [(5, a)], NOW_MS) == {a}  # per instance
        assert store.db.execute("SELECT count(*) FROM inbound_events").fetchone()[0] == 6
        assert {bytes(r[0]) for r in store.db.execute("SELECT event_id FROM inbound_events")} == {
            uuid.UUID(i).bytes for i in (a, b, c, d, e)}  # kept as their 16 bytes
        with pytest.raises(ValueError, match="event id 'not-a-uuid' is not a UUID"), store.db.atomic():
            inbound.claim_events(store.db, "i", [(1, "not-a-uuid")], NOW_MS)
        odd = ["-" * 36, "0" * 35 + "-", a.replace("-", "") + "----"]  # right lengths, not UUIDs' places
        assert inbound.event_keys([a, b]) == [uuid.UUID(a).bytes, uuid.UUID(b).bytes]
        with pytest.raises(ValueError, match="is not a UUID"):
            inbound.event_keys([a, odd[0]])
        with pytest.raises(ValueError, match="is not a UUID"):
            inbound.event_keys([odd[1], a])
        assert inbound.event_keys([odd[2]]) == [uuid.UUID(a).bytes]  # (as event_key reads it)


def test_event_ids_of_a_date_are_kept_while_that_date_keeps_getting_events(tmp_path: Path) -> None:
    config, instance = _config("campaignmonitor")

    def batch(*emails: str, date: str = "2024-03-01 10:00:00") -> bytes:
        return cm_body(*({"Type": "Subscribe", "EmailAddress": e, "Date": date} for e in emails))

    with open_store(tmp_path / "poller.db") as store:
        receiver = Receiver(store, config)  # type: ignore[arg-type]
        post = lambda data, at: receiver.receive(instance, "POST", "application/json", [], data,  # noqa: E731
                                                 at).outcome
        assert post(batch("a@x", "b@x"), NOW_MS) == "accepted"
        assert post(batch("c@x", date="2024-03-02 10:00:00"), NOW_MS + 10) == "accepted"
        assert post(batch("d@x"), NOW_MS + 100) == "accepted"  # a's date again, later
        count = lambda: store.db.execute("SELECT count(*) FROM inbound_events").fetchone()[0]  # noqa: E731
        # past the window of the first two requests but not of the third: a's date is kept whole
        store.prune_inbound(requests_before_ms=0, events_before_ms=NOW_MS + 50)
        assert count() == 3
        assert post(batch("a@x"), NOW_MS + 200) == "duplicate"
        store.prune_inbound(requests_before_ms=0, events_before_ms=NOW_MS + 101, limit=2)  # in small batches
        store.prune_inbound(requests_before_ms=0, events_before_ms=NOW_MS + 101, limit=2)
        assert count() == 0
        assert store.db.execute("SELECT count(*) FROM inbound_event_dates").fetchone()[0] == 0
        assert post(batch("a@x"), NOW_MS + 300) == "accepted"  # the window is over: announced again


def test_a_pushed_event_id_is_named_by_its_object_id_and_content_digest() -> None:
    from poller.events.event import event_id
    from poller.inbound.pushed import WEBHOOK_RESOURCE, event_ids

    body = json.dumps({"ListID": "L1", "Events": [
        {"Type": "Subscribe", "EmailAddress": f"a{i}@example.com", "Date": "2026-12-03 10:00:00"} for i in range(3)]})
    events = normalise(CM, "POST", "application/json", body.encode(), 0).events
    assert event_ids("nl", events) == [
        event_id("nl", WEBHOOK_RESOURCE, e.object_id, "c:" + hashlib.sha1(e.content).hexdigest()) for e in events]
    assert [e.version for e in events] == ["c:" + hashlib.sha1(e.content).hexdigest() for e in events]


# -- found by a black-box round: deep bodies, Mailchimp's ids and lists, charsets, replays --------

def _deep(levels: int) -> object:
    value: object = "leaf"
    for _ in range(levels):
        value = [value]
    return value


def _deep_json(levels: int) -> str:
    return "[" * levels + '"leaf"' + "]" * levels


@pytest.mark.parametrize("levels", [600, 990])
def test_an_event_nested_too_deeply_is_left_out_and_the_others_announced(levels: int) -> None:
    """(990 levels answered 500 and kept nothing: orjson and then json.dumps gave up in
    _canonical. A polled record that deep is skipped as too_deep; so is this event.)"""
    deep = '{"Type": "Subscribe", "EmailAddress": "deep@x", "v": ' + _deep_json(levels) + "}"
    data = ('{"ListID": "L1", "Events": [{"Type": "Subscribe", "EmailAddress": "ok@x"}, ' + deep + "]}").encode()
    parsed = normalise(CM, "POST", "application/json", data, NOW_MS)
    assert [e.object_id for e in parsed.events] == ["ok@x"]
    assert parsed.notes == (f"Events[1] is nested {levels + 1} levels deep (more than 512): left out",)
    only_deep = ('{"ListID": "L1", "Events": [' + deep + "]}").encode()
    with pytest.raises(Refused, match=r"no event can be announced: Events\[0\] is nested") as info:
        normalise(CM, "POST", "application/json", only_deep, NOW_MS)
    generic = WebhookConfig(kind="generic")
    with pytest.raises(Refused, match="no event can be announced: event 0 is nested"):
        normalise(generic, "POST", "application/json", ('{"id": 1, "v": ' + _deep_json(levels) + "}").encode(), NOW_MS)
    assert info.value.status == 400


def test_a_body_nested_too_deeply_beside_its_events_or_as_xml_is_refused_not_a_server_error() -> None:
    beside = ('{"ListID": "L1", "Meta": ' + _deep_json(700) + ', "Events": [{"Type": "Subscribe", '
              '"EmailAddress": "a@x"}]}').encode()
    with pytest.raises(Refused, match="nests 701 levels deep beside its events") as info:
        normalise(CM, "POST", "application/json", beside, NOW_MS)
    assert info.value.status == 400
    for levels in (1200, 100_000):  # (RecursionError in cmxml: a 500 at any depth past ~990)
        xml = ("<ListEvents>" + "<a>" * levels + "x" + "</a>" * levels + "</ListEvents>").encode()
        with pytest.raises(Refused, match="the XML nests too deeply to be read") as info:
            normalise(CM, "POST", "application/xml", xml, NOW_MS)
        assert info.value.status == 400


@pytest.mark.parametrize("form, expected", [
    (b"type=profile&data%5Bemail%5D=noid%40x", ("UPDATED", "noid@x")),
    (b"type=unsubscribe&data%5Baction%5D=delete&data%5Bemail%5D=gone%40x", ("DELETED", "gone@x")),
    (b"type=upemail&data%5Bnew_email%5D=new%40x&data%5Bold_email%5D=old%40x", ("UPDATED", "new@x")),
    (b"type=sms_x&data%5Bemail%5D=s%40x", ("UNKNOWN", "s@x")),
    (b"type=subscribe&data%5Bid%5D=id1&data%5Bemail%5D=a%40x", ("CREATED", "id1")),  # the id first
], ids=["profile", "unsubscribe-delete", "upemail", "unknown", "id-wins"])
def test_a_mailchimp_event_without_its_id_is_named_by_its_email_address(form: bytes, expected: tuple) -> None:
    """(README: "the objectId is data[id] (else the e-mail address)"; these were refused, 400,
    and an unknown type with an address was announced with objectId "".)"""
    [e] = normalise(MC, "POST", "application/x-www-form-urlencoded", form, NOW_MS).events
    assert (e.event_type, e.object_id) == expected


def test_mailchimp_list_ids_are_checked_as_campaign_monitors_are() -> None:
    webhook = WebhookConfig(kind="mailchimp", list_ids=("a6b5da1054",))
    ok = b"type=subscribe&data%5Bid%5D=1&data%5Blist_id%5D=a6b5da1054"
    assert normalise(webhook, "POST", "application/x-www-form-urlencoded", ok, NOW_MS).events
    for form, shown in ((ok.replace(b"a6b5da1054", b"ffffffffff"), '"ffffffffff"'), (b"type=subscribe&data%5Bid%5D=1",
                                                                                      "null")):
        with pytest.raises(Refused) as info:
            normalise(webhook, "POST", "application/x-www-form-urlencoded", form, NOW_MS)
        assert (info.value.status, info.value.reason) == (400, f"data[list_id] {shown} is not one of events.list.ids")
    assert normalise(MC, "POST", "application/x-www-form-urlencoded", form, NOW_MS).events  # none set: any list


def test_a_body_in_its_declared_charset_is_read_and_an_unknown_charset_is_named() -> None:
    latin = '{"ListID": "L1", "Events": [{"Type": "Subscribe", "EmailAddress": "caf\u00e9@x"}]}'.encode("latin-1")
    [e] = normalise(CM, "POST", "application/json; charset=iso-8859-1", latin, NOW_MS).events
    assert e.object_id == "caf\u00e9@x"
    [m] = normalise(MC, "POST", 'application/x-www-form-urlencoded; charset="ISO-8859-1"',
                    b"type=subscribe&data%5Bid%5D=caf%E9", NOW_MS).events
    assert m.object_id == "caf\u00e9"
    with pytest.raises(Refused) as info:
        normalise(CM, "POST", "application/json; charset=klingon", latin, NOW_MS)
    assert (info.value.status, info.value.reason) == (415, "unknown charset 'klingon' in the Content-Type")
    with pytest.raises(Refused, match="not a Campaign Monitor body: not valid JSON"):  # (undeclared: UTF-8)
        normalise(CM, "POST", "application/json", latin, NOW_MS)


def test_a_replayed_request_signed_with_a_timestamp_is_judged_by_when_it_came(tmp_path: Path) -> None:
    """(After a secret fix, a replay more than 5 minutes later was refused: 'the signature
    timestamp is more than 300 s from our clock', though it was fresh when it came.)"""
    data = b'{"id": "r1", "type": "CREATED"}'
    stamp = str(NOW_MS // 1000)

    def config(secret: str) -> tuple[object, InstanceConfig]:
        return _config("myelement", **{"event.webhook.verify": {
            "type": "hmac", "header": "x-sig", "secret": secret, "timestampHeader": "x-ts"}})

    signed = hmac.new(b"right-secret-0123", stamp.encode() + b"." + data, hashlib.sha256).hexdigest()
    wrong, instance = config("wrong-secret-0123")
    with open_store(tmp_path / "poller.db") as store:
        first = Receiver(store, wrong).receive(instance, "POST", "application/json",  # type: ignore[arg-type]
                                               [("x-sig", signed), ("x-ts", stamp)], data, NOW_MS)
        assert (first.status, first.reason) == (401, "the x-sig signature does not match the body")
        fixed, instance = config("right-secret-0123")
        [stored] = store.inbound_requests(rejected=True)
        replayed = Receiver(store, fixed).replay(stored, NOW_MS + 3600_000)  # type: ignore[arg-type]
        assert (replayed.status, replayed.outcome, replayed.notifications) == (200, "accepted", 1), replayed.reason


@pytest.mark.parametrize("name", ["hex", "base64", "rot13", "zlib", "undefined"])
def test_a_codec_that_is_not_a_charset_is_an_unknown_charset(name: str) -> None:
    """(codecs.lookup knows these; decoding with them raised LookupError: a 500 and a traceback.)"""
    for webhook, kind, data in ((CM, "application/json", cm_body({"Type": "Subscribe", "EmailAddress": "a@x"})),
                                (MC, "application/x-www-form-urlencoded", b"type=subscribe&data%5Bid%5D=1"),
                                (WebhookConfig(kind="generic"), "application/json", b'{"id": 1}')):
        with pytest.raises(Refused) as info:
            normalise(webhook, "POST", f"{kind}; charset={name}", data, NOW_MS)
        assert (info.value.status, info.value.reason) == (415, f"unknown charset {name!r} in the Content-Type")
    [e] = normalise(CM, "POST", "application/json; charset=utf-16", json.dumps(
        {"ListID": "L1", "Events": [{"Type": "Subscribe", "EmailAddress": "a@x"}]}).encode("utf-16"), NOW_MS).events
    assert e.object_id == "a@x"
