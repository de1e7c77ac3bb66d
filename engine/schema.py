"""Reporting what a reader skipped.

Any Yjs peer can write anything into a document. Readers never trust it: an
entry that does not fit the documented layout is skipped and reported as a
:class:`SchemaIssue`, and the meaning of every valid entry stays as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

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
