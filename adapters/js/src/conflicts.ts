/**
 * Conflicts derived from merged stock state (the engine's `engine/conflicts.py`).
 *
 * A conflict is a pure function of the entries present, so every replica holding the same
 * updates, in either language, derives the same conflicts with the same ids.
 */
import { canonicalJson, compareCodePoints, sha256Hex } from "./canonical.js";
import type { SkuCounts } from "./counts.js";
import type { Adjustment, Count } from "./entries.js";

export const NEGATIVE_LEVEL = "negative_level";
export const COUNT_MISMATCH = "count_mismatch";
export type ConflictKind = "negative_level" | "count_mismatch";

/**
 * A sku whose level went below zero, or whose concurrent counts disagree. A `negative_level`
 * id is derived from the sku and the ids of its negative adjustments: a restock leaves it
 * unchanged, a further sale makes a new conflict. A `count_mismatch` id is derived from the
 * sku and the ids of the disagreeing counts: a further concurrent count makes a new one.
 */
export interface Conflict {
  readonly id: string;
  readonly kind: ConflictKind;
  readonly sku: string;
  readonly level: number;
  /** Ids of the sku's negative adjustments, sorted by code point (negative_level; empty otherwise). */
  readonly adjustments: readonly string[];
  /** The concurrent counts, by id (count_mismatch; empty otherwise). */
  readonly counts: readonly Count[];
}

function derivedId(kind: string, sku: string, ids: Iterable<string>): string {
  return `${kind}:${sha256Hex(canonicalJson([sku, [...ids].sort(compareCodePoints)])).slice(0, 24)}`;
}

export function negativeLevelId(sku: string, negativeIds: Iterable<string>): string {
  return derivedId(NEGATIVE_LEVEL, sku, negativeIds);
}

export function countMismatchId(sku: string, countIds: Iterable<string>): string {
  return derivedId(COUNT_MISMATCH, sku, countIds);
}

/**
 * Every sku below zero and every sku whose concurrent counts disagree, in sku order
 * (for one sku, `count_mismatch` before `negative_level`).
 */
export function deriveConflicts(
  adjustments: Iterable<Adjustment>, levels: ReadonlyMap<string, number>, counts?: ReadonlyMap<string, SkuCounts>,
): Conflict[] {
  const negatives = new Map<string, string[]>();
  for (const adj of adjustments) {
    if (adj.delta < 0 && (levels.get(adj.sku) ?? 0) < 0) {
      let ids = negatives.get(adj.sku);
      if (!ids) negatives.set(adj.sku, (ids = []));
      ids.push(adj.id);
    }
  }
  const conflicts: Conflict[] = [...negatives].map(([sku, ids]) => ({
    id: negativeLevelId(sku, ids),
    kind: NEGATIVE_LEVEL,
    sku,
    level: levels.get(sku)!,
    adjustments: [...ids].sort(compareCodePoints),
    counts: [],
  }));
  for (const [sku, folded] of counts ?? []) {
    if (!folded.disagree) continue;
    conflicts.push({
      id: countMismatchId(sku, folded.heads.map((c) => c.id)),
      kind: COUNT_MISMATCH, sku, level: levels.get(sku)!, adjustments: [], counts: folded.heads,
    });
  }
  return conflicts.sort((a, b) => compareCodePoints(a.sku, b.sku) || compareCodePoints(a.kind, b.kind));
}
