"""The writer connection's own thread: calls run there, one at a time, in the order handed."""

from __future__ import annotations

import asyncio
import threading
import time

import anyio
import pytest

from syncline.server.store.thread import CallThread

pytestmark = pytest.mark.anyio


async def test_calls_run_in_one_other_thread_in_the_order_handed() -> None:
    thread = CallThread("test-calls")
    seen: list[tuple[int, int]] = []

    def record(n: int) -> int:
        time.sleep(0.001 * (5 - n))  # earlier calls take longer: order is the queue's, not the clock's
        seen.append((n, threading.get_ident()))
        return n * n

    try:
        async with anyio.create_task_group() as tg:
            results: dict[int, int] = {}

            async def hand(n: int) -> None:
                results[n] = await thread.call(record, n)

            for n in range(5):
                tg.start_soon(hand, n)
                await anyio.sleep(0)  # hand them in order 0..4
    finally:
        await thread.stop()
    assert [n for n, _ in seen] == [0, 1, 2, 3, 4]
    assert len({ident for _, ident in seen}) == 1
    assert seen[0][1] != threading.get_ident()
    assert results == {n: n * n for n in range(5)}


async def test_what_a_call_raises_is_raised_to_its_caller_and_the_thread_goes_on() -> None:
    thread = CallThread("test-errors")

    def fail() -> None:
        raise ValueError("refused in the thread")

    try:
        with pytest.raises(ValueError, match="refused in the thread"):
            await thread.call(fail)
        assert await thread.call(lambda: "still serving") == "still serving"
    finally:
        await thread.stop()


async def test_a_cancelled_caller_stops_waiting_while_its_call_runs_to_its_end() -> None:
    thread = CallThread("test-cancel")
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def slow() -> str:
        started.set()
        release.wait(5)
        finished.append("slow")
        return "slow"

    try:
        with anyio.move_on_after(0.05) as scope:
            await thread.call(slow)
        assert scope.cancelled_caught and started.is_set() and finished == []
        release.set()
        assert await thread.call(lambda: finished.copy()) == ["slow"]  # ran to its end, then this one
    finally:
        release.set()
        await thread.stop()


async def test_stop_lets_handed_calls_finish_and_refuses_new_ones() -> None:
    thread = CallThread("test-stop")
    done: list[int] = []
    pending = asyncio.ensure_future(thread.call(lambda: (time.sleep(0.05), done.append(1))))
    await anyio.sleep(0)
    await thread.stop()
    assert done == [1]
    await pending
    with pytest.raises(RuntimeError, match="stopped"):
        await thread.call(lambda: None)
