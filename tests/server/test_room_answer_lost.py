"""An append whose answer is lost (the link to the store broke during COMMIT) may be stored
although the writer was refused: the room reads the store again before its next write, so
its document and its peers get that update without waiting for a reload or a resend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map

from syncline.engine import apply_update, protocol
from syncline.engine.protocol import Kind
from syncline.server.metrics import Metrics
from syncline.server.room import Room
from syncline.server.store import StoreUnavailable
from syncline.server.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

NAME = "acme/cart/answer-lost"


class AnswerLost:
    """The real store, but the next append commits and then fails as if its answer never came
    back (what a PostgreSQL connection cut during COMMIT looks like to the relay)."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.lose_next = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def append(self, *args: Any, **kwargs: Any) -> int:
        seq = await self._store.append(*args, **kwargs)
        if self.lose_next:
            self.lose_next = False
            raise StoreUnavailable("connection lost during COMMIT")
        return seq


class Recorder:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)


def edit(doc: Doc, key: str, value: int) -> bytes:
    before = doc.get_state()
    doc.get("m", type=Map)[key] = value
    return doc.get_update(before)


async def test_a_write_stored_without_its_answer_reaches_the_room_and_its_peers_before_the_next_write(
    tmp_path: Path,
) -> None:
    async with SQLiteStore(tmp_path / "s.db") as real:
        store = AnswerLost(real)
        room = Room(NAME, store, Metrics(), compaction_updates=10_000)  # type: ignore[arg-type]
        await room.load()
        peer = Recorder()
        room.join(peer)
        till, phone = Doc(client_id=11), Doc(client_id=22)

        store.lose_next = True
        with pytest.raises(StoreUnavailable):
            await room.write(None, edit(till, "tee", 1))
        assert "tee" not in room.doc.get("m", type=Map).to_py()  # refused: not integrated here
        assert len((await real.load(NAME)).updates) == 1  # but stored

        await room.write(None, edit(phone, "mug", 2))
        assert room.doc.get("m", type=Map).to_py() == {"tee": 1, "mug": 2}

        seen = Doc()
        for frame in peer.frames:
            message = protocol.decode(frame)
            if message.kind is Kind.UPDATE:
                apply_update(seen, message.payload)
        assert seen.get("m", type=Map).to_py() == {"tee": 1, "mug": 2}


async def test_while_the_store_stays_away_the_next_write_is_refused_too_and_nothing_is_lost(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "s.db") as real:
        store = AnswerLost(real)
        room = Room(NAME, store, Metrics(), compaction_updates=10_000)  # type: ignore[arg-type]
        await room.load()
        till = Doc(client_id=11)
        store.lose_next = True
        with pytest.raises(StoreUnavailable):
            await room.write(None, edit(till, "tee", 1))

        async def away(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailable("no answer within 5 s")

        store.load = away  # type: ignore[method-assign]
        refused = edit(till, "tee", 2)
        with pytest.raises(StoreUnavailable):
            await room.write(None, refused)
        assert len((await real.load(NAME)).updates) == 1  # refused before its append: not stored
        del store.load  # back: the next write reads the store first
        await room.write(None, refused)  # the writer sends again what was not acknowledged
        await room.write(None, edit(till, "tee", 3))
        assert room.doc.get("m", type=Map).to_py() == {"tee": 3}
        assert len((await real.load(NAME)).updates) == 3


class Published:
    """The fan-out as far as a room's writes use it: what it would publish to the other nodes."""

    shared = True

    def __init__(self) -> None:
        self.updates: list[tuple[int, bytes]] = []

    async def publish_update(self, room: str, seq: int, update: bytes) -> None:
        self.updates.append((seq, update))


async def test_in_a_cluster_the_update_found_again_is_published_to_the_other_nodes(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "s.db") as real:
        store, fanout = AnswerLost(real), Published()
        room = Room(NAME, store, Metrics(), compaction_updates=10_000, fanout=fanout)  # type: ignore[arg-type]
        await room.load()
        till, phone = Doc(client_id=11), Doc(client_id=22)
        store.lose_next = True
        lost = edit(till, "tee", 1)
        with pytest.raises(StoreUnavailable):
            await room.write(None, lost)
        assert fanout.updates == []  # refused: the other nodes were not told

        await room.write(None, edit(phone, "mug", 2))
        stored = [seq for seq, _ in (await real.load(NAME)).updates]
        other_node = Doc()
        for _, update in fanout.updates:
            apply_update(other_node, update)
        assert [seq for seq, _ in fanout.updates] == stored  # the found one, then the new write
        assert other_node.get("m", type=Map).to_py() == {"tee": 1, "mug": 2}
