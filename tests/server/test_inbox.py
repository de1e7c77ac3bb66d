"""The inbox a connection reads its peer's messages from: order, the end, and when reading pauses."""

from __future__ import annotations

import anyio
import pytest

from syncline.server.inbox import PAUSE_BYTES, PAUSE_MESSAGES, Inbox

pytestmark = pytest.mark.anyio


class Reading:
    """The socket's reading as the inbox drives it: paused or not, and how often it changed."""

    def __init__(self) -> None:
        self.paused = False
        self.changes = 0

    def pause(self) -> None:
        assert not self.paused, "paused twice"
        self.paused, self.changes = True, self.changes + 1

    def resume(self) -> None:
        self.paused, self.changes = False, self.changes + 1

    def inbox(self) -> Inbox:
        return Inbox(self.pause, self.resume)


async def test_messages_come_out_in_order_then_the_end_after_every_one_of_them() -> None:
    inbox = Reading().inbox()
    inbox.put(b"one")
    inbox.put("two")
    inbox.end(1000)
    inbox.put(b"after the end")
    inbox.end(1006)
    assert [await inbox.get(), await inbox.get(), await inbox.get(), await inbox.get()] == [b"one", "two", None, None]
    assert inbox.close_code == 1000


async def test_a_waiting_reader_wakes_for_a_message_and_for_the_end() -> None:
    inbox = Reading().inbox()
    got: list[bytes | str | None] = []

    async def read() -> None:
        while (message := await inbox.get()) is not None:
            got.append(message)
        got.append(None)

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await anyio.sleep(0.01)
        inbox.put(b"late")
        await anyio.sleep(0.01)
        assert got == [b"late"]
        inbox.end(1001)
    assert got == [b"late", None]


async def test_reading_pauses_at_the_message_bound_and_resumes_once_drained() -> None:
    reading = Reading()
    inbox = reading.inbox()
    for n in range(PAUSE_MESSAGES - 1):
        inbox.put(bytes([n]))
    assert not reading.paused and reading.changes == 0  # a steady trickle never touches the socket
    inbox.put(b"full")
    inbox.put(b"parsed from the same read")
    assert reading.paused and reading.changes == 1
    for _ in range(PAUSE_MESSAGES):
        await inbox.get()
    assert reading.paused  # one left
    assert await inbox.get() == b"parsed from the same read"
    assert not reading.paused and reading.changes == 2


async def test_reading_pauses_at_the_byte_bound() -> None:
    reading = Reading()
    inbox = reading.inbox()
    inbox.put(bytes(PAUSE_BYTES - 1))
    assert not reading.paused
    inbox.put(b"x")
    assert reading.paused
    await inbox.get()
    await inbox.get()
    assert not reading.paused


async def test_reading_paused_before_the_inbox_opened_resumes_when_what_was_moved_in_is_taken() -> None:
    reading = Reading()
    reading.paused = True
    inbox = reading.inbox()
    inbox.put(b"queued before")
    inbox.reading_paused()
    assert reading.paused
    await inbox.get()
    assert not reading.paused

    empty = Reading()
    empty.paused = True
    empty.inbox().reading_paused()
    assert not empty.paused  # nothing waiting: read on at once
