"""Persistent state of the poller (SQLite through sqlite-utils). Never imports :mod:`poller`.

    store = open_store(path)                    # the one writer; writer=False to read alongside it
    store.record_page(key, ...)                 # one transaction per page
    store.finish_poll(key, ..., cursor_ms=...)  # the cursor moves only here
"""

from __future__ import annotations

from state.errors import StateError
from state.store import Store, default_state_path, open_store
from state.types import Notification, OutboxEntry, ResourceState, SeenVersion

__all__ = [
    "open_store",
    "Store",
    "default_state_path",
    "StateError",
    "ResourceState",
    "SeenVersion",
    "Notification",
    "OutboxEntry",
]
