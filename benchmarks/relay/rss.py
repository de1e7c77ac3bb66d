"""The relay's RSS per open room, with clients gone, connected, and offering permessage-deflate."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pycrdt import Array, Doc, Map
from syncline.engine import protocol
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.common import connection_caps
from benchmarks.procs import (
    memory_kib,
    relay_running,
)
from benchmarks.relay.commits import acked, handshake
from benchmarks.relay.config import TENANT, Config
from harness.relay_process import RelayProcess


async def open_room(url: str, stay: bool, deflate: bool, client_id: int, holder: list[ClientConnection]) -> None:
    """Join a room, write one small cart line with acks, then leave or stay connected."""
    doc = Doc(client_id=client_id)
    ws = await connect(url, max_size=None, compression="deflate" if deflate else None)
    try:
        writes = await handshake(ws, doc, acks=True)
        before = doc.get_state()
        doc.get("ops", type=Array).append(Map({"op": "add", "line": "sku-1", "qty": 2, "by": client_id}))
        await ws.send(protocol.sync_update(doc.get_update(before)))
        writes += 1
        await acked(ws, writes)
    except BaseException:
        await ws.close()
        raise
    if stay:
        holder.append(ws)
    else:
        await ws.close()


async def rss_series(relay: RelayProcess, counts: Sequence[int], stay: bool, deflate: bool, tag: str) -> list[dict[str, Any]]:
    assert relay.process is not None
    pid = relay.process.pid
    holder: list[ClientConnection] = []
    # warm up: imports and caches touched by the first room, then a baseline
    await open_room(relay.url_for(f"{TENANT}/cart/{tag}-warmup"), False, deflate, 1, [])
    await asyncio.sleep(0.5)
    rows = [{"rooms": 0, "rss_mib": memory_kib(pid)["VmRSS"] / 1024}]
    opened = 0
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with sem:
            await open_room(relay.url_for(f"{TENANT}/cart/{tag}-{i}"), stay, deflate, 1000 + i, holder)

    try:
        for target in counts:
            await asyncio.gather(*(one(i) for i in range(opened, target)))
            opened = target
            await asyncio.sleep(1.0)
            rss = memory_kib(pid)["VmRSS"] / 1024
            rows.append({"rooms": target, "connections": len(holder), "rss_mib": rss,
                         "kib_per_room": 1024 * (rss - rows[0]["rss_mib"]) / target})
    finally:
        await asyncio.gather(*(ws.close() for ws in holder), return_exceptions=True)
    return rows


def bench_rss(cfg: Config, work: Path) -> dict[str, Any]:
    flags = ("--room-idle-seconds", "3600", *connection_caps(20_000), "--max-rooms", "20000")
    out: dict[str, Any] = {}
    modes = {"left": (False, False), "connected": (True, False), "connected_deflate": (True, True)}
    for mode in cfg.rss_modes:
        stay, deflate = modes[mode]
        with relay_running(work / f"rss-{mode}", *flags) as relay:
            out[mode] = asyncio.run(rss_series(relay, cfg.rss_rooms, stay, deflate, mode))
    per_connection = []
    for i, target in enumerate(cfg.rss_rooms, start=1):
        left = out["left"][i]["rss_mib"] - out["left"][0]["rss_mib"]
        row: dict[str, Any] = {"rooms": target}
        for mode in ("connected", "connected_deflate"):
            if mode in out:
                conn = out[mode][i]["rss_mib"] - out[mode][0]["rss_mib"]
                row[f"{mode}_kib_per_connection"] = 1024 * (conn - left) / target
        per_connection.append(row)
    out["per_connection"] = per_connection
    return out
