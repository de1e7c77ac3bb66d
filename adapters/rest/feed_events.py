"""Typed feed events, derived from the stored updates while change-feed streams are open.

The write path pays nothing: a change row is all a write leaves for the feed. When a stream
meets a change it asks :class:`FeedDeriver` what the change meant. The deriver follows each
streamed document with a copy of it at the last seq it derived (a
:class:`~syncline.engine.changes.ChangeTracker`), reads the updates stored after that seq
(:meth:`~syncline.server.store.base.DocumentLog.updates_after`), applies them one by one and
keeps the events of each seq for the other streams. The events come from the stored update
itself, so they are the same whether it came from a WebSocket peer, a REST write or a batch.

A document starts being followed from a load of the store (its snapshot and the updates
before the change). When compaction folded the change into a snapshot, what it did can no
longer be told: the change gives one ``{kind}.changed`` event whose ``current`` says what the
document holds now. An update with nothing typed to say (a duplicate delivery) gives a bare
``{kind}.changed``. Everything is dropped when the process's last stream closes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from syncline.engine.changes import ChangeTracker
from syncline.engine.errors import InvalidUpdate
from syncline.engine.names import DocName
from syncline.server.store import Change, DocumentLog

PAGE = 256
"""Most updates read from the store at a time."""
MAX_DOCS = 256
"""Most documents followed at once (least recently streamed ones are dropped)."""
MAX_DERIVED = 8192
"""Most seqs whose events are kept for the other streams."""


@dataclass(frozen=True)
class Derived:
    """One event of a change: its ``type`` (SSE event name) and the fields it adds."""

    type: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Followed:
    tracker: ChangeTracker
    seq: int
    """Every update of the document with a seq up to this one is applied."""


class FeedDeriver:
    """Per process: what each stored change meant, derived once, on demand, for every stream."""

    def __init__(self, store: DocumentLog, *, max_docs: int = MAX_DOCS, max_derived: int = MAX_DERIVED) -> None:
        self._store = store
        self._max_docs = max_docs
        self._max_derived = max_derived
        self._docs: OrderedDict[str, _Followed] = OrderedDict()
        self._derived: OrderedDict[int, tuple[Derived, ...]] = OrderedDict()
        self._locks: dict[str, anyio.Lock] = {}
        self._streams = 0
        self.applied = 0
        """Updates applied so far (a measure of the work done)."""

    @contextmanager
    def streaming(self) -> Iterator[None]:
        """Held by each open stream; the last one to close drops every followed document."""
        self._streams += 1
        try:
            yield
        finally:
            self._streams -= 1
            if not self._streams:
                self._docs.clear()
                self._derived.clear()

    @property
    def followed(self) -> int:
        return len(self._docs)

    async def events(self, change: Change) -> tuple[Derived, ...]:
        """The events of ``change``, in order (never empty). Raises ``StoreUnavailable``."""
        cached = self._derived.get(change.seq)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(change.doc, anyio.Lock())
        try:
            async with lock:
                cached = self._derived.get(change.seq)
                if cached is None:
                    cached = await self._derive(change)
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._locks.pop(change.doc, None)
        return cached

    async def _derive(self, change: Change) -> tuple[Derived, ...]:
        name = DocName.from_string(change.doc)
        followed = self._docs.get(change.doc)
        if followed is not None:
            self._docs.move_to_end(change.doc)
        while followed is not None and followed.seq < change.seq:
            rows = await self._store.updates_after(change.doc, followed.seq, PAGE)
            if not rows:  # None: compaction folded some; []: the update is not there (anymore)
                break
            reached = followed.seq
            await self._follow(followed, rows, change.seq)
            if followed.seq == reached:  # no row of the change's seq: start over below
                break
        found = self._derived.get(change.seq)
        if found is not None:
            return found
        # Start over from the store: the document just before the change, then what follows.
        stored = await self._store.load(change.doc)
        tracker = ChangeTracker(name.kind, name.doc_id)
        if stored.snapshot_seq >= change.seq:
            # Folded into a snapshot: say what the document holds now.
            _load(tracker, stored.snapshot, stored.updates)
            self._remember(change.doc, _Followed(tracker, stored.last_seq))
            return self._keep(change.seq, (Derived(f"{name.kind}.changed", {"current": tracker.summary()}),))
        _load(tracker, stored.snapshot, [(s, u) for s, u in stored.updates if s < change.seq])
        followed = _Followed(tracker, change.seq - 1)
        self._remember(change.doc, followed)
        await self._follow(followed, [(s, u) for s, u in stored.updates if s >= change.seq], change.seq)
        found = self._derived.get(change.seq)
        if found is None:  # no stored update has this change's seq: say what is there
            found = self._keep(change.seq, (Derived(f"{name.kind}.changed", {"current": tracker.summary()}),))
        return found

    async def _follow(self, followed: _Followed, rows: list[tuple[int, bytes]], through: int) -> None:
        """Derive the rows up to seq ``through`` (the later ones wait until a stream asks), letting
        other tasks run between two (each is a view of the whole document)."""
        tracker = followed.tracker
        for seq, update in rows:
            if seq <= followed.seq:
                continue
            if seq > through:
                break
            await anyio.lowlevel.checkpoint()
            try:
                changes = tracker.apply(update)
            except InvalidUpdate:  # the relay skipped it as well: nothing changed
                changes = ()
            self.applied += 1
            followed.seq = seq
            events = tuple(Derived(c.type, c.fields) for c in changes)
            self._keep(seq, events or (Derived(f"{tracker.kind}.changed"),))

    def _keep(self, seq: int, events: tuple[Derived, ...]) -> tuple[Derived, ...]:
        self._derived[seq] = events
        while len(self._derived) > self._max_derived:
            self._derived.popitem(last=False)
        return events

    def _remember(self, doc: str, followed: _Followed) -> None:
        self._docs[doc] = followed
        self._docs.move_to_end(doc)
        while len(self._docs) > self._max_docs:
            self._docs.popitem(last=False)


def _load(tracker: ChangeTracker, snapshot: bytes | None, updates: list[tuple[int, bytes]]) -> None:
    for update in ([snapshot] if snapshot is not None else []) + [u for _, u in updates]:
        try:
            tracker.load(update)
        except InvalidUpdate:
            continue
