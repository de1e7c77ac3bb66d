/**
 * Conflicts derived from merged stock state (the engine's `engine/conflicts.py`).
 *
 * A conflict is a pure function of the adjustments present, so every replica holding the
 * same updates, in either language, derives the same conflicts with the same ids.
 */
import { canonicalJson, compareCodePoints, sha256Hex } from "./canonical.js";
import type { Adjustment } from "./entries.js";

export const NEGATIVE_LEVEL = "negative_level";

/**
 * A sku whose level went below zero. `id` is derived from the sku and the ids of its
 * negative adjustments: a restock leaves it unchanged, a further sale makes a new conflict.
 */
export interface Conflict {
  readonly id: string;
  readonly kind: "negative_level";
  readonly sku: string;
  readonly level: number;
  /** Ids of the sku's negative adjustments, sorted by code point. */
  readonly adjustments: readonly string[];
}

export function negativeLevelId(sku: string, negativeIds: Iterable<string>): string {
  const ids = [...negativeIds].sort(compareCodePoints);
  return `${NEGATIVE_LEVEL}:${sha256Hex(canonicalJson([sku, ids])).slice(0, 24)}`;
}

/** Every sku below zero, as a conflict, in sku order. */
export function deriveConflicts(adjustments: Iterable<Adjustment>, levels: ReadonlyMap<string, number>): Conflict[] {
  const negatives = new Map<string, string[]>();
  for (const adj of adjustments) {
    if (adj.delta < 0 && (levels.get(adj.sku) ?? 0) < 0) {
      let ids = negatives.get(adj.sku);
      if (!ids) negatives.set(adj.sku, (ids = []));
      ids.push(adj.id);
    }
  }
  return [...negatives.keys()].sort(compareCodePoints).map((sku) => {
    const ids = negatives.get(sku)!;
    return {
      id: negativeLevelId(sku, ids),
      kind: NEGATIVE_LEVEL,
      sku,
      level: levels.get(sku)!,
      adjustments: [...ids].sort(compareCodePoints),
    };
  });
}
