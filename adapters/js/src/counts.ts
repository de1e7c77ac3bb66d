/**
 * Stocktakes: how absolute counts fold into a sku's level (the engine's `engine/counts.py`).
 *
 * A count says "the shelf held `counted`"; with it the counter's replica stored `base`, the sum
 * of the sku's adjustments it held. Every adjustment it had not seen still applies on top, so
 * the level through a count is `counted - base` plus the sum of the sku's adjustments. Counts
 * name the counts they had seen (`after`); a sku's heads are the counts no other count has
 * seen, and only they matter. The level follows the head giving the lowest level; heads that
 * would give different levels disagree (a `count_mismatch`).
 */
import { compareCodePoints } from "./canonical.js";
import { correction, type Count } from "./entries.js";

/** What the counts of one sku contribute to its level. */
export interface SkuCounts {
  /** The counts no other count has seen, by id. */
  readonly heads: readonly Count[];
  /** What the counts add to the sum of the sku's adjustments: the lowest head's `counted - base` (0 without counts). */
  readonly correction: number;
  /** True when the heads would give different levels. */
  readonly disagree: boolean;
}

export const NO_COUNTS: SkuCounts = { heads: [], correction: 0, disagree: false };

/** Per sku (in code point order), what its counts contribute; skus without counts are absent. */
export function foldCounts(counts: Iterable<Count>): Map<string, SkuCounts> {
  const bySku = new Map<string, Map<string, Count>>();
  for (const count of counts) {
    let byId = bySku.get(count.sku);
    if (!byId) bySku.set(count.sku, (byId = new Map()));
    byId.set(count.id, count);
  }
  const folded = new Map<string, SkuCounts>();
  for (const sku of [...bySku.keys()].sort(compareCodePoints)) folded.set(sku, foldSku(bySku.get(sku)!));
  return folded;
}

/** Folds the counts of one sku, given by id (one body per id). */
export function foldSku(counts: ReadonlyMap<string, Count>): SkuCounts {
  const seenByOthers = new Set<string>();
  for (const [id, count] of counts) for (const p of count.after) if (p !== id) seenByOthers.add(p);
  const heads = [...counts.keys()].filter((id) => !seenByOthers.has(id)).sort(compareCodePoints);
  if (heads.length === 0) return NO_COUNTS; // no counts, or every count is in a loop only a foreign writer can make
  const corrections = heads.map((id) => correction(counts.get(id)!));
  return { heads: heads.map((id) => counts.get(id)!), correction: Math.min(...corrections), disagree: new Set(corrections).size > 1 };
}
