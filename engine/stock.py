"""Stock ledgers: an append-only audit trail of adjustments at one location.

Layout of a stock document (see docs/semantics.md for the full contract):

* ``adjustments`` (Array): ``{"id", "sku", "delta", "reason", "actor", "at"}``
  and an optional ``"ref"``. Never edited, never deleted.
* ``counts`` (Array): ``{"id", "sku", "counted", "seen", "base", "after", "actor", "at"}``
  and an optional ``"ref"``: absolute counts (stocktakes). Never edited, never deleted.
* ``resolutions`` (Array): ``{"id", "conflict", "sku", "strategy", "actor", "at"}``
  and optional ``"note"``, ``"level"`` (merge) and ``"adjustment"``.

A sku's level is the sum of the deltas of its adjustments, each id counted
once, plus the correction of its counts (see :mod:`.counts`). Conflicts are derived from that state (see :mod:`.conflicts`), so every
replica holding the same updates reports the same conflicts. The entries themselves,
as immutable values, are in :mod:`.entries`.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from pycrdt import Array, Doc

from .canonical import canonical_json
from .conflicts import COUNT_MISMATCH, Conflict, derive_conflicts
from .counts import SkuCounts, fold_counts, fold_sku
from .entries import STRATEGIES, Adjustment, Count, Resolution, Strategy
from .errors import DuplicateAdjustment, DuplicateCount, DuplicateResolution, UnknownConflict, ValidationError
from .schema import ArrayTail, Clock, SchemaIssue, change_counter, misplaced_entries, wall_clock
from .sync import own_clock
from .validation import (
    MAX_DELTA,
    MAX_SAFE_INTEGER,
    check_delta,
    check_id,
    check_int,
    check_note,
    check_timestamp,
    read_int,
    read_mapping,
)

ADJUSTMENTS = "adjustments"
COUNTS = "counts"
RESOLUTIONS = "resolutions"

MAX_AFTER = 256
"""Most counts one count may name as seen (concurrent heads of one sku)."""

Entry = Adjustment | Count | Resolution
_HISTORY_RANK = {Adjustment: 0, Count: 1, Resolution: 2}

@dataclass(frozen=True)
class LedgerView:
    """Everything derived from a ledger's state; identical on replicas with equal state."""

    adjustments: tuple[Adjustment, ...]
    resolutions: tuple[Resolution, ...]
    levels: Mapping[str, int]
    conflicts: tuple[Conflict, ...]
    """Open conflicts: derived and not yet resolved."""
    resolved: tuple[Conflict, ...]
    issues: tuple[SchemaIssue, ...]
    counts: tuple[Count, ...] = ()
    """The counted counts (stocktakes), by time then id."""
    folded: Mapping[str, SkuCounts] = field(default_factory=dict, compare=False, repr=False)
    """Per sku with counts, what they contribute (see :mod:`.counts`)."""

    @cached_property
    def digest(self) -> str:
        """A digest of the ledger's content (its counted adjustments and its decisions), equal
        on every replica with equal content; computed once per view."""
        digest = hashlib.sha256()
        for entry in (*self.adjustments, *self.resolutions, *self.counts):
            digest.update(json.dumps(entry.to_json(), sort_keys=True, separators=(",", ":")).encode())
            digest.update(b"\n")
        return digest.hexdigest()[:32]


@dataclass
class _Index:
    """The parsed ledger, valid while the document's change count holds."""

    version: int
    """The document's change count when this index was last brought up to date."""
    adjustments: dict[str, list[Adjustment]] = field(default_factory=dict)
    counts: dict[str, list[Count]] = field(default_factory=dict)
    resolutions: dict[str, Resolution] = field(default_factory=dict)
    misplaced: list[SchemaIssue] = field(default_factory=list)
    entry_issues: tuple[list[SchemaIssue], list[SchemaIssue], list[SchemaIssue]] = field(
        default_factory=lambda: ([], [], []))
    """The entries skipped in adjustments, counts and resolutions, each in position order."""
    read: tuple[int, int, int] = (0, 0, 0)
    """How many entries of adjustments, counts and resolutions this index holds the reading of."""
    local: list[tuple[int, Any]] = field(default_factory=list)
    """Entries this replica's own edits added directly since the last read (see ``_append``),
    by array (:data:`_ADJUSTING`, :data:`_COUNTING`, :data:`_RESOLVING`)."""
    ordered: list[Adjustment] | None = None
    """The counted adjustments by time then id, and each sku's sum of their deltas, kept up to
    date as adjustments with new ids are added; None until a view needs them, and again when an
    id arrives with a second body (which copy counts may change)."""
    sums: dict[str, int] | None = None

    @property
    def issues(self) -> list[SchemaIssue]:
        return [*self.misplaced, *self.entry_issues[0], *self.entry_issues[1], *self.entry_issues[2]]

    def add_adjustment(self, adjustment: Adjustment) -> None:
        copies = self.adjustments.setdefault(adjustment.id, [])
        if adjustment in copies:
            return
        copies.append(adjustment)
        if len(copies) > 1:
            self.ordered = self.sums = None
            return
        if self.ordered is not None:
            bisect.insort(self.ordered, adjustment, key=_by_time)
        if self.sums is not None:
            self.sums[adjustment.sku] = self.sums.get(adjustment.sku, 0) + adjustment.delta

    def winner(self, adjustment_id: str) -> Adjustment | None:
        """The copy every replica counts when one id arrived with different bodies."""
        copies = self.adjustments.get(adjustment_id)
        if not copies:
            return None
        if len(copies) == 1:
            return copies[0]
        return min(copies, key=lambda a: canonical_json(a.to_json()))

    def add_count(self, count: Count) -> None:
        copies = self.counts.setdefault(count.id, [])
        if count not in copies:
            copies.append(count)

    def add_resolution(self, resolution: Resolution) -> None:
        """One decision per id: when replicas wrote one id differently, the smallest canonical JSON."""
        previous = self.resolutions.get(resolution.id)
        if previous is None or canonical_json(resolution.to_json()) < canonical_json(previous.to_json()):
            self.resolutions[resolution.id] = resolution

    def count_winner(self, count_id: str) -> Count | None:
        """The copy every replica counts when one count id arrived with different bodies."""
        copies = self.counts.get(count_id)
        if not copies:
            return None
        if len(copies) == 1:
            return copies[0]
        return min(copies, key=lambda c: canonical_json(c.to_json()))


class StockLedger:
    """A typed view of one location's stock document."""

    def __init__(self, doc: Doc, location_id: str, *, clock: Clock = wall_clock) -> None:
        self.doc = doc
        self.location_id = check_id(location_id, "location_id")
        self._clock = clock
        self._adjustments = doc.get(ADJUSTMENTS, type=Array)
        self._resolutions = doc.get(RESOLUTIONS, type=Array)
        self._counts = doc.get(COUNTS, type=Array)
        self._changes = change_counter(doc)
        self._index: _Index | None = None
        self._arrays = (self._adjustments, self._counts, self._resolutions)
        """In the order :data:`_ADJUSTING`, :data:`_COUNTING`, :data:`_RESOLVING`."""
        self._tails = (ArrayTail(), ArrayTail(), ArrayTail())
        self._view: tuple[int, LedgerView] | None = None

    @classmethod
    def new(cls, location_id: str, *, client_id: int | None = None, clock: Clock = wall_clock) -> StockLedger:
        return cls(Doc(client_id=client_id) if client_id is not None else Doc(), location_id, clock=clock)

    # -- edits -------------------------------------------------------------------

    def record(
        self,
        adjustment_id: str,
        sku: str,
        delta: int,
        *,
        reason: str,
        actor: str,
        at: int | datetime | None = None,
        ref: str | None = None,
    ) -> Adjustment:
        """Record an adjustment; recording the same one again changes nothing.

        The same id with a different body raises :class:`DuplicateAdjustment`.
        ``at`` defaults to now and, when omitted, is not part of the comparison,
        so a retry without a timestamp is recognised as the same adjustment.
        """
        adjustment = Adjustment(
            check_id(adjustment_id, "id"),
            check_id(sku, "sku"),
            check_delta(delta),
            check_id(reason, "reason"),
            check_id(actor, "actor"),
            self._clock() if at is None else check_timestamp(at),
            None if ref is None else check_id(ref, "ref"),
        )
        index = self._current()
        existing = index.winner(adjustment.id)
        if existing is not None:
            # Without an explicit ``at`` a retry cannot repeat the first timestamp.
            differs = replace(existing, at=0) != replace(adjustment, at=0) if at is None else existing != adjustment
            if differs:
                raise DuplicateAdjustment(adjustment.id)
            return existing
        self._append(_ADJUSTING, adjustment, adjustment.to_json())
        return adjustment

    def count(
        self,
        sku: str,
        counted: int,
        *,
        actor: str,
        count_id: str | None = None,
        at: int | datetime | None = None,
        ref: str | None = None,
    ) -> Count:
        """Record an absolute count: ``counted`` units of ``sku`` observed on the shelf.

        The count stores the level this replica shows (``seen``), the sum of the sku's
        adjustments it holds (``base``) and the counts it has seen (``after``): it sets the level to ``counted`` and every adjustment this replica
        has not seen yet still applies on top. Counts taken concurrently that disagree open
        a ``count_mismatch`` conflict. Counting the same ``count_id`` again with the same
        sku, count, actor and reference returns the first count; a different body raises
        :class:`DuplicateCount`.
        """
        sku = check_id(sku, "sku")
        counted = check_int(counted, "counted", 0, MAX_DELTA)
        actor = check_id(actor, "actor")
        stamp = self._clock() if at is None else check_timestamp(at)
        ref = None if ref is None else check_id(ref, "ref")
        index = self._current()
        if count_id is not None:
            count_id = check_id(count_id, "count_id")
            existing = index.count_winner(count_id)
            if existing is not None:
                asked = (sku, counted, actor, ref) + (() if at is None else (stamp,))
                known = (existing.sku, existing.counted, existing.actor, existing.ref)
                if asked != known + (() if at is None else (existing.at,)):
                    raise DuplicateCount(count_id)
                return existing
        view = self.view()
        folded = view.folded.get(sku)
        count = Count(
            count_id or f"count-{self.doc.client_id:x}.{own_clock(self.doc):x}",
            sku, counted, view.levels.get(sku, 0),
            sum(a.delta for a in view.adjustments if a.sku == sku),
            tuple(c.id for c in folded.heads) if folded else (),
            actor, stamp, ref,
        )
        self._append(_COUNTING, count, count.to_json())
        return count

    def resolve(
        self,
        conflict_id: str,
        strategy: Strategy,
        *,
        actor: str,
        at: int | datetime | None = None,
        note: str | None = None,
        level: int | None = None,
        resolution_id: str | None = None,
    ) -> Resolution:
        """Resolve an open conflict; the decision is recorded and converges like any edit.

        * ``accept``: keep the level as it is (a backorder, say; for a count mismatch, the
          lowest of the disagreeing counts, which the level already follows).
        * ``compensate``: record an adjustment that brings the level back to 0 (for a
          count mismatch: to the level without the disagreeing counts, trusting neither).
        * ``merge``: adopt the given ``level`` (a recount), recording the difference.

        Level-changing resolutions write the adjustment ``resolve:{conflict_id}``:
        two managers resolving the same conflict offline change the level once.
        """
        if strategy not in STRATEGIES:
            raise ValidationError("strategy", f"must be one of {', '.join(STRATEGIES)}")
        actor = check_id(actor, "actor")
        stamp = self._clock() if at is None else check_timestamp(at)
        note = None if note is None else check_note(note)
        if strategy == "merge":
            level = check_int(level, "level", 0, MAX_DELTA)
        elif level is not None:
            raise ValidationError("level", "only the merge strategy takes a level")
        if resolution_id is not None:
            resolution_id = check_id(resolution_id, "resolution_id")
            previous = self._current().resolutions.get(resolution_id)
            if previous is not None:
                asked = (conflict_id, strategy, actor, note, level)
                if (previous.conflict, previous.strategy, previous.actor, previous.note, previous.level) != asked:
                    raise DuplicateResolution(resolution_id)
                return previous
        conflict = next((c for c in self.conflicts() if c.id == conflict_id), None)
        if conflict is None:
            raise UnknownConflict(conflict_id)
        compensated = self._without_counts(conflict) if conflict.kind == COUNT_MISMATCH else 0
        target = {"accept": None, "compensate": compensated, "merge": level}[strategy]
        adjustment_id = None
        with self.doc.transaction():  # the adjustment and the decision land together or not at all
            if target is not None and target != conflict.level:
                adjustment_id = f"resolve:{conflict.id}"
                self.record(
                    adjustment_id, conflict.sku, target - conflict.level,
                    reason=f"conflict-{strategy}", actor=actor, at=stamp, ref=conflict.id,
                )
            resolution = Resolution(
                resolution_id or f"res-{self.doc.client_id:x}.{own_clock(self.doc):x}",
                conflict.id, conflict.sku, strategy, actor, stamp, note, level, adjustment_id,
            )
            self._append(_RESOLVING, resolution, resolution.to_json())
        return resolution

    # -- reads -------------------------------------------------------------------

    def view(self) -> LedgerView:
        index = self._current()
        if self._view is not None and self._view[0] == index.version and index.version == self._changes.count:
            return self._view[1]
        view = self._derive(index)
        self._view = (index.version, view)
        return view

    def _derive(self, index: _Index) -> LedgerView:
        if index.ordered is None or index.sums is None:
            index.ordered = sorted((adj for adj in map(index.winner, index.adjustments) if adj is not None),
                                   key=_by_time)
            index.sums = {}
            for adj in index.ordered:
                index.sums[adj.sku] = index.sums.get(adj.sku, 0) + adj.delta
        adjustments = tuple(index.ordered)
        counts = tuple(sorted(
            (count for count in map(index.count_winner, index.counts) if count is not None),
            key=lambda c: (c.at, c.id),
        ))
        levels = dict(index.sums)
        folded = fold_counts(counts)
        for sku, contribution in folded.items():
            levels[sku] = levels.get(sku, 0) + contribution.correction
        resolutions = tuple(sorted(index.resolutions.values(), key=lambda r: (r.at, r.id)))
        derived = derive_conflicts(adjustments, levels, folded)
        resolved_ids = {r.conflict for r in resolutions}
        issues = list(index.issues)
        for root, entries in ((ADJUSTMENTS, index.adjustments), (COUNTS, index.counts)):
            shared = sorted((key, copies) for key, copies in entries.items() if len(copies) > 1)
            for entry_id, copies in shared:
                issues.append(SchemaIssue(
                    f"{root}[id={entry_id}]", f"{len(copies)} different bodies share this id; counted once",
                ))
        return LedgerView(
            adjustments,
            resolutions,
            dict(sorted(levels.items())),
            tuple(c for c in derived if c.id not in resolved_ids),
            tuple(c for c in derived if c.id in resolved_ids),
            tuple(issues),
            counts,
            folded,
        )

    def _without_counts(self, conflict: Conflict) -> int:
        """The level of the conflict's sku if its disagreeing counts had not been taken."""
        view = self.view()
        disputed = {c.id for c in conflict.counts}
        rest = {c.id: c for c in view.counts if c.sku == conflict.sku and c.id not in disputed}
        current = view.folded[conflict.sku].correction
        return conflict.level - current + fold_sku(rest).correction

    def level(self, sku: str) -> int:
        return self.view().levels.get(check_id(sku, "sku"), 0)

    def levels(self) -> Mapping[str, int]:
        return self.view().levels

    def conflicts(self) -> tuple[Conflict, ...]:
        return self.view().conflicts

    def history(self, sku: str | None = None) -> tuple[Entry, ...]:
        """The audit trail: every counted adjustment, count and decision, by time, then
        adjustments before counts before decisions, then id."""
        view = self.view()
        entries: list[Entry] = [*view.adjustments, *view.counts, *view.resolutions]
        if sku is not None:
            entries = [entry for entry in entries if entry.sku == sku]
        return tuple(sorted(entries, key=lambda e: (e.at, _HISTORY_RANK[type(e)], e.id)))

    # -- internals ---------------------------------------------------------------

    def _current(self) -> _Index:
        if self._index is None or self._index.version != self._changes.count:
            self._index = _read_index(self.doc, self._changes.count, self._arrays, self._tails, self._index)
        return self._index

    def _append(self, which: int, entry: Adjustment | Count | Resolution, body: dict[str, Any]) -> None:
        """Append ``entry`` (as ``body``) to array ``which`` and add it to the index at once, so
        that a second edit in the same transaction sees it."""
        index = self._current()
        seen = self._changes.count
        self._arrays[which].append(body)
        (index.add_adjustment, index.add_count, index.add_resolution)[which](entry)
        index.local.append((which, entry))  # the next read checks it is still there
        if index.version == seen:  # nothing but our own append happened since the index was built
            index.version = self._changes.count


def _read_index(
    doc: Doc, version: int, arrays: tuple[Array[Any], Array[Any], Array[Any]],
    tails: tuple[ArrayTail, ArrayTail, ArrayTail], previous: _Index | None,
) -> _Index:
    """The ledger read from ``doc``. Each array's :class:`ArrayTail` parses only what was
    appended since its last read; when every array only grew and ``previous`` holds exactly
    those last reads, the new entries are added to it instead of indexing every entry again."""
    misplaced = [issue for root in (ADJUSTMENTS, RESOLUTIONS, COUNTS)
                 for issue in misplaced_entries(doc, root, Array)]
    try:
        reads = [tail.read(array, parse, ValidationError) for tail, array, parse in zip(
            tails, arrays, (_parse_adjustment, _parse_count, _parse_resolution), strict=True)]
    except BaseException:
        for tail in tails:
            tail.forget()  # the reads that did finish are in no index: read everything next time
        raise
    starts = tuple(first for _, first in reads)
    if previous is not None and previous.misplaced == misplaced and previous.read == starts and all(
            entry in reads[which][0][starts[which]:] for which, entry in previous.local):
        # Grown at the ends only, and every entry this replica added is among what was appended
        # (none deleted meanwhile): add what is new.
        index = previous
        index.version, index.local = version, []
    else:
        index, starts = _Index(version, misplaced=misplaced), (0, 0, 0)
    adders = (index.add_adjustment, index.add_count, index.add_resolution)
    for (outcomes, _), start, root, issues, add in zip(
            reads, starts, (ADJUSTMENTS, COUNTS, RESOLUTIONS), index.entry_issues, adders, strict=True):
        for position in range(start, len(outcomes)):
            outcome = outcomes[position]
            if isinstance(outcome, ValidationError):
                issues.append(SchemaIssue(f"{root}[{position}]", str(outcome)))
            else:
                add(outcome)
    index.read = (len(reads[0][0]), len(reads[1][0]), len(reads[2][0]))
    return index


_ADJUSTING, _COUNTING, _RESOLVING = 0, 1, 2
"""The ledger's arrays, in the order the index reads them."""


def _by_time(adjustment: Adjustment) -> tuple[int, str]:
    return adjustment.at, adjustment.id


def _optional_id(entry: Mapping[str, Any], name: str) -> str | None:
    return None if entry.get(name) is None else check_id(entry[name], name)


def _parse_adjustment(raw: object) -> Adjustment:
    entry = read_mapping(raw, "adjustment")
    delta = read_int(entry.get("delta"), "delta", -MAX_DELTA, MAX_DELTA)
    if delta == 0:
        raise ValidationError("delta", "must not be zero")
    return Adjustment(
        check_id(entry.get("id"), "id"),
        check_id(entry.get("sku"), "sku"),
        delta,
        check_id(entry.get("reason"), "reason"),
        check_id(entry.get("actor"), "actor"),
        read_int(entry.get("at"), "at", 0, MAX_SAFE_INTEGER),
        _optional_id(entry, "ref"),
    )


def _parse_count(raw: object) -> Count:
    entry = read_mapping(raw, "count")
    after = entry.get("after")
    if not isinstance(after, list):
        raise ValidationError("after", f"must be a list of count ids, not {type(after).__name__}")
    if len(after) > MAX_AFTER:
        raise ValidationError("after", f"must name at most {MAX_AFTER} counts")
    return Count(
        check_id(entry.get("id"), "id"),
        check_id(entry.get("sku"), "sku"),
        read_int(entry.get("counted"), "counted", 0, MAX_DELTA),
        read_int(entry.get("seen"), "seen", -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
        read_int(entry.get("base"), "base", -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
        tuple(sorted({check_id(item, "after") for item in after})),
        check_id(entry.get("actor"), "actor"),
        read_int(entry.get("at"), "at", 0, MAX_SAFE_INTEGER),
        _optional_id(entry, "ref"),
    )


def _parse_resolution(raw: object) -> Resolution:
    entry = read_mapping(raw, "resolution")
    strategy = entry.get("strategy")
    if strategy not in STRATEGIES:
        raise ValidationError("strategy", f"must be one of {', '.join(STRATEGIES)}")
    level = entry.get("level")
    note = entry.get("note")
    return Resolution(
        check_id(entry.get("id"), "id"),
        check_id(entry.get("conflict"), "conflict"),
        check_id(entry.get("sku"), "sku"),
        strategy,
        check_id(entry.get("actor"), "actor"),
        read_int(entry.get("at"), "at", 0, MAX_SAFE_INTEGER),
        None if note is None else check_note(note),
        None if level is None else read_int(level, "level", 0, MAX_DELTA),
        _optional_id(entry, "adjustment"),
    )
