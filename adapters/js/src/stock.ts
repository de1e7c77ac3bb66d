/**
 * Stock ledgers: an append-only audit trail of adjustments at one location; one for one
 * with the engine's `engine/stock.py`, on the same document layout (docs/semantics.md):
 *
 * - `adjustments` (Y.Array): `{id, sku, delta, reason, actor, at}` and an optional `ref`;
 * - `counts` (Y.Array): `{id, sku, counted, seen, base, after, actor, at}` and an optional `ref`:
 *   absolute counts (stocktakes);
 * - `resolutions` (Y.Array): `{id, conflict, sku, strategy, actor, at}` and optional
 *   `note`, `level` (merge) and `adjustment`.
 *
 * A sku's level is the sum of the deltas of its adjustments, each id counted once (the
 * body whose canonical JSON sorts first, by code point), plus the correction of its counts
 * (see counts.ts). Conflicts are derived from that
 * state, so every replica holding the same updates reports the same conflicts.
 */
import * as Y from "yjs";
import { canonicalJson, compareCodePoints } from "./canonical.js";
import { COUNT_MISMATCH, deriveConflicts, type Conflict } from "./conflicts.js";
import { foldCounts, foldSku, type SkuCounts } from "./counts.js";
import {
  adjustmentJson, countJson, resolutionJson, sameAdjustment, sameCount, STRATEGIES,
  type Adjustment, type Count, type Resolution, type Strategy,
} from "./entries.js";
import { DuplicateAdjustment, DuplicateCount, DuplicateResolution, UnknownConflict, ValidationError } from "./errors.js";
import { misplacedEntries, nextId, observeDoc, wallClock, type Clock, type ModelOptions, type SchemaIssue } from "./schema.js";
import {
  checkDelta, checkId, checkInt, checkNote, checkTimestamp, MAX_DELTA, MAX_SAFE_INTEGER, readInt, readMapping,
} from "./validation.js";

export const ADJUSTMENTS = "adjustments";
export const RESOLUTIONS = "resolutions";
export const COUNTS = "counts";
/** Most counts one count may name as seen (concurrent heads of one sku). */
export const MAX_AFTER = 256;

/** An entry of the audit trail. */
export type Entry = Adjustment | Count | Resolution;

/** Everything derived from a ledger's state; identical on replicas with equal state. */
export interface LedgerView {
  /** The counted adjustments, by time then id. */
  readonly adjustments: readonly Adjustment[];
  readonly resolutions: readonly Resolution[];
  /** Level per sku, for every sku with an adjustment. */
  readonly levels: Readonly<Record<string, number>>;
  /** Open conflicts: derived and not yet resolved. */
  readonly conflicts: readonly Conflict[];
  readonly resolved: readonly Conflict[];
  readonly issues: readonly SchemaIssue[];
  /** The counted counts (stocktakes), by time then id. */
  readonly counts: readonly Count[];
  /** Per sku with counts, what they contribute (see counts.ts). */
  readonly folded: ReadonlyMap<string, SkuCounts>;
}

export interface RecordOptions {
  reason: string;
  actor: string;
  /** The adjustment's unique id; recording one id again is a no-op. Defaults to a new id. */
  id?: string;
  /** Epoch milliseconds or a Date; defaults to the clock, and is then left out when comparing a retry. */
  at?: number | Date;
  /** An optional reference (an order, a delivery note). */
  ref?: string;
}

export interface CountOptions {
  actor: string;
  /** The count's unique id; counting one id again with the same body is a no-op. Defaults to a new id. */
  id?: string;
  /** Epoch milliseconds or a Date; defaults to the clock, and is then left out when comparing a retry. */
  at?: number | Date;
  /** An optional reference (a stocktake sheet, say). */
  ref?: string;
}

export interface ResolveOptions {
  actor: string;
  at?: number | Date;
  note?: string;
  /** The adopted level (the merge strategy only). */
  level?: number;
  /** Naming the decision makes a retry a no-op. Defaults to a new id. */
  resolutionId?: string;
}

class Index {
  readonly adjustments = new Map<string, Adjustment[]>();
  readonly counts = new Map<string, Count[]>();
  readonly resolutions = new Map<string, Resolution>();
  readonly issues: SchemaIssue[] = [];

  addAdjustment(adjustment: Adjustment): void {
    const copies = this.adjustments.get(adjustment.id);
    if (!copies) this.adjustments.set(adjustment.id, [adjustment]);
    else if (!copies.some((copy) => sameAdjustment(copy, adjustment))) copies.push(adjustment);
  }

  /** The copy every replica counts when one id arrived with different bodies. */
  winner(adjustmentId: string): Adjustment | null {
    const copies = this.adjustments.get(adjustmentId);
    if (!copies || !copies.length) return null;
    if (copies.length === 1) return copies[0]!;
    return copies
      .map((copy) => [canonicalJson(adjustmentJson(copy)), copy] as const)
      .reduce((best, next) => (compareCodePoints(next[0], best[0]) < 0 ? next : best))[1];
  }

  addCount(count: Count): void {
    const copies = this.counts.get(count.id);
    if (!copies) this.counts.set(count.id, [count]);
    else if (!copies.some((copy) => sameCount(copy, count))) copies.push(count);
  }

  /** The copy every replica counts when one count id arrived with different bodies. */
  countWinner(countId: string): Count | null {
    const copies = this.counts.get(countId);
    if (!copies || !copies.length) return null;
    if (copies.length === 1) return copies[0]!;
    return copies
      .map((copy) => [canonicalJson(countJson(copy)), copy] as const)
      .reduce((best, next) => (compareCodePoints(next[0], best[0]) < 0 ? next : best))[1];
  }
}

/** A typed view of one location's stock document; every edit is one Yjs transaction. */
export class StockLedger {
  readonly doc: Y.Doc;
  readonly locationId: string;
  private readonly clock: Clock;
  private readonly adjustmentsArray: Y.Array<unknown>;
  private readonly resolutionsArray: Y.Array<unknown>;
  private readonly countsArray: Y.Array<unknown>;

  constructor(doc: Y.Doc, locationId: string, options: ModelOptions = {}) {
    this.doc = doc;
    this.locationId = checkId(locationId, "location_id");
    this.clock = options.clock ?? wallClock;
    this.adjustmentsArray = doc.getArray(ADJUSTMENTS);
    this.resolutionsArray = doc.getArray(RESOLUTIONS);
    this.countsArray = doc.getArray(COUNTS);
  }

  /** A ledger on a fresh document. */
  static create(locationId: string, options: ModelOptions & { clientId?: number } = {}): StockLedger {
    const doc = new Y.Doc();
    if (options.clientId !== undefined) doc.clientID = options.clientId;
    return new StockLedger(doc, locationId, options);
  }

  // -- edits ------------------------------------------------------------------------

  /**
   * Records an adjustment; recording the same one again changes nothing and returns the first.
   * The same id with a different body throws {@link DuplicateAdjustment}.
   */
  record(sku: string, delta: number, options: RecordOptions): Adjustment {
    const id = options.id === undefined ? null : checkId(options.id, "id");
    const adjustment: Adjustment = {
      id: id ?? `adj-${nextId(this.doc)}`,
      sku: checkId(sku, "sku"),
      delta: checkDelta(delta),
      reason: checkId(options.reason, "reason"),
      actor: checkId(options.actor, "actor"),
      at: options.at === undefined ? this.clock() : checkTimestamp(options.at),
      ref: options.ref === undefined || options.ref === null ? null : checkId(options.ref, "ref"),
    };
    const existing = this.index().winner(adjustment.id);
    if (existing !== null) {
      // Without an explicit `at` a retry cannot repeat the first timestamp.
      const differs = options.at === undefined
        ? !sameAdjustment({ ...existing, at: 0 }, { ...adjustment, at: 0 })
        : !sameAdjustment(existing, adjustment);
      if (differs) throw new DuplicateAdjustment(adjustment.id);
      return existing;
    }
    this.doc.transact(() => this.adjustmentsArray.push([adjustmentJson(adjustment)]));
    return adjustment;
  }

  /**
   * Records an absolute count: `counted` units of `sku` observed on the shelf. The count stores
   * the level this replica shows (`seen`), the sum of the sku's adjustments it holds (`base`)
   * and the counts it has seen (`after`): it sets the level
   * to `counted`, and every adjustment this replica has not seen yet still applies on top.
   * Concurrent counts that disagree open a `count_mismatch` conflict. Counting one id again with
   * the same sku, count, actor and reference returns the first count; a different body throws
   * {@link DuplicateCount}.
   */
  count(sku: string, counted: number, options: CountOptions): Count {
    sku = checkId(sku, "sku");
    counted = checkInt(counted, "counted", 0, MAX_DELTA);
    const actor = checkId(options.actor, "actor");
    const stamp = options.at === undefined ? this.clock() : checkTimestamp(options.at);
    const ref = options.ref === undefined || options.ref === null ? null : checkId(options.ref, "ref");
    const index = this.index();
    let id: string | null = null;
    if (options.id !== undefined && options.id !== null) {
      id = checkId(options.id, "count_id");
      const existing = index.countWinner(id);
      if (existing !== null) {
        if (existing.sku !== sku || existing.counted !== counted || existing.actor !== actor || existing.ref !== ref
          || (options.at !== undefined && existing.at !== stamp)) {
          throw new DuplicateCount(id);
        }
        return existing;
      }
    }
    const view = this.view();
    const count: Count = {
      id: id ?? `count-${nextId(this.doc)}`,
      sku, counted, seen: view.levels[sku] ?? 0,
      base: view.adjustments.reduce((sum, adj) => (adj.sku === sku ? sum + adj.delta : sum), 0),
      after: (view.folded.get(sku)?.heads ?? []).map((c) => c.id),
      actor, at: stamp, ref,
    };
    this.doc.transact(() => this.countsArray.push([countJson(count)]));
    return count;
  }

  /**
   * Resolves an open conflict; the decision is recorded and converges like any edit.
   * `accept` keeps the level (for a count mismatch: the lowest count, which the level follows);
   * `compensate` records an adjustment back to 0 (for a count mismatch: to the level without
   * the disagreeing counts); `merge` adopts `level`. Level-changing resolutions write the
   * adjustment `resolve:{conflictId}`.
   */
  resolve(conflictId: string, strategy: Strategy, options: ResolveOptions): Resolution {
    if (!STRATEGIES.includes(strategy)) throw new ValidationError("strategy", `must be one of ${STRATEGIES.join(", ")}`);
    const actor = checkId(options.actor, "actor");
    const stamp = options.at === undefined ? this.clock() : checkTimestamp(options.at);
    const note = options.note === undefined || options.note === null ? null : checkNote(options.note);
    let level: number | null = null;
    if (strategy === "merge") level = checkInt(options.level, "level", 0, MAX_DELTA);
    else if (options.level !== undefined && options.level !== null) {
      throw new ValidationError("level", "only the merge strategy takes a level");
    }
    let resolutionId: string | null = null;
    if (options.resolutionId !== undefined && options.resolutionId !== null) {
      resolutionId = checkId(options.resolutionId, "resolution_id");
      const previous = this.index().resolutions.get(resolutionId);
      if (previous !== undefined) {
        if (previous.conflict !== conflictId || previous.strategy !== strategy || previous.actor !== actor
          || previous.note !== note || previous.level !== level) {
          throw new DuplicateResolution(resolutionId);
        }
        return previous;
      }
    }
    const conflict = this.conflicts().find((c) => c.id === conflictId);
    if (conflict === undefined) throw new UnknownConflict(conflictId);
    const compensated = conflict.kind === COUNT_MISMATCH ? this.withoutCounts(conflict) : 0;
    const target = strategy === "accept" ? null : strategy === "compensate" ? compensated : level;
    let resolution: Resolution | undefined;
    this.doc.transact(() => { // the adjustment and the decision land together or not at all
      let adjustment: string | null = null;
      if (target !== null && target !== conflict.level) {
        adjustment = `resolve:${conflict.id}`;
        this.record(conflict.sku, target - conflict.level, {
          id: adjustment, reason: `conflict-${strategy}`, actor, at: stamp, ref: conflict.id,
        });
      }
      resolution = {
        id: resolutionId ?? `res-${nextId(this.doc)}`,
        conflict: conflict.id, sku: conflict.sku, strategy, actor, at: stamp, note, level, adjustment,
      };
      this.resolutionsArray.push([resolutionJson(resolution)]);
    });
    return resolution!;
  }

  /** Calls `listener` after every change to the document (local or remote); returns the unsubscribe. */
  observe(listener: () => void): () => void {
    return observeDoc(this.doc, listener);
  }

  // -- reads ------------------------------------------------------------------------

  view(): LedgerView {
    const index = this.index();
    const adjustments = [...index.adjustments.keys()]
      .map((id) => index.winner(id))
      .filter((adj): adj is Adjustment => adj !== null)
      .sort((a, b) => a.at - b.at || compareCodePoints(a.id, b.id));
    const counts = [...index.counts.keys()]
      .map((id) => index.countWinner(id))
      .filter((count): count is Count => count !== null)
      .sort((a, b) => a.at - b.at || compareCodePoints(a.id, b.id));
    const levelMap = new Map<string, number>();
    for (const adj of adjustments) levelMap.set(adj.sku, (levelMap.get(adj.sku) ?? 0) + adj.delta);
    const folded = foldCounts(counts);
    for (const [sku, contribution] of folded) levelMap.set(sku, (levelMap.get(sku) ?? 0) + contribution.correction);
    const resolutions = [...index.resolutions.values()].sort((a, b) => a.at - b.at || compareCodePoints(a.id, b.id));
    const derived = deriveConflicts(adjustments, levelMap, folded);
    const resolvedIds = new Set(resolutions.map((r) => r.conflict));
    const issues = [...index.issues];
    for (const [root, entries] of [[ADJUSTMENTS, index.adjustments], [COUNTS, index.counts]] as const) {
      for (const id of [...entries.keys()].sort(compareCodePoints)) {
        const copies = entries.get(id)!;
        if (copies.length > 1) {
          issues.push({ path: `${root}[id=${id}]`, reason: `${copies.length} different bodies share this id; counted once` });
        }
      }
    }
    const levels: Record<string, number> = {};
    for (const sku of [...levelMap.keys()].sort(compareCodePoints)) levels[sku] = levelMap.get(sku)!;
    return {
      adjustments,
      resolutions,
      levels,
      conflicts: derived.filter((c) => !resolvedIds.has(c.id)),
      resolved: derived.filter((c) => resolvedIds.has(c.id)),
      issues,
      counts,
      folded,
    };
  }

  /** The level of the conflict's sku if its disagreeing counts had not been taken. */
  private withoutCounts(conflict: Conflict): number {
    const view = this.view();
    const disputed = new Set(conflict.counts.map((c) => c.id));
    const rest = new Map(view.counts.filter((c) => c.sku === conflict.sku && !disputed.has(c.id)).map((c) => [c.id, c]));
    return conflict.level - view.folded.get(conflict.sku)!.correction + foldSku(rest).correction;
  }

  level(sku: string): number {
    return this.view().levels[checkId(sku, "sku")] ?? 0;
  }

  levels(): Readonly<Record<string, number>> {
    return this.view().levels;
  }

  conflicts(): readonly Conflict[] {
    return this.view().conflicts;
  }

  /**
   * The audit trail: every counted adjustment, count and decision, by time, then adjustments
   * before counts before decisions, then id.
   */
  history(sku?: string): Entry[] {
    const view = this.view();
    let entries: Entry[] = [...view.adjustments, ...view.counts, ...view.resolutions];
    if (sku !== undefined) entries = entries.filter((entry) => entry.sku === sku);
    const rank = (entry: Entry): number => ("strategy" in entry ? 2 : "counted" in entry ? 1 : 0);
    return entries.sort((a, b) => a.at - b.at || rank(a) - rank(b) || compareCodePoints(a.id, b.id));
  }

  // -- internals --------------------------------------------------------------------

  private index(): Index {
    const index = new Index();
    index.issues.push(
      ...misplacedEntries(ADJUSTMENTS, this.adjustmentsArray),
      ...misplacedEntries(RESOLUTIONS, this.resolutionsArray),
      ...misplacedEntries(COUNTS, this.countsArray),
    );
    this.adjustmentsArray.toJSON().forEach((raw: unknown, position: number) => {
      try {
        index.addAdjustment(parseAdjustment(raw));
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        index.issues.push({ path: `${ADJUSTMENTS}[${position}]`, reason: error.message });
      }
    });
    this.countsArray.toJSON().forEach((raw: unknown, position: number) => {
      try {
        index.addCount(parseCount(raw));
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        index.issues.push({ path: `${COUNTS}[${position}]`, reason: error.message });
      }
    });
    this.resolutionsArray.toJSON().forEach((raw: unknown, position: number) => {
      let resolution: Resolution;
      try {
        resolution = parseResolution(raw);
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        index.issues.push({ path: `${RESOLUTIONS}[${position}]`, reason: error.message });
        return;
      }
      const previous = index.resolutions.get(resolution.id);
      if (previous === undefined
        || compareCodePoints(canonicalJson(resolutionJson(resolution)), canonicalJson(resolutionJson(previous))) < 0) {
        index.resolutions.set(resolution.id, resolution);
      }
    });
    return index;
  }
}

function optionalId(entry: Record<string, unknown>, name: string): string | null {
  return entry[name] === undefined || entry[name] === null ? null : checkId(entry[name], name);
}

function parseAdjustment(raw: unknown): Adjustment {
  const entry = readMapping(raw, "adjustment");
  const delta = readInt(entry.delta, "delta", -MAX_DELTA, MAX_DELTA);
  if (delta === 0) throw new ValidationError("delta", "must not be zero");
  return {
    id: checkId(entry.id, "id"),
    sku: checkId(entry.sku, "sku"),
    delta,
    reason: checkId(entry.reason, "reason"),
    actor: checkId(entry.actor, "actor"),
    at: readInt(entry.at, "at", 0, MAX_SAFE_INTEGER),
    ref: optionalId(entry, "ref"),
  };
}

function parseCount(raw: unknown): Count {
  const entry = readMapping(raw, "count");
  const after = entry.after;
  if (!Array.isArray(after)) {
    throw new ValidationError("after", `must be a list of count ids, not ${after === null ? "null" : typeof after}`);
  }
  if (after.length > MAX_AFTER) throw new ValidationError("after", `must name at most ${MAX_AFTER} counts`);
  return {
    id: checkId(entry.id, "id"),
    sku: checkId(entry.sku, "sku"),
    counted: readInt(entry.counted, "counted", 0, MAX_DELTA),
    seen: readInt(entry.seen, "seen", -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    base: readInt(entry.base, "base", -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    after: [...new Set(after.map((item) => checkId(item, "after")))].sort(compareCodePoints),
    actor: checkId(entry.actor, "actor"),
    at: readInt(entry.at, "at", 0, MAX_SAFE_INTEGER),
    ref: optionalId(entry, "ref"),
  };
}

function parseResolution(raw: unknown): Resolution {
  const entry = readMapping(raw, "resolution");
  const strategy = entry.strategy;
  if (typeof strategy !== "string" || !STRATEGIES.includes(strategy as Strategy)) {
    throw new ValidationError("strategy", `must be one of ${STRATEGIES.join(", ")}`);
  }
  const level = entry.level;
  const note = entry.note;
  return {
    id: checkId(entry.id, "id"),
    conflict: checkId(entry.conflict, "conflict"),
    sku: checkId(entry.sku, "sku"),
    strategy: strategy as Strategy,
    actor: checkId(entry.actor, "actor"),
    at: readInt(entry.at, "at", 0, MAX_SAFE_INTEGER),
    note: note === undefined || note === null ? null : checkNote(note),
    level: level === undefined || level === null ? null : readInt(level, "level", 0, MAX_DELTA),
    adjustment: optionalId(entry, "adjustment"),
  };
}
