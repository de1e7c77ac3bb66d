"""A thread of its own for one blocking connection: calls run there one at a time, in order.

The SQLite writer commits every group of appends on a blocking ``sqlite3`` connection, so each
commit is handed to a thread and awaited. :class:`CallThread` is that hand-off at its cheapest:
a :class:`queue.SimpleQueue` (C) into one long-lived thread, and one
``call_soon_threadsafe`` back with the outcome. anyio's ``to_thread.run_sync`` does the same
through a capacity limiter, cancel-scope checks and a pool of threads, which in the fan-out
workload cost about twice as much CPU per commit (the hand-off is paid once per group commit).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")

_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class CallThread:
    """One daemon thread running the calls handed to it, one at a time, in the order handed.

    ``await call(func, *args)`` returns what ``func(*args)`` returned in the thread, or raises
    what it raised. A caller cancelled while waiting stops waiting; the call itself still runs
    to its end, and the calls handed after it run after it. :meth:`stop` lets the calls already
    handed finish, then ends the thread.
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._stopped = False

    async def call(self, func: Callable[..., T], *args: Any) -> T:
        if self._stopped:
            raise RuntimeError(f"{self._thread.name} is stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((loop, future, func, args))
        return await future

    async def stop(self) -> None:
        """End the thread once the calls already handed to it have run, and wait for that."""
        if not self._stopped:
            self._stopped = True
            self._calls.put(None)
        await anyio.to_thread.run_sync(self._thread.join)

    def _run(self) -> None:
        calls = self._calls
        while (handed := calls.get()) is not None:
            loop, future, func, args = handed
            try:
                result = func(*args)
            except BaseException as exc:  # handed back to the caller's task, raised there
                _report(loop, _fail, future, exc)
            else:
                _report(loop, _succeed, future, result)


def _report(loop: asyncio.AbstractEventLoop, settle: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(settle, *args)
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting any more


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # a cancelled caller's future is done already
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
