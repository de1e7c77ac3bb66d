"""Several clients on one data directory: they see each other's edits, and one of them syncs.

Two mechanisms, both through the data directory only (no sockets between processes):

* **Seeing each other's edits.** Every edit, local or from the relay, is a row in the
  shared SQLite file's ``updates`` table (:mod:`.local_store`). Each client asks SQLite
  ``PRAGMA data_version`` every ``device_poll_interval`` seconds (a few microseconds: it
  reads the WAL index in shared memory, no disk I/O); when another connection has
  committed, the client reads the rows after its cursor and applies them. Latency is
  about one poll interval (10 ms by default) plus a read.
* **Sending each update once.** Per document, the client that holds an exclusive
  ``flock`` on ``DATA_DIR/locks/<hash>.lock`` is the document's *leader*: it alone
  connects to the relay, sends the whole outbox (every process's edits) and writes what
  the relay sends into the shared file for the others. The kernel releases the lock when
  its holder exits or is killed, so another client takes over within
  ``lease_poll_interval``. Rows leave the outbox by seq when the relay acknowledges
  them, so no row is sent twice while a leader lives; after a leader dies mid-flight its
  successor first compares the outbox with the relay's state vector and drops what the
  relay already holds.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import anyio

from .local_store import LocalStore

LOCK_DIR = "locks"


class DocumentLease:
    """The right to sync one document from this data directory: a non-blocking ``flock``.

    ``flock`` locks belong to an open file description, so two clients in one process
    compete exactly as two processes do.
    """

    def __init__(self, data_dir: Path, doc: str) -> None:
        digest = hashlib.sha256(doc.encode()).hexdigest()[:32]
        self.path = Path(data_dir) / LOCK_DIR / f"{digest}.lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; never blocks."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor releases the flock


async def watch_device(store: LocalStore, interval: float, on_change: Callable[[], None], seen: int) -> None:
    """Call ``on_change`` whenever another connection has committed to ``store``'s file.

    ``seen`` is ``store.data_version()`` read by the caller *before* it loaded anything:
    read here instead, a commit landing between the load and this task's first turn
    would go unnoticed.
    """
    while True:
        await anyio.sleep(interval)
        version = store.data_version()
        if version != seen:
            seen = version
            on_change()
