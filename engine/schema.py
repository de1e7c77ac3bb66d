"""Reporting what a reader skipped.

Any Yjs peer can write anything into a document. Readers never trust it: an
entry that does not fit the documented layout is skipped and reported as a
:class:`SchemaIssue`, and the meaning of every valid entry stays as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pycrdt import Array, Doc, Map

Clock = Callable[[], int]
"""Returns the current time in epoch milliseconds."""


def wall_clock() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class SchemaIssue:
    """One entry a reader skipped: where it was and which rule it broke."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


SHARED_TYPE_PREFIX = "pycrdt."


def is_shared_type(value: object) -> bool:
    """True for a nested Y.Map, Y.Array, Y.Text or XML type: the layout allows plain JSON only."""
    return type(value).__module__.startswith(SHARED_TYPE_PREFIX)


def array_entries(array: Array[Any], root: str, issues: list[SchemaIssue]) -> Iterator[tuple[int, Any]]:
    """(index, value) of every plain entry of ``array``; nested shared types are reported and skipped.

    Iterating element by element (not ``to_py()``) keeps one foreign XML node from
    making the whole root unreadable, and keeps nested maps, whose insides can be
    edited in place, out of the meaning of the document.
    """
    for index, value in enumerate(array):
        if is_shared_type(value):
            issues.append(SchemaIssue(f"{root}[{index}]", f"a nested {type(value).__name__} where plain JSON belongs"))
            continue
        yield index, value


def misplaced_entries(doc: Doc, root: str, expected: type[Array[Any]] | type[Map[Any]]) -> list[SchemaIssue]:
    """Report entries a peer wrote into ``root`` as the other kind of type (map keys in an array root, ...)."""
    other = doc.get(root, type=Map if expected is Array else Array)
    count = len(other)
    if not count:
        return []
    kind = "map entries" if expected is Array else "array items"
    return [SchemaIssue(root, f"{count} {kind} written into a root that must be a {expected.__name__}")]
