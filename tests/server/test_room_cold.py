"""A room opened from the store greets its first peers from the stored bytes, before (and
without) building its document, and builds it on first use with the same content."""

from __future__ import annotations

from pathlib import Path

import pytest
from pycrdt import Doc, Map

from syncline.engine import apply_update, encode_diff
from syncline.engine.sync import decode_state_vector
from syncline.engine import protocol
from syncline.server.metrics import Metrics
from syncline.engine.protocol import Kind
from syncline.server.room import Room
from syncline.server.roomdoc import COLD_MERGE_MAX
from syncline.server.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

NAME = "acme/cart/cold"


class Recorder:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)


def edits(count: int, client_id: int = 7) -> tuple[list[bytes], Doc]:
    doc = Doc(client_id=client_id)
    values = doc.get("m", type=Map)
    updates = []
    for n in range(count):
        before = doc.get_state()
        values[f"k{n % 40}"] = n
        updates.append(doc.get_update(before))
    return updates, doc


async def stored_room(tmp_path: Path, updates: list[bytes], snapshot_after: int | None) -> tuple[SQLiteStore, list[int]]:
    store = SQLiteStore(tmp_path / "s.db")
    await store.__aenter__()
    seqs = [await store.append(NAME, update) for update in updates]
    if snapshot_after is not None:
        folded = Doc()
        for update in updates[:snapshot_after]:
            folded.apply_update(update)
        await store.compact(NAME, folded.get_update(), seqs[snapshot_after - 1])
    return store, seqs


@pytest.mark.parametrize("count, snapshot_after", [(300, 250), (40, None), (COLD_MERGE_MAX + 50, None)])
async def test_a_cold_room_greets_from_bytes_and_builds_the_same_document(
    tmp_path: Path, count: int, snapshot_after: int | None
) -> None:
    updates, origin = edits(count)
    store, _ = await stored_room(tmp_path, updates, snapshot_after)
    try:
        room = Room(NAME, store, Metrics(), compaction_updates=10_000)
        await room.load()
        peer = Recorder()
        room.join(peer)
        greeting = protocol.decode(peer.frames[0])
        assert greeting.kind is Kind.STEP1
        assert decode_state_vector(greeting.payload) == decode_state_vector(origin.get_state())
        # A new peer (empty state vector) gets everything; one half way gets the rest.
        full = protocol.decode(room.answer_step1(Doc().get_state()))
        assert full.kind is Kind.STEP2
        fresh: Doc = Doc()
        apply_update(fresh, full.payload)
        assert fresh.get("m", type=Map).to_py() == origin.get("m", type=Map).to_py()
        halfway: Doc = Doc()
        for update in updates[: count // 2]:
            halfway.apply_update(update)
        rest = protocol.decode(room.answer_step1(halfway.get_state()))
        apply_update(halfway, rest.payload)
        assert halfway.get("m", type=Map).to_py() == origin.get("m", type=Map).to_py()
        # Long uncompacted logs are integrated rather than merged (merging is quadratic).
        assert (room._document._loaded is None) is (count - (snapshot_after or 0) + (1 if snapshot_after else 0) > COLD_MERGE_MAX)
        # The first write builds the document from what was loaded, then applies the write.
        before = origin.get_state()
        origin.get("m", type=Map)["after"] = "write"
        await room.write(None, encode_diff(origin, before))
        assert room._document._loaded is None
        assert room.doc.get("m", type=Map).to_py() == origin.get("m", type=Map).to_py()
        assert room.doc.get_state() == origin.get_state()
    finally:
        await store.__aexit__(None, None, None)


async def test_an_empty_room_has_nothing_to_load_and_greets_from_its_empty_document(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    async with store:
        room = Room(NAME, store, Metrics(), compaction_updates=10)
        await room.load()
        assert room._document._loaded is None
        assert protocol.decode(room.answer_step1(Doc().get_state())).payload == Doc().get_update()
