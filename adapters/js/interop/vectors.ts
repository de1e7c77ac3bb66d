/**
 * The JavaScript runner of the shared conformance vectors (tests/vectors/*.json): the
 * counterpart of the engine's `harness/vectors.py`, step for step, rendering outcomes,
 * errors and views in the vectors' language-neutral form (the document layout's names).
 */
import * as Y from "yjs";
import { canonicalJson, lineKey } from "../src/canonical.js";
import { Cart, type CartLine, type CartView } from "../src/cart.js";
import type { Conflict } from "../src/conflicts.js";
import { adjustmentJson, countJson, resolutionJson } from "../src/entries.js";
import {
  AlreadyMerged, CartClosed, DuplicateAdjustment, DuplicateCount, DuplicateResolution, EngineError, OrderNotPlaced,
  TransitionRefused, UnknownConflict, UnknownLine, ValidationError,
} from "../src/errors.js";
import { Order, type OrderView, type Payment, type Stage } from "../src/order.js";
import { StockLedger, type LedgerView } from "../src/stock.js";
import type { JsonObject } from "../src/validation.js";

export const DEFAULT_CLOCK = 1_700_000_000_000;

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Json = any;

export function renderError(error: EngineError): Json {
  const body: Record<string, unknown> = { type: error.constructor.name };
  if (error instanceof ValidationError) body.field = error.field;
  else if (error instanceof UnknownLine) body.line_key = error.lineKey;
  else if (error instanceof CartClosed) Object.assign(body, { merged_into: error.mergedInto, state: error.state, target: error.target });
  else if (error instanceof AlreadyMerged) Object.assign(body, { merged_into: error.mergedInto, requested: error.requested });
  else if (error instanceof DuplicateAdjustment) body.adjustment_id = error.adjustmentId;
  else if (error instanceof DuplicateCount) body.count_id = error.countId;
  else if (error instanceof UnknownConflict) body.conflict_id = error.conflictId;
  else if (error instanceof DuplicateResolution) body.resolution_id = error.resolutionId;
  else if (error instanceof OrderNotPlaced) body.order_id = error.orderId;
  else if (error instanceof TransitionRefused) {
    Object.assign(body, { kind: error.kind, current: error.current, requested: error.requested, reason: error.reason });
  }
  return { error: body };
}

export function renderLines(lines: readonly CartLine[]): Json[] {
  return lines.map((line) => ({ key: line.key, product: line.productId, attributes: line.attributes, quantity: line.quantity }));
}

export function renderCart(view: CartView): Json {
  return {
    lines: renderLines(view.lines),
    status: {
      state: view.status.state, merged_into: view.status.mergedInto, merged_at: view.status.mergedAt,
      order: view.status.order, checked_out_at: view.status.checkedOutAt,
    },
    total_quantity: view.totalQuantity,
    issues: view.issues.map((issue) => issue.path),
  };
}

function renderConflict(conflict: Conflict): Json {
  return {
    id: conflict.id, kind: conflict.kind, sku: conflict.sku, level: conflict.level, adjustments: [...conflict.adjustments],
    counts: conflict.counts.map(countJson),
  };
}

export function renderLedger(view: LedgerView): Json {
  return {
    adjustments: view.adjustments.map(adjustmentJson),
    counts: view.counts.map(countJson),
    resolutions: view.resolutions.map(resolutionJson),
    levels: { ...view.levels },
    conflicts: view.conflicts.map(renderConflict),
    resolved: view.resolved.map(renderConflict),
    issues: view.issues.map((issue) => issue.path),
  };
}

// -- orders ---------------------------------------------------------------------------

export function renderOrder(view: OrderView): Json {
  return {
    order_id: view.orderId,
    placed: view.placed,
    cart: view.cart,
    location: view.location,
    currency: view.currency,
    lines: view.lines.map((line) => ({
      key: line.key, product: line.productId, attributes: line.attributes, quantity: line.quantity,
      unit_price: line.unitPrice, line_total: line.lineTotal,
    })),
    total: view.total,
    placed_at: view.placedAt,
    placed_by: view.placedBy,
    stage: view.stage,
    payment: view.payment,
    trail: view.trail.map((t) => ({
      id: t.id, kind: t.kind, to: t.to, previous: t.previous, at: t.at, by: t.by, note: t.note, effective: t.effective,
    })),
    issues: view.issues.map((issue) => issue.path),
  };
}

/** One order step of the vectors (place, advance, cancel, pay): `{written}`. */
export function editOrder(order: Order, step: Json): Json {
  const move: Json = { by: step.by };
  for (const name of ["note", "at"]) if (name in step) move[name] = step[name];
  switch (step.op) {
    case "place": {
      const lines = step.lines.map((line: Json) => ({
        key: line.key, productId: line.product, attributes: line.attributes ?? {}, quantity: line.quantity,
        unitPrice: line.unit_price, lineTotal: line.line_total,
      }));
      const options: Json = { cart: step.cart, location: step.location, currency: step.currency, lines, by: step.by };
      if ("at" in step) options.at = step.at;
      return { written: order.place(options) };
    }
    case "advance":
      return { written: order.advance(step.stage as Stage, move) };
    case "cancel":
      return { written: order.cancel(move) };
    case "pay":
      return { written: order.recordPayment(step.status as Payment, move) };
  }
  throw new Error(`unknown vector op ${step.op} for Order`);
}

// -- every kind ------------------------------------------------------------------------

export type Model = Cart | StockLedger | Order;

export function render(model: Model): Json {
  if (model instanceof Order) return renderOrder(model.view());
  return model instanceof Cart ? renderCart(model.view()) : renderLedger(model.view());
}

/** The id of the sku's open conflict (of `kind`, if given), else of its resolved one, else `none:{sku}`. */
export function conflictOf(ledger: StockLedger, sku: string, kind?: string): string {
  const view = ledger.view();
  return [...view.conflicts, ...view.resolved].find((c) => c.sku === sku && (kind === undefined || c.kind === kind))?.id
    ?? `none:${sku}`;
}

/** One case's replicas, and what each step returns. */
export class CaseRun {
  readonly models = new Map<string, Model>();

  constructor(kind: "cart" | "stock" | "order", case_: Json) {
    const clock = case_.clock ?? DEFAULT_CLOCK;
    for (const [name, spec] of Object.entries<Json>(case_.replicas)) {
      const doc = new Y.Doc();
      if (spec.client_id !== undefined) doc.clientID = spec.client_id;
      if (kind === "order") {
        this.models.set(name, new Order(doc, spec.id, { clock: () => clock }));
        continue;
      }
      this.models.set(name, kind === "cart" ? new Cart(doc, spec.id, { clock: () => clock }) : new StockLedger(doc, spec.id, { clock: () => clock }));
    }
  }

  step(step: Json): Json {
    if (step.op === "sync") {
      const source = this.models.get(step.from)!.doc;
      const target = this.models.get(step.to)!.doc;
      Y.applyUpdate(target, Y.encodeStateAsUpdate(source, Y.encodeStateVector(target)));
      return null;
    }
    const model = this.models.get(step.replica)!;
    if (step.op === "view") return render(model);
    if (step.op === "raw") {
      if ("key" in step) model.doc.getMap(step.root).set(step.key, step.value);
      else model.doc.getArray(step.root).push([step.value]);
      return null;
    }
    try {
      if (model instanceof Order) return editOrder(model, step);
      return this.edit(model, step);
    } catch (error) {
      if (error instanceof EngineError) return renderError(error);
      throw error;
    }
  }

  views(): Json {
    return Object.fromEntries([...this.models].map(([name, model]) => [name, render(model)]));
  }

  private edit(model: Cart | StockLedger, step: Json): Json {
    const line = (): string => step.key ?? lineKey(step.line.product, step.line.attributes as JsonObject | undefined);
    if (model instanceof Cart) {
      switch (step.op) {
        case "add":
          return { key: model.addItem(step.product, step.quantity, step.attributes) };
        case "set":
          model.setQuantity(line(), step.quantity);
          return null;
        case "remove":
          model.removeLine(line());
          return null;
        case "clear":
          model.clear();
          return null;
        case "merge": {
          const target = this.models.get(step.into) as Cart;
          const result = model.mergeInto(target);
          return { source: result.source, target: result.target, replayed: result.replayed, lines: renderLines(result.lines) };
        }
        case "checkout": {
          const status = model.checkOut(step.order, "at" in step ? { at: step.at } : {});
          return { state: status.state, order: status.order, checked_out_at: status.checkedOutAt };
        }
      }
    } else {
      switch (step.op) {
        case "record": {
          const options: Json = { id: step.id, reason: step.reason, actor: step.actor };
          if ("at" in step) options.at = step.at;
          if ("ref" in step) options.ref = step.ref;
          return adjustmentJson(model.record(step.sku, step.delta, options));
        }
        case "count": {
          const options: Json = { actor: step.actor };
          for (const name of ["id", "at", "ref"]) if (name in step) options[name] = step[name];
          return countJson(model.count(step.sku, step.counted, options));
        }
        case "resolve": {
          const conflict = "conflict_of" in step ? conflictOf(model, step.conflict_of, step.conflict_kind) : step.conflict;
          const options: Json = { actor: step.actor };
          for (const [from, to] of [["at", "at"], ["note", "note"], ["level", "level"], ["resolution_id", "resolutionId"]]) {
            if (from! in step) options[to!] = step[from!];
          }
          return resolutionJson(model.resolve(conflict, step.strategy, options));
        }
      }
    }
    throw new Error(`unknown vector op ${step.op}`);
  }
}

export function canonicalOutcome(case_: Json): Json {
  if ("value" in case_) return { canonical: canonicalJson(case_.value) };
  try {
    return { line_key: lineKey(case_.product, case_.attributes) };
  } catch (error) {
    if (error instanceof EngineError) return renderError(error);
    throw error;
  }
}
