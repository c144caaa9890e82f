"""WAL checkpoints away from the writer's thread.

SQLite copies the WAL back into the database file (a checkpoint) inside whichever commit makes
the WAL pass 1,000 pages; that commit then waits for the copy and its fsync. Under the daemon
that commit runs on the event loop: at 100,000 resources it held the loop 0.27-0.29 s every
half minute (bench/fanout.py). The daemon therefore turns the writer's automatic checkpoints
off and runs PASSIVE checkpoints on a connection of its own in a worker thread (the sqlite3
module lets go of the GIL while SQLite works). A PASSIVE checkpoint never waits for the writer
nor blocks it; the writer's close still checkpoints what is left and removes the WAL.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

__all__ = ["Checkpointer"]


class Checkpointer:
    """PASSIVE checkpoints of one state file; :meth:`run` from any one thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.error: str | None = None  # the last failure (a full disk, say); health has its own

    def run(self) -> int | None:
        """Copy what the WAL holds into the file; the WAL frames still not copied after it (0: all
        of them), or None when it could not run (busy, failing)."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True,
                                                 check_same_thread=False, isolation_level=None)
                    self._conn.execute("PRAGMA busy_timeout = 0")
                busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.error = None
                return None if busy or frames < 0 else int(frames) - int(copied)
            except sqlite3.Error as exc:
                self.error = str(exc)
                return None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
