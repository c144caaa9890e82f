"""Open a state file: writer lock, file mode, PRAGMAs, schema version. Knows no table's meaning."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sqlite_utils import Database

from state import migrations
from state.errors import StateError
from state.lock import WriterLock, create_private

__all__ = ["StateDatabase", "open_db", "require_transaction", "BUSY_TIMEOUT_MS"]

BUSY_TIMEOUT_MS = 5000


class StateDatabase(Database):
    """A sqlite-utils ``Database`` that holds the writer lock until it is closed."""

    lock: WriterLock | None = None
    immutable = False  # read as it is on disk: the folder cannot be written (see open_db)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.lock is not None:
                self.lock.release()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[StateDatabase]:
        """sqlite-utils' ``atomic`` (nested blocks are savepoints), with the write lock taken at
        BEGIN (IMMEDIATE). A deferred transaction that reads first and then writes gets
        SQLITE_BUSY at once, without the busy timeout's wait, when another connection committed
        meanwhile (WAL keeps its snapshot): `poller replay` beside a busy daemon failed that way
        in a third of the tries, and so could the daemon beside it."""
        if self.conn.in_transaction:
            with super().atomic():
                yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.conn.rollback()
            raise
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.rollback()
            raise


def open_db(path: str | os.PathLike[str], *, writer: bool, exclusive: bool = True) -> StateDatabase:
    """Open the state file as its one writer (lock, create, migrate) or as a reader (read-only).

    A reader never creates anything, never takes the lock and, thanks to WAL, never blocks the
    writer. ``exclusive=False`` opens an existing, current file for small writes beside a running
    daemon (``poller replay``): no lock, no creation, no migration; SQLite's own locking and the
    busy timeout serialise the transactions. Raises StateError when the file cannot be used.
    """
    path = Path(path)
    owner = writer and exclusive  # the one writer: creates, locks and migrates
    lock = None
    if owner:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StateError(f"{path}: cannot create its directory: {exc.strerror or exc}") from exc
        # lock before creating, so two daemons racing on a new file cannot both set it up
        lock = WriterLock.acquire(path)
    elif writer:
        WriterLock.check_no_other_path(path)
    try:
        db = StateDatabase(_connect(path, "create" if owner else "rw" if writer else "ro"))
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    db.lock = lock
    try:
        _configure(db, path, owner)
        _check_schema(db, path, owner)
    except sqlite3.OperationalError as exc:
        db.close()
        if not writer and _cannot_write_beside(path):
            return _open_immutable(path)
        raise StateError(f"{path}: cannot use the state file: {exc}") from exc
    except sqlite3.Error as exc:
        db.close()
        raise StateError(f"{path}: cannot use the state file: {exc}") from exc
    except BaseException:
        db.close()
        raise
    return db


def _cannot_write_beside(path: Path) -> bool:
    """Whether a reader failed because it cannot create the WAL's -shm file: a read-only mount,
    or a folder it may not write to. (A WAL reader needs that file, even to only read.)"""
    shm = Path(f"{path}-shm")
    if shm.exists():
        return not os.access(shm, os.W_OK) or _read_only_fs(path)
    return not os.access(path.parent, os.W_OK) or _read_only_fs(path)


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _open_immutable(path: Path) -> StateDatabase:
    """The file as it is on disk, without the WAL (SQLite's immutable mode). Nothing can be writing
    it where nothing can write, so this is the file as the writer last checkpointed it."""
    try:
        db = StateDatabase(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True))
        db.immutable = True
        _check_schema(db, path, False)
    except sqlite3.Error as exc:
        raise StateError(f"{path}: cannot read the state file (its folder is read-only): {exc}") from exc
    return db


def require_transaction(db: Database) -> None:
    """Fail loudly when a write helper is called outside ``db.atomic()``.

    Outside a transaction sqlite-utils would commit each statement on its own, and a page
    would no longer be all-or-nothing.
    """
    if not db.conn.in_transaction:
        raise RuntimeError("state writes must run inside the store's transaction (db.atomic())")


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    """``mode``: "create" (the writer), "rw" (an existing file, beside the writer) or "ro"."""
    try:
        if mode == "create":
            # SQLite would create the file with the umask's mode; create it 0600 first
            os.close(create_private(path))
            return sqlite3.connect(path)
        if not path.is_file():
            raise StateError(f"no state file at {path}")
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True)
    except (OSError, sqlite3.Error) as exc:
        raise StateError(f"{path}: cannot open the state file: {exc}") from exc


def _configure(db: StateDatabase, path: Path, writer: bool) -> None:
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA foreign_keys = ON")
    # NORMAL (in WAL mode): a commit survives any crash of the process at once; a power loss may
    # undo the last commits, but only whole and in order, so the state goes back to an earlier
    # consistent point (outbox, seen versions and cursor together) and the next poll finds those
    # changes again and announces them with the same ids. FULL would fsync every page and every
    # finished poll on the event loop: 12 % of the daemon's time at 10,000 resources.
    db.execute("PRAGMA synchronous = NORMAL")
    if writer:
        _incremental_vacuum(db)
        db.enable_wal()
        if db.journal_mode != "wal":
            raise StateError(f"{path}: cannot switch the state file to WAL mode (got {db.journal_mode!r})")


def _incremental_vacuum(db: StateDatabase) -> None:
    """auto_vacuum = INCREMENTAL, so that retention gives space back (Store.give_space_back). It
    takes effect on a new file at once; a file made before needs one VACUUM, done here once."""
    if int(db.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2:
        return
    db.execute("PRAGMA auto_vacuum = INCREMENTAL")
    if int(db.execute("PRAGMA page_count").fetchone()[0]) > 0:
        db.execute("VACUUM")

def _check_schema(db: StateDatabase, path: Path, writer: bool) -> None:
    applied = migrations.applied_steps(db)
    known = len(migrations.STEPS)
    unknown = [name for name in applied if name not in migrations.STEPS]
    if unknown:
        raise StateError(
            f"{path} has schema version {len(applied)}, newer than this poller's {known} "
            f"(unknown steps: {', '.join(unknown)}); upgrade poller to use it"
        )
    if writer:
        migrations.apply(db)
    elif not applied:
        raise StateError(f"{path} is not an initialised poller state file (schema version 0)")
    elif len(applied) < known:
        raise StateError(
            f"{path} has schema version {len(applied)}, older than this poller's {known}; "
            "open it once as the writer (the daemon or `poller once`) to upgrade it"
        )


def shifted(column: str) -> str:
    """SQL: ``column`` moved by :delta when planned after :after, else due at :after + :delta at
    the latest (the new timeline's now)."""
    return f"CASE WHEN {column} > :after THEN {column} + :delta ELSE min({column}, :after + :delta) END"


def moves(column: str) -> str:
    """SQL: the rows that :func:`shifted` changes."""
    return f"({column} > :after OR {column} > :after + :delta)"
