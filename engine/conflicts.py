"""Conflicts derived from merged stock state.

A conflict is a pure function of the entries present, so every replica holding the
same updates derives the same conflicts with the same ids, with no coordinator.
Concurrent sales can oversell and concurrent counts can disagree: both are expected,
and reported here rather than prevented.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from .canonical import canonical_json
from .counts import SkuCounts
from .entries import Adjustment, Count

NEGATIVE_LEVEL: Literal["negative_level"] = "negative_level"
COUNT_MISMATCH: Literal["count_mismatch"] = "count_mismatch"
ConflictKind = Literal["negative_level", "count_mismatch"]


@dataclass(frozen=True)
class Conflict:
    """A sku whose level went below zero, or whose concurrent counts disagree.

    A ``negative_level`` id is derived from the sku and the ids of its negative
    adjustments: a restock leaves it unchanged, a further sale makes it a new conflict
    that asks for a new decision. A ``count_mismatch`` id is derived from the sku and the
    ids of the disagreeing counts (``counts``): a further concurrent count makes a new one.
    """

    id: str
    kind: ConflictKind
    sku: str
    level: int
    adjustments: tuple[str, ...]
    """Ids of the sku's negative adjustments, sorted (negative_level; empty otherwise)."""
    counts: tuple[Count, ...] = ()
    """The concurrent counts, by id (count_mismatch; empty otherwise)."""


def _derived_id(kind: str, sku: str, ids: Iterable[str]) -> str:
    digest = hashlib.sha256(canonical_json([sku, sorted(ids)]).encode()).hexdigest()
    return f"{kind}:{digest[:24]}"


def negative_level_id(sku: str, negative_ids: Iterable[str]) -> str:
    return _derived_id(NEGATIVE_LEVEL, sku, negative_ids)


def count_mismatch_id(sku: str, count_ids: Iterable[str]) -> str:
    return _derived_id(COUNT_MISMATCH, sku, count_ids)


def derive_conflicts(
    adjustments: Iterable[Adjustment], levels: Mapping[str, int], counts: Mapping[str, SkuCounts] | None = None
) -> tuple[Conflict, ...]:
    """Every sku below zero and every sku whose concurrent counts disagree, in sku order
    (for one sku, ``count_mismatch`` before ``negative_level``)."""
    negatives: dict[str, list[str]] = {}
    below = {sku for sku, level in levels.items() if level < 0}
    if below:  # the adjustments are read only when some sku is below zero
        for adj in adjustments:
            if adj.delta < 0 and adj.sku in below:
                negatives.setdefault(adj.sku, []).append(adj.id)
    conflicts = [
        Conflict(negative_level_id(sku, ids), NEGATIVE_LEVEL, sku, levels[sku], tuple(sorted(ids)))
        for sku, ids in negatives.items()
    ]
    for sku, folded in (counts or {}).items():
        if folded.disagree:
            conflicts.append(Conflict(
                count_mismatch_id(sku, (c.id for c in folded.heads)), COUNT_MISMATCH, sku, levels[sku], (),
                folded.heads,
            ))
    return tuple(sorted(conflicts, key=lambda c: (c.sku, c.kind)))
