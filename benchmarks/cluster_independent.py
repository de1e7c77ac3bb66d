"""Independent rooms on 1, 2 and 3 nodes: does the acked write rate hold as nodes are added?

``python -m benchmarks.cluster --only independent`` (add ``--quick`` for a short run).
Each writer has its own room (``bench/cart/ind-<n>``), writers are spread evenly over the
nodes, and each keeps a window of unacknowledged updates for a fixed time. Reported per
setup: the cluster's acked writes per second; per node, the mean and p99 bucket of its
commit time (``syncline_commit_seconds`` from its ``/metrics``, before and after) and
its lock waits, sampled every 50 ms from ``pg_stat_activity`` (sessions of that node,
named ``syncline:host:pid``, waiting with ``wait_event_type = 'Lock'``).

Everything shares one machine (relays, PostgreSQL, Redis and this load generator), so a
falling rate as nodes are added is first the shared cores; lock waits near zero say the
store no longer serializes independent rooms.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import asyncpg
import httpx

from harness.relay_process import RelayProcess
from harness.services import create_schema, drop_schema, fresh_schema_name

from syncline.engine import protocol

SAMPLE_SECONDS = 0.05


@dataclass
class NodeStats:
    node: int
    writers: int
    commits: int
    mean_commit_ms: float
    lock_wait_samples: int
    samples: int


@dataclass
class IndependentRow:
    nodes: int
    writers: int
    seconds: float
    acked_per_s: float
    per_node: list[NodeStats] = field(default_factory=list)


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


async def _commit_totals(node: RelayProcess) -> tuple[float, float]:
    async with httpx.AsyncClient(base_url=node.http_url, timeout=5) as http:
        text = (await http.get("/metrics")).text
    return _metric(text, "syncline_commit_seconds_sum"), _metric(text, "syncline_commit_seconds_count")


async def _sample_lock_waits(dsn: str, pids: list[int], counts: list[int], stop: anyio.Event) -> int:
    """Sample pg_stat_activity until ``stop``: per node, how many samples found it waiting on a lock."""
    con = await asyncpg.connect(dsn, timeout=5)
    samples = 0
    try:
        while not stop.is_set():
            rows = await con.fetch(
                "SELECT application_name FROM pg_stat_activity"
                " WHERE application_name LIKE 'syncline:%' AND wait_event_type = 'Lock'"
            )
            waiting = {str(row[0]).rsplit(":", 1)[-1] for row in rows}
            for index, pid in enumerate(pids):
                if str(pid) in waiting:
                    counts[index] += 1
            samples += 1
            await anyio.sleep(SAMPLE_SECONDS)
    finally:
        await con.close()
    return samples


async def measure_independent(nodes: list[RelayProcess], dsn: str, writers: int, window: int,
                              seconds: float) -> IndependentRow:
    from benchmarks.cluster import Peer, updates_for

    stamp = time.monotonic_ns()
    peers = [await Peer.open(nodes[i % len(nodes)].url_for(f"bench/cart/ind-{stamp}-{i}"), acks=True)
             for i in range(writers)]
    pids = [node.process.pid for node in nodes if node.process is not None]
    lock_waits = [0] * len(nodes)
    before = [await _commit_totals(node) for node in nodes]
    sent = [0] * writers
    async with anyio.create_task_group() as tg:
        for peer in peers:
            tg.start_soon(peer.run)
        for peer in peers:
            await peer.wait(lambda p=peer: p.acked >= 1)
        deadline = time.perf_counter() + seconds

        async def write(index: int) -> None:
            peer = peers[index]
            batch, produced = updates_for(index + 1, 400), 0
            while time.perf_counter() < deadline:
                if produced == len(batch):
                    batch, produced = updates_for(index + 1 + 1000 * (sent[index] // 400 + 1), 400), 0
                if sent[index] - (peer.acked - 1) >= window:
                    await peer.wait(lambda: sent[index] - (peer.acked - 1) < window)
                    continue
                await peer.ws.send(protocol.sync_update(batch[produced]))
                produced += 1
                sent[index] += 1

        stop = anyio.Event()
        samples = 0

        async def sample() -> None:
            nonlocal samples
            samples = await _sample_lock_waits(dsn, pids, lock_waits, stop)

        tg.start_soon(sample)
        began = time.perf_counter()
        async with anyio.create_task_group() as writing:
            for index in range(writers):
                writing.start_soon(write, index)
        for index, peer in enumerate(peers):
            await peer.wait(lambda p=peer, i=index: p.acked - 1 >= sent[i], timeout=30)
        elapsed = time.perf_counter() - began
        stop.set()
        for peer in peers:
            await peer.ws.close()
        await asyncio.sleep(SAMPLE_SECONDS * 2)
        tg.cancel_scope.cancel()
    after = [await _commit_totals(node) for node in nodes]
    row = IndependentRow(nodes=len(nodes), writers=writers, seconds=round(elapsed, 2),
                         acked_per_s=round(sum(sent) / elapsed, 1))
    for index, ((s0, c0), (s1, c1)) in enumerate(zip(before, after, strict=True)):
        commits = int(c1 - c0)
        row.per_node.append(NodeStats(
            node=index + 1, writers=len(range(index, writers, len(nodes))), commits=commits,
            mean_commit_ms=round(1000 * (s1 - s0) / commits, 2) if commits else 0.0,
            lock_wait_samples=lock_waits[index], samples=samples,
        ))
    return row


def run_independent(dsn: str, redis: str, *, quick: bool) -> list[IndependentRow]:
    from benchmarks.cluster import start_nodes

    rows = []
    writers, window, seconds = 6, 8, (3.0 if quick else 8.0)
    with tempfile.TemporaryDirectory(prefix="syncline-cluster-independent-") as tmp:
        for count in (1, 2, 3):
            schema = fresh_schema_name()
            create_schema(dsn, schema)
            nodes = start_nodes("pg+redis", count, Path(tmp), dsn, redis, schema)
            try:
                row = anyio.run(measure_independent, nodes, f"{dsn}", writers, window, seconds)
            finally:
                for node in nodes:
                    node.stop()
                drop_schema(dsn, schema)
            rows.append(row)
            print(format_independent(row), flush=True)
    return rows


def format_independent(row: IndependentRow) -> str:
    nodes = "; ".join(
        f"node {s.node}: {s.writers} writers, {s.commits} commits, mean commit {s.mean_commit_ms:.2f} ms, "
        f"lock waits in {s.lock_wait_samples}/{s.samples} samples"
        for s in row.per_node
    )
    return f"{row.nodes} node(s): {row.acked_per_s:>7.0f} acked/s over {row.seconds} s  [{nodes}]"
