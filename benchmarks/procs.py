"""Processes and /proc for benchmarks: CPU seconds, RSS, machine load, the Node reference server, metrics."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import ROOT
from harness.relay_process import RelayProcess

REFERENCE_JS = ROOT / "node_modules" / "@y" / "websocket-server" / "src" / "server.js"
STORE_FILE = "syncline.sqlite3"
CLK_TCK = os.sysconf("SC_CLK_TCK")
QUIET_CORES = 0.3
"""Before each fan-out run, wait until other processes use less than this many cores."""



def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (every thread), from /proc/PID/stat."""
    return _stat_cpu_seconds(f"/proc/{pid}/stat")


def main_thread_cpu_seconds(pid: int) -> float:
    """utime + stime of the process's main thread alone (the one whose id is the process's),
    from /proc/PID/task/PID/stat: the event loop of the relay and of the Node and pycrdt servers,
    without the threads beside it (a store's writer, V8's collector, a thread pool)."""
    return _stat_cpu_seconds(f"/proc/{pid}/task/{pid}/stat")


def _stat_cpu_seconds(path: str) -> float:
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
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
        # commits slower than these bounds (histogram buckets): stalls every write waits behind
        "commits_over_10ms": int(commits - delta('syncline_commit_seconds_bucket{le="0.01"}')),
        "commits_over_50ms": int(commits - delta('syncline_commit_seconds_bucket{le="0.05"}')),
        "commits_over_100ms": int(commits - delta('syncline_commit_seconds_bucket{le="0.1"}')),
        # how late the relay's event loop woke its 50 ms timer: stalls every peer waits through
        "loop_lag_samples": int(delta("syncline_event_loop_lag_seconds_count")),
        "loop_late_over_10ms": int(delta("syncline_event_loop_lag_seconds_count")
                                   - delta('syncline_event_loop_lag_seconds_bucket{le="0.01"}')),
        "loop_late_over_25ms": int(delta("syncline_event_loop_lag_seconds_count")
                                   - delta('syncline_event_loop_lag_seconds_bucket{le="0.025"}')),
        # the garbage collector's pauses, in which the relay's event loop serves no one
        "gc_full_collections": int(delta('syncline_gc_pause_seconds_count{generation="2"}')),
        "gc_full_ms": round(1000 * delta('syncline_gc_pause_seconds_sum{generation="2"}'), 2),
        "gc_pauses_over_10ms": int(sum(
            delta(f'syncline_gc_pause_seconds_count{{generation="{g}"}}')
            - delta(f'syncline_gc_pause_seconds_bucket{{generation="{g}",le="0.01"}}') for g in range(3))),
    }
