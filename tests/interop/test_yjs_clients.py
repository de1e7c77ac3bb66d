"""Unmodified Yjs clients (Node: yjs 13 + y-websocket's WebsocketProvider) against the relay.

Every test runs a real ``syncline serve`` subprocess and real Node processes
(tests/interop/js/peer.mjs), and ends by checking that no connection was closed
with an error code and that the relay logged no error.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pycrdt import Array, Doc, Map

from syncline.engine import Cart, encode_diff, line_key

from harness.relay_process import RelayProcess
from harness.ypeer import YPeer, ypeer
from .conftest import JsPeer, JsPeerFactory, relay_errors

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(20)]

CART_ROOTS = {"ops": "array", "lines": "map", "cart": "map"}
PLAIN_ROOTS = {"ops": "array", "m": "map"}


def py_dump(doc: Doc, roots: dict[str, str]) -> dict[str, Any]:
    """The Python peer's document as the JSON a Yjs client's ``toJSON()`` gives."""
    out: dict[str, Any] = {}
    for name, kind in roots.items():
        if kind == "array":
            out[name] = doc.get(name, type=Array).to_py() or []
        else:
            out[name] = doc.get(name, type=Map).to_py() or {}
    return out


def assert_clean(relay: RelayProcess, *peers: JsPeer | YPeer) -> None:
    """No peer was closed with an error code, every Node peer exited 0, the relay logged no error."""
    for peer in peers:
        if isinstance(peer, JsPeer):
            assert peer.bad_closes() == [], f"{peer.label}: {peer.bad_closes()}{peer.diagnostics()}"
            assert peer.returncode == 0, f"{peer.label} exited with {peer.returncode}{peer.diagnostics()}"
        else:
            assert peer.close_code in (None, 1000), f"python peer closed with {peer.close_code}"
    assert relay_errors(relay) == [], relay.log()


async def test_two_node_clients_and_a_python_peer_converge_on_concurrent_edits(
    relay: RelayProcess, js_peer: JsPeerFactory
) -> None:
    name, count = "acme/cart/interop-a", 30
    writers = ("alice", "bob", "py")

    def complete(doc: dict[str, Any]) -> bool:
        return len(doc["ops"]) == len(writers) * count and set(doc["m"]) == set(writers)

    async with (
        js_peer(relay, name, roots=PLAIN_ROOTS, label="alice") as alice,
        js_peer(relay, name, roots=PLAIN_ROOTS, label="bob") as bob,
        ypeer(relay.url_for(name)) as py,
    ):

        async def node_edits(peer: JsPeer) -> None:
            values = [{"who": peer.label, "i": i} for i in range(count)]
            await peer.request("push", array="ops", values=values, each=True)  # one update per value
            await peer.request("set", map="m", key=peer.label, value=count)

        async def python_edits() -> None:
            for i in range(count):
                await py.edit(lambda d, i=i: d.get("ops", type=Array).append({"who": "py", "i": i}))
            await py.edit(lambda d: d.get("m", type=Map).__setitem__("py", count))

        async with anyio.create_task_group() as tg:  # all three write at once
            tg.start_soon(node_edits, alice)
            tg.start_soon(node_edits, bob)
            tg.start_soon(python_edits)

        at_alice = await alice.wait_doc(complete)
        at_bob = await bob.wait_doc(complete)
        await py.wait_until(lambda d: complete(py_dump(d, PLAIN_ROOTS)), timeout=10)
        at_py = py_dump(py.doc, PLAIN_ROOTS)

        assert at_alice == at_bob == at_py  # same items, same order, on every replica
        for who in writers:
            assert [op["i"] for op in at_alice["ops"] if op["who"] == who] == list(range(count))
        assert at_alice["m"] == {who: count for who in writers}
    assert_clean(relay, alice, bob, py)


async def test_a_cart_is_the_same_document_for_a_yjs_client_and_the_engine(
    relay: RelayProcess, js_peer: JsPeerFactory
) -> None:
    name = "acme/cart/c-1"
    tee_attrs = {"size": "M", "color": {"name": "blue", "hex": "#00f"}}
    tee_reordered = {"color": {"hex": "#00f", "name": "blue"}, "size": "M"}
    mug_attrs = {"glaze": "blå", "ml": 350, "tags": ["gift", "wrapped"]}

    async with ypeer(relay.url_for(name)) as py, js_peer(relay, name, roots=CART_ROOTS) as js:
        # The engine writes; the Yjs client reads plain JSON laid out as docs/semantics.md says.
        cart = Cart(py.doc, name)
        tee = await _cart_edit(py, lambda: cart.add_item("tee", 2, tee_attrs))
        doc = await js.wait_doc(lambda d: len(d["ops"]) == 1)
        [op] = doc["ops"]
        assert set(op) == {"id", "l", "k", "n"}
        assert (op["l"], op["k"], op["n"]) == (tee, "add", 2)
        assert doc["lines"] == {tee: {"product": "tee", "attributes": tee_attrs}}

        # The Yjs client writes add operations by the documented recipe; the engine counts them.
        same = await js.request("cart_add", product="tee", attributes=tee_reordered, n=3)
        mug = await js.request("cart_add", product="mug", attributes=mug_attrs, n=1)
        assert same["key"] == tee  # same product and attributes in another key order: same line
        assert mug["key"] == line_key("mug", mug_attrs)  # non-ASCII and nested values hash alike
        await py.wait_until(lambda d: Cart(d, name).quantity(mug["key"]) == 1, timeout=10)
        view = cart.view()
        assert view.issues == ()
        assert {(line.product_id, line.quantity) for line in view.lines} == {("tee", 5), ("mug", 1)}
        mug_line = view.line(mug["key"])
        assert mug_line is not None and mug_line.attributes == mug_attrs

        # A set-quantity by the engine (deletions plus a set op) reaches the Yjs client intact.
        await _cart_edit(py, lambda: cart.set_quantity(tee, 1))
        expected = py_dump(py.doc, CART_ROOTS)
        at_js = await js.wait_doc(lambda d: d == expected)
        assert [op["k"] for op in at_js["ops"] if op["l"] == tee] == ["set"]
    assert_clean(relay, js, py)


async def _cart_edit(peer: YPeer, edit: Any) -> Any:
    before = peer.doc.get_state()
    result = edit()
    await peer.send_update(encode_diff(peer.doc, before))
    return result


async def test_a_late_node_client_receives_the_full_state_after_a_relay_restart(
    relay: RelayProcess, js_peer: JsPeerFactory
) -> None:
    name = "acme/cart/restart"
    async with (
        js_peer(relay, name, roots=PLAIN_ROOTS, label="writer") as writer,
        js_peer(relay, name, roots=PLAIN_ROOTS, label="witness") as witness,
    ):
        await writer.request("push", array="ops", values=[{"i": i} for i in range(20)], each=True)
        await writer.request("set", map="m", key="before", value=True)
        # The relay broadcasts an update only once it is stored: the witness seeing it all
        # means the relay has it all.
        await witness.wait_doc(lambda d: len(d["ops"]) == 20 and "before" in d["m"])

        assert await anyio.to_thread.run_sync(relay.terminate) == 0
        for peer in (writer, witness):
            close = await peer.wait_event("close")
            assert (close["code"], close["established"]) == (1001, True)  # going away: reconnect later
        await writer.request("set", map="m", key="offline", value=True)  # made while the relay is down
        await anyio.to_thread.run_sync(relay.start)
        for peer in (writer, witness):  # y-websocket reconnects by itself and syncs again
            await peer.wait_event("synced", count=2)
        expected = await witness.wait_doc(lambda d: "offline" in d["m"])

    async with js_peer(relay, name, roots=PLAIN_ROOTS, label="late") as late:
        assert await late.dump() == expected  # complete as soon as the provider reports synced
    assert expected["ops"] == [{"i": i} for i in range(20)]
    assert expected["m"] == {"before": True, "offline": True}
    assert_clean(relay, writer, witness, late)


async def test_awareness_reaches_other_node_clients_and_disappears_when_a_client_leaves(
    relay: RelayProcess, js_peer: JsPeerFactory
) -> None:
    name = "acme/cart/presence"
    alice_user = {"name": "Alice", "color": "#f00"}
    bob_user = {"name": "Bob", "color": "#00f"}

    async with js_peer(relay, name, roots=PLAIN_ROOTS, label="bob") as bob:
        bob_id = (await bob.request("awareness"))["self"]
        await bob.request("awareness_set", field="user", value=bob_user)

        async with js_peer(relay, name, roots=PLAIN_ROOTS, label="alice") as alice:
            alice_id = (await alice.request("awareness"))["self"]
            await alice.request("awareness_set", field="user", value=alice_user)
            await bob.wait_awareness(lambda s: s.get(alice_id, {}).get("user") == alice_user)
            # Alice joined after Bob set his state and still gets it (the relay's snapshot).
            await alice.wait_awareness(lambda s: s.get(bob_id, {}).get("user") == bob_user)
        # Alice's provider says goodbye as it disconnects: her state disappears at Bob's.
        states = await bob.wait_awareness(lambda s: alice_id not in s, timeout=5)
        assert set(states) == {bob_id} and states[bob_id]["user"] == bob_user
    assert_clean(relay, bob, alice)


async def test_the_relay_removes_the_awareness_state_of_a_node_client_that_vanishes(
    relay: RelayProcess, js_peer: JsPeerFactory
) -> None:
    name = "acme/cart/presence"
    carol_user = {"name": "Carol", "color": "#0f0"}

    async with js_peer(relay, name, roots=PLAIN_ROOTS, label="bob") as bob:
        bob_id = (await bob.request("awareness"))["self"]
        async with js_peer(relay, name, roots=PLAIN_ROOTS, label="carol") as carol:
            carol_id = (await carol.request("awareness"))["self"]
            await carol.request("awareness_set", field="user", value=carol_user)
            await bob.wait_awareness(lambda s: s.get(carol_id, {}).get("user") == carol_user)
            # Carol vanishes without a goodbye: only the relay can tell Bob she left
            # (y-protocols would drop her state on its own only after 30 s).
            carol.kill()
            states = await bob.wait_awareness(lambda s: carol_id not in s, timeout=3)
            assert set(states) == {bob_id}
    assert carol.returncode == -9
    assert_clean(relay, bob)
