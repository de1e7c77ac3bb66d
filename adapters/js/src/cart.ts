/**
 * Carts: lines keyed by product and attributes, with counter quantities; one for one with
 * the engine's `engine/cart.py`, on the same document layout (docs/semantics.md):
 *
 * - `lines` (Y.Map): line key -> `{product, attributes}`, written once per line;
 * - `ops` (Y.Array): append-only quantity operations `{id, l, k, n}`, plus `m` on merge
 *   contributions and `a` on sets;
 * - `cart` (Y.Map): `status` ("open" or "merged"), `merged_into`, `merged_at`.
 *
 * A line's quantity is `max(n of its sets) + sum(n of its adds)` over the operations present,
 * each merge key counting once (its largest add) unless a present set absorbed it.
 * Set-quantity, remove and clear delete the operations this replica observed, so a
 * concurrent add nobody deleted survives them: add wins.
 */
import * as Y from "yjs";
import { compareCodePoints, compareStringLists, lineKeyOf } from "./canonical.js";
import { AlreadyMerged, CartClosed, UnknownLine, ValidationError } from "./errors.js";
import {
  isSharedType, misplacedEntries, nextId, observeDoc, sharedTypeName, wallClock,
  type Clock, type ModelOptions, type SchemaIssue,
} from "./schema.js";
import {
  checkAttributes, checkId, checkQuantity, MAX_QUANTITY, MAX_SAFE_INTEGER, readInt, readMapping, type JsonObject,
} from "./validation.js";

export const OPS = "ops";
export const LINES = "lines";
export const META = "cart";
/** Most merge keys one set operation may record. */
export const MAX_ABSORBED = 1024;

export interface CartLine {
  readonly key: string;
  readonly productId: string;
  readonly attributes: JsonObject;
  readonly quantity: number;
}

export interface CartStatus {
  readonly state: "open" | "merged";
  /** The id of the cart this one was merged into. */
  readonly mergedInto: string | null;
  readonly mergedAt: number | null;
}

/** Everything a reader derives from a cart's state, deterministically. */
export interface CartView {
  readonly lines: readonly CartLine[];
  readonly status: CartStatus;
  readonly issues: readonly SchemaIssue[];
  readonly totalQuantity: number;
}

/** What a guest-to-user merge contributed; `replayed` when it had happened before. */
export interface MergeResult {
  readonly source: string;
  readonly target: string;
  readonly lines: readonly CartLine[];
  readonly replayed: boolean;
}

const OPEN: CartStatus = Object.freeze({ state: "open", mergedInto: null, mergedAt: null });

interface Op {
  readonly index: number;
  readonly id: string;
  readonly line: string;
  readonly kind: "add" | "set";
  readonly n: number;
  readonly mergeKey: string | null;
  readonly absorbed: ReadonlySet<string>;
}

class Parsed {
  /** The operations that count, per line. */
  readonly opsByLine = new Map<string, Op[]>();
  /** Second copies of an op id: not counted, but replaced along with the first. */
  readonly duplicatesByLine = new Map<string, Op[]>();
  readonly issues: SchemaIssue[] = [];

  observed(key: string): Op[] {
    return [...(this.opsByLine.get(key) ?? []), ...(this.duplicatesByLine.get(key) ?? [])];
  }

  allObserved(): Map<string, Op[]> {
    const keys = new Set([...this.opsByLine.keys(), ...this.duplicatesByLine.keys()]);
    return new Map([...keys].map((key) => [key, this.observed(key)]));
  }
}

/** A typed view of one cart document; every edit is one Yjs transaction. */
export class Cart {
  readonly doc: Y.Doc;
  /** The cart's id: the `{id}` part of its document name `{tenant}/cart/{id}`. */
  readonly cartId: string;
  private readonly clock: Clock;
  private readonly ops: Y.Array<unknown>;
  private readonly linesMap: Y.Map<unknown>;
  private readonly meta: Y.Map<unknown>;

  constructor(doc: Y.Doc, cartId: string, options: ModelOptions = {}) {
    this.doc = doc;
    this.cartId = checkId(cartId, "cart_id");
    this.clock = options.clock ?? wallClock;
    this.ops = doc.getArray(OPS);
    this.linesMap = doc.getMap(LINES);
    this.meta = doc.getMap(META);
  }

  /** A cart on a fresh document. */
  static create(cartId: string, options: ModelOptions & { clientId?: number } = {}): Cart {
    const doc = new Y.Doc();
    if (options.clientId !== undefined) doc.clientID = options.clientId;
    return new Cart(doc, cartId, options);
  }

  // -- edits ------------------------------------------------------------------------

  /** Adds `quantity` of a product with these attributes; returns the line key. */
  addItem(productId: string, quantity = 1, attributes?: JsonObject | null): string {
    const n = checkQuantity(quantity, false);
    const attrs = checkAttributes(attributes ?? {});
    const product = checkId(productId, "product_id");
    const key = lineKeyOf(product, attrs);
    this.ensureOpen();
    this.doc.transact(() => {
      if (!this.linesMap.has(key)) this.linesMap.set(key, { product, attributes: attrs });
      this.ops.push([{ id: nextId(this.doc), l: key, k: "add", n }]);
    });
    return key;
  }

  /**
   * Makes the line show `quantity`, replacing every operation this replica observed on it;
   * a concurrent add this replica had not seen still counts on top.
   */
  setQuantity(key: string, quantity: number): void {
    key = checkId(key, "line");
    const n = checkQuantity(quantity, true);
    this.ensureOpen();
    const parsed = this.parse();
    if (this.lineMeta(key) === null) throw new UnknownLine(key);
    this.doc.transact(() => this.replaceLines(new Map([[key, parsed.observed(key)]]), n));
  }

  /** Removes a line: its quantity becomes 0 unless a concurrent add arrives. */
  removeLine(key: string): void {
    this.setQuantity(key, 0);
  }

  /** Removes every line this replica has observed. */
  clear(): void {
    this.ensureOpen();
    const parsed = this.parse();
    this.doc.transact(() => this.replaceLines(parsed.allObserved(), 0));
  }

  /**
   * Merges this (guest) cart into `target`: matching lines sum; this cart closes.
   * Idempotent: every contribution is keyed by this cart's id (the merge key) and counts
   * once, so replaying the merge, here or on another replica, changes nothing; a replay
   * carries over what an offline device added to the guest cart after the first merge.
   */
  mergeInto(target: Cart): MergeResult {
    if (target.cartId === this.cartId) throw new ValidationError("target", "a cart cannot be merged into itself");
    const status = this.status();
    if (status.state === "merged" && status.mergedInto !== target.cartId) {
      throw new AlreadyMerged(status.mergedInto ?? "", target.cartId);
    }
    const sourceLines = this.view().lines;
    if (status.state === "merged") {
      if (target.status().state === "open") target.absorb(this.cartId, sourceLines);
      return { source: this.cartId, target: target.cartId, lines: sourceLines, replayed: true };
    }
    target.ensureOpen();
    target.absorb(this.cartId, sourceLines);
    this.doc.transact(() => {
      this.meta.set("status", "merged");
      this.meta.set("merged_into", target.cartId);
      this.meta.set("merged_at", this.clock());
    });
    return { source: this.cartId, target: target.cartId, lines: sourceLines, replayed: false };
  }

  /** Calls `listener` after every change to the document (local or remote); returns the unsubscribe. */
  observe(listener: () => void): () => void {
    return observeDoc(this.doc, listener);
  }

  // -- reads ------------------------------------------------------------------------

  view(): CartView {
    const parsed = this.parse();
    const issues = [...parsed.issues, ...misplacedEntries(LINES, this.linesMap), ...misplacedEntries(META, this.meta)];
    const metas = new Map<string, [string, JsonObject]>();
    for (const key of [...this.linesMap.keys()].sort(compareCodePoints)) {
      const meta = this.lineMeta(key, issues);
      if (meta !== null) metas.set(key, meta);
    }
    const lines: CartLine[] = [];
    for (const key of [...parsed.opsByLine.keys()].sort(compareCodePoints)) {
      const meta = metas.get(key);
      if (meta === undefined) {
        issues.push({ path: `${OPS}[line=${key}]`, reason: "operations for a line with no valid metadata" });
        continue;
      }
      const quantity = fold(parsed.opsByLine.get(key)!);
      if (quantity > 0) lines.push({ key, productId: meta[0], attributes: meta[1], quantity });
    }
    const status = this.readStatus(issues);
    const totalQuantity = lines.reduce((sum, line) => sum + line.quantity, 0);
    return { lines, status, issues, totalQuantity };
  }

  lines(): readonly CartLine[] {
    return this.view().lines;
  }

  quantity(key: string): number {
    return this.view().lines.find((line) => line.key === key)?.quantity ?? 0;
  }

  status(): CartStatus {
    return this.readStatus([]);
  }

  // -- internals --------------------------------------------------------------------

  private readStatus(issues: SchemaIssue[]): CartStatus {
    if (!this.meta.has("status")) return OPEN;
    const state = this.meta.get("status");
    if (state === "open") return OPEN;
    if (state !== "merged") {
      issues.push({ path: `${META}.status`, reason: `must be 'open' or 'merged', not ${shown(state)}` });
      return OPEN;
    }
    let mergedInto: string | null = null;
    try {
      mergedInto = checkId(this.meta.get("merged_into"), "merged_into");
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      issues.push({ path: `${META}.merged_into`, reason: error.message });
    }
    let mergedAt: number | null = null;
    try {
      mergedAt = readInt(this.meta.get("merged_at"), "merged_at", 0, MAX_SAFE_INTEGER);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      issues.push({ path: `${META}.merged_at`, reason: error.message });
    }
    return { state: "merged", mergedInto, mergedAt };
  }

  private ensureOpen(): void {
    const status = this.status();
    if (status.state === "merged") throw new CartClosed(status.mergedInto ?? "");
  }

  /** Deletes the observed ops of each line and appends one set op per line (all deletions first). */
  private replaceLines(observed: ReadonlyMap<string, Op[]>, quantity: number): void {
    deleteIndices(this.ops, [...observed.values()].flatMap((ops) => ops.map((op) => op.index)));
    for (const [key, ops] of observed) {
      const absorbed = new Set<string>();
      for (const op of ops) {
        for (const mergeKey of op.absorbed) absorbed.add(mergeKey);
        if (op.mergeKey !== null) absorbed.add(op.mergeKey);
      }
      if (quantity > 0 || absorbed.size) {
        const entry: Record<string, unknown> = { id: nextId(this.doc), l: key, k: "set", n: quantity };
        if (absorbed.size) entry.a = [...absorbed].sort(compareCodePoints);
        this.ops.push([entry]);
      }
    }
  }

  private absorb(sourceId: string, lines: readonly CartLine[]): void {
    const parsed = this.parse();
    this.doc.transact(() => {
      for (const line of lines) {
        const seen = parsed.observed(line.key);
        if (seen.some((op) => op.absorbed.has(sourceId)) || seen.some((op) => op.mergeKey === sourceId && op.n >= line.quantity)) {
          continue; // already contributed in full (or replaced by a later set)
        }
        if (!this.linesMap.has(line.key)) {
          this.linesMap.set(line.key, { product: line.productId, attributes: line.attributes });
        }
        this.ops.push([{ id: nextId(this.doc), l: line.key, k: "add", n: line.quantity, m: sourceId }]);
      }
    });
  }

  private lineMeta(key: string, issues?: SchemaIssue[]): [string, JsonObject] | null {
    if (!this.linesMap.has(key)) return null;
    const raw = this.linesMap.get(key);
    try {
      if (isSharedType(raw)) throw new ValidationError("line", `a nested ${sharedTypeName(raw)} where plain JSON belongs`);
      const entry = readMapping(raw, "line");
      const product = checkId(entry.product, "product");
      const attrs = checkAttributes(Object.hasOwn(entry, "attributes") ? entry.attributes : {});
      if (lineKeyOf(product, attrs) !== key) {
        throw new ValidationError("key", "does not match the line's product and attributes");
      }
      return [product, attrs];
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      issues?.push({ path: `${LINES}[${key}]`, reason: error.message });
      return null;
    }
  }

  private parse(): Parsed {
    const parsed = new Parsed();
    parsed.issues.push(...misplacedEntries(OPS, this.ops));
    const seen = new Map<string, Op>();
    this.ops.toJSON().forEach((raw: unknown, index: number) => {
      let op: Op;
      try {
        op = parseOp(index, raw);
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        parsed.issues.push({ path: `${OPS}[${index}]`, reason: error.message });
        return;
      }
      const identity = JSON.stringify([op.line, op.id]);
      const previous = seen.get(identity);
      if (previous !== undefined) {
        // The same op id twice (a foreign writer's replay): count it once.
        parsed.issues.push({ path: `${OPS}[${index}]`, reason: `duplicate op id ${JSON.stringify(op.id)}` });
        if (compareOpOrder(op, previous) >= 0) {
          append(parsed.duplicatesByLine, op.line, op);
          return;
        }
        const counted = parsed.opsByLine.get(op.line)!;
        counted.splice(counted.indexOf(previous), 1);
        append(parsed.duplicatesByLine, op.line, previous);
      }
      seen.set(identity, op);
      append(parsed.opsByLine, op.line, op);
    });
    return parsed;
  }
}

function append<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function shown(value: unknown): string {
  let text: string;
  try {
    text = isSharedType(value) ? sharedTypeName(value) : JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length <= 60 ? text : `${text.slice(0, 57)}...`;
}

/** The order among copies of one op id: the smallest counts (the engine's `_op_order`). */
function compareOpOrder(a: Op, b: Op): number {
  return compareCodePoints(a.kind, b.kind)
    || a.n - b.n
    || compareCodePoints(a.mergeKey ?? "", b.mergeKey ?? "")
    || compareStringLists([...a.absorbed].sort(compareCodePoints), [...b.absorbed].sort(compareCodePoints));
}

function parseOp(index: number, raw: unknown): Op {
  const entry = readMapping(raw, "op");
  const id = checkId(entry.id, "id");
  const line = checkId(entry.l, "l");
  const kind = entry.k;
  let n: number;
  if (kind === "add") n = readInt(entry.n, "n", 1, MAX_QUANTITY);
  else if (kind === "set") n = readInt(entry.n, "n", 0, MAX_QUANTITY);
  else throw new ValidationError("k", `unknown op kind ${shown(kind)}`);
  let mergeKey: string | null = null;
  if (entry.m !== undefined && entry.m !== null) {
    if (kind !== "add") throw new ValidationError("m", "only add operations carry a merge key");
    mergeKey = checkId(entry.m, "m");
  }
  let absorbed: ReadonlySet<string> = new Set();
  if (Object.hasOwn(entry, "a")) {
    if (kind !== "set" || !Array.isArray(entry.a) || entry.a.length > MAX_ABSORBED) {
      throw new ValidationError("a", `must be a list of at most ${MAX_ABSORBED} merge keys on a set`);
    }
    absorbed = new Set(entry.a.map((item: unknown) => checkId(item, "a")));
  }
  return { index, id, line, kind, n, mergeKey, absorbed };
}

/** The quantity a line shows, from the operations present on it. */
function fold(ops: readonly Op[]): number {
  const absorbed = new Set<string>();
  for (const op of ops) for (const key of op.absorbed) absorbed.add(key);
  let base = 0;
  let added = 0;
  const merged = new Map<string, number>();
  for (const op of ops) {
    if (op.kind === "set") base = Math.max(base, op.n);
    else if (op.mergeKey === null) added += op.n;
    else if (!absorbed.has(op.mergeKey)) merged.set(op.mergeKey, Math.max(merged.get(op.mergeKey) ?? 0, op.n));
  }
  let total = base + added;
  for (const n of merged.values()) total += n;
  return total;
}

/** Deletes items at `indices`, last first, one call per contiguous run. */
function deleteIndices(array: Y.Array<unknown>, indices: number[]): void {
  const runs: [number, number][] = [];
  for (const index of [...indices].sort((a, b) => b - a)) {
    const last = runs[runs.length - 1];
    if (last && last[0] === index + 1) last[0] = index;
    else runs.push([index, index + 1]);
  }
  for (const [start, stop] of runs) array.delete(start, stop - start);
}
