"""What ``python -m benchmarks.relay`` runs: the default and the quick configuration."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.common import ROOT

FANOUT_JS = ROOT / "benchmarks" / "js" / "fanout.mjs"
TENANT = "bench"
SECTIONS = ("fanout", "commits", "cold_load", "rss")


@dataclass(frozen=True)
class Config:
    # fan-out
    rooms: int = 40
    clients: int = 5
    rate: float = 20.0
    duration: float = 10.0
    drain: float = 10.0
    deflate: bool = False  # headline clients do not offer permessage-deflate (see deflate_comparison)
    deflate_comparison: bool = True  # one more pair of runs with clients offering permessage-deflate
    profile: bool = True
    repeat: int = 2  # interleaved runs per server; the least disturbed one is the headline
    quiet_wait: float = 60.0  # seconds to wait, before each run, for other processes to calm down
    scaling_rates: tuple[float, ...] = (5.0, 10.0)  # extra, shorter runs at lower edit rates
    scaling_duration: float = 5.0
    # commits
    commit_writers: tuple[int, ...] = (1, 16, 64)
    commit_seconds: float = 4.0
    store_writers: tuple[int, ...] = (1, 4, 16, 64, 256)
    store_seconds: float = 2.0
    # cold load
    history: tuple[int, ...] = (1_000, 10_000, 100_000)
    shapes: tuple[str, ...] = ("overwrite", "append")
    copies: int = 3
    tail: int = 100
    # rss
    rss_rooms: tuple[int, ...] = (200, 1000)
    rss_modes: tuple[str, ...] = ("left", "connected", "connected_deflate")
    quick: bool = False


QUICK = Config(
    rooms=8, clients=5, rate=10.0, duration=2.0, drain=2.0, profile=False, repeat=1, quiet_wait=0.0,
    scaling_rates=(), deflate_comparison=False,
    commit_writers=(1, 16), commit_seconds=0.5, store_writers=(1, 16), store_seconds=0.3,
    history=(1_000, 10_000), shapes=("overwrite",), copies=1, tail=100,
    rss_rooms=(50,), rss_modes=("left", "connected"), quick=True,
)
