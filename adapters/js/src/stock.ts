/**
 * Stock ledgers: an append-only audit trail of adjustments at one location; one for one
 * with the engine's `engine/stock.py`, on the same document layout (docs/semantics.md):
 *
 * - `adjustments` (Y.Array): `{id, sku, delta, reason, actor, at}` and an optional `ref`;
 * - `resolutions` (Y.Array): `{id, conflict, sku, strategy, actor, at}` and optional
 *   `note`, `level` (merge) and `adjustment`.
 *
 * A sku's level is the sum of the deltas of its adjustments, each id counted once (the
 * body whose canonical JSON sorts first, by code point). Conflicts are derived from that
 * state, so every replica holding the same updates reports the same conflicts.
 */
import * as Y from "yjs";
import { canonicalJson, compareCodePoints } from "./canonical.js";
import { deriveConflicts, type Conflict } from "./conflicts.js";
import {
  adjustmentJson, resolutionJson, sameAdjustment, STRATEGIES,
  type Adjustment, type Resolution, type Strategy,
} from "./entries.js";
import { DuplicateAdjustment, DuplicateResolution, UnknownConflict, ValidationError } from "./errors.js";
import { misplacedEntries, nextId, observeDoc, wallClock, type Clock, type ModelOptions, type SchemaIssue } from "./schema.js";
import {
  checkDelta, checkId, checkInt, checkNote, checkTimestamp, MAX_DELTA, MAX_SAFE_INTEGER, readInt, readMapping,
} from "./validation.js";

export const ADJUSTMENTS = "adjustments";
export const RESOLUTIONS = "resolutions";

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
}

/** A typed view of one location's stock document; every edit is one Yjs transaction. */
export class StockLedger {
  readonly doc: Y.Doc;
  readonly locationId: string;
  private readonly clock: Clock;
  private readonly adjustmentsArray: Y.Array<unknown>;
  private readonly resolutionsArray: Y.Array<unknown>;

  constructor(doc: Y.Doc, locationId: string, options: ModelOptions = {}) {
    this.doc = doc;
    this.locationId = checkId(locationId, "location_id");
    this.clock = options.clock ?? wallClock;
    this.adjustmentsArray = doc.getArray(ADJUSTMENTS);
    this.resolutionsArray = doc.getArray(RESOLUTIONS);
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
   * Resolves an open conflict; the decision is recorded and converges like any edit.
   * `accept` keeps the level; `compensate` records an adjustment back to 0; `merge` adopts
   * `level`. Level-changing resolutions write the adjustment `resolve:{conflictId}`.
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
    const target = strategy === "accept" ? null : strategy === "compensate" ? 0 : level;
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
    const levelMap = new Map<string, number>();
    for (const adj of adjustments) levelMap.set(adj.sku, (levelMap.get(adj.sku) ?? 0) + adj.delta);
    const resolutions = [...index.resolutions.values()].sort((a, b) => a.at - b.at || compareCodePoints(a.id, b.id));
    const derived = deriveConflicts(adjustments, levelMap);
    const resolvedIds = new Set(resolutions.map((r) => r.conflict));
    const issues = [...index.issues];
    for (const id of [...index.adjustments.keys()].sort(compareCodePoints)) {
      const copies = index.adjustments.get(id)!;
      if (copies.length > 1) {
        issues.push({ path: `${ADJUSTMENTS}[id=${id}]`, reason: `${copies.length} different bodies share this id; counted once` });
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
    };
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

  /** The audit trail: every counted adjustment and every decision, by time, then adjustments before decisions, then id. */
  history(sku?: string): (Adjustment | Resolution)[] {
    const view = this.view();
    let entries: (Adjustment | Resolution)[] = [...view.adjustments, ...view.resolutions];
    if (sku !== undefined) entries = entries.filter((entry) => entry.sku === sku);
    const isResolution = (entry: Adjustment | Resolution): number => ("strategy" in entry ? 1 : 0);
    return entries.sort((a, b) => a.at - b.at || isResolution(a) - isResolution(b) || compareCodePoints(a.id, b.id));
  }

  // -- internals --------------------------------------------------------------------

  private index(): Index {
    const index = new Index();
    index.issues.push(...misplacedEntries(ADJUSTMENTS, this.adjustmentsArray), ...misplacedEntries(RESOLUTIONS, this.resolutionsArray));
    this.adjustmentsArray.toJSON().forEach((raw: unknown, position: number) => {
      try {
        index.addAdjustment(parseAdjustment(raw));
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        index.issues.push({ path: `${ADJUSTMENTS}[${position}]`, reason: error.message });
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
