"""poller.daemon.schedule: the pure timing rules as tables under freezegun, and the APScheduler wiring
(job settings, postpone, change_interval) inspected through ``get_jobs()`` without waiting for
anything to run. Last, the daemon's use of the rules: where each resource's first job lands after
a start, from the state file."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import httpx
import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobSubmissionEvent
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from apscheduler.triggers.interval import IntervalTrigger
from freezegun import freeze_time

from poller.config import load_config
from poller.daemon.schedule import (
    MAX_BACKOFF_INTERVALS,
    MAX_START_JITTER_S,
    PollScheduler,
    backoff_delay_s,
    first_run,
    next_due_after_failure,
)
from poller.javadate.zone import to_ms
from state import open_store
from tests.test_once_e2e import write_config

UTC = timezone.utc
FROZEN = "2024-03-01T10:00:00Z"
T = TypeVar("T")


def frozen_now() -> datetime:
    """The clock under ``freeze_time(FROZEN)``."""
    now = datetime.now(UTC)
    assert now == datetime(2024, 3, 1, 10, tzinfo=UTC)
    return now


def constant(value: float) -> Callable[[], float]:
    return lambda: value


# -- first_run: from the last poll, else now plus a bounded jitter ------------------------------

@freeze_time(FROZEN)
@pytest.mark.parametrize(("last_poll_ago_s", "interval_s", "random_value", "expected_in_s"), [
    # last poll + interval still ahead: exactly then, no jitter (a restart does not wait a whole interval)
    (10, 60, 0.7, 50),
    (0, 60, 0.7, 60),
    (59.5, 60, 0.99, 0.5),
    (1, 1.5, 0.99, 0.5),  # fractional minutes: 0.025 min = 1.5 s
    # due now or overdue: now plus a jitter of random() * min(interval, 30 s)
    (60, 60, 0.5, 15),  # exactly due is not "ahead"
    (3600, 60, 0.0, 0),
    (3600, 60, 0.5, 15),
    (3600, 60, 0.999, 29.97),
    (3600, 900, 0.999, 29.97),  # a long interval: still at most 30 s
    (3600, 10, 0.5, 5),  # an interval under 30 s bounds the jitter
    (3600, 1.5, 0.999, 1.4985),
    # never polled (a new resource): the same jitter
    (None, 900, 0.0, 0),
    (None, 900, 0.5, 15),
    (None, 1.8, 0.5, 0.9),
])
def test_first_run(last_poll_ago_s: float | None, interval_s: float, random_value: float,
                   expected_in_s: float) -> None:
    now = frozen_now()
    last = now - timedelta(seconds=last_poll_ago_s) if last_poll_ago_s is not None else None
    assert first_run(last, interval_s, now, constant(random_value)) == now + timedelta(seconds=expected_in_s)


@freeze_time(FROZEN)
@pytest.mark.parametrize("interval_s", [0.6, 1.5, 29.0, 30.0, 31.0, 900.0, 86400.0])
def test_first_run_jitter_bounds_with_the_default_random_source(interval_s: float) -> None:
    now = frozen_now()
    bound = timedelta(seconds=min(interval_s, MAX_START_JITTER_S))
    runs = [first_run(None, interval_s, now) for _ in range(2000)]
    runs += [first_run(now - timedelta(days=1), interval_s, now) for _ in range(2000)]
    assert all(now <= run < now + bound for run in runs)
    assert len(set(runs)) > 1000  # spread out: thousands of resources do not fire in the same second
    assert min(runs) < now + bound / 10 and max(runs) > now + bound * 9 / 10


@freeze_time(FROZEN)
def test_the_rules_read_no_clock() -> None:
    """Everything follows from the ``now`` passed in, not from the (frozen) clock."""
    later = frozen_now() + timedelta(days=400, seconds=7)
    assert first_run(later - timedelta(seconds=20), 60, later, constant(0.9)) == later + timedelta(seconds=40)
    assert first_run(None, 60, later, constant(0.5)) == later + timedelta(seconds=15)
    assert next_due_after_failure(later, 3, 60) == later + timedelta(seconds=240)


# -- backoff: doubling, capped at 8 intervals; Retry-After wins when later ----------------------

@freeze_time(FROZEN)
@pytest.mark.parametrize(("failures", "interval_s", "expected_s"), [
    (-1, 60, 60),
    (0, 60, 60),
    (1, 60, 60),
    (2, 60, 120),
    (3, 60, 240),
    (4, 60, 480),
    (5, 60, 480),  # capped at 8 intervals
    (10, 60, 480),
    (1000, 60, 480),  # no overflow, no float trouble
    (1, 1.5, 1.5),
    (3, 1.5, 6.0),
    (9, 1.5, 12.0),
    (2, 900, 1800),
    (7, 900, 7200),
])
def test_backoff(failures: int, interval_s: float, expected_s: float) -> None:
    now = frozen_now()
    assert backoff_delay_s(failures, interval_s) == expected_s
    assert next_due_after_failure(now, failures, interval_s) == now + timedelta(seconds=expected_s)


@pytest.mark.parametrize("interval_s", [1.5, 60, 900])
def test_backoff_doubles_until_the_cap_and_never_shrinks(interval_s: float) -> None:
    delays = [backoff_delay_s(n, interval_s) for n in range(1, 20)]
    assert delays == sorted(delays)
    assert max(delays) == MAX_BACKOFF_INTERVALS * interval_s
    for previous, current in zip(delays, delays[1:]):
        assert current in (2 * previous, MAX_BACKOFF_INTERVALS * interval_s)


@freeze_time(FROZEN)
@pytest.mark.parametrize(("failures", "interval_s", "retry_after_in_s", "expected_in_s"), [
    (1, 60, None, 60),
    (1, 60, 600, 600),  # the provider's Retry-After is later: it wins
    (4, 60, 3600, 3600),
    (1, 60, 60, 60),
    (3, 60, 120, 240),  # the backoff is later: it wins
    (10, 60, 479, 480),
    (1, 60, -10, 60),  # a Retry-After already past changes nothing
    (2, 1.5, 30, 30),
])
def test_retry_after_wins_when_later(failures: int, interval_s: float, retry_after_in_s: float | None,
                                     expected_in_s: float) -> None:
    now = frozen_now()
    retry_after = now + timedelta(seconds=retry_after_in_s) if retry_after_in_s is not None else None
    due = next_due_after_failure(now, failures, interval_s, retry_after)
    assert due == now + timedelta(seconds=expected_in_s)
    assert due >= now + timedelta(seconds=backoff_delay_s(failures, interval_s))


# -- PollScheduler: APScheduler 3.x wiring, inspected without waiting ---------------------------

async def _never(key: str) -> None:  # pragma: no cover - nothing here runs a job
    raise AssertionError(f"a job ran: {key}")


def in_loop(body: Callable[[PollScheduler], T]) -> T:
    """Run ``body`` with a started PollScheduler inside an event loop, then shut it down."""

    async def main() -> T:
        scheduler = PollScheduler(_never)
        scheduler.start()
        try:
            return body(scheduler)
        finally:
            scheduler.shutdown()

    return asyncio.run(main())


START = datetime.now(UTC).replace(microsecond=0)


def later(hours: float = 1) -> datetime:
    """Far enough ahead that no job runs while a test inspects it (the same value for the same hours)."""
    return START + timedelta(hours=hours)


def check_job_settings(scheduler: PollScheduler, key: str, interval_s: float, first: datetime) -> None:
    jobs = scheduler.scheduler.get_jobs()
    assert [job.id for job in jobs] == [key]
    job = jobs[0]
    assert job.name == key and job.args == (key,)
    assert job.max_instances == 1  # a poll never overlaps itself
    assert job.coalesce is True  # missed runs collapse into one
    assert job.misfire_grace_time is None  # a late poll runs late, it is never skipped
    assert isinstance(job.trigger, IntervalTrigger)
    assert job.trigger.interval == timedelta(seconds=interval_s)
    assert job.trigger.timezone == UTC
    assert job.next_run_time == first and job.next_run_time.utcoffset() == timedelta(0)
    assert scheduler.next_run(key) == first
    assert scheduler.keys() == [key]
    assert scheduler.intervals == {key: interval_s}


@pytest.mark.parametrize("interval_s", [1.5, 90.0, 900.0])
def test_a_job_per_resource_with_the_settings_the_daemon_relies_on(interval_s: float) -> None:
    first = later()

    def body(scheduler: PollScheduler) -> None:
        assert str(scheduler.scheduler.timezone) == "UTC"
        scheduler.add("crm/contacts", interval_s, first)
        check_job_settings(scheduler, "crm/contacts", interval_s, first)

    in_loop(body)


def test_the_settings_hold_before_the_scheduler_starts() -> None:
    scheduler = PollScheduler(_never)
    first = later()
    scheduler.add("crm/contacts", 90, first)
    check_job_settings(scheduler, "crm/contacts", 90, first)
    assert not scheduler.running


def test_adding_a_key_again_replaces_its_job_and_remove_forgets_it() -> None:
    def body(scheduler: PollScheduler) -> None:
        scheduler.add("crm/contacts", 60, later(1))
        scheduler.add("crm/accounts", 60, later(2))
        scheduler.add("crm/contacts", 30, later(3))
        assert sorted(scheduler.keys()) == ["crm/accounts", "crm/contacts"]
        assert scheduler.next_run("crm/contacts") == later(3)
        assert scheduler.scheduler.get_job("crm/contacts").trigger.interval == timedelta(seconds=30)
        scheduler.remove("crm/contacts")
        scheduler.remove("crm/contacts")  # twice, and unknown keys: no error
        scheduler.remove("nobody/nothing")
        assert scheduler.keys() == ["crm/accounts"]
        assert scheduler.intervals == {"crm/accounts": 60}
        assert scheduler.next_run("crm/contacts") is None

    in_loop(body)


def test_postpone_moves_the_next_run_and_keeps_the_interval() -> None:
    def body(scheduler: PollScheduler) -> None:
        first = later(1)
        scheduler.add("crm/contacts", 60, first)
        trigger = scheduler.scheduler.get_job("crm/contacts").trigger
        when = first + timedelta(minutes=7, seconds=3)
        scheduler.postpone("crm/contacts", when)
        job = scheduler.scheduler.get_job("crm/contacts")
        assert job.next_run_time == when
        assert job.trigger is trigger and job.trigger.interval == timedelta(seconds=60)
        # after the postponed run, the interval goes on from it
        assert job.trigger.get_next_fire_time(when, when) == when + timedelta(seconds=60)
        scheduler.postpone("nobody/nothing", when)  # an unknown key: nothing happens
        assert scheduler.keys() == ["crm/contacts"]

    in_loop(body)


def test_change_interval_keeps_the_planned_run_and_applies_from_the_next() -> None:
    def body(scheduler: PollScheduler) -> None:
        first = later(1)
        scheduler.add("crm/contacts", 60, first)
        now = datetime.now(UTC)
        scheduler.change_interval("crm/contacts", 300, now)
        job = scheduler.scheduler.get_job("crm/contacts")
        assert job.next_run_time == first
        assert job.trigger.interval == timedelta(seconds=300)
        assert job.trigger.get_next_fire_time(first, first) == first + timedelta(seconds=300)
        assert scheduler.intervals["crm/contacts"] == 300
        assert job.max_instances == 1 and job.coalesce is True and job.misfire_grace_time is None

        trigger = job.trigger
        scheduler.change_interval("crm/contacts", 300, now)  # the same interval: nothing changes
        assert scheduler.scheduler.get_job("crm/contacts").trigger is trigger
        scheduler.change_interval("nobody/nothing", 10, now)  # an unknown key: no job appears
        assert scheduler.keys() == ["crm/contacts"]
        assert "nobody/nothing" not in scheduler.intervals

    in_loop(body)


def test_change_interval_after_a_postpone_keeps_the_postponed_run() -> None:
    def body(scheduler: PollScheduler) -> None:
        scheduler.add("crm/contacts", 60, later(1))
        scheduler.postpone("crm/contacts", later(5))
        scheduler.change_interval("crm/contacts", 120, datetime.now(UTC))
        assert scheduler.next_run("crm/contacts") == later(5)

    in_loop(body)


def test_pause_keeps_the_scheduler_running_for_health_then_shutdown_stops_it() -> None:
    async def main() -> None:
        scheduler = PollScheduler(_never)
        scheduler.start()
        scheduler.add("crm/contacts", 60, later())
        assert scheduler.scheduler.state == STATE_RUNNING
        scheduler.pause()  # a stop in progress: no new poll starts
        assert scheduler.scheduler.state == STATE_PAUSED
        assert scheduler.running  # /healthz still says the scheduler runs while polls drain
        scheduler.shutdown()  # AsyncIOScheduler stops on the loop's next turn
        await asyncio.sleep(0)
        assert not scheduler.running
        scheduler.shutdown()  # stopped: nothing to do
        scheduler.pause()

    asyncio.run(main())
    PollScheduler(_never).pause()  # never started: nothing to do
    PollScheduler(_never).shutdown()


def test_missed_and_overlapping_runs_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    now = datetime.now(UTC)
    with caplog.at_level(logging.WARNING, logger="poller.daemon.schedule"):
        PollScheduler._on_event(JobSubmissionEvent(EVENT_JOB_MAX_INSTANCES, "crm/contacts", "default", [now]))
        PollScheduler._on_event(JobSubmissionEvent(EVENT_JOB_MISSED, "crm/accounts", "default", [now]))
    assert [(r.getMessage(), r.resource) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("schedule.still_running", "crm/contacts"), ("schedule.missed", "crm/accounts")]


# -- the daemon's first runs, from the state file -----------------------------------------------

NOW = datetime(2024, 3, 1, 10, tzinfo=UTC)


def _daemon(tmp_path: Path, store: Any) -> Any:
    from poller.daemon.daemon import Daemon

    config_path = write_config(tmp_path, SimpleNamespace(base_url="http://127.0.0.1:9"))  # type: ignore[arg-type]
    config = load_config(config_path, {}).config  # refresh_interval 1 minute
    return Daemon(str(config_path), config, store, environ={}, clock=lambda: NOW, random=constant(0.5))


@pytest.mark.parametrize(("last_poll_ago_s", "next_due_in_s", "expected_in_s"), [
    (None, None, 15),  # never polled: now + 0.5 * min(60, 30) s
    (20, None, 40),  # polled 20 s ago: at last poll + interval, not a whole interval from now
    (600, None, 15),  # overdue: at once, with the jitter
    (20, 300, 300),  # a backoff or Retry-After in the state file outlives a restart
    (600, 5, 15),  # an earlier due time never brings the poll forward of the rules
])
def test_the_daemon_schedules_each_first_run_from_the_state_file(
        tmp_path: Path, last_poll_ago_s: float | None, next_due_in_s: float | None, expected_in_s: float) -> None:
    with open_store(tmp_path / "poller.db") as store:
        if last_poll_ago_s is not None:
            store.finish_poll("crm/contacts", "crm", "contacts", cursor_ms=to_ms(NOW), events=0,
                              now_ms=to_ms(NOW - timedelta(seconds=last_poll_ago_s)),
                              prune_before_ms=None, prune_hash_before_ms=None)
        if next_due_in_s is not None:
            store.fail_poll("crm/contacts", "crm", "contacts", error="503",
                            now_ms=to_ms(NOW - timedelta(seconds=last_poll_ago_s or 0)),
                            next_due_ms=to_ms(NOW + timedelta(seconds=next_due_in_s)))
        daemon = _daemon(tmp_path, store)
        daemon._schedule("crm/contacts", daemon.resources["crm/contacts"][0], NOW)
        assert daemon.scheduler.next_run("crm/contacts") == NOW + timedelta(seconds=expected_in_s)
        job = daemon.scheduler.scheduler.get_job("crm/contacts")
        assert job.trigger.interval == timedelta(seconds=60)
        assert job.max_instances == 1 and job.coalesce is True and job.misfire_grace_time is None


def test_a_stopping_daemon_lets_the_running_poll_finish_and_starts_none_that_waited(tmp_path: Path) -> None:
    """engine.maxConcurrentPolls 1 and two resources due at once: one polls, the other waits for
    the slot. A stop then lets the running poll finish (it is drained, not cancelled), and the one
    that waited never starts, although the slot frees up during the drain."""
    from poller.daemon.daemon import Daemon

    requested: list[str] = []

    async def provider(request: httpx.Request) -> httpx.Response:
        requested.append(request.url.path)
        await asyncio.sleep(0.3)
        return httpx.Response(200, json=[])

    config_path = write_config(tmp_path, SimpleNamespace(base_url="http://provider.test"),  # type: ignore[arg-type]
                               engine={"maxConcurrentPolls": 1, "shutdownTimeoutSeconds": 5})
    data = json.loads(config_path.read_text(encoding="utf-8"))
    polled = data["instances"][0]["configuration"]["event.poller.configuration"]
    polled["accounts"] = {**polled["contacts"], "url": polled["contacts"]["url"].replace("/contacts?", "/accounts?")}
    config_path.write_text(json.dumps(data), encoding="utf-8")
    config = load_config(config_path, {}).config

    async def main() -> list[Any]:
        with open_store(tmp_path / "poller.db") as store:
            daemon = Daemon(str(config_path), config, store, environ={}, random=constant(0.0),
                            transport=httpx.MockTransport(provider))
            run = asyncio.create_task(daemon.run())
            deadline = asyncio.get_running_loop().time() + 10
            while not requested and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            assert len(daemon.inflight) == 1  # and the other job waits for the slot
            daemon.stop.set()
            assert await asyncio.wait_for(run, 10) == 0
            return store.resource_states()

    states = asyncio.run(main())
    assert len(requested) == 1, requested
    assert [(s.key, s.polls, s.last_success_ms is not None) for s in states] == [
        ("crm" + requested[0], 1, True)]
