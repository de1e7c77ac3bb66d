"""The change feed end to end: the relay app served in this process (a real relay subprocess
where signals, kills or restarts of the process matter), a real SSE client over HTTP.

Every expectation is exact: the events a stream must deliver are compared with the
store's own ``changes`` rows (read with a separate SQLite connection), and "nothing
else" is proven by a last write that the stream must deliver next.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from syncline.engine import Cart
from syncline.engine.tokens import issue_token
from syncline.engine.changes import FEED_EVENT_TYPES

from harness.relay_process import SECRET, RelayProcess
from harness.ypeer import ypeer

from .conftest import CATALOG, catalogued, load_catalog
from .helpers import AnyRelay
from .inprocess import InProcessRelay

pytestmark = pytest.mark.anyio

EVENTS = "/v1/tenants/{tenant}/events"


# -- a small SSE client that also keeps comment lines ----------------------------------


@dataclass(frozen=True)
class Event:
    event: str
    id: str | None
    data: str

    def json(self) -> dict[str, Any]:
        value = json.loads(self.data)
        assert isinstance(value, dict)
        return value


class StreamEnded(Exception):
    """Raised when the server closed the stream."""


class Feed:
    """Reads a stream's events. :meth:`next` returns the last event of each change (id
    ``EPOCH-SEQ``) and the stream's own events (``reset``, ``broadcast``); the earlier events of
    a multi-event change (id ``EPOCH-SEQ.I``) are kept in ``within``, heartbeats in
    ``heartbeats``, comment lines in ``comments``; :meth:`raw` returns every event as it came."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.comments: list[str] = []
        self.heartbeats: list[Event] = []
        self.within: list[Event] = []
        self._lines = response.aiter_lines()
        self.connected: dict[str, Any] = {}

    async def raw(self, timeout: float = 5.0) -> Event:
        """The next event of any kind, within ``timeout`` seconds."""
        fields: dict[str, str] = {}
        data: list[str] = []
        with anyio.fail_after(timeout):
            async for line in self._lines:
                if line == "":
                    if data or fields:
                        return Event(fields.get("event", "message"), fields.get("id"), "\n".join(data))
                    continue
                if line.startswith(":"):
                    self.comments.append(line)
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    data.append(value)
                else:
                    fields[name] = value
        raise StreamEnded

    async def next(self, timeout: float = 5.0) -> Event:
        """The next change (its last event) or stream event, within ``timeout`` seconds."""
        with anyio.fail_after(timeout):
            while True:
                event = await self.raw(timeout)
                if event.event == "heartbeat":
                    self.heartbeats.append(event)
                elif event.id is not None and "." in event.id:
                    self.within.append(event)
                else:
                    return event

    async def take(self, count: int, timeout: float = 5.0) -> list[Event]:
        return [await self.next(timeout) for _ in range(count)]

    async def wait_heartbeats(self, count: int, timeout: float) -> None:
        """Read until ``count`` heartbeat events arrived; any other event meanwhile is an error."""
        with anyio.fail_after(timeout):
            while len(self.heartbeats) < count:
                event = await self.raw(timeout)
                if event.event != "heartbeat":
                    raise AssertionError(f"an idle stream sent {event}")
                self.heartbeats.append(event)


@asynccontextmanager
async def client_for(relay: AnyRelay, token: str | None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=relay.http_url, headers=headers, timeout=10.0) as client:
        yield client


@asynccontextmanager
async def open_feed(client: httpx.AsyncClient, tenant: str = "acme", *, params: Any = None,
                    last_event_id: str | None = None) -> AsyncIterator[Feed]:
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    async with client.stream("GET", EVENTS.format(tenant=tenant), params=params, headers=headers) as response:
        if response.status_code != 200:
            raise AssertionError(f"{response.status_code}: {(await response.aread())!r}")
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        feed = Feed(response)
        connected = await feed.raw()
        assert connected.event == "connected", connected
        feed.connected = connected.json()
        yield feed


# -- writes ----------------------------------------------------------------------------------


async def add_item(client: httpx.AsyncClient, cart: str, product: str = "tee", quantity: int = 1,
                   tenant: str = "acme") -> dict[str, Any]:
    response = await client.post(f"/v1/tenants/{tenant}/carts/{cart}/items",
                                 json={"product": product, "quantity": quantity})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


_adjustments = iter(range(1_000_000))


async def adjust(client: httpx.AsyncClient, location: str, sku: str = "tee", delta: int = 5,
                 tenant: str = "acme") -> None:
    body = {"id": f"adj-{next(_adjustments)}", "sku": sku, "delta": delta, "reason": "restock", "actor": "test"}
    response = await client.post(f"/v1/tenants/{tenant}/stock/{location}/adjustments", json=body)
    assert response.status_code == 201, response.text


# -- the store's view --------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    seq: int
    doc: str
    action: str


def stored_changes(relay: AnyRelay, after: int = 0, tenant: str = "acme") -> list[Row]:
    path = relay.data_dir / "syncline.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT seq, doc, action FROM changes WHERE tenant = ? AND seq > ? ORDER BY seq",
                          (tenant, after)).fetchall()
    return [Row(int(seq), str(doc), "sync" if action is None else str(action)) for seq, doc, action in rows]


def stored_floor(relay: AnyRelay) -> int:
    path = relay.data_dir / "syncline.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'feed_floor'").fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def head(relay: AnyRelay) -> int:
    path = relay.data_dir / "syncline.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0])


def stored_epochs(relay: AnyRelay) -> list[tuple[int, str]]:
    path = relay.data_dir / "syncline.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return [(int(first), str(epoch)) for first, epoch in
                db.execute("SELECT first_seq, epoch FROM epochs ORDER BY first_seq").fetchall()]


def event_id(relay: AnyRelay, seq: int) -> str:
    """The id the feed gives the event of ``seq`` (docs/rest.md): the epoch the store
    started last at or below ``seq`` (the first epoch for older seqs), a dash, the seq."""
    epochs = stored_epochs(relay)
    epoch = epochs[0][1]
    for first, name in epochs:
        if first <= seq:
            epoch = name
    return f"{epoch}-{seq}"


def as_rows(events: list[Event], relay: AnyRelay | None = None) -> list[Row]:
    """Check each event's own consistency (its id too, given the relay), then reduce it to what
    the store holds."""
    rows = []
    for event in events:
        data = event.json()
        tenant, kind, doc_id = data["doc"].split("/")
        assert event.event.partition(".")[0] == kind and event.event in FEED_EVENT_TYPES, event
        epoch, _, seq = (event.id or "").partition("-")
        assert len(epoch) == 16 and int(epoch, 16) >= 0 and seq == str(data["seq"]), event.id
        if relay is not None:
            assert event.id == event_id(relay, data["seq"])
        assert (data["kind"], data["id"]) == (kind, doc_id)
        assert isinstance(data["at"], int) and abs(data["at"] / 1000 - time.time()) < 600
        rows.append(Row(data["seq"], data["doc"], data["action"]))
    return rows


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def relay_with(tmp_path: Path) -> Iterator[Callable[..., InProcessRelay]]:
    """Start a relay app with these settings and the test catalog for acme and globex."""
    started: list[InProcessRelay] = []

    def start(**settings: Any) -> InProcessRelay:
        relay = InProcessRelay(catalogued(tmp_path / f"relay-{len(started)}"), **settings).start()
        started.append(relay)
        return relay

    try:
        yield start
    finally:
        for relay in started:
            relay.stop()


@pytest.fixture(scope="module")
def shared_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessRelay]:
    """One relay for the tests that only read refusals (no state of their own)."""
    relay = InProcessRelay(catalogued(tmp_path_factory.mktemp("feed-refusals"))).start()
    try:
        yield relay
    finally:
        relay.stop()


# -- events and their names ----------------------------------------------------------------------


async def test_rest_and_websocket_writes_arrive_as_events_with_store_seqs_and_action_names(
    rest_relay: InProcessRelay,
) -> None:
    start = head(rest_relay)
    async with client_for(rest_relay, rest_relay.token("acme")) as client, open_feed(client) as feed:
        cart = await add_item(client, "c1", "tee", 2)
        line = cart["lines"][0]["id"]
        response = await client.put(f"/v1/tenants/acme/carts/c1/lines/{line}", json={"quantity": 5})
        assert response.status_code == 200, response.text
        await add_item(client, "c1", "mug")
        response = await client.delete(f"/v1/tenants/acme/carts/c1/lines/{line}")
        assert response.status_code == 200, response.text
        response = await client.post("/v1/tenants/acme/carts/c1/clear", json={})
        assert response.status_code == 200, response.text
        await add_item(client, "guest")
        response = await client.post("/v1/tenants/acme/carts/guest/merge", json={"into": "user"})
        assert response.status_code == 200, response.text
        await adjust(client, "north")
        response = await client.post("/v1/tenants/acme/stock/north/batch", json={"operations": [
            {"type": "adjust", "id": "b-1", "sku": "mug", "delta": -1, "reason": "sale", "actor": "till"},
            {"type": "adjust", "id": "b-2", "sku": "mug", "delta": -1, "reason": "sale", "actor": "till"},
        ]})
        assert response.status_code == 200, response.text
        async with ypeer(rest_relay.url_for("acme/cart/ws1"), acks=True) as peer:
            await peer.edit(lambda doc: Cart(doc, "ws1").add_item("cap", 1))
            await peer.wait_acked(2)

        expected = [
            Row(0, "acme/cart/c1", "cart.add_item"),
            Row(0, "acme/cart/c1", "cart.set_quantity"),
            Row(0, "acme/cart/c1", "cart.add_item"),
            Row(0, "acme/cart/c1", "cart.remove_line"),
            Row(0, "acme/cart/c1", "cart.clear"),
            Row(0, "acme/cart/guest", "cart.add_item"),
            Row(0, "acme/cart/user", "cart.merge"),
            Row(0, "acme/cart/guest", "cart.merged"),
            Row(0, "acme/stock/north", "stock.adjust"),
            Row(0, "acme/stock/north", "stock.batch"),
            Row(0, "acme/cart/ws1", "sync"),
        ]
        received = as_rows(await feed.take(len(expected)))
        assert [(r.doc, r.action) for r in received] == [(r.doc, r.action) for r in expected]
        seqs = [r.seq for r in received]
        assert seqs == sorted(set(seqs)) and seqs[0] > start
        assert received == stored_changes(rest_relay, start)


async def test_filters_by_document_and_by_type_deliver_exactly_the_matching_events(
    rest_relay: InProcessRelay,
) -> None:
    start = head(rest_relay)
    async with (client_for(rest_relay, rest_relay.token("acme")) as client,
                open_feed(client, params={"doc": "cart/a"}) as only_a,
                open_feed(client, params={"type": "stock.changed"}) as only_stock,
                open_feed(client, params=[("doc", "cart/a"), ("doc", "stock/s2"), ("type", "stock.changed")]) as both,
                open_feed(client, params=[("doc", "cart/b"), ("doc", "stock/s1")]) as two_docs):
        await add_item(client, "a")
        await add_item(client, "b")
        await adjust(client, "s1")
        await adjust(client, "s2")
        await add_item(client, "a", "mug")
        await adjust(client, "s2")
        await add_item(client, "b", "cap")

        async def check(feed: Any, wanted: Callable[[str], bool], marker: Callable[[], Any]) -> None:
            # The marker is the newest write: had anything unwanted leaked, it would come before it.
            await marker()
            rows = [row for row in stored_changes(rest_relay, start) if wanted(row.doc)]
            assert rows, "the marker itself must match"
            assert as_rows(await feed.take(len(rows))) == rows

        await check(only_a, lambda doc: doc == "acme/cart/a", lambda: add_item(client, "a", "sock"))
        await check(only_stock, lambda doc: "/stock/" in doc, lambda: adjust(client, "s3"))
        await check(both, lambda doc: doc == "acme/stock/s2", lambda: adjust(client, "s2"))
        await check(two_docs, lambda doc: doc in ("acme/cart/b", "acme/stock/s1"), lambda: adjust(client, "s1"))


async def test_a_token_for_carts_only_never_sees_stock_events(rest_relay: InProcessRelay) -> None:
    start = head(rest_relay)
    async with (client_for(rest_relay, rest_relay.token("acme")) as writer,
                client_for(rest_relay, rest_relay.token("acme", "acme/cart/*", read_only=True)) as reader,
                open_feed(reader) as feed,
                open_feed(reader, params={"type": "stock.changed"}) as stock_feed):
        await adjust(writer, "north")
        await add_item(writer, "c1")
        await adjust(writer, "north")
        await adjust(writer, "south")
        await add_item(writer, "c2")
        rows = [row for row in stored_changes(rest_relay, start) if "/cart/" in row.doc]
        assert len(rows) == 2
        assert as_rows(await feed.take(2)) == rows
        # Asking for stock events explicitly does not widen the token: the stream stays silent.
        with anyio.move_on_after(0.5) as quiet:
            leaked = await stock_feed.next(timeout=10)
        assert quiet.cancelled_caught, f"a cart-only token got {leaked}"


async def test_another_tenants_events_never_appear(rest_relay: InProcessRelay) -> None:
    start = head(rest_relay)
    async with (client_for(rest_relay, rest_relay.token("acme")) as acme,
                client_for(rest_relay, rest_relay.token("globex")) as globex,
                open_feed(acme) as acme_feed,
                open_feed(globex, "globex") as globex_feed):
        await add_item(globex, "c1", tenant="globex")
        await adjust(globex, "north", tenant="globex")
        await add_item(acme, "c1")
        await add_item(globex, "c2", tenant="globex")
        await adjust(acme, "north")
        assert as_rows(await acme_feed.take(2)) == stored_changes(rest_relay, start, "acme")
        globex_rows = stored_changes(rest_relay, start, "globex")
        assert [row.doc for row in globex_rows] == ["globex/cart/c1", "globex/stock/north", "globex/cart/c2"]
        assert as_rows(await globex_feed.take(3)) == globex_rows
        response = await acme.get(EVENTS.format(tenant="globex"))
        assert response.status_code == 403
        assert response.json()["type"].endswith("/forbidden")


# -- resuming ------------------------------------------------------------------------------------


async def test_resume_after_a_dropped_connection_delivers_exactly_the_missed_events(
    rest_relay: InProcessRelay,
) -> None:
    async with client_for(rest_relay, rest_relay.token("acme")) as client:
        async with open_feed(client) as feed:
            await add_item(client, "c1")
            first = await feed.next()
        # The connection is gone; seven writes happen meanwhile.
        for i in range(7):
            await (add_item(client, f"c{i % 3}") if i % 2 else adjust(client, f"loc{i % 2}"))
        missed = stored_changes(rest_relay, first.json()["seq"])
        assert len(missed) == 7
        async with open_feed(client, last_event_id=first.id) as feed:
            assert as_rows(await feed.take(7)) == missed
            await add_item(client, "marker")
            assert as_rows([await feed.next()]) == stored_changes(rest_relay, missed[-1].seq)
        # ?since= is the same resume point, for clients that cannot set headers.
        middle = missed[3].seq
        async with open_feed(client, params={"since": event_id(rest_relay, middle)}) as feed:
            assert as_rows(await feed.take(4), rest_relay) == stored_changes(rest_relay, middle)[:4]
        # The header wins over the query parameter.
        async with open_feed(client, params={"since": first.id}, last_event_id=event_id(rest_relay, middle)) \
                as feed:
            assert as_rows([await feed.next()]) == [missed[4]]


async def test_reconnecting_while_writes_continue_neither_loses_nor_repeats_an_event(
    rest_relay: InProcessRelay,
) -> None:
    start = head(rest_relay)
    total = 40
    async with (client_for(rest_relay, rest_relay.token("acme")) as writer,
                client_for(rest_relay, rest_relay.token("acme")) as reader):

        async def write_all() -> None:
            for i in range(total):
                await (add_item(writer, f"c{i % 4}") if i % 3 else adjust(writer, "north"))

        received: list[Event] = []
        last = event_id(rest_relay, start)
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(write_all)
                reconnects = 0
                while len(received) < total:
                    async with open_feed(reader, last_event_id=last) as feed:
                        for _ in range(min(1 + reconnects % 4, total - len(received))):
                            event = await feed.next(timeout=10)
                            received.append(event)
                            last = event.id or "x"
                    reconnects += 1
        assert reconnects >= 10
        assert as_rows(received, rest_relay) == stored_changes(rest_relay, start)


@pytest.mark.parametrize("stop", ["terminate", "kill"])
async def test_resume_across_a_relay_restart_misses_nothing(
    rest_relay_process: RelayProcess, stop: str,
) -> None:
    rest_relay = rest_relay_process  # SIGTERM and SIGKILL: a real process
    start = head(rest_relay)
    async with client_for(rest_relay, rest_relay.token("acme")) as client:
        async with open_feed(client) as feed:
            await add_item(client, "c1")
            first = await feed.next()
            # Acknowledged (200/201) but not yet read by this client when the relay goes away.
            await add_item(client, "c1", "mug")
            await adjust(client, "north")
            await add_item(client, "c2")
            if stop == "terminate":
                assert rest_relay.terminate() == 0
            else:
                rest_relay.kill()
            # The open stream ends (cleanly or not) instead of hanging.
            with pytest.raises((StreamEnded, httpx.TransportError)):
                while True:
                    await feed.next(timeout=10)
    rest_relay.start()
    async with client_for(rest_relay, rest_relay.token("acme")) as client:
        await adjust(client, "north")
        await add_item(client, "c3")
        expected = stored_changes(rest_relay, first.json()["seq"])
        assert [row.action for row in expected] == [
            "cart.add_item", "stock.adjust", "cart.add_item", "stock.adjust", "cart.add_item"]
        assert stored_changes(rest_relay, start)[0].seq == first.json()["seq"]
        async with open_feed(client, last_event_id=first.id) as feed:
            # The restart began a new epoch: ids name the epoch of their seq, old ones stay valid.
            assert as_rows(await feed.take(5), rest_relay) == expected
            assert len(stored_epochs(rest_relay)) >= 2
            await adjust(client, "marker")
            assert as_rows([await feed.next()]) == stored_changes(rest_relay, expected[-1].seq)


async def test_the_position_of_a_new_store_resumes_after_a_restart_without_a_reset(
    rest_relay_process: RelayProcess,
) -> None:
    """A new store's stream opens at {epoch}-0, an epoch with no change yet, which the next start
    replaces: resuming from it still follows on with the first change, as it did before."""
    relay = rest_relay_process
    async with client_for(relay, relay.token("acme")) as client:
        async with open_feed(client) as feed:
            position = feed.connected["position"]
            assert position.endswith("-0")
    assert relay.terminate() == 0
    relay.start()
    assert position.split("-")[0] not in {epoch for _, epoch in stored_epochs(relay)}  # replaced
    async with client_for(relay, relay.token("acme")) as client:
        await add_item(client, "c1")
        async with open_feed(client, last_event_id=position) as feed:
            assert feed.connected["reset"] is False
            assert as_rows([await feed.next()], relay) == stored_changes(relay)


async def test_resuming_below_the_pruned_floor_gets_a_reset_then_only_later_events(
    relay_with: Callable[..., InProcessRelay],
) -> None:
    relay = relay_with(feed_retention_seconds=0.001)
    async with client_for(relay, relay.token("acme")) as client:
        for cart in ("c1", "c2", "c3"):
            await add_item(client, cart)
    old = stored_changes(relay)
    assert len(old) == 3
    assert relay.terminate() == 0
    relay.start()  # prunes at start: every event is older than a millisecond
    with anyio.fail_after(10):
        while stored_floor(relay) != old[-1].seq:
            await anyio.sleep(0.02)
    assert stored_changes(relay) == []
    floor = old[-1].seq
    async with client_for(relay, relay.token("acme")) as client:
        await add_item(client, "c4")
        await adjust(client, "north")
        later = stored_changes(relay)
        assert len(later) == 2 and later[0].seq > floor
        for resume in ({"params": {"since": event_id(relay, old[0].seq)}},
                       {"last_event_id": event_id(relay, old[1].seq)}):
            async with open_feed(client, **resume) as feed:
                reset = await feed.next()
                assert (reset.event, reset.id) == ("reset", event_id(relay, floor))
                assert reset.json()["floor"] == floor
                assert as_rows(await feed.take(2), relay) == later
        # Resuming at the floor itself (the reset's id) missed nothing: no reset.
        async with open_feed(client, last_event_id=reset.id) as feed:
            assert as_rows(await feed.take(2)) == later
            await add_item(client, "marker")
            assert as_rows([await feed.next()]) == stored_changes(relay, later[-1].seq)


async def test_a_new_stream_gets_no_reset_when_every_event_was_pruned(
    relay_with: Callable[..., InProcessRelay],
) -> None:
    relay = relay_with(feed_retention_seconds=0.001)
    async with client_for(relay, relay.token("acme")) as client:
        await add_item(client, "c1")
    floor = stored_changes(relay)[-1].seq
    assert relay.terminate() == 0
    relay.start()
    with anyio.fail_after(10):
        while stored_floor(relay) != floor:
            await anyio.sleep(0.02)
    assert stored_changes(relay) == []
    async with client_for(relay, relay.token("acme")) as client, open_feed(client) as feed:
        await add_item(client, "c2")
        first = await feed.next()
        assert first.event == "cart.changed", f"a client that asked for no history got {first}"
        assert as_rows([first]) == stored_changes(relay)


@pytest.mark.parametrize("resume", ["ahead", "other epoch", "bare seq"])
async def test_resuming_from_an_id_this_feed_never_gave_out_gets_a_reset_then_every_kept_event(
    rest_relay: InProcessRelay, resume: str,
) -> None:
    """A seq past the newest, an epoch this store never had, or a bare seq without an epoch:
    the client may have missed anything, so it must re-read rather than wait silently."""
    async with client_for(rest_relay, rest_relay.token("acme")) as client:
        await add_item(client, "c1")
        await adjust(client, "north")
        newest = head(rest_relay)
        epoch = event_id(rest_relay, newest).split("-")[0]
        last_id = {"ahead": f"{epoch}-{newest + 1}", "other epoch": f"{'0' * 16}-{newest}",
                   "bare seq": str(newest)}[resume]
        async with open_feed(client, last_event_id=last_id) as feed:
            reset = await feed.next()
            assert (reset.event, reset.id) == ("reset", event_id(rest_relay, 0))
            assert reset.json()["floor"] == 0
            kept = stored_changes(rest_relay)
            assert as_rows(await feed.take(len(kept)), rest_relay) == kept
            await add_item(client, "c2")
            assert as_rows([await feed.next()], rest_relay) == stored_changes(rest_relay, newest)
        async with open_feed(client, last_event_id=reset.id) as feed:  # the reset's id is this feed's
            assert as_rows(await feed.take(len(kept))) == kept


@pytest.mark.parametrize("store", ["wiped", "restored from a backup"])
async def test_a_reader_resuming_after_the_store_was_replaced_gets_a_reset_then_every_kept_event(
    relay_with: Callable[..., InProcessRelay], store: str,
) -> None:
    """The relay's next seqs run past the reader's old id in a history the reader never saw:
    the epoch of the id tells that apart from a plain resume, which would skip events silently.
    The backup is taken while the relay runs, so the restored copy has the very epoch of the
    reader's id, but not its seq: that epoch ended with the copy."""
    relay = relay_with()
    database = relay.data_dir / "syncline.sqlite3"
    backup = relay.data_dir.parent / "backup.sqlite3"
    async with client_for(relay, relay.token("acme")) as client, open_feed(client) as feed:
        for i in range(4):
            await add_item(client, f"c{i}")
            if i == 1:  # an online backup, as sqlite3's .backup takes it
                with sqlite3.connect(database) as source, sqlite3.connect(backup) as target:
                    source.backup(target)
        events = await feed.take(4)
    old_id = events[-1].id or "x"
    old_seq = int(old_id.split("-")[1])
    assert relay.terminate() == 0
    for path in relay.data_dir.glob("syncline.sqlite3*"):
        path.unlink()
    if store == "wiped":
        load_catalog(relay.data_dir, "acme", CATALOG)
    else:
        shutil.copy2(backup, database)
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            assert db.execute("SELECT max(seq) FROM changes").fetchone()[0] == old_seq - 2
        assert any(epoch == old_id.split("-")[0] for _, epoch in stored_epochs(relay))
    relay.start()
    async with client_for(relay, relay.token("acme")) as client:
        while head(relay) <= old_seq + 2:  # the new history's seqs pass the old id
            await add_item(client, "after", "cap")
        kept = stored_changes(relay)
        async with open_feed(client, last_event_id=old_id) as feed:
            reset = await feed.next()
            assert reset.event == "reset" and reset.json()["floor"] == 0
            assert as_rows(await feed.take(len(kept)), relay) == kept
            await add_item(client, "marker")
            assert as_rows([await feed.next()], relay) == stored_changes(relay, kept[-1].seq)


# -- heartbeats and shutdown -------------------------------------------------------------------


async def test_an_idle_stream_gets_heartbeat_events_at_the_configured_interval(
    relay_with: Callable[..., InProcessRelay],
) -> None:
    relay = relay_with(sse_heartbeat_seconds=0.2)
    async with client_for(relay, relay.token("acme")) as client, open_feed(client) as feed:
        assert feed.connected["heartbeat_seconds"] == 0.2
        started = time.monotonic()
        await feed.wait_heartbeats(3, timeout=5)
        elapsed = time.monotonic() - started
        assert 0.4 < elapsed < 3, elapsed  # three beats, 0.2 s apart
        assert feed.comments == []  # named events a browser's EventSource sees, not comments
        assert all(abs(beat.json()["at"] / 1000 - time.time()) < 60 and beat.id is None for beat in feed.heartbeats)
        await add_item(client, "c1")
        assert as_rows([await feed.next()]) == stored_changes(relay)


async def test_the_stream_ends_and_the_relay_exits_0_promptly_on_sigterm(
    rest_relay_process: RelayProcess,
) -> None:
    rest_relay = rest_relay_process
    async with client_for(rest_relay, rest_relay.token("acme")) as client:
        async with open_feed(client) as feed, open_feed(client, params={"doc": "cart/x"}) as other:
            await add_item(client, "c1")
            await feed.next()
            started = time.monotonic()
            with anyio.fail_after(10):
                code = await anyio.to_thread.run_sync(rest_relay.terminate)
            assert code == 0
            assert time.monotonic() - started < 6
            for stream in (feed, other):
                with pytest.raises((StreamEnded, httpx.TransportError)):
                    await stream.next(timeout=5)


# -- refusals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "last_event_id", "slug"), [
    (None, "abc", "invalid-header"),
    (None, "-1", "invalid-header"),
    (None, "1.5", "invalid-header"),
    (None, "", "invalid-header"),
    (None, "1" * 20, "invalid-header"),
    (None, "0123abcd-7", "invalid-header"),
    (None, "0123456789ABCDEF-7", "invalid-header"),
    (None, "0123456789abcdef-", "invalid-header"),
    (None, "0123456789abcdef-7-8", "invalid-header"),
    ({"since": "0123456789abcdef--3"}, None, "invalid-parameter"),
    ({"since": "x"}, None, "invalid-parameter"),
    ({"since": "-3"}, None, "invalid-parameter"),
    ({"doc": "cart"}, None, "invalid-parameter"),
    ({"doc": "widget/x"}, None, "invalid-parameter"),
    ({"doc": "cart/"}, None, "invalid-parameter"),
    ({"doc": "cart/a/b"}, None, "invalid-parameter"),
    ({"doc": "cart/.."}, None, "invalid-parameter"),
    ({"type": "cart.deleted"}, None, "invalid-parameter"),
    ({"type": "widget.*"}, None, "invalid-parameter"),
    ({"type": "*"}, None, "invalid-parameter"),
    ({"order": ""}, None, "invalid-parameter"),
    ({"order": "a/b"}, None, "invalid-parameter"),
    ([("order", f"o{i}") for i in range(101)], None, "invalid-parameter"),
    (None, "0123456789abcdef-7.", "invalid-header"),
    (None, "0123456789abcdef-7.x", "invalid-header"),
    (None, "0123456789abcdef-7.12345", "invalid-header"),
    (None, "0123456789abcdef-0.0", "invalid-header"),
    (None, "7.0", "invalid-header"),
    ({"since": "0123456789abcdef-7.-1"}, None, "invalid-parameter"),
    ({"type": ""}, None, "invalid-parameter"),
    ({"after": "3"}, None, "invalid-parameter"),
    ([("doc", f"cart/c{i}") for i in range(101)], None, "invalid-parameter"),
])
async def test_bad_resume_points_and_filters_are_400_problems(
    shared_relay: InProcessRelay, params: Any, last_event_id: str | None, slug: str,
) -> None:
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    async with client_for(shared_relay, shared_relay.token("acme")) as client:
        response = await client.get(EVENTS.format(tenant="acme"), params=params, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"https://syncline.dev/problems/{slug}"


async def test_the_feed_needs_a_valid_token_of_its_tenant(rest_relay: InProcessRelay) -> None:
    path = EVENTS.format(tenant="acme")
    for token, status, slug in [
        (None, 401, "unauthorized"),
        ("not-a-token", 401, "unauthorized"),
        (issue_token(SECRET, "acme", ["acme/*"], ttl_seconds=10, now=time.time() - 100), 401, "unauthorized"),
        (rest_relay.token("globex"), 403, "forbidden"),
    ]:
        async with client_for(rest_relay, token) as client:
            response = await client.get(path)
        assert response.status_code == status, response.text
        assert response.json()["type"] == f"https://syncline.dev/problems/{slug}"
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
    # A read-only token follows the feed; so does a browser's EventSource with ?token=.
    async with client_for(rest_relay, None) as client:
        async with (open_feed(client, params={"token": rest_relay.token("acme", read_only=True)}) as feed,
                    client_for(rest_relay, rest_relay.token("acme")) as writer):
            await add_item(writer, "c1")
            assert as_rows([await feed.next()]) == stored_changes(rest_relay)


@pytest.mark.slow
async def test_the_stream_ends_when_its_token_expires(rest_relay: InProcessRelay) -> None:
    """As a WebSocket peer's connection is closed at its token's expiry, so is a stream."""
    token = rest_relay.token("acme", ttl=2)
    expires_at = int(time.time()) + 2  # issue_token floors the issue time
    async with (client_for(rest_relay, token) as client,
                client_for(rest_relay, rest_relay.token("acme")) as writer,
                open_feed(client) as feed):
        await add_item(writer, "c1")
        assert as_rows([await feed.next()]) == stored_changes(rest_relay)
        with pytest.raises(StreamEnded):
            await feed.next(timeout=8)
        assert time.time() >= expires_at - 0.05
    async with client_for(rest_relay, token) as client:
        response = await client.get(EVENTS.format(tenant="acme"))
    assert response.status_code == 401


async def test_a_reader_resuming_across_a_kill_under_load_gets_every_acknowledged_write(
    rest_relay_process: RelayProcess,
) -> None:
    """Writers keep posting while the relay is SIGKILLed and restarted; the reader resumes with
    its last id. Its events are exactly the store's rows, and each cart has an event for every
    write that was answered 200 (one more at most: stored, but its answer lost in the kill)."""
    rest_relay = rest_relay_process
    start = head(rest_relay)
    token = rest_relay.token("acme")
    acked = dict.fromkeys(range(4), 0)
    stop = anyio.Event()

    async def writer(w: int) -> None:
        async with client_for(rest_relay, token) as client:
            while not stop.is_set():
                try:
                    response = await client.post(f"/v1/tenants/acme/carts/w{w}/items", json={"product": "tee"})
                except httpx.TransportError:
                    await anyio.sleep(0.05)  # the relay is down: retry until it is back
                    continue
                assert response.status_code == 200, response.text
                acked[w] += 1

    received: list[Event] = []
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for w in acked:
                tg.start_soon(writer, w)
            async with client_for(rest_relay, token) as reader:
                async with open_feed(reader, last_event_id=event_id(rest_relay, start)) as feed:
                    while len(received) < 40:
                        received.append(await feed.next())
                    rest_relay.kill()
                    with pytest.raises((StreamEnded, httpx.TransportError)):
                        while True:
                            received.append(await feed.next())
                rest_relay.start()
                while sum(acked.values()) < 150:
                    await anyio.sleep(0.05)
                stop.set()
            async with client_for(rest_relay, token) as reader:
                await add_item(reader, "marker")
                marker = stored_changes(rest_relay)[-1].seq
                async with open_feed(reader, last_event_id=received[-1].id) as feed:
                    while not received or received[-1].id != event_id(rest_relay, marker):
                        received.append(await feed.next())
    rows = as_rows(received, rest_relay)
    assert rows == stored_changes(rest_relay, start)
    for w, count in acked.items():
        events = sum(1 for row in rows if row.doc == f"acme/cart/w{w}")
        assert count <= events <= count + 1, (w, count, events)
