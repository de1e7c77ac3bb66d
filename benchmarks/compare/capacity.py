"""Connection capacity (idle connections held by one process) and memory per room."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, log
from benchmarks.compare.config import (
    CONNS_JS,
    Config,
    process_nofile,
    rss_mib,
    syncline_flags,
)
from benchmarks.peers import LABELS, TENANT, Server, running
from benchmarks.procs import cpu_seconds


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
    client = subprocess.Popen(cfg.pinning.client_command(args), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    killer = threading.Timer(cfg.capacity_timeout + 180, client.kill)
    killer.start()
    rss0, cpu0 = rss_mib(server.pid), cpu_seconds(server.pid)
    held: dict[str, Any] = {}
    result: dict[str, Any] = {}
    rss_curve: list[tuple[int, float]] = [(0, rss0)]
    """(connections open, server RSS in MiB) at each progress line of the ramp, then once held."""
    try:
        assert client.stdout is not None and client.stdin is not None
        for line in client.stdout:
            message = json.loads(line)
            if message["event"] == "progress":
                rss_curve.append((message["synced"], rss_mib(server.pid)))
                log(workload, f"{LABELS[server.key]}: {message['synced']:,} connected, {message['failed']:,} failed "
                    f"after {message['seconds']:.0f} s")
            elif message["event"] == "held":
                held = message
                time.sleep(1.0)  # let the server settle before reading its memory
                held["server_rss_mib"] = rss_mib(server.pid)
                rss_curve.append((held["synced"], held["server_rss_mib"]))
                held["server_cpu_seconds"] = cpu_seconds(server.pid) - cpu0
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
        "server_nofile": process_nofile(server.pid), "rooms": rooms, "rss_curve": rss_curve,
    }


def bench_capacity(cfg: Config, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"target_connections": cfg.connections, "per_room": cfg.connections_per_room, "servers": {}}
    rooms = max(1, cfg.connections // cfg.connections_per_room)
    for key in cfg.servers:
        with running(key, work / f"capacity-{key}", syncline_flags("capacity", cfg), cfg.pinning) as server:
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
        with running(key, work / f"memory-{key}", syncline_flags("memory", cfg), cfg.pinning) as server:
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
