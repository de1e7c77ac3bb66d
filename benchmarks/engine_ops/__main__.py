"""``python -m benchmarks.engine_ops``: run every section, print tables, save raw run and summary."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.engine_ops import __doc__ as engine_ops_doc
from benchmarks.engine_ops.documents import LayoutRun, bench_documents, bench_layouts, bench_update_reads
from benchmarks.engine_ops.rates import bench_ops, bench_reads, bench_scaling
from benchmarks.engine_ops.workload import Config, cart_script, ledger_script, timed


def run(cfg: Config) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": common.machine_info(), "config": asdict(cfg)}
    section("1. operation rates", lambda: results.__setitem__("ops", bench_ops(cfg)))
    section("2. reads", lambda: results.__setitem__("reads", bench_reads(cfg)))
    section("3. scaling", lambda: results.__setitem__("scaling", bench_scaling(cfg)))
    carts = cart_script(cfg.ops, cfg.lines, random.Random(cfg.seed))
    bodies = ledger_script(cfg.ops, cfg.skus, random.Random(cfg.seed))
    layouts: list[LayoutRun] = []
    section("7. layouts", lambda: layouts.extend(bench_layouts(cfg, carts, bodies)))
    results["layouts"] = [run.row for run in layouts]
    section("4-6. documents", lambda: results.update(bench_documents(cfg, layouts)))
    section("8. update reads", lambda: results.__setitem__("updates", bench_update_reads(cfg)))
    results["config"]["sizes"] = cfg.sizes
    results["config"]["interleaved_sizes"] = cfg.interleaved_sizes
    results["elapsed_s"] = time.perf_counter() - started
    results["machine"]["loadavg_end"] = common.load_average()
    return results


def section(title: str, fn: Callable[[], object]) -> None:
    print(f"running {title} ...", file=sys.stderr, flush=True)
    seconds = timed(fn)
    print(f"  done in {seconds:.1f} s", file=sys.stderr, flush=True)


# -- output ------------------------------------------------------------------------------


def fmt(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def print_table(title: str, rows: Sequence[Any], columns: Sequence[str] | None = None) -> None:
    if not rows:
        return
    dicts = [asdict(row) for row in rows]
    headers = list(columns or dicts[0].keys())
    cells = [[fmt(d[h]) for h in headers] for d in dicts]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [isinstance(dicts[0][h], (int, float)) and not isinstance(dicts[0][h], bool) for h in headers]
    print(f"\n## {title}")
    print("  ".join(h.rjust(w) if num else h.ljust(w) for h, w, num in zip(headers, widths, numeric)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)))


def report(results: Mapping[str, Any]) -> None:
    m = results["machine"]
    print(f"Syncline engine benchmarks: {results['config']['ops']:,} ops, python {m['python']}, "
          f"pycrdt {m['pycrdt']}, {m['platform']}, {m['cpu_count']} cpus, {m['timestamp']}")
    print_table("1. operation rates (ratio = domain ops/s / raw ops/s)", results["ops"])
    print_table("2. reads on large documents (ms per call; ratio = domain / raw to_py)", results["reads"])
    print_table("3. scaling (ms per op against entries in the document)", results["scaling"])
    print_table(
        "4. per-op updates applied to a fresh document (diff = encode_diff(doc, sv_before); "
        "txn = the transaction's own update; ratio = domain / raw)",
        results["apply"],
    )
    print_table("5. document bytes after N ops (ratio = domain / raw bytes)", results["documents"])
    print_table("6. load: Doc().apply_update(full) then the first view()", results["load"])
    print_table("7. layouts in raw pycrdt (overhead = bytes - live: tombstones, item headers)",
                results["layouts"])
    print_table("8. reading an update: read_update vs pycrdt get_state (µs per call; ratio = read / get_state)",
                results["updates"])
    print(f"\ntotal {results['elapsed_s']:.1f} s; load average at start {m['loadavg_start']}, "
          f"at end {m['loadavg_end']}")



def parse_args(argv: Sequence[str] | None = None) -> tuple[Config, Path]:
    parser = common.parser("engine_ops", engine_ops_doc, quick="smoke run: 1000 ops and fewer repetitions")
    parser.add_argument("--ops", type=int, default=None, help="operations per workload (default 10000)")
    args = parser.parse_args(argv)
    ops = args.ops if args.ops is not None else (1000 if args.quick else 10_000)
    if ops < 100:
        parser.error("--ops must be at least 100")
    cfg = Config(ops=ops, reps=3 if args.quick else 5, probes=5 if args.quick else 10, quick=args.quick)
    return cfg, args.out


def main(argv: Sequence[str] | None = None) -> None:
    cfg, out = parse_args(argv)
    results = run(cfg)
    report(results)
    common.save("engine_ops", results, out)


if __name__ == "__main__":
    main()
