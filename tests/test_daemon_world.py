"""The daemon in a broken world, in process (its clock and its store are reachable): a wall
clock that jumps, a state file that cannot be written, providers that hang. Real HTTP on
127.0.0.1 (the fake provider and the receiver), a real state file."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from poller.config import load_config_text
from poller.daemon.daemon import Daemon
from state import StateError, Store, open_store
from tests.fakeprovider import FakeProvider
from tests.receiver import Receiver
from tests.test_once_e2e import record

UTC = timezone.utc
INTERVAL_MIN = 0.02  # 1.2 s


class WallClock:
    """The daemon's wall clock: the real one, plus an offset a test may change (a jump)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def config_text(provider: FakeProvider, receiver: Receiver, *, paths: tuple[str, ...] = ("/contacts",),
                engine: dict | None = None, api: dict | None = None) -> str:
    resources = {p.strip("/"): {
        "url": p + "?updatedSince=${gmtDate:yyyy-MM-dd'T'HH:mm:ss.SSS'Z'}", "idField": "id",
        "datesConfiguration": {"updatedDateField": "updated", "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"},
    } for p in paths}
    return json.dumps({"engine": {"lookbackSeconds": 5, **(engine or {})}, "instances": [{
        "id": "crm", "element": {"key": "crm"}, "api": {"baseUrl": provider.base_url, **(api or {})},
        "configuration": {
            "event.notification.enabled": True, "event.notification.callback.url": receiver.url("/hook"),
            "event.poller.refresh_interval": INTERVAL_MIN, "event.poller.configuration": resources}}]})


async def until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def run_daemon(tmp_path: Path, text: str, body: Callable[[Daemon], Awaitable[None]], *,
               clock: Callable[[], datetime] | None = None) -> None:
    config = load_config_text(text, "c.json", {}).config
    (tmp_path / "c.json").write_text(text, encoding="utf-8")

    async def main() -> None:
        with open_store(tmp_path / "poller.db") as store:
            daemon = Daemon(str(tmp_path / "c.json"), config, store, environ={},
                            **({"clock": clock} if clock else {}))
            task = asyncio.create_task(daemon.run())
            try:
                await until(lambda: daemon.dispatcher.running, what="the daemon starting")
                await body(daemon)
            finally:
                daemon.stop.set()
                assert await asyncio.wait_for(task, 30) == 0
            assert store.integrity_check() == "ok"

    asyncio.run(main())


def polls(daemon: Daemon, key: str = "crm/contacts") -> int:
    return daemon.store.resource_state(key).polls


# -- 15. clock jumps -------------------------------------------------------------------------------

def test_a_wall_clock_jumping_back_a_day_stalls_neither_polls_nor_retries(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
        make_receiver: Callable[..., Receiver]) -> None:
    provider, receiver = make_fake_provider(), make_receiver()
    clock = WallClock()

    async def body(daemon: Daemon) -> None:
        await until(lambda: polls(daemon) >= 2, what="two polls")
        receiver.status = 503  # the receiver is down: the next notification waits for its retry
        provider.records.append(record("r1", clock()))
        await until(lambda: any(r.answer == 503 for r in receiver.snapshot()), what="a failed delivery")
        await until(lambda: [e.next_attempt_ms is not None for e in daemon.store.notifications("pending")] == [True],
                    what="the failed attempt recorded")  # (attempts are recorded in batches)
        [pending] = daemon.store.notifications("pending")
        receiver.status = 200
        before = polls(daemon)
        clock.offset -= timedelta(days=1)  # NTP steps the clock back a day
        await until(lambda: polls(daemon) >= before + 2, what="polls going on after the jump")
        # the retry planned 5 s ahead in the old timeline is still 5 s ahead, not a day
        await until(lambda: any(r.answer == 200 for r in receiver.snapshot()), what="the retry")
        await until(lambda: [e.status for e in daemon.store.notifications()
                             if e.notification.id == pending.notification.id] == ["delivered"], what="delivered")

    run_daemon(tmp_path, config_text(provider, receiver), body, clock=clock)


def test_a_wall_clock_jumping_ahead_a_day_does_not_fire_every_retry(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
        make_receiver: Callable[..., Receiver]) -> None:
    provider, receiver = make_fake_provider(), make_receiver()
    clock = WallClock()
    receiver.status = 503

    async def body(daemon: Daemon) -> None:
        await until(lambda: polls(daemon) >= 1, what="the baseline")
        provider.records.append(record("r1", clock()))
        await until(lambda: any(r.answer == 503 for r in receiver.snapshot()), what="a failed delivery")
        # the jump comes at once, most often before the attempt is recorded (they go in batches):
        # its retry time, planned before the jump, must move with it all the same
        clock.offset += timedelta(days=1)
        assert daemon.housekeeping.watch_clock() == pytest.approx(86_400, abs=5)  # seen at once, as under load
        [failed] = receiver.snapshot()
        await until(lambda: daemon.housekeeping.watch_clock() is None and
                    [e.next_attempt_ms is not None for e in daemon.store.notifications("pending")] == [True],
                    what="the jump seen and the attempt recorded")
        await asyncio.sleep(1.5)  # (a retry fired by the jump would come at once)
        assert len(receiver.snapshot()) == 1
        [moved] = daemon.store.notifications("pending")
        wait_s = moved.next_attempt_ms / 1000 - (failed.at + 86_400)  # in the new timeline
        assert 3600 * 0.9 - 5 <= wait_s <= 3600 * 1.1 + 5

    run_daemon(tmp_path, config_text(provider, receiver, engine={
        "lookbackSeconds": 5, "delivery": {"retrySchedule": [3600, 3600]}}), body, clock=clock)


# -- 10. health tells the truth ----------------------------------------------------------------------

def test_a_full_disk_makes_health_fail_with_one_log_line_and_recovery_is_clean(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], make_receiver: Callable[..., Receiver],
        caplog: pytest.LogCaptureFixture) -> None:
    provider, receiver = make_fake_provider(), make_receiver()

    async def body(daemon: Daemon) -> None:
        await until(lambda: polls(daemon) >= 1, what="the baseline")
        assert daemon.healthy() == (True, "ok")
        db = daemon.store.db
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")  # full
        big = "x" * 100_000
        for i in range(3):
            provider.records.append(record(f"r{i}", datetime.now(UTC), blob=big))
        await until(lambda: not daemon.healthy()[0], what="health failing")
        ok, reason = daemon.healthy()
        assert "the state file cannot be written" in reason and "full" in reason, reason
        await asyncio.sleep(3)  # a few more failing polls
        db.execute("PRAGMA max_page_count = 1073741823")  # room again
        await until(lambda: daemon.healthy()[0], what="health recovering")
        await until(lambda: len(receiver.delivered()) >= 1, what="the changes delivered")

    with caplog.at_level(logging.INFO):
        run_daemon(tmp_path, config_text(provider, receiver), body)
    events = [r.getMessage() for r in caplog.records]
    assert events.count("state.write_failed") == 1, events  # one line for the kind, not one per poll
    assert "state.writable_again" in events
    assert "poll.crashed" not in events and not any(r.exc_info for r in caplog.records)
    assert {o for r in receiver.delivered() for o in r.object_ids} == {"r0", "r1", "r2"}  # nothing lost


def test_without_a_watchdog_health_failing_and_recovering_is_logged_once_each(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], make_receiver: Callable[..., Receiver],
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """No systemd watchdog to ask (no WATCHDOG_USEC): health was only computed for /healthz, so
    a state file deleted under the daemon (whose writes then go where no start will look) left
    no line in the log. Now the daemon checks every HEALTH_EVERY_S and says it once, and says
    when health comes back (here: the file put back under its name)."""
    monkeypatch.setattr("poller.daemon.daemon.HEALTH_EVERY_S", 0.05)
    provider, receiver = make_fake_provider(), make_receiver()
    path = tmp_path / "poller.db"

    async def body(daemon: Daemon) -> None:
        await until(lambda: polls(daemon) >= 1, what="the baseline")
        path.rename(tmp_path / "aside.db")
        await until(lambda: any(r.getMessage() == "daemon.unhealthy" for r in caplog.records), what="the line")
        await asyncio.sleep(0.5)  # ten more checks, all failing
        (tmp_path / "aside.db").rename(path)
        await until(lambda: any(r.getMessage() == "daemon.healthy_again" for r in caplog.records),
                    what="the recovery line")

    with caplog.at_level(logging.INFO):
        run_daemon(tmp_path, config_text(provider, receiver), body)
    unhealthy = [r for r in caplog.records if r.getMessage() == "daemon.unhealthy"]
    assert len(unhealthy) == 1 and "the state file was deleted while in use" in unhealthy[0].reason


def test_health_recovers_once_the_delivery_engine_can_record_its_attempts_again(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], make_receiver: Callable[..., Receiver]) -> None:
    """The delivery engine's failed write (a full disk while an attempt was in flight) made
    /healthz 503 until the daemon stopped, and so starved the systemd watchdog, long after the
    disk had room again and the attempts were recorded."""
    provider, receiver = make_fake_provider(), make_receiver()

    async def body(daemon: Daemon) -> None:
        await until(lambda: polls(daemon) >= 1, what="the baseline")
        store = daemon.store
        record_attempts, failing = store.record_attempts, [True]

        def full_disk(results: Any) -> None:
            if failing[0]:
                raise StateError(f"{store.path}: cannot record delivery attempts: database or disk is full")
            record_attempts(results)

        store.record_attempts = full_disk  # type: ignore[method-assign]
        provider.records.append(record("r1", datetime.now(UTC)))
        await until(lambda: not daemon.healthy()[0], what="health failing")
        assert daemon.healthy()[1].startswith("delivery: "), daemon.healthy()
        failing[0] = False  # room again
        await until(lambda: [e.status for e in store.notifications()] == ["delivered"], what="the attempt recorded")
        await until(lambda: daemon.healthy()[0], timeout=10, what="health recovering")
        assert daemon.healthy() == (True, "ok")

    run_daemon(tmp_path, config_text(provider, receiver), body)
    assert [o for r in receiver.delivered() for o in r.object_ids] == ["r1"]


def test_a_reload_that_changes_a_resources_url_keeps_its_state(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], make_receiver: Callable[..., Receiver]) -> None:
    """DESIGN §9: a resource is identified by (instance id, resource name), and a kept one keeps
    its state, as after a restart. A changed URL path used to forget it: the baseline at the new
    URL swallowed every change made since the last poll."""
    provider, receiver = make_fake_provider(), make_receiver()

    async def body(daemon: Daemon) -> None:
        await until(lambda: polls(daemon) >= 1, what="the baseline")
        before = daemon.store.resource_state("crm/contacts")
        provider.records.append(record("r1", datetime.now(UTC)))  # changed just before the reload
        text = config_text(provider, receiver).replace('"/contacts?', '"/v2/contacts?')
        (tmp_path / "c.json").write_text(text, encoding="utf-8")
        assert await daemon.reload()
        await until(lambda: "r1" in [o for r in receiver.delivered() for o in r.object_ids],
                    what="r1 announced after the reload")
        assert any(r.path == "/v2/contacts" for r in provider.requests)
        assert daemon.store.resource_state("crm/contacts").cursor_ms >= before.cursor_ms

    run_daemon(tmp_path, config_text(provider, receiver), body)


def test_a_reload_that_changes_the_state_path_says_the_next_start_would_use_another_file(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], make_receiver: Callable[..., Receiver],
        caplog: pytest.LogCaptureFixture) -> None:
    """Said nothing before: the next start would have opened an empty file (a new baseline for
    every resource, and this file's pending notifications left behind)."""
    provider, receiver = make_fake_provider(), make_receiver()

    async def body(daemon: Daemon) -> None:
        await until(lambda: polls(daemon) >= 1, what="the baseline")
        text = config_text(provider, receiver, engine={"statePath": str(tmp_path / "elsewhere.db")})
        (tmp_path / "c.json").write_text(text, encoding="utf-8")
        with caplog.at_level(logging.WARNING):
            assert await daemon.reload()
        [said] = [r for r in caplog.records if r.getMessage() == "config.restart_needed"]
        assert getattr(said, "key") == "engine.statePath" and "move the file there" in getattr(said, "note")
        assert daemon.store.path == tmp_path / "poller.db"  # kept: the state is not moved under a running daemon

    run_daemon(tmp_path, config_text(provider, receiver), body)
    assert not (tmp_path / "elsewhere.db").exists()


# -- 12 (issue 12). a hanging provider does not stall the others --------------------------------------

def test_hanging_providers_do_not_take_the_slots_of_a_healthy_one(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
        make_receiver: Callable[..., Receiver]) -> None:
    provider, receiver = make_fake_provider(), make_receiver()
    hanging = tuple(f"/hang{i}" for i in range(6))
    for path in hanging:
        provider.add_collection(path)
        provider.fail(None, delay_s=60, times=None, path=path)  # answers after a minute
    provider.add_collection("/ok")

    async def body(daemon: Daemon) -> None:
        await until(lambda: len(daemon.dispatcher.polling()) >= 6, what="the hanging polls under way")
        start = polls(daemon, "crm/ok")
        await until(lambda: polls(daemon, "crm/ok") >= start + 3, what="the healthy resource polled 3 times")

    text = config_text(provider, receiver, paths=("/ok", *hanging), engine={"maxConcurrentPolls": 2,
                                                                          "shutdownTimeoutSeconds": 1})
    run_daemon(tmp_path, text, body)


def test_a_host_whose_resources_all_hang_leaves_workers_and_slots_for_another_host(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
        make_receiver: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """More hanging resources than the pool has workers, all on one host, and a healthy one on
    another: (the waiting room made small, 4, so that 12 exceed it) the hanging host gets its
    share of the pool, the other host's resource is polled all along, and the minute's summary
    counts what waits for its turn."""
    monkeypatch.setattr("poller.daemon.daemon.MIN_WAITING", 4)
    monkeypatch.setattr("poller.daemon.daemon.WAITING_PER_SLOT", 1)
    healthy, slow, receiver = make_fake_provider(), make_fake_provider(), make_receiver()
    hanging = tuple(f"/hang{i}" for i in range(12))
    for path in hanging:
        slow.add_collection(path)
        slow.fail(None, delay_s=60, times=None, path=path)  # answers after a minute
    healthy.add_collection("/ok")
    config = json.loads(config_text(healthy, receiver, paths=("/ok",), engine={"maxConcurrentPolls": 2,
                                                                               "shutdownTimeoutSeconds": 1}))
    resources = config["instances"][0]["configuration"]["event.poller.configuration"]
    for path in hanging:  # (absolute URLs: another host)
        resources[path.strip("/")] = {**resources["ok"], "url": slow.base_url + resources["ok"]["url"].replace(
            "/contacts", path).replace("/ok", path)}

    async def body(daemon: Daemon) -> None:
        assert daemon.slots.workers == 6 and daemon.slots.waiting_cap == 4
        await until(lambda: len(daemon.dispatcher.polling()) >= 3, what="the hanging polls under way")
        start = polls(daemon, "crm/ok")
        await until(lambda: polls(daemon, "crm/ok") >= start + 3, what="the healthy resource polled 3 times")
        assert sum(k.startswith("crm/hang") for k in daemon.dispatcher.polling()) <= 4  # the hanging host's share
        with caplog.at_level(logging.INFO, logger="poller.daemon.housekeeping"):
            daemon.housekeeping.log_summary(60)
        summary = next(r for r in caplog.records if r.getMessage() == "daemon.summary")
        assert summary.overdue >= 8 and summary.longest_wait_s > 0  # what waits for the hanging host's turn

    run_daemon(tmp_path, json.dumps(config), body)


def test_a_resource_whose_host_a_placeholder_writes_does_not_stop_the_others(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
        make_receiver: Callable[..., Receiver]) -> None:
    """(From a review: the configuration accepts a placeholder inside the URL's authority; naming
    the resource's host for its share of the pool raised, and took the dispatcher down with it.)"""
    provider, receiver = make_fake_provider(), make_receiver()
    provider.add_collection("/ok")
    config = json.loads(config_text(provider, receiver, paths=("/ok",)))
    resources = config["instances"][0]["configuration"]["event.poller.configuration"]
    resources["odd"] = {**resources["ok"], "url": "http://[${pageSize}]/x", "pageSize": 10}

    async def body(daemon: Daemon) -> None:
        await until(lambda: polls(daemon, "crm/ok") >= 2, what="the healthy resource polled twice")
        assert daemon.dispatcher.running and daemon.healthy() == (True, "ok")

    run_daemon(tmp_path, json.dumps(config), body)


# -- retention (issue 12): the state file levels off while the daemon runs --------------------------

def test_delivered_notifications_are_deleted_while_the_daemon_runs(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
        make_receiver: Callable[..., Receiver]) -> None:
    provider, receiver = make_fake_provider(), make_receiver()
    seconds = 2.0

    async def body(daemon: Daemon) -> None:
        await until(lambda: polls(daemon) >= 1, what="the baseline")
        for i in range(5):
            provider.records.append(record(f"r{i}", datetime.now(UTC)))
        await until(lambda: len(receiver.delivered()) >= 1, what="deliveries")
        await until(lambda: daemon.store.outbox_counts()["delivered"] >= 1, what="delivered rows")
        await until(lambda: daemon.store.outbox_counts()["delivered"] == 0, timeout=30,
                    what="delivered rows deleted by retention")

    text = config_text(provider, receiver, engine={"retention": {"deliveredDays": seconds / 86_400}})
    run_daemon(tmp_path, text, body)


# -- (issue 12) what would hold the event loop: full collections, checkpoints inside commits ----------

def test_the_daemon_freezes_its_long_lived_objects_and_checkpoints_off_the_loop(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
        make_receiver: Callable[..., Receiver]) -> None:
    provider, receiver = make_fake_provider(), make_receiver()
    import gc

    gc.unfreeze()

    async def body(daemon: Daemon) -> None:
        await until(lambda: polls(daemon) >= 2, what="two polls")
        assert gc.get_freeze_count() > 0  # the configuration and schedule: out of the full collections
        assert daemon.store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # no checkpoint in a commit
        wal = Path(f"{daemon.store.path}-wal")
        await until(lambda: wal.exists() and wal.stat().st_size > 0, what="a WAL")
        size = wal.stat().st_size
        await until(lambda: polls(daemon) >= 10, what="more polls")
        # checkpointed meanwhile, so the polls wrote the WAL from its start again (without: +4 KB a poll)
        assert wal.stat().st_size <= size + 2 * 4120

    try:
        run_daemon(tmp_path, config_text(provider, receiver, engine={"lookbackSeconds": 1}), body)
    finally:
        gc.unfreeze()


# -- (issue 12) polls that changed nothing: written together, and all of them by the stop ----------

def test_the_daemon_writes_its_quiet_polls_every_second_and_the_last_ones_when_it_stops(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
        make_receiver: Callable[..., Receiver]) -> None:
    provider, receiver = make_fake_provider(), make_receiver()
    provider.records.append(record("r0", datetime.now(UTC) - timedelta(seconds=1)))
    config = load_config_text(config_text(provider, receiver), "c.json", {}).config
    (tmp_path / "c.json").write_text(config_text(provider, receiver), encoding="utf-8")

    def on_disk(daemon: Daemon) -> int:  # what another process reading the file would see
        return daemon.store.db.execute("SELECT polls FROM resources WHERE key = 'crm/contacts'").fetchone()[0]

    async def main() -> tuple[int, int, int]:
        with open_store(tmp_path / "poller.db") as store:
            daemon = Daemon(str(tmp_path / "c.json"), config, store, environ={})
            task = asyncio.create_task(daemon.run())
            try:
                await until(lambda: daemon.dispatcher.running, what="the daemon starting")
                await until(lambda: polls(daemon) >= 3, what="two polls after the baseline")
                assert store.defer_quiet_polls
                await until(lambda: on_disk(daemon) >= 3, timeout=5, what="the quiet polls written")
                await until(lambda: polls(daemon) > on_disk(daemon), what="a quiet poll not written yet")
            finally:
                daemon.stop.set()
                assert await asyncio.wait_for(task, 30) == 0
            return polls(daemon), on_disk(daemon), len(store._quiet)  # (before the store closes)

    counted, written, waiting = asyncio.run(main())
    assert counted == written and waiting == 0


# -- a stop during a delivery, and another process holding the state file's write lock -------------

def stop_during(tmp_path: Path, text: str, before_stop: Callable[[Daemon], Awaitable[None]],
                after_stop: Callable[[Store], None]) -> None:
    """Run the daemon, stop it once ``before_stop`` returns, and look at the store it left."""
    config = load_config_text(text, "c.json", {}).config
    (tmp_path / "c.json").write_text(text, encoding="utf-8")

    async def main() -> None:
        with open_store(tmp_path / "poller.db") as store:
            daemon = Daemon(str(tmp_path / "c.json"), config, store, environ={})
            task = asyncio.create_task(daemon.run())
            try:
                await before_stop(daemon)
            finally:
                daemon.stop.set()
                assert await asyncio.wait_for(task, 30) == 0
            after_stop(store)

    asyncio.run(main())


def test_a_stop_lets_a_delivery_under_way_finish_and_records_it(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
        make_receiver: Callable[..., Receiver]) -> None:
    """(SIGTERM cancelled the POST at once: the receiver had taken it, the attempt was never
    recorded, and the restart sent it again.)"""
    provider, receiver = make_fake_provider(), make_receiver()
    receiver.respond(None, delay_s=1.0, times=1)  # the first notification is answered slowly

    async def until_it_arrives(daemon: Daemon) -> None:
        await until(lambda: polls(daemon) >= 1, what="the baseline")
        provider.records.append(record("r1", datetime.now(UTC)))
        await until(lambda: receiver.snapshot(), what="the notification arriving at the receiver")
        # (stopped now, while its answer is a second away)

    def delivered(store: Store) -> None:
        [entry] = store.notifications()
        assert (entry.status, entry.attempts) == ("delivered", 1)

    stop_during(tmp_path, config_text(provider, receiver, engine={"shutdownTimeoutSeconds": 10}),
                until_it_arrives, delivered)
    assert [r.answer for r in receiver.snapshot()] == [200]


def test_another_process_holding_the_write_lock_fails_writes_fast_instead_of_holding_the_loop(
        tmp_path: Path) -> None:
    """(With SQLite's 5 s busy wait, a sqlite3 shell holding BEGIN EXCLUSIVE froze the daemon's
    event loop: no /healthz, no deliveries, no webhooks for seconds at each write.)"""
    import sqlite3

    from poller.daemon.daemon import DAEMON_BUSY_TIMEOUT_MS

    config = load_config_text(json.dumps({"instances": []}), "c.json", {}).config
    (tmp_path / "c.json").write_text("{}", encoding="utf-8")

    async def main() -> None:
        with open_store(tmp_path / "poller.db") as store:
            daemon = Daemon(str(tmp_path / "c.json"), config, store, environ={})
            task = asyncio.create_task(daemon.run())
            try:
                await until(lambda: daemon.dispatcher.running, what="the daemon starting")
                assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == DAEMON_BUSY_TIMEOUT_MS
                other = sqlite3.connect(tmp_path / "poller.db", isolation_level=None)
                other.execute("BEGIN EXCLUSIVE")
                try:
                    with pytest.raises(StateError, match="locked"):
                        store.record_page("crm/contacts", "crm", "contacts", [], [("r1", "d:1", 1)])
                finally:
                    other.execute("ROLLBACK")
                    other.close()
            finally:
                daemon.stop.set()
                assert await asyncio.wait_for(task, 30) == 0

    asyncio.run(main())
    assert DAEMON_BUSY_TIMEOUT_MS <= 250


def test_a_stop_records_the_deliveries_that_finished_beside_one_that_never_answers(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
        make_receiver: Callable[..., Receiver]) -> None:
    """(When the stop's deadline cancelled the delivery engine's wait for a hanging receiver,
    the attempts that had finished were never recorded: both pending, attempts 0, and the one
    already answered 200 was sent again after the restart.)"""
    provider, receiver = make_fake_provider(), make_receiver()
    provider.add_collection("/deals")
    receiver.respond(None, delay_s=60, when=lambda r: r.resource == "deals")  # never answers in time
    receiver.respond(None, delay_s=0.3, when=lambda r: r.resource == "contacts", times=None)

    async def until_both_arrive(daemon: Daemon) -> None:
        await until(lambda: polls(daemon) >= 1 and polls(daemon, "crm/deals") >= 1, what="the baselines")
        now = datetime.now(UTC)
        provider.records.append(record("c1", now))
        provider.collection("/deals").records.append(record("d1", now))
        await until(lambda: {r.resource for r in receiver.snapshot()} == {"contacts", "deals"},
                    what="both notifications arriving")

    def recorded(store: Store) -> None:
        by_resource = {e.notification.resource: (e.status, e.attempts) for e in store.notifications()}
        assert by_resource == {"contacts": ("delivered", 1), "deals": ("pending", 0)}

    stop_during(tmp_path, config_text(provider, receiver, paths=("/contacts", "/deals"),
                                      engine={"shutdownTimeoutSeconds": 2}), until_both_arrive, recorded)


def test_a_lock_held_for_a_moment_leaves_health_failing_no_longer_than_the_lock(tmp_path: Path) -> None:
    """(A 1 s lock failed a page write and the backoff write after it; the backoff kind only
    commits again at a later failure, so /healthz said 503 for good and the watchdog killed us.)"""
    import sqlite3

    with open_store(tmp_path / "poller.db") as store:
        store.set_busy_timeout(20)
        other = sqlite3.connect(tmp_path / "poller.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        for write in (lambda: store.set_next_due("crm/contacts", 1),
                      lambda: store.record_page("crm/contacts", "crm", "contacts", [], [("r1", "d:1", 1)])):
            with pytest.raises(StateError, match="locked"):
                write()
        with pytest.raises(StateError, match="the last write failed: database is locked"):
            store.check_writable()
        other.execute("ROLLBACK")
        store.check_writable()  # the lock is gone: health is itself again, before any other write
        assert store.write_failure is None
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StateError):
            store.set_next_due("crm/contacts", 1)
        other.execute("ROLLBACK")
        store.record_page("crm/contacts", "crm", "contacts", [], [("r2", "d:2", 2)])  # another kind commits
        assert store.write_failure is None
        other.close()
