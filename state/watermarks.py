"""Rows of ``resources`` (cursor and poll counters) and ``seen`` (versions already judged).

Writers here never commit: they run inside the store's transaction and refuse otherwise.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlite_utils import Database

from state.db import moves, require_transaction, shifted
from state.types import ResourceState, SeenVersion

__all__ = [
    "get_resource",
    "list_resources",
    "ensure_resource",
    "finish_poll",
    "fail_poll",
    "seen_versions",
    "scan_seen",
    "seen_count",
    "add_seen",
    "prune_seen",
    "mark_removed",
    "resume",
    "prune_removed",
]

# Well under SQLite's limit on bound parameters (32766 since 3.32, 999 before).
_CHUNK = 500

_RESOURCE_COLUMNS = ("key", "cursor_ms", "last_poll_ms", "last_success_ms", "consecutive_failures",
                     "next_due_ms", "last_error", "polls", "events", "removed_ms", "seen_from_ms")
_SELECT_RESOURCE = f"SELECT {', '.join(_RESOURCE_COLUMNS)} FROM resources"


def get_resource(db: Database, key: str) -> ResourceState:
    """The resource's state; a fresh ``ResourceState(key)`` when it was never polled."""
    row = db.execute(f"{_SELECT_RESOURCE} WHERE key = ?", [key]).fetchone()
    return ResourceState(*row) if row else ResourceState(key)


def poll_state(db: Database, key: str) -> tuple[ResourceState, int | None]:
    """(the resource's state, the highest ``seq`` of its notifications) in one statement."""
    row = db.execute(f"SELECT (SELECT max(seq) FROM outbox WHERE resource_key = :key), {', '.join(_RESOURCE_COLUMNS)} "
                     "FROM (SELECT 1) LEFT JOIN resources ON key = :key", {"key": key}).fetchone()
    max_seq, values = row[0], row[1:]
    return (ResourceState(*values) if values[0] is not None else ResourceState(key)), max_seq


def list_resources(db: Database) -> list[ResourceState]:
    return [ResourceState(*row) for row in db.execute(f"{_SELECT_RESOURCE} ORDER BY key")]


def ensure_resource(db: Database, key: str, instance_id: str, resource: str) -> None:
    """The resource's row exists, and is not marked removed (it is polled)."""
    require_transaction(db)
    db.execute("INSERT INTO resources (key, instance_id, resource) VALUES (?, ?, ?) "
               "ON CONFLICT (key) DO UPDATE SET removed_ms = NULL WHERE removed_ms IS NOT NULL",
               [key, instance_id, resource])


def mark_removed(db: Database, keys: Iterable[str], now_ms: int) -> int:
    """Mark resources as no longer configured (kept, paused) from ``now_ms``, unless already marked."""
    require_transaction(db)
    return sum(db.execute("UPDATE resources SET removed_ms = ? WHERE key = ? AND removed_ms IS NULL",
                          [now_ms, key]).rowcount for key in keys)


def resume(db: Database, keys: Iterable[str]) -> int:
    """Clear the removed mark of resources that are configured again: they go on where they stopped."""
    require_transaction(db)
    return sum(db.execute("UPDATE resources SET removed_ms = NULL WHERE key = ? AND removed_ms IS NOT NULL",
                          [key]).rowcount for key in keys)


def prune_removed(db: Database, before_ms: int, limit: int) -> list[str]:
    """Forget up to ``limit`` resources removed before ``before_ms``: their row and seen versions
    (their notifications stay until the outbox's own retention). Returns their keys."""
    require_transaction(db)
    keys = [row[0] for row in db.execute(
        "SELECT key FROM resources INDEXED BY resources_removed WHERE removed_ms < ? ORDER BY removed_ms LIMIT ?",
        [before_ms, limit])]
    for key in keys:
        db.execute("DELETE FROM seen WHERE resource_key = ?", [key])
        db.execute("DELETE FROM resources WHERE key = ?", [key])
    return keys


def finish_poll(db: Database, key: str, *, cursor_ms: int | None, now_ms: int, events: int,
                earlier_polls: int = 0, seen_from_ms: int | None = None) -> bool:
    """Record a successful poll (and ``earlier_polls`` quiet ones before it, not written yet), and
    that the resource is polled (not marked removed). The cursor only moves forward; ``None``
    leaves it alone; so does ``seen_from_ms`` (see migration 0009). False when the resource has
    no row yet (then nothing is written: see :func:`ensure_resource`)."""
    require_transaction(db)
    cursor = db.execute(
        """UPDATE resources SET
               cursor_ms = CASE WHEN :cursor IS NULL THEN cursor_ms
                                WHEN cursor_ms IS NULL OR cursor_ms < :cursor THEN :cursor
                                ELSE cursor_ms END,
               seen_from_ms = CASE WHEN :seen_from IS NULL THEN seen_from_ms
                                   WHEN seen_from_ms IS NULL OR seen_from_ms < :seen_from THEN :seen_from
                                   ELSE seen_from_ms END,
               last_poll_ms = :now, last_success_ms = :now, consecutive_failures = 0,
               next_due_ms = NULL, last_error = NULL, polls = polls + 1 + :earlier, events = events + :events,
               removed_ms = NULL
           WHERE key = :key""",
        {"cursor": cursor_ms, "now": now_ms, "events": events, "key": key, "earlier": earlier_polls,
         "seen_from": seen_from_ms},
    )
    return cursor.rowcount > 0


def record_quiet_polls(db: Database, rows: list[tuple[str, int, int]]) -> None:
    """(key, latest poll ms, how many) of successful polls that changed nothing else: their time
    and count, and nothing else (they were the latest polls: a later one, written at once, took
    them along in its own UPDATE)."""
    require_transaction(db)
    db.conn.executemany("UPDATE resources SET last_poll_ms = ?1, last_success_ms = ?1, polls = polls + ?2 "
                        "WHERE key = ?3", [(last, count, key) for key, last, count in rows])


def fail_poll(db: Database, key: str, *, now_ms: int, error: str, next_due_ms: int | None,
              first_cursor_ms: int | None = None, earlier_success_ms: int | None = None,
              earlier_polls: int = 0) -> None:
    """Record a failed poll; the cursor and last success stay as they were, except that a resource
    without a cursor gets ``first_cursor_ms`` when it is given (a baseline that failed part-way),
    and that ``earlier_polls`` quiet polls not written yet, the latest at ``earlier_success_ms``,
    are counted (successes, before this failure)."""
    require_transaction(db)
    db.execute(
        """UPDATE resources SET last_poll_ms = ?, consecutive_failures = consecutive_failures + 1,
               last_error = ?, next_due_ms = ?, polls = polls + 1 + ?, cursor_ms = COALESCE(cursor_ms, ?),
               last_success_ms = COALESCE(?, last_success_ms)
           WHERE key = ?""",
        [now_ms, error, next_due_ms, earlier_polls, first_cursor_ms, earlier_success_ms, key],
    )


def set_first_cursor(db: Database, key: str, cursor_ms: int) -> None:
    """Give a resource that has no cursor yet this one (a resource with one keeps it)."""
    require_transaction(db)
    db.execute("UPDATE resources SET cursor_ms = ? WHERE key = ? AND cursor_ms IS NULL", [cursor_ms, key])


def seen_versions(db: Database, key: str, object_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    """``{object id: {version: stamp ms}}`` for those ids that have any; others are absent.

    One key lookup per id. :func:`scan_seen` is cheaper when the resource holds few rows."""
    wanted = list(dict.fromkeys(object_ids))
    found: dict[str, dict[str, int]] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start:start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        _group_versions(found, db.execute(
            f"SELECT object_id, version, stamp_ms FROM seen WHERE resource_key = ? AND object_id IN ({marks})",
            [key, *chunk],
        ))
    return found


def scan_seen(db: Database, key: str, object_ids: Collection[str], limit: int) -> dict[str, dict[str, int]] | None:
    """What :func:`seen_versions` returns, read in one pass over the resource's rows; ``None``
    (having read ``limit + 1`` rows) when the resource holds more than ``limit``.

    A row read in key order costs about half as much as a key lookup, so with ``limit`` at
    twice the ids asked for, this is the cheaper way whenever it succeeds, and costs about one
    lookup per id when it does not."""
    rows = db.execute("SELECT object_id, version, stamp_ms FROM seen WHERE resource_key = ? LIMIT ?",
                      [key, limit + 1]).fetchall()
    if len(rows) > limit:
        return None
    found: dict[str, dict[str, int]] = {}
    _group_versions(found, [row for row in rows if row[0] in object_ids])
    return found


def _group_versions(found: dict[str, dict[str, int]], rows: Iterable[tuple[str, str, int]]) -> None:
    """Add ``(object id, version, stamp ms)`` rows to ``{object id: {version: stamp ms}}``."""
    get = found.get
    for object_id, version, stamp_ms in rows:
        versions = get(object_id)
        if versions is None:
            found[object_id] = {version: stamp_ms}
        else:
            versions[version] = stamp_ms


def seen_count(db: Database, key: str) -> int:
    return int(db.execute("SELECT count(*) FROM seen WHERE resource_key = ?", [key]).fetchone()[0])


def add_seen(db: Database, key: str, seen: Sequence[SeenVersion | tuple[str, str, int]]) -> None:
    """Remember versions. A version already known keeps its row; its stamp can only move later.

    Re-running a page (after a crash) changes nothing. A later stamp on a known version is how
    detection keeps a content hash that is still being returned from being pruned. A version may
    also be given as the plain tuple ``(object_id, version, stamp_ms)`` (cheaper to build).
    """
    require_transaction(db)
    rows: list[tuple[Any, ...]] = [
        (key, s[0], s[1], s[2]) if type(s) is tuple else (key, s.object_id, s.version, s.stamp_ms)  # type: ignore[union-attr]
        for s in seen
    ]
    db.conn.executemany(
        """INSERT INTO seen (resource_key, object_id, version, stamp_ms) VALUES (?, ?, ?, ?)
           ON CONFLICT (resource_key, object_id, version)
           DO UPDATE SET stamp_ms = excluded.stamp_ms WHERE excluded.stamp_ms > seen.stamp_ms""",
        rows,
    )


def prune_seen(db: Database, key: str, *, before_ms: int | None, hash_before_ms: int | None) -> int:
    """Forget date versions stamped before ``before_ms`` and hash versions before ``hash_before_ms``.

    ``None`` keeps that kind. Returns how many rows went.
    """
    require_transaction(db)
    removed = 0
    for prefix, limit in (("d:*", before_ms), ("h:*", hash_before_ms)):
        if limit is not None:
            cursor = db.execute(
                "DELETE FROM seen WHERE resource_key = ? AND stamp_ms < ? AND version GLOB ?",
                [key, limit, prefix],
            )
            removed += cursor.rowcount
    return removed


def prune_seen_part(db: Database, key: str, *, before_ms: int | None, hash_before_ms: int | None,
                    after: tuple[str, str] | None, rows: int) -> tuple[int, tuple[str, str] | None]:
    """:func:`prune_seen` over the next ``rows`` seen rows of ``key`` in key order, those after
    the (object id, version) ``after`` (``None``: from the first). Returns how many went, and
    the key to go on after (``None``: this part reached the last row)."""
    require_transaction(db)
    since, since_args = ("AND (object_id, version) > (?, ?)", list(after)) if after is not None else ("", [])
    bound = db.execute(f"SELECT object_id, version FROM seen WHERE resource_key = ? {since} "
                       "ORDER BY object_id, version LIMIT 1 OFFSET ?", [key, *since_args, rows - 1]).fetchone()
    until, until_args = ("AND (object_id, version) <= (?, ?)", list(bound)) if bound is not None else ("", [])
    removed = 0
    for prefix, limit in (("d:*", before_ms), ("h:*", hash_before_ms)):
        if limit is not None:
            cursor = db.execute(f"DELETE FROM seen WHERE resource_key = ? AND stamp_ms < ? AND version GLOB ? "
                                f"{since} {until}", [key, limit, prefix, *since_args, *until_args])
            removed += cursor.rowcount
    return removed, (bound[0], bound[1]) if bound is not None else None


def set_cursor(db: Database, key: str, cursor_ms: int | None) -> None:
    """Put the cursor where it is said to be, back included (finish_poll only moves it forward);
    where the remembered versions begin is not known any more."""
    require_transaction(db)
    db.execute("UPDATE resources SET cursor_ms = ?, seen_from_ms = NULL WHERE key = ?", [cursor_ms, key])


def shift_next_due(db: Database, delta_ms: int, after_ms: int) -> int:
    """Move the next due times planned after ``after_ms`` by ``delta_ms`` (a wall-clock jump);
    those already due stay due."""
    require_transaction(db)
    return db.execute(f"UPDATE resources SET next_due_ms = {shifted('next_due_ms')} WHERE {moves('next_due_ms')}",
                      {"delta": delta_ms, "after": after_ms}).rowcount


def set_next_due(db: Database, key: str, next_due_ms: int | None) -> None:
    require_transaction(db)
    db.execute("UPDATE resources SET next_due_ms = ? WHERE key = ?", [next_due_ms, key])


def forget(db: Database, key: str) -> None:
    """Forget where a resource stood (cursor, seen versions); its notifications stay."""
    require_transaction(db)
    db.execute("UPDATE resources SET cursor_ms = NULL, next_due_ms = NULL, consecutive_failures = 0, "
               "seen_from_ms = NULL WHERE key = ?", [key])
    db.execute("DELETE FROM seen WHERE resource_key = ?", [key])
