"""The outbox as delivery sees it: queue heads, due times, blocked endpoints, attempts, replay."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from state import Attempt, Notification, OutboxEntry, StateError, Store, open_store
from state import outbox

A, B, C = "inst/a", "inst/b", "other/c"
HOOK = "https://hooks.example/in"
OTHER_HOOK = "https://elsewhere.example/hook"
NOW = 100_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "poller.db") as s:
        yield s


@pytest.fixture
def reader(store: Store) -> Iterator[Store]:
    with open_store(store.path, writer=False) as r:
        yield r


def note(key: str, seq: int, *, url: str = HOOK, created_ms: int = 1_000) -> Notification:
    instance, resource = key.split("/")
    return Notification(id=f"{key}#{seq}", resource_key=key, instance_id=instance, resource=resource,
                        callback_url=url, created_ms=created_ms, body=b'{"seq": %d}' % seq,
                        event_ids=(f"{key}-e{seq}",), seq=seq)


def add(store: Store, *notes: Notification) -> None:
    """Record notes, each under its own resource (one page per resource, in the order given)."""
    for key in dict.fromkeys(n.resource_key for n in notes):
        instance, resource = key.split("/")
        store.record_page(key, instance, resource, [n for n in notes if n.resource_key == key], [])


def due(store: Store, now_ms: int = NOW, *, everything: bool = False) -> list[str]:
    return [e.notification.id for e in store.due_notifications(now_ms, everything=everything)]


def ok(store: Store, nid: str, *, now_ms: int = NOW, status_code: int = 200, duration_ms: int = 12) -> None:
    store.mark_delivered(nid, now_ms=now_ms, status_code=status_code, duration_ms=duration_ms)


def failed(store: Store, nid: str, next_attempt_ms: int | None, *, now_ms: int = NOW, status_code: int | None = 500,
           error: str = "HTTP 500", duration_ms: int = 30) -> None:
    store.mark_failed(nid, now_ms=now_ms, status_code=status_code, error=error, duration_ms=duration_ms,
                      next_attempt_ms=next_attempt_ms)


def status(store: Store, nid: str) -> OutboxEntry:
    entry = store.notification(nid)
    assert entry is not None
    return entry


def snapshot(store: Store) -> tuple[list[tuple], list[tuple]]:
    """Every row of the outbox and of the attempts, to prove that nothing changed."""
    return (list(store.db.execute("SELECT * FROM outbox ORDER BY id")),
            list(store.db.execute("SELECT * FROM attempts ORDER BY id")))


def fail_on(store: Store, table: str, event: str = "INSERT", when: str = "1") -> None:
    """Make the next matching write to ``table`` fail half-way through a store method."""
    with store.db.atomic():
        store.db.execute(f"CREATE TRIGGER injected BEFORE {event} ON {table} WHEN {when} "
                         "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")


# --- reading one notification ----------------------------------------------------------------

def test_notification_by_id(store: Store) -> None:
    add(store, note(A, 1))
    assert store.notification(f"{A}#1") == OutboxEntry(note(A, 1), "pending", 0, next_attempt_ms=1_000,
                                                        last_error=None, delivered_ms=None)
    assert store.notification("nope") is None


def test_the_attempt_type() -> None:
    attempt = Attempt("n1", 5, None, "timeout", 15_000)
    assert (attempt.notification_id, attempt.at_ms, attempt.status_code, attempt.error, attempt.duration_ms) \
        == ("n1", 5, None, "timeout", 15_000)
    with pytest.raises(AttributeError):
        attempt.error = "x"  # type: ignore[misc]


# --- per-resource order ----------------------------------------------------------------------

def test_only_the_head_of_each_resource_is_due(store: Store) -> None:
    add(store, note(A, 1), note(A, 2), note(A, 3), note(B, 7), note(B, 8))
    assert due(store) == [f"{A}#1", f"{B}#7"]
    assert due(store, everything=True) == [f"{A}#1", f"{B}#7"]


def test_after_delivery_the_next_notification_becomes_the_head(store: Store) -> None:
    add(store, note(A, 1), note(A, 2), note(A, 3), note(B, 7))
    ok(store, f"{A}#1")
    assert due(store) == [f"{A}#2", f"{B}#7"]
    ok(store, f"{A}#2")
    ok(store, f"{B}#7")
    assert due(store) == [f"{A}#3"]
    ok(store, f"{A}#3")
    assert due(store) == [] and due(store, everything=True) == []


def test_the_head_is_the_lowest_seq_whatever_the_insertion_order(store: Store) -> None:
    add(store, note(A, 30, created_ms=500), note(A, 10, created_ms=900), note(A, 20, created_ms=100))
    assert due(store) == [f"{A}#10"]


def test_equal_seqs_go_by_insertion_order(store: Store) -> None:
    first = note(A, 5)
    second = Notification(**{**{f: getattr(first, f) for f in first.__slots__}, "id": "0-sorts-first-by-id"})
    add(store, first)
    add(store, second)
    assert due(store) == [first.id]
    ok(store, first.id)
    assert due(store) == [second.id]


def test_a_dead_letter_no_longer_holds_its_resource_back(store: Store) -> None:
    add(store, note(A, 1), note(A, 2))
    failed(store, f"{A}#1", None, status_code=410, error="HTTP 410")
    assert due(store) == [f"{A}#2"]


def test_a_waiting_head_holds_its_resource_back(store: Store) -> None:
    add(store, note(A, 1), note(A, 2), note(B, 1, url=OTHER_HOOK))
    failed(store, f"{A}#1", NOW + 5_000)
    assert due(store) == [f"{B}#1"]  # never A#2 while A#1 waits
    assert due(store, everything=True) == [f"{B}#1", f"{A}#1"]
    assert due(store, NOW + 5_000) == [f"{B}#1", f"{A}#1"]


def test_due_notifications_are_ordered_by_next_attempt_then_creation_then_seq_then_id(store: Store) -> None:
    add(store, note(A, 9, created_ms=3_000), note(B, 5, created_ms=2_000), note(C, 4, created_ms=2_000),
        note("d/d", 4, created_ms=2_000))
    # fresh notifications are due at their creation: then seq, then id ("d/d#4" < "other/c#4")
    assert due(store) == ["d/d#4", f"{C}#4", f"{B}#5", f"{A}#9"]
    failed(store, "d/d#4", 2_500)  # its next attempt, not its creation, places it now
    assert due(store) == [f"{C}#4", f"{B}#5", "d/d#4", f"{A}#9"]


# --- due or not ------------------------------------------------------------------------------

def test_due_means_next_attempt_at_or_before_now(store: Store) -> None:
    add(store, note(A, 1, created_ms=NOW), note(B, 1, created_ms=NOW + 1, url=OTHER_HOOK))
    assert due(store, NOW - 1) == []
    assert due(store, NOW) == [f"{A}#1"]
    assert due(store, NOW + 1) == [f"{A}#1", f"{B}#1"]
    assert due(store, NOW - 1, everything=True) == [f"{A}#1", f"{B}#1"]


def test_a_failed_notification_is_due_again_at_its_next_attempt(store: Store) -> None:
    add(store, note(A, 1))
    failed(store, f"{A}#1", NOW + 300_000)
    assert due(store, NOW + 299_999) == []
    assert due(store, NOW + 300_000) == [f"{A}#1"]


def test_delivered_and_dead_notifications_are_never_due(store: Store) -> None:
    add(store, note(A, 1), note(B, 1))
    ok(store, f"{A}#1")
    failed(store, f"{B}#1", None)
    assert due(store) == [] and due(store, everything=True) == []


# --- blocked endpoints -----------------------------------------------------------------------

def test_a_waiting_failure_blocks_its_endpoint_only(store: Store) -> None:
    add(store, note(A, 1), note(A, 2), note(B, 1), note(C, 1, url=OTHER_HOOK))
    failed(store, f"{A}#1", NOW + 60_000)
    assert due(store) == [f"{C}#1"]  # B#1 shares A's endpoint: it waits with it
    assert due(store, everything=True) == [f"{B}#1", f"{C}#1", f"{A}#1"]
    assert due(store, NOW + 60_000) == [f"{B}#1", f"{C}#1", f"{A}#1"]


def test_an_endpoint_is_unblocked_by_delivery_or_death_of_the_failure(store: Store) -> None:
    add(store, note(A, 1), note(B, 1))
    failed(store, f"{A}#1", NOW + 60_000)
    assert due(store) == []
    ok(store, f"{A}#1")  # e.g. `poller deliver --all` got it through
    assert due(store) == [f"{B}#1"]
    add(store, note(A, 2))
    failed(store, f"{A}#2", NOW + 60_000)
    assert due(store) == []
    failed(store, f"{A}#2", None)
    assert due(store) == [f"{B}#1"]


def test_a_failure_that_is_due_again_blocks_nothing(store: Store) -> None:
    add(store, note(A, 1), note(B, 1))
    failed(store, f"{A}#1", NOW)
    assert due(store) == [f"{B}#1", f"{A}#1"]  # B#1 by its creation (1 000), A#1 at NOW


def test_a_notification_not_yet_due_but_never_tried_blocks_nothing(store: Store) -> None:
    add(store, note(A, 1, created_ms=NOW + 10), note(B, 1))
    assert due(store) == [f"{B}#1"]


def test_replaying_the_failure_unblocks_its_endpoint(store: Store) -> None:
    add(store, note(A, 1), note(B, 1))
    failed(store, f"{A}#1", NOW + 60_000)
    store.replay([f"{A}#1"], now_ms=NOW)
    assert due(store) == [f"{B}#1", f"{A}#1"]


# --- attempts and marking --------------------------------------------------------------------

def test_attempts_are_recorded_in_order(store: Store) -> None:
    add(store, note(A, 1), note(B, 1))
    nid = f"{A}#1"
    failed(store, nid, 5_000, now_ms=1_000, status_code=503, error="HTTP 503", duration_ms=40)
    failed(store, nid, 400_000, now_ms=6_000, status_code=None, error="timeout after 15 s", duration_ms=15_000)
    ok(store, nid, now_ms=400_000, status_code=204, duration_ms=8)
    ok(store, f"{B}#1", now_ms=1, status_code=200, duration_ms=1)
    assert store.attempts(nid) == [
        Attempt(nid, 1_000, 503, "HTTP 503", 40),
        Attempt(nid, 6_000, None, "timeout after 15 s", 15_000),
        Attempt(nid, 400_000, 204, None, 8),
    ]
    assert store.attempts(f"{B}#1") == [Attempt(f"{B}#1", 1, 200, None, 1)]
    assert store.attempts("nope") == []


def test_mark_failed_keeps_it_pending_until_the_next_attempt(store: Store) -> None:
    add(store, note(A, 1))
    failed(store, f"{A}#1", 5_000, error="HTTP 500: oops")
    failed(store, f"{A}#1", 9_000, error="connection refused", status_code=None)
    assert status(store, f"{A}#1") == OutboxEntry(note(A, 1), "pending", 2, next_attempt_ms=9_000,
                                                   last_error="connection refused", delivered_ms=None)


def test_mark_failed_without_a_next_attempt_makes_a_dead_letter(store: Store) -> None:
    add(store, note(A, 1))
    failed(store, f"{A}#1", 5_000)
    failed(store, f"{A}#1", None, status_code=410, error="HTTP 410 Gone")
    assert status(store, f"{A}#1") == OutboxEntry(note(A, 1), "dead", 2, next_attempt_ms=None,
                                                   last_error="HTTP 410 Gone", delivered_ms=None)


def test_mark_delivered(store: Store) -> None:
    add(store, note(A, 1))
    failed(store, f"{A}#1", 5_000)
    ok(store, f"{A}#1", now_ms=7_000)
    assert status(store, f"{A}#1") == OutboxEntry(note(A, 1), "delivered", 2, next_attempt_ms=None,
                                                   last_error=None, delivered_ms=7_000)


def test_marking_an_already_delivered_notification_records_the_attempt_only(store: Store) -> None:
    add(store, note(A, 1))
    ok(store, f"{A}#1", now_ms=7_000)
    before = status(store, f"{A}#1")
    ok(store, f"{A}#1", now_ms=8_000, status_code=202)
    failed(store, f"{A}#1", 9_000, now_ms=9_000)
    failed(store, f"{A}#1", None, now_ms=10_000)
    assert status(store, f"{A}#1") == before
    assert [(a.at_ms, a.status_code) for a in store.attempts(f"{A}#1")] == [(7_000, 200), (8_000, 202), (9_000, 500),
                                                                           (10_000, 500)]


def test_delivering_a_dead_letter_does_not_revive_it(store: Store) -> None:
    add(store, note(A, 1))
    failed(store, f"{A}#1", None)
    ok(store, f"{A}#1")
    assert status(store, f"{A}#1").status == "dead"
    assert len(store.attempts(f"{A}#1")) == 2


@pytest.mark.parametrize("mark", [ok, lambda s, nid: failed(s, nid, 5_000)])
def test_marking_an_unknown_notification_is_refused(store: Store, mark) -> None:  # type: ignore[no-untyped-def]
    add(store, note(A, 1))
    before = snapshot(store)
    with pytest.raises(StateError, match=rf"{store.path}: cannot record the (failed )?delivery of nope: "
                                         "unknown notification id: nope"):
        mark(store, "nope")
    assert snapshot(store) == before


# --- replay ----------------------------------------------------------------------------------

def test_replay_ids_of_any_status(store: Store) -> None:
    add(store, note(A, 1), note(A, 2), note(A, 3), note(B, 1))
    ok(store, f"{A}#1", now_ms=2_000)
    failed(store, f"{A}#2", None, error="HTTP 410")
    failed(store, f"{A}#3", 90_000)
    assert store.replay([f"{A}#3", f"{A}#1", f"{A}#2", f"{A}#1"], now_ms=NOW) == [f"{A}#3", f"{A}#1", f"{A}#2"]
    for n in (1, 2, 3):
        assert status(store, f"{A}#{n}") == OutboxEntry(note(A, n), "pending", 0, next_attempt_ms=NOW,
                                                        last_error=None, delivered_ms=None)
    assert len(store.attempts(f"{A}#1")) == 1  # the history of attempts is kept
    assert status(store, f"{B}#1").next_attempt_ms == 1_000  # untouched
    assert due(store) == [f"{B}#1", f"{A}#1"]  # A#1 is the head of A again


def test_replay_dead_letters(store: Store) -> None:
    add(store, note(A, 1, created_ms=3_000), note(B, 1, created_ms=2_000), note(C, 1), note(C, 2))
    for nid in (f"{A}#1", f"{B}#1", f"{C}#1"):
        failed(store, nid, None)
    ok(store, f"{C}#2")
    assert store.replay(dead=True, now_ms=NOW) == [f"{C}#1", f"{B}#1", f"{A}#1"]  # oldest first
    assert store.outbox_counts() == {"pending": 3, "delivered": 1, "dead": 0}
    assert store.replay(dead=True, now_ms=NOW) == []


def test_replay_ids_and_dead_letters_together(store: Store) -> None:
    add(store, note(A, 1), note(B, 1), note(C, 1))
    failed(store, f"{A}#1", None)
    failed(store, f"{B}#1", None)
    ok(store, f"{C}#1")
    assert store.replay([f"{C}#1", f"{B}#1"], dead=True, now_ms=NOW) == [f"{C}#1", f"{B}#1", f"{A}#1"]
    assert store.outbox_counts() == {"pending": 3, "delivered": 0, "dead": 0}


def test_replay_nothing(store: Store) -> None:
    add(store, note(A, 1))
    assert store.replay(now_ms=NOW) == []
    assert store.replay([], dead=True, now_ms=NOW) == []
    assert status(store, f"{A}#1").next_attempt_ms == 1_000


def test_replay_of_unknown_ids_changes_nothing_and_names_them(store: Store) -> None:
    add(store, note(A, 1), note(B, 1))
    failed(store, f"{A}#1", None)
    ok(store, f"{B}#1")
    before = snapshot(store)
    with pytest.raises(StateError, match=f"{store.path}: cannot replay notifications: "
                                         "unknown notification ids: nope, gone"):
        store.replay([f"{B}#1", "nope", f"{A}#1", "gone"], dead=True, now_ms=NOW)
    assert snapshot(store) == before


def test_replay_checks_ids_beyond_sqlites_parameter_limit(store: Store) -> None:
    add(store, *(note(A, n) for n in range(1_200)))
    ids = [f"{A}#{n}" for n in range(1_200)]
    for nid in ids[:2]:
        failed(store, nid, None)
    assert store.replay(ids, now_ms=NOW) == ids
    with pytest.raises(StateError, match="unknown notification id: missing$"):
        store.replay([*ids, "missing"], now_ms=NOW)


def test_replay_wants_a_list_of_ids(store: Store) -> None:
    with pytest.raises(TypeError, match="not one string"):
        store.replay("inst/a#1", now_ms=NOW)


# --- counts and listing ----------------------------------------------------------------------

def test_outbox_counts(store: Store, reader: Store) -> None:
    assert store.outbox_counts() == {"pending": 0, "delivered": 0, "dead": 0}
    add(store, note(A, 1), note(A, 2), note(A, 3), note(B, 1))
    ok(store, f"{A}#1")
    failed(store, f"{A}#2", None)
    failed(store, f"{A}#3", NOW + 1)
    assert store.outbox_counts() == {"pending": 2, "delivered": 1, "dead": 1}
    assert reader.outbox_counts() == {"pending": 2, "delivered": 1, "dead": 1}


def test_notifications_newest_first(store: Store) -> None:
    add(store, note(A, 1, created_ms=1_000), note(A, 2, created_ms=1_000), note(B, 1, created_ms=3_000),
        note(C, 1, created_ms=2_000))
    failed(store, f"{C}#1", None)
    assert [e.notification.id for e in store.notifications(newest_first=True)] == \
        [f"{B}#1", f"{C}#1", f"{A}#2", f"{A}#1"]
    assert [e.notification.id for e in store.notifications()] == [f"{A}#1", f"{A}#2", f"{C}#1", f"{B}#1"]
    assert [e.notification.id for e in store.notifications("pending", 2, newest_first=True)] == [f"{B}#1", f"{A}#2"]
    assert [e.notification.id for e in store.notifications("dead", newest_first=True)] == [f"{C}#1"]


# --- readers and transactions ----------------------------------------------------------------

def test_readers_use_every_read_method_while_the_writer_holds_the_lock(store: Store, reader: Store) -> None:
    add(store, note(A, 1), note(A, 2))
    failed(store, f"{A}#1", NOW + 10)
    assert store.db.lock is not None and store.db.lock.held
    with store.db.atomic():  # the writer is half-way through a write: readers see the last commit
        outbox.mark_delivered(store.db, f"{A}#1", now_ms=NOW, status_code=200, duration_ms=1)
        started = time.monotonic()
        assert reader.notification(f"{A}#1").status == "pending"  # type: ignore[union-attr]
        assert reader.due_notifications(NOW) == []
        assert [e.notification.id for e in reader.due_notifications(NOW, everything=True)] == [f"{A}#1"]
        assert len(reader.attempts(f"{A}#1")) == 1
        assert reader.outbox_counts() == {"pending": 2, "delivered": 0, "dead": 0}
        assert len(reader.notifications(newest_first=True)) == 2
        assert time.monotonic() - started < 1  # no waiting on the writer (busy_timeout is 5 s)
    assert reader.notification(f"{A}#1").status == "delivered"  # type: ignore[union-attr]
    assert [e.notification.id for e in reader.due_notifications(NOW)] == [f"{A}#2"]


def test_a_reader_cannot_mark_or_replay(store: Store, reader: Store) -> None:
    add(store, note(A, 1))
    with pytest.raises(StateError, match="read-only"):
        ok(reader, f"{A}#1")
    with pytest.raises(StateError, match="read-only"):
        failed(reader, f"{A}#1", None)
    with pytest.raises(StateError, match="read-only"):
        reader.replay([f"{A}#1"], now_ms=NOW)
    assert store.attempts(f"{A}#1") == []


def test_write_helpers_refuse_to_run_outside_a_transaction(store: Store) -> None:
    add(store, note(A, 1))
    with pytest.raises(RuntimeError, match="inside the store's transaction"):
        outbox.mark_delivered(store.db, f"{A}#1", now_ms=NOW, status_code=200, duration_ms=1)
    with pytest.raises(RuntimeError, match="inside the store's transaction"):
        outbox.mark_failed(store.db, f"{A}#1", now_ms=NOW, status_code=500, error="x", duration_ms=1,
                           next_attempt_ms=None)
    with pytest.raises(RuntimeError, match="inside the store's transaction"):
        outbox.replay(store.db, [f"{A}#1"], dead=True, now_ms=NOW)
    assert status(store, f"{A}#1").status == "pending"


@pytest.mark.parametrize("mark", ["delivered", "failed", "dead"])
def test_a_failed_attempt_insert_rolls_the_outbox_update_back(store: Store, mark: str) -> None:
    add(store, note(A, 1), note(A, 2))
    failed(store, f"{A}#1", 5_000)
    fail_on(store, "attempts")
    before = snapshot(store)
    with pytest.raises(StateError, match=f"{store.path}: cannot record the .*delivery of {A}#1: injected failure"):
        if mark == "delivered":
            ok(store, f"{A}#1")
        else:
            failed(store, f"{A}#1", 9_000 if mark == "failed" else None)
    assert snapshot(store) == before  # the outbox row was updated first, and that went too
    assert status(store, f"{A}#1").status == "pending" and status(store, f"{A}#1").attempts == 1
    store.db.execute("DROP TRIGGER injected")
    ok(store, f"{A}#1")  # the store is still usable
    assert status(store, f"{A}#1").status == "delivered"


def test_replay_is_all_or_nothing(store: Store) -> None:
    add(store, note(A, 1), note(A, 2), note(A, 3))
    for n in (1, 2, 3):
        failed(store, f"{A}#{n}", None)
    fail_on(store, "outbox", "UPDATE", f"OLD.id = '{A}#2'")  # the second of three updates fails
    before = snapshot(store)
    with pytest.raises(StateError, match="cannot replay notifications: injected failure"):
        store.replay(dead=True, now_ms=NOW)
    assert snapshot(store) == before
    assert store.outbox_counts()["dead"] == 3


# --- the due query: against a model, and its plan --------------------------------------------

def _model_due(entries: Sequence[OutboxEntry], now_ms: int, everything: bool) -> list[str]:
    pending = [e for e in entries if e.status == "pending"]
    heads: dict[str, OutboxEntry] = {}
    for e in pending:
        key = e.notification.resource_key
        if key not in heads or e.notification.seq < heads[key].notification.seq:
            heads[key] = e
    blocked = {e.notification.callback_url for e in pending if e.attempts > 0 and e.next_attempt_ms > now_ms}  # type: ignore[operator]
    chosen = [h for h in heads.values()
              if everything or (h.next_attempt_ms <= now_ms and h.notification.callback_url not in blocked)]  # type: ignore[operator]
    chosen.sort(key=lambda e: (e.next_attempt_ms, e.notification.created_ms, e.notification.seq, e.notification.id))
    return [e.notification.id for e in chosen]


@pytest.mark.parametrize("seed", range(8))
def test_due_notifications_match_a_model(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    hooks = [f"https://hook{i}.example/" for i in range(3)]
    notes = []
    for r in range(8):
        key, hook = f"i{r % 3}/r{r}", rng.choice(hooks)
        seqs = rng.sample(range(1_000), rng.randint(0, 12))
        notes += [note(key, s, url=hook, created_ms=rng.randint(0, 2_000)) for s in seqs]
    rng.shuffle(notes)
    for n in notes:
        add(store, n)
    for step in range(60):
        now = 1_000 + step * 500
        entries = store.notifications()
        for everything in (False, True):
            assert due(store, now, everything=everything) == _model_due(entries, now, everything), (seed, step)
        action = rng.random()
        heads = store.due_notifications(now, everything=rng.random() < 0.3)
        if heads and action < 0.4:
            ok(store, rng.choice(heads).notification.id, now_ms=now)
        elif heads and action < 0.8:
            later = rng.choice([None, now, now + rng.randint(1, 5_000)])
            failed(store, rng.choice(heads).notification.id, later, now_ms=now)
        elif entries and action < 0.9:
            store.replay(rng.sample([e.notification.id for e in entries], 2 if len(entries) > 1 else 1),
                         dead=rng.random() < 0.5, now_ms=now)


def _plan(store: Store, everything: bool) -> list[str]:
    sql = outbox._due_sql(everything)  # noqa: SLF001
    return [str(row[3]) for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}", {"now": NOW})]


@pytest.mark.parametrize("everything", [False, True])
def test_the_due_query_uses_the_indexes_and_scans_no_table(store: Store, everything: bool) -> None:
    add(store, *(note(f"i/r{r}", s, url=f"https://h{r % 3}.example/") for r in range(20) for s in range(5)))
    plan = _plan(store, everything)
    scans = [line for line in plan if re.match(r"SCAN (TABLE )?(outbox|o|p|b)\b", line)]
    assert not scans, plan
    text = "\n".join(plan)
    assert "outbox_pending_heads" in text
    assert ("outbox_status_next" in text) is not everything  # only the blocked endpoints need it


def test_replay_works_beside_a_running_writer(tmp_path: Path) -> None:
    """`poller replay` must not need the daemon stopped: a non-exclusive writer, no lock."""
    from state import Notification, open_store

    db = tmp_path / "p.db"
    with open_store(db) as daemon:
        daemon.record_page("i/r", "i", "r", [Notification("n1", "i/r", "i", "r", "http://h/x", 1, b"{}", ("e1",), 1)], [])
        daemon.mark_failed("n1", now_ms=2, status_code=410, error="HTTP 410", duration_ms=1, next_attempt_ms=None)
        with open_store(db, exclusive=False) as side:
            assert side.replay(dead=True, now_ms=3) == ["n1"]
        assert daemon.notification("n1").status == "pending"  # type: ignore[union-attr]
    with pytest.raises(StateError, match="no state file"):
        open_store(tmp_path / "missing.db", exclusive=False)
