"""Reporting what a reader skipped.

Any Yjs peer can write anything into a document. Readers never trust it: an
entry that does not fit the documented layout is skipped and reported as a
:class:`SchemaIssue`, and the meaning of every valid entry stays as it was.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable
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
    """True for a Y.Map, Y.Array, Y.Text or XML type object."""
    return type(value).__module__.startswith(SHARED_TYPE_PREFIX)


def array_entries(array: Array[Any]) -> list[Any]:
    """Every entry of ``array`` as the JSON a JavaScript peer's ``toJSON()`` would see.

    One call into Yrs renders the whole array (``to_py()`` or reading by index is
    tens of times slower, and quadratic on fragmented arrays). A nested Y.Map reads
    as the object it holds, Y.Text and XML as strings, which readers then refuse.
    """
    return json.loads(str(array))


class ArrayTail:
    """An array's entries, parsed, kept from one read to the next: when the array has only grown
    at its end since the last read, only the entries after it are decoded and parsed.

    Ledgers and trails are append-only, so after a change from another replica the array's
    JSON text usually starts with the text of the last read, less its closing bracket, and
    goes on with a comma. Then the entries up to there are the same ones (the same text
    decodes to the same values, and a JSON value ends where its own text says), and only the
    text after the comma is new. Any other change (an entry inserted before the end by a
    concurrent writer, a deletion, another writer's formatting) reads the whole array again.
    """

    __slots__ = ("_outcomes", "_text")

    def __init__(self) -> None:
        self._text: str | None = None
        self._outcomes: list[Any] = []

    def read(
        self, array: Array[Any], parse: Callable[[Any], Any], error: type[Exception]
    ) -> tuple[list[Any], int]:
        """``parse(entry)`` of every entry of ``array`` in order (or the ``error`` it raised), and
        the position of the first entry parsed by this read (0 when the whole array was)."""
        text, previous = str(array), self._text
        if text == previous:
            return self._outcomes, len(self._outcomes)
        if previous is not None and previous != "[]" and text.startswith(previous[:-1] + ","):
            outcomes, first = list(self._outcomes), len(self._outcomes)
            fresh = json.loads("[" + text[len(previous):])
        else:
            outcomes, first = [], 0
            fresh = json.loads(text)
        for raw in fresh:
            try:
                outcomes.append(parse(raw))
            except error as exc:
                outcomes.append(exc)
        self._text, self._outcomes = text, outcomes
        return outcomes, first

    def forget(self) -> None:
        """Read the whole array next time."""
        self._text, self._outcomes = None, []


class ChangeCounter:
    """Counts the transactions committed on one document, so readers can cache safely.

    One counter per document, shared by every reader of it (:func:`change_counter`): building
    a view subscribes nothing new, so edits cost the same however many views were built. The
    counter observes the document through a weak reference and is dropped with it, so neither
    the document nor any reader is kept alive by the subscription.
    """

    __slots__ = ("count", "_subscription", "__weakref__")

    def __init__(self, doc: Doc) -> None:
        self.count = 0
        ref = weakref.ref(self)

        def bump(_event: object) -> None:
            counter = ref()
            if counter is not None:
                counter.count += 1

        # Observed on the Yrs document itself: ``Doc.observe`` wraps the callback with the Doc,
        # a cycle through Rust that Python's collector cannot see, so the document would never
        # be freed. Here the callback holds only a weak reference to this counter, and the
        # subscription lives exactly as long as the counter, which lives as long as the document.
        self._subscription = doc._doc.observe(bump)


_COUNTERS: weakref.WeakKeyDictionary[Doc, ChangeCounter] = weakref.WeakKeyDictionary()


def change_counter(doc: Doc) -> ChangeCounter:
    """The change counter of ``doc``, made on first use and shared by every reader of ``doc``."""
    counter = _COUNTERS.get(doc)
    if counter is None:
        counter = _COUNTERS[doc] = ChangeCounter(doc)
    return counter


def misplaced_entries(doc: Doc, root: str, expected: type[Array[Any]] | type[Map[Any]]) -> list[SchemaIssue]:
    """Report entries a peer wrote into ``root`` as the other kind of type (map keys in an array root, ...)."""
    other = doc.get(root, type=Map if expected is Array else Array)
    count = len(other)
    if not count:
        return []
    kind = "map entries" if expected is Array else "array items"
    return [SchemaIssue(root, f"{count} {kind} written into a root that must be a {expected.__name__}")]
