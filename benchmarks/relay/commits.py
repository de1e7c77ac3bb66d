"""Store commits: group commit in process on SQLiteStore, and durable acks through the relay."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map
from syncline.engine import protocol
from syncline.engine.protocol import Kind
from syncline.server.store.sqlite import SQLiteStore
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.common import connection_caps, percentiles
from benchmarks.procs import (
    STORE_FILE,
    cpu_seconds,
    relay_running,
    scrape_metrics,
    store_counters,
)
from benchmarks.relay.config import TENANT, Config
from harness.relay_process import RelayProcess


def small_updates(count: int, client_id: int) -> list[bytes]:
    """``count`` real Yjs updates of one peer, each setting one small map key."""
    doc = Doc(client_id=client_id)
    m = doc.get("m", type=Map)
    out: list[bytes] = []
    doc.observe(lambda event: out.append(event.update))
    for i in range(count):
        m[f"k{i % 50}"] = i
    return out


async def store_commit_rate(path: Path, writers: int, seconds: float) -> dict[str, Any]:
    """``writers`` tasks, each appending and awaiting its commit in a loop, for ``seconds``."""
    update = small_updates(1, 1)[0]
    latencies: list[float] = []
    async with SQLiteStore(path) as store:
        commits0, updates0 = store.commits, store.committed_updates
        stop = time.perf_counter() + seconds

        async def writer(w: int) -> None:
            doc = f"{TENANT}/cart/w{w}"
            while time.perf_counter() < stop:
                t = time.perf_counter()
                await store.append(doc, update)
                latencies.append(time.perf_counter() - t)

        t0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        commits, updates = store.commits - commits0, store.committed_updates - updates0
    lat = percentiles([1000 * x for x in latencies])
    return {
        "writers": writers, "seconds": elapsed, "updates": updates, "commits": commits,
        "updates_per_s": updates / elapsed, "commits_per_s": commits / elapsed,
        "mean_batch": updates / commits if commits else None, "commit_wait_ms": lat,
        "cpu_us_per_update": 1e6 * cpu / updates if updates else None,
    }


async def handshake(ws: ClientConnection, doc: Doc, acks: bool) -> int:
    """y-websocket handshake (+ ack hello); return the writes the relay will count for us."""
    if acks:
        await ws.send(protocol.extension({"op": "hello", "acks": True}))
    await ws.send(protocol.sync_step1(doc.get_state()))
    writes, synced, acked = 0, False, 0
    while not synced or (acks and acked < writes):
        message = protocol.decode(await ws.recv())
        if message.kind is Kind.STEP1:
            await ws.send(protocol.sync_step2(doc.get_update(message.payload)))
            writes += 1
        elif message.kind is Kind.STEP2:
            doc.apply_update(message.payload)
            synced = True
        elif message.kind is Kind.EXTENSION:
            body = protocol.decode_extension(message.payload)
            if body["op"] == "ack":
                acked = body["n"]
    return writes


async def relay_ack_peer(url: str, peer: int, stop_at: float, latencies: list[float]) -> int:
    """One peer in its own room: send an update, await its ack, repeat until ``stop_at``."""
    doc = Doc(client_id=10_000 + peer)
    m = doc.get("m", type=Map)
    async with connect(url, max_size=None, compression=None) as ws:
        writes = await handshake(ws, doc, acks=True)
        done = 0
        i = 0
        while time.perf_counter() < stop_at:
            before = doc.get_state()
            m[f"k{i % 50}"] = i
            i += 1
            update = doc.get_update(before)
            t = time.perf_counter()
            await ws.send(protocol.sync_update(update))
            writes += 1
            await acked(ws, writes)
            latencies.append(time.perf_counter() - t)
            done += 1
        return done


async def relay_commit_rate(relay: RelayProcess, writers: int, seconds: float) -> dict[str, Any]:
    before = await asyncio.to_thread(scrape_metrics, relay)
    assert relay.process is not None
    cpu0 = cpu_seconds(relay.process.pid)
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    t0 = time.perf_counter()
    urls = [relay.url_for(f"{TENANT}/cart/commit-{writers}-{p}") for p in range(writers)]
    counts = await asyncio.gather(*(relay_ack_peer(u, p, stop_at, latencies) for p, u in enumerate(urls)))
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(relay.process.pid) - cpu0
    after = await asyncio.to_thread(scrape_metrics, relay)
    store = store_counters(before, after)
    acked = sum(counts)
    return {
        "writers": writers, "seconds": elapsed, "acked_updates": acked, "acked_per_s": acked / elapsed,
        "commits": store["commits"], "commits_per_s": store["commits"] / elapsed,
        "mean_batch": store["mean_batch"], "mean_commit_ms": store["mean_commit_ms"],
        "ack_latency_ms": percentiles([1000 * x for x in latencies]),
        "server_cpu_seconds": cpu,
        "server_cpu_us_per_update": 1e6 * cpu / acked if acked else None,
    }


def bench_commits(cfg: Config, work: Path) -> dict[str, Any]:
    store_rows = []
    for n in cfg.store_writers:
        path = work / f"commits-store-{n}" / STORE_FILE
        store_rows.append(asyncio.run(store_commit_rate(path, n, cfg.store_seconds)))
    relay_rows = []
    # Peers here send as fast as their acks come back: lift the per-connection rate limit.
    flags = (*connection_caps(5000), "--rate-messages-per-second", "1000000", "--rate-burst", "1000000")
    with relay_running(work / "commits-relay", *flags) as relay:
        for n in cfg.commit_writers:
            relay_rows.append(asyncio.run(relay_commit_rate(relay, n, cfg.commit_seconds)))
    return {"synchronous": "FULL", "store": store_rows, "relay": relay_rows}


async def acked(ws: Any, writes: int) -> None:
    """Read frames until the relay acknowledges ``writes`` writes (durable acks on)."""
    while True:
        message = protocol.decode(await ws.recv())
        if message.kind is Kind.EXTENSION:
            body = protocol.decode_extension(message.payload)
            if body["op"] == "ack" and body["n"] >= writes:
                return
