"""Inbound webhooks in the state file: the instances' URL tokens, the requests as received, and
the ids of the events they announced (DESIGN §10).

Writers never commit: they run inside the store's transaction and refuse otherwise.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Sequence
from itertools import repeat

from sqlite_utils import Database

from state.db import require_transaction
from state.types import InboundRequest, StoredRequest

__all__ = ["tokens", "add_tokens", "claim_events", "claim_new_events", "insert_request", "update_request",
           "list_requests", "prune"]

_COLUMNS = ("id", "instance_id", "received_ms", "method", "content_type", "headers", "body", "sha256", "outcome",
            "status", "reason", "events", "notification_ids")


def tokens(db: Database) -> dict[str, str]:
    """Every stored token, by instance id."""
    return {row[0]: row[1] for row in db.execute("SELECT instance_id, token FROM webhook_tokens")}


def add_tokens(db: Database, new: dict[str, str], now_ms: int) -> None:
    """Store tokens for instances that have none (one already stored is kept)."""
    require_transaction(db)
    db.conn.executemany("INSERT OR IGNORE INTO webhook_tokens (instance_id, token, created_ms) VALUES (?, ?, ?)",
                        [(i, t, now_ms) for i, t in new.items()])


def claim_events(db: Database, instance_id: str, events: Sequence[tuple[int, str]], now_ms: int) -> set[str]:
    """Record ``events`` ((date_ms, event id) pairs) as announced by this instance; returns the ids
    of those that were not already (within the dedupe window, or earlier in ``events``). An
    event's ``date_ms`` must be the same each time it comes (see migration 0007). Event ids are
    UUIDs (``poller.inbound.pushed.event_ids``), kept as their 16 bytes."""
    require_transaction(db)
    conn = db.conn
    undated = _has_undated(db, instance_id)
    new: set[str] = set()
    for date, eid in dict.fromkeys(events):
        key = event_key(eid)
        if undated and conn.execute("SELECT 1 FROM inbound_events WHERE instance_id = ? AND date_ms = ? "
                                    "AND event_id = ?", [instance_id, UNDATED, key]).fetchall():
            continue
        if conn.execute("INSERT INTO inbound_events (instance_id, date_ms, event_id, received_ms) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT DO NOTHING RETURNING 1", [instance_id, date, key, now_ms]).fetchall():
            new.add(eid)
    _touch_dates(db, {(instance_id, date): now_ms for date, eid in events if eid in new})
    return new


def event_key(event_id: str) -> bytes:
    """How an event id (a UUID's text) is kept: its 16 bytes (a third of the table its text made)."""
    try:
        key = bytes.fromhex(event_id.replace("-", ""))
    except ValueError:
        key = b""
    if len(key) != 16:
        raise ValueError(f"event id {event_id[:60]!r} is not a UUID")
    return key


def claim_new_events(db: Database, claims: Sequence[tuple[str, Sequence[int], Sequence[str], int]]) -> bool:
    """:func:`claim_events` for the common case, where every event is new, at about half its cost
    (rows added one by one need no statement journal, and nothing is returned), for several
    requests at once: ``claims`` are (instance id, dates, event ids, now_ms), dates and ids side
    by side. False when not every event is new: then some were not added, and the caller must
    roll the transaction back and use :func:`claim_events`, request by request."""
    require_transaction(db)
    if any(_has_undated(db, instance_id) for instance_id in {c[0] for c in claims}):
        return False
    rows: list[tuple[str, int, bytes, int]] = []
    latest: dict[tuple[str, int], int] = {}
    for instance_id, dates, event_ids, now_ms in claims:
        if len(dates) != len(event_ids):
            raise ValueError(f"{len(event_ids)} event ids and {len(dates)} dates")
        rows.extend(zip(repeat(instance_id), dates, event_keys(event_ids), repeat(now_ms)))
        for date in set(dates):
            if date > 0 and latest.get((instance_id, date), -1) < now_ms:
                latest[instance_id, date] = now_ms
    # in key order, each insert lands beside the one before: a group's events in one sweep (a
    # third cheaper than a batch at a time); an event given twice is ignored the second time,
    # and so counted as known
    rows.sort()
    conn = db.conn
    before = conn.total_changes
    conn.executemany("INSERT OR IGNORE INTO inbound_events (instance_id, date_ms, event_id, received_ms) "
                     "VALUES (?, ?, ?, ?)", rows)
    if conn.total_changes - before != len(rows):
        return False
    _touch_dates(db, latest)
    return True


def event_keys(event_ids: Sequence[str]) -> list[bytes]:
    """:func:`event_key` of each, at once (a batch's thousand ids in one conversion)."""
    joined = "".join(event_ids)
    if len(joined) == 36 * len(event_ids) and joined.count("-") == 4 * len(event_ids):
        try:
            raw = bytes.fromhex(joined.replace("-", ""))  # (32 digits per id: each id's 16 bytes in turn)
        except ValueError:
            pass
        else:
            return [raw[i:i + 16] for i in range(0, len(raw), 16)]
    return [event_key(e) for e in event_ids]  # (names the one that is not a UUID)


def _touch_dates(db: Database, latest: dict[tuple[str, int], int]) -> None:
    """(instance, date) -> the last time new events of that date came: their rows are kept a
    window from then (see :func:`prune`). Undated events (date 0 or less) have none."""
    db.conn.executemany(
        "INSERT INTO inbound_event_dates (instance_id, date_ms, received_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (instance_id, date_ms) DO UPDATE SET received_ms = max(received_ms, excluded.received_ms)",
        [(instance_id, date, at) for (instance_id, date), at in latest.items() if date > 0])


def _has_undated(db: Database, instance_id: str) -> bool:
    known_dated = _ALL_DATED.setdefault(db, set())
    if instance_id in known_dated:
        return False
    if db.execute("SELECT EXISTS (SELECT 1 FROM inbound_events WHERE instance_id = ? AND date_ms = ?)",
                  [instance_id, UNDATED]).fetchone()[0]:
        return True
    known_dated.add(instance_id)  # (no such row is ever added again)
    return False


# per open file, the instances known to have no row from before migration 0007
_ALL_DATED: weakref.WeakKeyDictionary[Database, set[str]] = weakref.WeakKeyDictionary()
UNDATED = -1  # date_ms of the rows kept before migration 0007, when ids were keyed without a date


def insert_request(db: Database, request: InboundRequest, *, outcome: str, status: int, reason: str | None,
                   events: int, notification_ids: Sequence[str]) -> int:
    """Keep a request with what became of it; returns its id."""
    require_transaction(db)
    cursor = db.conn.execute(
        """INSERT INTO inbound_requests (instance_id, received_ms, method, content_type, headers, body, sha256,
               outcome, status, reason, events, notification_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (request.instance_id, request.received_ms, request.method, request.content_type,
         json.dumps([list(h) for h in request.headers]), request.body, hashlib.sha256(request.body).hexdigest(),
         outcome, status, reason, events, json.dumps(list(notification_ids))))
    return int(cursor.lastrowid or 0)


def update_request(db: Database, request_id: int, *, outcome: str, status: int, reason: str | None, events: int,
                   notification_ids: Sequence[str]) -> None:
    """What became of a request normalised again (``poller webhooks replay``): its new events add up."""
    require_transaction(db)
    row = db.execute("SELECT events, notification_ids FROM inbound_requests WHERE id = ?", [request_id]).fetchone()
    if row is None:
        raise KeyError(request_id)
    ids = list(dict.fromkeys(json.loads(row[1]) + list(notification_ids)))
    db.execute("UPDATE inbound_requests SET outcome = ?, status = ?, reason = ?, events = ?, notification_ids = ? "
               "WHERE id = ?", [outcome, status, reason, row[0] + events, json.dumps(ids), request_id])


def list_requests(db: Database, *, ids: Sequence[int] = (), rejected: bool = False, instance_id: str | None = None,
                  limit: int | None = None) -> list[StoredRequest]:
    """Requests newest first; ``ids``: those (in the order given, unknown ones left out)."""
    where, params = [], []
    if ids:
        where.append(f"id IN ({', '.join('?' * len(ids))})")
        params += list(ids)
    if rejected:
        where.append("outcome = 'rejected'")
    if instance_id is not None:
        where.append("instance_id = ?")
        params.append(instance_id)
    sql = f"SELECT {', '.join(_COLUMNS)} FROM inbound_requests"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    rows = [_stored(row) for row in db.execute(sql, params)]
    if ids:
        by_id = {r.id: r for r in rows}
        rows = [by_id[i] for i in dict.fromkeys(ids) if i in by_id]
    return rows


def prune(db: Database, *, requests_before_ms: int, events_before_ms: int, limit: int) -> int:
    """Delete up to ``limit`` requests received before ``requests_before_ms`` and up to ``limit``
    event ids older than ``events_before_ms`` (the dedupe window); returns the rows deleted.

    An event id with a date goes with the other ids of its date, once none of them came within
    the window (a date that keeps getting events is kept whole: the window is a minimum); one
    without a date goes by its own time."""
    require_transaction(db)
    gone = db.execute(
        "DELETE FROM inbound_requests WHERE id IN (SELECT id FROM inbound_requests INDEXED BY inbound_requests_received "
        "WHERE received_ms < ? ORDER BY received_ms LIMIT ?)", [requests_before_ms, limit]).rowcount
    budget = limit
    budget -= db.execute(
        "DELETE FROM inbound_events WHERE (instance_id, date_ms, event_id) IN (SELECT instance_id, date_ms, event_id "
        "FROM inbound_events INDEXED BY inbound_events_undated WHERE date_ms <= 0 AND received_ms < ? "
        "ORDER BY received_ms LIMIT ?)", [events_before_ms, budget]).rowcount
    old_dates = db.execute(
        "SELECT instance_id, date_ms FROM inbound_event_dates INDEXED BY inbound_event_dates_received "
        "WHERE received_ms < ? ORDER BY received_ms LIMIT ?", [events_before_ms, limit]).fetchall()
    for instance_id, date_ms in old_dates:
        if budget <= 0:
            break
        asked = budget
        budget -= db.execute(
            "DELETE FROM inbound_events WHERE (instance_id, date_ms, event_id) IN (SELECT instance_id, date_ms, "
            "event_id FROM inbound_events WHERE instance_id = ? AND date_ms = ? LIMIT ?)",
            [instance_id, date_ms, asked]).rowcount
        if budget > 0:  # (fewer than asked: none of that date is left)
            db.execute("DELETE FROM inbound_event_dates WHERE instance_id = ? AND date_ms = ?", [instance_id, date_ms])
    return gone + limit - budget


def _stored(row: Sequence) -> StoredRequest:
    (rid, instance_id, received_ms, method, content_type, headers, body, sha, outcome, status, reason, events,
     notification_ids) = row
    request = InboundRequest(instance_id, received_ms, method, content_type,
                             tuple((str(a), str(b)) for a, b in json.loads(headers)), bytes(body))
    return StoredRequest(rid, request, sha, outcome, status, reason, events, tuple(json.loads(notification_ids)))
