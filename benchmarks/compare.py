"""Syncline side by side with the relays a user would pick instead, in one run, on this machine.

Run from the repository root (Node 20 and the npm packages of package.json installed there)::

    python -m benchmarks.compare                 # the default run: about 10-15 minutes on 2 cores
    python -m benchmarks.compare --quick         # smoke run, about 2-3 minutes
    python -m benchmarks.compare --only fanout --only durability --out /tmp/compare.json

Servers (each a subprocess on a loopback port, see ``benchmarks/peers.py``): Syncline
(``syncline serve``: SQLite store with ``synchronous=FULL``, every update committed before it
is broadcast, durable acks for clients that ask), the Node reference ``@y/websocket-server``
(rooms in memory), and a minimal pycrdt-websocket server on uvicorn with ``SQLiteYStore``
(``benchmarks/servers/pycrdt_ws.py``). Clients: real Yjs clients (``benchmarks/js``) and
Python y-websocket peers (``benchmarks/peers.Peer``; the durable-ack extension with Syncline).

Workloads, every loop bounded in count and in time:

1. ``fanout``: R rooms x C Yjs clients each editing E times a second (``benchmarks/js/fanout.mjs``,
   reused from ``benchmarks.relay``): latency p50/p95/p99/max from edit to every other client's
   observe, delivered updates/s, errors, server CPU; run ``repeat`` times interleaved after
   waiting for a quiet machine, each server's least disturbed run is the headline. Then the
   same rate with fewer and more rooms (throughput vs clients), and with py-spy one profiled
   Syncline run.
2. ``capacity``: N concurrent idle connections (``benchmarks/js/conns.mjs``: sync handshake,
   then idle) in N/100 rooms against one server process: how many it holds, connect rate.
3. ``cold_start``: the first sync of a room whose history is 10k / 100k updates, right after
   the server started. Syncline's store as its compaction leaves it (a snapshot plus a short
   tail) and as a raw log; pycrdt-websocket's ``SQLiteYStore`` as its checkpointing leaves it;
   the Node reference keeps rooms in memory only: its history is loaded over a WebSocket, timed
   while in memory, and the room is looked for again after a restart.
4. ``memory``: server RSS with K rooms of one small document and one connection each, and per
   connection from the capacity run.
5. ``durability``: confirmed updates per second (Syncline: durable acks; every server: the update
   seen by another client of the room) and what each server still has after a SIGKILL: N updates
   written and confirmed, ``kill -9`` at once (and after 2 s of quiet), restart, a late joiner
   counts what survived.

Prints live progress lines to stderr, one markdown table per workload with Syncline / reference
ratios to stdout, and saves JSON (default ``benchmarks/results/compare.json``) and PNG plots
next to it (with matplotlib: ``pip install -e '.[bench]'``; without it the plots are skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map

from benchmarks import relay as rb
from benchmarks.compare_report import plot, render
from benchmarks.peers import LABELS, SERVERS, TENANT, Peer, Server, first_sync, running
from syncline.server.store.sqlite import SQLiteStore

ROOT = rb.ROOT
CONNS_JS = ROOT / "benchmarks" / "js" / "conns.mjs"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "compare.json"
WORKLOADS = ("fanout", "capacity", "cold_start", "memory", "durability")
ALL_SERVERS = ("syncline", "node", "pycrdt")
REFERENCES = ("node", "pycrdt")


@dataclass(frozen=True)
class Config:
    servers: tuple[str, ...] = ALL_SERVERS
    # fan-out (the fields benchmarks.relay.run_fanout_client reads, plus ours)
    rooms: int = 40
    clients: int = 5
    rate: float = 20.0
    duration: float = 10.0
    drain: float = 10.0
    deflate: bool = False
    repeat: int = 2
    quiet_wait: float = 20.0
    scaling_rooms: tuple[int, ...] = (10, 20, 80)
    scaling_duration: float = 5.0
    profile: bool = True
    # capacity
    connections: int = 10_000
    connections_per_room: int = 100
    connect_concurrency: int = 200
    capacity_timeout: float = 120.0
    # cold start
    history: tuple[int, ...] = (10_000, 100_000)
    copies: int = 3
    tail: int = 100
    # memory
    memory_rooms: int = 1_000
    # durability
    ack_writers: int = 16
    ack_seconds: float = 4.0
    kill_updates: int = 2_000
    kill_rooms: int = 4
    kill_window: int = 32
    quick: bool = False


QUICK = Config(
    rooms=8, clients=5, rate=10.0, duration=3.0, drain=3.0, repeat=1, quiet_wait=0.0,
    scaling_rooms=(4, 16), scaling_duration=2.0, profile=True,
    connections=2_000, capacity_timeout=60.0,
    history=(10_000,), copies=2,
    memory_rooms=200,
    ack_writers=8, ack_seconds=1.5, kill_updates=400, kill_rooms=2,
    quick=True,
)


def log(workload: str, text: str) -> None:
    print(f"[{workload}] {text}", file=sys.stderr, flush=True)


def raise_nofile_limit() -> dict[str, int]:
    """Soft RLIMIT_NOFILE up to the hard limit; every server and client we start inherits it."""
    soft0, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft0 < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"soft_before": soft0, "soft": soft, "hard": hard}


def process_nofile(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError):
        return None
    return None


def rss_mib(pid: int) -> float:
    return rb.memory_kib(pid)["VmRSS"] / 1024


def syncline_flags(workload: str, cfg: Config) -> list[str]:
    many = str(max(20_000, 2 * cfg.connections))
    if workload == "fanout":
        return ["--max-connections-per-tenant", str(max(1000, 4 * max((cfg.rooms, *cfg.scaling_rooms)) * cfg.clients))]
    if workload in ("capacity", "memory"):
        return ["--max-connections-per-tenant", many, "--max-rooms", many, "--room-idle-seconds", "3600"]
    if workload == "cold_start":
        return ["--room-idle-seconds", "3600"]
    # durability: writers send as fast as their confirmations come back (relay.py's commits do the same)
    return ["--max-connections-per-tenant", "5000", "--rate-messages-per-second", "1000000", "--rate-burst", "1000000"]


# -- 1. fan-out ----------------------------------------------------------------------------------


def fanout_run(key: str, cfg: Config, work: Path, tag: str, profile_raw: Path | None = None) -> dict[str, Any]:
    with running(key, work / f"fanout-{key}-{tag}", syncline_flags("fanout", cfg)) as server:
        before = rb.scrape_metrics(server.relay) if key == "syncline" else None  # type: ignore[attr-defined]
        result = rb.run_fanout_client(cfg, server.ws_base, server.token, server.pid, f"{TENANT}/cart/r",  # type: ignore[arg-type]
                                      work / "fanout-client.log", profile_raw)
        if before is not None:
            result["server"]["store"] = rb.store_counters(before, rb.scrape_metrics(server.relay))  # type: ignore[attr-defined]
    result["server"]["name"] = key
    if profile_raw is not None:
        result["profile"] = rb.summarize_profile(profile_raw, cfg.duration + 1.0)
        result["profile"]["raw"] = str(profile_raw.relative_to(ROOT)) if profile_raw.is_relative_to(ROOT) else str(profile_raw)
    lat = result["latency_ms"]
    log("fanout", f"{LABELS[key]} {tag}: {cfg.rooms}x{cfg.clients} clients at {cfg.rate:g}/s: p50 {lat['p50']:.1f} ms, "
        f"p99 {lat['p99']:.1f} ms, {result['delivered_per_s']:,.0f} delivered/s "
        f"({result['delivered']:,}/{result['expected_deliveries']:,}), server CPU {result['server']['cpu_seconds']:.1f} s, "
        f"other procs {result['machine_during_run']['background_cores']:.2f} cores")
    return result


def ratios_against(runs: dict[str, dict[str, Any]], servers: Sequence[str]) -> dict[str, Any]:
    out = {}
    for ref in REFERENCES:
        if "syncline" in runs and ref in runs and ref in servers:
            ratios, verdict = rb.compare(runs["syncline"], runs[ref])
            out[ref] = {"ratios": ratios, "verdict": verdict}
    return out


def bench_fanout(cfg: Config, work: Path, results_dir: Path) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in cfg.servers}
    for i in range(cfg.repeat):
        for key in cfg.servers:
            quiet = rb.wait_for_quiet(cfg.quiet_wait)
            try:
                result = fanout_run(key, cfg, work, f"#{i + 1}")
            except Exception as exc:  # one server failing the load is a result, not the end of the run
                log("fanout", f"{LABELS[key]} #{i + 1} failed: {exc}")
                continue
            result["quiet_check"] = quiet
            runs[key].append(result)
    headline = {k: rb.least_disturbed(rs) for k, rs in runs.items() if rs}
    out: dict[str, Any] = {"headline": headline, "against": ratios_against(headline, cfg.servers), "all_runs": runs}
    scaling = []
    for rooms in sorted({*cfg.scaling_rooms, cfg.rooms}):
        row: dict[str, Any] = {"rooms": rooms, "clients": rooms * cfg.clients}
        for key in cfg.servers:
            if rooms == cfg.rooms and key in headline:
                row[key] = headline[key]
                continue
            point = replace(cfg, rooms=rooms, duration=cfg.scaling_duration)
            try:
                row[key] = fanout_run(key, point, work, f"{rooms * cfg.clients} clients")
            except Exception as exc:
                log("fanout", f"{LABELS[key]} at {rooms * cfg.clients} clients failed: {exc}")
        scaling.append(row)
    out["scaling"] = scaling
    if cfg.profile and rb.py_spy_path() and "syncline" in cfg.servers:
        rb.wait_for_quiet(cfg.quiet_wait)
        raw = results_dir / "compare-fanout-pyspy.txt"
        out["profiled_syncline_run"] = fanout_run("syncline", cfg, work, "profiled (py-spy)", raw)
    return out


# -- 2. connection capacity, 4. memory -----------------------------------------------------------


def run_conns(server: Server, count: int, rooms: int, prefix: str, cfg: Config, *, write: bool,
              workload: str) -> dict[str, Any]:
    """Run conns.mjs; sample the server's RSS and CPU once every connection is up, then release."""
    args = ["node", str(CONNS_JS), "--url", server.ws_base, "--count", str(count), "--rooms", str(rooms),
            "--prefix", prefix, "--concurrency", str(cfg.connect_concurrency), "--timeout", str(cfg.capacity_timeout),
            "--hold-max", "120"]
    if server.token:
        args += ["--token", server.token]
    if write:
        args += ["--write"]
    client = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    killer = threading.Timer(cfg.capacity_timeout + 180, client.kill)
    killer.start()
    rss0, cpu0 = rss_mib(server.pid), rb.cpu_seconds(server.pid)
    held: dict[str, Any] = {}
    result: dict[str, Any] = {}
    try:
        assert client.stdout is not None and client.stdin is not None
        for line in client.stdout:
            message = json.loads(line)
            if message["event"] == "progress":
                log(workload, f"{LABELS[server.key]}: {message['synced']:,} connected, {message['failed']:,} failed "
                    f"after {message['seconds']:.0f} s")
            elif message["event"] == "held":
                held = message
                time.sleep(1.0)  # let the server settle before reading its memory
                held["server_rss_mib"] = rss_mib(server.pid)
                held["server_cpu_seconds"] = rb.cpu_seconds(server.pid) - cpu0
                time.sleep(1.0)
                client.stdin.write("release\n")
                client.stdin.flush()
            elif message["event"] == "result":
                result = message
        client.wait(timeout=30)
    finally:
        killer.cancel()
        if client.poll() is None:
            client.kill()
            client.wait()
    if not held or not result.get("ok"):
        raise RuntimeError(f"conns.mjs gave no result (exit {client.returncode}): {result.get('error')}")
    synced = held["synced"]
    rss = held["server_rss_mib"]
    return {
        "attempted": held["attempted"], "connected": synced, "failed": held["failed"], "still_open": result["still_open"],
        "closed_after_connect": result["closed_after_sync"], "close_codes": result["close_codes"], "errors": result["errors"],
        "ramp_seconds": held["ramp_seconds"], "connects_per_s": held["connects_per_s"], "timed_out": held["timed_out"],
        "server_rss_before_mib": rss0, "server_rss_mib": rss,
        "kib_per_connection": 1024 * (rss - rss0) / synced if synced else None,
        "server_cpu_seconds": held["server_cpu_seconds"],
        "server_cpu_us_per_connect": 1e6 * held["server_cpu_seconds"] / synced if synced else None,
        "server_nofile": process_nofile(server.pid), "rooms": rooms,
    }


def bench_capacity(cfg: Config, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"target_connections": cfg.connections, "per_room": cfg.connections_per_room, "servers": {}}
    rooms = max(1, cfg.connections // cfg.connections_per_room)
    for key in cfg.servers:
        with running(key, work / f"capacity-{key}", syncline_flags("capacity", cfg)) as server:
            time.sleep(0.5)
            row = run_conns(server, cfg.connections, rooms, f"{TENANT}/cart/c", cfg, write=False, workload="capacity")
        row["held_target"] = row["still_open"] >= cfg.connections
        out["servers"][key] = row
        log("capacity", f"{LABELS[key]}: {row['still_open']:,}/{cfg.connections:,} held, {row['connects_per_s'] or 0:,.0f} "
            f"connects/s, RSS {row['server_rss_mib']:.0f} MiB, failures {row['failed']:,} {row['errors'] or ''}")
    return out


def bench_memory(cfg: Config, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"rooms": cfg.memory_rooms, "servers": {}}
    for key in cfg.servers:
        with running(key, work / f"memory-{key}", syncline_flags("memory", cfg)) as server:
            # warm-up: imports and caches touched by the first rooms, then the baseline
            run_conns(server, 20, 20, f"{TENANT}/cart/warm", cfg, write=True, workload="memory")
            time.sleep(0.5)
            row = run_conns(server, cfg.memory_rooms, cfg.memory_rooms, f"{TENANT}/cart/m", cfg, write=True,
                            workload="memory")
        row["kib_per_room_and_connection"] = row.pop("kib_per_connection")
        out["servers"][key] = row
        log("memory", f"{LABELS[key]}: {row['connected']:,} rooms of one small document with one connection each: "
            f"{row['kib_per_room_and_connection'] or 0:.1f} KiB per room + connection")
    return out


# -- 3. cold start -------------------------------------------------------------------------------


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
    exe = rb.py_spy_path()
    assert exe is not None
    seconds = 2 + 2 * len(names)
    spy = subprocess.Popen([exe, "record", "--pid", str(server.pid), "--duration", str(seconds), "--rate", "1000",
                            "--gil", "--full-filenames", "--format", "raw", "--output", str(raw)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    opens = [1000 * asyncio.run(first_sync(server.url(n)))[0] for n in names]
    spy.wait(timeout=seconds + 30)
    summary = rb.summarize_profile(raw, seconds, rate=1000)
    summary["opens_ms"] = opens
    summary["raw"] = str(raw.relative_to(ROOT)) if raw.is_relative_to(ROOT) else str(raw)
    return summary


def bench_cold_start(cfg: Config, work: Path, results_dir: Path) -> dict[str, Any]:
    histories: dict[int, tuple[list[bytes], bytes]] = {}
    for n in cfg.history:
        t0 = time.perf_counter()
        updates = rb.history("overwrite", n)
        doc = Doc()
        for u in updates:
            doc.apply_update(u)
        histories[n] = (updates, doc.get_state())
        log("cold_start", f"built a {n:,}-update history ({time.perf_counter() - t0:.1f} s)")
    rows: list[dict[str, Any]] = []
    profile = None
    profile_copies = 4 if cfg.profile and rb.py_spy_path() else 0
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
            asyncio.run(write_syncline_rooms(data / rb.STORE_FILE, layout, cfg.tail))
            with running(key, data, syncline_flags("cold_start", cfg)) as server:
                for n, (_, expected) in histories.items():
                    for mode, copies in (("snapshot", cfg.copies), ("log", 1)):
                        ms = [asyncio.run(measure_room(server, f"{TENANT}/cart/cold-{n}-{mode}-{c}", expected))
                              for c in range(copies)]
                        rows.append(cold_row(key, n, mode, ms))
                if profile_copies:
                    profile = profile_cold_opens(server, [f"{TENANT}/cart/cold-{big}-profile-{c}" for c in range(profile_copies)],
                                                 results_dir / "compare-cold-pyspy.txt")
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


# -- 5. durability -------------------------------------------------------------------------------


async def confirmed_rate(server: Server, writers: int, seconds: float, mode: str) -> dict[str, Any]:
    """``writers`` rooms, one writer each, sending one update and awaiting its confirmation, repeatedly.

    mode "ack": the confirmation is Syncline's durable ack. mode "observed": another client of the
    room has received the update (what a client of a server without acks can observe).
    """
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    cpu0 = rb.cpu_seconds(server.pid)

    async def one(w: int) -> int:
        room = f"{TENANT}/cart/rate-{mode}-{w}-{time.monotonic_ns()}"
        async with Peer(server.url(room), acks=mode == "ack", client_id=1_000 + w) as writer:
            observer = Peer(server.url(room)) if mode == "observed" else None
            if observer is not None:
                await observer.__aenter__()
            try:
                done = 0
                while time.perf_counter() < stop_at:
                    key = f"w{w}:{done}"
                    t = time.perf_counter()
                    await writer.set_key(key, done)
                    if mode == "ack":
                        ok = await writer.wait_for(lambda: writer.acked >= writer.writes, 10)
                    else:
                        assert observer is not None
                        ok = await observer.wait_for(lambda k=key: k in observer.map, 10)
                    if not ok:
                        break
                    latencies.append(time.perf_counter() - t)
                    done += 1
                return done
            finally:
                if observer is not None:
                    await observer.__aexit__(None, None, None)

    t0 = time.perf_counter()
    counts = await asyncio.gather(*(one(w) for w in range(writers)))
    elapsed = time.perf_counter() - t0
    cpu = rb.cpu_seconds(server.pid) - cpu0
    total = sum(counts)
    return {"mode": mode, "writers": writers, "seconds": elapsed, "confirmed": total, "confirmed_per_s": total / elapsed,
            "latency_ms": rb.percentiles([1000 * x for x in latencies]),
            "server_cpu_us_per_update": 1e6 * cpu / total if total else None}


async def write_confirm_kill(server: Server, rooms: list[str], per_room: int, window: int, mode: str,
                             variant: str, quiet: float) -> dict[str, Any]:
    """Each room: one writer sends ``per_room`` updates (at most ``window`` unconfirmed), then SIGKILL.

    variant "connected": the server is killed ``quiet`` seconds after the last confirmation, with
    every client still connected. variant "left": every client disconnects once its updates are
    confirmed, and the server is killed ``quiet`` seconds later (rooms that emptied may have closed).
    """
    confirmed_all = [asyncio.Event() for _ in rooms]
    killed = asyncio.Event()
    counts: list[tuple[int, int]] = [(0, 0)] * len(rooms)

    async def one(r: int, room: str) -> None:
        async with Peer(server.url(room), acks=mode == "ack", client_id=2_000 + r) as writer:
            observer = Peer(server.url(room)) if mode == "observed" else None
            if observer is not None:
                await observer.__aenter__()
            try:
                base = writer.writes
                waiter = writer if observer is None else observer

                def confirmed_count() -> int:
                    return max(0, writer.acked - base) if observer is None else len(observer.map)

                sent = 0
                for i in range(per_room):
                    if not await waiter.wait_for(lambda i=i: i - confirmed_count() < window, 10):
                        break
                    await writer.set_key(f"r{r}:{i}", i)
                    sent += 1
                await waiter.wait_for(lambda: confirmed_count() >= sent, 30)
                counts[r] = (sent, confirmed_count())
                confirmed_all[r].set()
                if variant == "connected":
                    await killed.wait()
            finally:
                if observer is not None:
                    await observer.__aexit__(None, None, None)

    async def killer() -> None:
        for event in confirmed_all:
            await event.wait()
        await asyncio.sleep(quiet + (0.05 if variant == "left" else 0.0))
        await asyncio.to_thread(server.kill)
        killed.set()

    await asyncio.gather(killer(), *(one(r, room) for r, room in enumerate(rooms)))
    return {"sent": sum(c[0] for c in counts), "confirmed": sum(c[1] for c in counts)}


async def count_survivors(server: Server, rooms: list[str]) -> int:
    total = 0
    for room in rooms:
        _, doc = await first_sync(server.url(room))
        total += len(doc.get("m", type=Map))
    return total


KILL_VARIANTS = (("connected", 0.0), ("connected", 2.0), ("left", 2.0))


def kill_label(variant: str, quiet: float) -> str:
    if variant == "connected":
        return "at once, clients connected" if quiet == 0 else f"{quiet:g} s after, clients connected"
    return f"{quiet:g} s after the clients left"


def kill_test(key: str, cfg: Config, work: Path, variant: str, quiet: float) -> dict[str, Any]:
    tag = f"{variant}-{quiet:g}"
    rooms = [f"{TENANT}/cart/kill-{tag}-{r}" for r in range(cfg.kill_rooms)]
    per_room = cfg.kill_updates // cfg.kill_rooms
    server = SERVERS[key](work / f"kill-{key}-{tag}", syncline_flags("durability", cfg)).start()
    try:
        mode = "ack" if server.acks else "observed"
        written = asyncio.run(write_confirm_kill(server, rooms, per_room, cfg.kill_window, mode, variant, quiet))
        server.start()
        survived = asyncio.run(count_survivors(server, rooms))
    finally:
        server.stop()
    lost = max(0, written["confirmed"] - survived)
    row = {"server": key, "kill": kill_label(variant, quiet), "variant": variant, "quiet_seconds": quiet,
           "confirmation": mode, **written, "survived": survived, "lost_confirmed": lost,
           "kept_everything_confirmed": lost == 0}
    log("durability", f"{LABELS[key]}, SIGKILL {row['kill']}: {written['confirmed']:,}/{written['sent']:,} "
        f"confirmed ({mode}), {survived:,} there after the restart")
    return row


async def _sdk_edits(server: Server, data: Path, name: str, edits: int) -> dict[str, Any]:
    """Syncline's Python client: ``edits`` cart edits, then wait until every one is acknowledged; SIGKILL."""
    from syncline.adapters.client import SyncClient

    base = server.ws_base.rsplit("/v1/sync", 1)[0]
    async with SyncClient(data_dir=data, urls=[base], token=server.token) as client:
        cart = await client.cart(name)
        await client.wait_synced(30)
        t0 = time.perf_counter()
        for i in range(edits):
            cart.add_item(f"sku-{i % 50}", 1)  # each edit is in the local outbox (fsync) when this returns
        queued = time.perf_counter() - t0
        await client.wait_synced(60)  # the outbox is empty: the relay acknowledged every edit as durable
        synced = time.perf_counter() - t0
        pending = client.pending
        await asyncio.to_thread(server.kill)
    return {"edits": edits, "queue_seconds": queued, "acked_seconds": synced, "acked_per_s": edits / synced,
            "pending_at_kill": pending}


def sdk_kill_test(cfg: Config, work: Path) -> dict[str, Any]:
    """The same SIGKILL test with Syncline's own Python client (SyncClient) as the writer."""
    from syncline.engine import Cart

    name = f"{TENANT}/cart/sdk-kill"
    server = SERVERS["syncline"](work / "kill-sdk-relay", syncline_flags("durability", cfg)).start()
    try:
        row = asyncio.run(_sdk_edits(server, work / "kill-sdk-client", name, cfg.kill_updates))
        server.start()
        _, doc = asyncio.run(first_sync(server.url(name)))
        quantity = Cart(doc, name.rsplit("/", 1)[1]).view().total_quantity
    finally:
        server.stop()
    row.update({"survived_quantity": quantity, "kept_everything_acked": quantity == cfg.kill_updates - row["pending_at_kill"]})
    log("durability", f"Syncline with its Python client: {cfg.kill_updates:,} cart edits acknowledged in "
        f"{row['acked_seconds']:.2f} s, SIGKILL at once, quantity {quantity:,} after the restart")
    return row


def bench_durability(cfg: Config, work: Path) -> dict[str, Any]:
    rates = []
    for key in cfg.servers:
        with running(key, work / f"rate-{key}", syncline_flags("durability", cfg)) as server:
            modes = ["ack", "observed"] if server.acks else ["observed"]
            for mode in modes:
                row = asyncio.run(confirmed_rate(server, cfg.ack_writers, cfg.ack_seconds, mode))
                row["server"] = key
                rates.append(row)
                log("durability", f"{LABELS[key]} ({mode}): {row['confirmed_per_s']:,.0f} confirmed updates/s, "
                    f"p99 {row['latency_ms']['p99'] or 0:.1f} ms")
    kills = [kill_test(key, cfg, work, variant, quiet) for variant, quiet in KILL_VARIANTS for key in cfg.servers]
    sdk = sdk_kill_test(cfg, work) if "syncline" in cfg.servers else None
    return {"rates": rates, "kills": kills, "sdk_kill": sdk, "writers": cfg.ack_writers, "seconds": cfg.ack_seconds,
            "kill_updates": cfg.kill_updates, "kill_rooms": cfg.kill_rooms, "window": cfg.kill_window}


# -- main -----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, about 2-3 minutes")
    parser.add_argument("--only", action="append", choices=WORKLOADS, help="run only these workloads (repeatable)")
    parser.add_argument("--servers", help=f"comma-separated subset of {','.join(ALL_SERVERS)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"JSON results (default {DEFAULT_OUT.relative_to(ROOT)}); plots go next to it")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiled Syncline runs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    if args.servers:
        chosen = tuple(s.strip() for s in args.servers.split(",") if s.strip())
        unknown = set(chosen) - set(ALL_SERVERS)
        if unknown:
            parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
        cfg = replace(cfg, servers=chosen)
    if args.no_profile or rb.py_spy_path() is None:
        cfg = replace(cfg, profile=False)
    workloads = args.only or list(WORKLOADS)
    nofile = raise_nofile_limit()
    results: dict[str, Any] = {"machine": rb.machine_info(), "config": asdict(cfg), "workloads": workloads,
                               "nofile": nofile, "command": " ".join(["python -m benchmarks.compare", *(argv or sys.argv[1:])])}
    results["machine"]["pycrdt-websocket"] = _version("pycrdt-websocket")
    results["machine"]["pycrdt-store"] = _version("pycrdt-store")
    work = Path(tempfile.mkdtemp(prefix="syncline-compare-"))
    out_path = args.out.resolve()
    results_dir = out_path.parent
    results_dir.mkdir(parents=True, exist_ok=True)
    log("compare", f"servers: {', '.join(LABELS[s] for s in cfg.servers)}; workloads: {', '.join(workloads)}; "
        f"open files limit {nofile['soft']:,} (hard {nofile['hard']:,}); data in {work}")
    started = time.perf_counter()
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "fanout": lambda: bench_fanout(cfg, work, results_dir),
        "capacity": lambda: bench_capacity(cfg, work),
        "cold_start": lambda: bench_cold_start(cfg, work, results_dir),
        "memory": lambda: bench_memory(cfg, work),
        "durability": lambda: bench_durability(cfg, work),
    }
    results["workload_seconds"] = {}
    try:
        for workload in WORKLOADS:
            if workload not in workloads:
                continue
            t0 = time.perf_counter()
            log(workload, "...")
            try:
                results[workload] = runners[workload]()
            except Exception:  # keep the other workloads' numbers
                results.setdefault("errors", {})[workload] = traceback.format_exc()
                print(results["errors"][workload], file=sys.stderr, flush=True)
            results["workload_seconds"][workload] = round(time.perf_counter() - t0, 1)
            log(workload, f"done in {results['workload_seconds'][workload]:.0f} s")
    finally:
        if args.keep:
            log("compare", f"data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = time.perf_counter() - started
    results["plots"] = plot(results, results_dir, out_path.stem)
    print(render(results))
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nsaved {out_path} ({results['seconds']:.0f} s)")
    if results.get("errors"):
        print(f"workloads that failed: {', '.join(results['errors'])}", file=sys.stderr)
        return 1
    return 0


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
