"""Kill the relay with SIGKILL many times while writers stream acknowledged updates.

    python -m benchmarks.crash_soak [--iterations 50] [--writers 4] [--seed 1]

Each iteration: start the relay on the same data directory, let several writers
send updates with durable acknowledgements, SIGKILL the relay after a random
delay, restart it, and read every document back. An acknowledged update that is
missing is a failure (exit status 1). Prints a summary and saves JSON.
"""

from __future__ import annotations

import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from pycrdt import Array
from websockets.exceptions import ConnectionClosed

from benchmarks import common
from harness.relay_process import RelayProcess
from harness.ypeer import ypeer


async def _writer(relay: RelayProcess, name: str, tag: int, acked: list[tuple[int, int]]) -> None:
    """Write until the relay dies; record (tag, i) of every acknowledged update."""
    sent: list[tuple[int, int]] = []
    try:
        async with ypeer(relay.url_for(name), acks=True) as peer:
            base = peer.acked
            for i in range(100_000):
                await peer.edit(lambda d, i=i: d.get("ops", type=Array).append({"t": tag, "i": i}))
                sent.append((tag, i))
                acked[:] = sent[: peer.acked - base]
                await anyio.sleep(0.001)
                if peer.close_code is not None:
                    break
    except (OSError, TimeoutError, ConnectionClosed, ExceptionGroup):  # the relay was killed under us
        pass


async def _iteration(relay: RelayProcess, rng: random.Random, writers: int, everything: dict[str, set[Any]]) -> int:
    relay.start()
    acked: dict[str, list[tuple[int, int]]] = {f"soak/cart/w{w}": [] for w in range(writers)}
    async with anyio.create_task_group() as tg:
        for w, name in enumerate(acked):
            tg.start_soon(_writer, relay, name, w * 1_000_000 + rng.randint(0, 999_999), acked[name])
        await anyio.sleep(rng.uniform(0.05, 0.6))
        relay.kill()
    for name, items in acked.items():
        everything.setdefault(name, set()).update(items)
    relay.start()
    missing = 0
    for name, expected in everything.items():
        async with ypeer(relay.url_for(name)) as reader:
            present = {(int(x["t"]), int(x["i"])) for x in reader.doc.get("ops", type=Array).to_py() or []}
        missing += len(expected - present)
    relay.kill()
    return missing


def main() -> int:
    parser = common.parser("crash_soak", __doc__)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    everything: dict[str, set[Any]] = {}
    started = time.perf_counter()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        relay = RelayProcess(Path(tmp) / "relay")
        try:
            for n in range(1, args.iterations + 1):
                missing = anyio.run(_iteration, relay, rng, args.writers, everything)
                failures += missing > 0
                total = sum(len(v) for v in everything.values())
                print(f"iteration {n:3d}/{args.iterations}: {total:6d} acknowledged updates so far, "
                      f"{missing} missing", flush=True)
            with sqlite3.connect(Path(tmp) / "relay" / "syncline.sqlite3") as db:
                integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            relay.stop()
    result = {
        "iterations": args.iterations,
        "writers": args.writers,
        "acknowledged_updates": sum(len(v) for v in everything.values()),
        "iterations_with_missing_updates": failures,
        "integrity_check": integrity,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": common.machine_info(),
    }
    print(json.dumps(result, indent=2))
    common.save("crash_soak", result, args.out)
    return 1 if failures or integrity != "ok" else 0


if __name__ == "__main__":
    raise SystemExit(main())
