"""What every store shares: one writer task, fed by a bounded queue, committing appends in groups.

A store subclasses :class:`GroupCommitStore` and supplies how to open and close its
resources and how to commit a batch of :class:`Append` requests in one transaction. The base
class owns the lifecycle (``async with store:`` opens once; leaving commits what is queued,
even when the owner is cancelled) and the batching: appends waiting in the queue behind the
first are committed with it, up to ``max_batch``, in arrival order. The writer task's queue
holds appends only; a store's other writes run in transactions of their own.

A store with a blocking driver takes its writes on a thread instead of the writer task: it
overrides :meth:`~GroupCommitStore._start_writer`, :meth:`~GroupCommitStore._stop_writer` and
:meth:`~GroupCommitStore._submit` (the SQLite store, with :class:`~.thread.WriterThread`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .base import Binding, Receipt, StoreUnavailable

logger = logging.getLogger(__name__)


class Pending:
    """One write waiting for the writer task; the caller waits on ``done``.

    A bare asyncio future, not an anyio.Event, and a slotted class, not a dataclass: this
    is the per-update hot path, and both stores' drivers tie them to asyncio anyway.
    """

    __slots__ = ("cause", "done", "error", "result")

    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.result: Any = None
        self.error: Exception | None = None
        self.cause: BaseException | None = None

    def resolve(self, result: Any = None) -> None:
        self.result = result
        if not self.done.done():
            self.done.set_result(None)

    def fail(self, error: Exception, cause: BaseException | None = None) -> None:
        # Each waiter gets its own error instance, raised in its own task.
        self.error = error
        self.cause = cause
        if not self.done.done():
            self.done.set_result(None)

    async def outcome(self) -> Any:
        await self.done  # a cancelled waiter cancels only its own future; resolve() then skips it
        if self.error is not None:
            raise self.error from self.cause
        return self.result


class Append(Pending):
    """Append ``update`` to ``doc``'s log, with its change row's ``action`` and its ``receipt``
    (and, in a store that binds with the append, its ``binding``)."""

    __slots__ = ("action", "binding", "doc", "receipt", "update")

    def __init__(self, *, doc: str, update: bytes, action: str | None = None, receipt: Receipt | None = None,
                 binding: Binding | None = None) -> None:
        super().__init__()
        self.doc = doc
        self.update = update
        self.action = action
        self.receipt = receipt
        self.binding = binding


class GroupCommitStore:
    """The lifecycle and the writer loop; subclasses implement the three hooks below."""

    max_batch: int

    def __init__(self, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.max_batch = max_batch
        self._state = "new"  # new -> opening -> open -> closing -> closed
        self._send: MemoryObjectSendStream[Pending] | None = None
        self._receive: MemoryObjectReceiveStream[Pending] | None = None
        self._task_group: TaskGroup | None = None
        self.commits = 0
        """Append transactions committed."""
        self.committed_updates = 0
        """Updates those transactions committed."""
        self.on_commit: Callable[[int, float], None] | None = None
        """Called with ``(batch_size, seconds)`` after each append transaction; what it raises is logged."""

    # -- hooks ---------------------------------------------------------------------------

    async def _open_resources(self) -> None:
        """Connect and migrate; raise :class:`StoreUnavailable` if that fails."""
        raise NotImplementedError

    async def _close_resources(self) -> None:
        """Release what :meth:`_open_resources` opened (called once, shielded)."""
        raise NotImplementedError

    async def _commit_appends(self, batch: list[Append]) -> None:
        """Commit ``batch`` in one transaction and resolve (or fail) every request of it, in
        arrival order."""
        raise NotImplementedError

    def _unavailable(self, reason: str) -> StoreUnavailable:
        return StoreUnavailable(f"{self!r}: {reason}")

    # -- what every implementation does after its commit ---------------------------------

    def _committed(self, batch: list[Append], seqs: Sequence[int], seconds: float) -> None:
        """``batch`` committed as ``seqs`` (one each, in order): count it, resolve every append,
        tell ``on_commit``."""
        self.commits += 1
        self.committed_updates += len(batch)
        for request, seq in zip(batch, seqs, strict=True):
            request.resolve(seq)
        if self.on_commit is not None:
            try:
                self.on_commit(len(batch), seconds)
            except Exception:
                logger.exception("on_commit hook of %r failed", self)

    def _commit_failed(self, batch: list[Append], exc: Exception) -> None:
        """``batch`` did not commit: fail every append of it with :class:`StoreUnavailable`."""
        logger.warning("commit of %d updates to %r failed: %s", len(batch), self, exc)
        for request in batch:
            request.fail(self._unavailable(f"commit failed: {exc}"), exc)

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError(f"{self!r} can be opened only once")
        self._state = "opening"
        try:
            await self._open_resources()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._release()
            self._state = "closed"
            raise
        try:
            await self._start_writer()
        except BaseException as exc:
            self._state = "closing"
            try:
                await self._stop_writer(type(exc), exc, exc.__traceback__)
            finally:
                with anyio.CancelScope(shield=True):
                    await self._release()
                self._state = "closed"
            raise
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._state = "closing"
        try:
            return await self._stop_writer(exc_type, exc, tb)
        finally:
            with anyio.CancelScope(shield=True):
                await self._release()
            self._state = "closed"

    async def _start_writer(self) -> None:
        """Start taking writes: here, the writer task and its queue (a store may take them otherwise)."""
        self._send, self._receive = anyio.create_memory_object_stream[Pending](4 * self.max_batch)
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        await task_group.start(self._write_loop)

    async def _stop_writer(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        """Stop taking writes once those queued are done (even when this task is being cancelled)."""
        if self._send is not None:
            # The writer drains what is queued, then sees the end of the stream. Its loop is
            # shielded, so the final commits complete even when this task is being cancelled.
            self._send.close()
        if self._task_group is None:
            return None
        return await self._task_group.__aexit__(exc_type, exc, tb)

    async def _release(self) -> None:
        if self._receive is not None:
            self._receive.close()
        if self._send is not None:
            self._send.close()
        await self._close_resources()

    # -- the queue and the writer ----------------------------------------------------------

    async def _submit(self, request: Pending) -> None:
        if self._state != "open" or self._send is None:
            raise self._unavailable(f"store is {self._state}")
        try:
            try:
                self._send.send_nowait(request)
            except anyio.WouldBlock:
                await self._send.send(request)  # the writer is behind: wait for room in its queue
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise self._unavailable("store closed") from exc

    async def _write_loop(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The single writer: group appends into transactions until the stream ends.

        Shielded: it stops only when ``__aexit__`` closes the send side, after the
        queued writes are committed, so cancellation of the owner never drops them.
        """
        assert self._receive is not None
        receive = self._receive
        with anyio.CancelScope(shield=True):
            task_status.started()
            try:
                while True:
                    try:
                        request = await receive.receive()
                    except anyio.EndOfStream:
                        return
                    await self._serve(request, receive)
            finally:
                # Only reached with requests left if the loop itself failed: fail them, never hang them.
                leftovers: list[Pending] = []
                while True:
                    try:
                        leftovers.append(receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                        break
                receive.close()
                for leftover in leftovers:
                    leftover.fail(self._unavailable("writer stopped"))

    async def _serve(self, request: Pending, receive: MemoryObjectReceiveStream[Pending]) -> None:
        """Commit ``request`` with the appends queued right behind it, ``max_batch`` at most."""
        batch: list[Any] = [request]
        while len(batch) < self.max_batch:
            try:
                batch.append(receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
        await self._commit_appends(batch)
