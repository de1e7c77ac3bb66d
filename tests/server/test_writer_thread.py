"""The write connection's own thread: writes queued back to back run as batches, calls between
them in their place, everything in the order handed, in one thread other than the loop's."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from syncline.server.store import thread as thread_module
from syncline.server.store.thread import WriterThread

pytestmark = pytest.mark.anyio


class Log:
    """What the thread ran, in order: batches of writes and calls, each with the thread it ran in."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, Any, int]] = []
        self.settled: list[tuple[list[int], Any, int]] = []
        self.all_settled = anyio.Event()
        self.expect = 0
        self.gate = threading.Event()
        self.gate.set()

    def commit(self, batch: list[int]) -> Any:
        self.gate.wait(5)
        self.ran.append(("batch", list(batch), threading.get_ident()))
        if -1 in batch:
            raise ValueError("refused batch")
        return sum(batch)

    def settle(self, batch: list[int], outcome: Any) -> None:
        self.settled.append((list(batch), outcome, threading.get_ident()))
        if sum(len(b) for b, _, _ in self.settled) >= self.expect:
            self.all_settled.set()

    def thread(self, max_batch: int = 100) -> WriterThread[int]:
        return WriterThread("test-writer", max_batch=max_batch, commit=self.commit, settle=self.settle)

    async def hold(self, thread: WriterThread[int], write: int) -> None:
        """Queue ``write`` and wait until the thread has taken it alone and waits at the gate."""
        self.gate.clear()
        thread.queue(write)
        with anyio.fail_after(5):
            while thread.queued:
                await anyio.sleep(0.001)

    async def release(self, expect: int) -> None:
        """Open the gate and wait until ``expect`` writes in all are settled on the loop."""
        self.expect = expect
        self.gate.set()
        with anyio.fail_after(5):
            await self.all_settled.wait()


async def test_writes_queued_while_the_thread_commits_are_taken_together_up_to_max_batch() -> None:
    log = Log()
    thread = log.thread(max_batch=3)
    try:
        await log.hold(thread, 1)
        for n in range(2, 9):
            thread.queue(n)
        assert thread.queued == 7
        await log.release(8)
    finally:
        await thread.stop()
    assert [batch for _, batch, _ in log.ran] == [[1], [2, 3, 4], [5, 6, 7], [8]]
    assert [(batch, outcome) for batch, outcome, _ in log.settled] == [
        ([1], 1), ([2, 3, 4], 9), ([5, 6, 7], 18), ([8], 8)]
    loop_thread = threading.get_ident()
    assert {ident for _, _, ident in log.settled} == {loop_thread}  # settled on the event loop
    assert len({ident for _, _, ident in log.ran}) == 1 and log.ran[0][2] != loop_thread


async def test_a_call_runs_after_the_writes_queued_before_it_and_splits_their_batches() -> None:
    log = Log()
    thread = log.thread()
    try:
        await log.hold(thread, 1)
        thread.queue(2)
        thread.queue(3)
        results: list[Any] = []

        async def call() -> None:
            results.append(await thread.call(lambda: [entry[1] for entry in log.ran]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            thread.queue(4)
            await log.release(4)
    finally:
        await thread.stop()
    assert results == [[[1], [2, 3]]]  # the call saw both batches before it, not the one after
    assert [batch for _, batch, _ in log.ran] == [[1], [2, 3], [4]]


async def test_what_a_commit_raises_is_its_batch_s_outcome_and_the_thread_goes_on() -> None:
    log = Log()
    thread = log.thread()
    try:
        log.expect = 2
        thread.queue(-1)
        with anyio.fail_after(5):
            while len(log.settled) < 1:
                await anyio.sleep(0.001)
        thread.queue(5)
        with anyio.fail_after(5):
            await log.all_settled.wait()
    finally:
        await thread.stop()
    (failed, error, _), (ok, total, _) = log.settled
    assert failed == [-1] and isinstance(error, ValueError) and str(error) == "refused batch"
    assert (ok, total) == ([5], 5)


async def test_a_call_s_error_is_raised_to_its_caller_and_a_cancelled_caller_leaves_it_running() -> None:
    log = Log()
    thread = log.thread()
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def fail() -> None:
        raise KeyError("refused in the thread")

    def slow() -> None:
        started.set()
        release.wait(5)
        finished.append("slow")

    try:
        with pytest.raises(KeyError, match="refused in the thread"):
            await thread.call(fail)
        with anyio.move_on_after(0.05) as scope:
            await thread.call(slow)
        assert scope.cancelled_caught and started.is_set() and finished == []
        release.set()
        assert await thread.call(lambda: finished.copy()) == ["slow"]
    finally:
        release.set()
        await thread.stop()


async def test_stop_runs_what_was_handed_first_and_refuses_the_rest() -> None:
    log = Log()
    thread = log.thread()
    log.expect = 1
    thread.queue(7)
    await thread.call(time.sleep, 0.02)
    await thread.stop()
    with anyio.fail_after(5):
        await log.all_settled.wait()
    assert [batch for _, batch, _ in log.ran] == [[7]]
    with pytest.raises(RuntimeError, match="stopped"):
        thread.queue(8)
    with pytest.raises(RuntimeError, match="stopped"):
        await thread.call(time.sleep, 0)


class _LateDeque(deque):  # type: ignore[type-arg]
    """A deque that, when the writer thread finds it empty on its way to idle, can have the loop
    append a write right after that look and before the thread acts on it: the moment a lost
    wake-up would happen in. ``late`` holds, per such look, the append to make or None."""

    loop: asyncio.AbstractEventLoop
    late: list[Callable[[], None] | None] = []
    batching = False

    def popleft(self) -> Any:
        self.batching = True  # the next look is the thread's, for more of the same batch
        return super().popleft()

    def __len__(self) -> int:
        n = super().__len__()
        if threading.current_thread().name != "test-writer":
            return n
        if self.batching:
            self.batching = False
        elif n == 0 and self.late:
            append = self.late.pop(0)
            if append is not None:
                appended = threading.Event()
                self.loop.call_soon_threadsafe(lambda: (append(), appended.set()))
                assert appended.wait(5)
        return n


async def test_a_write_handed_just_after_the_thread_found_nothing_still_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # The loop hands writes without a lock and wakes the thread only when it says it is idle.
    # Here the loop hands a write right after the thread's looks at an empty deque, before it
    # acts on what it saw: at its first look, and (None skips a look) at its last before the
    # wait. Each write must run, none waiting for a later one.
    monkeypatch.setattr(thread_module, "deque", _LateDeque)
    _LateDeque.loop = asyncio.get_running_loop()
    log = Log()
    thread = log.thread()
    try:
        log.expect = 1
        thread.queue(0)
        with anyio.fail_after(5):
            await log.all_settled.wait()
        _LateDeque.late = [lambda: thread.queue(2), lambda: thread.queue(3), None, lambda: thread.queue(4),
                           None, lambda: thread.queue(5), lambda: thread.queue(6)]
        log.expect = 7
        log.all_settled = anyio.Event()
        thread.queue(1)
        with anyio.fail_after(5):
            await log.all_settled.wait()
        assert _LateDeque.late == []
    finally:
        _LateDeque.late = []
        await thread.stop()
    assert [batch for _, batch, _ in log.ran] == [[n] for n in range(7)]


async def test_stop_right_behind_a_burst_runs_every_write_of_it() -> None:
    log = Log()
    thread = log.thread(max_batch=7)
    log.expect = 50
    for n in range(50):
        thread.queue(n)
    await thread.stop()
    with anyio.fail_after(5):
        await log.all_settled.wait()
    assert [n for _, batch, _ in log.ran for n in batch] == list(range(50))
