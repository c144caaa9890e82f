"""The outbox: notifications waiting for delivery, where each one stands, and its attempts.

Writers never commit: they run inside the store's transaction and refuse otherwise. Every
row is read through ``_entry``.

Delivery keeps each resource's notifications in order by only ever offering the *head* of a
resource's queue (its pending notification with the lowest ``seq``); the next one becomes the
head once the head is delivered or dead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database

from state.db import moves, require_transaction, shifted
from state.types import OUTBOX_STATUSES, Attempt, AttemptResult, Notification, OutboxEntry, Pending

__all__ = [
    "UnknownNotifications",
    "insert_notifications",
    "get_notification",
    "list_notifications",
    "due_notifications",
    "list_attempts",
    "count_by_status",
    "mark_delivered",
    "mark_failed",
    "replay",
    "prune_finished",
    "pending",
    "body",
    "record_results",
    "max_seq",
]

# Well under SQLite's limit on bound parameters (32766 since 3.32, 999 before).
_CHUNK = 500

_COLUMNS = ("id", "resource_key", "instance_id", "resource", "callback_url", "created_ms", "body",
            "event_ids", "seq", "status", "attempts", "next_attempt_ms", "last_error", "delivered_ms")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM outbox"

# The heads of the per-resource queues, in one statement. The recursive CTE walks the distinct
# resource keys by seeking in outbox_resource_seq (one seek per resource, not a scan of every
# row); each key's head is the first pending row in that same index, (seq, rowid) order, so
# no sort is needed. Blocked endpoints come from outbox_status_next: only pending rows waiting
# for a later attempt are visited.
_HEADS = f"""
WITH RECURSIVE keys(k) AS (
    SELECT MIN(resource_key) FROM outbox INDEXED BY outbox_pending_heads WHERE status = 'pending'
    UNION ALL
    SELECT (SELECT MIN(resource_key) FROM outbox INDEXED BY outbox_pending_heads
            WHERE status = 'pending' AND resource_key > keys.k)
    FROM keys WHERE keys.k IS NOT NULL
)
SELECT {', '.join(f'o.{c}' for c in _COLUMNS)}
FROM keys JOIN outbox o ON o.rowid = (
    SELECT p.rowid FROM outbox p INDEXED BY outbox_pending_heads
    WHERE p.resource_key = keys.k AND p.status = 'pending'
    ORDER BY p.seq, p.rowid LIMIT 1
)
"""
_DUE_ONLY = """
WHERE o.next_attempt_ms <= :now AND o.callback_url NOT IN (
    SELECT b.callback_url FROM outbox b
    WHERE b.status = 'pending' AND b.next_attempt_ms > :now AND b.attempts > 0
)
"""
_DUE_ORDER = "ORDER BY o.next_attempt_ms, o.created_ms, o.seq, o.id"


class UnknownNotifications(LookupError):
    """Ids that name no notification in the outbox; the store turns this into a StateError."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = tuple(ids)
        super().__init__(f"unknown notification id{'s' if len(self.ids) != 1 else ''}: {', '.join(self.ids)}")


# --- reads -------------------------------------------------------------------------------------

def get_notification(db: Database, notification_id: str) -> OutboxEntry | None:
    row = db.execute(f"{_SELECT} WHERE id = ?", [notification_id]).fetchone()
    return _entry(row) if row else None


def list_notifications(db: Database, status: str | None = None, limit: int | None = None, *,
                       newest_first: bool = False, instance_id: str | None = None,
                       after: tuple[int, int, str] | None = None) -> list[OutboxEntry]:
    """Notifications, oldest first (``created_ms``, then ``seq``, then ``id``) or newest first,
    optionally of one status and one instance; ``after``: only those past this (created_ms, seq,
    id) in that order (the next page)."""
    if status is not None and status not in OUTBOX_STATUSES:
        raise ValueError(f"unknown outbox status {status!r}; expected one of {', '.join(OUTBOX_STATUSES)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    order = " DESC" if newest_first else ""
    where, params = [], []  # type: ignore[var-annotated]
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if instance_id is not None:
        where.append("instance_id = ?")
        params.append(instance_id)
    if after is not None:
        where.append(f"(created_ms, seq, id) {'<' if newest_first else '>'} (?, ?, ?)")
        params.extend(after)
    sql = (_SELECT + (" WHERE " + " AND ".join(where) if where else "")
           + f" ORDER BY created_ms{order}, seq{order}, id{order}")
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_entry(row) for row in db.execute(sql, params)]


def due_notifications(db: Database, now_ms: int, *, everything: bool = False) -> list[OutboxEntry]:
    """The heads of the per-resource queues that may be sent at ``now_ms``.

    A resource's head is its pending notification with the lowest ``seq`` (ties, which the
    engine never makes, go by insertion order); later ones are never returned. A head is due
    when ``next_attempt_ms <= now_ms`` and its endpoint is not blocked: an endpoint
    (``callback_url``) is blocked while one of its pending notifications has failed
    (``attempts > 0``) and waits for a later attempt. ``everything`` returns every head, due or
    not, blocked or not. Ordered by ``next_attempt_ms``, ``created_ms``, ``seq``, ``id``.
    """
    return [_entry(row) for row in db.execute(_due_sql(everything), {"now": now_ms})]


def list_attempts(db: Database, notification_id: str) -> list[Attempt]:
    """The notification's delivery attempts in the order they were recorded (oldest first)."""
    rows = db.execute("SELECT notification_id, at_ms, status_code, error, duration_ms FROM attempts "
                      "WHERE notification_id = ? ORDER BY id", [notification_id])
    return [Attempt(*row) for row in rows]


def count_by_status(db: Database) -> dict[str, int]:
    """``{"pending": n, "delivered": n, "dead": n}``, zeros included."""
    counts = dict.fromkeys(OUTBOX_STATUSES, 0)
    for status, n in db.execute("SELECT status, count(*) FROM outbox GROUP BY status"):
        counts[status] = int(n)
    return counts


def open_counts_by_resource(db: Database) -> dict[str, dict[str, int]]:
    """``{resource_key: {"pending": n, "dead": n}}`` for the notifications not delivered yet
    (delivered rows pile up and are not counted)."""
    out: dict[str, dict[str, int]] = {}
    rows = db.execute("SELECT resource_key, status, count(*) FROM outbox WHERE status IN ('pending', 'dead') "
                      "GROUP BY resource_key, status")
    for key, status, n in rows:
        out.setdefault(key, {"pending": 0, "dead": 0})[status] = int(n)
    return out


# --- writes (inside the store's transaction) ---------------------------------------------------

def retarget(db: Database, urls: dict[str, str]) -> int:
    """Point the pending notifications of each instance at its current callback URL."""
    require_transaction(db)
    changed = 0
    for instance_id, url in urls.items():
        cursor = db.execute("UPDATE outbox SET callback_url = ? WHERE status = 'pending' AND instance_id = ? "
                            "AND callback_url != ?", [url, instance_id, url])
        changed += cursor.rowcount
    return changed


# Text that json.dumps writes as it is: printable ASCII without '"' and '\\'.
_PLAIN = re.compile(r'[ !#-\[\]-~]*').fullmatch


def _json_list(ids: Sequence[str]) -> str:
    """``json.dumps(list(ids))``; event ids (UUIDs) are plain text, joined without the encoder."""
    if ids and _PLAIN("".join(ids)):
        return '["' + '", "'.join(ids) + '"]'
    return json.dumps(list(ids))


def insert_notifications(db: Database, notifications: Sequence[Notification]) -> None:
    """Add pending notifications. Ids are stable, so one already present (a page re-run after
    a crash) is left exactly as it is, delivery status included."""
    require_transaction(db)
    rows = [(n.id, n.resource_key, n.instance_id, n.resource, n.callback_url, n.seq, n.created_ms,
             n.body, _json_list(n.event_ids), n.created_ms) for n in notifications]
    db.conn.executemany(
        """INSERT OR IGNORE INTO outbox (id, resource_key, instance_id, resource, callback_url, seq,
               created_ms, body, event_ids, next_attempt_ms)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )


def max_seq(db: Database, resource_key: str) -> int | None:
    """The highest notification sequence number of a resource (new ones go after it)."""
    row = db.execute("SELECT max(seq) FROM outbox WHERE resource_key = ?", [resource_key]).fetchone()
    return row[0] if row else None


def mark_delivered(db: Database, notification_id: str, *, now_ms: int, status_code: int, duration_ms: int) -> bool:
    """Record a successful attempt; a pending notification becomes delivered.

    A notification that is not pending (already delivered, or dead) keeps its row as it is;
    the attempt is recorded all the same. Returns whether the outbox row changed.
    """
    require_transaction(db)
    changed = db.execute(
        """UPDATE outbox SET status = 'delivered', delivered_ms = ?, finished_ms = ?, attempts = attempts + 1,
               last_error = NULL, next_attempt_ms = NULL
           WHERE id = ? AND status = 'pending'""",
        [now_ms, now_ms, notification_id],
    ).rowcount == 1
    _add_attempt(db, Attempt(notification_id, now_ms, status_code, None, duration_ms), changed)
    return changed


def mark_failed(db: Database, notification_id: str, *, now_ms: int, status_code: int | None, error: str,
                duration_ms: int, next_attempt_ms: int | None) -> bool:
    """Record a failed attempt. With ``next_attempt_ms`` the notification stays pending until
    then; with ``None`` it becomes a dead letter. Not pending: as in :func:`mark_delivered`."""
    require_transaction(db)
    changed = db.execute(
        """UPDATE outbox SET attempts = attempts + 1, last_error = :error, next_attempt_ms = :next,
               status = CASE WHEN :next IS NULL THEN 'dead' ELSE 'pending' END,
               finished_ms = CASE WHEN :next IS NULL THEN :now ELSE NULL END
           WHERE id = :id AND status = 'pending'""",
        {"error": error, "next": next_attempt_ms, "id": notification_id, "now": now_ms},
    ).rowcount == 1
    _add_attempt(db, Attempt(notification_id, now_ms, status_code, error, duration_ms), changed)
    return changed


def replay(db: Database, ids: Sequence[str], *, dead: bool, now_ms: int, instance_id: str | None = None) -> list[str]:
    """Put notifications back to pending, as new: ``attempts`` 0, due at ``now_ms``, no error.

    ``ids`` may be of any status; ``dead`` adds every dead letter. Their attempt history is
    kept. Returns the ids replayed: those given (in that order, once each), then the dead
    letters not among them (``instance_id``: of that instance only), oldest first. Raises
    :class:`UnknownNotifications`, before changing anything, when an id names no notification.
    """
    require_transaction(db)
    if isinstance(ids, str):
        raise TypeError("replay() takes a sequence of ids, not one string")
    wanted = list(dict.fromkeys(ids))
    missing = _unknown(db, wanted)
    if missing:
        raise UnknownNotifications(missing)
    if dead:
        given = set(wanted)
        mine = " AND instance_id = ?" if instance_id is not None else ""
        wanted += [row[0] for row in db.execute(f"SELECT id FROM outbox WHERE status = 'dead'{mine} "
                                                "ORDER BY created_ms, seq, id",
                                                [instance_id] if instance_id is not None else [])
                   if row[0] not in given]
    db.conn.executemany(
        """UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_ms = ?, last_error = NULL,
               delivered_ms = NULL, finished_ms = NULL
           WHERE id = ?""",
        [(now_ms, notification_id) for notification_id in wanted],
    )
    return wanted


def pending(db: Database, *, after_rowid: int = 0, limit: int = 100_000) -> list[Pending]:
    """Pending notifications written after ``after_rowid``, in the order they were written, without
    their bodies (up to ``limit``)."""
    rows = db.execute("SELECT rowid, id, resource_key, instance_id, callback_url, seq, attempts, next_attempt_ms "
                      "FROM outbox WHERE status = 'pending' AND rowid > ? ORDER BY rowid LIMIT ?",
                      [after_rowid, limit])
    return [Pending(*row) for row in rows]


def body(db: Database, notification_id: str) -> bytes | None:
    """The body of a pending notification (None when it is not pending any more)."""
    row = db.execute("SELECT body FROM outbox WHERE id = ? AND status = 'pending'", [notification_id]).fetchone()
    return bytes(row[0]) if row else None


def record_results(db: Database, results: Sequence[AttemptResult]) -> None:
    """Several attempts' outcomes, in the caller's transaction (see mark_delivered, mark_failed)."""
    for r in results:
        if r.ok:
            mark_delivered(db, r.notification_id, now_ms=r.at_ms, status_code=r.status_code or 0,
                           duration_ms=r.duration_ms)
        else:
            mark_failed(db, r.notification_id, now_ms=r.at_ms, status_code=r.status_code, error=r.error or "",
                        duration_ms=r.duration_ms, next_attempt_ms=r.next_attempt_ms)


def shift_next_attempts(db: Database, delta_ms: int, after_ms: int) -> int:
    """Move the next attempts planned after ``after_ms`` by ``delta_ms`` (a wall-clock jump);
    those already due then stay due (a jump back would put them up to its length ahead). A
    notification never attempted is due as soon as it is written: it is never moved later, only
    made due by the new timeline's now at the latest (one written in the new timeline, between
    the step and its detection, was moved by the jump twice, and held its resource's queue
    for the jump's length)."""
    require_transaction(db)
    return db.execute(f"UPDATE outbox SET next_attempt_ms = CASE WHEN attempts = 0 "
                      f"THEN min(next_attempt_ms, :after + :delta) ELSE {shifted('next_attempt_ms')} END "
                      f"WHERE status = 'pending' AND (CASE WHEN attempts = 0 THEN next_attempt_ms > :after + :delta "
                      f"ELSE {moves('next_attempt_ms')} END)",
                      {"delta": delta_ms, "after": after_ms}).rowcount



def prune_finished(db: Database, *, delivered_before_ms: int, dead_before_ms: int, limit: int) -> int:
    """Delete up to ``limit`` finished notifications (delivered before ``delivered_before_ms``, dead
    before ``dead_before_ms``) with their attempts; the oldest first. Returns how many went."""
    require_transaction(db)
    ids = [row[0] for row in db.execute(
        """SELECT id FROM outbox INDEXED BY outbox_finished
           WHERE status != 'pending' AND finished_ms < :oldest
             AND ((status = 'delivered' AND finished_ms < :delivered) OR (status = 'dead' AND finished_ms < :dead))
           ORDER BY finished_ms LIMIT :limit""",
        {"oldest": max(delivered_before_ms, dead_before_ms), "delivered": delivered_before_ms,
         "dead": dead_before_ms, "limit": limit})]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        db.execute(f"DELETE FROM attempts WHERE notification_id IN ({marks})", chunk)
        db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)
    return len(ids)


# --- helpers -----------------------------------------------------------------------------------

def _due_sql(everything: bool) -> str:
    return _HEADS + ("" if everything else _DUE_ONLY) + _DUE_ORDER


def _add_attempt(db: Database, attempt: Attempt, known: bool) -> None:
    if not known and _unknown(db, [attempt.notification_id]):
        raise UnknownNotifications([attempt.notification_id])
    db.execute("INSERT INTO attempts (notification_id, at_ms, status_code, error, duration_ms) VALUES (?, ?, ?, ?, ?)",
               [attempt.notification_id, attempt.at_ms, attempt.status_code, attempt.error, attempt.duration_ms])


def _unknown(db: Database, ids: Sequence[str]) -> list[str]:
    """Those of ``ids`` that name no notification, in their order."""
    found: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        found.update(row[0] for row in db.execute(f"SELECT id FROM outbox WHERE id IN ({marks})", list(chunk)))
    return [i for i in ids if i not in found]


def _entry(row: Sequence[Any]) -> OutboxEntry:
    (id_, resource_key, instance_id, resource, callback_url, created_ms, body, event_ids, seq,
     status, attempts, next_attempt_ms, last_error, delivered_ms) = row
    notification = Notification(id_, resource_key, instance_id, resource, callback_url, created_ms,
                                bytes(body), tuple(json.loads(event_ids)), seq)
    return OutboxEntry(notification, status, attempts, next_attempt_ms, last_error, delivered_ms)
