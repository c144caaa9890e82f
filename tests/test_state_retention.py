"""The state file levels off: retention of finished notifications and removed resources, space
given back, paused resources kept, and write failures remembered (DESIGN.md §12)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from state import Notification, StateError, Store, open_store
from tests.test_state import note, record, seen

KEY, OTHER = "inst/contacts", "inst/accounts"
DAY = 86_400_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "poller.db") as s:
        yield s


def finished(store: Store, n: int, *, delivered_at: int | None = None, dead_at: int | None = None) -> Notification:
    entry = note(n, created_ms=n)
    record(store, [entry])
    if delivered_at is not None:
        store.mark_delivered(entry.id, now_ms=delivered_at, status_code=200, duration_ms=1)
    if dead_at is not None:
        store.mark_failed(entry.id, now_ms=dead_at, status_code=410, error="HTTP 410", duration_ms=1,
                          next_attempt_ms=None)
    return entry


def test_finished_notifications_go_after_their_retention_and_pending_ones_never(store: Store) -> None:
    old_delivered = finished(store, 1, delivered_at=1 * DAY)
    new_delivered = finished(store, 2, delivered_at=9 * DAY)
    old_dead = finished(store, 3, dead_at=1 * DAY)
    pending = finished(store, 4)
    now = 10 * DAY
    assert store.prune(now_ms=now, delivered_before_ms=now - 7 * DAY, dead_before_ms=now - 30 * DAY,
                       removed_before_ms=0) == (1, 0)
    left = {e.notification.id for e in store.notifications()}
    assert left == {new_delivered.id, old_dead.id, pending.id}
    assert store.attempts(old_delivered.id) == []  # its attempts went with it
    assert store.prune(now_ms=now, delivered_before_ms=now, dead_before_ms=now, removed_before_ms=0) == (2, 0)
    assert [e.notification.id for e in store.notifications()] == [pending.id]


def test_pruning_goes_in_batches_oldest_first(store: Store) -> None:
    for n in range(1, 8):
        finished(store, n, delivered_at=n)
    assert store.prune(now_ms=100, delivered_before_ms=100, dead_before_ms=0, removed_before_ms=0, limit=3) == (3, 0)
    assert sorted(e.notification.created_ms for e in store.notifications()) == [4, 5, 6, 7]


def test_replay_makes_a_dead_letter_unfinished_again(store: Store) -> None:
    dead = finished(store, 1, dead_at=1)
    store.replay([dead.id], now_ms=2)
    assert store.prune(now_ms=10 ** 12, delivered_before_ms=10 ** 12, dead_before_ms=10 ** 12,
                       removed_before_ms=0) == (0, 0)
    assert [e.status for e in store.notifications()] == ["pending"]


def test_a_removed_resource_keeps_its_cursor_and_seen_versions_and_resumes(store: Store) -> None:
    record(store, [], [seen("a", 1_000)])
    store.finish_poll(KEY, "inst", "contacts", cursor_ms=1_000, now_ms=2_000, prune_before_ms=None,
                      prune_hash_before_ms=None, events=0)
    assert store.mark_removed([KEY], now_ms=3_000) == 1
    assert store.mark_removed([KEY], now_ms=9_000) == 0  # the first removal counts
    state = store.resource_state(KEY)
    assert (state.cursor_ms, state.removed_ms) == (1_000, 3_000)
    assert store.seen_versions(KEY, ["a"]) == {"a": {"d:1000": 1_000}}
    assert store.resume([KEY]) == 1
    assert store.resource_state(KEY).removed_ms is None and store.resource_state(KEY).cursor_ms == 1_000


def test_a_poll_clears_the_removed_mark(store: Store) -> None:
    record(store, [], [seen("a", 1_000)])
    store.mark_removed([KEY], now_ms=3_000)
    record(store, [], [seen("b", 2_000)])
    assert store.resource_state(KEY).removed_ms is None


def test_resources_removed_longer_than_their_retention_are_forgotten(store: Store) -> None:
    for key in (KEY, OTHER):
        record(store, [note(1, key=key)], [seen("a", 1_000)], key=key)
    store.mark_removed([KEY], now_ms=1 * DAY)
    store.mark_removed([OTHER], now_ms=20 * DAY)
    assert store.prune(now_ms=32 * DAY, delivered_before_ms=0, dead_before_ms=0,
                       removed_before_ms=32 * DAY - 30 * DAY) == (0, 1)
    assert [s.key for s in store.resource_states()] == [OTHER]
    assert store.seen_versions(KEY, ["a"]) == {}
    assert len(store.notifications()) == 2  # notifications keep their own retention


def test_the_file_gives_space_back_after_retention(tmp_path: Path) -> None:
    path = tmp_path / "poller.db"
    with open_store(path) as store:
        assert store.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        big = b"x" * 4000
        for n in range(2000):
            record(store, [Notification(f"n{n}", KEY, "inst", "contacts", "https://h/", n, big, ("e",), n)])
        for n in range(2000):
            store.mark_delivered(f"n{n}", now_ms=n, status_code=200, duration_ms=1)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = os.path.getsize(path)
        while store.prune(now_ms=10 ** 6, delivered_before_ms=10 ** 6, dead_before_ms=0, removed_before_ms=0)[0]:
            pass
        while store.give_space_back(500):
            pass
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        after = os.path.getsize(path)
    assert before > 8_000_000 and after < before / 10, (before, after)


def test_a_file_made_before_incremental_vacuum_is_converted_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")  # a file with pages, auto_vacuum off
    conn.close()
    with open_store(path) as store:
        assert store.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2


def test_a_failed_write_is_remembered_until_a_write_commits(store: Store) -> None:
    """A full disk lets BEGIN and ROLLBACK through: health must come from the writes themselves."""
    store.check_writable()
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow: SQLITE_FULL
    with pytest.raises(StateError, match="database or disk is full"):
        record(store, [Notification("big", KEY, "inst", "contacts", "https://h/", 1, b"x" * 200_000, ("e",), 1)])
    assert store.write_failure is not None and "full" in store.write_failure
    with pytest.raises(StateError, match="the last write failed: database or disk is full"):
        store.check_writable()
    store.db.execute("PRAGMA max_page_count = 1073741823")  # space again
    record(store, [note(2)])
    assert store.write_failure is None
    store.check_writable()
    assert store.integrity_check() == "ok"


@pytest.mark.parametrize("how", ["deleted", "replaced by another file"])
def test_a_state_file_deleted_or_replaced_under_its_writer_fails_the_health_check(tmp_path: Path, how: str) -> None:
    """The writes go on succeeding, into a file no one opens again: /healthz said ok until the
    stop, and the next start began afresh, every cursor and pending notification gone."""
    path = tmp_path / "p.db"
    with open_store(path) as store:
        store.check_writable()
        path.unlink()
        if how != "deleted":
            with open_store(tmp_path / "other.db"):
                pass
            (tmp_path / "other.db").rename(path)
        record(store, [note(1)])  # (still works: that is the trouble)
        with pytest.raises(StateError, match=f"the state file was {how} while in use: what is written now is lost "
                                             "when this process stops"):
            store.check_writable()


def test_housekeeping_hands_a_failed_retention_to_the_daemon(tmp_path: Path) -> None:
    """The daemon logs one line per kind of failed write and counts it in health: retention's
    failures go the same way (a full disk failing every round would otherwise log each minute)."""
    import asyncio
    from datetime import datetime, timezone

    from poller.config.types import RetentionConfig
    from poller.daemon.housekeeping import Housekeeping

    with open_store(tmp_path / "p.db"):
        pass
    failures: list[tuple[str, str]] = []
    with open_store(tmp_path / "p.db", writer=False) as reader:  # every write fails: read-only
        keeper = Housekeeping(reader, lambda: datetime.now(timezone.utc), lambda: RetentionConfig(), lambda s: None,
                              on_write_failure=lambda exc, where: failures.append((where, str(exc))))
        assert asyncio.run(keeper.prune()) == (0, 0)
    assert [where for where, _ in failures] == ["retention"] and "read-only" in failures[0][1]
