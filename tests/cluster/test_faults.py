"""Faults injected into a running cluster: a node frozen mid-append (SIGSTOP), PostgreSQL
black-holed for one node. What users see (acks, close codes, readiness, latency) and that
nothing acknowledged is lost; the numbers printed here are the ones in docs/cluster.md.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import AsyncExitStack

import anyio
import httpx
import pytest

from syncline.engine import Cart, closecodes
from harness.line_writer import LineWriter
from harness.relay_process import RelayProcess
from harness.ypeer import YPeer, ypeer

from .conftest import Cluster
from .gate import Gate

pytestmark = pytest.mark.anyio


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def stored_quantity(cluster: Cluster, doc: str, line: str) -> int:
    cart = Cart(cluster.stored_doc(doc), "c1")
    return sum(row.quantity for row in cart.lines() if row.product_id == line)


def transaction_of(cluster: Cluster, node: RelayProcess, doc: str | None = None) -> bool:
    """Whether ``node`` has a session inside a transaction right now (holding ``doc``'s
    append lock, if given: an append to it in flight)."""
    assert node.process is not None
    if doc is None:
        rows = cluster.sql(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE $1 AND xact_start IS NOT NULL",
            f"syncline:%:{node.process.pid}",
        )
    else:
        rows = cluster.sql(
            "SELECT count(*) AS n FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
            " WHERE a.application_name LIKE $1 AND l.locktype = 'advisory' AND l.objsubid = 2"
            " AND l.granted AND l.mode = 'ExclusiveLock' AND l.objid = (hashtext($2)::bigint & 4294967295)::oid",
            f"syncline:%:{node.process.pid}", doc,
        )
    return int(rows[0]["n"]) > 0


async def test_a_node_frozen_mid_append_does_not_stall_the_others_and_loses_nothing_acknowledged(
    cluster: Cluster,
) -> None:
    nodes = cluster.start(3, "--store-timeout-seconds", "2")
    frozen = nodes[1]
    assert frozen.process is not None
    stop_writing = anyio.Event()
    async with AsyncExitStack() as stack:
        writers = [
            LineWriter(await stack.enter_async_context(ypeer(node.url_for(f"acme/cart/n{i}-{w}"), acks=True)), "tee")
            for i, node in enumerate(nodes) for w in range(3)
        ]
        async with anyio.create_task_group() as tg:
            for writer in writers:
                tg.start_soon(writer.run, stop_writing)
            await anyio.sleep(1.0)
            # Freeze node 2 at an instant it holds a transaction open (an append in flight).
            for _ in range(500):
                os.kill(frozen.process.pid, signal.SIGSTOP)
                if transaction_of(cluster, frozen):
                    break
                os.kill(frozen.process.pid, signal.SIGCONT)
                await anyio.sleep(0.003)
            else:
                pytest.fail("never caught node 2 inside a transaction")
            frozen_at = time.perf_counter()
            before = [len(writer.latencies) for writer in writers]
            await anyio.sleep(6.0)
            released = not transaction_of(cluster, frozen)  # PostgreSQL ended its session
            os.kill(frozen.process.pid, signal.SIGCONT)
            await anyio.sleep(2.0)
            stop_writing.set()
        during = [
            writer.latencies[before[i]:] for i, writer in enumerate(writers) if i // 3 != 1
        ]
        others = [latency for latencies in during for latency in latencies]

    assert released, "the frozen node's transaction outlived idle_in_transaction_session_timeout"
    assert all(writer.failed is None for i, writer in enumerate(writers) if i // 3 != 1), \
        [writer.failed for writer in writers]
    p99 = percentile(others, 0.99)
    print(f"\nnode 2 frozen {time.perf_counter() - frozen_at:.1f} s mid-append: nodes 1 and 3 acked "
          f"{len(others)} writes meanwhile, p50 {percentile(others, 0.5) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms, max {max(others) * 1000:.1f} ms")
    assert len(others) > 100 and p99 < 1.0
    for i, writer in enumerate(writers):
        doc = f"acme/cart/n{i // 3}-{i % 3}"
        assert stored_quantity(cluster, doc, "tee") >= writer.acked, f"{doc} lost acknowledged writes"


async def test_a_node_frozen_holding_a_rooms_lock_delays_that_room_on_other_nodes_briefly_and_refuses_nothing(
    cluster: Cluster,
) -> None:
    shared = "acme/cart/shared"
    nodes = cluster.start(3, "--store-timeout-seconds", "2")
    frozen = nodes[1]
    assert frozen.process is not None
    stop_writing = anyio.Event()
    async with AsyncExitStack() as stack:
        writers = [LineWriter(await stack.enter_async_context(ypeer(node.url_for(shared), acks=True)), f"n{i}")
                   for i, node in enumerate(nodes)]
        async with anyio.create_task_group() as tg:
            for writer in writers:
                tg.start_soon(writer.run, stop_writing)
            await anyio.sleep(1.0)
            # Freeze node 2 at an instant it holds the shared room's append lock.
            for _ in range(1000):
                os.kill(frozen.process.pid, signal.SIGSTOP)
                if transaction_of(cluster, frozen, shared):
                    break
                os.kill(frozen.process.pid, signal.SIGCONT)
                await anyio.sleep(0.002)
            else:
                pytest.fail("never caught node 2 holding the shared room's lock")
            before = [len(writer.latencies) for writer in writers]
            await anyio.sleep(4.0)
            released = not transaction_of(cluster, frozen)
            os.kill(frozen.process.pid, signal.SIGCONT)
            await anyio.sleep(1.0)
            stop_writing.set()
        others = [latency for i in (0, 2) for latency in writers[i].latencies[before[i]:]]

    assert released, "the frozen node's transaction outlived idle_in_transaction_session_timeout"
    assert writers[0].failed is None and writers[2].failed is None, [writer.failed for writer in writers]
    print(f"\nnode 2 frozen holding the shared room's lock: nodes 1 and 3 acked {len(others)} writes to that room "
          f"meanwhile, p50 {percentile(others, 0.5) * 1000:.1f} ms, max {max(others) * 1000:.0f} ms "
          f"(store time-out 2 s, the frozen session ended after 1 s idle)")
    assert max(others) < 2.0, "a write waited on the frozen node's lock for the whole store time-out"
    for i, writer in enumerate(writers):
        assert stored_quantity(cluster, shared, f"n{i}") >= writer.acked, f"node {i + 1} lost acknowledged writes"


async def test_a_node_whose_postgresql_goes_silent_says_so_quickly_and_loses_nothing_acknowledged(
    cluster: Cluster,
) -> None:
    doc = "acme/cart/blackhole"
    timings: dict[str, float] = {}

    async def black_hole(gate: Gate, node: RelayProcess, peer: YPeer) -> None:
        cart = Cart(peer.doc, "c1")
        acked_before = peer.acked
        gate.pause()  # node 3's PostgreSQL connections stay open and carry nothing
        cut = timings["cut"] = time.perf_counter()
        await peer.edit(lambda d: cart.add_item("mug", 1))
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            while True:
                asked = time.perf_counter()
                response = await http.get("/readyz")
                answered = time.perf_counter() - asked
                assert answered < 1.5, f"/readyz took {answered:.2f} s"
                if response.status_code == 503:
                    break
                await anyio.sleep(0.05)
            timings["not_ready"] = time.perf_counter() - cut
            assert "store unavailable" in response.json()["reason"], response.json()
            await peer.wait_until(lambda d: peer.close_code is not None, timeout=12)
            timings["closed"] = time.perf_counter() - cut
            assert peer.close_code == closecodes.STORE_UNAVAILABLE
            assert peer.acked == acked_before, "nothing is acknowledged without the store"

            gate.resume()
            resumed = timings["resumed"] = time.perf_counter()
            with anyio.fail_after(20):
                while (await http.get("/readyz")).status_code != 200:
                    await anyio.sleep(0.05)
            timings["recovered"] = time.perf_counter() - resumed

    async with anyio.create_task_group() as tg:
        gate, one, three = await cluster.gated_pair(tg, "postgresql")
        async with ypeer(one.url_for(doc), acks=True) as peer_one, ypeer(three.url_for(doc), acks=True) as peer_three:
            cart_three = Cart(peer_three.doc, "c1")
            await peer_three.edit(lambda d: cart_three.add_item("mug", 1))
            await peer_three.wait_acked(2)
            healthy = LineWriter(peer_one, "tee")
            stop = anyio.Event()
            async with anyio.create_task_group() as writing:
                writing.start_soon(healthy.run, stop)
                await anyio.sleep(0.5)
                await black_hole(gate, three, peer_three)
                stop.set()
        gate.close()
    print(f"\nPostgreSQL black-holed for node 3: /readyz 503 after {timings['not_ready']:.2f} s (each answer "
          f"< 1.5 s), its writer closed 4504 after {timings['closed']:.2f} s, ready again "
          f"{timings['recovered']:.2f} s after the link came back; node 1 acked {healthy.acked} writes meanwhile "
          f"(p99 {percentile(healthy.latencies, 0.99) * 1000:.1f} ms)")
    assert healthy.failed is None, (healthy.failed_at - timings["cut"], timings["resumed"] - timings["cut"])
    assert timings["not_ready"] < 3 and timings["closed"] < 9
    log = cluster.nodes[1].log()
    assert "Traceback" not in log and "no answer within 5 s" in log, log[-2000:]
    assert stored_quantity(cluster, doc, "tee") >= healthy.acked
    assert stored_quantity(cluster, doc, "mug") >= 1
