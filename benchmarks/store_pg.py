"""Store benchmark: PostgreSQL against SQLite commit rates, with 1, 16 and 64 concurrent writers.

Run from the repository root (PostgreSQL must answer at ``--dsn``)::

    python -m benchmarks.store_pg                 # about a minute
    python -m benchmarks.store_pg --quick         # smoke run, a few seconds
    python -m benchmarks.store_pg --dsn postgresql://postgres@127.0.0.1:5432/test --out /tmp/pg.json

Scenarios, each on fresh storage (a temporary SQLite file with ``synchronous=FULL``;
a fresh PostgreSQL schema, dropped afterwards):

- ``sqlite``: one SQLiteStore (the single-node default);
- ``postgresql``: one PostgresStore (one relay node);
- ``postgresql-2-nodes``: two PostgresStores on one schema, the writers split between
  them, as two relay nodes: their append transactions serialize on the seq counter row.

N writers each append 120-byte updates one after the other (as N peers writing at
once) over 16 documents, until the append count or the time cap. Each row gives
appends and transactions per second, the mean updates per transaction and append
latency percentiles. Printed, and saved as JSON (default
``benchmarks/runs/store_pg.json``, summary in ``benchmarks/results/store_pg.json``).
"""

from __future__ import annotations

import random
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import asyncpg
from syncline.server.store.postgres import PostgresStore
from syncline.server.store.sqlite import SQLiteStore

from benchmarks import common
from benchmarks.common import percentile

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
UPDATE_BYTES = 120
DOCUMENTS = 16
BACKENDS = ("sqlite", "postgresql", "postgresql-2-nodes")


@dataclass(frozen=True)
class Config:
    quick: bool
    appends: int
    writers: tuple[int, ...]
    time_cap_s: float
    seed: int = 20_261_124


@dataclass(frozen=True)
class Row:
    backend: str
    writers: int
    appends: int
    seconds: float
    appends_per_s: float
    commits: int
    commits_per_s: float
    mean_batch: float
    p50_ms: float
    p99_ms: float


async def measure(stores: Sequence[Any], backend: str, writers: int, total: int, cap: float, seed: int) -> Row:
    rng = random.Random(seed)
    payloads = [rng.randbytes(UPDATE_BYTES) for _ in range(256)]
    latencies: list[float] = []
    for store in stores:
        await store.append("bench/cart/warmup", b"warmup")  # connected, schema written
    commits_before = sum(store.commits for store in stores)
    started = time.perf_counter()
    deadline = started + cap

    async def writer(task: int) -> None:
        store = stores[task % len(stores)]
        for i in range(total // writers + (task < total % writers)):
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            await store.append(f"bench/cart/{(task + i) % DOCUMENTS}", payloads[(task * 7 + i) % 256])
            latencies.append(time.perf_counter() - t0)

    async with anyio.create_task_group() as tg:
        for task in range(writers):
            tg.start_soon(writer, task)
    seconds = time.perf_counter() - started
    commits = sum(store.commits for store in stores) - commits_before
    appends = len(latencies)
    latencies.sort()
    return Row(
        backend=backend, writers=writers, appends=appends, seconds=round(seconds, 4),
        appends_per_s=round(appends / seconds, 1), commits=commits, commits_per_s=round(commits / seconds, 1),
        mean_batch=round(appends / commits, 2) if commits else 0.0,
        p50_ms=round(1000 * percentile(latencies, 0.50), 3),
        p99_ms=round(1000 * percentile(latencies, 0.99), 3),
    )


async def run_backend(backend: str, writers: int, config: Config, dsn: str) -> Row:
    total = config.appends if writers > 1 else max(1, config.appends // 10)
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            async with SQLiteStore(Path(directory) / "bench.db", synchronous="FULL") as store:
                return await measure([store], backend, writers, total, config.time_cap_s, config.seed)
    schema = f"syncline_bench_{secrets.token_hex(4)}"
    try:
        async with AsyncExitStack() as stack:
            nodes = 2 if backend == "postgresql-2-nodes" else 1
            stores = [await stack.enter_async_context(PostgresStore(dsn, schema=schema)) for _ in range(nodes)]
            return await measure(stores, backend, writers, total, config.time_cap_s, config.seed)
    finally:
        con = await asyncpg.connect(dsn)
        try:
            await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await con.close()


async def server_version(dsn: str) -> str:
    con = await asyncpg.connect(dsn)
    try:
        return str(await con.fetchval("SHOW server_version"))
    finally:
        await con.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.parser("store_pg", __doc__, quick="smoke run: few appends, short caps")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help=f"PostgreSQL to use (default {DEFAULT_DSN})")
    args = parser.parse_args(argv)
    config = Config(
        quick=args.quick, appends=2_000 if args.quick else 20_000, writers=(1, 16, 64),
        time_cap_s=2.0 if args.quick else 8.0,
    )
    started = time.perf_counter()
    rows: list[Row] = []
    print(f"{'backend':<20} {'writers':>7} {'appends/s':>10} {'commits/s':>10} {'batch':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for writers in config.writers:
        for backend in BACKENDS:
            row = anyio.run(run_backend, backend, writers, config, args.dsn)
            rows.append(row)
            print(f"{row.backend:<20} {row.writers:>7} {row.appends_per_s:>10.0f} {row.commits_per_s:>10.0f}"
                  f" {row.mean_batch:>7.1f} {row.p50_ms:>8.2f} {row.p99_ms:>8.2f}", flush=True)
    result = {
        "machine": common.machine_info(postgresql=anyio.run(server_version, args.dsn),
                                       asyncpg=common.version("asyncpg")),
        "config": asdict(config),
        "elapsed_s": round(time.perf_counter() - started, 4),
        "rows": [asdict(row) for row in rows],
    }
    common.save("store_pg", result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
