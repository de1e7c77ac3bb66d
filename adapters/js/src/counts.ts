/**
 * Stocktakes: how absolute counts fold into a sku's level (the engine's `engine/counts.py`).
 *
 * A count says "the shelf held `counted` when my replica showed `seen`": it corrects the level
 * by `counted - seen`, and every adjustment the counter's replica had not seen still applies on
 * top. Counts name the counts they had seen (`after`); a sku's heads are the counts no other
 * count has seen. The level follows one head's chain, the head giving the lowest level (ties:
 * the smallest id), its own `after` resolved by the same rule, exactly as the counter's replica
 * resolved it when it computed `seen`. Heads that would give different levels disagree.
 */
import { compareCodePoints } from "./canonical.js";
import { correction, type Count } from "./entries.js";

/** What the counts of one sku contribute to its level. */
export interface SkuCounts {
  /** The counts no other count has seen, by id. */
  readonly heads: readonly Count[];
  /** The sum of corrections along the applied chain (0 without counts). */
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
  if (counts.size === 0) return NO_COUNTS;
  const parents = new Map<string, string[]>();
  for (const [id, count] of counts) {
    parents.set(id, [...new Set(count.after.filter((p) => counts.has(p) && p !== id))].sort(compareCodePoints));
  }
  const seenByOthers = new Set([...parents.values()].flat());
  const heads = [...counts.keys()].filter((id) => !seenByOthers.has(id)).sort(compareCodePoints);
  if (heads.length === 0) return NO_COUNTS; // every count is in a loop only a foreign writer can make
  const sums = new Map<string, number>();
  for (const head of heads) chainSums(head, counts, parents, sums);
  let winner = heads[0]!;
  for (const head of heads) if (sums.get(head)! < sums.get(winner)!) winner = head;
  return {
    heads: heads.map((id) => counts.get(id)!),
    correction: sums.get(winner)!,
    disagree: new Set(heads.map((id) => sums.get(id)!)).size > 1,
  };
}

/** Fills `sums` for `root` and everything it has seen, without recursion; an edge back into the path walked is cut. */
function chainSums(
  root: string, counts: ReadonlyMap<string, Count>, parents: ReadonlyMap<string, string[]>, sums: Map<string, number>,
): void {
  const stack: [string, boolean][] = [[root, false]];
  const onPath = new Set<string>();
  while (stack.length) {
    const [node, expanded] = stack.pop()!;
    if (sums.has(node)) continue;
    if (!expanded) {
      if (onPath.has(node)) continue;
      onPath.add(node);
      stack.push([node, true]);
      for (const p of [...parents.get(node)!].reverse()) if (!sums.has(p) && !onPath.has(p)) stack.push([p, false]);
      continue;
    }
    onPath.delete(node);
    const known = parents.get(node)!.filter((p) => sums.has(p)).map((p) => sums.get(p)!);
    sums.set(node, correction(counts.get(node)!) + (known.length ? Math.min(...known) : 0));
  }
}
