"""Cluster benchmark: cross-node fan-out latency and throughput for 1, 2 and 3 relay nodes on loopback.

Run from the repository root (PostgreSQL and Redis must answer on loopback)::

    python -m benchmarks.cluster                 # about a minute
    python -m benchmarks.cluster --quick         # smoke run, ~20 seconds
    python -m benchmarks.cluster --dsn postgresql://postgres@127.0.0.1:5432/test --redis redis://127.0.0.1:6379/0

Setups, each a fresh set of real ``syncline serve`` processes:

- ``sqlite``: one node on the embedded SQLite file, no fan-out (the single-node default);
- ``pg``: one node on PostgreSQL, no fan-out (what the store alone costs);
- ``pg+redis xN`` for N = 1, 2, 3: N nodes on one fresh PostgreSQL schema (dropped
  afterwards), sharing rooms through Redis pub/sub (``--fanout``).

Latency: one writer on node 1 sends updates one at a time (with durable acks) to one
room; a reader on every node waits for each. Each sample is the time from the send to
a reader receiving the update: "same node" is the reader on node 1 (store, broadcast),
"cross-node" the readers on the other nodes (store, broadcast, publish, Redis, apply,
broadcast). Throughput: writers spread evenly over the nodes, each keeping a window of
unacknowledged updates, write to one shared room for a fixed time; a reader on each node
counts what it receives. ``acked/s`` is the cluster's durable write rate, ``delivered/s``
the rate at which every reader saw the room change (each update reaches every reader once).

Everything (relays, PostgreSQL, Redis and this load generator) shares the machine, so
the figures are for comparing setups with each other, not for capacity planning. The
store-level PostgreSQL vs SQLite commit rates come from ``benchmarks/store_pg.py``
(its saved results are copied into the output when present). Printed, and saved as
JSON (default ``benchmarks/runs/cluster.json``, summary in ``benchmarks/results/cluster.json``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
from pycrdt import Doc, Map
from syncline.engine import encode_diff
from syncline.engine import protocol
from syncline.engine.protocol import Kind
from websockets.asyncio.client import ClientConnection, connect

from benchmarks import common
from benchmarks.common import percentile
from harness.relay_process import RelayProcess
from harness.services import (
    create_schema,
    drop_schema,
    fresh_channel_prefix,
    fresh_schema_name,
    postgres_dsn,
    redis_url,
)

STORE_PG_RESULTS = common.RESULTS / "store_pg.json"
ROOM = "bench/cart/shared"


@dataclass(frozen=True)
class Config:
    quick: bool
    latency_samples: int
    throughput_seconds: float
    writers: int
    window: int


@dataclass
class Row:
    setup: str
    nodes: int
    same_p50_ms: float
    same_p95_ms: float
    same_p99_ms: float
    cross_p50_ms: float | None
    cross_p95_ms: float | None
    cross_p99_ms: float | None
    writers: int
    acked_per_s: float
    delivered_per_s: float
    """Mean over the readers (one per node)."""


def updates_for(writer: int, count: int) -> list[bytes]:
    """``count`` real Yjs updates of one writer (its own client id), each setting one map key."""
    doc = Doc(client_id=10_000 + writer)
    items = doc.get("m", type=Map)
    out = []
    for n in range(count):
        before = doc.get_state()
        items[f"w{writer}-{n}"] = n
        out.append(encode_diff(doc, before))
    return out



class Peer:
    """A raw y-websocket connection: counts updates received, counts acks."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received = 0
        self.acked = 0
        self.changed = asyncio.Event()

    @classmethod
    async def open(cls, url: str, *, acks: bool) -> Peer:
        ws = await connect(url, max_size=None, compression=None)
        peer = cls(ws)
        if acks:
            await ws.send(protocol.extension({"op": "hello", "acks": True}))
        await ws.send(protocol.sync_step1(Doc().get_state()))
        return peer

    async def run(self) -> None:
        async for frame in self.ws:
            assert isinstance(frame, bytes)
            message = protocol.decode(frame)
            if message.kind is Kind.UPDATE:
                self.received += 1
            elif message.kind is Kind.STEP1:
                await self.ws.send(protocol.sync_step2(b"\x00\x00"))
            elif message.kind is Kind.EXTENSION:
                body = protocol.decode_extension(message.payload)
                if body["op"] == "ack":
                    self.acked = body["n"]
            else:
                continue
            self.changed.set()

    async def wait(self, predicate: Any, timeout: float = 10.0) -> None:
        with anyio.fail_after(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def start_nodes(setup: str, count: int, root: Path, dsn: str | None, redis: str | None, schema: str | None
                ) -> list[RelayProcess]:
    flags = ["--rate-messages-per-second", "100000", "--rate-burst", "100000", "--send-queue-messages", "100000",
             "--compaction-updates", "2000"]
    if setup != "sqlite":
        assert dsn and redis and schema
        flags += ["--store", f"{dsn}?search_path={schema}"]
    if setup == "pg+redis":
        flags += ["--fanout", redis, "--fanout-prefix", fresh_channel_prefix()]
    nodes = [RelayProcess(root / f"{setup}-{count}-{i}", list(flags)) for i in range(count)]
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        list(pool.map(RelayProcess.start, nodes))
    return nodes


async def measure(nodes: list[RelayProcess], config: Config) -> tuple[list[float], list[float], float, float]:
    """(same-node latencies, cross-node latencies, acked/s, delivered/s per reader)."""
    room = f"{ROOM}-{time.monotonic_ns()}"
    async with anyio.create_task_group() as tg:
        readers = [await Peer.open(node.url_for(room), acks=False) for node in nodes]
        writer = await Peer.open(nodes[0].url_for(room), acks=True)
        for peer in (*readers, writer):
            tg.start_soon(peer.run)
        await writer.wait(lambda: writer.acked >= 1)  # our sync step 2 is write number 1

        same: list[float] = []
        cross: list[float] = []
        for update in updates_for(0, config.latency_samples):
            counts = [reader.received for reader in readers]
            sent = time.perf_counter()
            await writer.ws.send(protocol.sync_update(update))
            for index, reader in enumerate(readers):
                await reader.wait(lambda r=reader, c=counts[index]: r.received > c)
                (same if index == 0 else cross).append(time.perf_counter() - sent)
        await writer.wait(lambda: writer.acked >= 1 + config.latency_samples)

        writers = [await Peer.open(nodes[i % len(nodes)].url_for(room), acks=True) for i in range(config.writers)]
        for peer in writers:
            tg.start_soon(peer.run)
        for peer in writers:
            await peer.wait(lambda p=peer: p.acked >= 1)
        start_counts = [reader.received for reader in readers]
        deadline = time.perf_counter() + config.throughput_seconds
        sent_counts = [0] * len(writers)

        async def write(index: int) -> None:
            peer = writers[index]
            batch = updates_for(index + 1, 200)
            produced = 0
            while time.perf_counter() < deadline:
                if produced == len(batch):
                    batch, produced = updates_for(index + 1 + 1000 * (sent_counts[index] // 200 + 1), 200), 0
                if sent_counts[index] - (peer.acked - 1) >= config.window:
                    await peer.wait(lambda: sent_counts[index] - (peer.acked - 1) < config.window)
                    continue
                await peer.ws.send(protocol.sync_update(batch[produced]))
                produced += 1
                sent_counts[index] += 1

        began = time.perf_counter()
        async with anyio.create_task_group() as writing:
            for index in range(len(writers)):
                writing.start_soon(write, index)
        for index, peer in enumerate(writers):
            await peer.wait(lambda p=peer, i=index: p.acked - 1 >= sent_counts[i], timeout=30)
        acked_elapsed = time.perf_counter() - began
        total = sum(sent_counts)
        for reader, start in zip(readers, start_counts, strict=True):
            await reader.wait(lambda r=reader, s=start: r.received - s >= total, timeout=30)
        delivered_elapsed = time.perf_counter() - began
        for peer in (*readers, writer, *writers):
            await peer.ws.close()
        tg.cancel_scope.cancel()
    return same, cross, total / acked_elapsed, total / delivered_elapsed


def run(config: Config, dsn: str, redis: str) -> list[Row]:
    rows = []
    setups = [("sqlite", 1), ("pg", 1), ("pg+redis", 1), ("pg+redis", 2), ("pg+redis", 3)]
    with tempfile.TemporaryDirectory(prefix="syncline-cluster-bench-") as tmp:
        for setup, count in setups:
            schema = None
            if setup != "sqlite":
                schema = fresh_schema_name()
                create_schema(dsn, schema)
            nodes = start_nodes(setup, count, Path(tmp), dsn, redis, schema)
            try:
                same, cross, acked, delivered = anyio.run(measure, nodes, config)
            finally:
                for node in nodes:
                    node.stop()
                if schema is not None:
                    drop_schema(dsn, schema)
            row = Row(
                setup=setup if setup != "pg+redis" else f"{setup} x{count}", nodes=count,
                same_p50_ms=round(1000 * percentile(same, 0.50), 3),
                same_p95_ms=round(1000 * percentile(same, 0.95), 3),
                same_p99_ms=round(1000 * percentile(same, 0.99), 3),
                cross_p50_ms=round(1000 * percentile(cross, 0.50), 3) if cross else None,
                cross_p95_ms=round(1000 * percentile(cross, 0.95), 3) if cross else None,
                cross_p99_ms=round(1000 * percentile(cross, 0.99), 3) if cross else None,
                writers=config.writers, acked_per_s=round(acked, 1), delivered_per_s=round(delivered, 1),
            )
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


HEADER = (f"{'setup':<14} {'same p50/p95/p99 ms':>22} {'cross-node p50/p95/p99 ms':>27} "
          f"{'writers':>7} {'acked/s':>9} {'delivered/s':>11}")


def format_row(row: Row) -> str:
    same = f"{row.same_p50_ms:.2f}/{row.same_p95_ms:.2f}/{row.same_p99_ms:.2f}"
    cross = "-" if row.cross_p50_ms is None else f"{row.cross_p50_ms:.2f}/{row.cross_p95_ms:.2f}/{row.cross_p99_ms:.2f}"
    return (f"{row.setup:<14} {same:>22} {cross:>27} {row.writers:>7} {row.acked_per_s:>9.0f} "
            f"{row.delivered_per_s:>11.0f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.parser("cluster", __doc__, quick="fewer samples, shorter runs")
    parser.add_argument("--dsn", default=None, help="PostgreSQL DSN (default: the test server)")
    parser.add_argument("--redis", default=None, help="Redis URL (default: the test server)")
    parser.add_argument("--only", choices=["independent"], default=None,
                        help="independent: only the independent-rooms suite (benchmarks/cluster_independent.py)")
    args = parser.parse_args(argv)
    import os

    if args.dsn:
        os.environ["SYNCLINE_TEST_POSTGRES_DSN"] = args.dsn
    if args.redis:
        os.environ["SYNCLINE_TEST_REDIS_URL"] = args.redis
    os.environ["SYNCLINE_REQUIRE_SERVICES"] = "1"  # fail loudly, never "skip"
    dsn, redis = postgres_dsn(), redis_url()
    if args.only == "independent":
        from benchmarks.cluster_independent import run_independent

        independent = run_independent(dsn, redis, quick=args.quick)
        common.save("cluster_independent", {
            "machine": common.machine_info(), "rows": [asdict(row) for row in independent]},
            common.raw_path("cluster_independent"))
        return 0
    config = Config(quick=args.quick, latency_samples=100 if args.quick else 400,
                    throughput_seconds=2.0 if args.quick else 5.0, writers=6, window=16)
    started = time.perf_counter()
    print(HEADER, flush=True)
    rows = run(config, dsn, redis)
    store_pg = json.loads(STORE_PG_RESULTS.read_text()) if STORE_PG_RESULTS.exists() else None
    result = {
        "machine": common.machine_info(**{"redis-py": common.version("redis")}),
        "config": asdict(config),
        "elapsed_s": round(time.perf_counter() - started, 1),
        "rows": [asdict(row) for row in rows],
        "store_commit_rates": None if store_pg is None
        else {"source": "benchmarks/results/store_pg.json", "rows": store_pg["rows"]},
    }
    if store_pg is not None:
        print("\nstore commit rates (benchmarks/store_pg.py, appends/s):")
        for entry in store_pg["rows"]:
            print(f"  {entry['backend']:<20} writers={entry['writers']:<3} {entry['appends_per_s']:>9.0f}")
    common.save("cluster", result, args.out)
    print(f"\n{result['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
