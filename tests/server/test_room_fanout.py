"""A room in a cluster (docs/cluster.md), in process: two ``Room`` objects on one store play two
nodes, and a fake fan-out records what would cross between them. No Redis needed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import pytest
from pycrdt import Doc, Map

from syncline.engine import encode_diff
from syncline.engine import closecodes, protocol
from syncline.server.fanout import FanoutListener, FanoutUnavailable
from syncline.server.metrics import Metrics
from syncline.engine.protocol import AwarenessEntry, Kind
from syncline.server.room import Room
from syncline.server.settings import Settings, SettingsError
from syncline.server.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

NAME = "acme/cart/c1"


class FakeFanout:
    shared = True
    node_id = "fake"

    def __init__(self) -> None:
        self.available = True
        self.reason = ""
        self.fail_publish = False
        self.updates: list[tuple[str, int, bytes]] = []
        self.awareness: list[tuple[str, bytes]] = []
        self.broadcasts: list[tuple[str, bytes]] = []

    def bind(self, listener: FanoutListener) -> None:
        pass

    async def run(self, *, task_status: object = None) -> None:
        pass

    async def subscribe(self, room: str) -> bool:
        return True

    async def unsubscribe(self, room: str) -> None:
        pass

    async def publish_update(self, room: str, seq: int, update: bytes) -> None:
        if self.fail_publish:
            raise FanoutUnavailable("publish failed: test")
        self.updates.append((room, seq, update))

    def publish_awareness(self, room: str, payload: bytes) -> None:
        self.awareness.append((room, payload))

    def publish_broadcast(self, tenant: str, payload: bytes) -> None:
        self.broadcasts.append((tenant, payload))


class Recorder:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)

    def updates(self) -> list[bytes]:
        return [m.payload for m in map(protocol.decode, self.frames) if m.kind is Kind.UPDATE]

    def awareness(self) -> list[list[AwarenessEntry]]:
        return [protocol.decode_awareness(m.payload) for m in map(protocol.decode, self.frames)
                if m.kind is Kind.AWARENESS]


def edit(key: str, value: int) -> bytes:
    doc: Doc = Doc()
    before = doc.get_state()
    doc.get("m", type=Map)[key] = value
    return encode_diff(doc, before)


def content(doc: Doc) -> dict[str, object]:
    return dict(doc.get("m", type=Map))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "store.sqlite3", synchronous="NORMAL") as opened:
        yield opened


async def node(store: SQLiteStore, fanout: FakeFanout | None = None) -> Room:
    room = Room(NAME, store, Metrics(), compaction_updates=10_000, fanout=fanout or FakeFanout())
    await room.load()
    return room


async def test_compaction_in_a_cluster_keeps_a_row_the_room_had_not_seen(store: SQLiteStore) -> None:
    a, b = await node(store), await node(store)
    peer = Recorder()
    a.join(peer)
    await b.write(None, edit("from_b", 1))   # seq 1, published but (here) never delivered to a
    await a.write(None, edit("from_a", 2))   # seq 2: a has applied 2 and not 1
    await a.compact()                        # must not fold row 1 away without its content
    reloaded = await node(store)
    assert content(reloaded.doc) == {"from_a": 2, "from_b": 1}
    assert content(a.doc) == {"from_a": 2, "from_b": 1}
    assert len(peer.updates()) == 2, "a's own write, then what it lacked, once"
    caught_up: Doc = Doc()
    caught_up.apply_update(peer.updates()[1])
    assert content(caught_up) == {"from_b": 1}
    assert (await store.load(NAME)).snapshot is not None


async def test_without_a_fanout_compaction_folds_through_the_rooms_own_seq(store: SQLiteStore) -> None:
    room = Room(NAME, store, Metrics(), compaction_updates=10_000)  # the single-node path: no load
    await room.load()
    await room.write(None, edit("k", 1))
    await room.compact()
    stored = await store.load(NAME)
    assert stored.snapshot is not None and stored.updates == []


async def test_a_published_update_the_room_already_read_is_not_forwarded_again(store: SQLiteStore) -> None:
    writer = await node(store)
    seq = await writer.write(None, edit("k", 1))
    reader = await node(store)  # its load holds seq already
    peer = Recorder()
    reader.join(peer)
    reader.apply_remote(seq, edit("k", 1))
    assert peer.updates() == []
    newer = edit("j", 2)
    reader.apply_remote(seq + 1, newer)
    assert peer.updates() == [newer]
    assert content(reader.doc) == {"k": 1, "j": 2}


async def test_resync_applies_and_forwards_only_what_the_room_lacks(store: SQLiteStore) -> None:
    a, b = await node(store), await node(store)
    peer = Recorder()
    a.join(peer)
    await b.write(None, edit("x", 1))
    await b.write(None, edit("y", 2))
    await a.resync()
    assert content(a.doc) == {"x": 1, "y": 2}
    assert len(peer.updates()) == 1
    await a.resync()
    assert len(peer.updates()) == 1, "nothing new: nothing forwarded"


async def test_a_write_is_stored_delivered_and_acknowledged_while_the_fanout_is_down(store: SQLiteStore) -> None:
    fanout = FakeFanout()
    room = await node(store, fanout)
    peer = Recorder()
    room.join(peer)
    fanout.available, fanout.reason = False, "ConnectionError: test"
    first = await room.write(None, edit("k", 1))  # no exception: acknowledged
    fanout.available = True
    fanout.fail_publish = True  # the publish itself fails: stored and acknowledged all the same
    second = await room.write(None, edit("k", 2))
    assert [seq for seq, _ in (await store.load(NAME)).updates] == [first, second]
    assert len(peer.updates()) == 2, "this node's own peers got both"


async def test_awareness_news_crosses_nodes_echoes_do_not_and_a_gone_node_takes_its_clients(
    store: SQLiteStore,
) -> None:
    fanout = FakeFanout()
    room = await node(store, fanout)
    local, other = Recorder(), Recorder()
    room.join(local)
    room.join(other)
    payload = protocol.encode_awareness([AwarenessEntry(1, 1, '{"n":"ann"}')])
    room.awareness(local, payload)
    room.awareness(other, payload)  # a y-websocket peer echoing ann back: not news
    assert [p for _, p in fanout.awareness] == [payload]
    remote = protocol.encode_awareness([AwarenessEntry(2, 5, '{"n":"bob"}')])
    room.remote_awareness("node-b", remote)
    room.remote_awareness("node-b", remote)  # delivered twice: forwarded once
    assert [entries for entries in local.awareness() if entries[0].client_id == 2] == [
        [AwarenessEntry(2, 5, '{"n":"bob"}')]]
    assert room.local_awareness() == payload, "only this node's own clients are republished"
    room.forget_node("node-b")
    assert local.awareness()[-1] == [AwarenessEntry(2, 6, "null")]
    room.leave(local)
    assert protocol.decode_awareness(fanout.awareness[-1][1]) == [AwarenessEntry(1, 2, "null")]


@pytest.mark.parametrize(("fanout", "prefix"), [("redis://127.0.0.1:6379/0", "syncline"), ("none", "x:y-1")])
def test_fanout_settings_accept_redis_urls_and_plain_prefixes(fanout: str, prefix: str) -> None:
    store = "postgresql://db.internal/syncline"
    settings = Settings.from_sources({"fanout": fanout, "fanout_prefix": prefix, "store": store}, env={})
    assert (settings.fanout, settings.fanout_prefix) == (fanout, prefix)
    assert "redis" not in repr(settings), "the URL may carry a password"


@pytest.mark.parametrize(("flags", "named"), [
    ({"fanout": "http://redis"}, "fanout"),
    ({"fanout": "redis://127.0.0.1:6379/0"}, "fanout"),  # with the default, per-node SQLite store
    ({"fanout": ""}, "fanout"),
    ({"fanout_prefix": ""}, "fanout_prefix"),
    ({"fanout_prefix": "has space"}, "fanout_prefix"),
])
def test_bad_fanout_settings_are_refused_by_name(flags: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_sources(flags, env={})
    assert refused.value.name == named


def test_every_close_code_is_in_the_protocol_table() -> None:
    table = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    for code, reason in closecodes.CLOSE_REASONS.items():
        assert f"| {code} | {reason} |" in table, f"docs/protocol.md lacks {code} {reason}"


async def test_the_single_node_default_never_touches_the_fanout(store: SQLiteStore) -> None:
    room = Room(NAME, store, Metrics(), compaction_updates=10_000)
    await room.load()
    with anyio.fail_after(5):
        await room.write(None, edit("k", 1))
    assert room._fanout is None


async def test_redis_fanout_that_cannot_reach_redis_at_start_says_so_in_one_line_without_the_password() -> None:
    from syncline.server.fanout.redis import RedisFanout

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens there now
    fanout = RedisFanout(f"redis://syncline:hunter2secret@127.0.0.1:{port}/0", prefix="t")
    with pytest.raises(FanoutUnavailable) as caught, anyio.fail_after(10):
        await fanout.run()
    message = str(caught.value)
    assert message.startswith(f"fan-out unavailable: cannot reach Redis at redis://127.0.0.1:{port}/0: "), message
    assert "hunter2secret" not in message and "\n" not in message
