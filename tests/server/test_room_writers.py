"""Client IDs and their writers at the room: a writer's first update binds its client ID in
the commit that stores it, and another writer's structs of that client are refused with
nothing stored, whether the room learnt the owner from its own writes or from the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map

from syncline.server.errors import ClientIdTaken
from syncline.server.metrics import Metrics
from syncline.server.room import Room
from syncline.server.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

NAME = "acme/cart/writers"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def edit(doc: Doc[Any], key: str, value: int) -> bytes:
    before = doc.get_state()
    doc.get("m", type=Map)[key] = value
    return doc.get_update(before)


def transactions(store: SQLiteStore) -> list[str]:
    """The writer connection's BEGINs from now on."""
    statements: list[str] = []
    assert store._writer is not None
    store._writer.set_trace_callback(statements.append)
    return statements


async def test_a_writers_first_update_and_the_binding_of_its_client_id_share_one_commit(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "s.db") as store:
        room = Room(NAME, store, Metrics(), compaction_updates=10_000)
        await room.load()
        till = Doc(client_id=11)
        statements = transactions(store)
        await room.write(None, edit(till, "tee", 1), writer="sub:till")
        assert statements.count("BEGIN IMMEDIATE") == 1
        await room.write(None, edit(till, "mug", 2), writer="sub:till")
        assert statements.count("BEGIN IMMEDIATE") == 2
        assert await store.bind_clients(NAME, "sub:x", claim=[], check=[11]) == {11: "sub:till"}


async def test_another_writers_structs_of_a_bound_client_are_refused_with_nothing_stored(tmp_path: Path) -> None:
    till = Doc(client_id=11)
    first = edit(till, "tee", 1)
    async with SQLiteStore(tmp_path / "s.db") as store:
        room = Room(NAME, store, Metrics(), compaction_updates=10_000)
        await room.load()
        await room.write(None, first, writer="sub:till")
        with pytest.raises(ClientIdTaken) as known:
            await room.write(None, edit(till, "mug", 2), writer="sub:thief")
        assert known.value.client == 11

        # A room that never saw the binding learns it from the store, with the write refused.
        fresh = Room(NAME, store, Metrics(), compaction_updates=10_000)
        await fresh.load()
        thief = Doc(client_id=11)
        thief.apply_update(first)
        mine = Doc(client_id=22)
        mine.apply_update(first)
        mine_edit = edit(mine, "cap", 4)
        thief.apply_update(mine_edit)
        with pytest.raises(ClientIdTaken) as learnt:
            await fresh.write(None, edit(thief, "sock", 3), writer="sub:thief")
        assert learnt.value.client == 11
        statements = transactions(store)
        with pytest.raises(ClientIdTaken):  # known now: refused without asking the store
            await fresh.write(None, edit(thief, "hat", 5), writer="sub:thief")
        assert statements == []

        assert len((await store.load(NAME)).updates) == 1
        assert fresh.doc.get("m", type=Map).to_py() == {"tee": 1}
        await fresh.write(None, mine_edit, writer="sub:mine")
        assert fresh.doc.get("m", type=Map).to_py() == {"tee": 1, "cap": 4}
