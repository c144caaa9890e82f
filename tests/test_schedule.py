"""poller.daemon.schedule: the pure timing rules as tables under freezegun. Last, the daemon's use
of the rules: where each resource's first run lands after a start, from the state file
(the hand-off itself is tests/test_dispatch.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import httpx
import pytest
from freezegun import freeze_time

from poller.config import load_config
from poller.daemon.schedule import (
    MAX_BACKOFF_INTERVALS,
    MAX_START_JITTER_S,
    backoff_delay_s,
    first_run,
    next_due,
    next_due_after_failure,
    start_window_s,
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


# -- next_due and start_window_s: the grid after a poll, the spread at a start ---------------

@pytest.mark.parametrize(("due", "interval_s", "now", "expected"), [
    (100.0, 60, 101.5, 160.0),  # on time, or a little late: an interval after it was due
    (100.0, 60, 159.9, 160.0),
    (100.0, 60, 160.0, 220.0),  # ran late by a whole interval: the next point of the grid after now
    (100.0, 60, 1000.0, 1060.0),  # ten missed runs collapse into one, and the grid holds
    (0.0, 1.5, 0.2, 1.5),
])
def test_next_due(due: float, interval_s: float, now: float, expected: float) -> None:
    assert next_due(due, interval_s, now) == pytest.approx(expected)
    assert next_due(due, interval_s, now) > now


@pytest.mark.parametrize(("overdue", "rate", "expected"), [
    (0, 10.0, MAX_START_JITTER_S),
    (100, 10.0, MAX_START_JITTER_S),  # 10 s of polls at the steady rate: the usual 30 s
    (13_000, 111.1, 13_000 / 111.1),  # a restart with 13,000 overdue at 111 polls/s: about 2 minutes
    (100_000, 100_000 / 900, 900.0),  # every resource overdue: over one interval, the steady pace
    (5, 0.0, MAX_START_JITTER_S),
])
def test_start_window(overdue: int, rate: float, expected: float) -> None:
    assert start_window_s(overdue, rate) == pytest.approx(expected)


@freeze_time(FROZEN)
def test_first_run_spreads_over_the_window_it_is_given_within_the_interval() -> None:
    now = frozen_now()
    assert first_run(None, 900, now, constant(0.5), window_s=120) == now + timedelta(seconds=60)
    assert first_run(None, 60, now, constant(0.5), window_s=120) == now + timedelta(seconds=30)  # the interval caps it


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
        states = {s.key: s for s in store.resource_states()}
        assert daemon._first_runs(["crm/contacts"], states, NOW) == [
            ("crm/contacts", NOW + timedelta(seconds=expected_in_s))]


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
            assert daemon.slots.in_use == 1 and len(daemon.dispatcher.polling()) == 2  # the other one waits for the slot
            daemon.stop.set()
            assert await asyncio.wait_for(run, 10) == 0
            return store.resource_states()

    states = asyncio.run(main())
    assert len(requested) == 1, requested
    assert [(s.key, s.polls, s.last_success_ms is not None) for s in states] == [
        ("crm" + requested[0], 1, True)]
