"""What ``python -m benchmarks.compare`` runs, and the limits it sets for each server."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import ROOT, connection_caps
from benchmarks.pinning import NONE as NO_PINNING
from benchmarks.pinning import Pinning
from benchmarks.procs import memory_kib

CONNS_JS = ROOT / "benchmarks" / "js" / "conns.mjs"
WORKLOADS = ("fanout", "saturation", "capacity", "cold_start", "memory", "durability")
ALL_SERVERS = ("syncline", "node", "pycrdt")
"""The default servers; ``syncline-asgi`` (every frame an ASGI send) is run when asked for."""
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
    # saturation: the fan-out load at rising edit rates, until a server misses a bound
    sweep_rooms: int = 40
    # finer where one pinned CPU each saturates (10-20 edits/s per client at 40 x 5 clients)
    sweep_rates: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 80.0, 100.0)
    sweep_duration: float = 8.0
    sweep_drain: float = 5.0
    sweep_p99_ms: float = 100.0
    pinning: Pinning = NO_PINNING
    """Where servers and load generators run (``--no-pin``: anywhere); set from the machine."""
    quick: bool = False


QUICK = Config(
    rooms=8, clients=5, rate=10.0, duration=3.0, drain=3.0, repeat=1, quiet_wait=0.0,
    scaling_rooms=(4, 16), scaling_duration=2.0, profile=True,
    connections=2_000, capacity_timeout=60.0,
    history=(10_000,), copies=2,
    memory_rooms=200,
    sweep_rooms=8, sweep_rates=(10.0, 40.0, 100.0), sweep_duration=3.0, sweep_drain=3.0,
    ack_writers=8, ack_seconds=1.5, kill_updates=400, kill_rooms=2,
    quick=True,
)




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
    return memory_kib(pid)["VmRSS"] / 1024


def syncline_flags(workload: str, cfg: Config) -> list[str]:
    many = str(max(20_000, 2 * cfg.connections))
    if workload in ("fanout", "saturation"):
        most = max((cfg.rooms, cfg.sweep_rooms, *cfg.scaling_rooms)) * cfg.clients
        # the sweep's clients send up to max(sweep_rates) messages a second (edits and awareness)
        rate = str(max(100, 4 * int(max(cfg.sweep_rates))))
        return [*connection_caps(max(1000, 4 * most)), "--rate-messages-per-second", rate,
                "--rate-burst", rate]
    if workload in ("capacity", "memory"):
        return [*connection_caps(int(many)), "--max-rooms", many, "--room-idle-seconds", "3600"]
    if workload == "cold_start":
        return ["--room-idle-seconds", "3600"]
    # durability: writers send as fast as their confirmations come back (relay.py's commits do the same)
    return [*connection_caps(5000), "--rate-messages-per-second", "1000000", "--rate-burst", "1000000"]
