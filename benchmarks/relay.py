"""Relay benchmarks: fan-out against the Node reference, group commit, cold room loads, RSS per room.

Run from the repository root (Node 20 and the npm packages of package.json installed there)::

    python -m benchmarks.relay                      # the default run: a few minutes on 2 cores
    python -m benchmarks.relay --quick              # smoke run, under 30 seconds
    python -m benchmarks.relay --only fanout --out /tmp/relay.json

It prints one markdown table per section and saves everything, with machine info, as JSON
(default ``benchmarks/results/relay.json``). Every server is a real subprocess on a loopback
port; every workload is bounded in count and in time. Sections:

1. ``fanout`` (the headline): R rooms x C real Yjs clients (``benchmarks/js/fanout.mjs``: one
   Node process, y-websocket's ``WebsocketProvider`` over ``ws``), each editing E times a second
   for D seconds; every edit carries its send time and every other client of the room records
   its delivery latency. The same client program runs, one after the other, against
   (a) ``syncline serve`` (tokens as the ``token`` query parameter) and (b) the Node reference
   server ``@y/websocket-server``. Reported: latency p50/p95/p99/max, delivered updates per
   second, expected vs delivered deliveries, closes/errors, the server's CPU seconds over the run
   (``/proc/PID/stat`` utime+stime, every thread) and its peak RSS (``VmHWM``), and the
   Syncline/reference ratios. Syncline commits every update to SQLite (``synchronous=FULL``:
   fsync per group commit) before it broadcasts it; the reference keeps rooms in memory only.
   The machine is shared: before each run the benchmark waits (at most ``quiet_wait`` s) until
   other processes use under 0.3 cores, records how much CPU they used during the run, runs
   each server ``repeat`` times interleaved, and takes each server's least disturbed run as the
   headline. Headline clients do not offer permessage-deflate; one more pair of runs has them
   offer it, as browsers do (both servers decline it: Syncline turns it off). Shorter
   runs at lower edit rates follow. With py-spy available (and not ``--quick``), one extra
   Syncline run is sampled by ``py-spy record --gil`` and the hottest functions are listed (that
   run's numbers are not compared).
2. ``commits``: store commits per second with group commit (N concurrent writers, each awaiting
   its own commit) against one writer awaiting each commit; in process on ``SQLiteStore``, and
   through the relay with N Python peers using the durable-ack extension, each in its own room
   (no fan-out), sending one update and waiting for its ack before the next.
3. ``cold_load``: time to open a room whose store holds 1k / 10k / 100k small updates, as the
   raw log and as a snapshot plus a short tail (written with ``SQLiteStore.append`` then
   ``SQLiteStore.compact``, as the relay does). Measured through a relay that has never opened
   the room (connect -> sync step 2 received, next to a second, warm connect), and in process
   (``SQLiteStore.load`` + integrating into a pycrdt ``Doc``). Two history shapes: ``overwrite``
   (a map of 50 counters rewritten: history much larger than state) and ``append`` (one small map
   inserted into an array per update, like the cart's op array: state grows with history).
4. ``rss``: the relay's RSS with 0, K1, K2 open rooms of one small document each, when each
   room's client left (the room stays open) and when it stays connected (with and without
   permessage-deflate); per room and per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from pycrdt import Array, Doc, Map
from websockets.asyncio.client import ClientConnection, connect

from syncline.engine import apply_update
from syncline.server import protocol
from syncline.server.protocol import Kind
from syncline.server.store.sqlite import SQLiteStore
from harness.relay_process import RelayProcess

ROOT = Path(__file__).resolve().parents[1]
FANOUT_JS = ROOT / "benchmarks" / "js" / "fanout.mjs"
REFERENCE_JS = ROOT / "node_modules" / "@y" / "websocket-server" / "src" / "server.js"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "relay.json"
STORE_FILE = "syncline.sqlite3"
TENANT = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
QUIET_CORES = 0.3
"""Before each fan-out run, wait until other processes use less than this many cores."""


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


# -- processes and /proc -------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (every thread), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in KiB, from /proc/PID/status."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine_cpu() -> tuple[float, float]:
    """(busy, wall) CPU seconds of the whole machine so far, summed over CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


def background_cores(seconds: float = 2.0, exclude: Sequence[int] = ()) -> float:
    """CPU cores other processes kept busy over ``seconds`` (excluding ``exclude`` pids)."""
    busy0, _ = machine_cpu()
    own0 = sum(cpu_seconds(p) for p in exclude)
    time.sleep(seconds)
    busy1, _ = machine_cpu()
    own1 = sum(cpu_seconds(p) for p in exclude)
    return max(0.0, ((busy1 - busy0) - (own1 - own0)) / seconds)


def wait_for_quiet(max_wait: float, threshold: float = QUIET_CORES) -> dict[str, Any]:
    """Wait (at most ``max_wait`` s) until other processes use under ``threshold`` cores."""
    t0 = time.monotonic()
    samples = []
    while True:
        load = background_cores(2.0 if max_wait > 0 else 0.5)
        samples.append(round(load, 2))
        if load < threshold or time.monotonic() - t0 >= max_wait:
            return {"background_cores": load, "waited_seconds": time.monotonic() - t0,
                    "quiet": load < threshold, "samples": samples}
        print(f"  machine busy ({load:.2f} cores used by other processes); waiting...", file=sys.stderr, flush=True)
        time.sleep(3.0)


class ReferenceServer:
    """The Node reference y-websocket server (@y/websocket-server), in memory, no auth."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> ReferenceServer:
        env = dict(os.environ, HOST="127.0.0.1", PORT=str(self.port))
        log = open(self.log_path, "a")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(["node", str(REFERENCE_JS)], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "running at" not in line:
            raise RuntimeError(f"reference server did not start: {line!r}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def relay_running(data_dir: Path, *flags: str) -> Iterator[RelayProcess]:
    relay = RelayProcess(data_dir, list(flags)).start()
    try:
        yield relay
    finally:
        if relay.process is not None and relay.process.poll() is None:
            relay.terminate(timeout=30)
        relay.stop()


def scrape_metrics(relay: RelayProcess) -> dict[str, float]:
    """The relay's Prometheus counters we use, as {name{labels}: value}."""
    text = httpx.get(f"{relay.http_url}/metrics", timeout=5).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("syncline_") and " " in line:
            name, value = line.rsplit(" ", 1)
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    s = sorted(values)

    def q(p: float) -> float:
        return s[min(len(s) - 1, int(p * len(s)))]

    return {"count": len(s), "p50": q(0.50), "p95": q(0.95), "p99": q(0.99), "max": s[-1]}


# -- 1. fan-out ----------------------------------------------------------------------------------


class RssSampler(threading.Thread):
    """Samples VmRSS of ``pid`` every 50 ms until stopped; keeps the largest."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            with contextlib.suppress(OSError, KeyError):
                self.peak_kib = max(self.peak_kib, memory_kib(self.pid)["VmRSS"])
            self._stop_event.wait(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_fanout_client(
    cfg: Config, url: str, token: str | None, pid: int, prefix: str, log_path: Path,
    profile_raw: Path | None = None,
) -> dict[str, Any]:
    """Run fanout.mjs against a server with process ``pid``; add the server's CPU and memory."""
    args = ["node", str(FANOUT_JS), "--url", url, "--rooms", str(cfg.rooms), "--clients", str(cfg.clients),
            "--rate", str(cfg.rate), "--duration", str(cfg.duration), "--drain", str(cfg.drain),
            "--prefix", prefix, "--deflate", "true" if cfg.deflate else "false"]
    if token:
        args += ["--token", token]
    budget = 60 + 30 + cfg.duration + cfg.drain + 30  # connect + settle + run + drain + late joiners
    log = open(log_path, "a")  # noqa: SIM115 - owned by the child
    client = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    log.close()
    killer = threading.Timer(budget, client.kill)
    killer.start()
    server: dict[str, Any] = {"rss_before_kib": memory_kib(pid)["VmRSS"]}
    sampler = RssSampler(pid)
    spy: subprocess.Popen[bytes] | None = None
    result: dict[str, Any] | None = None
    events: dict[str, float] = {}
    try:
        assert client.stdout is not None
        for line in client.stdout:
            message = json.loads(line)
            event = message["event"]
            events[event] = time.monotonic()
            if event == "start":
                server["cpu_start"] = cpu_seconds(pid)
                server["client_cpu_start"] = cpu_seconds(client.pid)
                server["machine_start"] = machine_cpu()[0]
                sampler.start()
                if profile_raw is not None:
                    spy = start_py_spy(pid, profile_raw, cfg.duration + 1.0)
            elif event == "done":
                server["cpu_end"] = cpu_seconds(pid)
                server["client_cpu_end"] = cpu_seconds(client.pid)
                server["machine_end"] = machine_cpu()[0]
                sampler.stop()
            elif event == "result":
                result = message
        client.wait(timeout=30)
    finally:
        killer.cancel()
        if client.poll() is None:
            client.kill()
            client.wait()
        if sampler.is_alive():
            sampler.stop()
        if spy is not None:
            spy.wait(timeout=60)
    if result is None:
        raise RuntimeError(f"fanout client gave no result (exit {client.returncode}); see {log_path}")
    if not result.get("ok"):
        raise RuntimeError(f"fanout client failed: {result.get('error')}")
    mem = memory_kib(pid)
    run_seconds = events["done"] - events["start"]
    server_cpu = server["cpu_end"] - server["cpu_start"]
    client_cpu = server["client_cpu_end"] - server["client_cpu_start"]
    machine_busy = server["machine_end"] - server["machine_start"]
    result["machine_during_run"] = {
        "busy_cores": machine_busy / run_seconds,
        "server_cores": server_cpu / run_seconds,
        "client_cores": client_cpu / run_seconds,
        # what other processes on the machine used meanwhile: contention, not our load
        "background_cores": max(0.0, machine_busy - server_cpu - client_cpu) / run_seconds,
    }
    result["server"] = {
        "cpu_seconds": server_cpu,
        "cpu_us_per_delivery": 1e6 * server_cpu / result["delivered"] if result["delivered"] else None,
        "cpu_utilization": server_cpu / run_seconds if run_seconds > 0 else None,
        "measured_seconds": run_seconds,
        "rss_before_mib": server["rss_before_kib"] / 1024,
        "peak_rss_run_mib": sampler.peak_kib / 1024,
        "peak_rss_lifetime_mib": mem["VmHWM"] / 1024,
        "rss_after_mib": mem["VmRSS"] / 1024,
    }
    return result


def fanout_syncline(cfg: Config, work: Path, tag: str, profile_dir: Path | None = None) -> dict[str, Any]:
    data = work / f"syncline-fanout-{tag}"
    flags = ["--max-connections-per-tenant", str(max(1000, 4 * cfg.rooms * cfg.clients))]
    with relay_running(data, *flags) as relay:
        assert relay.process is not None
        before = scrape_metrics(relay)
        raw = profile_dir / "relay-fanout-pyspy.txt" if profile_dir else None
        result = run_fanout_client(cfg, f"ws://127.0.0.1:{relay.port}/v1/sync", relay.token(TENANT, f"{TENANT}/*"),
                                   relay.process.pid, f"{TENANT}/cart/r", work / "fanout-client.log", raw)
        after = scrape_metrics(relay)
    result["server"]["store"] = store_counters(before, after)
    result["server"]["name"] = "syncline"
    if raw is not None:
        result["profile"] = summarize_profile(raw, cfg.duration + 1.0)
        result["profile"]["raw"] = str(raw.relative_to(ROOT)) if raw.is_relative_to(ROOT) else str(raw)
    return result


def store_counters(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    commits = delta("syncline_commits_total")
    updates = delta("syncline_updates_committed_total")
    seconds = delta("syncline_commit_seconds_sum")
    return {
        "commits": int(commits),
        "updates_committed": int(updates),
        "mean_batch": updates / commits if commits else None,
        "mean_commit_ms": 1000 * seconds / commits if commits else None,
        "rejected": {k.split('"')[1]: v for k, v in after.items() if k.startswith("syncline_rejected_total")},
        "compactions": int(delta("syncline_compactions_total")),
    }


def fanout_reference(cfg: Config, work: Path, tag: str) -> dict[str, Any]:
    ref = ReferenceServer(work / "reference.log").start()
    try:
        assert ref.process is not None
        result = run_fanout_client(cfg, f"ws://127.0.0.1:{ref.port}", None, ref.process.pid,
                                   f"{TENANT}/cart/r", work / "fanout-client.log")
    finally:
        ref.stop()
    result["server"]["name"] = "reference"
    return result


def compare(s: dict[str, Any], r: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Syncline/reference ratios and the verdict against the target."""
    ratios = {
        "throughput": s["delivered_per_s"] / r["delivered_per_s"],
        "p50": ratio(s["latency_ms"]["p50"], r["latency_ms"]["p50"]),
        "p99": ratio(s["latency_ms"]["p99"], r["latency_ms"]["p99"]),
        "max": ratio(s["latency_ms"]["max"], r["latency_ms"]["max"]),
        "server_cpu": ratio(s["server"]["cpu_seconds"], r["server"]["cpu_seconds"]),
        "server_cpu_per_delivery": ratio(s["server"]["cpu_us_per_delivery"], r["server"]["cpu_us_per_delivery"]),
        "peak_rss": ratio(s["server"]["peak_rss_run_mib"], r["server"]["peak_rss_run_mib"]),
    }
    verdict = {
        "p99_at_most_reference": s["latency_ms"]["p99"] <= r["latency_ms"]["p99"],
        # The offered load is the same for both, so "throughput >= reference" means delivering
        # everything at the same rate; 1% is the run-to-run noise of the delivery window.
        "throughput_at_least_reference": s["all_delivered"] and ratios["throughput"] >= 0.99,
        "everything_delivered": s["all_delivered"] and r["all_delivered"],
    }
    verdict["meets_target"] = verdict["p99_at_most_reference"] and verdict["throughput_at_least_reference"]
    return ratios, verdict


def least_disturbed(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return min(runs, key=lambda r: r["machine_during_run"]["background_cores"])


def bench_fanout(cfg: Config, work: Path, results_dir: Path) -> dict[str, Any]:
    servers: dict[str, Callable[..., dict[str, Any]]] = {"reference": fanout_reference, "syncline": fanout_syncline}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    # Interleaved (reference, Syncline, reference, ...), each after waiting for a quiet machine.
    for i in range(cfg.repeat):
        for name, run in servers.items():
            quiet = wait_for_quiet(cfg.quiet_wait)
            result = run(cfg, work, f"{i}")
            result["quiet_check"] = quiet
            runs[name].append(result)
    # The headline pair: for each server, the run least disturbed by other processes.
    headline = {name: least_disturbed(rs) for name, rs in runs.items()}
    ratios, verdict = compare(headline["syncline"], headline["reference"])
    out: dict[str, Any] = {"headline": headline, "ratios_syncline_over_reference": ratios, "verdict": verdict,
                           "all_runs": runs}
    if cfg.deflate_comparison and not cfg.deflate:
        # Browsers (and `ws`) offer permessage-deflate; both servers decline it (see the ws extensions column).
        point = replace(cfg, deflate=True)
        row = {"deflate_offered": True}
        for name, run in servers.items():
            quiet = wait_for_quiet(cfg.quiet_wait)
            result = run(point, work, "deflate")
            result["quiet_check"] = quiet
            row[name] = result
        row["ratios"], row["verdict"] = compare(row["syncline"], row["reference"])
        out["deflate_offered"] = row
    scaling = []
    for rate in cfg.scaling_rates:
        point = replace(cfg, rate=rate, duration=cfg.scaling_duration)
        row: dict[str, Any] = {"rate": rate, "duration": cfg.scaling_duration}
        for name, run in servers.items():
            quiet = wait_for_quiet(cfg.quiet_wait)
            result = run(point, work, f"rate{rate:g}")
            result["quiet_check"] = quiet
            row[name] = result
        row["ratios"], row["verdict"] = compare(row["syncline"], row["reference"])
        scaling.append(row)
    out["scaling"] = scaling
    if cfg.profile and py_spy_path():
        wait_for_quiet(cfg.quiet_wait)
        out["profiled_syncline_run"] = fanout_syncline(cfg, work, "profiled", profile_dir=results_dir)
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# -- profiling ----------------------------------------------------------------------------------


def py_spy_path() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else None


def start_py_spy(pid: int, raw: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    exe = py_spy_path()
    if exe is None:
        return None
    raw.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(PROFILE_HZ),
         "--gil", "--full-filenames", "--format", "raw", "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


PROFILE_HZ = 100
"""py-spy samples the thread holding the GIL (``--gil``): where the relay's Python time goes."""

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def _frame_key(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame, ""
    return m["func"], m["file"]


def _area(path: str) -> str:
    """Which component a source file belongs to."""
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if str(ROOT) in path:
        rel = path.split(str(ROOT) + "/", 1)[1]
        return "syncline/" + rel.split("/", 1)[0]
    for lib in ("asyncio", "sqlite3", "threading", "selectors", "json", "logging", "concurrent", "queue"):
        if f"/{lib}/" in path or path.endswith(f"/{lib}.py"):
            return f"stdlib/{lib}"
    return "stdlib/other" if "/lib/python" in path else (path or "native")


def _short(path: str) -> str:
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1]
    if str(ROOT) in path:
        return path.split(str(ROOT) + "/", 1)[1]
    if "/lib/python" in path:
        return "stdlib/" + path.split("/lib/python", 1)[1].split("/", 1)[1]
    return path


def summarize_profile(raw: Path, seconds: float, top: int = 25, rate: int = PROFILE_HZ) -> dict[str, Any]:
    """Self and inclusive sample counts per function and self time per component, from py-spy raw."""
    if not raw.exists():
        return {"error": "py-spy wrote nothing"}
    self_counts: Counter[tuple[str, str]] = Counter()
    incl_counts: Counter[tuple[str, str]] = Counter()
    area_self: Counter[str] = Counter()
    area_incl: Counter[str] = Counter()
    ours_incl: Counter[tuple[str, str]] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_frame_key(f) for f in stack.split(";")]
        # The thread frame py-spy prepends, like 'process 123:"python"', carries no file.
        frames = [f for f in frames if f[1]]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        area_self[_area(frames[-1][1])] += count
        for key in set(frames):
            incl_counts[key] += count
        for area in {_area(f[1]) for f in frames}:
            area_incl[area] += count
        for key in set(frames):
            if str(ROOT) in key[1] and "/site-packages/" not in key[1]:  # the venv may live in ROOT
                ours_incl[key] += count

    def rows(counter: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
        return [{"function": f, "file": _short(p), "samples": n, "share": n / total}
                for (f, p), n in counter.most_common(top)]

    return {
        "samples": total,
        "sampling_rate_hz": rate,
        "seconds": seconds,
        "busy_fraction_of_one_core": total / (rate * seconds) if seconds else None,
        "self": rows(self_counts),
        "inclusive": rows(incl_counts),
        "syncline_inclusive": rows(ours_incl),
        "self_by_component": [{"component": a, "samples": n, "share": n / total} for a, n in area_self.most_common()],
        "inclusive_by_component": [{"component": a, "samples": n, "share": n / total}
                                   for a, n in area_incl.most_common()],
    }


# -- 2. commits ----------------------------------------------------------------------------------


def small_updates(count: int, client_id: int) -> list[bytes]:
    """``count`` real Yjs updates of one peer, each setting one small map key."""
    doc = Doc(client_id=client_id)
    m = doc.get("m", type=Map)
    out: list[bytes] = []
    doc.observe(lambda event: out.append(event.update))
    for i in range(count):
        m[f"k{i % 50}"] = i
    return out


async def store_commit_rate(path: Path, writers: int, seconds: float) -> dict[str, Any]:
    """``writers`` tasks, each appending and awaiting its commit in a loop, for ``seconds``."""
    update = small_updates(1, 1)[0]
    latencies: list[float] = []
    async with SQLiteStore(path) as store:
        commits0, updates0 = store.commits, store.committed_updates
        stop = time.perf_counter() + seconds

        async def writer(w: int) -> None:
            doc = f"{TENANT}/cart/w{w}"
            while time.perf_counter() < stop:
                t = time.perf_counter()
                await store.append(doc, update)
                latencies.append(time.perf_counter() - t)

        t0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        commits, updates = store.commits - commits0, store.committed_updates - updates0
    lat = percentiles([1000 * x for x in latencies])
    return {
        "writers": writers, "seconds": elapsed, "updates": updates, "commits": commits,
        "updates_per_s": updates / elapsed, "commits_per_s": commits / elapsed,
        "mean_batch": updates / commits if commits else None, "commit_wait_ms": lat,
        "cpu_us_per_update": 1e6 * cpu / updates if updates else None,
    }


async def _handshake(ws: ClientConnection, doc: Doc, acks: bool) -> int:
    """y-websocket handshake (+ ack hello); return the writes the relay will count for us."""
    if acks:
        await ws.send(protocol.extension({"op": "hello", "acks": True}))
    await ws.send(protocol.sync_step1(doc.get_state()))
    writes, synced, acked = 0, False, 0
    while not synced or (acks and acked < writes):
        message = protocol.decode(await ws.recv())
        if message.kind is Kind.STEP1:
            await ws.send(protocol.sync_step2(doc.get_update(message.payload)))
            writes += 1
        elif message.kind is Kind.STEP2:
            doc.apply_update(message.payload)
            synced = True
        elif message.kind is Kind.EXTENSION:
            body = protocol.decode_extension(message.payload)
            if body["op"] == "ack":
                acked = body["n"]
    return writes


async def relay_ack_peer(url: str, peer: int, stop_at: float, latencies: list[float]) -> int:
    """One peer in its own room: send an update, await its ack, repeat until ``stop_at``."""
    doc = Doc(client_id=10_000 + peer)
    m = doc.get("m", type=Map)
    async with connect(url, max_size=None, compression=None) as ws:
        writes = await _handshake(ws, doc, acks=True)
        done = 0
        i = 0
        while time.perf_counter() < stop_at:
            before = doc.get_state()
            m[f"k{i % 50}"] = i
            i += 1
            update = doc.get_update(before)
            t = time.perf_counter()
            await ws.send(protocol.sync_update(update))
            writes += 1
            while True:
                message = protocol.decode(await ws.recv())
                if message.kind is Kind.EXTENSION:
                    body = protocol.decode_extension(message.payload)
                    if body["op"] == "ack" and body["n"] >= writes:
                        break
            latencies.append(time.perf_counter() - t)
            done += 1
        return done


async def relay_commit_rate(relay: RelayProcess, writers: int, seconds: float) -> dict[str, Any]:
    before = await asyncio.to_thread(scrape_metrics, relay)
    assert relay.process is not None
    cpu0 = cpu_seconds(relay.process.pid)
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    t0 = time.perf_counter()
    urls = [relay.url_for(f"{TENANT}/cart/commit-{writers}-{p}") for p in range(writers)]
    counts = await asyncio.gather(*(relay_ack_peer(u, p, stop_at, latencies) for p, u in enumerate(urls)))
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(relay.process.pid) - cpu0
    after = await asyncio.to_thread(scrape_metrics, relay)
    store = store_counters(before, after)
    acked = sum(counts)
    return {
        "writers": writers, "seconds": elapsed, "acked_updates": acked, "acked_per_s": acked / elapsed,
        "commits": store["commits"], "commits_per_s": store["commits"] / elapsed,
        "mean_batch": store["mean_batch"], "mean_commit_ms": store["mean_commit_ms"],
        "ack_latency_ms": percentiles([1000 * x for x in latencies]),
        "server_cpu_seconds": cpu,
        "server_cpu_us_per_update": 1e6 * cpu / acked if acked else None,
    }


def bench_commits(cfg: Config, work: Path) -> dict[str, Any]:
    store_rows = []
    for n in cfg.store_writers:
        path = work / f"commits-store-{n}" / STORE_FILE
        store_rows.append(asyncio.run(store_commit_rate(path, n, cfg.store_seconds)))
    relay_rows = []
    # Peers here send as fast as their acks come back: lift the per-connection rate limit.
    flags = ("--max-connections-per-tenant", "5000", "--rate-messages-per-second", "1000000", "--rate-burst", "1000000")
    with relay_running(work / "commits-relay", *flags) as relay:
        for n in cfg.commit_writers:
            relay_rows.append(asyncio.run(relay_commit_rate(relay, n, cfg.commit_seconds)))
    return {"synchronous": "FULL", "store": store_rows, "relay": relay_rows}


# -- 3. cold load --------------------------------------------------------------------------------


def history(shape: str, count: int, seed: int = 7) -> list[bytes]:
    """``count`` small updates from 3 interleaving writers, captured as each was made."""
    rng = random.Random(seed)
    docs = [Doc(client_id=100 + i) for i in range(3)]
    out: list[bytes] = []
    writer: list[Doc | None] = [None]
    for d in docs:
        d.observe(lambda event, d=d: out.append(event.update) if d is writer[0] else None)
    roots = [d.get("counts", type=Map) if shape == "overwrite" else d.get("ops", type=Array) for d in docs]
    if shape not in ("overwrite", "append"):
        raise ValueError(shape)
    for i in range(count):
        w = i % 3
        writer[0] = docs[w]
        if shape == "overwrite":
            roots[w][f"sku-{rng.randrange(50)}"] = i
        else:
            # at the head: Yrs finds index n by walking the list, so appending n items is O(n^2)
            roots[w].insert(0, Map({"op": "add", "line": f"sku-{rng.randrange(50)}", "qty": 1, "by": w, "at": i}))
        writer[0] = None
        # the writers stay close to each other: each sees the others' updates at once
        for other in range(3):
            if other != w:
                docs[other].apply_update(out[-1])
    assert len(out) == count, (len(out), count)
    return out


async def write_history(path: Path, docs: dict[str, tuple[list[bytes], bool]], tail: int) -> dict[str, Any]:
    """Append each doc's updates (concurrently, group commit), then compact the ones asked."""
    info: dict[str, Any] = {}
    async with SQLiteStore(path) as store:
        for name, (updates, snapshot) in docs.items():
            seqs: list[int] = []
            chunk = 1024
            for start in range(0, len(updates), chunk):
                seqs += await asyncio.gather(*(store.append(name, u) for u in updates[start:start + chunk]))
            if snapshot:
                keep = min(tail, len(updates) - 1)
                folded = len(updates) - keep
                doc = Doc()
                for u in updates[:folded]:
                    doc.apply_update(u)
                snap = doc.get_update()
                await store.compact(name, snap, seqs[folded - 1])
                info[name] = {"snapshot_bytes": len(snap), "tail": keep}
            else:
                info[name] = {"log_bytes": sum(len(u) for u in updates), "tail": len(updates)}
    return info


async def time_first_sync(url: str) -> float:
    """Connect, send sync step 1 with an empty state vector, wait for sync step 2: seconds."""
    t0 = time.perf_counter()
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.send(protocol.sync_step1(Doc().get_state()))
        while True:
            message = protocol.decode(await ws.recv())
            if message.kind is Kind.STEP2:
                elapsed = time.perf_counter() - t0
                break
    return elapsed


async def in_process_load(path: Path, name: str, repeats: int) -> dict[str, Any]:
    loads, applies, totals = [], [], []
    async with SQLiteStore(path) as store:
        for _ in range(repeats):
            t0 = time.perf_counter()
            stored = await store.load(name)
            t1 = time.perf_counter()
            doc = Doc()
            if stored.snapshot:
                apply_update(doc, stored.snapshot)
            for _, u in stored.updates:
                apply_update(doc, u)
            t2 = time.perf_counter()
            loads.append(t1 - t0)
            applies.append(t2 - t1)
            totals.append(t2 - t0)
    return {"store_load_ms": 1000 * statistics.median(loads), "apply_ms": 1000 * statistics.median(applies),
            "total_ms": 1000 * statistics.median(totals), "repeats": repeats}


def bench_cold_load(cfg: Config, work: Path) -> dict[str, Any]:
    data = work / "cold-load"
    path = data / STORE_FILE
    names: dict[tuple[str, int, str], list[str]] = {}
    sizes: dict[str, Any] = {}
    build_t0 = time.perf_counter()
    for shape in cfg.shapes:
        for count in cfg.history:
            updates = history(shape, count)
            docs: dict[str, tuple[list[bytes], bool]] = {}
            for mode in ("log", "snapshot"):
                key = (shape, count, mode)
                names[key] = [f"{TENANT}/cart/{shape}-{count}-{mode}-{c}" for c in range(cfg.copies)]
                for name in names[key]:
                    docs[name] = (updates, mode == "snapshot")
            info = asyncio.run(write_history(path, docs, cfg.tail))
            for mode in ("log", "snapshot"):
                sizes[f"{shape}-{count}-{mode}"] = info[names[(shape, count, mode)][0]]
            sizes[f"{shape}-{count}-state_bytes"] = len(_state_of(updates))
    build_seconds = time.perf_counter() - build_t0
    # In process first: a relay compacts every open room when it stops, which rewrites the file.
    in_process = {key: asyncio.run(in_process_load(path, docnames[0], 3)) for key, docnames in names.items()}
    rows = []
    with relay_running(data, "--room-idle-seconds", "3600") as relay:
        for (shape, count, mode), docnames in names.items():
            cold = [asyncio.run(time_first_sync(relay.url_for(n))) for n in docnames]
            warm = [asyncio.run(time_first_sync(relay.url_for(n))) for n in docnames for _ in range(3)]
            rows.append({"shape": shape, "updates": count, "mode": mode,
                         "relay_cold_ms": 1000 * statistics.median(cold), "relay_cold_all_ms": [1000 * x for x in cold],
                         "relay_warm_ms": 1000 * statistics.median(warm), **sizes[f"{shape}-{count}-{mode}"],
                         "state_bytes": sizes[f"{shape}-{count}-state_bytes"],
                         "in_process": in_process[(shape, count, mode)]})
    target = next((r for r in rows if r["updates"] == 100_000 and r["mode"] == "snapshot"), None)
    return {"rows": rows, "build_seconds": build_seconds, "tail_after_snapshot": cfg.tail,
            "target_100k_snapshot_under_50ms": {
                r["shape"]: r["relay_cold_ms"] < 50 for r in rows if r["updates"] == 100_000 and r["mode"] == "snapshot"
            } if target else None}


def _state_of(updates: list[bytes]) -> bytes:
    doc = Doc()
    for u in updates:
        doc.apply_update(u)
    return doc.get_update()


# -- 4. RSS per room -----------------------------------------------------------------------------


async def open_room(url: str, stay: bool, deflate: bool, client_id: int, holder: list[ClientConnection]) -> None:
    """Join a room, write one small cart line with acks, then leave or stay connected."""
    doc = Doc(client_id=client_id)
    ws = await connect(url, max_size=None, compression="deflate" if deflate else None)
    try:
        writes = await _handshake(ws, doc, acks=True)
        before = doc.get_state()
        doc.get("ops", type=Array).append(Map({"op": "add", "line": "sku-1", "qty": 2, "by": client_id}))
        await ws.send(protocol.sync_update(doc.get_update(before)))
        writes += 1
        while True:
            message = protocol.decode(await ws.recv())
            if message.kind is Kind.EXTENSION:
                body = protocol.decode_extension(message.payload)
                if body["op"] == "ack" and body["n"] >= writes:
                    break
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
    flags = ("--room-idle-seconds", "3600", "--max-connections-per-tenant", "20000", "--max-rooms", "20000")
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


# -- machine, printing, main ---------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    def node_version() -> str | None:
        try:
            return subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    def npm_version(pkg: str) -> str | None:
        try:
            return json.loads((ROOT / "node_modules" / pkg / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            return None

    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total = None
    with contextlib.suppress(OSError):
        mem_total = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    git = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "server", "engine"], cwd=ROOT,
                               capture_output=True, text=True, check=True)
        git = {"commit": head.stdout.strip(), "server_or_engine_uncommitted": [l[3:] for l in dirty.stdout.splitlines()]}
    return {
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory_mib": mem_total,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "node": node_version(),
        "pycrdt": metadata.version("pycrdt"),
        "uvicorn": metadata.version("uvicorn"),
        "websockets": metadata.version("websockets"),
        "aiosqlite": metadata.version("aiosqlite"),
        "sqlite": __import__("sqlite3").sqlite_version,
        "yjs": npm_version("yjs"),
        "y-websocket": npm_version("y-websocket"),
        "@y/websocket-server": npm_version("@y/websocket-server"),
        "ws": npm_version("ws"),
        "git": git,
    }


def fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fanout_table(runs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    rows = []
    for label, r in runs:
        lat, srv, errs = r["latency_ms"], r["server"], r["errors"]
        rows.append([label, lat["p50"], lat["p95"], lat["p99"], lat["max"], r["delivered_per_s"],
                     f"{r['delivered']:,}/{r['expected_deliveries']:,}",
                     f"{errs['connection_close']}/{errs['connection_error']}",
                     srv["cpu_seconds"], srv["cpu_us_per_delivery"], srv["peak_rss_run_mib"],
                     r["machine_during_run"]["client_cores"], r["machine_during_run"]["background_cores"],
                     ",".join(x or "none" for x in r["negotiated_extensions"])])
    return table(["server", "p50 ms", "p95 ms", "p99 ms", "max ms", "delivered/s", "delivered/expected",
                  "closes/errors", "server CPU s", "CPU us/delivery", "server peak RSS MiB", "client (cores)",
                  "other procs (cores)", "ws extensions"], rows)


def render(results: dict[str, Any]) -> str:
    out: list[str] = []
    m = results["machine"]
    out.append(f"Machine: {m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, Node {m['node']}, "
               f"pycrdt {m['pycrdt']}, yjs {m['yjs']}, {m['timestamp']}")
    if "fanout" in results:
        f = results["fanout"]
        c = results["config"]
        out.append(f"\n## Fan-out: {c['rooms']} rooms x {c['clients']} clients, {fmt(c['rate'], 0)} edits/s each "
                   f"for {fmt(c['duration'], 0)} s (Syncline: every update committed with fsync before broadcast; "
                   "reference: in memory)\n")
        head = f["headline"]
        out.append(fanout_table([(key, head[key]) for key in ("syncline", "reference")]))
        ra = f["ratios_syncline_over_reference"]
        v = f["verdict"]
        out.append("\n" + table(["Syncline / reference", "throughput", "p50", "p99", "max", "server CPU",
                                  "CPU per delivery", "peak RSS"],
                                 [["ratio", f"{ra['throughput']:.3f}", fmt(ra["p50"], 2), fmt(ra["p99"], 2),
                                   fmt(ra["max"], 2), fmt(ra["server_cpu"], 2), fmt(ra["server_cpu_per_delivery"], 2),
                                   fmt(ra["peak_rss"], 2)]]))
        out.append(f"\nTarget (p99 <= reference and throughput >= reference, everything delivered): "
                   f"{'MET' if v['meets_target'] else 'MISSED'} (p99: {fmt(v['p99_at_most_reference'])}, "
                   f"throughput: {fmt(v['throughput_at_least_reference'])})")
        st = head["syncline"]["server"].get("store")
        if st:
            out.append(f"Syncline store during the run: {st['commits']:,} commits, {st['updates_committed']:,} updates, "
                       f"mean batch {fmt(st['mean_batch'])}, mean commit {fmt(st['mean_commit_ms'], 2)} ms, "
                       f"rejected {st['rejected'] or 'none'}")
        for key in ("syncline", "reference"):
            tl = head[key]["timeline"]
            out.append(f"{key} p99 by send second (ms): " + ", ".join(fmt(b["p99_ms"], 0) for b in tl))
        out.append("\nEvery run (interleaved; the headline is each server's least disturbed run):\n")
        out.append(fanout_table([(f"{key} #{i + 1}", r) for key, rs in f["all_runs"].items() for i, r in enumerate(rs)]))
        if f.get("deflate_offered"):
            d = f["deflate_offered"]
            out.append("\nSame load, clients offering permessage-deflate (browsers do; the ws extensions "
                       "column shows what each server accepted):\n")
            out.append(fanout_table([(key, d[key]) for key in ("syncline", "reference")]))
        if f.get("scaling"):
            out.append("\nLower edit rates (shorter runs):\n")
            rows = []
            for row in f["scaling"]:
                for key in ("syncline", "reference"):
                    r = row[key]
                    rows.append([f"{fmt(row['rate'], 0)}/s x {fmt(row['duration'], 0)} s", key, r["latency_ms"]["p50"],
                                 r["latency_ms"]["p99"], r["delivered_per_s"],
                                 f"{r['delivered']:,}/{r['expected_deliveries']:,}", r["server"]["cpu_seconds"],
                                 r["server"]["cpu_us_per_delivery"], r["machine_during_run"]["background_cores"],
                                 ("MET" if row["verdict"]["meets_target"] else "missed") if key == "syncline" else ""])
            out.append(table(["load", "server", "p50 ms", "p99 ms", "delivered/s", "delivered/expected",
                              "server CPU s", "CPU us/delivery", "other procs (cores)", "Syncline vs target"], rows))
        prof = f.get("profiled_syncline_run", {}).get("profile")
        if prof and "self" in prof:
            pr = f["profiled_syncline_run"]
            out.append(f"\n### Profile of the relay under this load (py-spy --gil, {prof['samples']:,} samples at "
                       f"{prof['sampling_rate_hz']} Hz: the GIL was held {fmt(100 * prof['busy_fraction_of_one_core'], 0)}% "
                       f"of the time; that run: p99 {fmt(pr['latency_ms']['p99'], 0)} ms, "
                       f"{pr['delivered']:,}/{pr['expected_deliveries']:,} delivered)\n")
            out.append(table(["component", "self %", "inclusive %"], [
                [a["component"], fmt(100 * a["share"]),
                 fmt(100 * next((b["share"] for b in prof["inclusive_by_component"] if b["component"] == a["component"]), 0.0))]
                for a in prof["self_by_component"][:12]]))
            out.append("\n" + table(["self: function", "file", "%"], [
                [r["function"], r["file"], fmt(100 * r["share"])] for r in prof["self"][:20]]))
            out.append("\n" + table(["inclusive (Syncline code): function", "file", "%"], [
                [r["function"], r["file"], fmt(100 * r["share"])] for r in prof["syncline_inclusive"][:20]
                if r["function"] not in ("<module>", "main", "_serve", "run_server")]))
    if "commits" in results:
        cm = results["commits"]
        out.append("\n## Store commits (SQLite WAL, synchronous=FULL)\n")
        out.append(table(["in process: writers", "updates/s", "commits/s", "mean batch", "p50 wait ms", "p99 wait ms",
                          "CPU us/update"], [
            [r["writers"], r["updates_per_s"], r["commits_per_s"], r["mean_batch"], r["commit_wait_ms"]["p50"],
             r["commit_wait_ms"]["p99"], r["cpu_us_per_update"]] for r in cm["store"]]))
        out.append("\n" + table(["through the relay: peers with acks", "acked/s", "commits/s", "mean batch",
                                 "p50 ack ms", "p99 ack ms", "relay CPU us/update"], [
            [r["writers"], r["acked_per_s"], r["commits_per_s"], r["mean_batch"], r["ack_latency_ms"]["p50"],
             r["ack_latency_ms"]["p99"], r["server_cpu_us_per_update"]] for r in cm["relay"]]))
    if "cold_load" in results:
        cl = results["cold_load"]
        out.append(f"\n## Cold room load (snapshot = compacted with a {cl['tail_after_snapshot']}-update tail)\n")
        out.append(table(["shape", "updates", "stored as", "relay cold ms", "relay warm ms", "load ms (in process)",
                          "apply ms", "stored bytes", "state bytes"], [
            [r["shape"], r["updates"], r["mode"], r["relay_cold_ms"], r["relay_warm_ms"],
             r["in_process"]["store_load_ms"], r["in_process"]["apply_ms"],
             r.get("snapshot_bytes", r.get("log_bytes")), r["state_bytes"]] for r in cl["rows"]]))
        if cl.get("target_100k_snapshot_under_50ms"):
            out.append(f"\n100k-update room opens in < 50 ms with snapshots: {cl['target_100k_snapshot_under_50ms']}")
    if "rss" in results:
        rs = results["rss"]
        out.append("\n## Relay RSS per open room\n")
        rows = []
        for mode in ("left", "connected", "connected_deflate"):
            for r in rs.get(mode, []):
                rows.append([mode, r["rooms"], r.get("connections", 0), r["rss_mib"], r.get("kib_per_room")])
        out.append(table(["clients", "rooms", "connections", "RSS MiB", "KiB per room (+connection)"], rows))
        out.append("\n" + table(["rooms", "KiB per connection", "KiB per connection (permessage-deflate)"], [
            [r["rooms"], r.get("connected_kib_per_connection"), r.get("connected_deflate_kib_per_connection")]
            for r in rs["per_connection"]]))
    return "\n".join(out)


SECTIONS = ("fanout", "commits", "cold_load", "rss")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, under 30 seconds")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT.relative_to(ROOT)})")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections (repeatable)")
    parser.add_argument("--rooms", type=int)
    parser.add_argument("--clients", type=int, help="clients per room")
    parser.add_argument("--rate", type=float, help="edits per second per client")
    parser.add_argument("--duration", type=float, help="seconds of editing")
    parser.add_argument("--deflate", action="store_true",
                        help="headline fan-out clients offer permessage-deflate (as browsers do)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiled Syncline run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    overrides = {k: getattr(args, k) for k in ("rooms", "clients", "rate", "duration") if getattr(args, k) is not None}
    cfg = replace(cfg, **overrides)
    if args.deflate:
        cfg = replace(cfg, deflate=True)
    if args.no_profile or py_spy_path() is None:
        cfg = replace(cfg, profile=False)
    sections = args.only or list(SECTIONS)
    results: dict[str, Any] = {"machine": machine_info(), "config": asdict(cfg), "sections": sections}
    work = Path(tempfile.mkdtemp(prefix="syncline-relay-bench-"))
    results_dir = args.out.resolve().parent
    started = time.perf_counter()
    try:
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "fanout": lambda: bench_fanout(cfg, work, results_dir),
            "commits": lambda: bench_commits(cfg, work),
            "cold_load": lambda: bench_cold_load(cfg, work),
            "rss": lambda: bench_rss(cfg, work),
        }
        results["section_seconds"] = {}
        for section in SECTIONS:
            if section in sections:
                t0 = time.perf_counter()
                print(f"[{section}] ...", file=sys.stderr, flush=True)
                try:
                    results[section] = runners[section]()
                except Exception:  # keep the other sections' numbers
                    results.setdefault("errors", {})[section] = traceback.format_exc()
                    print(results["errors"][section], file=sys.stderr, flush=True)
                results["section_seconds"][section] = round(time.perf_counter() - t0, 1)
    finally:
        if args.keep:
            print(f"data kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = time.perf_counter() - started
    print(render({k: v for k, v in results.items() if k not in results.get("errors", {})}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nsaved {args.out} ({results['seconds']:.0f} s)")
    if results.get("errors"):
        print(f"sections that failed: {', '.join(results['errors'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
