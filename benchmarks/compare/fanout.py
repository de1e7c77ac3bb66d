"""Fan-out: the relay benchmark's Yjs clients against each server, interleaved; throughput vs clients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, log
from benchmarks.compare.config import (
    REFERENCES,
    Config,
    syncline_flags,
)
from benchmarks.peers import LABELS, TENANT, running
from benchmarks.procs import scrape_metrics, store_counters, wait_for_quiet
from benchmarks.profiling import py_spy_path, summarize_profile
from benchmarks.relay.fanout import compare, least_disturbed, run_fanout_client


def fanout_run(key: str, cfg: Config, work: Path, tag: str, profile_raw: Path | None = None) -> dict[str, Any]:
    with running(key, work / f"fanout-{key}-{tag}", syncline_flags("fanout", cfg), cfg.pinning) as server:
        before = scrape_metrics(server.relay) if key.startswith("syncline") else None  # type: ignore[attr-defined]
        result = run_fanout_client(cfg, server.ws_base, server.token, server.pid, f"{TENANT}/cart/r",  # type: ignore[arg-type]
                                   work / "fanout-client.log", profile_raw, cfg.pinning)
        if before is not None:
            result["server"]["store"] = store_counters(before, scrape_metrics(server.relay))  # type: ignore[attr-defined]
    result["server"]["name"] = key
    if profile_raw is not None:
        result["profile"] = summarize_profile(profile_raw, cfg.duration + 1.0)
        result["profile"]["raw"] = str(profile_raw.relative_to(ROOT)) if profile_raw.is_relative_to(ROOT) else str(profile_raw)
    lat = result["latency_ms"]
    log("fanout", f"{LABELS[key]} {tag}: {cfg.rooms}x{cfg.clients} clients at {cfg.rate:g}/s: p50 {lat['p50']:.1f} ms, "
        f"p99 {lat['p99']:.1f} ms, {result['delivered_per_s']:,.0f} delivered/s "
        f"({result['delivered']:,}/{result['expected_deliveries']:,}), server CPU {result['server']['cpu_seconds']:.1f} s, "
        f"other procs {result['machine_during_run']['background_cores']:.2f} cores")
    return result


def ratios_against(runs: dict[str, dict[str, Any]], servers: Sequence[str]) -> dict[str, Any]:
    out = {}
    for ref in REFERENCES:
        if "syncline" in runs and ref in runs and ref in servers:
            ratios, verdict = compare(runs["syncline"], runs[ref])
            out[ref] = {"ratios": ratios, "verdict": verdict}
    return out


def bench_fanout(cfg: Config, work: Path, raw_dir: Path) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in cfg.servers}
    for i in range(cfg.repeat):
        for key in cfg.servers:
            quiet = wait_for_quiet(cfg.quiet_wait)
            try:
                result = fanout_run(key, cfg, work, f"#{i + 1}")
            except Exception as exc:  # one server failing the load is a result, not the end of the run
                log("fanout", f"{LABELS[key]} #{i + 1} failed: {exc}")
                continue
            result["quiet_check"] = quiet
            runs[key].append(result)
    headline = {k: least_disturbed(rs) for k, rs in runs.items() if rs}
    out: dict[str, Any] = {"headline": headline, "against": ratios_against(headline, cfg.servers), "all_runs": runs}
    scaling = []
    for rooms in sorted({*cfg.scaling_rooms, cfg.rooms}):
        row: dict[str, Any] = {"rooms": rooms, "clients": rooms * cfg.clients}
        for key in cfg.servers:
            if rooms == cfg.rooms and key in headline:
                row[key] = headline[key]
                continue
            point = replace(cfg, rooms=rooms, duration=cfg.scaling_duration)
            try:
                row[key] = fanout_run(key, point, work, f"{rooms * cfg.clients} clients")
            except Exception as exc:
                log("fanout", f"{LABELS[key]} at {rooms * cfg.clients} clients failed: {exc}")
        scaling.append(row)
    out["scaling"] = scaling
    if cfg.profile and py_spy_path() and "syncline" in cfg.servers:
        wait_for_quiet(cfg.quiet_wait)
        raw = raw_dir / "compare-fanout-pyspy.txt"
        out["profiled_syncline_run"] = fanout_run("syncline", cfg, work, "profiled (py-spy)", raw)
    return out
