"""Stocktakes: how absolute counts fold into a sku's level.

A count says "the shelf held ``counted``"; with it the counter's replica stored ``base``,
the sum of the sku's adjustments it held. Every adjustment it had not seen still applies on
top, so the level through a count is ``counted - base`` plus the sum of the sku's adjustments.
Each count names the counts it had seen (``after``), so the counts of a sku form a graph;
its **heads** are the counts no other count has seen, and only they matter. The level
follows the head giving the lowest level (the cautious side), so concurrent counts never add
up; heads that would give different levels disagree, and :mod:`.conflicts` reports them as a
``count_mismatch``. ``base`` holds exactly what the counter's replica held, even a replica
that had not yet received everything, so a count never carries a partial view forward.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .entries import Count


@dataclass(frozen=True)
class SkuCounts:
    """What the counts of one sku contribute to its level."""

    heads: tuple[Count, ...]
    """The counts no other count has seen, by id."""
    correction: int
    """What the counts add to the sum of the sku's adjustments: the lowest head's
    ``counted - base`` (0 without counts)."""
    disagree: bool
    """True when the heads would give different levels."""


NO_COUNTS = SkuCounts((), 0, False)


def fold_counts(counts: Iterable[Count]) -> dict[str, SkuCounts]:
    """Per sku, what its counts contribute; skus without counts are absent."""
    by_sku: dict[str, dict[str, Count]] = {}
    for count in counts:
        by_sku.setdefault(count.sku, {})[count.id] = count
    return {sku: fold_sku(by_id) for sku, by_id in sorted(by_sku.items())}


def fold_sku(counts: Mapping[str, Count]) -> SkuCounts:
    """Fold the counts of one sku, given by id (one body per id)."""
    seen_by_others = {p for count_id, count in counts.items() for p in count.after if p != count_id}
    heads = sorted(count_id for count_id in counts if count_id not in seen_by_others)
    if not heads:  # no counts, or every count is in a loop only a foreign writer can make
        return NO_COUNTS
    corrections = {counts[h].correction for h in heads}
    return SkuCounts(tuple(counts[h] for h in heads), min(corrections), len(corrections) > 1)
