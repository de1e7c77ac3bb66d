"""The thread that owns a store's blocking write connection: it takes the queued writes itself.

The SQLite writer commits on a blocking ``sqlite3`` connection. :class:`WriterThread` is one
long-lived thread that owns it. The event loop appends each write to a deque (no lock: only
the loop appends, only the thread takes) and wakes the thread, through a
``queue.SimpleQueue``, only if it is idle. The thread takes everything queued, up to
``max_batch``, as one batch and runs ``commit(batch)``. It hands the outcome back with one
``call_soon_threadsafe`` and goes straight on to the writes that queued meanwhile.

No task of the event loop sits between two commits. The loop's work per write is one
deque append, and per batch one callback that settles the waiters. The thread never waits
for the loop to start the next commit, so commits follow each other as closely as the disk
allows.

:meth:`WriterThread.call` runs any other function there (opening and closing the
connection), in order with the writes.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio

T = TypeVar("T")
W = TypeVar("W")


class _Call:
    __slots__ = ("args", "func", "future")

    def __init__(self, future: asyncio.Future[Any], func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.future, self.func, self.args = future, func, args


class WriterThread(Generic[W]):
    """One daemon thread running, in the order given, the calls handed to it and the writes queued
    for it; writes queued back to back (no call between them) run together, ``max_batch`` at most.

    Made on the event loop that hands it writes and calls. ``commit(batch)`` runs in the thread and
    returns the batch's outcome; ``settle(batch, outcome)`` then runs on that loop. If ``commit`` raises, the
    exception is the outcome. ``await call(func, *args)`` returns what ``func(*args)`` returned in
    the thread, or raises what it raised; a caller cancelled while waiting stops waiting, and the
    call still runs to its end. :meth:`stop` lets everything handed before it run, then ends the thread.
    """

    def __init__(self, name: str, *, max_batch: int, commit: Callable[[list[W]], Any],
                 settle: Callable[[list[W], Any], None]) -> None:
        self._max_batch = max_batch
        self._commit = commit
        self._settle = settle
        self._items: deque[W | _Call] = deque()
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._idle = False
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def queue(self, write: W) -> None:
        """Queue ``write`` for the next batch (from the event loop's thread)."""
        self._hand(write)

    @property
    def queued(self) -> int:
        """Writes and calls handed to the thread that it has not taken yet."""
        return len(self._items)

    async def call(self, func: Callable[..., T], *args: Any) -> T:
        future: asyncio.Future[T] = self._loop.create_future()
        self._hand(_Call(future, func, args))
        return await future

    async def stop(self) -> None:
        """End the thread once everything already handed to it has run, and wait for that."""
        self._stopping = True
        self._wake.put(None)
        await anyio.to_thread.run_sync(self._thread.join)

    def _hand(self, item: W | _Call) -> None:
        if self._stopping:
            raise RuntimeError(f"{self._thread.name} is stopped")
        self._items.append(item)
        if self._idle:
            self._idle = False
            self._wake.put(None)

    def _run(self) -> None:
        # The loop appends and the thread takes, each deque operation atomic. The thread says
        # it is idle before it looks at the deque a last time, so a write appended after that
        # look finds it idle and wakes it; a wake-up that finds nothing to do (the write was
        # taken by that last look) is harmless.
        items, wake = self._items, self._wake
        while True:
            if not items:
                self._idle = True
                stopping = self._stopping  # read before the last look: stop() follows every write
                if not items:
                    if stopping:
                        return
                    wake.get()
                self._idle = False
                continue
            first = items.popleft()
            if isinstance(first, _Call):
                self._run_call(first)
                continue
            batch: list[W] = [first]
            while items and len(batch) < self._max_batch and not isinstance(items[0], _Call):
                batch.append(items.popleft())  # type: ignore[arg-type]
            self._run_batch(batch)

    def _run_call(self, call: _Call) -> None:
        try:
            result = call.func(*call.args)
        except BaseException as exc:  # handed back to the caller's task, raised there
            _report(self._loop, _fail, call.future, exc)
        else:
            _report(self._loop, _succeed, call.future, result)

    def _run_batch(self, batch: list[W]) -> None:
        try:
            outcome = self._commit(batch)
        except Exception as exc:  # settled on the loop: every write of the batch fails with it
            outcome = exc
        _report(self._loop, self._settle, batch, outcome)


def _report(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting any more


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # a cancelled caller's future is done already
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
