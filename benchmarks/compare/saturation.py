"""Saturation sweep: the fan-out load at rising edit rates, each server until it misses a bound.

Every step runs R rooms x C Yjs clients at one edit rate per client against each server still
in the sweep, one after the other (interleaved: a noisy minute hits every server's step, not
one server's whole curve). A server leaves the sweep at the first step where it does not
deliver every update or its p99 goes over ``sweep_p99_ms``; its saturation point is the last
rate it passed. Every step of every server is reported, passed or not.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.common import log
from benchmarks.compare.config import Config
from benchmarks.compare.fanout import fanout_run
from benchmarks.peers import LABELS
from benchmarks.procs import wait_for_quiet


def step_verdict(result: dict[str, Any], p99_bound: float) -> tuple[bool, str]:
    """(passed, why not) for one step: everything delivered and p99 under the bound."""
    if result["delivered"] < result["expected_deliveries"]:
        return False, f"delivered {result['delivered']:,}/{result['expected_deliveries']:,}"
    p99 = result["latency_ms"]["p99"]
    if p99 > p99_bound:
        return False, f"p99 {p99:.0f} ms > {p99_bound:g} ms"
    return True, ""


def bench_saturation(cfg: Config, work: Path) -> dict[str, Any]:
    steps: dict[str, list[dict[str, Any]]] = {k: [] for k in cfg.servers}
    saturation: dict[str, float | None] = {k: None for k in cfg.servers}
    failed_at: dict[str, float | None] = {k: None for k in cfg.servers}
    in_sweep = list(cfg.servers)
    for rate in cfg.sweep_rates:
        if not in_sweep:
            break
        point = replace(cfg, rooms=cfg.sweep_rooms, rate=rate, duration=cfg.sweep_duration, drain=cfg.sweep_drain)
        for key in list(in_sweep):
            quiet = wait_for_quiet(min(cfg.quiet_wait, 5.0))
            try:
                result = fanout_run(key, point, work, f"sweep {rate:g}/s")
            except Exception as exc:  # a server that falls over under load has failed this step
                log("saturation", f"{LABELS[key]} at {rate:g} edits/s per client failed: {exc}")
                steps[key].append({"rate": rate, "passed": False, "why": f"run failed: {exc}"})
                failed_at[key] = rate
                in_sweep.remove(key)
                continue
            passed, why = step_verdict(result, cfg.sweep_p99_ms)
            steps[key].append({
                "rate": rate, "passed": passed, "why": why, "quiet_check": quiet,
                "offered_deliveries_per_s": result["offered_deliveries_per_s"],
                "delivered_per_s": result["delivered_per_s"], "delivered": result["delivered"],
                "expected_deliveries": result["expected_deliveries"], "latency_ms": result["latency_ms"],
                "cpu_us_per_delivery": result["server"]["cpu_us_per_delivery"],
                "main_thread_cpu_us_per_delivery": result["server"].get("main_thread_cpu_us_per_delivery"),
                "server_cores": result["machine_during_run"]["server_cores"],
                "client_cores": result["machine_during_run"]["client_cores"],
                "background_cores": result["machine_during_run"]["background_cores"],
                "others_on_server_cpu": result["machine_during_run"].get("others_on_server_cpu"),
                "peak_rss_mib": result["server"]["peak_rss_run_mib"],
                "store": result["server"].get("store"),
            })
            log("saturation", f"{LABELS[key]} at {rate:g} edits/s per client: {'pass' if passed else 'FAIL: ' + why}")
            if passed:
                saturation[key] = rate
            else:
                failed_at[key] = rate
                in_sweep.remove(key)
    return {"rooms": cfg.sweep_rooms, "clients": cfg.clients, "rates": list(cfg.sweep_rates),
            "p99_bound_ms": cfg.sweep_p99_ms, "duration": cfg.sweep_duration, "steps": steps,
            "saturation_rate": saturation, "failed_at": failed_at,
            "still_passing_at_last_rate": [k for k in in_sweep]}
