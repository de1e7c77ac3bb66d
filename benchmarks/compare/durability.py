"""Durability: confirmed updates per second, and what each server keeps through a SIGKILL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from pycrdt import Map

from benchmarks.common import log, percentiles
from benchmarks.compare.config import (
    Config,
    syncline_flags,
)
from benchmarks.peers import LABELS, SERVERS, TENANT, Peer, Server, first_sync, running
from benchmarks.procs import cpu_seconds


async def confirmed_rate(server: Server, writers: int, seconds: float, mode: str) -> dict[str, Any]:
    """``writers`` rooms, one writer each, sending one update and awaiting its confirmation, repeatedly.

    mode "ack": the confirmation is Syncline's durable ack. mode "observed": another client of the
    room has received the update (what a client of a server without acks can observe).
    """
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    cpu0 = cpu_seconds(server.pid)

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
    cpu = cpu_seconds(server.pid) - cpu0
    total = sum(counts)
    return {"mode": mode, "writers": writers, "seconds": elapsed, "confirmed": total, "confirmed_per_s": total / elapsed,
            "latency_ms": percentiles([1000 * x for x in latencies]),
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
