"""The writer lock: one process at a time may write a state file.

Two exclusive ``flock`` locks: on ``<state file>.lock``, which holds the holder's pid (to name it
in the refusal; never deleted, since deleting lock files races), and on the state file itself,
that is on its inode, whatever path reaches it. The second one is what keeps out a writer
coming through a hard link: SQLite names the WAL after the path, so two writers through two
paths would each have a WAL of their own, and every event would go out twice. (flock and the
fcntl locks SQLite takes on the same file do not interact on Linux.) The kernel drops both
when the holder exits, even on SIGKILL, so a crashed daemon never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from state.errors import StateError

__all__ = ["WriterLock", "create_private"]


def create_private(path: Path, flags: int = os.O_RDWR) -> int:
    """Open ``path``, creating it with mode 0600 (whatever the umask) if it does not exist."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fd = os.open(path, flags)
        if os.fstat(fd).st_mode & 0o077:  # a file made by hand or an old copy: it holds secrets
            with contextlib.suppress(OSError):  # not ours to change (another owner): leave it
                os.fchmod(fd, 0o600)
        return fd
    # the umask can only remove bits; make the mode exactly 0600
    os.fchmod(fd, 0o600)
    return fd


class WriterLock:
    """Held from :meth:`acquire` until :meth:`release` (or the process ends)."""

    def __init__(self, path: Path, fd: int, file_fd: int | None = None) -> None:
        self.path = path
        self._fd: int | None = fd
        self._file_fd = file_fd

    @classmethod
    def acquire(cls, state_path: Path) -> WriterLock:
        # the real path: a symlink to the same file must find the same lock
        lock_path = Path(f"{os.path.realpath(state_path)}.lock")
        try:
            fd = create_private(lock_path)
        except OSError as exc:
            raise StateError(f"{state_path}: cannot create the lock file {lock_path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StateError(f"{state_path}: cannot lock {lock_path}: {exc}") from exc
            raise StateError(f"{state_path} is in use by another poller process (pid {holder}); stop it first "
                             "(poller status, events and replay work beside it)") from None
        try:
            file_fd = _lock_inode(state_path)
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(lock_path, fd, file_fd)

    @staticmethod
    def check_no_other_path(state_path: Path) -> None:
        """For a writer that takes no lock (``poller replay`` beside the daemon): refuse when the
        file's writer holds it through another path (a hard link), whose WAL would not be ours."""
        try:
            fd = os.open(state_path, os.O_RDONLY)
        except OSError:
            return  # opening it for real says what is wrong
        try:
            if os.fstat(fd).st_nlink < 2:
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return  # no writer at all
            except OSError:
                pass
        finally:
            os.close(fd)
        lock_path = Path(f"{os.path.realpath(state_path)}.lock")
        try:
            lock_fd = os.open(lock_path, os.O_RDONLY)
        except OSError:
            lock_fd = None
        if lock_fd is not None:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
            except OSError:
                return  # the writer came through this very path: its WAL is ours
            finally:
                os.close(lock_fd)
        raise StateError(f"{state_path} is being written by a poller process through another path to the same "
                         "file (a hard link); use that path")

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._file_fd is not None:
            file_fd, self._file_fd = self._file_fd, None
            os.close(file_fd)
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock


def _lock_inode(state_path: Path) -> int:
    """An exclusive flock on the state file itself (created 0600 when missing)."""
    try:
        fd = create_private(state_path)
    except OSError as exc:
        raise StateError(f"{state_path}: cannot open the state file: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise StateError(f"{state_path}: cannot lock the state file: {exc}") from exc
        raise StateError(f"{state_path} is in use by another poller process, through another path to the same "
                         "file (a hard link?); stop it first (poller status, events and replay work beside "
                         "it)") from None
    return fd


def _read_pid(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    # the holder writes its pid just after locking: it may not be there yet
    return text if text.isdigit() else "unknown"
