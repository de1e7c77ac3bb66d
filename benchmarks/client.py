"""Sync client benchmark: catching up after offline edits, and same-device propagation.

Run from the repository root::

    python -m benchmarks.client              # about a minute on 2 cores
    python -m benchmarks.client --quick      # smoke run, a few seconds
    python -m benchmarks.client --out /tmp/client.json

Sections (every relay is a real ``syncline serve`` subprocess on a loopback port):

1. ``catch_up``: a client queues N edits offline (N = 1, 100, 10,000; one ``Cart.add_item``
   each over 50 lines, every edit written to the local SQLite outbox with
   ``synchronous=FULL`` before the call returns), closes, and opens again with the relay
   up. Measured: from opening the client to *fully synced* (connected both ways and the
   outbox empty: every edit acknowledged as durable by the relay), and to *connected*.
   Also: the queueing rate, the outbox size, the writes the relay stored (the client
   merges outbox rows into writes of at most ``max_write_bytes``), and a check that the
   relay's store holds exactly N units. Also ``live_synced_ms``: a running client, cut
   off from the relay by a TCP gate in this process, queues N edits; from the gate
   opening again to fully synced (backoff capped at 50 ms for this, so up to 50 ms of it
   is the client's wait for its next attempt). Each N is repeated; the median is reported.
2. ``same_device``: two clients on one data directory (no relay): the time from an edit
   call returning in one client to the other client's change callback, over many
   edits spaced at random (0-20 ms) so that they land anywhere in the 10 ms poll cycle.
   Both clients share one process and event loop; across processes the mechanism (a
   commit to the shared file, ``PRAGMA data_version`` polling) is the same.
3. ``via_relay`` (for comparison): two clients on two data directories, both connected
   to the relay: edit in one to change callback in the other, through the relay's
   store-then-forward path.

Prints one table per section and saves everything, with machine info, as JSON
(default ``benchmarks/runs/client.json``; summary in ``benchmarks/results/client.json``).
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from pycrdt import Doc
from syncline.adapters.client import Change, Status, SyncClient
from syncline.adapters.client.local_store import FILENAME
from syncline.engine import Cart

from benchmarks import common
from benchmarks.common import percentiles
from harness.relay_process import RelayProcess

LINES = 50


@dataclass(frozen=True)
class Config:
    quick: bool
    sizes: tuple[int, ...]
    repeats: int
    latency_samples: int
    time_cap_s: float


@dataclass
class CatchUp:
    queued_edits: int
    queue_edits_per_s: float
    outbox_kib: float
    connected_ms: float
    synced_ms: float
    relay_writes: int
    stored_quantity: int
    live_synced_ms: float
    """The other shape: the client stays open, the relay restarts; relay ready -> fully synced."""



async def catch_up_once(relay: RelayProcess, work: Path, size: int, run: int) -> CatchUp:
    name = f"bench/cart/catch-up-{size}-{run}"
    data = work / f"client-{size}-{run}"
    async with SyncClient(data_dir=data) as offline:  # no relay URL: edits only queue
        cart = await offline.cart(name)
        started = time.perf_counter()
        for i in range(size):
            cart.add_item(f"sku-{i % LINES}", 1)
        queue_s = time.perf_counter() - started
        assert offline.pending == size
    with sqlite3.connect(data / FILENAME) as db:
        outbox_bytes = db.execute("SELECT COALESCE(SUM(LENGTH(record)), 0) FROM outbox").fetchone()[0]

    rows_before = sum(1 for doc, _ in relay.stored_rows() if doc == name)
    started = time.perf_counter()
    connected_at = None
    async with SyncClient(data_dir=data, urls=[f"ws://127.0.0.1:{relay.port}"], token=relay.token("bench")) as online:
        replica = await online.open(name)

        def seen(status: object) -> None:
            nonlocal connected_at
            if connected_at is None and str(getattr(status, "value", "")) == "connected":
                connected_at = time.perf_counter()

        replica.on_status(seen)
        await replica.wait_synced(120)
        synced_at = time.perf_counter()
    stored = [blob for doc, blob in relay.stored_rows() if doc == name]
    doc = Doc()
    for blob in stored:
        doc.apply_update(blob)
    quantity = Cart(doc, name.rsplit("/", 1)[1]).view().total_quantity
    if quantity != size:
        raise AssertionError(f"the relay holds {quantity} units, expected {size}")
    live_ms = await live_reconnect(relay, work, size, run)
    return CatchUp(
        live_synced_ms=live_ms,
        queued_edits=size,
        queue_edits_per_s=size / queue_s if queue_s else float("inf"),
        outbox_kib=outbox_bytes / 1024,
        connected_ms=((connected_at or synced_at) - started) * 1000,
        synced_ms=(synced_at - started) * 1000,
        relay_writes=len(stored) - rows_before,
        stored_quantity=quantity,
    )


class Gate:
    """A TCP forwarder on a fixed loopback port: while closed, connections are refused.

    Lets the benchmark take the relay away from a running client and give it back at a
    known instant, without the relay's own start-up time in the figure.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._scope: anyio.CancelScope | None = None

    async def open(self, tg: anyio.abc.TaskGroup) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        scope = anyio.CancelScope()
        self._scope = scope

        async def serve() -> None:
            with scope:
                async with listener:
                    await listener.serve(self._forward)

        tg.start_soon(serve)

    async def close(self) -> None:
        if self._scope is not None:
            self._scope.cancel()  # the listener and every forwarded connection go
            self._scope = None

    async def _forward(self, client: anyio.abc.SocketStream) -> None:
        async with client, await anyio.connect_tcp("127.0.0.1", self.target_port) as upstream:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_pipe, client, upstream, tg.cancel_scope)
                await _pipe(upstream, client, tg.cancel_scope)


async def _pipe(source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, scope: anyio.CancelScope) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass  # either side went away: the forwarded connection ends
    scope.cancel()


async def live_reconnect(relay: RelayProcess, work: Path, size: int, run: int) -> float:
    """Queue ``size`` edits in a running client cut off from the relay; time reconnect -> synced.

    The relay keeps running behind a :class:`Gate`; the clock starts when the gate opens.
    The client's backoff is capped at 50 ms here, so at most that much of the figure is
    the client waiting for its next attempt.
    """
    name = f"bench/cart/live-{size}-{run}"
    async with anyio.create_task_group() as tg:
        gate = Gate(relay.port)
        await gate.open(tg)
        async with SyncClient(data_dir=work / f"live-{size}-{run}", urls=[f"ws://127.0.0.1:{gate.port}"],
                              token=relay.token("bench"), backoff_base=0.01, backoff_cap=0.05) as c:
            cart = await c.cart(name)
            replica = c.replica(name)
            await replica.wait_synced(30)
            await gate.close()
            await replica.wait_until(lambda: replica.status is Status.RECONNECTING, 30)
            for i in range(size):
                cart.add_item(f"sku-{i % LINES}", 1)
            opened = time.perf_counter()
            await gate.open(tg)
            await replica.wait_synced(120)
            elapsed = (time.perf_counter() - opened) * 1000
        await gate.close()
    return elapsed


async def same_device(work: Path, samples: int, cap: float) -> dict[str, float]:
    data = work / "same-device"
    name = "bench/cart/same-device"
    latencies: list[float] = []
    async with SyncClient(data_dir=data) as a, SyncClient(data_dir=data) as b:
        cart = await a.cart(name)
        await b.open(name)
        arrived = anyio.Event()
        received_at = 0.0

        def on_change(change: Change) -> None:
            nonlocal received_at
            received_at = time.perf_counter()
            arrived.set()

        b.replica(name).on_change(on_change)
        deadline = time.monotonic() + cap
        rng = random.Random(7)
        while len(latencies) < samples and time.monotonic() < deadline:
            await anyio.sleep(rng.uniform(0, 0.02))
            arrived = anyio.Event()
            cart.add_item(f"sku-{len(latencies) % LINES}", 1)
            sent_at = time.perf_counter()
            with anyio.fail_after(5):
                await arrived.wait()
            latencies.append((received_at - sent_at) * 1000)
    return percentiles(latencies, suffix="_ms")


async def via_relay(relay: RelayProcess, work: Path, samples: int, cap: float) -> dict[str, float]:
    name = "bench/cart/via-relay"
    url, token = f"ws://127.0.0.1:{relay.port}", relay.token("bench")
    latencies: list[float] = []
    async with SyncClient(data_dir=work / "via-a", urls=[url], token=token) as a, \
            SyncClient(data_dir=work / "via-b", urls=[url], token=token) as b:
        cart = await a.cart(name)
        rb = await b.open(name)
        await a.replica(name).wait_synced(10)
        await rb.wait_synced(10)
        arrived = anyio.Event()
        received_at = 0.0

        def on_change(change: Change) -> None:
            nonlocal received_at
            if change.origin == "relay":
                received_at = time.perf_counter()
                arrived.set()

        rb.on_change(on_change)
        deadline = time.monotonic() + cap
        rng = random.Random(11)
        while len(latencies) < samples and time.monotonic() < deadline:
            await anyio.sleep(rng.uniform(0, 0.02))
            arrived = anyio.Event()
            cart.add_item(f"sku-{len(latencies) % LINES}", 1)
            sent_at = time.perf_counter()
            with anyio.fail_after(5):
                await arrived.wait()
            latencies.append((received_at - sent_at) * 1000)
    return percentiles(latencies, suffix="_ms")


async def run(cfg: Config) -> dict[str, Any]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="syncline-client-bench-") as tmp:
        work = Path(tmp)
        relay = RelayProcess(work / "relay").start()
        try:
            catch_up: dict[str, Any] = {}
            for size in cfg.sizes:
                runs = [await catch_up_once(relay, work, size, i) for i in range(cfg.repeats)]
                median = sorted(runs, key=lambda r: r.synced_ms)[len(runs) // 2]
                catch_up[str(size)] = {"median": asdict(median), "runs": [asdict(r) for r in runs]}
            device = await same_device(work, cfg.latency_samples, cfg.time_cap_s)
            relayed = await via_relay(relay, work, cfg.latency_samples, cfg.time_cap_s)
        finally:
            relay.stop()
        return {
            "config": asdict(cfg),
            "machine": common.machine_info(directory=str(work.parent)),
            "catch_up": catch_up,
            "same_device": device,
            "via_relay": relayed,
            "elapsed_s": time.monotonic() - started,
        }




def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def report(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(f"Syncline client benchmark: python {m['python']}, sqlite {m['sqlite']}, {m['cpu_count']} cpus")
    print("\ncatch-up: offline edits queued, client reopened with the relay up (median of "
          f"{results['config']['repeats']})")
    headers = ["queued_edits", "queue_edits_per_s", "outbox_kib", "connected_ms", "synced_ms", "relay_writes",
               "live_synced_ms"]
    _table(headers, [[fmt(entry["median"][h]) for h in headers] for entry in results["catch_up"].values()])
    print("\nedit-to-other-client latency")
    headers = ["path", "count", "p50_ms", "p95_ms", "p99_ms", "max_ms"]
    _table(headers, [[path, *(fmt(results[path][h]) for h in headers[1:])] for path in ("same_device", "via_relay")])
    print(f"\ntotal {results['elapsed_s']:.1f} s")




def parse_args(argv: Sequence[str] | None = None) -> tuple[Config, Path]:
    parser = common.parser("client", __doc__, quick="smoke run: one repeat, fewer samples")
    args = parser.parse_args(argv)
    if args.quick:
        cfg = Config(quick=True, sizes=(1, 100, 10_000), repeats=1, latency_samples=100, time_cap_s=10.0)
    else:
        cfg = Config(quick=False, sizes=(1, 100, 10_000), repeats=3, latency_samples=500, time_cap_s=30.0)
    return cfg, args.out


def main(argv: Sequence[str] | None = None) -> None:
    cfg, out = parse_args(argv)
    results = anyio.run(run, cfg, backend="asyncio")
    report(results)
    common.save("client", results, out)


if __name__ == "__main__":
    main()
