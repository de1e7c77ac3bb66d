"""Cold room load against history length, stored as the raw log or as a snapshot plus a tail."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from pathlib import Path
from typing import Any

from pycrdt import Array, Doc, Map
from syncline.engine import apply_update
from syncline.engine import protocol
from syncline.engine.protocol import Kind
from syncline.server.store.sqlite import SQLiteStore
from websockets.asyncio.client import connect

from benchmarks.procs import (
    STORE_FILE,
    relay_running,
)
from benchmarks.relay.config import TENANT, Config


def history(shape: str, count: int, seed: int = 7) -> list[bytes]:
    """``count`` small updates from 3 interleaving writers, captured as each was made."""
    rng = random.Random(seed)
    docs = [Doc(client_id=100 + i) for i in range(3)]
    out: list[bytes] = []
    writer: list[Doc | None] = [None]
    for d in docs:
        d.observe(lambda event, d=d: out.append(event.update) if d is writer[0] else None)
    roots = [d.get("counts", type=Map) if shape == "overwrite" else d.get("ops", type=Array) for d in docs]
    if shape not in ("overwrite", "append"):
        raise ValueError(shape)
    for i in range(count):
        w = i % 3
        writer[0] = docs[w]
        if shape == "overwrite":
            roots[w][f"sku-{rng.randrange(50)}"] = i
        else:
            # at the head: Yrs finds index n by walking the list, so appending n items is O(n^2)
            roots[w].insert(0, Map({"op": "add", "line": f"sku-{rng.randrange(50)}", "qty": 1, "by": w, "at": i}))
        writer[0] = None
        # the writers stay close to each other: each sees the others' updates at once
        for other in range(3):
            if other != w:
                docs[other].apply_update(out[-1])
    assert len(out) == count, (len(out), count)
    return out


async def write_history(path: Path, docs: dict[str, tuple[list[bytes], bool]], tail: int) -> dict[str, Any]:
    """Append each doc's updates (concurrently, group commit), then compact the ones asked."""
    info: dict[str, Any] = {}
    async with SQLiteStore(path) as store:
        for name, (updates, snapshot) in docs.items():
            seqs: list[int] = []
            chunk = 1024
            for start in range(0, len(updates), chunk):
                seqs += await asyncio.gather(*(store.append(name, u) for u in updates[start:start + chunk]))
            if snapshot:
                keep = min(tail, len(updates) - 1)
                folded = len(updates) - keep
                doc = Doc()
                for u in updates[:folded]:
                    doc.apply_update(u)
                snap = doc.get_update()
                await store.compact(name, snap, seqs[folded - 1])
                info[name] = {"snapshot_bytes": len(snap), "tail": keep}
            else:
                info[name] = {"log_bytes": sum(len(u) for u in updates), "tail": len(updates)}
    return info


async def time_first_sync(url: str) -> float:
    """Connect, send sync step 1 with an empty state vector, wait for sync step 2: seconds."""
    t0 = time.perf_counter()
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.send(protocol.sync_step1(Doc().get_state()))
        while True:
            message = protocol.decode(await ws.recv())
            if message.kind is Kind.STEP2:
                elapsed = time.perf_counter() - t0
                break
    return elapsed


async def in_process_load(path: Path, name: str, repeats: int) -> dict[str, Any]:
    loads, applies, totals = [], [], []
    async with SQLiteStore(path) as store:
        for _ in range(repeats):
            t0 = time.perf_counter()
            stored = await store.load(name)
            t1 = time.perf_counter()
            doc = Doc()
            if stored.snapshot:
                apply_update(doc, stored.snapshot)
            for _, u in stored.updates:
                apply_update(doc, u)
            t2 = time.perf_counter()
            loads.append(t1 - t0)
            applies.append(t2 - t1)
            totals.append(t2 - t0)
    return {"store_load_ms": 1000 * statistics.median(loads), "apply_ms": 1000 * statistics.median(applies),
            "total_ms": 1000 * statistics.median(totals), "repeats": repeats}


def bench_cold_load(cfg: Config, work: Path) -> dict[str, Any]:
    data = work / "cold-load"
    path = data / STORE_FILE
    names: dict[tuple[str, int, str], list[str]] = {}
    sizes: dict[str, Any] = {}
    build_t0 = time.perf_counter()
    for shape in cfg.shapes:
        for count in cfg.history:
            updates = history(shape, count)
            docs: dict[str, tuple[list[bytes], bool]] = {}
            for mode in ("log", "snapshot"):
                key = (shape, count, mode)
                names[key] = [f"{TENANT}/cart/{shape}-{count}-{mode}-{c}" for c in range(cfg.copies)]
                for name in names[key]:
                    docs[name] = (updates, mode == "snapshot")
            info = asyncio.run(write_history(path, docs, cfg.tail))
            for mode in ("log", "snapshot"):
                sizes[f"{shape}-{count}-{mode}"] = info[names[(shape, count, mode)][0]]
            sizes[f"{shape}-{count}-state_bytes"] = len(_state_of(updates))
    build_seconds = time.perf_counter() - build_t0
    # In process first: a relay compacts every open room when it stops, which rewrites the file.
    in_process = {key: asyncio.run(in_process_load(path, docnames[0], 3)) for key, docnames in names.items()}
    rows = []
    with relay_running(data, "--room-idle-seconds", "3600") as relay:
        for (shape, count, mode), docnames in names.items():
            cold = [asyncio.run(time_first_sync(relay.url_for(n))) for n in docnames]
            warm = [asyncio.run(time_first_sync(relay.url_for(n))) for n in docnames for _ in range(3)]
            rows.append({"shape": shape, "updates": count, "mode": mode,
                         "relay_cold_ms": 1000 * statistics.median(cold), "relay_cold_all_ms": [1000 * x for x in cold],
                         "relay_warm_ms": 1000 * statistics.median(warm), **sizes[f"{shape}-{count}-{mode}"],
                         "state_bytes": sizes[f"{shape}-{count}-state_bytes"],
                         "in_process": in_process[(shape, count, mode)]})
    target = next((r for r in rows if r["updates"] == 100_000 and r["mode"] == "snapshot"), None)
    return {"rows": rows, "build_seconds": build_seconds, "tail_after_snapshot": cfg.tail,
            "target_100k_snapshot_under_50ms": {
                r["shape"]: r["relay_cold_ms"] < 50 for r in rows if r["updates"] == 100_000 and r["mode"] == "snapshot"
            } if target else None}


def _state_of(updates: list[bytes]) -> bytes:
    doc = Doc()
    for u in updates:
        doc.apply_update(u)
    return doc.get_update()
