"""Stocktakes: how absolute counts fold into a sku's level.

A count says "the shelf held ``counted`` when my replica showed ``seen``": it corrects the
level by ``counted - seen``, and every adjustment the counter's replica had not seen still
applies on top of it. Each count names the counts it had seen (``after``), so the counts of
a sku form a graph; its **heads** are the counts no other count has seen.

One rule, applied recursively: the level follows one head's chain, the head giving the
lowest level (ties: the smallest id), and that head's own ``after`` is resolved by the same
rule, exactly as the counter's replica resolved it when it computed ``seen``. So a chain of
counts telescopes to "the last count plus what it did not see", and of two concurrent
counts only one correction applies, never their sum. Heads that would give different
levels disagree: :mod:`.conflicts` reports them as a ``count_mismatch``.
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
    """The sum of corrections along the applied chain (0 without counts)."""
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
    if not counts:
        return NO_COUNTS
    parents = {
        count_id: sorted({p for p in count.after if p in counts and p != count_id})
        for count_id, count in counts.items()
    }
    seen_by_others = {p for ps in parents.values() for p in ps}
    heads = sorted(count_id for count_id in counts if count_id not in seen_by_others)
    sums: dict[str, int] = {}
    for head in heads:
        _chain_sums(head, counts, parents, sums)
    if not heads:  # every count is in a loop only a foreign writer can make: none applies
        return NO_COUNTS
    winner = min(heads, key=lambda h: (sums[h], h))
    return SkuCounts(
        tuple(counts[h] for h in heads),
        sums[winner],
        len({sums[h] for h in heads}) > 1,
    )


def _chain_sums(
    root: str, counts: Mapping[str, Count], parents: Mapping[str, list[str]], sums: dict[str, int]
) -> None:
    """Fill ``sums`` for ``root`` and everything it has seen, without recursion (chains grow
    long); an edge back into the path being walked (a loop) is cut."""
    stack: list[tuple[str, bool]] = [(root, False)]
    on_path: set[str] = set()
    while stack:
        node, expanded = stack.pop()
        if node in sums:
            continue
        if not expanded:
            if node in on_path:
                continue
            on_path.add(node)
            stack.append((node, True))
            stack.extend((p, False) for p in reversed(parents[node]) if p not in sums and p not in on_path)
            continue
        on_path.discard(node)
        known = [p for p in parents[node] if p in sums]
        below = min((sums[p] for p in known), default=0)
        sums[node] = counts[node].correction + below
