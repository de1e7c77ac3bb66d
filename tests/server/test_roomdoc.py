"""A room's document keeps its per-client clocks equal to what Yrs integrated, whichever way
it reads them (the state vector for few clients, the integrated updates for many)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Text

from syncline.engine.structs import read_update
from syncline.engine.sync import decode_state_vector
from syncline.server.roomdoc import STATE_VECTOR_CLIENTS_MAX, RoomDocument


def writes(script: list[tuple[int, int]]) -> list[bytes]:
    """One update per (writer, value): writer N edits its own replica, which has seen every
    earlier update, so each update depends only on what came before it."""
    replicas: dict[int, Doc] = {}
    updates: list[bytes] = []
    for writer, value in script:
        doc = replicas.setdefault(writer, Doc(client_id=writer + 1))
        before = doc.get_state()
        doc.get("m", type=Map)[f"k{value % 7}"] = value
        text = doc.get("t", type=Text)
        if value % 3 == 0 and len(text):
            del text[0]
        else:
            text += str(value % 10)
        update = doc.get_update(before)
        updates.append(update)
        for other_writer, other in replicas.items():
            if other_writer != writer:
                other.apply_update(update)
    return updates


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2 * STATE_VECTOR_CLIENTS_MAX), st.integers(0, 99)), min_size=1, max_size=80))
def test_clocks_follow_the_document_whether_few_or_many_clients_wrote(script: list[tuple[int, int]]) -> None:
    document = RoomDocument("acme/cart/clocks")
    reference = Doc()
    for update in writes(script):
        short = document.apply(update, read_update(update))
        reference.apply_update(update)
        assert short == {}
        assert document.clock == decode_state_vector(document.doc.get_state())
        assert document.doc.get_state() == reference.get_state()


def test_past_the_bound_the_clocks_still_advance_by_what_was_integrated() -> None:
    script = [(writer, writer) for writer in range(STATE_VECTOR_CLIENTS_MAX + 5)] * 2
    document, reference = RoomDocument("acme/cart/many"), Doc()
    for update in writes(script):
        assert document.apply(update, read_update(update)) == {}
        reference.apply_update(update)
    assert len(document.clock) == STATE_VECTOR_CLIENTS_MAX + 5
    assert document.clock == decode_state_vector(reference.get_state())
