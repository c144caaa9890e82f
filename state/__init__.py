"""Persistent state of the poller (SQLite through sqlite-utils). Never imports :mod:`poller`.

    store = open_store(path)                    # the one writer; writer=False to read alongside it
    store.record_page(key, ...)                 # one transaction per page
    store.finish_poll(key, ..., cursor_ms=...)  # the cursor moves only here
    store.due_notifications(now_ms)             # heads of the per-resource queues, ready to send
    store.mark_delivered(id, ...) / store.mark_failed(id, ...)   # one transaction per attempt
"""

from __future__ import annotations

from state.errors import StateError
from state.store import Store, default_state_path, open_store
from state.types import Attempt, AttemptResult, Notification, OutboxEntry, Pending, ResourceState, SeenVersion

__all__ = [
    "open_store",
    "Store",
    "default_state_path",
    "StateError",
    "ResourceState",
    "SeenVersion",
    "Notification",
    "OutboxEntry",
    "Attempt",
    "AttemptResult",
    "Pending",
]
