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


def total(path: Path) -> int:
    """The dump's ``totals:`` (every instruction it counted)."""
    return int(_header(path, "totals:"))


def thread(path: Path) -> int:
    """The thread a dump of ``--separate-threads=yes`` is of (1 is the main thread)."""
    return int(_header(path, "thread:"))


def _header(path: Path, key: str) -> str:
    with path.open(errors="replace") as lines:
        for line in lines:
            if line.startswith(key):
                return line.split()[1]
    raise DumpMismatch(f"{path} has no {key} line")


def by_object(path: Path) -> Counter[str]:
    """Self instructions per object file (its full path, as the dump names it)."""
    names: dict[str, str] = {}
    counts: Counter[str] = Counter()
    current = "?"
    after_call = False
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("ob="):
            current = _name(names, line[3:])
        elif line.startswith("cob="):
            _name(names, line[4:])  # names the callee's object for later references
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
    expected = total(path)
    if sum(counts.values()) != expected:
        raise DumpMismatch(f"{path}: self costs add up to {sum(counts.values()):,}, totals says {expected:,}")
    return counts


def by_part(counts: Counter[str]) -> Counter[str]:
    """``by_object``'s counts grouped into :data:`PARTS`."""
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
