"""Persistent state of the poller (SQLite through sqlite-utils). Never imports :mod:`poller`.

    store = open_store(path)                    # the one writer; writer=False to read alongside it
    store.record_page(key, ...)                 # one transaction per page
    store.finish_poll(key, ..., cursor_ms=...)  # the cursor moves only here
    store.pending() / store.body(id)            # what is to deliver (the engine queues it in memory)
    store.record_attempts(results)              # many delivery attempts, one transaction
    store.take_over_checkpoints()               # the daemon: WAL checkpoints from a thread
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
