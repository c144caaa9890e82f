"""Crash safety of delivery: `poller deliver --all` SIGKILLed at many points while it sends 300
notifications to a slow receiver.

Each round starts `poller deliver --all` and kills it once the receiver has seen a random number
of new requests (0 included: during start-up) plus a random few milliseconds; the receiver
answers each request after 20 ms, so kills land before a request, while it is in flight, after
the answer but before the outcome is committed, and during the commit. After every kill the state
file passes `PRAGMA integrity_check`. At the end one uninterrupted run finishes the job: every
event has been received (with a 2xx) at least once, every repeat carries the same ids and the
same bytes, nothing is pending, and repeats are no more than the requests that were in flight
when a kill landed. Set DELIVER_CRASH_SEED to replay a run.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from state import open_store
from tests.fakeprovider import FakeProvider
from tests.receiver import Receiver
from tests.test_deliver_e2e import KEY, configure, deliver, events, outbox
from tests.test_once_crash import kill_poller
from tests.test_once_e2e import once, record

RESOURCES = ("contacts", "accounts", "deals", "tickets")
PER_RESOURCE = 75  # with batchSize 1: 300 notifications
MIN_KILLS = 12
CONCURRENCY = 4  # the default engine.delivery.concurrencyPerEndpoint


def test_sigkill_during_delivery_loses_nothing_and_repeats_carry_the_same_ids(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
        make_receiver: Callable[..., Receiver]) -> None:
    seed = int(os.environ.get("DELIVER_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    provider = make_fake_provider()
    receiver = make_receiver(KEY)
    for name in RESOURCES:
        provider.add_collection(f"/{name}")
    config = configure(tmp_path, provider, receiver, resources=RESOURCES, delivery={"batchSize": 1})
    db = tmp_path / "poller.db"
    once(tmp_path, config)  # the baseline
    now = provider.now()
    with provider.lock:
        for name in RESOURCES:
            provider.collection(f"/{name}").records.extend(
                record(f"{name}-{i}", now - timedelta(milliseconds=PER_RESOURCE - i)) for i in range(PER_RESOURCE))
    receiver.status = 503  # detection commits everything; the first attempts fail
    once(tmp_path, config, expect=1)
    entries = {e.notification.id: e.notification for e in outbox(tmp_path)}
    assert len(entries) == len(RESOURCES) * PER_RESOURCE
    expected_events = {i for n in entries.values() for i in n.event_ids}
    assert len(expected_events) == len(entries)

    receiver.status = 200
    receiver.respond(None, delay_s=0.02, times=None)  # a slow endpoint: 20 ms a request
    kills = rounds = 0
    in_flight_at_kills = 0
    while kills < MIN_KILLS and rounds < 40:
        rounds += 1
        before = len(receiver.requests)
        wait_requests = rng.randrange(0, 25)
        if kill_poller(tmp_path, ["deliver", "--all", "-c", str(config), "--state", str(db)], rng,
                       ready=lambda: len(receiver.requests) >= before + wait_requests, poll_s=0.002):
            kills += 1
            in_flight_at_kills += CONCURRENCY
        with open_store(db, writer=False) as store:
            assert store.integrity_check() == "ok", f"seed {seed}, round {rounds}"
    assert kills >= MIN_KILLS, f"only {kills} kills landed in {rounds} rounds (seed {seed})"
    assert len(events(tmp_path, "--status", "pending")) > 0, f"seed {seed}: the kills left nothing to finish"

    deliver(tmp_path, config, "--all")  # one run to the end
    settled = len(receiver.requests)
    deliver(tmp_path, config, "--all")  # and nothing more after it
    deliver(tmp_path, config)
    assert len(receiver.requests) == settled, f"seed {seed}: delivered notifications were sent again"

    receiver.assert_all_verified()
    with open_store(db, writer=False) as store:
        assert store.integrity_check() == "ok"
        assert {e.status for e in store.notifications()} == {"delivered"}, f"seed {seed}"
    assert events(tmp_path, "--status", "pending") == [] and events(tmp_path, "--status", "dead") == []
    received: dict[str, list] = defaultdict(list)
    for r in receiver.snapshot():
        if r.answer is not None and 200 <= r.answer < 300:
            received[r.notification_id].append(r)
    assert set(received) == set(entries), f"seed {seed}: never received: {sorted(set(entries) - set(received))[:5]}"
    got_events = {i for rs in received.values() for r in rs for i in r.event_ids}
    assert got_events == expected_events, f"seed {seed}"
    for nid, rs in received.items():
        for r in rs:  # every repeat: the same ids and the same bytes as stored at detection
            assert r.body == entries[nid].body, f"seed {seed}: {nid} changed between attempts"
            assert r.event_ids == list(entries[nid].event_ids)
            assert r.headers["webhook-id"] == nid == r.json["message"]["eventId"]
    repeats = sum(len(rs) - 1 for rs in received.values())
    assert repeats <= in_flight_at_kills, f"seed {seed}: {repeats} repeats for {kills} kills"
    # per resource, first arrivals follow detection order
    order = {nid: i for i, nid in enumerate(entries)}
    first_seen: dict[str, int] = {}
    for r in receiver.snapshot():
        if r.answer is not None and 200 <= r.answer < 300:
            first_seen.setdefault(r.notification_id, r.number)
    for name in RESOURCES:
        ids = [nid for nid in entries if entries[nid].resource == name]
        arrivals = sorted(ids, key=lambda nid: first_seen[nid])
        assert arrivals == sorted(ids, key=order.__getitem__), f"seed {seed}: {name} out of order"
