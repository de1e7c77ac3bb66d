"""Crashes of the services themselves: Redis killed with SIGKILL and PostgreSQL crashed
(``pg_ctl stop -m immediate``) under two relay nodes, then restarted on the same port.

Unlike test_faults.py, which cuts or black-holes a link to the machine's shared servers,
these tests start servers of their own (harness/own_services.py) and kill them. What users
see (acks, close codes, readiness), how long recovery takes, and that nothing acknowledged
is lost; the numbers printed here are the ones in docs/cluster.md.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import httpx
import pytest
from syncline.engine import Cart, closecodes, protocol

from harness.line_writer import LineWriter
from harness.own_services import OwnPostgres, OwnRedis, own_postgres, own_redis
from harness.relay_process import RelayProcess
from harness.services import create_schema, fresh_channel_prefix, fresh_schema_name, redis_url
from harness.ypeer import ypeer

from .conftest import Cluster

pytestmark = pytest.mark.anyio

CART = "acme/cart/crash"
@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[OwnRedis]:
    with own_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def postgres_server(tmp_path: Path) -> Iterator[OwnPostgres]:
    with own_postgres(tmp_path / "pg") as server:
        yield server


@pytest.fixture
def private_cluster(tmp_path: Path, postgres_server: OwnPostgres) -> Iterator[Cluster]:
    """Nodes on a schema of the private PostgreSQL, sharing the machine's Redis."""
    schema = fresh_schema_name()
    create_schema(postgres_server.dsn, schema)
    made = Cluster(tmp_path, postgres_server.dsn, schema, redis_url(), fresh_channel_prefix())
    try:
        yield made
    finally:
        made.stop()  # before the server goes (the fixture order): no node outlives its store


async def _each_acked(writers: list[LineWriter], count: int, timeout: float = 10.0) -> None:
    """Wait until every writer has ``count`` writes acknowledged."""
    with anyio.fail_after(timeout):
        while min(writer.acked for writer in writers) < count:
            await anyio.sleep(0.05)


async def _ready(http: httpx.AsyncClient) -> tuple[int, dict[str, object], float]:
    asked = time.perf_counter()
    response = await http.get("/readyz")
    return response.status_code, response.json(), time.perf_counter() - asked


async def _wait_fanout(node: RelayProcess, state: str, timeout: float) -> None:
    async with httpx.AsyncClient(base_url=node.http_url, timeout=5) as http:
        with anyio.fail_after(timeout):
            while True:
                code, body, _ = await _ready(http)
                assert code == 200, body  # a fan-out outage never makes a node unready
                if body.get("fanout") == state:
                    if state == "degraded":
                        assert "fan-out unavailable" in str(body["reason"]), body
                    return
                await anyio.sleep(0.05)


async def _wait_status(node: RelayProcess, status: int, timeout: float, *, answer_bound: float = 1.5) -> None:
    """Poll ``/readyz`` until it answers ``status``; every answer within ``answer_bound`` seconds."""
    async with httpx.AsyncClient(base_url=node.http_url, timeout=5) as http:
        with anyio.fail_after(timeout):
            while True:
                code, body, took = await _ready(http)
                assert took < answer_bound, f"/readyz took {took:.2f} s"
                if code == status:
                    assert status != 503 or (body["status"] == "unavailable"
                                             and str(body["reason"]).startswith("store unavailable: ")), body
                    return
                await anyio.sleep(0.05)


async def _stay_ready(node: RelayProcess, answers: list[int]) -> None:
    """Poll ``/readyz`` until cancelled; every answer must be 200, within 1.5 s."""
    async with httpx.AsyncClient(base_url=node.http_url, timeout=5) as http:
        while True:
            code, body, took = await _ready(http)
            assert code == 200 and took < 1.5, (code, body, took)
            answers.append(code)
            await anyio.sleep(0.1)


def _quantity(doc: Cart, line: str) -> int:
    return sum(row.quantity for row in doc.lines() if row.product_id == line)


async def test_redis_killed_under_two_nodes_leaves_them_ready_acknowledging_and_polling_then_they_resume(
    redis_server: OwnRedis, cluster: Cluster,
) -> None:
    a, b = cluster.node(redis=redis_server.url), cluster.node(redis=redis_server.url)
    async with anyio.create_task_group() as starting:
        starting.start_soon(anyio.to_thread.run_sync, a.start)
        starting.start_soon(anyio.to_thread.run_sync, b.start)
    async with ypeer(a.url_for(CART), acks=True) as writer, ypeer(b.url_for(CART)) as reader:
        cart, seen = Cart(writer.doc, "c1"), Cart(reader.doc, "c1")
        await writer.edit(lambda doc: cart.add_item("tee", 1))
        await writer.wait_acked(2)
        await reader.wait_until(lambda doc: seen.view().total_quantity == 1, timeout=2)

        answers: list[int] = []
        async with anyio.create_task_group() as probing:
            for node in (a, b):  # every /readyz answer from the kill until fan-out is back: 200
                probing.start_soon(_stay_ready, node, answers)
            killed = time.perf_counter()
            await anyio.to_thread.run_sync(redis_server.kill)
            async with anyio.create_task_group() as watching:
                watching.start_soon(_wait_fanout, a, "degraded", 10)
                watching.start_soon(_wait_fanout, b, "degraded", 10)
            degraded = time.perf_counter() - killed
            delays = []
            for n in range(2, 7):
                await writer.edit(lambda doc: cart.add_item("tee", 1))
                await writer.wait_acked(n + 1)  # acknowledged without Redis
                started = time.perf_counter()
                await reader.wait_until(lambda doc, n=n: seen.view().total_quantity == n, timeout=5)
                delays.append(time.perf_counter() - started)

            restarted = time.perf_counter()
            await anyio.to_thread.run_sync(redis_server.restart)
            back = time.perf_counter() - restarted
            async with anyio.create_task_group() as watching:
                watching.start_soon(_wait_fanout, a, "ok", 15)
                watching.start_soon(_wait_fanout, b, "ok", 15)
            ok = time.perf_counter() - restarted
            probing.cancel_scope.cancel()
        await writer.edit(lambda doc: cart.add_item("tee", 1))
        started = time.perf_counter()
        await reader.wait_until(lambda doc: seen.view().total_quantity == 7, timeout=2)
        after = time.perf_counter() - started
        await writer.wait_acked(8)

    print(f"\nredis-server SIGKILLed under 2 nodes: both degraded {degraded:.2f} s after the kill, "
          f"{len(answers)} /readyz answers all 200; "
          f"writes acked on node A reached node B's reader in {min(delays):.2f}..{max(delays):.2f} s; "
          f"restarted in {back:.2f} s, both nodes' fan-out ok {ok:.2f} s after the restart began; "
          f"the next write reached node B in {after * 1000:.0f} ms")
    assert max(delays) < 3, delays  # one poll period (1 s) and a load
    assert after < 1.0, "after the restart a write travels by Redis again, not by polling"
    assert cluster.stored_changes(CART) == 7
    assert _quantity(Cart(cluster.stored_doc(CART), "c1"), "tee") == 7
    for node in (a, b):
        assert "Traceback" not in node.log(), node.log()[-3000:]


async def test_an_awareness_change_made_during_a_redis_outage_reaches_the_other_node_when_redis_is_back(
    redis_server: OwnRedis, cluster: Cluster,
) -> None:
    """Bob moves while the nodes cannot hear each other. Node B gets back on Redis first and asks
    for the other nodes' clients (``aq``) while node A is not listening yet; when A rejoins, it
    publishes its own clients' awareness, so the watcher on B gets bob's new state without bob
    sending it again."""
    a, b = cluster.node(redis=redis_server.url), cluster.node(redis=redis_server.url)
    async with anyio.create_task_group() as starting:
        starting.start_soon(anyio.to_thread.run_sync, a.start)
        starting.start_soon(anyio.to_thread.run_sync, b.start)
    assert a.process is not None
    here, there = '{"user":{"name":"bob","at":1}}', '{"user":{"name":"bob","at":2}}'
    async with ypeer(a.url_for(CART)) as bob, ypeer(b.url_for(CART)) as watcher:
        await bob.ws.send(protocol.awareness(protocol.encode_awareness([protocol.AwarenessEntry(88, 1, here)])))
        await _until(lambda: watcher.awareness_states().get(88) == here, 5)
        await anyio.to_thread.run_sync(redis_server.kill)
        async with anyio.create_task_group() as watching:
            watching.start_soon(_wait_fanout, a, "degraded", 10)
            watching.start_soon(_wait_fanout, b, "degraded", 10)
        await bob.ws.send(protocol.awareness(protocol.encode_awareness([protocol.AwarenessEntry(88, 2, there)])))
        await anyio.sleep(0.3)  # node A has it; it could not publish it
        assert watcher.awareness_states().get(88) == here
        os.kill(a.process.pid, signal.SIGSTOP)  # A rejoins last: B's request reaches nobody
        try:
            await anyio.to_thread.run_sync(redis_server.restart)  # all within a node's 5 s expiry
            await _wait_fanout(b, "ok", 4)
            await anyio.sleep(0.2)
            assert watcher.awareness_states().get(88) == here
        finally:
            os.kill(a.process.pid, signal.SIGCONT)
        await _until(lambda: watcher.awareness_states().get(88) == there, 4)


async def _until(predicate: Callable[[], bool], timeout: float) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


async def test_postgresql_crashed_under_two_nodes_refuses_writes_quickly_loses_nothing_acknowledged_and_recovers(
    private_cluster: Cluster, postgres_server: OwnPostgres,
) -> None:
    cluster = private_cluster
    one, two = cluster.node(), cluster.node()
    async with anyio.create_task_group() as starting:
        starting.start_soon(anyio.to_thread.run_sync, one.start)
        starting.start_soon(anyio.to_thread.run_sync, two.start)
    nodes = (one, two)
    timings: dict[str, float] = {}
    sent = {"n1": 0, "n2": 0}
    acked = {"n1": 0, "n2": 0}
    stop = anyio.Event()

    async def not_ready(node: RelayProcess, key: str, crashed: float) -> None:
        await _wait_status(node, 503, 3)
        timings[key] = time.perf_counter() - crashed

    async with AsyncExitStack() as stack:
        writers = [LineWriter(await stack.enter_async_context(ypeer(node.url_for(CART), acks=True)), f"n{i + 1}")
                   for i, node in enumerate(nodes)]
        async with anyio.create_task_group() as writing:
            for writer in writers:
                writing.start_soon(writer.run, stop)
            await _each_acked(writers, 50)
            crashed = time.perf_counter()
            await anyio.to_thread.run_sync(postgres_server.kill)  # mid-writes
            timings["killed"] = time.perf_counter() - crashed
            async with anyio.create_task_group() as watching:
                watching.start_soon(not_ready, one, "not_ready_1", crashed)
                watching.start_soon(not_ready, two, "not_ready_2", crashed)
            with anyio.fail_after(12):  # the writers end on their own: refused, or unanswered for 5 s
                while any(writer.ended_at is None for writer in writers):
                    await anyio.sleep(0.02)
            stop.set()
        acked_before = [writer.acked for writer in writers]
        codes = [writer.peer.close_code for writer in writers]
        ended = [writer.ended_at - crashed for writer in writers if writer.ended_at is not None]
        for writer in writers:
            sent[writer.line] += writer.sent
            acked[writer.line] += writer.acked

    restarting = time.perf_counter()
    await anyio.to_thread.run_sync(postgres_server.restart)  # crash recovery: replays the WAL
    timings["restarted"] = time.perf_counter() - restarting
    async with anyio.create_task_group() as watching:
        for node in nodes:
            watching.start_soon(_wait_status, node, 200, 20)
    timings["ready"] = time.perf_counter() - restarting

    again = anyio.Event()
    async with AsyncExitStack() as stack:
        fresh = [LineWriter(await stack.enter_async_context(ypeer(node.url_for(CART), acks=True)), f"n{i + 1}")
                 for i, node in enumerate(nodes)]
        async with anyio.create_task_group() as writing:
            for writer in fresh:
                writing.start_soon(writer.run, again)
            await _each_acked(fresh, 20)
            again.set()
        for writer in fresh:
            assert writer.ended_at is not None and writer.peer.close_code is None
            sent[writer.line] += writer.sent
            acked[writer.line] += writer.acked
        # Each node's room holds what both nodes' writers stored, before and after the crash.
        for writer in fresh:
            await writer.peer.wait_until(lambda doc: all(
                _quantity(Cart(doc, "c1"), line) >= acked[line] for line in acked), timeout=5)
    stored = Cart(cluster.stored_doc(CART), "c1")
    views = []
    for node in nodes:
        async with ypeer(node.url_for(CART)) as reader:
            views.append({line: _quantity(Cart(reader.doc, "c1"), line) for line in sent})

    in_flight = {line: _quantity(stored, line) - acked[line] for line in sent}
    behind = [{line: _quantity(stored, line) - view[line] for line in sent} for view in views]
    print(f"\nPostgreSQL crashed (pg_ctl stop -m immediate, {timings['killed']:.2f} s) under 2 nodes after "
          f"{sum(acked_before)} acked writes: /readyz 503 after {timings['not_ready_1']:.2f} s and "
          f"{timings['not_ready_2']:.2f} s (each answer < 1.5 s); writers closed with {codes} "
          f"{min(ended):.2f}..{max(ended):.2f} s after the crash; restarted with WAL recovery in "
          f"{timings['restarted']:.2f} s, both nodes ready {timings['ready']:.2f} s after the restart began; "
          f"per line acked/stored/sent {[(acked[line], _quantity(stored, line), sent[line]) for line in sent]}; "
          f"stored but refused (in flight at the crash) {in_flight}; nodes' rooms behind the store by {behind}")
    # Each writer is refused (4504) or left unacknowledged; never closed any other way.
    assert all(code in (closecodes.STORE_UNAVAILABLE, None) for code in codes), codes
    assert max(ended) < 6
    for line, count in sent.items():
        assert acked[line] <= _quantity(stored, line) <= count, (line, acked[line], count)
    # A write stored at the crash but refused (its answer lost) is in every open room too: the
    # node that refused it read the store again before its next write and published what it found.
    assert behind == [{line: 0 for line in sent}] * len(nodes), behind
    assert cluster.stored_changes(CART) <= sum(sent.values()), "an update was stored twice"
    for node in nodes:
        assert "Traceback" not in node.log(), node.log()[-3000:]
