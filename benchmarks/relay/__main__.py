"""``python -m benchmarks.relay``: run the chosen sections, print tables, save raw run and summary."""

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
from benchmarks.profiling import py_spy_path
from benchmarks.relay import __doc__ as relay_doc
from benchmarks.relay.cold_load import bench_cold_load
from benchmarks.relay.commits import bench_commits
from benchmarks.relay.config import QUICK, SECTIONS, Config
from benchmarks.relay.fanout import bench_fanout
from benchmarks.relay.report import render
from benchmarks.relay.rss import bench_rss


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.parser("relay", relay_doc, quick="smoke run, under 30 seconds")
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
    results: dict[str, Any] = {"machine": common.machine_info(node=True), "config": asdict(cfg), "sections": sections}
    work = Path(tempfile.mkdtemp(prefix="syncline-relay-bench-"))
    raw_dir = args.out.resolve().parent  # py-spy stacks go next to the raw run
    started = time.perf_counter()
    try:
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "fanout": lambda: bench_fanout(cfg, work, raw_dir),
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
    common.save("relay", results, args.out)
    print(f"\n{results['seconds']:.0f} s")
    if results.get("errors"):
        print(f"sections that failed: {', '.join(results['errors'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
