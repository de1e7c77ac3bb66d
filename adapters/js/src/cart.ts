/**
 * Carts: lines keyed by product and attributes, with counter quantities; one for one with
 * the engine's `engine/cart.py`, on the same document layout (docs/semantics.md):
 *
 * - `lines` (Y.Map): line key -> `{product, attributes}`, written once per line;
 * - `ops` (Y.Array): append-only quantity operations: adds and sets `{id, l, k, n}` (plus `a`
 *   and `ag` on sets: what they absorbed of merges), and merge contributions
 *   `{id, l, k: "merge", g, o, v}` (./contributions.ts). Older documents hold merge
 *   contributions as adds with `m`, the guest's id; they keep their meaning (largest per guest);
 * - `cart` (Y.Map): `status` ("open", "merged" or "checked_out"), then `merged_into` and
 *   `merged_at`, or `order` and `checked_out_at`.
 *
 * A line's quantity is `max(n of its sets) + sum(n of its adds)` over the operations present,
 * plus each guest's operations counted once.
 * Set-quantity, remove and clear delete the operations this replica observed, so a
 * concurrent add nobody deleted survives them: add wins.
 */
import * as Y from "yjs";
import { compareCodePoints, compareStringLists, lineKeyOf } from "./canonical.js";
import {
  absorb, absorbedCovers, absorbedJson, contributionJson, detail, dominates, guestQuantity, liveEntries,
  MAX_ENTRIES, parseAbsorbed, parseEntries, parseVector, sameEntries,
  type Absorbed, type Contribution, type Entry,
} from "./contributions.js";
import { AlreadyMerged, CartClosed, UnknownLine, ValidationError } from "./errors.js";
import {
  isSharedType, misplacedEntries, nextId, observeDoc, sharedTypeName, wallClock,
  type Clock, type ModelOptions, type SchemaIssue,
} from "./schema.js";
import {
  checkAttributes, checkId, checkQuantity, checkTimestamp, MAX_QUANTITY, MAX_SAFE_INTEGER, readInt, readMapping, type JsonObject,
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

export type CartState = "open" | "merged" | "checked_out";

/** Open, merged into another cart (`mergedInto`, `mergedAt`) or checked out (`order`, `checkedOutAt`). */
export interface CartStatus {
  readonly state: CartState;
  /** The id of the cart this one was merged into. */
  readonly mergedInto: string | null;
  readonly mergedAt: number | null;
  /** The id of the order this cart was checked out into. */
  readonly order: string | null;
  readonly checkedOutAt: number | null;
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

const OPEN: CartStatus = Object.freeze({ state: "open", mergedInto: null, mergedAt: null, order: null, checkedOutAt: null });

/** What merging a cart carries for one line: the line's metadata and the contribution. */
interface LineContribution {
  readonly key: string;
  readonly product: string;
  readonly attributes: JsonObject;
  readonly contribution: Contribution;
}

interface Op {
  readonly index: number;
  readonly id: string;
  readonly line: string;
  readonly kind: "add" | "set" | "merge";
  readonly n: number;
  readonly mergeKey: string | null;
  readonly absorbed: ReadonlySet<string>;
  readonly contribution: Contribution | null;
  readonly absorbedGuests: ReadonlyMap<string, Absorbed>;
  readonly detail: string;
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
   * Every guest operation counts once in the target, whichever devices merged which parts of
   * this cart's history: each merge carries the ids of the guest operations it saw, and the
   * target counts their union. So replaying the merge, here or on another replica, adds
   * nothing, and a replay carries over what an offline device added after the first merge.
   */
  mergeInto(target: Cart): MergeResult {
    if (target.cartId === this.cartId) throw new ValidationError("target", "a cart cannot be merged into itself");
    const status = this.status();
    if (status.state === "checked_out") throw new CartClosed(null, { state: "checked_out", target: status.order ?? "" });
    if (status.state === "merged" && status.mergedInto !== target.cartId) {
      throw new AlreadyMerged(status.mergedInto ?? "", target.cartId);
    }
    const sourceLines = this.view().lines;
    const contributions = this.contributions();
    if (status.state === "merged") {
      if (target.status().state === "open") target.take(contributions);
      return { source: this.cartId, target: target.cartId, lines: sourceLines, replayed: true };
    }
    target.ensureOpen();
    target.take(contributions);
    this.doc.transact(() => {
      this.meta.set("status", "merged");
      this.meta.set("merged_into", target.cartId);
      this.meta.set("merged_at", this.clock());
    });
    return { source: this.cartId, target: target.cartId, lines: sourceLines, replayed: false };
  }

  /**
   * Closes the cart as checked out into order `orderId` (its bare id) at `at` (epoch ms).
   * Idempotent for the same order; a cart checked out into another order, or merged, throws
   * `CartClosed`. Edits and merges are refused afterwards.
   */
  checkOut(orderId: string, options: { at?: number } = {}): CartStatus {
    const order = checkId(orderId, "order_id");
    const when = options.at === undefined ? null : checkTimestamp(options.at, "at");
    const status = this.status();
    if (status.state === "checked_out" && status.order === order) return status;
    this.ensureOpen();
    this.doc.transact(() => {
      this.meta.set("status", "checked_out");
      this.meta.set("order", order);
      this.meta.set("checked_out_at", when ?? this.clock());
    });
    return this.status();
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
    if (state === "merged") {
      const mergedInto = this.readMeta("merged_into", issues, (v, f) => checkId(v, f));
      const mergedAt = this.readMeta("merged_at", issues, (v, f) => readInt(v, f, 0, MAX_SAFE_INTEGER));
      return { state: "merged", mergedInto, mergedAt, order: null, checkedOutAt: null };
    }
    if (state === "checked_out") {
      const order = this.readMeta("order", issues, (v, f) => checkId(v, f));
      const checkedOutAt = this.readMeta("checked_out_at", issues, (v, f) => readInt(v, f, 0, MAX_SAFE_INTEGER));
      return { state: "checked_out", mergedInto: null, mergedAt: null, order, checkedOutAt };
    }
    issues.push({ path: `${META}.status`, reason: `must be 'open', 'merged' or 'checked_out', not ${shown(state)}` });
    return OPEN;
  }

  private readMeta<T>(key: string, issues: SchemaIssue[], read: (value: unknown, field: string) => T): T | null {
    try {
      return read(this.meta.get(key), key);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      issues.push({ path: `${META}.${key}`, reason: error.message });
      return null;
    }
  }

  private ensureOpen(): void {
    const status = this.status();
    if (status.state === "merged") throw new CartClosed(status.mergedInto ?? "");
    if (status.state === "checked_out") throw new CartClosed(null, { state: "checked_out", target: status.order ?? "" });
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
      const guests = absorb(
        ops.flatMap((op) => (op.contribution === null ? [] : [op.contribution])), ops.map((op) => op.absorbedGuests),
      );
      // Written even at 0 with nothing absorbed: it tells a later guest merge what it replaced.
      const entry: Record<string, unknown> = { id: nextId(this.doc), l: key, k: "set", n: quantity };
      if (absorbed.size) entry.a = [...absorbed].sort(compareCodePoints);
      if (guests.size) entry.ag = absorbedJson(guests);
      this.ops.push([entry]);
    }
  }

  /** What merging this cart carries, per line: its operations present, and its state vector. */
  private contributions(): LineContribution[] {
    const parsed = this.parse();
    const vector = Y.decodeStateVector(Y.encodeStateVector(this.doc));
    if (vector.size > MAX_ENTRIES) {
      throw new ValidationError("source", `a guest cart written by more than ${MAX_ENTRIES} clients`);
    }
    const out: LineContribution[] = [];
    for (const key of [...this.linesMap.keys()].sort(compareCodePoints)) {
      const meta = this.lineMeta(key);
      if (meta === null) continue;
      const entries = guestEntries(parsed.opsByLine.get(key) ?? []);
      if (entries.length > MAX_ENTRIES) {
        throw new ValidationError("source", `line ${key} has more than ${MAX_ENTRIES} operations: set its quantity before merging`);
      }
      out.push({ key, product: meta[0], attributes: meta[1], contribution: { guest: this.cartId, entries, vector } });
    }
    return out;
  }

  /** Writes each contribution that tells this cart something it does not know yet. */
  private take(contributions: readonly LineContribution[]): void {
    const parsed = this.parse();
    this.doc.transact(() => {
      for (const { key, product, attributes, contribution } of contributions) {
        const entry = contributionEntry(parsed.observed(key), contribution);
        if (entry === null) continue;
        if (!this.linesMap.has(key)) this.linesMap.set(key, { product, attributes });
        this.ops.push([{ id: nextId(this.doc), l: key, ...entry }]);
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
    || compareStringLists([...a.absorbed].sort(compareCodePoints), [...b.absorbed].sort(compareCodePoints))
    || compareCodePoints(a.detail, b.detail);
}

function parseOp(index: number, raw: unknown): Op {
  const entry = readMapping(raw, "op");
  const id = checkId(entry.id, "id");
  const line = checkId(entry.l, "l");
  const kind = entry.k;
  let n: number;
  if (kind === "add") n = readInt(entry.n, "n", 1, MAX_QUANTITY);
  else if (kind === "set") n = readInt(entry.n, "n", 0, MAX_QUANTITY);
  else if (kind === "merge") n = 0;
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
  let absorbedGuests: ReadonlyMap<string, Absorbed> = new Map();
  if (Object.hasOwn(entry, "ag")) {
    if (kind !== "set") throw new ValidationError("ag", "only set operations absorb guest contributions");
    absorbedGuests = parseAbsorbed(entry.ag);
  }
  let contribution: Contribution | null = null;
  let shownValue: unknown = absorbedGuests.size ? absorbedJson(absorbedGuests) : null;
  if (kind === "merge") {
    contribution = { guest: checkId(entry.g, "g"), entries: parseEntries(entry.o), vector: parseVector(entry.v) };
    shownValue = contributionJson(contribution);
  }
  return {
    index, id, line, kind, n, mergeKey, absorbed, contribution, absorbedGuests,
    detail: shownValue === null ? "" : detail(shownValue),
  };
}

/**
 * A line's own adds and sets, and what each guest merged into it contributes: the largest of
 * its old-form contributions (`m`) or the union of its contributions' entries, whichever is
 * larger; a set that absorbed the guest's merge key in `a` replaced both.
 */
function parts(ops: readonly Op[]): [Op[], Map<string, number>] {
  const absorbed = new Set<string>();
  for (const op of ops) for (const key of op.absorbed) absorbed.add(key);
  const guests = absorb([], ops.map((op) => op.absorbedGuests));
  const own = ops.filter((op) => op.kind !== "merge" && op.mergeKey === null);
  const result = new Map<string, number>();
  const contributions = new Map<string, Contribution[]>();
  for (const op of ops) {
    if (op.mergeKey !== null && !absorbed.has(op.mergeKey)) {
      result.set(op.mergeKey, Math.max(result.get(op.mergeKey) ?? 0, op.n));
    }
    if (op.contribution !== null && !absorbed.has(op.contribution.guest)) {
      append(contributions, op.contribution.guest, op.contribution);
    }
  }
  for (const [guest, found] of contributions) {
    result.set(guest, Math.max(result.get(guest) ?? 0, guestQuantity(found, guests.get(guest))));
  }
  return [own, result];
}

/** What a merge of this line carries: its own operations, and each earlier guest's part as one entry. */
function guestEntries(ops: readonly Op[]): Entry[] {
  const [own, nested] = parts(ops);
  const entries: Entry[] = own.map((op) => ({ kind: op.kind === "set" ? "set" : "add", id: op.id, n: op.n }));
  for (const guest of [...nested.keys()].sort(compareCodePoints)) {
    const n = nested.get(guest)!;
    if (n > 0) entries.push({ kind: "merged", id: guest, n });
  }
  return entries;
}

/** The op that brings `contribution` into a line holding `seen`, or null if it adds nothing. */
function contributionEntry(seen: readonly Op[], contribution: Contribution): Record<string, unknown> | null {
  const guest = contribution.guest;
  if (seen.some((op) => op.absorbed.has(guest))) return null; // an old-form set replaced this guest's contributions
  const legacy = seen.filter((op) => op.mergeKey === guest);
  if (legacy.length) {
    // A line already holding this guest's old-form contribution grows the old way.
    const quantity = guestQuantity([contribution], undefined);
    if (quantity === 0 || legacy.some((op) => op.n >= quantity)) return null;
    return { k: "add", n: Math.min(quantity, MAX_QUANTITY), m: guest };
  }
  const present = seen.flatMap((op) => (op.contribution !== null && op.contribution.guest === guest ? [op.contribution] : []));
  if (present.some((c) => dominates(c.vector, contribution.vector))) return null;
  const absorbed = absorb([], seen.map((op) => op.absorbedGuests)).get(guest);
  if (absorbed !== undefined && dominates(absorbed.vector, contribution.vector)
    && contribution.entries.every((entry) => absorbedCovers(absorbed, entry))) {
    return null; // a set here replaced all of it
  }
  const known = new Set(present.flatMap((c) => c.entries.map((e) => `${e.kind === "merged" ? "m" : "o"}:${e.id}`)));
  const allKnown = contribution.entries.every(
    (e) => known.has(`${e.kind === "merged" ? "m" : "o"}:${e.id}`) || (absorbed !== undefined && absorbedCovers(absorbed, e)),
  );
  if (allKnown && sameEntries(liveEntries(present, absorbed), liveEntries([...present, contribution], absorbed))) {
    return null; // every operation it carries is here already, and it replaces none of them
  }
  return { k: "merge", ...contributionJson(contribution) };
}

/** The quantity a line shows, from the operations present on it. */
function fold(ops: readonly Op[]): number {
  const [own, nested] = parts(ops);
  let total = 0;
  for (const op of own) if (op.kind === "set") total = Math.max(total, op.n);
  for (const op of own) if (op.kind === "add") total += op.n;
  for (const n of nested.values()) total += n;
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
