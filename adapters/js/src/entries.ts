/**
 * The entries of a stock ledger as immutable values: adjustments, counts and resolutions
 * (the engine's `engine/entries.py`). Fields are named as in the document layout.
 */

export type Strategy = "accept" | "compensate" | "merge";
export const STRATEGIES: readonly Strategy[] = ["accept", "compensate", "merge"];

/** One stock change: `delta` of `sku`, with who, when and why. */
export interface Adjustment {
  readonly id: string;
  readonly sku: string;
  readonly delta: number;
  readonly reason: string;
  readonly actor: string;
  readonly at: number;
  readonly ref: string | null;
}

/**
 * An absolute count of a sku: what the counter observed on the shelf. `seen` is the level the
 * counter's replica showed (`counted - seen` is the discrepancy found), `base` the sum of the
 * sku's adjustments that replica held, and `after` the counts of the sku it had seen that no
 * other count it had seen supersedes (ids sorted by code point, usually one).
 */
export interface Count {
  readonly id: string;
  readonly sku: string;
  readonly counted: number;
  readonly seen: number;
  readonly base: number;
  readonly after: readonly string[];
  readonly actor: string;
  readonly at: number;
  readonly ref: string | null;
}

/** What a count adds to the sum of the sku's adjustments: counted minus base. */
export function correction(count: Count): number {
  return count.counted - count.base;
}

/** A decision on a conflict. */
export interface Resolution {
  readonly id: string;
  readonly conflict: string;
  readonly sku: string;
  readonly strategy: Strategy;
  readonly actor: string;
  readonly at: number;
  readonly note: string | null;
  readonly level: number | null;
  readonly adjustment: string | null;
}

/** The adjustment as the document stores it. */
export function adjustmentJson(adjustment: Adjustment): Record<string, string | number> {
  const body: Record<string, string | number> = {
    id: adjustment.id, sku: adjustment.sku, delta: adjustment.delta,
    reason: adjustment.reason, actor: adjustment.actor, at: adjustment.at,
  };
  if (adjustment.ref !== null) body.ref = adjustment.ref;
  return body;
}

/** The count as the document stores it. */
export function countJson(count: Count): Record<string, string | number | string[]> {
  const body: Record<string, string | number | string[]> = {
    id: count.id, sku: count.sku, counted: count.counted, seen: count.seen, base: count.base,
    after: [...count.after], actor: count.actor, at: count.at,
  };
  if (count.ref !== null) body.ref = count.ref;
  return body;
}

export function sameCount(a: Count, b: Count): boolean {
  return a.id === b.id && a.sku === b.sku && a.counted === b.counted && a.seen === b.seen && a.base === b.base
    && a.after.length === b.after.length && a.after.every((id, i) => id === b.after[i])
    && a.actor === b.actor && a.at === b.at && a.ref === b.ref;
}

/** The resolution as the document stores it. */
export function resolutionJson(resolution: Resolution): Record<string, string | number> {
  const body: Record<string, string | number> = {
    id: resolution.id, conflict: resolution.conflict, sku: resolution.sku,
    strategy: resolution.strategy, actor: resolution.actor, at: resolution.at,
  };
  if (resolution.note !== null) body.note = resolution.note;
  if (resolution.level !== null) body.level = resolution.level;
  if (resolution.adjustment !== null) body.adjustment = resolution.adjustment;
  return body;
}

export function sameAdjustment(a: Adjustment, b: Adjustment): boolean {
  return a.id === b.id && a.sku === b.sku && a.delta === b.delta && a.reason === b.reason
    && a.actor === b.actor && a.at === b.at && a.ref === b.ref;
}
