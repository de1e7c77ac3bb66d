"""``python -m benchmarks.compare``: run the chosen workloads, print tables, save run, summary, plots."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import log, machine_info
from benchmarks.compare import __doc__ as compare_doc
from benchmarks.compare.capacity import bench_capacity, bench_memory
from benchmarks.compare.cold_start import bench_cold_start
from benchmarks.compare.config import (
    ALL_SERVERS,
    QUICK,
    WORKLOADS,
    Config,
    raise_nofile_limit,
)
from benchmarks.compare.durability import bench_durability
from benchmarks.compare.fanout import bench_fanout
from benchmarks.compare.plots import plot
from benchmarks.compare.report import render
from benchmarks.compare.saturation import bench_saturation
from benchmarks.peers import LABELS, SERVERS
from benchmarks.pinning import default_pinning
from benchmarks.profiling import py_spy_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.parser("compare", compare_doc, quick="smoke run, about 2-3 minutes")
    parser.add_argument("--only", action="append", choices=WORKLOADS, help="run only these workloads (repeatable)")
    parser.add_argument("--servers", help=f"comma-separated servers among {','.join(SERVERS)} "
                        f"(default {','.join(ALL_SERVERS)}; syncline-asgi sends every frame through ASGI)")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the server to one CPU and the load generator to another (taskset)")
    parser.add_argument("--plots", type=Path, default=None,
                        help="directory for the PNG plots (default docs/images for the default --out, else next to --out)")
    parser.add_argument("--repeat", type=int, help="fan-out runs per server (interleaved; default 2, --quick 1)")
    parser.add_argument("--no-scaling", action="store_true",
                        help="skip the fan-out runs with fewer and more rooms (throughput vs clients)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiled Syncline runs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    if args.servers:
        chosen = tuple(s.strip() for s in args.servers.split(",") if s.strip())
        unknown = set(chosen) - set(SERVERS)
        if unknown:
            parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
        cfg = replace(cfg, servers=chosen)
    if args.repeat is not None:
        cfg = replace(cfg, repeat=max(1, args.repeat))
    if args.no_scaling:
        cfg = replace(cfg, scaling_rooms=())
    if args.no_profile or py_spy_path() is None:
        cfg = replace(cfg, profile=False)
    if not args.no_pin:
        cfg = replace(cfg, pinning=default_pinning())
    workloads = args.only or list(WORKLOADS)
    nofile = raise_nofile_limit()
    results: dict[str, Any] = {"machine": machine_info(node=True), "config": asdict(cfg), "workloads": workloads,
                               "nofile": nofile, "command": " ".join(["python -m benchmarks.compare", *(argv or sys.argv[1:])])}
    results["machine"]["pycrdt-websocket"] = common.version("pycrdt-websocket")
    results["machine"]["pycrdt-store"] = common.version("pycrdt-store")
    work = Path(tempfile.mkdtemp(prefix="syncline-compare-"))
    out_path = args.out.resolve()
    raw_dir = out_path.parent  # py-spy stacks go next to the raw run; plots next to the summary
    default_plots = common.ROOT / "docs" / "images" if out_path == common.raw_path("compare").resolve() else raw_dir
    plot_dir = (args.plots or default_plots).resolve()
    results["pinning"] = cfg.pinning.describe()
    log("compare", f"servers: {', '.join(LABELS[s] for s in cfg.servers)}; {cfg.pinning.describe()}; "
        f"workloads: {', '.join(workloads)}; "
        f"open files limit {nofile['soft']:,} (hard {nofile['hard']:,}); data in {work}")
    started = time.perf_counter()
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "fanout": lambda: bench_fanout(cfg, work, raw_dir),
        "saturation": lambda: bench_saturation(cfg, work),
        "capacity": lambda: bench_capacity(cfg, work),
        "cold_start": lambda: bench_cold_start(cfg, work, raw_dir),
        "memory": lambda: bench_memory(cfg, work),
        "durability": lambda: bench_durability(cfg, work),
    }
    results["workload_seconds"] = {}
    try:
        for workload in WORKLOADS:
            if workload not in workloads:
                continue
            t0 = time.perf_counter()
            log(workload, "...")
            try:
                results[workload] = runners[workload]()
            except Exception:  # keep the other workloads' numbers
                results.setdefault("errors", {})[workload] = traceback.format_exc()
                print(results["errors"][workload], file=sys.stderr, flush=True)
            results["workload_seconds"][workload] = round(time.perf_counter() - t0, 1)
            log(workload, f"done in {results['workload_seconds'][workload]:.0f} s")
    finally:
        if args.keep:
            log("compare", f"data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = time.perf_counter() - started
    plot_dir.mkdir(parents=True, exist_ok=True)
    results["plots"] = plot(results, plot_dir, out_path.stem)
    print(render(results))
    common.save("compare", results, args.out)
    print(f"\n{results['seconds']:.0f} s")
    if results.get("errors"):
        print(f"workloads that failed: {', '.join(results['errors'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
