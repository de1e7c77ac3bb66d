"""Cold start: the first sync of a room with 10k / 100k updates of history, right after a start."""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map
from syncline.server.store.sqlite import SQLiteStore

from benchmarks.common import ROOT, log
from benchmarks.compare.config import (
    Config,
    syncline_flags,
)
from benchmarks.peers import LABELS, TENANT, Peer, Server, first_sync, running
from benchmarks.procs import STORE_FILE
from benchmarks.profiling import py_spy_path, summarize_profile
from benchmarks.relay.cold_load import history


async def write_syncline_rooms(path: Path, rooms: dict[str, tuple[list[bytes], str]], tail: int) -> None:
    """Write each room as the relay would have stored it: the raw log, or a snapshot plus a tail.

    A snapshot room holds what ``SQLiteStore.compact`` leaves after appending every update: the
    state of the first N - tail updates as one snapshot, then the last ``tail`` updates as log rows.
    Writing only those rows (one placeholder folded into the snapshot) gives the same file faster.
    """
    async with SQLiteStore(path) as store:
        for name, (updates, mode) in rooms.items():
            if mode == "log":
                for start in range(0, len(updates), 1024):
                    await asyncio.gather(*(store.append(name, u) for u in updates[start:start + 1024]))
                continue
            folded = len(updates) - tail
            doc = Doc()
            for u in updates[:folded]:
                doc.apply_update(u)
            upto = await store.append(name, updates[folded - 1])
            await store.compact(name, doc.get_update(), upto)
            await asyncio.gather(*(store.append(name, u) for u in updates[folded:]))


def write_ystore_rooms(path: Path, rooms: dict[str, list[bytes]], checkpoint_interval: int = 100) -> None:
    """Write each room as pycrdt-store's SQLiteYStore would have: every update a row, plus its checkpoint.

    SQLiteYStore (schema version 2) writes each update as a row and, every ``checkpoint_interval``
    writes, replaces the room's checkpoint with the state so far; a load applies the checkpoint and
    the rows from its timestamp on. Rows are written here in one transaction instead of one each.
    """
    db = sqlite3.connect(path)
    with db:
        db.execute("PRAGMA auto_vacuum = FULL")
        db.execute("CREATE TABLE IF NOT EXISTS yupdates (path TEXT NOT NULL, yupdate BLOB, metadata BLOB, "
                   "timestamp REAL NOT NULL)")
        db.execute("CREATE INDEX IF NOT EXISTS idx_yupdates_path_timestamp ON yupdates (path, timestamp)")
        db.execute("CREATE TABLE IF NOT EXISTS ycheckpoints (path TEXT NOT NULL, checkpoint BLOB NOT NULL, "
                   "timestamp REAL NOT NULL, PRIMARY KEY(path))")
        db.execute("PRAGMA user_version = 2")
        t0 = time.time() - 3600
        for name, updates in rooms.items():
            path_key = "/" + name  # the room is named by the URL path
            stamps = [t0 + i * 1e-4 for i in range(len(updates))]
            db.executemany("INSERT INTO yupdates VALUES (?, ?, ?, ?)",
                           [(path_key, u, b"", ts) for u, ts in zip(updates, stamps, strict=True)])
            # the last checkpoint came with write number k * interval and covers every earlier write
            last = ((len(updates) - 1) // checkpoint_interval) * checkpoint_interval
            doc = Doc()
            for u in updates[:last]:
                doc.apply_update(u)
            db.execute("INSERT OR REPLACE INTO ycheckpoints VALUES (?, ?, ?)", (path_key, doc.get_update(), stamps[last]))
    db.close()


def state_keys(doc: Doc) -> int:
    return len(doc.get("counts", type=Map))


async def measure_room(server: Server, name: str, expected: bytes, warm_repeats: int = 3) -> dict[str, Any]:
    """First sync after the server started (cold), then ``warm_repeats`` more while a client stays."""
    cold, doc = await first_sync(server.url(name))
    async with Peer(server.url(name)):
        warm = [(await first_sync(server.url(name)))[0] for _ in range(warm_repeats)]
    return {"cold_ms": 1000 * cold, "warm_ms": 1000 * statistics.median(warm), "complete": doc.get_state() == expected,
            "keys": state_keys(doc)}


async def load_over_websocket(server: Server, name: str, updates: list[bytes], expected: bytes) -> float:
    """Send a room's history to an in-memory server as one peer's stream of updates; seconds until it has all."""
    t0 = time.perf_counter()
    async with Peer(server.url(name)) as peer:
        for u in updates:
            await peer.send_update(u)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            _, doc = await first_sync(server.url(name))
            if doc.get_state() == expected:
                return time.perf_counter() - t0
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{server.label} did not hold the whole history of {name} after 120 s")


def profile_cold_opens(server: Server, names: list[str], raw: Path) -> dict[str, Any]:
    """py-spy --gil at 1 kHz while ``names`` are opened cold one after another."""
    exe = py_spy_path()
    assert exe is not None
    seconds = 2 + 2 * len(names)
    spy = subprocess.Popen([exe, "record", "--pid", str(server.pid), "--duration", str(seconds), "--rate", "1000",
                            "--gil", "--full-filenames", "--format", "raw", "--output", str(raw)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    opens = [1000 * asyncio.run(first_sync(server.url(n)))[0] for n in names]
    spy.wait(timeout=seconds + 30)
    summary = summarize_profile(raw, seconds, rate=1000)
    summary["opens_ms"] = opens
    summary["raw"] = str(raw.relative_to(ROOT)) if raw.is_relative_to(ROOT) else str(raw)
    return summary


def bench_cold_start(cfg: Config, work: Path, raw_dir: Path) -> dict[str, Any]:
    histories: dict[int, tuple[list[bytes], bytes]] = {}
    for n in cfg.history:
        t0 = time.perf_counter()
        updates = history("overwrite", n)
        doc = Doc()
        for u in updates:
            doc.apply_update(u)
        histories[n] = (updates, doc.get_state())
        log("cold_start", f"built a {n:,}-update history ({time.perf_counter() - t0:.1f} s)")
    rows: list[dict[str, Any]] = []
    profile = None
    profile_copies = 4 if cfg.profile and py_spy_path() else 0
    for key in cfg.servers:
        data = work / f"cold-{key}"
        data.mkdir(parents=True, exist_ok=True)
        if key == "syncline":
            layout: dict[str, tuple[list[bytes], str]] = {}
            for n, (updates, _) in histories.items():
                for c in range(cfg.copies):
                    layout[f"{TENANT}/cart/cold-{n}-snapshot-{c}"] = (updates, "snapshot")
                layout[f"{TENANT}/cart/cold-{n}-log-0"] = (updates, "log")
            big = max(histories)
            for c in range(profile_copies):
                layout[f"{TENANT}/cart/cold-{big}-profile-{c}"] = (histories[big][0], "snapshot")
            asyncio.run(write_syncline_rooms(data / STORE_FILE, layout, cfg.tail))
            with running(key, data, syncline_flags("cold_start", cfg)) as server:
                for n, (_, expected) in histories.items():
                    for mode, copies in (("snapshot", cfg.copies), ("log", 1)):
                        ms = [asyncio.run(measure_room(server, f"{TENANT}/cart/cold-{n}-{mode}-{c}", expected))
                              for c in range(copies)]
                        rows.append(cold_row(key, n, mode, ms))
                if profile_copies:
                    profile = profile_cold_opens(server, [f"{TENANT}/cart/cold-{big}-profile-{c}" for c in range(profile_copies)],
                                                 raw_dir / "compare-cold-pyspy.txt")
                    profile["updates"] = big
        elif key == "pycrdt":
            write_ystore_rooms(data / "ystore.sqlite3", {f"{TENANT}/cart/cold-{n}-{c}": updates
                                                         for n, (updates, _) in histories.items() for c in range(cfg.copies)})
            with running(key, data) as server:
                for n, (_, expected) in histories.items():
                    ms = [asyncio.run(measure_room(server, f"{TENANT}/cart/cold-{n}-{c}", expected)) for c in range(cfg.copies)]
                    rows.append(cold_row(key, n, "SQLiteYStore checkpoint + rows", ms))
        else:
            with running(key, data) as server:
                loaded = {}
                for n, (updates, expected) in histories.items():
                    name = f"{TENANT}/cart/cold-{n}-0"
                    loaded[n] = asyncio.run(load_over_websocket(server, name, updates, expected))
                    log("cold_start", f"{LABELS[key]}: {n:,} updates sent over a WebSocket in {loaded[n]:.1f} s")
                    warm = asyncio.run(measure_room(server, name, expected))
                    rows.append(cold_row(key, n, "in memory (loaded over a WebSocket)", [warm], cold_valid=False))
                server.stop()
                server.start()
                for n, (_, expected) in histories.items():
                    after = asyncio.run(measure_room(server, f"{TENANT}/cart/cold-{n}-0", expected))
                    rows.append(cold_row(key, n, "after a restart", [after]))
        for r in rows:
            if r["server"] == key:
                log("cold_start", f"{LABELS[key]} {r['updates']:,} updates ({r['stored_as']}): cold {fmt_ms(r['cold_ms'])}, "
                    f"warm {fmt_ms(r['warm_ms'])}, complete: {r['complete']}")
    target = [r for r in rows if r["server"] == "syncline" and r["updates"] == 100_000 and r["stored_as"] == "snapshot"]
    return {"rows": rows, "tail_after_snapshot": cfg.tail, "profile": profile,
            "target_100k_under_50ms": (target[0]["cold_ms"] < 50) if target else None}


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} ms"


def cold_row(key: str, n: int, stored_as: str, ms: list[dict[str, Any]], cold_valid: bool = True) -> dict[str, Any]:
    return {"server": key, "updates": n, "stored_as": stored_as, "rooms": len(ms),
            "cold_ms": statistics.median(m["cold_ms"] for m in ms) if cold_valid else None,
            "cold_all_ms": [m["cold_ms"] for m in ms] if cold_valid else [],
            "warm_ms": statistics.median(m["warm_ms"] for m in ms),
            "complete": all(m["complete"] for m in ms), "keys": [m["keys"] for m in ms]}
