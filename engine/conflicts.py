"""Conflicts derived from merged stock state.

A conflict is a pure function of the adjustments present, so every replica
holding the same updates derives the same conflicts with the same ids, with no
coordinator. Concurrent sales can oversell: that is expected, and reported here
rather than prevented.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from .entries import Adjustment
from .canonical import canonical_json

NEGATIVE_LEVEL: Literal["negative_level"] = "negative_level"


@dataclass(frozen=True)
class Conflict:
    """A sku whose level went below zero.

    ``id`` is derived from the sku and the ids of its negative adjustments: a
    restock leaves it unchanged, a further sale makes it a new conflict that
    asks for a new decision.
    """

    id: str
    kind: Literal["negative_level"]
    sku: str
    level: int
    adjustments: tuple[str, ...]
    """Ids of the sku's negative adjustments, sorted."""


def negative_level_id(sku: str, negative_ids: Iterable[str]) -> str:
    digest = hashlib.sha256(canonical_json([sku, sorted(negative_ids)]).encode()).hexdigest()
    return f"{NEGATIVE_LEVEL}:{digest[:24]}"


def derive_conflicts(adjustments: Iterable[Adjustment], levels: Mapping[str, int]) -> tuple[Conflict, ...]:
    """Every sku below zero, as a conflict, in sku order."""
    negatives: dict[str, list[str]] = {}
    for adj in adjustments:
        if adj.delta < 0 and levels.get(adj.sku, 0) < 0:
            negatives.setdefault(adj.sku, []).append(adj.id)
    return tuple(
        Conflict(negative_level_id(sku, ids), NEGATIVE_LEVEL, sku, levels[sku], tuple(sorted(ids)))
        for sku, ids in sorted(negatives.items())
    )
