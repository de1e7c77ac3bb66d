"""A document's clocks after each write equal its decoded state vector, whether predicted or
decoded; a write that only advances known clients is predicted, not decoded."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text, merge_updates

from syncline.engine.structs import read_update
from syncline.engine.sync import decode_state_vector
from syncline.server import clocks as clocks_module
from syncline.server.clocks import Clocks

BIG_IDS = (2**53 - 1, 2**35 + 7, 300, 5)
"""Client IDs of 8, 6, 2 and 1 encoded bytes."""


def edit(doc: Doc[Any], size: int) -> bytes:
    before = doc.get_state()
    doc.get("t", type=Text).insert(0, "x" * size)
    return doc.get_update(before)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(BIG_IDS), st.integers(1, 400), st.booleans()), min_size=1, max_size=60))
def test_clocks_equal_the_decoded_state_vector_after_every_write(script: list[tuple[int, int, bool]]) -> None:
    """Writers with IDs of every encoded length, clocks crossing the 1-, 2- and 3-byte varint
    bounds, and writes delivered again (nothing new to advance)."""
    room = Doc()
    writers: dict[int, Doc[Any]] = {}
    clocks = Clocks()
    sent: list[bytes] = []
    for client, size, again in script:
        if again and sent:
            update = sent[size % len(sent)]
        else:
            writer = writers.setdefault(client, Doc(client_id=client))
            writer.apply_update(room.get_update(writer.get_state()))
            update = edit(writer, size)
            sent.append(update)
        room.apply_update(update)
        state = room.get_state()
        clocks.advance(state, read_update(update).clocks())
        assert clocks.clock == decode_state_vector(state)


def test_writes_of_known_clients_are_predicted_not_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[bytes] = []
    index = clocks_module.index_state_vector

    def counting(state: bytes) -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
        decoded.append(state)
        return index(state)

    monkeypatch.setattr(clocks_module, "index_state_vector", counting)
    room, clocks = Doc(), Clocks()
    writers = [Doc(client_id=client) for client in BIG_IDS]
    for round_ in range(40):
        for writer in writers:
            writer.apply_update(room.get_update(writer.get_state()))
            update = edit(writer, 1 + round_ * 17)
            room.apply_update(update)
            clocks.advance(room.get_state(), read_update(update).clocks())
    assert clocks.clock == decode_state_vector(room.get_state())
    assert len(decoded) == len(BIG_IDS)  # once per new client, 160 writes in all


def test_a_write_the_document_did_not_take_whole_reads_the_document_s_clocks() -> None:
    room, writer, clocks = Doc(), Doc(client_id=300), Clocks()
    first = edit(writer, 3)
    room.apply_update(first)
    clocks.advance(room.get_state(), read_update(first).clocks())
    second = edit(writer, 200)
    # As if Yrs had dropped the second write: the state vector is still the first's.
    clocks.advance(room.get_state(), read_update(second).clocks())
    assert clocks.clock == {300: 3}


def test_clocks_raised_without_a_state_vector_are_checked_against_the_next_one() -> None:
    room, writer, clocks = Doc(), Doc(client_id=5), Clocks()
    update = edit(writer, 4)
    room.apply_update(update)
    clocks.raise_to(5, 4)
    clocks.raise_to(9, 2)  # a clock the document does not hold: the next state vector says so
    later = edit(writer, 1)
    room.apply_update(later)
    clocks.advance(room.get_state(), read_update(later).clocks())
    assert clocks.clock == {5: 5}


def test_a_write_advancing_several_known_clients_at_once_is_predicted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A merged write (an offline client's backlog, say) that moves three clocks at once, two
    of them across a varint length, the other entries shifted by what grew before them."""
    decoded: list[bytes] = []
    index = clocks_module.index_state_vector
    monkeypatch.setattr(clocks_module, "index_state_vector", lambda state: decoded.append(state) or index(state))
    room, clocks = Doc(), Clocks()
    writers = [Doc(client_id=client) for client in BIG_IDS]
    for writer in writers:  # every client known, each clock in one byte
        writer.apply_update(room.get_update(writer.get_state()))
        update = edit(writer, 100)
        room.apply_update(update)
        clocks.advance(room.get_state(), read_update(update).clocks())
    assert len(decoded) == len(BIG_IDS)
    for sizes in ((50, 0, 20000, 3), (1, 2, 3, 4), (0, 400, 0, 0)):
        updates = [edit(writer, size) for writer, size in zip(writers, sizes) if size]
        merged = merge_updates(*updates)
        room.apply_update(merged)
        clocks.advance(room.get_state(), read_update(merged).clocks())
        assert clocks.clock == decode_state_vector(room.get_state())
    assert len(decoded) == len(BIG_IDS)
