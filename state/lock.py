"""The writer lock: one process at a time may write a state file.

An exclusive ``flock`` on ``<state file>.lock``. The kernel drops it when the holder exits,
even on SIGKILL, so a crashed daemon never leaves a stale lock behind. The file holds the
holder's pid, to name it in the refusal; it is never deleted (deleting lock files races).
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

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

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
            raise StateError(
                f"{state_path} is in use by another poller process (pid {holder}); stop it first or use --state"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(lock_path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock


def _read_pid(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    # the holder writes its pid just after locking: it may not be there yet
    return text if text.isdigit() else "unknown"
