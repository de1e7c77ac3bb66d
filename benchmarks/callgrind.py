"""Reading a callgrind dump: its total, and its instructions by the library that ran them.

A dump names each object file (``ob=``) and function (``fn=``) once, then refers to it by a
number in parentheses. A cost line belongs to the function last named, except the one line
that follows ``calls=``: that is the inclusive cost of a call, already counted in the callee's
own lines. Summing the other lines per object gives each library's self cost, and their sum is
the dump's ``totals:`` (checked, so a misread dump fails loudly instead of printing wrong shares).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# Which part of the relay each object file is: by its file name, or by its path for a key
# that starts with "/".
PARTS: tuple[tuple[str, str], ...] = (
    ("libpython", "CPython (interpreter, objects, allocator)"),
    ("python3", "CPython (interpreter, objects, allocator)"),
    ("_asyncio", "CPython (interpreter, objects, allocator)"),
    ("libsqlite3", "SQLite"),
    ("_sqlite3", "SQLite"),
    ("_pycrdt", "pycrdt (Yrs)"),
    ("/uvloop/", "uvloop"),
    ("libc.so", "libc"),
)
OTHER = "other"

_NAMED = re.compile(r"\((\d+)\)(?:\s+(.*))?$")


class DumpMismatch(RuntimeError):
    """The self costs read from a dump do not add up to its ``totals:`` line."""


@dataclass(frozen=True)
class Dump:
    """One dump, read in one pass: what triggered it, the thread it is of (1 is the main thread,
    with ``--separate-threads=yes``), its total and its self instructions per object file."""

    trigger: str
    thread: int
    total: int
    objects: Counter[str]


def read(path: Path) -> Dump:
    """Read ``path``; raise :class:`DumpMismatch` if its self costs do not add up to its total."""
    header: dict[str, str] = {}
    names: dict[str, str] = {}
    counts: Counter[str] = Counter()
    current = "?"
    after_call = False
    with path.open(errors="replace") as lines:
        for line in lines:
            if line.startswith("ob="):
                current = _name(names, line[3:].rstrip("\n"))
            elif line.startswith("cob="):
                _name(names, line[4:].rstrip("\n"))  # names the callee's object for later references
            elif line.startswith("calls="):
                after_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                fields = line.split()
                if len(fields) < 2:
                    continue
                if after_call:
                    after_call = False  # a call's inclusive cost: counted where the callee ran
                    continue
                counts[current] += int(fields[1])
            elif line.startswith(("totals:", "thread:")):
                key, _, value = line.partition(":")
                header[key] = value.strip()
            elif line.startswith("desc: Trigger:"):
                header["trigger"] = line[len("desc: Trigger:"):].strip()
    if "totals" not in header:
        raise DumpMismatch(f"{path} has no totals: line")
    total = int(header["totals"].split()[0])
    if sum(counts.values()) != total:
        raise DumpMismatch(f"{path}: self costs add up to {sum(counts.values()):,}, totals says {total:,}")
    return Dump(header.get("trigger", ""), int(header.get("thread", "1")), total, counts)


def by_part(counts: Counter[str]) -> Counter[str]:
    """A dump's counts per object file grouped into :data:`PARTS`."""
    parts: Counter[str] = Counter()
    for obj, n in counts.items():
        base = obj.rsplit("/", 1)[-1]
        parts[
            next((part for key, part in PARTS if key in (obj if key.startswith("/") else base)), OTHER)
        ] += n
    return parts


def _name(names: dict[str, str], value: str) -> str:
    match = _NAMED.match(value)
    if match is None:
        return value  # a dump written without name compression
    key, name = match.groups()
    if name:
        names[key] = name
    return names.get(key, "?")
