"""Delivery end to end: `poller once`, `deliver`, `events` and `replay` as subprocesses, between a real
fake provider and a real receiver on 127.0.0.1, with a real SQLite state file.

The receiver (tests/receiver.py) verifies both signatures of every request exactly as a user's
application would (plain HMAC for ``Elements-Webhook-Signature``, the ``standardwebhooks`` package
for ``webhook-*``); every test ends with ``assert_all_verified``. Time is real (a subprocess cannot
be frozen): nothing sleeps, and retry times are made long (``retrySchedule``) where a test must
know that nothing is due.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from state import OutboxEntry, open_store
from tests.fakeprovider import FakeProvider
from tests.receiver import Receiver
from tests.test_once_e2e import once, record, run_poller, write_config

KEY = "MySecretEventSignatureKey"
WHSEC = "whsec_" + base64.b64encode(b"a 32-byte secret for the tests!!").decode()
EVENTS_FIELDS = {"id", "instance", "resource", "status", "attempts", "nextAttemptAt", "lastError", "createdAt",
                 "deliveredAt", "eventIds"}
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


# -- helpers ------------------------------------------------------------------------------------

def configure(tmp_path: Path, provider: FakeProvider, receiver: Receiver, *, key: str | None = KEY,
              delivery: dict | None = None, engine: dict | None = None,
              resources: Sequence[str] = ("contacts",)) -> Path:
    """write_config's resource, pointed at the receiver, signed with ``key``; each further name in
    ``resources`` is the same resource polling ``/<name>`` (give it ``provider.add_collection``)."""
    path = write_config(tmp_path, provider, engine={**(engine or {}), **({"delivery": delivery} if delivery else {})},
                        name=resources[0])
    data = json.loads(path.read_text(encoding="utf-8"))
    conf = data["instances"][0]["configuration"]
    conf["event.notification.callback.url"] = receiver.url("/hook")
    if key is not None:
        conf["event.notification.signature.key"] = key
    polled = conf["event.poller.configuration"]
    template = polled[resources[0]]
    for name in resources:
        polled[name] = {**template, "url": template["url"].replace("/contacts?", f"/{name}?", 1)}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def db_of(tmp_path: Path) -> Path:
    return tmp_path / "poller.db"


def poller(tmp_path: Path, *args: str, expect: int | None = 0) -> Any:
    proc = run_poller(tmp_path, *args)
    if expect is not None:
        assert proc.returncode == expect, f"poller {' '.join(args)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def deliver(tmp_path: Path, config: Path, *extra: str, expect: int | None = 0) -> Any:
    return poller(tmp_path, "deliver", *extra, "-c", str(config), "--state", str(db_of(tmp_path)), expect=expect)


def events(tmp_path: Path, *extra: str) -> list[dict]:
    proc = poller(tmp_path, "events", "--json", *extra, "--state", str(db_of(tmp_path)))
    rows = json.loads(proc.stdout)
    assert isinstance(rows, list)
    return rows


def outbox(tmp_path: Path) -> list[OutboxEntry]:
    """Every notification, in detection order (created, then seq)."""
    with open_store(db_of(tmp_path), writer=False) as store:
        return store.notifications()


def changes(provider: FakeProvider, count: int, prefix: str = "r") -> list[str]:
    """``count`` new records at the provider, stamped just before its now."""
    now = provider.now()
    new = [record(f"{prefix}{i}", now - timedelta(milliseconds=count - i)) for i in range(count)]
    with provider.lock:
        provider.records.extend(new)
    return [r["id"] for r in new]


def parse_z(text: str) -> datetime:
    assert ISO_Z.fullmatch(text), text
    return datetime.fromisoformat(text[:-1] + "+00:00")


@pytest.fixture
def provider(make_fake_provider: Callable[..., FakeProvider]) -> FakeProvider:
    return make_fake_provider(style="page", page_size=100)


# -- tests --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "standard"), [(KEY, True), (WHSEC, True), (None, True), (KEY, False)],
                         ids=["plain-key", "whsec-key", "unsigned", "standard-webhooks-off"])
def test_once_delivers_signed_notifications_byte_for_byte(tmp_path: Path, provider: FakeProvider,
                                                          make_receiver: Callable[..., Receiver],
                                                          key: str | None, standard: bool) -> None:
    receiver = make_receiver(key, standard_webhooks=standard)
    config = configure(tmp_path, provider, receiver, key=key,
                       delivery=None if standard else {"standardWebhooks": False})
    once(tmp_path, config)  # the baseline announces nothing
    assert receiver.requests == []
    ids = changes(provider, 3)
    once(tmp_path, config)
    receiver.assert_all_verified()
    (got,) = receiver.requests
    (entry,) = outbox(tmp_path)
    assert got.method == "POST" and got.path == "/hook"
    assert got.body == entry.notification.body  # byte for byte, as stored at detection
    assert got.notification_id == entry.notification.id
    assert got.headers["user-agent"].startswith("poller/")
    assert sorted(got.object_ids) == sorted(ids)
    if key is not None and standard:
        assert got.headers["webhook-signature"].startswith("v1,")
        assert abs(int(got.headers["webhook-timestamp"]) - got.at) < 60
    if key is None:
        assert "webhook-id" in got.headers and "webhook-timestamp" in got.headers  # still sent
    (row,) = events(tmp_path)
    assert row["status"] == "delivered" and row["attempts"] == 1 and row["deliveredAt"] is not None
    assert row["nextAttemptAt"] is None and row["lastError"] is None
    once(tmp_path, config)  # nothing new, nothing re-sent
    assert len(receiver.requests) == 1


def test_batching_and_ids(tmp_path: Path, provider: FakeProvider, make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    config = configure(tmp_path, provider, receiver, delivery={"batchSize": 10})
    once(tmp_path, config)
    ids = changes(provider, 25)
    once(tmp_path, config)
    receiver.assert_all_verified()
    entries = outbox(tmp_path)
    got = receiver.requests
    assert [len(e.notification.event_ids) for e in entries] == [10, 10, 5]
    assert [len(r.event_ids) for r in got] == [10, 10, 5]  # one resource: in detection order
    assert [r.notification_id for r in got] == [e.notification.id for e in entries]
    assert [r.body for r in got] == [e.notification.body for e in entries]
    event_ids = [i for r in got for i in r.event_ids]
    assert len(set(event_ids)) == 25
    assert event_ids == [i for e in entries for i in e.notification.event_ids]
    assert sorted(o for r in got for o in r.object_ids) == sorted(ids)
    notification_ids = set()
    for r in got:
        body = r.json
        assert r.notification_id == r.headers["webhook-id"] == body["id"] == body["message"]["eventId"]
        notification_ids.add(r.notification_id)
        raw = body["message"]["raw"]
        assert raw["objectType"] == "contacts"
        assert [x["id"] for x in raw["contacts"]] == r.object_ids  # only these events' records
    assert len(notification_ids) == 3
    assert not notification_ids & set(event_ids)


def test_503_then_recovery_resends_the_same_ids_and_bytes(tmp_path: Path, provider: FakeProvider,
                                                        make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    # a long first wait, so that a plain `deliver` right after surely finds nothing due
    config = configure(tmp_path, provider, receiver, delivery={"batchSize": 10, "retrySchedule": [3600, 7200]})
    once(tmp_path, config)
    changes(provider, 15)  # two notifications of one resource
    receiver.status = 503
    out = once(tmp_path, config, expect=1)
    first, second = outbox(tmp_path)
    assert [r.notification_id for r in receiver.requests] == [first.notification.id]  # the second waits with it
    assert "503" in out.stdout + out.stderr
    rows = {r["id"]: r for r in events(tmp_path)}
    assert rows[first.notification.id]["status"] == "pending" and rows[first.notification.id]["attempts"] == 1
    assert "503" in (rows[first.notification.id]["lastError"] or "")
    next_at = parse_z(rows[first.notification.id]["nextAttemptAt"])
    assert next_at >= datetime.fromtimestamp(receiver.requests[0].at, timezone.utc) + timedelta(minutes=50)
    assert rows[second.notification.id]["status"] == "pending" and rows[second.notification.id]["attempts"] == 0

    receiver.status = 200
    deliver(tmp_path, config)  # nothing due yet: exit 0, nothing sent
    assert len(receiver.requests) == 1
    once(tmp_path, config)  # the endpoint still waits: nothing sent, and that is no failure
    assert len(receiver.requests) == 1

    deliver(tmp_path, config, "--all")
    receiver.assert_all_verified()
    retry, then = receiver.requests[1:]
    assert retry.notification_id == first.notification.id and retry.body == receiver.requests[0].body
    assert retry.event_ids == receiver.requests[0].event_ids
    assert then.notification_id == second.notification.id and then.body == second.notification.body
    rows = {r["id"]: r for r in events(tmp_path)}
    assert rows[first.notification.id]["status"] == "delivered" and rows[first.notification.id]["attempts"] == 2
    assert rows[second.notification.id]["status"] == "delivered" and rows[second.notification.id]["attempts"] == 1
    deliver(tmp_path, config, "--all")  # nothing pending: exit 0, nothing sent
    assert len(receiver.requests) == 3


def test_410_makes_a_dead_letter_at_once_and_replay_brings_it_back(tmp_path: Path, provider: FakeProvider,
                                                                   make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    config = configure(tmp_path, provider, receiver)
    once(tmp_path, config)
    changes(provider, 2)
    receiver.respond(410)
    once(tmp_path, config, expect=1)  # a 410 is a failed delivery
    (entry,) = outbox(tmp_path)
    (dead,) = events(tmp_path, "--status", "dead")
    assert dead["id"] == entry.notification.id and dead["attempts"] == 1 and dead["status"] == "dead"
    assert dead["nextAttemptAt"] is None and dead["deliveredAt"] is None
    assert events(tmp_path, "--status", "pending") == []
    deliver(tmp_path, config, "--all")  # a dead letter is not pending: nothing sent
    assert len(receiver.requests) == 1

    out = poller(tmp_path, "replay", "--dead", "--state", str(db_of(tmp_path)))
    assert re.search(r"\b1\b", out.stdout), out.stdout
    (row,) = events(tmp_path)
    assert row["status"] == "pending" and row["attempts"] == 0 and row["lastError"] is None
    deliver(tmp_path, config, "--all")
    receiver.assert_all_verified()
    assert [r.notification_id for r in receiver.requests] == [entry.notification.id] * 2
    assert receiver.requests[1].body == receiver.requests[0].body == entry.notification.body
    (row,) = events(tmp_path, "--status", "delivered")
    assert row["attempts"] == 1 and row["deliveredAt"] is not None


def test_replay_by_id_and_a_replayed_dead_letter_is_due_at_once(tmp_path: Path, provider: FakeProvider,
                                                                make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    config = configure(tmp_path, provider, receiver)
    once(tmp_path, config)
    changes(provider, 1)
    receiver.respond(410)
    once(tmp_path, config, expect=1)
    (entry,) = outbox(tmp_path)
    bad = poller(tmp_path, "replay", "no-such-id", "--state", str(db_of(tmp_path)), expect=None)
    assert bad.returncode != 0 and "no-such-id" in bad.stderr
    assert events(tmp_path, "--status", "dead")[0]["id"] == entry.notification.id  # changed nothing
    out = poller(tmp_path, "replay", entry.notification.id, "--state", str(db_of(tmp_path)))
    assert re.search(r"\b1\b", out.stdout), out.stdout
    deliver(tmp_path, config)  # replay sets the next attempt to now: due without --all
    receiver.assert_all_verified()
    assert [r.notification_id for r in receiver.requests] == [entry.notification.id] * 2
    assert events(tmp_path)[0]["status"] == "delivered"


@pytest.mark.parametrize("form", ["seconds", "http-date", "over-24h"])
def test_retry_after_is_respected(tmp_path: Path, provider: FakeProvider, make_receiver: Callable[..., Receiver],
                                  form: str) -> None:
    receiver = make_receiver(KEY)
    config = configure(tmp_path, provider, receiver)  # the default schedule: the first wait is about 5 s
    once(tmp_path, config)
    changes(provider, 1)
    wait = {"seconds": 7200, "http-date": 7200, "over-24h": 10 * 86400}[form]
    value: str | int = formatdate(time.time() + wait, usegmt=True) if form == "http-date" else wait
    receiver.respond(503, retry_after=value)
    once(tmp_path, config, expect=1)
    (row,) = events(tmp_path)
    assert row["status"] == "pending" and row["attempts"] == 1
    next_at = parse_z(row["nextAttemptAt"])
    attempted = datetime.fromtimestamp(receiver.requests[0].at, timezone.utc)
    expected = min(wait, 86400)  # honoured, capped at 24 h
    assert next_at >= attempted + timedelta(seconds=expected - 5), (row, attempted)
    # jitter may stretch an honoured wait a little, but never past the 24 h cap
    longest = 86400 if form == "over-24h" else expected * 1.15
    assert next_at <= attempted + timedelta(seconds=longest + 60), (row, attempted)
    deliver(tmp_path, config)  # not due before that: nothing sent
    assert len(receiver.requests) == 1
    receiver.assert_all_verified()


def test_deliver_with_nothing_due_exits_0(tmp_path: Path, provider: FakeProvider,
                                          make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    config = configure(tmp_path, provider, receiver)
    once(tmp_path, config)
    deliver(tmp_path, config)
    deliver(tmp_path, config, "--all")
    assert receiver.requests == []
    assert events(tmp_path) == []


def test_deliver_with_no_state_file_says_so_and_makes_none(
        tmp_path: Path, provider: FakeProvider, make_receiver: Callable[..., Receiver]) -> None:
    """A mistyped --state made a new, empty state file and reported 0 attempted. Nothing is
    pending, so the exit is 0 (DESIGN §9), and the note is on stderr."""
    config = configure(tmp_path, provider, make_receiver(KEY))
    missing = tmp_path / "typo" / "poller.db"
    proc = poller(tmp_path, "deliver", "-c", str(config), "--state", str(missing), expect=0)
    assert proc.stderr.strip().endswith(f"no state file at {missing}: nothing to deliver (poller once and poller "
                                        "run make it)"), proc.stderr
    assert proc.stdout == "" and not missing.parent.exists()


def test_deliver_says_what_waits_for_an_instance_the_configuration_does_not_have(
        tmp_path: Path, provider: FakeProvider, make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    config = configure(tmp_path, provider, receiver, delivery={"retrySchedule": [3600, 3600]})
    once(tmp_path, config)
    changes(provider, 1)
    receiver.respond(503, times=1)
    once(tmp_path, config, expect=1)  # pending, its retry an hour away
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"instances": []}), encoding="utf-8")
    proc = deliver(tmp_path, other, "--all")  # (nothing attempted: exit 0, DESIGN §9)
    assert proc.stdout.splitlines()[-1] == "0 attempted, 0 delivered, 0 failed (0 dead letters)"
    assert (f"1 pending notification of instance 'crm' not attempted: it is not in {other} nor made through "
            "the API, so its signature key and callback are not known here") in proc.stderr
    assert [row["status"] for row in events(tmp_path)] == ["pending"]


def test_deliver_exits_1_when_an_attempt_fails(tmp_path: Path, provider: FakeProvider,
                                               make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    config = configure(tmp_path, provider, receiver, delivery={"retrySchedule": [3600, 3600]})
    once(tmp_path, config)
    changes(provider, 1)
    receiver.respond(drop=True, times=2)  # a network error, not an HTTP answer
    once(tmp_path, config, expect=1)
    deliver(tmp_path, config, "--all", expect=1)
    (row,) = events(tmp_path)
    assert row["status"] == "pending" and row["attempts"] == 2 and row["lastError"]
    deliver(tmp_path, config, "--all")
    (row,) = events(tmp_path)
    assert row["status"] == "delivered" and row["attempts"] == 3
    assert len({r.body for r in receiver.requests}) == 1 and len(receiver.requests) == 3
    receiver.assert_all_verified()


def test_events_json_fields(tmp_path: Path, provider: FakeProvider, make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(KEY)
    db = db_of(tmp_path)
    config = configure(tmp_path, provider, receiver, delivery={"batchSize": 2, "retrySchedule": [3600]},
                       engine={"statePath": str(db)})
    once(tmp_path, config)
    changes(provider, 2, "a")
    once(tmp_path, config)  # delivered
    changes(provider, 2, "b")
    receiver.respond(410)
    once(tmp_path, config, expect=1)  # dead
    changes(provider, 4, "c")
    receiver.respond(503)
    once(tmp_path, config, expect=1)  # two pending: one failed once, one waiting behind it
    entries = {e.notification.id: e for e in outbox(tmp_path)}
    rows = events(tmp_path)
    assert len(rows) == len(entries) == 4
    for row in rows:
        assert set(row) == EVENTS_FIELDS, sorted(row)
        entry = entries[row["id"]]
        assert row["instance"] == "crm" and row["resource"] == "contacts"
        assert row["eventIds"] == list(entry.notification.event_ids)
        assert row["status"] == entry.status and row["attempts"] == entry.attempts
        assert isinstance(row["attempts"], int)
        parse_z(row["createdAt"])
        for name in ("nextAttemptAt", "deliveredAt"):
            assert row[name] is None or ISO_Z.fullmatch(row[name]), row
    by_status: dict[str, list[dict]] = {}
    for row in rows:
        by_status.setdefault(row["status"], []).append(row)
    assert sorted((s, len(v)) for s, v in by_status.items()) == [("dead", 1), ("delivered", 1), ("pending", 2)]
    (delivered,) = by_status["delivered"]
    assert delivered["deliveredAt"] and delivered["nextAttemptAt"] is None and delivered["lastError"] is None
    (dead,) = by_status["dead"]
    assert dead["nextAttemptAt"] is None and dead["deliveredAt"] is None and "410" in dead["lastError"]
    failed = next(r for r in by_status["pending"] if r["attempts"] == 1)
    assert failed["nextAttemptAt"] and "503" in failed["lastError"] and failed["deliveredAt"] is None
    for status, expected in by_status.items():
        assert sorted(r["id"] for r in events(tmp_path, "--status", status)) == sorted(r["id"] for r in expected)
    assert len(events(tmp_path, "--limit", "3")) == 3
    assert len(events(tmp_path, "--status", "pending", "--limit", "1")) == 1
    # -c CONFIG finds the state file through engine.statePath
    proc = poller(tmp_path, "events", "--json", "-c", str(config))
    assert sorted(r["id"] for r in json.loads(proc.stdout)) == sorted(entries)
    # and the text form names every notification
    text = poller(tmp_path, "events", "--state", str(db)).stdout
    assert all(nid in text for nid in entries)
    receiver.assert_all_verified()
