"""Exclusive advisory locks on a lock file, held for as long as their owner lives.

A lock is ``flock(LOCK_EX | LOCK_NB)`` on an open file. The kernel releases it when
the file is closed or its process dies (SIGKILL included), so a crash never leaves a
stale lock behind. It belongs to one open file description: two opens of the same
file conflict even inside one process. The holder writes its pid into the file once
the lock is taken, for the refusal message of whoever comes next. The file itself is
never deleted: unlinking it would let a newcomer lock a fresh file beside a holder
that still runs.

Advisory: only those who ask for the lock are stopped. The lock file sits beside what
it guards (a data directory, a database file), which stays readable by anyone.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["LockFile", "acquire", "holder_pid"]


class LockFile:
    """A held lock on ``path``; :meth:`release` (or leaving ``with``) lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def __repr__(self) -> str:
        return f"LockFile({str(self.path)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Let the lock go (closing the file releases it); does nothing the second time."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def acquire(path: Path) -> LockFile | None:
    """Take the lock on ``path`` (created, mode 0600, if missing), or return None if it is held.

    Never waits. Raises ``OSError`` if the file cannot be opened or written.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except BaseException:
        os.close(fd)
        raise
    return LockFile(Path(path), fd)


def holder_pid(path: Path) -> int | None:
    """The pid the holder of ``path``'s lock wrote, or None if unreadable (or not yet written)."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None
