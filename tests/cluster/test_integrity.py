"""Integrity across cluster nodes: a client ID bound on one node is bound on every node, and a
writer's updates delivered out of clock order, half to each node, are all kept."""

from __future__ import annotations

import anyio
import pytest

from syncline.engine import closecodes, protocol
from syncline.engine.tokens import issue_token
from harness.writers import cart_writes, lines_of, raw_writer
from harness.hostile import closed_with
from harness.relay_process import SECRET, RelayProcess
from harness.ypeer import ypeer

from .conftest import Cluster

pytestmark = pytest.mark.anyio


def url_as(node: RelayProcess, name: str, subject: str) -> str:
    return node.url(name, issue_token(SECRET, "acme", [name], subject=subject))


async def test_a_client_id_bound_through_one_node_is_refused_to_another_writer_on_every_node(
    cluster: Cluster,
) -> None:
    first, second = cluster.start(2)
    name = "acme/cart/bound"
    _, updates = cart_writes(701, ["tee", "mug"])
    _, forged = cart_writes(701, ["hat"])  # the same client ID, another writer
    async with raw_writer(url_as(first, name, "till")) as till:
        await till.send(updates[0])
        await till.wait_all_acked()
    assert await closed_with(url_as(second, name, "mallory"), protocol.sync_update(forged[0])) == (
        closecodes.CLIENT_ID_TAKEN)
    gc = protocol.write_varuint
    forged_gc = gc(1) + gc(1) + gc(701) + gc(2) + b"\x00" + gc(1000) + gc(0)  # GC over the till's next clocks
    assert await closed_with(url_as(second, name, "mallory"), protocol.sync_update(forged_gc)) == (
        closecodes.CLIENT_ID_TAKEN)
    async with raw_writer(url_as(second, name, "till")) as till:  # the till moves to the other node
        await till.send(updates[1])
        await till.wait_all_acked()
    for node in (first, second):
        async with ypeer(node.url_for(name)) as reader:
            with anyio.fail_after(5):
                while sorted(lines_of(reader.doc)) != ["mug", "tee"]:
                    reader.changed = anyio.Event()
                    await reader.changed.wait()
    assert sorted(lines_of(cluster.stored_doc(name))) == ["mug", "tee"]


async def test_a_writers_updates_split_across_nodes_out_of_order_are_all_kept(cluster: Cluster) -> None:
    first, second = cluster.start(2)
    name = "acme/cart/split"
    source, updates = cart_writes(702, [f"p{i}" for i in range(6)])
    async with raw_writer(url_as(second, name, "till")) as late, raw_writer(url_as(first, name, "till")) as early:
        for index in (5, 3, 1):  # held on the second node until the first node's writes reach it
            await late.send(updates[index])
        for index in (4, 0, 2):
            await early.send(updates[index])
        await early.wait_all_acked()
        await late.wait_all_acked()
    stored = cluster.stored_doc(name)
    assert stored.get_state() == source.get_state()
    assert sorted(lines_of(stored)) == [f"p{i}" for i in range(6)]
