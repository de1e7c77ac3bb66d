"""Fan-out: R rooms x C Yjs clients (benchmarks/js/fanout.mjs) against Syncline and the Node reference."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, connection_caps, ratio
from benchmarks.pinning import NONE as NO_PINNING
from benchmarks.pinning import Pinning, cpus_busy
from benchmarks.procs import (
    ReferenceServer,
    RssSampler,
    cpu_seconds,
    main_thread_cpu_seconds,
    machine_cpu,
    memory_kib,
    relay_running,
    scrape_metrics,
    store_counters,
    wait_for_quiet,
)
from benchmarks.profiling import py_spy_path, start_py_spy, summarize_profile
from benchmarks.relay.config import FANOUT_JS, TENANT, Config


def run_fanout_client(
    cfg: Config, url: str, token: str | None, pid: int, prefix: str, log_path: Path,
    profile_raw: Path | None = None, pinning: Pinning = NO_PINNING,
) -> dict[str, Any]:
    """Run fanout.mjs against a server with process ``pid`` (on ``pinning``'s client CPUs); add the
    server's CPU and memory."""
    args = ["node", str(FANOUT_JS), "--url", url, "--rooms", str(cfg.rooms), "--clients", str(cfg.clients),
            "--rate", str(cfg.rate), "--duration", str(cfg.duration), "--drain", str(cfg.drain),
            "--prefix", prefix, "--deflate", "true" if cfg.deflate else "false"]
    if token:
        args += ["--token", token]
    budget = 60 + 30 + cfg.duration + cfg.drain + 30  # connect + settle + run + drain + late joiners
    log = open(log_path, "a")  # noqa: SIM115 - owned by the child
    client = subprocess.Popen(pinning.client_command(args), cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
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
                server["main_cpu_start"] = main_thread_cpu_seconds(pid)
                server["client_cpu_start"] = cpu_seconds(client.pid)
                server["machine_start"] = machine_cpu()[0]
                if pinning.server is not None:
                    server["server_cpus_start"] = cpus_busy(pinning.server)
                sampler.start()
                if profile_raw is not None:
                    spy = start_py_spy(pid, profile_raw, cfg.duration + 1.0)
            elif event == "done":
                server["cpu_end"] = cpu_seconds(pid)
                server["main_cpu_end"] = main_thread_cpu_seconds(pid)
                server["client_cpu_end"] = cpu_seconds(client.pid)
                server["machine_end"] = machine_cpu()[0]
                if pinning.server is not None:
                    server["server_cpus_end"] = cpus_busy(pinning.server)
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
    main_cpu = server["main_cpu_end"] - server["main_cpu_start"]
    client_cpu = server["client_cpu_end"] - server["client_cpu_start"]
    machine_busy = server["machine_end"] - server["machine_start"]
    result["machine_during_run"] = {
        "busy_cores": machine_busy / run_seconds,
        "server_cores": server_cpu / run_seconds,
        "client_cores": client_cpu / run_seconds,
        # what other processes on the machine used meanwhile: contention, not our load
        "background_cores": max(0.0, machine_busy - server_cpu - client_cpu) / run_seconds,
    }
    if "server_cpus_end" in server:
        # what other processes took of the server's own (pinned) CPU: the server could not use it
        taken = server["server_cpus_end"] - server["server_cpus_start"] - server_cpu
        result["machine_during_run"]["others_on_server_cpu"] = max(0.0, taken) / run_seconds
    result["server"] = {
        "cpu_seconds": server_cpu,
        "cpu_us_per_delivery": 1e6 * server_cpu / result["delivered"] if result["delivered"] else None,
        # The main thread runs the event loop; the rest is other threads (Syncline's store writer).
        "main_thread_cpu_us_per_delivery": 1e6 * main_cpu / result["delivered"] if result["delivered"] else None,
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
    flags = connection_caps(max(1000, 4 * cfg.rooms * cfg.clients))
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
        "main_thread_cpu_per_delivery": ratio(s["server"].get("main_thread_cpu_us_per_delivery"),
                                              r["server"].get("main_thread_cpu_us_per_delivery")),
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
    """The run other processes disturbed least: on the server's own CPU when it was pinned, else anywhere."""
    return min(runs, key=lambda r: (r["machine_during_run"].get("others_on_server_cpu", 0.0),
                                    r["machine_during_run"]["background_cores"]))


def bench_fanout(cfg: Config, work: Path, raw_dir: Path) -> dict[str, Any]:
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
        out["profiled_syncline_run"] = fanout_syncline(cfg, work, "profiled", profile_dir=raw_dir)
    return out
