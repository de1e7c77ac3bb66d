"""Store benchmark: appends per second with group commit against one append per transaction.

Run from the repository root::

    python -m benchmarks.store_commit            # about a minute
    python -m benchmarks.store_commit --quick    # smoke run, a few seconds
    python -m benchmarks.store_commit --dir /mnt/disk --out /tmp/store_commit.json

For each SQLite ``synchronous`` mode (FULL: fsync on every commit; NORMAL: the WAL
is fsynced only at checkpoints) it measures, on a fresh file each time:

- ``sequential``: one task appending one update at a time, so every append is its
  own transaction (what a store without group commit does under any load);
- ``group-N``: N concurrent appenders (as N peers writing at once); the writer task
  folds whatever is queued into one transaction.

Each row gives appends per second, transactions (``commits``) per second, the mean
updates per transaction, and append latency percentiles. Updates are 120 random
bytes (about one small Yjs edit) spread over 16 documents. Every scenario stops at
its append count or its time cap, whichever comes first. The file lives in a
temporary directory under ``--dir`` (default: the system temp dir); its filesystem
is recorded, since fsync cost is the whole story (tmpfs makes FULL free).

Results are printed and saved as JSON (default ``benchmarks/runs/store_commit.json``; summary in
``benchmarks/results/store_commit.json``).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
from syncline.server.store.sqlite import SQLiteStore

from benchmarks import common
from benchmarks.common import percentile

UPDATE_BYTES = 120
DOCUMENTS = 16


@dataclass(frozen=True)
class Config:
    quick: bool
    sequential_appends: int
    group_appends: int
    concurrency: tuple[int, ...]
    time_cap_s: float
    modes: tuple[str, ...] = ("FULL", "NORMAL")
    seed: int = 20_260_101


@dataclass(frozen=True)
class Row:
    synchronous: str
    scenario: str
    appenders: int
    appends: int
    seconds: float
    appends_per_s: float
    commits: int
    commits_per_s: float
    mean_batch: float
    p50_ms: float
    p99_ms: float
    max_ms: float


async def measure(path: Path, synchronous: str, appenders: int, total: int, cap: float, seed: int) -> Row:
    rng = random.Random(seed)
    payloads = [rng.randbytes(UPDATE_BYTES) for _ in range(256)]
    latencies: list[float] = []

    async with SQLiteStore(path, synchronous=synchronous) as store:
        await store.append("bench/cart/warmup", b"warmup")  # file created, schema written
        commits_before = store.commits
        started = time.perf_counter()
        deadline = started + cap

        async def appender(task: int) -> None:
            for i in range(total // appenders + (task < total % appenders)):
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                await store.append(f"bench/cart/{(task + i) % DOCUMENTS}", payloads[(task * 7 + i) % 256])
                latencies.append(time.perf_counter() - t0)

        async with anyio.create_task_group() as tg:
            for task in range(appenders):
                tg.start_soon(appender, task)
        seconds = time.perf_counter() - started
        commits = store.commits - commits_before

    appends = len(latencies)
    latencies.sort()
    return Row(
        synchronous=synchronous,
        scenario="sequential" if appenders == 1 else f"group-{appenders}",
        appenders=appenders,
        appends=appends,
        seconds=seconds,
        appends_per_s=appends / seconds,
        commits=commits,
        commits_per_s=commits / seconds,
        mean_batch=appends / commits if commits else 0.0,
        p50_ms=1000 * percentile(latencies, 0.50),
        p99_ms=1000 * percentile(latencies, 0.99),
        max_ms=1000 * latencies[-1],
    )


async def run(cfg: Config, directory: Path | None) -> dict[str, Any]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="syncline-bench-", dir=directory) as tmp:
        results: dict[str, Any] = {"machine": common.machine_info(directory=tmp, filesystem=filesystem_of(Path(tmp))), "config": asdict(cfg)}
        started = time.perf_counter()
        for mode in cfg.modes:
            scenarios = [(1, cfg.sequential_appends)] + [(n, cfg.group_appends) for n in cfg.concurrency]
            for appenders, total in scenarios:
                path = Path(tmp) / f"{mode}-{appenders}.db"
                print(f"running {mode} x{appenders} ...", file=sys.stderr, flush=True)
                rows.append(await measure(path, mode, appenders, total, cfg.time_cap_s, cfg.seed))
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        results["elapsed_s"] = time.perf_counter() - started
    results["rows"] = rows
    results["speedup_vs_sequential"] = {
        mode: {
            row.scenario: row.appends_per_s / sequential.appends_per_s
            for row in rows
            if row.synchronous == mode and row.appenders > 1
        }
        for mode in cfg.modes
        for sequential in [next(r for r in rows if r.synchronous == mode and r.appenders == 1)]
    }
    return results


def filesystem_of(path: Path) -> str | None:
    """The filesystem type holding ``path``, from /proc/mounts (Linux); None elsewhere."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    resolved = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) < 3 or len(parts[1]) <= len(best):
            continue
        if resolved == parts[1] or resolved.startswith(parts[1].rstrip("/") + "/"):
            best, kind = parts[1], parts[2]
    return kind




def report(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(
        f"Syncline store commit benchmark: sqlite {m['sqlite']}, python {m['python']}, "
        f"{m['filesystem']} at {m['directory']}, {m['cpu_count']} cpus"
    )
    headers = ["synchronous", "scenario", "appends", "appends_per_s", "commits_per_s", "mean_batch",
               "p50_ms", "p99_ms", "max_ms"]
    cells = [[fmt(asdict(row)[h]) for h in headers] for row in results["rows"]]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    for mode, speedups in results["speedup_vs_sequential"].items():
        print(f"{mode}: " + ", ".join(f"{name} {value:.1f}x sequential" for name, value in speedups.items()))
    print(f"total {results['elapsed_s']:.1f} s")


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)




def parse_args(argv: Sequence[str] | None = None) -> tuple[Config, Path, Path | None]:
    parser = common.parser("store_commit", __doc__, quick="smoke run: fewer appends, shorter caps")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the store files (default: temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        cfg = Config(quick=True, sequential_appends=300, group_appends=3_000, concurrency=(8, 64), time_cap_s=3.0)
    else:
        cfg = Config(
            quick=False, sequential_appends=3_000, group_appends=30_000, concurrency=(8, 64, 256), time_cap_s=10.0
        )
    return cfg, args.out, args.dir


def main(argv: Sequence[str] | None = None) -> None:
    cfg, out, directory = parse_args(argv)
    results = anyio.run(run, cfg, directory, backend="asyncio")
    report(results)
    common.save("store_commit", results, out)


if __name__ == "__main__":
    main()
