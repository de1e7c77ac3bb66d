"""What every benchmark program shares: paths, arguments, machine info, percentiles, tables, output.

Every program writes two files: the whole run (every sample, every run) as JSON under
``benchmarks/runs/`` (git-ignored), and a summary (the same structure without raw samples:
no latency distributions, profiles cut to their top rows, floats rounded) under
``benchmarks/results/``, which is what the docs cite. ``--out PATH`` moves the raw file; its
summary then goes next to it as ``PATH.summary.json`` so that an ad-hoc run never replaces a
committed summary.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "benchmarks" / "runs"

RAW_KEYS = frozenset({"latency_cdf", "samples"})
"""Keys whose lists hold raw samples: left out of summaries (the raw run under runs/ keeps them)."""
TOP_ROWS = 20
"""Profile tables (lists under these keys) keep this many rows in a summary."""
RANKED_KEYS = frozenset({"self", "inclusive", "syncline_inclusive"})
COLUMN_KEYS = frozenset({"timeline"})
"""Lists of small rows (one per second of a run) that a summary keeps as one list per column."""

PACKAGES = ("syncline", "pycrdt", "websockets", "uvicorn", "aiosqlite")
NPM_PACKAGES = ("yjs", "y-websocket", "@y/websocket-server", "ws")


# -- arguments -------------------------------------------------------------------------------


def raw_path(name: str) -> Path:
    """Where a program named ``name`` writes its raw run by default."""
    return RUNS / f"{name}.json"


def parser(name: str, doc: str | None, *, quick: str | None = None) -> argparse.ArgumentParser:
    """An argument parser for ``python -m benchmarks.<name>`` with ``--out`` (and ``--quick``)."""
    out = raw_path(name)
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=(doc or "").split("\n\n")[0])
    if quick is not None:
        p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--out", type=Path, default=out,
                   help=f"raw JSON (default {out.relative_to(ROOT)}; the summary goes to "
                        f"{(RESULTS / out.name).relative_to(ROOT)}, or next to --out as NAME.summary.json)")
    return p


# -- machine ---------------------------------------------------------------------------------


def machine_info(*, node: bool = False, **extra: Any) -> dict[str, Any]:
    """Where and with what a run ran: CPUs, memory, load, versions, git commit; ``extra`` added."""
    info: dict[str, Any] = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "memory_mib": _memory_mib(),
        "platform": platform.platform(),
        "implementation": platform.python_implementation(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        **{name: version(name) for name in PACKAGES},
        "loadavg_start": load_average(),
        "git": git_info(),
    }
    if node:
        info["node"] = _node_version()
        info.update({name: npm_version(name) for name in NPM_PACKAGES})
    info.update(extra)
    return info


def version(dist: str) -> str | None:
    """The installed version of the Python distribution ``dist``, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def npm_version(package: str) -> str | None:
    """The version of ``package`` installed under node_modules/, or None."""
    try:
        return str(json.loads((ROOT / "node_modules" / package / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: timings mean little on a busy host."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def git_info() -> dict[str, Any] | None:
    """The checked-out commit and the uncommitted files under the package folders."""
    try:
        head = _git("rev-parse", "HEAD").strip()
        status = _git("status", "--porcelain", "--", "engine", "server", "adapters")
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": head, "uncommitted": [line[3:] for line in status.splitlines()]}


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def _memory_mib() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return None


def _node_version() -> str | None:
    try:
        done = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
        return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# -- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 <= q <= 1) of non-empty ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def percentiles(values: Sequence[float], *, scale: float = 1.0, suffix: str = "") -> dict[str, Any]:
    """count, p50, p95, p99, max and mean of ``values`` times ``scale`` (None for no values).

    ``suffix`` is appended to every key but ``count`` (``"_ms"`` gives ``p50_ms``...).
    """
    keys = ("p50", "p95", "p99", "max", "mean")
    if not values:
        return {"count": 0, **{k + suffix: None for k in keys}}
    ordered = sorted(v * scale for v in values)
    picked = {q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.50, 0.95, 0.99)}
    numbers = (picked[0.50], picked[0.95], picked[0.99], ordered[-1], math.fsum(ordered) / len(ordered))
    return {"count": len(ordered), **{k + suffix: v for k, v in zip(keys, numbers)}}


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


# -- printing --------------------------------------------------------------------------------


def fmt(x: Any, digits: int = 1) -> str:
    """A number for a table: thousands separators, ``digits`` decimals; None as -, False as NO."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table; cells that are not strings go through :func:`fmt`."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)



def log(section: str, text: str) -> None:
    """A progress line on stderr."""
    print(f"[{section}] {text}", file=sys.stderr, flush=True)


# -- output ----------------------------------------------------------------------------------


def to_json(value: Any, digits: int = 4) -> Any:
    """Plain JSON values: dataclasses as dicts, tuples as lists, floats rounded to ``digits``."""
    if is_dataclass(value) and not isinstance(value, type):
        return to_json(asdict(value), digits)
    if isinstance(value, dict):
        return {k: to_json(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, digits) for v in value]
    if isinstance(value, float) and math.isfinite(value):
        return round(value, digits)
    return value


def summarize(raw: Any) -> Any:
    """``raw`` without raw samples (:data:`RAW_KEYS`), profile tables cut, floats rounded."""
    if is_dataclass(raw) and not isinstance(raw, type):
        return summarize(asdict(raw))
    if isinstance(raw, dict):
        return {k: summarize(_shorten(k, v)) for k, v in raw.items()
                if not (k in RAW_KEYS and isinstance(v, list))}
    if isinstance(raw, (list, tuple)):
        return [summarize(v) for v in raw]
    if isinstance(raw, float) and math.isfinite(raw):
        return round(raw, 4 if abs(raw) < 10 else 2)
    return raw


def _shorten(key: str, value: Any) -> Any:
    """A profile table cut to TOP_ROWS rows; a timeline as one list per column; anything else as is."""
    if not isinstance(value, list):
        return value
    if key in RANKED_KEYS:
        return value[:TOP_ROWS]
    if key in COLUMN_KEYS and value and all(isinstance(row, dict) for row in value):
        return {column: [row.get(column) for row in value] for column in value[0]}
    return value


def dumps(value: Any, width: int = 110) -> str:
    """JSON with one line per small object or list (short enough to read and diff)."""

    def render(v: Any, indent: int) -> str:
        flat = json.dumps(v)
        if len(flat) + indent <= width or not isinstance(v, (dict, list)) or not v:
            return flat
        pad = " " * (indent + 1)
        if isinstance(v, dict):
            items = [f"{pad}{json.dumps(k)}: {render(x, indent + 1)}" for k, x in v.items()]
            return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
        return "[\n" + ",\n".join(pad + render(x, indent + 1) for x in v) + "\n" + " " * indent + "]"

    return render(value, 0) + "\n"


def save(name: str, raw: Any, out: Path, summary: Callable[[Any], Any] = summarize) -> Path:
    """Write the raw run to ``out`` and its summary to results/ (or next to a non-default ``out``).

    Returns the summary's path.
    """
    plain = to_json(raw)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(plain, indent=2) + "\n")
    default = out.resolve() == raw_path(name).resolve()
    target = RESULTS / f"{name}.json" if default else out.with_name(out.stem + ".summary.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dumps(summary(plain)))
    print(f"saved {_shown(out)} (raw) and {_shown(target)} (summary)", file=sys.stderr)
    return target


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def connection_caps(connections: int) -> list[str]:
    """``syncline serve`` flags that let one benchmark token hold ``connections`` WebSockets:
    the per-tenant, per-token and per-process caps all raised to it (at least their defaults)."""
    n = str(connections)
    return ["--max-connections-per-tenant", n, "--max-connections-per-token", n,
            "--max-connections", str(max(connections, 10_000))]
