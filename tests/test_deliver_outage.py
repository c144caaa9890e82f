"""The retry schedule and an endpoint down for a simulated day, through the library API under freezegun.

Detection is real (``poll_all`` against a fake provider), delivery is real (``deliver_due`` with an
aiohttp client POSTing to a real receiver on 127.0.0.1), and so is the SQLite state file. Only the
clock is simulated: the test moves frozen time and passes the same instant as ``now``, so
``webhook-timestamp`` and the receiver's Standard Webhooks check (which reads ``datetime.now()``,
frozen too) agree. freezegun runs with ``real_asyncio=True`` so that asyncio and aiohttp keep real
timeouts. The receiver thread only records; the time it records (``time.time()``) is the frozen
one, i.e. the simulated instant of each attempt.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory

from poller.config import Config, load_config_text
from poller.config.types import DEFAULT_RETRY_SCHEDULE
from poller.deliver.client import delivery_session
from poller.deliver.engine import deliver_due
from poller.deliver.sender import next_attempt_ms
from poller.poll.runner import poll_all
from state import OutboxEntry, Store, open_store
from tests.fakeprovider import FakeProvider
from tests.receiver import Receiver
from tests.test_deliver_e2e import KEY, configure
from tests.test_once_e2e import record

T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SCHEDULE = DEFAULT_RETRY_SCHEDULE  # 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h
TICK = timedelta(minutes=10)  # a daemon calls delivery at least this often
TLS = ssl.create_default_context()  # built once: a client per pass stays cheap


def ms(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(milliseconds=1)


def from_ms(value: int) -> datetime:
    return EPOCH + timedelta(milliseconds=value)


# -- next_attempt_ms: the pure schedule -----------------------------------------------------------

@pytest.mark.parametrize("attempts", range(1, len(SCHEDULE) + 1))
def test_each_failure_waits_its_scheduled_time_give_or_take_jitter(attempts: int) -> None:
    wait = SCHEDULE[attempts - 1] * 1000
    low = next_attempt_ms(attempts, 1_000_000, SCHEDULE, retry_after_s=None, random=lambda: 0.0)
    high = next_attempt_ms(attempts, 1_000_000, SCHEDULE, retry_after_s=None, random=lambda: 0.999999)
    mid = next_attempt_ms(attempts, 1_000_000, SCHEDULE, retry_after_s=None, random=lambda: 0.5)
    assert low is not None and high is not None and mid is not None
    for value in (low, mid, high):
        assert 0.5 * wait <= value - 1_000_000 <= 1.5 * wait
    assert low < high  # jittered
    assert low <= mid <= high


def test_ten_attempts_in_all_then_no_more() -> None:
    """Nine waits: after the 10th failed attempt none is left (a dead letter)."""
    assert next_attempt_ms(len(SCHEDULE), 0, SCHEDULE, retry_after_s=None, random=lambda: 0.5) is not None
    assert next_attempt_ms(len(SCHEDULE) + 1, 0, SCHEDULE, retry_after_s=None, random=lambda: 0.5) is None
    assert next_attempt_ms(2, 0, (1.0,), retry_after_s=None, random=lambda: 0.5) is None


@pytest.mark.parametrize(("retry_after", "at_least", "at_most"), [
    (7200.0, 7200.0, 7200.0 * 1.15),
    (10 * 86400.0, 86400.0, 86400.0),  # capped at 24 h
], ids=["2h", "10-days-capped"])
def test_retry_after_wins_over_a_shorter_wait_and_is_capped(retry_after: float, at_least: float,
                                                            at_most: float) -> None:
    for r in (0.0, 0.5, 0.999999):
        value = next_attempt_ms(1, 0, SCHEDULE, retry_after_s=retry_after, random=lambda r=r: r)
        assert value is not None
        assert at_least * 1000 <= value <= at_most * 1000


# -- the library under a frozen clock ---------------------------------------------------------------

@pytest.fixture
def frozen() -> Iterator[FrozenDateTimeFactory]:
    with freeze_time(T0, real_asyncio=True, ignore=["_pytest"]) as factory:  # pytest keeps its own clock
        yield factory  # type: ignore[misc]


class World:
    """A config, a state file, a provider and a receiver; delivery driven at simulated instants."""

    def __init__(self, tmp_path: Path, provider: FakeProvider, receiver: Receiver, frozen: FrozenDateTimeFactory,
                 resources: dict[str, int], delivery: dict | None = None) -> None:
        self.provider, self.receiver, self.frozen = provider, receiver, frozen
        for name in resources:
            provider.add_collection(f"/{name}")
        path = configure(tmp_path, provider, receiver, key=KEY, resources=tuple(resources),
                         delivery={"batchSize": 10, **(delivery or {})})
        self.config: Config = load_config_text(path.read_text(encoding="utf-8"), str(path)).config
        self.store: Store = open_store(tmp_path / "poller.db")
        self.now = T0
        self.poll()  # the baseline
        self.move(timedelta(seconds=30))
        for name, count in resources.items():
            self.add_records(name, count)
        self.move(timedelta(seconds=30))
        self.poll()

    def add_records(self, resource: str, count: int, prefix: str = "") -> None:
        """``count`` new records of ``resource``, stamped just before the simulated now."""
        with self.provider.lock:
            self.provider.collection(f"/{resource}").records.extend(
                record(f"{resource}-{prefix}{i}", self.now - timedelta(milliseconds=count - i)) for i in range(count))

    def close(self) -> None:
        self.store.close()

    def move(self, delta: timedelta) -> None:
        self.set(self.now + delta)

    def set(self, when: datetime) -> None:
        self.now = when
        self.frozen.move_to(when)

    def poll(self) -> None:
        outcomes = asyncio.run(poll_all(self.config, self.store, self.now))
        assert all(o.ok for o in outcomes), outcomes

    def deliver(self) -> list:
        """One delivery pass at the current instant; the requests it made."""
        before = len(self.receiver.requests)

        async def run() -> object:
            async with delivery_session(tls=TLS) as client:
                return await deliver_due(client, self.store, self.config, self.now)

        asyncio.run(run())
        return self.receiver.requests[before:]

    def pending(self) -> list[OutboxEntry]:
        return self.store.notifications("pending")

    def next_instant(self, limit: datetime) -> datetime:
        """The next instant worth a pass: the earliest future retry time, a tick at the latest."""
        future = [from_ms(e.next_attempt_ms) for e in self.pending()
                  if e.next_attempt_ms is not None and e.next_attempt_ms > ms(self.now)]
        return min([self.now + TICK, limit, *future])


@pytest.fixture
def world_factory(tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
                  make_receiver: Callable[..., Receiver], frozen: FrozenDateTimeFactory) -> Iterator[Callable[..., World]]:
    made: list[World] = []

    def make(resources: dict[str, int], **options: object) -> World:
        world = World(tmp_path, make_fake_provider(), make_receiver(KEY), frozen, resources, **options)  # type: ignore[arg-type]
        made.append(world)
        return world

    yield make
    for world in made:
        world.close()


def test_the_schedule_of_one_notification_until_it_is_a_dead_letter(world_factory: Callable[..., World]) -> None:
    world = world_factory({"contacts": 3})
    (entry,) = world.pending()
    nid = entry.notification.id
    world.receiver.status = 503
    times: list[int] = []  # epoch ms of each attempt, as the receiver saw the (frozen) clock
    end = world.now + timedelta(days=5)
    while world.now < end and world.pending():
        sent = world.deliver()
        assert len(sent) <= 1
        times += [round(r.at * 1000) for r in sent]
        world.set(world.next_instant(end))
    assert [r.notification_id for r in world.receiver.requests] == [nid] * (len(SCHEDULE) + 1)  # 10 attempts
    assert world.pending() == []
    (dead,) = world.store.notifications("dead")
    assert dead.notification.id == nid and dead.attempts == len(SCHEDULE) + 1 and dead.next_attempt_ms is None
    assert times[0] == ms(T0 + timedelta(minutes=1))  # sent at once after the poll
    for k, (a, b) in enumerate(zip(times, times[1:])):
        wait = (b - a) / 1000
        assert 0.5 * SCHEDULE[k] <= wait <= 1.5 * SCHEDULE[k], (k, wait)
    attempts = world.store.attempts(nid)
    assert [a.status_code for a in attempts] == [503] * (len(SCHEDULE) + 1)
    assert [a.at_ms for a in attempts] == times  # each attempt recorded when it was made
    assert all(a.error for a in attempts)
    world.receiver.assert_all_verified()  # each attempt freshly signed for its own instant


def test_an_endpoint_down_for_a_day_then_back_gets_everything_in_order_with_the_same_ids(
        world_factory: Callable[..., World]) -> None:
    world = world_factory({"contacts": 25, "accounts": 12, "deals": 3, "tickets": 0})  # 3 + 2 + 1 notifications
    initial = {e.notification.id: e.notification for e in world.pending()}
    assert len(initial) == 6
    receiver = world.receiver
    receiver.status = 503

    # a day down; the engine keeps polling, and tickets change three times meanwhile
    down_until = world.now + timedelta(days=1)
    polls = [world.now + timedelta(hours=h) for h in (1, 5, 13)]
    passes: list[tuple[datetime, int]] = []
    while world.now < down_until:
        if polls and world.now >= polls[0]:
            polls.pop(0)
            world.add_records("tickets", 4, prefix=f"t{len(polls)}-")
            world.poll()
        waiting = [e.notification.id for e in world.pending()
                   if e.attempts > 0 and e.next_attempt_ms is not None and e.next_attempt_ms > ms(world.now)]
        sent = world.deliver()
        if waiting:  # a failed notification waits: the endpoint's other notifications wait with it
            assert sent == [], (world.now.isoformat(), waiting, [r.notification_id for r in sent])
        passes.append((world.now, len(sent)))
        world.set(world.next_instant(min([down_until, *polls])))
    during = receiver.snapshot()
    assert during and all(r.answer == 503 for r in during)
    first_pass, later = passes[0][1], [n for _, n in passes[1:]]
    assert 1 <= first_pass <= 4  # at most the per-endpoint concurrency before the endpoint is known down
    assert max(later) <= 1, [(t.isoformat(), n) for t, n in passes if n > 1]  # then one probe at a time
    per_notification = Counter(r.notification_id for r in during)
    assert max(per_notification.values()) <= 7  # 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h: within a day
    assert len(during) <= 4 * 7, len(during)  # the other notifications waited instead of hammering
    entries = {e.notification.id: e.notification for e in world.store.notifications()}
    assert len(entries) == 6 + 3  # the three ticket changes were detected during the outage
    assert all(e.status == "pending" for e in world.store.notifications())  # no dead letter within a day
    for nid, n in initial.items():  # stable: nothing rewritten while it waited
        assert entries[nid] == n

    # back up: a daemon keeps calling; everything arrives by the next retry at the latest
    receiver.status = 200
    back = world.now
    end = back + timedelta(days=2)
    while world.now < end and world.pending():
        world.deliver()
        world.set(world.next_instant(end))
    assert world.pending() == []
    assert world.now <= back + timedelta(hours=24 * 1.5)
    receiver.assert_all_verified()

    seq_of = {nid: i for i, nid in enumerate(entries)}  # the outbox lists them in detection order
    requests = receiver.snapshot()
    delivered = [r for r in requests if r.answer == 200]
    assert Counter(r.notification_id for r in delivered) == Counter(list(entries))  # each exactly once
    for r in requests:  # every attempt: the same ids, byte for byte
        assert r.body == entries[r.notification_id].body
        assert r.event_ids == list(entries[r.notification_id].event_ids)
    assert sorted(i for r in delivered for i in r.event_ids) == sorted(i for n in entries.values() for i in n.event_ids)
    for resource in ("contacts", "accounts", "deals", "tickets"):
        mine = [seq_of[nid] for nid, n in entries.items() if n.resource == resource]
        sent = [seq_of[r.notification_id] for r in requests if entries[r.notification_id].resource == resource]
        assert sent == sorted(sent), (resource, sent)  # per-resource order, failed attempts included
        assert [seq_of[r.notification_id] for r in delivered if entries[r.notification_id].resource == resource] == mine
    assert {e.status for e in world.store.notifications()} == {"delivered"}


def test_other_endpoints_are_not_held_back_by_a_failing_one(world_factory: Callable[..., World],
                                                           make_receiver: Callable[..., Receiver]) -> None:
    """Blocking is per endpoint: a second instance with its own callback URL is delivered at once."""
    world = world_factory({"contacts": 3})
    other = make_receiver(KEY)
    # a second instance, same provider, another callback URL
    data = json.loads(Path(world.config.source).read_text(encoding="utf-8"))
    second = json.loads(json.dumps(data["instances"][0]))
    second["id"] = "erp"
    second["configuration"]["event.notification.callback.url"] = other.url("/hook")
    data["instances"].append(second)
    world.config = load_config_text(json.dumps(data), "config.json").config
    world.poll()  # the baseline of erp/contacts
    world.move(timedelta(seconds=30))
    with world.provider.lock:
        world.provider.collection("/contacts").records.append(record("late", world.now - timedelta(seconds=1)))
    world.move(timedelta(seconds=30))
    world.poll()
    world.receiver.status = 503
    world.deliver()
    assert world.receiver.requests and all(r.answer == 503 for r in world.receiver.requests)
    assert [r.answer for r in other.requests] == [200]
    assert other.requests[0].json["message"]["instanceId"] == "erp"
    # while crm's endpoint waits for its retry, erp's endpoint still gets what is new
    failed = len(world.receiver.requests)
    world.move(timedelta(seconds=1))
    with world.provider.lock:
        world.provider.collection("/contacts").records.append(record("later", world.now - timedelta(milliseconds=1)))
    world.poll()
    world.deliver()
    assert len(world.receiver.requests) == failed
    assert [r.answer for r in other.requests] == [200, 200]
    assert other.requests[1].object_ids == ["later"]
    other.assert_all_verified()
    world.receiver.assert_all_verified()
