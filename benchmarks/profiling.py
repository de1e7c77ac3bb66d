"""py-spy for benchmarks: record a server's Python stacks, then sum them by function and by component."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT


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
