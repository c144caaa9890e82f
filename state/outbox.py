"""The outbox: notifications waiting for delivery, and where each one stands.

Writers never commit: they run inside the store's transaction. Claiming and marking
delivery results come with the delivery issue; rows are read through ``_entry`` so those
functions can share it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database

from state.db import require_transaction
from state.types import OUTBOX_STATUSES, Notification, OutboxEntry

__all__ = ["insert_notifications", "list_notifications"]

_COLUMNS = ("id", "resource_key", "instance_id", "resource", "callback_url", "created_ms", "body",
            "event_ids", "seq", "status", "attempts", "next_attempt_ms", "last_error", "delivered_ms")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM outbox"


def insert_notifications(db: Database, notifications: Sequence[Notification]) -> None:
    """Add pending notifications. Ids are stable, so one already present (a page re-run after
    a crash) is left exactly as it is, delivery status included."""
    require_transaction(db)
    rows = [(n.id, n.resource_key, n.instance_id, n.resource, n.callback_url, n.seq, n.created_ms,
             n.body, json.dumps(list(n.event_ids)), n.created_ms) for n in notifications]
    db.conn.executemany(
        """INSERT OR IGNORE INTO outbox (id, resource_key, instance_id, resource, callback_url, seq,
               created_ms, body, event_ids, next_attempt_ms)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )


def list_notifications(db: Database, status: str | None = None, limit: int | None = None) -> list[OutboxEntry]:
    """Notifications, oldest first (``created_ms``, then ``seq``), optionally of one status."""
    if status is not None and status not in OUTBOX_STATUSES:
        raise ValueError(f"unknown outbox status {status!r}; expected one of {', '.join(OUTBOX_STATUSES)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    sql = _SELECT + (" WHERE status = ?" if status is not None else "") + " ORDER BY created_ms, seq, id"
    params: list[Any] = [status] if status is not None else []
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_entry(row) for row in db.execute(sql, params)]


def _entry(row: Sequence[Any]) -> OutboxEntry:
    (id_, resource_key, instance_id, resource, callback_url, created_ms, body, event_ids, seq,
     status, attempts, next_attempt_ms, last_error, delivered_ms) = row
    notification = Notification(id_, resource_key, instance_id, resource, callback_url, created_ms,
                                bytes(body), tuple(json.loads(event_ids)), seq)
    return OutboxEntry(notification, status, attempts, next_attempt_ms, last_error, delivered_ms)
