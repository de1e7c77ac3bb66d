"""RoomAwareness on its own: owners, a connection's share, the room's bound, frames under a size.

And through a ``Room`` (in process, on a real SQLite store): states from another cluster node
count against the room's bound and go when that node is forgotten.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from syncline.engine import protocol
from syncline.server.awareness import AwarenessLimits, RoomAwareness, awareness_frames, entry_bytes
from syncline.server.errors import AwarenessOverShare
from syncline.server.metrics import Metrics
from syncline.engine.protocol import AwarenessEntry, Kind
from syncline.server.room import Room
from syncline.server.store.sqlite import SQLiteStore


class Peer:
    """A local connection: any hashable object that is not a ``str``."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)

    def states(self) -> dict[int, str]:
        states: dict[int, str] = {}
        for frame in self.frames:
            message = protocol.decode(frame)
            if message.kind is Kind.AWARENESS:
                for entry in protocol.decode_awareness(message.payload):
                    if entry.state == "null":
                        states.pop(entry.client_id, None)
                    else:
                        states[entry.client_id] = entry.state
        return states


def state(name: str, pad: int = 0) -> str:
    return json.dumps({"user": name, "pad": "p" * pad})


def entries(first: int, count: int, *, clock: int = 1, pad: int = 0) -> list[AwarenessEntry]:
    return [AwarenessEntry(client, clock, state(f"c{client}", pad)) for client in range(first, first + count)]


def test_a_connection_may_hold_its_share_and_an_update_beyond_it_is_refused_whole() -> None:
    awareness = RoomAwareness(AwarenessLimits(connection_states=4))
    ann, bob = Peer(), Peer()
    assert len(awareness.remember(ann, entries(1, 3)).news) == 3
    before = awareness.entries()
    with pytest.raises(AwarenessOverShare) as refused:
        awareness.remember(ann, [AwarenessEntry(1, 2, state("new")), *entries(10, 2)])  # 5 states
    assert (refused.value.states, refused.value.max_states) == (5, 4)
    assert set(awareness.entries()) == set(before), "nothing of the refused update was kept"
    assert awareness.owned(ann) == (3, sum(map(entry_bytes, before)))
    # Another connection has a share of its own; updating, removing and re-adding stay within one's share.
    assert len(awareness.remember(bob, entries(20, 4)).news) == 4
    awareness.remember(ann, [AwarenessEntry(1, 2, "null"), *entries(4, 2)])
    assert awareness.owned(ann)[0] == 4 and len(awareness) == 8


def test_a_connections_share_is_also_counted_in_bytes() -> None:
    limits = AwarenessLimits(connection_bytes=10_000)
    awareness = RoomAwareness(limits)
    ann = Peer()
    awareness.remember(ann, entries(1, 1, pad=6_000))
    with pytest.raises(AwarenessOverShare):
        awareness.remember(ann, entries(2, 1, pad=6_000))
    with pytest.raises(AwarenessOverShare):  # growing one's own state counts too
        awareness.remember(ann, entries(1, 1, clock=2, pad=12_000))
    awareness.remember(ann, entries(1, 1, clock=3, pad=100))  # shrinking frees the share
    awareness.remember(ann, entries(2, 1, pad=6_000))
    assert awareness.owned(ann)[0] == 2


def test_echoes_are_not_news_and_are_not_charged_to_the_echoing_connection() -> None:
    awareness = RoomAwareness(AwarenessLimits(connection_states=1))
    ann, bob = Peer(), Peer()
    awareness.remember(ann, entries(1, 1))
    echoed = awareness.remember(bob, entries(1, 1))  # y-websocket peers echo others' states back
    assert echoed.news == [] and echoed.kept == entries(1, 1)
    assert awareness.owned(bob) == (0, 0)
    awareness.remember(bob, entries(2, 1))  # so bob still has room for its own client


def test_the_room_bound_drops_new_states_and_keeps_the_rest() -> None:
    awareness = RoomAwareness(AwarenessLimits(room_states=5, room_bytes=1_000_000))
    peers = [Peer() for _ in range(3)]
    awareness.remember(peers[0], entries(1, 3))
    result = awareness.remember(peers[1], entries(10, 3))
    assert (len(result.news), result.dropped) == (2, 1)
    assert [e.client_id for e in result.kept] == [10, 11]
    assert len(awareness) == 5
    # A known client may still update its state when the room is full; a newcomer may not.
    assert awareness.remember(peers[0], entries(1, 1, clock=2)).news == entries(1, 1, clock=2)
    assert awareness.remember(peers[2], entries(30, 1)).dropped == 1
    # Removals make way.
    awareness.drop_owner(peers[0])
    assert awareness.remember(peers[2], entries(30, 1)).dropped == 0


def test_the_room_bound_in_bytes_holds_whatever_the_owners() -> None:
    awareness = RoomAwareness(AwarenessLimits(room_bytes=50_000, connection_bytes=65_536))
    for first in range(0, 40, 4):
        awareness.remember(Peer(), entries(first, 4, pad=3_000))
        assert awareness.bytes <= 50_000
    awareness.remember("node-b", entries(100, 20, pad=3_000))
    assert awareness.bytes <= 50_000
    assert awareness.bytes == sum(map(entry_bytes, awareness.entries()))


def test_a_closed_connection_takes_its_states_and_the_others_are_told_the_next_clock() -> None:
    awareness = RoomAwareness()
    ann, bob = Peer(), Peer()
    awareness.remember(ann, [AwarenessEntry(1, 7, state("ann"))])
    awareness.remember(bob, [AwarenessEntry(2, 3, state("bob"))])
    awareness.remember(bob, [AwarenessEntry(1, 8, state("ann, as bob says"))])  # still ann's
    assert awareness.drop_owner(ann) == [AwarenessEntry(1, 9, "null")]
    assert [e.client_id for e in awareness.entries()] == [2]
    assert awareness.owned(ann) == (0, 0)
    assert awareness.drop_owner(ann) == []


def test_other_nodes_states_have_no_connection_share_and_are_not_republished_as_ours() -> None:
    awareness = RoomAwareness(AwarenessLimits(connection_states=2))
    awareness.remember("node-b", entries(1, 10))  # node b bounds its own connections
    ours = Peer()
    awareness.remember(ours, entries(50, 2))
    assert [e.client_id for e in awareness.local_entries()] == [50, 51]
    assert len(awareness.drop_owner("node-b")) == 10
    assert len(awareness) == 2


def test_frames_split_the_states_under_the_size_and_keep_every_one() -> None:
    states = entries(1, 40, pad=30_000)
    for limit in (2**20, 100_000, 31_000):
        frames = awareness_frames(states, limit)
        assert all(len(frame) <= limit for frame in frames)
        decoded = [e for frame in frames for e in protocol.decode_awareness(protocol.decode(frame).payload)]
        assert decoded == states
    assert len(awareness_frames(states, 2**20)) == 2
    assert awareness_frames([], 2**20) == []
    # A state bigger than the frame size (a peer limit below the states' size) goes alone.
    assert len(awareness_frames(entries(1, 3, pad=5_000), 1_000)) == 3


def test_limits_follow_the_settings() -> None:
    from syncline.server.rooms import awareness_limits
    from syncline.server.settings import Settings

    limits = awareness_limits(Settings(awareness_room_states=7, max_message_bytes=4096))
    assert limits == AwarenessLimits(room_states=7, frame_bytes=4096)


# -- through a Room ---------------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "store.sqlite3", synchronous="NORMAL") as opened:
        yield opened


@pytest.mark.anyio
async def test_a_room_counts_other_nodes_states_against_its_bound_and_splits_what_a_joiner_gets(
    store: SQLiteStore,
) -> None:
    metrics = Metrics()
    limits = AwarenessLimits(room_states=30, frame_bytes=64 * 1024)
    room = Room("acme/cart/c1", store, metrics, compaction_updates=10_000, awareness_limits=limits)
    await room.load()
    watcher = Peer()
    room.join(watcher)
    room.remote_awareness("node-b", protocol.encode_awareness(entries(1, 25, pad=4_000)))
    local = Peer()
    room.join(local)
    with pytest.raises(AwarenessOverShare):  # 17 states: over a connection's default share of 16
        room.awareness(local, protocol.encode_awareness(entries(100, 17)))
    room.awareness(local, protocol.encode_awareness(entries(100, 10)))  # 5 fit the room
    assert len(watcher.states()) == 30
    assert metrics.rejected.labels("awareness_room_full")._value.get() == 5
    late = Peer()
    room.join(late)
    frames = [f for f in late.frames if protocol.decode(f).kind is Kind.AWARENESS]
    assert len(frames) >= 2 and all(len(f) <= 64 * 1024 for f in frames)
    assert late.states() == watcher.states()
    room.forget_node("node-b")
    assert sorted(watcher.states()) == list(range(100, 105))
    room.leave(local)
    assert watcher.states() == {}
