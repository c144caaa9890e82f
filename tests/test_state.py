"""The state store: file setup, locking, schema versions, and every Store method."""

from __future__ import annotations

import ast
import os
import select
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import state
from state import (Notification, OutboxEntry, ResourceState, SeenVersion, StateError, Store, default_state_path,
                   open_store)
from state import migrations, watermarks

ROOT = Path(__file__).parent.parent
STATE_DIR = ROOT / "state"
KEY = "inst/contacts"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "poller.db"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    with open_store(path) as s:
        yield s


@pytest.fixture
def reader(store: Store) -> Iterator[Store]:
    with open_store(store.path, writer=False) as r:
        yield r


def note(n: int, *, key: str = KEY, created_ms: int = 1_000, seq: int | None = None) -> Notification:
    instance, resource = key.split("/")
    return Notification(id=f"n-{key}-{n}", resource_key=key, instance_id=instance, resource=resource,
                        callback_url="https://hooks.example/in", created_ms=created_ms,
                        body=b'{"n": %d, "bytes": "\x00\xff"}' % n, event_ids=(f"e{n}a", f"e{n}b"),
                        seq=n if seq is None else seq)


def seen(object_id: str, stamp_ms: int, kind: str = "d") -> SeenVersion:
    version = f"d:{stamp_ms}" if kind == "d" else f"h:{object_id}-digest"
    return SeenVersion(object_id, version, stamp_ms)


def record(store: Store, notes: Sequence[Notification] = (), rows: Sequence[SeenVersion] = (), key: str = KEY) -> None:
    instance, resource = key.split("/")
    store.record_page(key, instance, resource, notes, rows)


def finish(store: Store, cursor_ms: int | None, *, now_ms: int = 5_000, events: int = 0,
           prune_before_ms: int | None = None, prune_hash_before_ms: int | None = None, key: str = KEY) -> None:
    instance, resource = key.split("/")
    store.finish_poll(key, instance, resource, cursor_ms=cursor_ms, now_ms=now_ms, events=events,
                      prune_before_ms=prune_before_ms, prune_hash_before_ms=prune_hash_before_ms)


def fail(store: Store, *, now_ms: int = 6_000, error: str = "HTTP 500", next_due_ms: int | None = None) -> None:
    store.fail_poll(KEY, "inst", "contacts", now_ms=now_ms, error=error, next_due_ms=next_due_ms)


def pragma(store: Store, name: str) -> object:
    return store.db.execute(f"PRAGMA {name}").fetchone()[0]


# --- the package's shape ---------------------------------------------------------------------

def _imports(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_module_of_state_imports_poller() -> None:
    modules = sorted(STATE_DIR.glob("*.py"))
    assert len(modules) >= 8
    for module in modules:
        bad = {n for n in _imports(module) if n == "poller" or n.startswith("poller.")}
        assert not bad, f"{module.name} imports {bad}"


def test_importing_state_loads_no_poller_module() -> None:
    code = ("import sys, state, state.db, state.lock, state.migrations, state.outbox, state.store, "
            "state.types, state.watermarks; print(sorted(m for m in sys.modules if m.split('.')[0] == 'poller'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout
    assert out.strip() == "[]"


def test_types_import_no_sqlite() -> None:
    imported = _imports(STATE_DIR / "types.py")
    assert not {n for n in imported if "sqlite" in n or n.startswith("state")}, imported


def test_exports() -> None:
    assert sorted(state.__all__) == sorted(["open_store", "Store", "default_state_path", "StateError",
                                            "ResourceState", "SeenVersion", "Notification", "OutboxEntry",
                                            "Attempt", "AttemptResult", "Pending"])
    for name in state.__all__:
        assert getattr(state, name).__module__.startswith("state.")


def test_poller_errors_does_not_import_state() -> None:
    """poller.errors is imported by the pure modules: it must not drag SQLite in through state."""
    source = (STATE_DIR.parent / "poller" / "errors.py").read_text(encoding="utf-8")
    assert "import state" not in source and "from state" not in source


def test_types_are_frozen() -> None:
    rs = ResourceState("a/b")
    with pytest.raises(AttributeError):
        rs.cursor_ms = 1  # type: ignore[misc]
    assert rs == ResourceState("a/b", None, None, None, 0, None, None, 0, 0)


# --- opening the file ------------------------------------------------------------------------

def test_writer_creates_the_file_private_in_wal_mode(path: Path) -> None:
    old = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        with open_store(path) as s:
            record(s, [note(1)], [seen("a", 1)])
            for suffix in ("", "-wal", "-shm", ".lock"):
                mode = stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode)
                assert mode == 0o600, f"{path}{suffix}: {oct(mode)}"
            assert pragma(s, "journal_mode") == "wal"
            assert pragma(s, "synchronous") == 1  # NORMAL: durable against process crashes (WAL)
            assert pragma(s, "busy_timeout") == 5000
            assert pragma(s, "foreign_keys") == 1
            assert Path(f"{path}.lock").read_text().strip() == str(os.getpid())
            assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700  # the directory it had to create
    finally:
        os.umask(old)


def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError), store.db.atomic():
        store.db.execute("INSERT INTO attempts (notification_id, at_ms) VALUES ('nope', 1)")


def test_schema(store: Store) -> None:
    columns = {t: [c.name for c in store.db[t].columns] for t in ("resources", "seen", "outbox", "attempts")}
    assert columns == {
        "resources": ["key", "instance_id", "resource", "cursor_ms", "last_poll_ms", "last_success_ms",
                      "consecutive_failures", "next_due_ms", "last_error", "polls", "events", "removed_ms",
                      "seen_from_ms"],
        "seen": ["resource_key", "object_id", "version", "stamp_ms"],
        "outbox": ["id", "resource_key", "instance_id", "resource", "callback_url", "seq", "created_ms", "body",
                   "event_ids", "status", "attempts", "next_attempt_ms", "last_error", "delivered_ms",
                   "finished_ms"],
        "attempts": ["id", "notification_id", "at_ms", "status_code", "error", "duration_ms"],
    }
    assert "WITHOUT ROWID" in store.db["seen"].schema
    assert store.db["seen"].pks == ["resource_key", "object_id", "version"]
    assert {tuple(i.columns) for i in store.db["outbox"].indexes} >= {("status", "next_attempt_ms"),
                                                                      ("resource_key", "seq")}
    assert {tuple(i.columns) for i in store.db["seen"].indexes} <= {("resource_key", "object_id", "version")}  # no write-amplifying index


def test_migrations_are_recorded_and_applied_once(path: Path) -> None:
    def applied() -> list[dict]:
        with open_store(path, writer=False) as r:
            return list(r.db.query("SELECT * FROM _sqlite_migrations ORDER BY id"))

    open_store(path).close()
    first = applied()
    assert [(row["migration_set"], row["name"]) for row in first] == [("poller", name) for name in migrations.STEPS]
    open_store(path).close()
    assert applied() == first


def _add_future_step(path: Path) -> None:
    with open_store(path) as s, s.db.atomic():
        s.db.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                     "VALUES ('poller', '0099_from_the_future', '2030-01-01')")


def test_reader_refuses_a_newer_schema(path: Path) -> None:
    _add_future_step(path)
    known = len(migrations.STEPS)
    with pytest.raises(StateError, match=rf"schema version {known + 1}, newer than this poller's {known}.*0099"):
        open_store(path, writer=False)


def test_writer_refuses_a_newer_schema_and_releases_the_lock(path: Path) -> None:
    _add_future_step(path)
    with pytest.raises(StateError, match="newer than this poller's"):
        open_store(path)
    with pytest.raises(StateError, match="newer"):  # not "in use": the failed open let go of the lock
        open_store(path)


def test_reader_refuses_an_older_schema(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(path).close()
    monkeypatch.setattr(migrations, "STEPS", [*migrations.STEPS, "0002_next"])
    known = len(migrations.STEPS) - 1
    with pytest.raises(StateError, match=rf"schema version {known}, older than this poller's {known + 1}"):
        open_store(path, writer=False)


def test_reader_refuses_an_uninitialised_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StateError, match="not an initialised poller state file"):
        open_store(empty, writer=False)


@pytest.mark.parametrize("writer", [True, False])
def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path, writer: bool) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match=f"{junk}.*not a database"):
        open_store(junk, writer=writer)


def test_reader_never_creates_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "poller.db"
    with pytest.raises(StateError, match=f"no state file at {missing}"):
        open_store(missing, writer=False)
    assert not missing.parent.exists()


def test_second_writer_in_the_same_process_is_refused(store: Store) -> None:
    with pytest.raises(StateError, match=rf"{store.path} is in use by another poller process \(pid {os.getpid()}\)"):
        open_store(store.path)


def test_closing_releases_the_lock(path: Path) -> None:
    s = open_store(path)
    s.close()
    s.close()  # twice is harmless
    open_store(path).close()


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output from the subprocess in time"
    return proc.stdout.readline()


HOLD_AS_WRITER = """
import sys
from state import open_store
store = open_store(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin
store.close()
"""


def test_second_writer_process_is_refused_and_readers_still_work(path: Path) -> None:
    with open_store(path) as s:
        record(s, [note(1)], [seen("a", 1)])
    with subprocess.Popen([sys.executable, "-c", HOLD_AS_WRITER, str(path)], cwd=ROOT, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)},
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as holder:
        try:
            assert _readline(holder, 20) == "locked\n"
            with pytest.raises(StateError, match=rf"is in use by another poller process \(pid {holder.pid}\); "
                                                 r"stop it first \(poller status, events and replay work beside it\)"):
                open_store(path)
            with open_store(path, writer=False) as r:
                assert r.seen_versions(KEY, ["a"]) == {"a": {"d:1": 1}}
                assert len(r.notifications()) == 1
        finally:
            holder.kill()
            holder.wait(timeout=10)
    open_store(path).close()  # the kernel dropped the dead holder's lock


def test_a_reader_sees_only_committed_writes_and_does_not_block(store: Store, reader: Store) -> None:
    with store.db.atomic():
        watermarks.add_seen(store.db, KEY, [seen("a", 1)])
        started = time.monotonic()
        assert reader.seen_count(KEY) == 0
        assert time.monotonic() - started < 1  # well under busy_timeout: WAL readers never wait
    assert reader.seen_count(KEY) == 1


def test_a_reader_cannot_write(reader: Store) -> None:
    with pytest.raises(StateError, match="read-only"):
        record(reader, [note(1)])
    with pytest.raises(StateError, match="read-only"):
        finish(reader, 1)
    with pytest.raises(StateError, match="read-only"):
        fail(reader)


def test_a_closed_store_says_so(path: Path) -> None:
    s = open_store(path)
    s.close()
    with pytest.raises(StateError, match="closed"):
        s.resource_state(KEY)
    assert "closed" in repr(s)


def test_write_helpers_refuse_to_run_outside_a_transaction(store: Store) -> None:
    with pytest.raises(RuntimeError, match="inside the store's transaction"):
        watermarks.add_seen(store.db, KEY, [seen("a", 1)])
    assert store.seen_count(KEY) == 0


def test_integrity_check(store: Store, reader: Store) -> None:
    record(store, [note(1)], [seen("a", 1)])
    assert store.integrity_check() == "ok"
    assert reader.integrity_check() == "ok"


# --- resource state --------------------------------------------------------------------------

def test_unknown_resource_has_a_fresh_state(store: Store) -> None:
    assert store.resource_state(KEY) == ResourceState(KEY)
    assert store.resource_states() == []


def test_resource_states_are_listed_by_key(store: Store) -> None:
    record(store, key="b/two")
    record(store, key="a/one")
    assert [s.key for s in store.resource_states()] == ["a/one", "b/two"]
    row = store.db.execute("SELECT instance_id, resource FROM resources WHERE key = 'b/two'").fetchone()
    assert row == ("b", "two")


def test_finish_poll_sets_the_cursor_and_counters(store: Store) -> None:
    finish(store, 1_000, now_ms=2_000, events=7)
    finish(store, 1_500, now_ms=3_000, events=2)
    assert store.resource_state(KEY) == ResourceState(KEY, cursor_ms=1_500, last_poll_ms=3_000, last_success_ms=3_000,
                                                      polls=2, events=9)


@pytest.mark.parametrize(("cursors", "expected"), [
    ([1_000, 500], 1_000),      # never backwards
    ([1_000, None], 1_000),     # None leaves it
    ([None], None),
    ([None, 700, 900], 900),
    ([1_000, 1_000], 1_000),
])
def test_the_cursor_never_moves_backwards(store: Store, cursors: list[int | None], expected: int | None) -> None:
    for cursor in cursors:
        finish(store, cursor)
    assert store.resource_state(KEY).cursor_ms == expected


def test_fail_poll_keeps_the_cursor(store: Store) -> None:
    finish(store, 1_000, now_ms=2_000)
    fail(store, now_ms=3_000, error="HTTP 503 from https://api.example/x: Retry-After", next_due_ms=9_000)
    fail(store, now_ms=4_000, error="timeout", next_due_ms=None)
    assert store.resource_state(KEY) == ResourceState(KEY, cursor_ms=1_000, last_poll_ms=4_000, last_success_ms=2_000,
                                                      consecutive_failures=2, next_due_ms=None, last_error="timeout",
                                                      polls=3)


def test_fail_poll_on_a_new_resource_and_success_resets_failures(store: Store) -> None:
    fail(store, now_ms=3_000, error="boom", next_due_ms=9_000)
    assert store.resource_state(KEY) == ResourceState(KEY, last_poll_ms=3_000, consecutive_failures=1,
                                                      next_due_ms=9_000, last_error="boom", polls=1)
    finish(store, 100, now_ms=4_000)
    assert store.resource_state(KEY) == ResourceState(KEY, cursor_ms=100, last_poll_ms=4_000, last_success_ms=4_000,
                                                      polls=2)


def test_finish_poll_prunes_each_kind_of_version_by_its_own_limit(store: Store) -> None:
    rows = [seen(f"d{t}", t) for t in (10, 20, 30)] + [seen(f"h{t}", t, "h") for t in (10, 20, 30)]
    record(store, rows=rows)
    record(store, rows=rows, key="other/res")
    finish(store, 100, prune_before_ms=20, prune_hash_before_ms=None)
    assert sorted(store.seen_versions(KEY, [r.object_id for r in rows])) == ["d20", "d30", "h10", "h20", "h30"]
    finish(store, 100, prune_before_ms=None, prune_hash_before_ms=30)
    assert sorted(store.seen_versions(KEY, [r.object_id for r in rows])) == ["d20", "d30", "h30"]
    assert store.seen_count("other/res") == 6


def test_pruning_in_parts_forgets_what_one_prune_would(store: Store, tmp_path: Path) -> None:
    # several versions of one id fall across part boundaries; another resource is not touched
    rows = [SeenVersion(f"id{i % 17:02d}", f"d:{t}", t) for i, t in enumerate(range(0, 400, 3))]
    rows += [SeenVersion(f"id{i:02d}", f"h:{i}", i * 10) for i in range(20)]
    record(store, rows=rows)
    record(store, rows=rows, key="other/res")
    with open_store(tmp_path / "whole.db") as whole:
        record(whole, rows=rows)
        finish(whole, 100, prune_before_ms=200, prune_hash_before_ms=95)
        expected = whole.seen_versions(KEY, [r.object_id for r in rows])
    parts, after, removed = 0, None, 0
    while True:
        gone, after = store.prune_seen_part(KEY, before_ms=200, hash_before_ms=95, after=after, rows=7)
        removed, parts = removed + gone, parts + 1
        if after is None:
            break
    assert store.seen_versions(KEY, [r.object_id for r in rows]) == expected
    assert removed == len(rows) - store.seen_count(KEY) and parts >= len(rows) // 7
    assert store.seen_count("other/res") == len(rows)


# --- seen versions ---------------------------------------------------------------------------

def test_seen_versions_by_id(store: Store) -> None:
    record(store, rows=[seen("a", 1), seen("a", 2), seen("b", 3), seen("a", 5, "h")])
    record(store, rows=[seen("a", 9)], key="other/res")
    assert store.seen_versions(KEY, iter(["a", "b", "c", "a"])) == {
        "a": {"d:1": 1, "d:2": 2, "h:a-digest": 5},
        "b": {"d:3": 3},
    }
    assert store.seen_versions(KEY, []) == {}
    assert store.seen_count(KEY) == 4
    assert store.seen_count("nobody/else") == 0


def test_seen_versions_beyond_sqlites_parameter_limit(store: Store) -> None:
    n = 40_000
    conn = store.db.conn
    if hasattr(conn, "setlimit"):  # Python >= 3.11
        # distributions often raise the limit (Debian: 250,000); use stock SQLite's (32766)
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)
        assert n > conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    record(store, rows=[SeenVersion(f"id{i}", f"d:{i}", i) for i in range(n)])
    ids = [f"id{i}" for i in range(n)] + [f"missing{i}" for i in range(100)]
    found = store.seen_versions(KEY, ids)  # read in one pass (the resource holds fewer than 2 x ids)
    assert watermarks.seen_versions(store.db, KEY, ids) == found  # id by id, in chunks of bound parameters
    assert len(found) == n
    assert found["id0"] == {"d:0": 0} and found[f"id{n - 1}"] == {f"d:{n - 1}": n - 1}
    assert store.seen_count(KEY) == n


class _Statements:
    """The SQL a connection runs, to see which way seen versions were read."""

    def __init__(self, store: Store) -> None:
        self.texts: list[str] = []
        store.db.conn.set_trace_callback(self.texts.append)

    def scans(self) -> int:
        return sum("FROM seen" in t and "LIMIT" in t for t in self.texts)

    def lookups(self) -> int:
        return sum("FROM seen" in t and "IN (" in t for t in self.texts)


def test_seen_versions_are_read_in_one_pass_or_id_by_id_with_the_same_answer(store: Store) -> None:
    rows = [seen(f"o{i}", 10 + i) for i in range(60)] + [seen(f"o{i}", 500 + i) for i in range(0, 60, 3)]
    rows += [seen(f"o{i}", 7, "h") for i in range(0, 60, 7)]
    record(store, rows=rows)
    record(store, rows=[seen(f"o{i}", 1) for i in range(300)], key="other/res")  # another resource: never read
    trace = _Statements(store)
    for wanted in ([f"o{i}" for i in range(50)], ["o3", "o4", "zz"], [f"o{i}" for i in range(0, 80, 2)]):
        lookups = trace.lookups()
        got = store.seen_versions(KEY, wanted)
        in_one_pass = trace.lookups() == lookups
        assert in_one_pass is (len(set(wanted)) >= 32 and len(rows) <= 2 * len(set(wanted))), wanted[:3]
        assert got == watermarks.seen_versions(store.db, KEY, wanted)
        assert set(got) <= set(wanted)  # never another id's versions, nor another resource's
        assert all(v for v in got.values())


def test_a_resource_found_larger_is_read_id_by_id_until_rows_are_pruned(store: Store) -> None:
    record(store, rows=[seen(f"o{i}", 100 + i) for i in range(200)])
    trace = _Statements(store)

    def ask(n: int) -> dict[str, dict[str, int]]:
        return store.seen_versions(KEY, [f"o{i}" for i in range(n)])

    assert ask(40)["o1"] == {"d:101": 101}
    assert (trace.scans(), trace.lookups()) == (1, 1)  # a pass tried: 81 rows read, more than 80; then lookups
    ask(35)
    assert (trace.scans(), trace.lookups()) == (1, 2)  # known to hold more than 80: no pass for 70
    ask(45)
    assert (trace.scans(), trace.lookups()) == (2, 3)  # 90 might have fitted; they did not
    record(store, rows=[seen("o1", 900)])  # rows added: the bound still holds
    ask(40)
    assert (trace.scans(), trace.lookups()) == (2, 4)
    assert ask(120)["o1"] == {"d:101": 101, "d:900": 900}
    assert (trace.scans(), trace.lookups()) == (3, 4)  # 240 is more than the bound: tried, and 201 rows fit
    finish(store, 1_000, prune_before_ms=260)  # 41 rows left: o160..o199 and o1's d:900
    assert ask(32) == {"o1": {"d:900": 900}}
    assert (trace.scans(), trace.lookups()) == (4, 4)  # pruning dropped the bound: one pass again, and it fits
    assert store.seen_versions(KEY, ["o199", "o1"]) == {"o199": {"d:299": 299}, "o1": {"d:900": 900}}
    assert (trace.scans(), trace.lookups()) == (4, 5)  # a handful of ids: one lookup query, never a pass
    store.forget_resource(KEY)
    assert ask(40) == {}


def test_a_version_seen_again_keeps_its_row_and_only_a_later_stamp(store: Store) -> None:
    record(store, rows=[SeenVersion("a", "h:x", 100), SeenVersion("b", "d:5", 5)])
    record(store, rows=[SeenVersion("a", "h:x", 300), SeenVersion("b", "d:5", 5)])  # detection's "touched" hash
    record(store, rows=[SeenVersion("a", "h:x", 200)])  # an older stamp never wins
    assert store.seen_versions(KEY, ["a", "b"]) == {"a": {"h:x": 300}, "b": {"d:5": 5}}


# --- pages and the outbox --------------------------------------------------------------------

def test_record_page_stores_notifications_and_seen_versions(store: Store) -> None:
    record(store, [note(1), note(2)], [seen("a", 1)])
    assert store.resource_state(KEY) == ResourceState(KEY)  # the row exists; nothing about polls yet
    assert [s.key for s in store.resource_states()] == [KEY]
    assert store.notifications() == [
        OutboxEntry(note(1), "pending", 0, next_attempt_ms=1_000, last_error=None, delivered_ms=None),
        OutboxEntry(note(2), "pending", 0, next_attempt_ms=1_000, last_error=None, delivered_ms=None),
    ]
    assert store.notifications()[0].notification.body == note(1).body  # bytes, byte for byte
    assert store.seen_versions(KEY, ["a"]) == {"a": {"d:1": 1}}


def test_instants_are_stored_as_integers(store: Store) -> None:
    record(store, [note(1)], [seen("a", 1)])
    finish(store, 1_000)
    fail(store, next_due_ms=9_000)
    row = store.db.execute("SELECT typeof(cursor_ms), typeof(last_poll_ms), typeof(last_success_ms), "
                           "typeof(next_due_ms) FROM resources").fetchone()
    assert row == ("integer",) * 4
    assert store.db.execute("SELECT typeof(created_ms), typeof(next_attempt_ms), typeof(body) FROM outbox").fetchone() \
        == ("integer", "integer", "blob")
    assert store.db.execute("SELECT typeof(stamp_ms) FROM seen").fetchone() == ("integer",)


def test_a_page_re_run_after_a_crash_neither_fails_nor_duplicates(store: Store) -> None:
    record(store, [note(1), note(2)], [seen("a", 1), seen("b", 2)])
    store.db.execute("UPDATE outbox SET status = 'delivered', delivered_ms = 7 WHERE id = ?", [note(1).id])
    record(store, [note(1), note(2)], [seen("a", 1), seen("b", 2)])
    entries = store.notifications()
    assert [(e.notification.id, e.status) for e in entries] == [(note(1).id, "delivered"), (note(2).id, "pending")]
    assert store.seen_count(KEY) == 2


def test_record_page_is_all_or_nothing(store: Store) -> None:
    broken = SeenVersion("b", "d:2", None)  # type: ignore[arg-type]  # violates NOT NULL half-way through
    with pytest.raises(StateError, match=f"{store.path}: cannot record a page of {KEY}: NOT NULL"):
        record(store, [note(1)], [seen("a", 1), broken])
    assert store.notifications() == []
    assert store.seen_count(KEY) == 0
    assert store.resource_states() == []
    record(store, [note(1)], [seen("a", 1)])  # the store is still usable
    assert store.seen_count(KEY) == 1


def test_finish_poll_is_all_or_nothing(store: Store) -> None:
    record(store, rows=[seen("a", 1)])
    with pytest.raises(StateError, match="cannot finish the poll"):
        # the last statement (pruning hashes) fails: the cursor update and the date pruning go too
        finish(store, 1_000, prune_before_ms=10, prune_hash_before_ms=object())  # type: ignore[arg-type]
    assert store.resource_state(KEY) == ResourceState(KEY)
    assert store.seen_count(KEY) == 1


def test_notifications_are_ordered_and_filtered(store: Store) -> None:
    record(store, [note(3, created_ms=2_000, seq=1), note(2, created_ms=1_000, seq=9),
                   note(1, created_ms=1_000, seq=5)])
    record(store, [note(4, key="z/res", created_ms=1_500, seq=0)], key="z/res")
    store.db.execute("UPDATE outbox SET status = 'dead' WHERE id = ?", [note(2).id])
    assert [e.notification.id for e in store.notifications()] == [note(1).id, note(2).id, note(4, key="z/res").id,
                                                                  note(3).id]
    assert [e.notification.id for e in store.notifications("dead")] == [note(2).id]
    assert [e.notification.id for e in store.notifications("pending", limit=2)] == [note(1).id, note(4, key="z/res").id]
    assert store.notifications("delivered") == []
    assert store.notifications(limit=0) == []
    with pytest.raises(ValueError, match="unknown outbox status 'sent'"):
        store.notifications("sent")


# --- where the file lives --------------------------------------------------------------------

@pytest.mark.parametrize(("environ", "configured", "expected"), [
    ({}, None, Path("poller.db")),
    ({"STATE_DIRECTORY": ""}, None, Path("poller.db")),
    ({"STATE_DIRECTORY": "/var/lib/poller"}, None, Path("/var/lib/poller/poller.db")),
    ({"STATE_DIRECTORY": "/var/lib/poller:/var/lib/other:/var/lib/third"}, None, Path("/var/lib/poller/poller.db")),
    ({"STATE_DIRECTORY": ":/var/lib/poller:/var/lib/other"}, None, Path("/var/lib/poller/poller.db")),
    ({"STATE_DIRECTORY": "/var/lib/poller:/var/lib/other"}, "/srv/state.db", Path("/srv/state.db")),
    ({}, "relative/state.db", Path("relative/state.db")),
])
def test_default_state_path(environ: dict[str, str], configured: str | None, expected: Path) -> None:
    assert default_state_path(environ, configured) == expected


def test_an_existing_state_file_with_a_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    path.write_bytes(b"")
    os.chmod(path, 0o644)
    with open_store(path):
        pass
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_a_symlink_to_a_locked_state_file_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    link = tmp_path / "link.db"
    with open_store(path):
        link.symlink_to(path)
        with pytest.raises(StateError, match="in use by another poller process"):
            open_store(link)


def test_a_hard_link_to_a_locked_state_file_is_refused(tmp_path: Path) -> None:
    """Keyed on the path, the lock let `poller once` write through a hard link beside the daemon:
    each path has its own WAL, and every event was delivered twice."""
    path, link = tmp_path / "p.db", tmp_path / "elsewhere" / "link.db"
    link.parent.mkdir()
    with open_store(path) as s:
        record(s, [note(1)], [seen("a", 1)])
        os.link(path, link)
        with pytest.raises(StateError, match=r"link.db is in use by another poller process, through another "
                                             r"path to the same file \(a hard link\?\)"):
            open_store(link)
        with pytest.raises(StateError, match="through another path to the same file"):
            open_store(link, exclusive=False)  # poller replay through the link
        with open_store(path, exclusive=False) as side:  # through the writer's own path: fine
            side.replay([], dead=True, now_ms=1)
    with open_store(link) as s:  # the writer gone, the link may write
        assert len(s.notifications()) == 1


@pytest.mark.parametrize(("planned_ms", "delta_ms", "expected_ms"), [
    (9_000, -86_400_000, 9_000 - 86_400_000),  # planned after the jump's 'now': moved with it
    (9_000, 86_400_000, 9_000 + 86_400_000),
    (4_000, -86_400_000, 5_000 - 86_400_000),  # already due when the clock went back: due now, not in a day
    (4_000, 86_400_000, 4_000),                # already due when it went ahead: still due, untouched
])
def test_shifting_due_times_moves_what_was_planned_and_keeps_what_was_due_due(
        store: Store, planned_ms: int, delta_ms: int, expected_ms: int) -> None:
    fail(store, now_ms=3_000, next_due_ms=planned_ms)
    store.shift_due_times(delta_ms, after_ms=5_000)
    assert store.resource_state(KEY).next_due_ms == expected_ms


def test_checkpoints_taken_over_by_a_checkpointer_run_beside_the_writer(path: Path) -> None:
    with open_store(path) as store:
        checkpointer = store.take_over_checkpoints()
        try:
            wal = Path(f"{path}-wal")
            for i in range(2500):  # far more than SQLite's automatic checkpoint would let the WAL hold
                fail(store, now_ms=i, error="x" * 4000)
            size = wal.stat().st_size
            assert size > 2000 * 4096  # nothing was checkpointed inside a commit (at 1,000 frames)
            assert checkpointer.run() == 0  # every frame copied
            fail(store, now_ms=10_000, error="after")  # the writer goes on (the WAL starts over)
            assert wal.stat().st_size == size
            assert checkpointer.error is None
        finally:
            checkpointer.close()
        assert store.resource_state(KEY).last_error == "after"
    with open_store(path, writer=False) as reader:
        assert reader.resource_state(KEY).last_error == "after"


def test_a_reader_cannot_take_over_checkpoints(store: Store, reader: Store) -> None:
    with pytest.raises(StateError, match="read-only"):
        reader.take_over_checkpoints()


# -- quiet polls: their times and counts written a second later, together --------------------------

def _on_disk(store: Store, key: str = KEY) -> tuple[int | None, int | None, int, int]:
    return store.db.execute("SELECT last_poll_ms, last_success_ms, polls, consecutive_failures FROM resources "
                            "WHERE key = ?", [key]).fetchone()


def test_quiet_polls_wait_in_memory_are_read_as_written_and_go_in_one_transaction(store: Store) -> None:
    finish(store, 1_000, now_ms=5_000)
    store.finish_quiet_poll(KEY, now_ms=6_000)
    store.finish_quiet_poll(KEY, now_ms=7_000)
    assert _on_disk(store) == (5_000, 5_000, 1, 0)  # not written yet
    state_now = store.resource_state(KEY)
    assert (state_now.last_poll_ms, state_now.last_success_ms, state_now.polls) == (7_000, 7_000, 3)
    assert store.poll_state(KEY)[0] == state_now and store.resource_states() == [state_now]
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    assert store.flush_quiet_polls() == 1
    store.db.conn.set_trace_callback(None)
    assert [s.split()[0] for s in statements] == ["BEGIN", "UPDATE", "COMMIT"]
    assert _on_disk(store) == (7_000, 7_000, 3, 0) and store.resource_state(KEY) == state_now
    assert store.flush_quiet_polls() == 0
    assert store.resource_state(KEY).cursor_ms == 1_000  # the cursor is never a quiet poll's


def test_a_poll_written_at_once_takes_the_quiet_ones_before_it_along(store: Store) -> None:
    finish(store, 1_000, now_ms=5_000)
    store.finish_quiet_poll(KEY, now_ms=6_000)
    fail(store, now_ms=8_000, error="HTTP 500", next_due_ms=9_000)  # counts the quiet success before it
    assert _on_disk(store) == (8_000, 6_000, 3, 1) and store.flush_quiet_polls() == 0
    failed = store.resource_state(KEY)
    assert (failed.last_error, failed.next_due_ms) == ("HTTP 500", 9_000)
    store.finish_quiet_poll(KEY, now_ms=9_500)  # (not quiet in the engine, with a failure to clear: as a store, it takes it)
    finish(store, 1_000, now_ms=10_000)
    assert _on_disk(store) == (10_000, 10_000, 5, 0) and store.flush_quiet_polls() == 0


def test_after_the_clock_is_set_back_the_quiet_polls_say_when_they_really_were(store: Store) -> None:
    finish(store, 1_000, now_ms=5_000)
    store.finish_quiet_poll(KEY, now_ms=9_000)
    store.flush_quiet_polls()
    store.finish_quiet_poll(KEY, now_ms=4_000)  # NTP set the clock back: the poll was at 4,000, not "after 9,000"
    assert store.resource_state(KEY).last_poll_ms == 4_000
    store.flush_quiet_polls()
    assert _on_disk(store) == (4_000, 4_000, 3, 0)


def test_quiet_polls_that_cannot_be_written_are_kept_for_the_next_flush_and_written_at_close(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_store(path) as store:
        finish(store, 1_000, now_ms=5_000)
        store.finish_quiet_poll(KEY, now_ms=6_000)

        def full(*args: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        with monkeypatch.context() as patched:
            patched.setattr(watermarks, "record_quiet_polls", full)
            with pytest.raises(StateError, match="cannot record quiet polls: database or disk is full"):
                store.flush_quiet_polls()
            assert store.write_failure is not None
        store.finish_quiet_poll(KEY, now_ms=7_000)
        assert store.resource_state(KEY).polls == 3  # both kept
    with open_store(path) as store:  # written when the first store closed
        assert _on_disk(store) == (7_000, 7_000, 3, 0)


def test_an_api_instance_never_takes_the_id_of_an_instance_the_state_file_still_holds(tmp_path: Path) -> None:
    """A file instance "2" removed from the configuration keeps its cursor and notifications; an
    API instance numbered 2 would have taken them over (their callbacks, their bodies)."""
    with open_store(tmp_path / "s.db") as store:
        store.instance_numbers(["crm"])  # the file's only instance now: number 1
        store.record_page("2/contacts", "2", "contacts", [
            Notification("n1", "2/contacts", "2", "contacts", "http://127.0.0.1:9/h", 1, b"{}", ("e",), 1)], [])
        store.record_page("3/deals", "3", "deals", [], [("d1", "d:1", 1)])  # only state, no notification
        made = [store.create_api_instance(lambda n: ({"name": f"i{n}"}, "t"), file_ids=["crm", "4"], now_ms=1).number
                for _ in range(3)]
    assert made == [5, 6, 7]  # 2 and 3 are kept in the state file, 4 is a file instance's id


def test_a_write_transaction_holds_the_write_lock_from_its_start(tmp_path: Path) -> None:
    """(Deferred, a transaction that read first and wrote after another connection's commit got
    SQLITE_BUSY at once, without the busy timeout's wait: `poller replay --dead` beside a busy
    daemon failed "database is locked" after 0.3 s in a third of the tries.)"""
    with open_store(tmp_path / "s.db") as store:
        other = sqlite3.connect(tmp_path / "s.db", isolation_level=None, timeout=0.05)
        try:
            with store.db.atomic():
                store.db.execute("SELECT count(*) FROM resources").fetchone()  # a snapshot is taken
                with pytest.raises(sqlite3.OperationalError, match="locked"):  # the other writer waits its turn
                    other.execute("INSERT INTO resources (key, instance_id, resource) VALUES ('b/x', 'b', 'x')")
                store.db.execute("INSERT INTO resources (key, instance_id, resource) VALUES ('a/x', 'a', 'x')")
            assert [r[0] for r in store.db.execute("SELECT key FROM resources")] == ["a/x"]
        finally:
            other.close()


@pytest.mark.parametrize("delta_ms", [7_200_000, -7_200_000])
def test_a_notification_never_attempted_is_never_moved_later_by_a_clock_jump(store: Store, delta_ms: int) -> None:
    """(One written in the new timeline, between the wall clock's step and its detection, was
    moved by the jump again: after +2 h and back it was due 2 h ahead, and its resource's
    queue waited behind it.)"""
    written_in_new_timeline = 5_000 + delta_ms
    record(store, [note(1, created_ms=written_in_new_timeline)])
    store.shift_due_times(delta_ms, after_ms=5_000)
    [entry] = store.notifications()
    assert entry.next_attempt_ms == min(written_in_new_timeline, 5_000 + delta_ms)  # due now, in the new timeline
    store.shift_due_times(-delta_ms, after_ms=5_000 + delta_ms)  # and the jump back
    [entry] = store.notifications()
    assert entry.next_attempt_ms <= 5_000  # type: ignore[operator]
