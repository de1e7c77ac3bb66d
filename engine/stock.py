"""Stock ledgers: an append-only audit trail of adjustments at one location.

Layout of a stock document (see docs/semantics.md for the full contract):

* ``adjustments`` (Array): ``{"id", "sku", "delta", "reason", "actor", "at"}``
  and an optional ``"ref"``. Never edited, never deleted.
* ``resolutions`` (Array): ``{"id", "conflict", "sku", "strategy", "actor", "at"}``
  and optional ``"note"``, ``"level"`` (merge) and ``"adjustment"``.

A sku's level is the sum of the deltas of its adjustments, each id counted
once. Conflicts are derived from that state (see :mod:`.conflicts`), so every
replica holding the same updates reports the same conflicts. The entries themselves,
as immutable values, are in :mod:`.entries`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from pycrdt import Array, Doc

from .canonical import canonical_json
from .conflicts import Conflict, derive_conflicts
from .entries import STRATEGIES, Adjustment, Resolution, Strategy
from .errors import DuplicateAdjustment, DuplicateResolution, UnknownConflict, ValidationError
from .schema import ChangeCounter, Clock, SchemaIssue, array_entries, misplaced_entries, wall_clock
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
RESOLUTIONS = "resolutions"

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

    @cached_property
    def digest(self) -> str:
        """A digest of the ledger's content (its counted adjustments and its decisions), equal
        on every replica with equal content; computed once per view."""
        digest = hashlib.sha256()
        for entry in (*self.adjustments, *self.resolutions):
            digest.update(json.dumps(entry.to_json(), sort_keys=True, separators=(",", ":")).encode())
            digest.update(b"\n")
        return digest.hexdigest()[:32]


@dataclass
class _Index:
    """The parsed ledger, valid while the document's state vector and lengths hold."""

    version: int
    """The document's change count when this index was last brought up to date."""
    adjustments: dict[str, list[Adjustment]] = field(default_factory=dict)
    resolutions: dict[str, Resolution] = field(default_factory=dict)
    issues: list[SchemaIssue] = field(default_factory=list)

    def add_adjustment(self, adjustment: Adjustment) -> None:
        copies = self.adjustments.setdefault(adjustment.id, [])
        if adjustment not in copies:
            copies.append(adjustment)

    def winner(self, adjustment_id: str) -> Adjustment | None:
        """The copy every replica counts when one id arrived with different bodies."""
        copies = self.adjustments.get(adjustment_id)
        if not copies:
            return None
        if len(copies) == 1:
            return copies[0]
        return min(copies, key=lambda a: canonical_json(a.to_json()))


class StockLedger:
    """A typed view of one location's stock document."""

    def __init__(self, doc: Doc, location_id: str, *, clock: Clock = wall_clock) -> None:
        self.doc = doc
        self.location_id = check_id(location_id, "location_id")
        self._clock = clock
        self._adjustments = doc.get(ADJUSTMENTS, type=Array)
        self._resolutions = doc.get(RESOLUTIONS, type=Array)
        self._changes = ChangeCounter(doc)
        self._index: _Index | None = None
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
        self._append(self._adjustments, adjustment.to_json(), lambda ix: ix.add_adjustment(adjustment))
        return adjustment

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

        * ``accept``: keep the level as it is (a backorder, say).
        * ``compensate``: record an adjustment that brings the level back to 0.
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
        target = {"accept": None, "compensate": 0, "merge": level}[strategy]
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
            self._append(
                self._resolutions, resolution.to_json(),
                lambda ix: ix.resolutions.setdefault(resolution.id, resolution),
            )
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
        adjustments = tuple(sorted(
            (adj for adj in map(index.winner, index.adjustments) if adj is not None),
            key=lambda a: (a.at, a.id),
        ))
        levels: dict[str, int] = {}
        for adj in adjustments:
            levels[adj.sku] = levels.get(adj.sku, 0) + adj.delta
        resolutions = tuple(sorted(index.resolutions.values(), key=lambda r: (r.at, r.id)))
        derived = derive_conflicts(adjustments, levels)
        resolved_ids = {r.conflict for r in resolutions}
        issues = list(index.issues)
        for adjustment_id, copies in sorted(index.adjustments.items()):
            if len(copies) > 1:
                issues.append(SchemaIssue(
                    f"{ADJUSTMENTS}[id={adjustment_id}]",
                    f"{len(copies)} different bodies share this id; counted once",
                ))
        return LedgerView(
            adjustments,
            resolutions,
            dict(sorted(levels.items())),
            tuple(c for c in derived if c.id not in resolved_ids),
            tuple(c for c in derived if c.id in resolved_ids),
            tuple(issues),
        )

    def level(self, sku: str) -> int:
        return self.view().levels.get(check_id(sku, "sku"), 0)

    def levels(self) -> Mapping[str, int]:
        return self.view().levels

    def conflicts(self) -> tuple[Conflict, ...]:
        return self.view().conflicts

    def history(self, sku: str | None = None) -> tuple[Adjustment | Resolution, ...]:
        """The audit trail: every counted adjustment and every decision, by time, then
        adjustments before decisions, then id."""
        view = self.view()
        entries: list[Adjustment | Resolution] = [*view.adjustments, *view.resolutions]
        if sku is not None:
            entries = [entry for entry in entries if entry.sku == sku]
        return tuple(sorted(entries, key=lambda e: (e.at, isinstance(e, Resolution), e.id)))

    # -- internals ---------------------------------------------------------------

    def _current(self) -> _Index:
        if self._index is None or self._index.version != self._changes.count:
            self._index = _build_index(self.doc, self._changes.count, self._adjustments, self._resolutions)
        return self._index

    def _append(self, array: Array, body: dict[str, Any], update_index: Callable[[_Index], object]) -> None:
        index = self._current()
        seen = self._changes.count
        array.append(body)
        update_index(index)
        if index.version == seen:  # nothing but our own append happened since the index was built
            index.version = self._changes.count


def _build_index(doc: Doc, version: int, adjustments: Array[Any], resolutions: Array[Any]) -> _Index:
    index = _Index(version)
    index.issues += misplaced_entries(doc, ADJUSTMENTS, Array) + misplaced_entries(doc, RESOLUTIONS, Array)
    for position, raw in enumerate(array_entries(adjustments)):
        try:
            index.add_adjustment(_parse_adjustment(raw))
        except ValidationError as exc:
            index.issues.append(SchemaIssue(f"{ADJUSTMENTS}[{position}]", str(exc)))
    for position, raw in enumerate(array_entries(resolutions)):
        try:
            resolution = _parse_resolution(raw)
        except ValidationError as exc:
            index.issues.append(SchemaIssue(f"{RESOLUTIONS}[{position}]", str(exc)))
            continue
        previous = index.resolutions.get(resolution.id)
        if previous is None or canonical_json(resolution.to_json()) < canonical_json(previous.to_json()):
            index.resolutions[resolution.id] = resolution
    return index


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
