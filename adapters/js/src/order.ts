/**
 * Orders: what a checkout sold, and how far the order has gone since; one for one with the
 * engine's `engine/order.py`, on the same document layout (docs/semantics.md):
 *
 * - `order` (Y.Map): `placed` -> one JSON object written by the checkout:
 *   `{cart, location, currency, lines, total, at, by}`, each line
 *   `{key, product, attributes, quantity, unit_price, line_total}`;
 * - `trail` (Y.Array): append-only moves `{id, k, to, at, by}` and an optional `note`,
 *   `k` being "stage" or "payment".
 *
 * Stage and payment each only move forward through a rank order, and the order's stage
 * (payment) is the furthest rank any move reached, so replicas that move an order offline
 * and concurrently agree whatever the delivery order.
 */
import * as Y from "yjs";
import { OrderNotPlaced, TransitionRefused, ValidationError } from "./errors.js";
import {
  isSharedType, misplacedEntries, nextId, observeDoc, sharedTypeName, wallClock,
  type Clock, type ModelOptions, type SchemaIssue,
} from "./schema.js";
import {
  checkAttributes, checkId, checkInt, checkNote, checkTimestamp, MAX_QUANTITY, MAX_SAFE_INTEGER, readInt, readMapping,
  type JsonObject,
} from "./validation.js";

export const META = "order";
export const TRAIL = "trail";
export const PLACED = "placed";

/** Stages in rank order: the furthest one any move reached is the order's stage. */
export const STAGES = Object.freeze(["placed", "confirmed", "preparing", "ready", "cancelled", "completed"] as const);
/** Payment statuses in rank order. */
export const PAYMENTS = Object.freeze(["pending", "failed", "authorized", "paid", "refunded"] as const);

export type Stage = (typeof STAGES)[number];
export type Payment = (typeof PAYMENTS)[number];
export type TransitionKind = "stage" | "payment";

/** Most lines one order may hold. */
export const MAX_LINES = 500;
/** Amounts are integers in the currency's minor unit (cents). */
export const MAX_MONEY = MAX_SAFE_INTEGER;

/** One priced line of an order: `lineTotal` is `quantity × unitPrice`. */
export interface OrderLine {
  readonly key: string;
  readonly productId: string;
  readonly attributes: JsonObject;
  readonly quantity: number;
  readonly unitPrice: number;
  readonly lineTotal: number;
}

/** A line offered to {@link Order.place}; attributes default to `{}`. */
export type OrderLineInput = Omit<OrderLine, "attributes"> & { readonly attributes?: JsonObject };

/** One entry of the trail: `kind` moved from `previous` to `to` (as folded in document order). */
export interface Transition {
  readonly id: string;
  readonly kind: TransitionKind;
  readonly to: string;
  readonly previous: string;
  readonly at: number;
  readonly by: string;
  readonly note: string | null;
  /** False when an earlier move had already gone as far or further. */
  readonly effective: boolean;
}

/** Everything a reader derives from an order's state; equal on replicas with equal state. */
export interface OrderView {
  readonly orderId: string;
  readonly placed: boolean;
  readonly cart: string | null;
  readonly location: string | null;
  readonly currency: string | null;
  readonly lines: readonly OrderLine[];
  readonly total: number;
  readonly placedAt: number | null;
  readonly placedBy: string | null;
  readonly stage: Stage;
  readonly payment: Payment;
  readonly trail: readonly Transition[];
  readonly issues: readonly SchemaIssue[];
}

export interface PlaceOptions {
  cart: string;
  location: string;
  /** A three-letter ISO 4217 code such as EUR. */
  currency: string;
  lines: readonly OrderLineInput[];
  by: string;
  /** Epoch milliseconds or a Date; defaults to the clock. */
  at?: number | Date;
}

export interface MoveOptions {
  by: string;
  note?: string;
  /** Epoch milliseconds or a Date; defaults to the clock. */
  at?: number | Date;
}

interface Placed {
  readonly cart: string;
  readonly location: string;
  readonly currency: string;
  readonly lines: readonly OrderLine[];
  readonly total: number;
  readonly at: number;
  readonly by: string;
}

/** A typed view of one order document; every edit is one Yjs transaction. */
export class Order {
  readonly doc: Y.Doc;
  /** The order's id: the `{id}` part of its document name `{tenant}/order/{id}`. */
  readonly orderId: string;
  private readonly clock: Clock;
  private readonly meta: Y.Map<unknown>;
  private readonly trailArray: Y.Array<unknown>;

  constructor(doc: Y.Doc, orderId: string, options: ModelOptions = {}) {
    this.doc = doc;
    this.orderId = checkId(orderId, "order_id");
    this.clock = options.clock ?? wallClock;
    this.meta = doc.getMap(META);
    this.trailArray = doc.getArray(TRAIL);
  }

  /** An order on a fresh document (`clientId` fixes the Yjs client id, for tests). */
  static create(orderId: string, options: ModelOptions & { clientId?: number } = {}): Order {
    const doc = new Y.Doc();
    if (options.clientId !== undefined) doc.clientID = options.clientId;
    return new Order(doc, orderId, options);
  }

  // -- edits ------------------------------------------------------------------------

  /** Writes what the checkout sold; false (nothing written) if the order was placed already. */
  place(options: PlaceOptions): boolean {
    const cart = checkId(options.cart, "cart");
    const location = checkId(options.location, "location");
    const currency = checkCurrency(options.currency);
    if (!Array.isArray(options.lines)) throw new ValidationError("lines", "must be a list of lines");
    const lines = options.lines.map((line, i) => lineJson(line, `lines[${i}]`));
    const by = checkId(options.by, "by");
    const at = options.at === undefined ? this.clock() : checkTimestamp(options.at);
    if (!lines.length) throw new ValidationError("lines", "an order needs at least one line");
    if (lines.length > MAX_LINES) throw new ValidationError("lines", `an order has at most ${MAX_LINES} lines`);
    const total = checkInt(lines.reduce((sum, line) => sum + line.line_total, 0), "total", 0, MAX_MONEY);
    if (this.view().placed) return false;
    this.doc.transact(() => {
      this.meta.set(PLACED, { cart, location, currency, lines, by, at, total });
    });
    return true;
  }

  /**
   * Moves the order to `stage`; false if it is there already. Throws
   * {@link TransitionRefused} for a move backwards, out of a cancelled or completed order.
   */
  advance(stage: Stage, options: MoveOptions): boolean {
    return this.transition("stage", stage, options);
  }

  /** Cancels the order (refused once it completed). */
  cancel(options: MoveOptions): boolean {
    return this.transition("stage", "cancelled", options);
  }

  /** Moves the payment to `status`; false if it is there already. */
  recordPayment(status: Payment, options: MoveOptions): boolean {
    return this.transition("payment", status, options);
  }

  /** Calls `listener` after every change to the document (local or remote); returns the unsubscribe. */
  observe(listener: () => void): () => void {
    return observeDoc(this.doc, listener);
  }

  // -- reads ------------------------------------------------------------------------

  view(): OrderView {
    const issues: SchemaIssue[] = [...misplacedEntries(META, this.meta), ...misplacedEntries(TRAIL, this.trailArray)];
    const placed = this.readPlaced(issues);
    let stage: Stage = STAGES[0];
    let payment: Payment = PAYMENTS[0];
    const trail: Transition[] = [];
    this.trailArray.toJSON().forEach((raw: unknown, index: number) => {
      let transition: Transition;
      try {
        transition = parseTransition(raw, kindOf(raw) === "stage" ? stage : payment);
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        issues.push({ path: `${TRAIL}[${index}]`, reason: error.message });
        return;
      }
      trail.push(transition);
      if (transition.effective) {
        if (transition.kind === "stage") stage = transition.to as Stage;
        else payment = transition.to as Payment;
      }
    });
    return {
      orderId: this.orderId,
      placed: placed !== null,
      cart: placed?.cart ?? null,
      location: placed?.location ?? null,
      currency: placed?.currency ?? null,
      lines: placed?.lines ?? [],
      total: placed?.total ?? 0,
      placedAt: placed?.at ?? null,
      placedBy: placed?.by ?? null,
      stage,
      payment,
      trail,
      issues,
    };
  }

  stage(): Stage {
    return this.view().stage;
  }

  payment(): Payment {
    return this.view().payment;
  }

  trail(): readonly Transition[] {
    return this.view().trail;
  }

  // -- internals --------------------------------------------------------------------

  private transition(kind: TransitionKind, to: string, options: MoveOptions): boolean {
    const names: readonly string[] = kind === "stage" ? STAGES : PAYMENTS;
    if (!names.includes(to)) throw new ValidationError(kind, `must be one of ${names.join(", ")}, not ${JSON.stringify(to)}`);
    const by = checkId(options.by, "by");
    const entry: Record<string, unknown> = { k: kind, to, by, at: options.at === undefined ? this.clock() : checkTimestamp(options.at) };
    if (options.note !== undefined && options.note !== null) entry.note = checkNote(options.note);
    const view = this.view();
    if (!view.placed) throw new OrderNotPlaced(this.orderId);
    const current = kind === "stage" ? view.stage : view.payment;
    if (to === current) return false;
    const refusal = refusalOf(kind, current, to);
    if (refusal !== null) throw new TransitionRefused(kind, current, to, refusal);
    this.doc.transact(() => {
      entry.id = nextId(this.doc);
      this.trailArray.push([entry]);
    });
    return true;
  }

  private readPlaced(issues: SchemaIssue[]): Placed | null {
    if (!this.meta.has(PLACED)) return null;
    try {
      const value = this.meta.get(PLACED);
      if (isSharedType(value)) throw new ValidationError(PLACED, `a nested ${sharedTypeName(value)} where plain JSON belongs`);
      const raw = readMapping(value, PLACED);
      const lines = raw.lines;
      if (!Array.isArray(lines) || !lines.length || lines.length > MAX_LINES) {
        throw new ValidationError("lines", `must be a list of 1 to ${MAX_LINES} lines`);
      }
      const parsed = lines.map((line: unknown, i: number) => parseLine(line, `lines[${i}]`));
      const total = readInt(raw.total, "total", 0, MAX_MONEY);
      if (total !== parsed.reduce((sum, line) => sum + line.lineTotal, 0)) {
        throw new ValidationError("total", "must be the sum of the line totals");
      }
      return {
        cart: checkId(raw.cart, "cart"),
        location: checkId(raw.location, "location"),
        currency: checkCurrency(raw.currency),
        lines: parsed,
        total,
        at: readInt(raw.at, "at", 0, MAX_SAFE_INTEGER),
        by: checkId(raw.by, "by"),
      };
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      issues.push({ path: `${META}.${PLACED}`, reason: error.message });
      return null;
    }
  }
}

/** Why moving `kind` from `current` to `to` is refused, or null if it is allowed. */
export function refusalOf(kind: TransitionKind, current: string, to: string): string | null {
  if (rank(kind, to) < rank(kind, current)) return `${kind} cannot go back from ${current} to ${to}`;
  if (kind === "stage") {
    if (current === "cancelled") return "a cancelled order moves no further";
    if (current === "completed") return "a completed order moves no further";
  } else {
    if (to === "failed" && current !== "pending") return "only a pending payment can fail";
    if (to === "refunded" && current !== "paid") return "only a paid order can be refunded";
    if (current === "refunded") return "a refunded payment moves no further";
  }
  return null;
}

export function lineTotal(quantity: number, unitPrice: number): number {
  return quantity * unitPrice;
}

function rank(kind: TransitionKind, value: string): number {
  const names: readonly string[] = kind === "stage" ? STAGES : PAYMENTS;
  return names.indexOf(value);
}

function kindOf(raw: unknown): unknown {
  return raw !== null && typeof raw === "object" && !Array.isArray(raw) ? (raw as Record<string, unknown>).k : undefined;
}

/** Python's `len(v) == 3 and v.isascii() and v.isupper()`: three ASCII characters, a capital letter, no small one. */
function checkCurrency(value: unknown): string {
  if (typeof value !== "string" || value.length !== 3 || !/^[\x00-\x7f]{3}$/.test(value) || !/[A-Z]/.test(value) || /[a-z]/.test(value)) {
    throw new ValidationError("currency", "must be a three-letter ISO 4217 code such as EUR");
  }
  return value;
}

interface LineJson {
  key: string;
  product: string;
  attributes: JsonObject;
  quantity: number;
  unit_price: number;
  line_total: number;
}

function lineJson(line: OrderLineInput, field: string): LineJson {
  const entry = readMapping(line, field);
  const quantity = checkInt(entry.quantity, `${field}.quantity`, 1, MAX_QUANTITY);
  const unitPrice = checkInt(entry.unitPrice, `${field}.unit_price`, 0, MAX_MONEY);
  if (entry.lineTotal !== lineTotal(quantity, unitPrice)) {
    throw new ValidationError(`${field}.line_total`, "must be quantity times unit_price");
  }
  return {
    key: checkId(entry.key, `${field}.key`),
    product: checkId(entry.productId, `${field}.product`),
    attributes: checkAttributes(entry.attributes ?? {}, `${field}.attributes`),
    quantity,
    unit_price: unitPrice,
    line_total: checkInt(entry.lineTotal, `${field}.line_total`, 0, MAX_MONEY),
  };
}

function parseLine(raw: unknown, field: string): OrderLine {
  const entry = readMapping(raw, field);
  const quantity = readInt(entry.quantity, `${field}.quantity`, 1, MAX_QUANTITY);
  const unitPrice = readInt(entry.unit_price, `${field}.unit_price`, 0, MAX_MONEY);
  const total = readInt(entry.line_total, `${field}.line_total`, 0, MAX_MONEY);
  if (total !== lineTotal(quantity, unitPrice)) throw new ValidationError(`${field}.line_total`, "must be quantity times unit_price");
  return {
    key: checkId(entry.key, `${field}.key`),
    productId: checkId(entry.product, `${field}.product`),
    attributes: checkAttributes(
      readMapping(Object.hasOwn(entry, "attributes") ? entry.attributes : {}, `${field}.attributes`), `${field}.attributes`,
    ),
    quantity,
    unitPrice,
    lineTotal: total,
  };
}

function parseTransition(raw: unknown, previous: string): Transition {
  const entry = readMapping(raw, "transition");
  const kind = entry.k;
  if (kind !== "stage" && kind !== "payment") throw new ValidationError("k", "must be 'stage' or 'payment'");
  const names: readonly string[] = kind === "stage" ? STAGES : PAYMENTS;
  const to = entry.to;
  if (typeof to !== "string" || !names.includes(to)) throw new ValidationError("to", `must be one of ${names.join(", ")}`);
  const note = entry.note;
  return {
    id: checkId(entry.id, "id"),
    kind,
    to,
    previous,
    at: readInt(entry.at, "at", 0, MAX_SAFE_INTEGER),
    by: checkId(entry.by, "by"),
    note: note === undefined || note === null ? null : checkNote(note),
    effective: to !== previous && rank(kind, to) > rank(kind, previous),
  };
}
