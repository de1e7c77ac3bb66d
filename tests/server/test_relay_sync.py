"""The relay end to end: a real `syncline serve` subprocess, real WebSocket peers."""

from __future__ import annotations

import random
import signal
import sqlite3

import anyio
import httpx
import pytest
from pycrdt import Array, Doc
from websockets.asyncio.client import connect

from syncline.engine import Cart, StockLedger, encode_diff
from syncline.engine import closecodes, protocol

from harness.relay_process import RelayProcess
from harness.ypeer import ypeer

pytestmark = pytest.mark.anyio


def _ops(doc: Doc) -> list[object]:
    return doc.get("ops", type=Array).to_py() or []


async def test_two_peers_editing_one_cart_converge_through_the_relay(relay: RelayProcess) -> None:
    url = relay.url_for("acme/cart/c-1")
    async with ypeer(url) as till, ypeer(url) as phone:
        till_cart, phone_cart = Cart(till.doc, "acme/cart/c-1"), Cart(phone.doc, "acme/cart/c-1")
        key = till_cart.add_item("tee", 2, {"size": "M"})
        await till.send_update(encode_diff(till.doc, phone.doc.get_state()))
        phone_before = phone.doc.get_state()
        phone_cart.add_item("tee", 3, {"size": "M"})
        await phone.send_update(encode_diff(phone.doc, phone_before))
        await till.wait_until(lambda d: Cart(d, "acme/cart/c-1").quantity(key) == 5)
        await phone.wait_until(lambda d: Cart(d, "acme/cart/c-1").quantity(key) == 5)
        assert till_cart.view().lines == phone_cart.view().lines


async def test_a_late_joiner_receives_the_full_state_after_a_relay_restart(relay: RelayProcess) -> None:
    url = relay.url_for("acme/stock/north")
    async with ypeer(url, acks=True) as writer:
        ledger = StockLedger(writer.doc, "acme/stock/north")
        for i in range(20):
            before = writer.doc.get_state()
            ledger.record(f"adj-{i}", "tee", 1, reason="restock", actor="test")
            await writer.send_update(encode_diff(writer.doc, before))
        await writer.wait_acked(21)  # the empty sync step 2 of the handshake, then 20 updates
    assert relay.terminate() == 0
    relay.start()
    async with ypeer(relay.url_for("acme/stock/north")) as late:
        assert StockLedger(late.doc, "acme/stock/north").level("tee") == 20


async def test_acknowledged_updates_survive_sigkill_at_random_moments(relay: RelayProcess) -> None:
    """Kill the relay mid-stream several times; every acknowledged update is there after each restart."""
    rng = random.Random(7)
    acknowledged: list[bytes] = []
    name = "acme/cart/crash"
    for _round in range(4):
        url = relay.url_for(name)
        async with ypeer(url, acks=True) as writer:
            base = writer.acked
            sent: list[bytes] = []
            kill_after = rng.randint(5, 60)
            for i in range(200):
                sent.append(await writer.edit(lambda d, i=i: d.get("ops", type=Array).append({"i": i, "r": _round})))
                if i == kill_after:
                    break
            # Wait for some acks, then kill while more are in flight.
            await writer.wait_acked(base + rng.randint(1, len(sent)))
            relay.kill()
            with anyio.fail_after(5):
                while writer.close_code is None and writer.ws.state.name != "CLOSED":
                    await anyio.sleep(0.01)
            acknowledged.extend(sent[: writer.acked - base])
        relay.start()
        async with ypeer(relay.url_for(name)) as reader:
            present = {(item["r"], item["i"]) for item in _ops(reader.doc)}  # type: ignore[index]
            for update in acknowledged:
                probe = Doc()
                probe.apply_update(update)
                for item in _ops(probe):
                    assert (item["r"], item["i"]) in present  # type: ignore[index]
    with sqlite3.connect(relay.data_dir / "syncline.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_signal_closes_peers_with_going_away_and_exits_zero(
    relay: RelayProcess, stop: signal.Signals
) -> None:
    async with ypeer(relay.url_for("acme/cart/bye"), acks=True) as peer:
        await peer.edit(lambda d: d.get("ops", type=Array).append({"bye": 1}))
        await peer.wait_acked(2)
        assert relay.process is not None
        relay.process.send_signal(stop)
        with anyio.fail_after(15):
            code = await anyio.to_thread.run_sync(relay.process.wait)
        assert code == 0
        with anyio.fail_after(5):
            while peer.close_code is None:
                await anyio.sleep(0.01)
        assert peer.close_code == closecodes.GOING_AWAY
    relay.start()
    async with ypeer(relay.url_for("acme/cart/bye")) as again:
        assert _ops(again.doc) == [{"bye": 1.0}]


async def test_read_only_peer_receives_updates_but_is_closed_when_it_writes(relay: RelayProcess) -> None:
    name = "acme/cart/ro"
    async with ypeer(relay.url_for(name)) as writer, ypeer(relay.url_for(name, read_only=True)) as reader:
        await writer.edit(lambda d: d.get("ops", type=Array).append({"x": 1}))
        await reader.wait_until(lambda d: len(_ops(d)) == 1)
        await reader.edit(lambda d: d.get("ops", type=Array).append({"sneaky": 1}))
        await reader.wait_until(lambda d: reader.close_code is not None)
        assert reader.close_code == closecodes.READ_ONLY
    assert all(b"sneaky" not in blob for _doc, blob in relay.stored_rows())


async def test_a_bearer_header_is_accepted_like_the_query_parameter(relay: RelayProcess) -> None:
    token = relay.token("acme", "acme/cart/*")
    async with ypeer(relay.url("acme/cart/h"), additional_headers={"Authorization": f"Bearer {token}"}) as peer:
        assert peer.synced.is_set()


async def test_health_readiness_and_metrics_endpoints_answer(relay: RelayProcess) -> None:
    async with ypeer(relay.url_for("acme/cart/m"), acks=True) as peer:
        await peer.edit(lambda d: d.get("ops", type=Array).append({"m": 1}))
        await peer.wait_acked(2)
        async with httpx.AsyncClient(base_url=relay.http_url) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["rooms"] == 1
            metrics = (await http.get("/metrics")).text
    for line in ("syncline_connections 1.0", "syncline_rooms 1.0", "syncline_updates_committed_total 1.0"):
        assert line in metrics
    assert "syncline_commit_seconds_bucket" in metrics
    assert 'syncline_messages_total{direction="in"}' in metrics


async def test_an_idle_room_is_evicted_and_reloads_from_the_store(relay_factory: type[RelayProcess]) -> None:
    relay = relay_factory("--room-idle-seconds", "0.2")  # type: ignore[call-arg]
    async with ypeer(relay.url_for("acme/cart/idle"), acks=True) as peer:
        await peer.edit(lambda d: d.get("ops", type=Array).append({"kept": 1}))
        await peer.wait_acked(2)
    async with httpx.AsyncClient(base_url=relay.http_url) as http:
        with anyio.fail_after(5):
            while (await http.get("/readyz")).json()["rooms"] != 0:
                await anyio.sleep(0.05)
    async with ypeer(relay.url_for("acme/cart/idle")) as again:
        assert _ops(again.doc) == [{"kept": 1.0}]


async def test_compaction_folds_the_log_into_a_snapshot_without_losing_anything(
    relay_factory: type[RelayProcess],
) -> None:
    relay = relay_factory("--compaction-updates", "10")  # type: ignore[call-arg]
    async with ypeer(relay.url_for("acme/cart/long"), acks=True) as peer:
        for i in range(45):
            await peer.edit(lambda d, i=i: d.get("ops", type=Array).append({"i": i}))
        await peer.wait_acked(46)
    with sqlite3.connect(relay.data_dir / "syncline.sqlite3") as db:
        log_rows = db.execute("SELECT COUNT(*) FROM updates").fetchone()[0]
        snapshots = db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
    assert snapshots == 1 and log_rows < 10
    assert relay.terminate() == 0
    relay.start()
    async with ypeer(relay.url_for("acme/cart/long")) as late:
        assert [item["i"] for item in _ops(late.doc)] == list(range(45))  # type: ignore[index]


async def test_the_ack_extension_is_only_spoken_to_peers_that_ask(relay: RelayProcess) -> None:
    async with connect(relay.url_for("acme/cart/plain")) as ws:
        await ws.send(protocol.sync_step1(Doc().get_state()))
        await ws.send(protocol.sync_update(b"\x00\x00"))
        doc = Doc()
        doc.get("ops", type=Array).append({"p": 1})
        await ws.send(protocol.sync_update(doc.get_update()))
        kinds = []
        with anyio.move_on_after(0.5):
            async for frame in ws:
                kinds.append(protocol.decode(frame).kind)  # type: ignore[arg-type]
    assert protocol.Kind.EXTENSION not in kinds
    assert protocol.Kind.STEP1 in kinds and protocol.Kind.STEP2 in kinds
