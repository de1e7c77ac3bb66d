/**
 * The Node side of the cross-language property test (tests/interop/test_js_documents.py).
 *
 *   node build/interop/documents.js generate <cart|stock|order> <runs> <seed>
 *       fast-check draws `runs` random scenarios: operations on several JS replicas with
 *       syncs in between (updates delivered late, twice, out of order). Prints JSON:
 *       {seed, scenarios: [{kind, replicas: {name: {id, update (base64 state), view}}}]}.
 *   node build/interop/documents.js read            (JSON on stdin)
 *       {scenarios: [{kind, replicas: {name: {id, client_id?, update}}, steps?}]}: loads each
 *       replica's update into a fresh Y.Doc, runs the vector steps (harness/vectors.py's
 *       format), prints {scenarios: [{outcomes, views, updates}]} (updates: each replica's state, base64).
 */
import * as Y from "yjs";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { Cart } from "../src/cart.js";
import { EngineError } from "../src/errors.js";
import { Order, PAYMENTS, STAGES, type OrderLineInput } from "../src/order.js";
import { StockLedger } from "../src/stock.js";
import type { JsonObject } from "../src/validation.js";
import { CaseRun, render, type Json } from "./vectors.js";

const PRODUCTS = ["tee", "mug", "cap"];
/** Attributes that once split the languages' line keys, and plain ones. */
const ATTRIBUTES: JsonObject[] = [
  {}, { size: "M" }, { w: 1e-7 }, { f: 0.1 + 0.2 }, { z: -0 }, { "😀": 1, "\ue000": 2 },
  { s: "a\"b\\c\n\u2028" }, { color: { name: "blue", hex: "#00f" }, dims: [1, 2.5] }, { big: 9007199254740991 },
];
const SKUS = ["tee-M", "mug", "sku-😀"];

type Step =
  | { op: "edit"; replica: number; action: number; a: number; b: number; c: number }
  | { op: "deliver"; from: number; to: number; order: number[]; twice: boolean }
  | { op: "sync"; from: number; to: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant("edit" as const), replica: fc.nat(3), action: fc.nat(9), a: fc.nat(8), b: fc.nat(12), c: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("deliver" as const), from: fc.nat(3), to: fc.nat(3), order: fc.array(fc.nat(40), { maxLength: 12 }), twice: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("sync" as const), from: fc.nat(3), to: fc.nat(3) }) },
);

const base64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64");

/**
 * The document's integrated state as one update. `Y.encodeStateAsUpdate` also carries the
 * structs a replica holds back (their dependencies have not arrived), which are not part of
 * what it reads; Yrs would integrate some of them at once, so they are left out here.
 */
function integratedState(doc: Y.Doc): Uint8Array {
  const { pendingStructs, pendingDs } = doc.store;
  doc.store.pendingStructs = null;
  doc.store.pendingDs = null;
  try {
    return Y.encodeStateAsUpdate(doc);
  } finally {
    doc.store.pendingStructs = pendingStructs;
    doc.store.pendingDs = pendingDs;
  }
}

type Kind = "cart" | "stock" | "order";

/**
 * Four replicas: for carts two of the user cart c-1 and two of the guest cart g-1; for stock
 * four of one ledger; for orders four of order o-1, which replica a places first.
 */
function scenario(kind: Kind, steps: Step[]): Json {
  const names = ["a", "b", "c", "d"];
  const models = names.map((_, index) => {
    const doc = new Y.Doc();
    doc.clientID = 1000 + index;
    const clock = (): number => 1_700_000_000_000 + index;
    if (kind === "stock") return new StockLedger(doc, "north", { clock });
    if (kind === "order") return new Order(doc, "o-1", { clock });
    return new Cart(doc, index < 2 ? "c-1" : "g-1", { clock });
  });
  const logs = models.map(() => [] as Uint8Array[]);
  models.forEach((model, index) => model.doc.on("update", (update: Uint8Array, origin: unknown) => {
    if (origin !== "delivery") logs[index]!.push(update);
  }));
  if (kind === "order") placeOrder(models[0] as Order, 0);
  for (const s of steps) {
    if (s.op === "sync" || s.op === "deliver") {
      const from = models[s.from]!;
      const to = models[s.to]!;
      if (from === to || (kind === "cart" && (from as Cart).cartId !== (to as Cart).cartId)) continue;
      if (s.op === "sync") {
        Y.applyUpdate(to.doc, Y.encodeStateAsUpdate(from.doc, Y.encodeStateVector(to.doc)), "delivery");
      } else {
        const log = logs[s.from]!;
        for (const pick of s.order) {
          const update = log[pick % Math.max(log.length, 1)];
          if (update === undefined) continue;
          Y.applyUpdate(to.doc, update, "delivery");
          if (s.twice) Y.applyUpdate(to.doc, update, "delivery");
        }
      }
      continue;
    }
    try {
      edit(models, s);
    } catch (error) {
      if (!(error instanceof EngineError)) throw error;
    }
  }
  const replicas: Json = {};
  models.forEach((model, index) => {
    replicas[names[index]!] = { id: modelId(model), update: base64(integratedState(model.doc)), pending: model.doc.store.pendingStructs !== null, view: render(model) };
  });
  return { kind, replicas };
}

function modelId(model: Cart | StockLedger | Order): string {
  if (model instanceof Order) return model.orderId;
  return model instanceof Cart ? model.cartId : model.locationId;
}

// -- orders ---------------------------------------------------------------------------

const ORDER_LINES: OrderLineInput[] = [
  { key: "k-tee", productId: "tee", attributes: { size: "M", "😀": [1, 2.5] }, quantity: 2, unitPrice: 1299, lineTotal: 2598 },
  { key: "k-mug", productId: "mug", quantity: 1, unitPrice: 850, lineTotal: 850 },
  { key: "k-cap", productId: "cap", attributes: { big: 9007199254740991 }, quantity: 3, unitPrice: 0, lineTotal: 0 },
];
const ACTORS = ["till", "kitchen", "manager", "terminal-😀"];

/** A checkout; `variant` picks its lines, so concurrent placements differ (one of them stays whole). */
function placeOrder(order: Order, variant: number): void {
  order.place({
    cart: `c-${variant}`, location: "north", currency: variant % 2 ? "USD" : "EUR", by: ACTORS[variant % ACTORS.length]!,
    lines: ORDER_LINES.slice(variant % 3), at: 1_700_000_000_000 + variant,
  });
}

/** Action 0 places (again, or concurrently), 1 to 5 move the stage, 6 to 9 the payment. */
function editOrder(order: Order, s: Extract<Step, { op: "edit" }>): void {
  const move = { by: ACTORS[s.c % ACTORS.length]!, at: 1_700_000_000_000 + s.b, ...(s.a % 3 === 0 ? { note: `n-${s.a} \u2028😀` } : {}) };
  if (s.action === 0) placeOrder(order, s.a);
  else if (s.action <= 5) order.advance(STAGES[(s.b + s.action) % STAGES.length]!, move);
  else order.recordPayment(PAYMENTS[(s.b + s.action) % PAYMENTS.length]!, move);
}

function edit(models: (Cart | StockLedger | Order)[], s: Extract<Step, { op: "edit" }>): void {
  const model = models[s.replica]!;
  if (model instanceof Order) {
    editOrder(model, s);
    return;
  }
  if (model instanceof Cart) {
    const lines = model.lines();
    const line = lines[s.b % Math.max(lines.length, 1)];
    switch (s.action % 6) {
      case 0: case 1:
        model.addItem(PRODUCTS[s.c % PRODUCTS.length]!, 1 + s.b, ATTRIBUTES[s.a % ATTRIBUTES.length]);
        return;
      case 2:
        if (line) model.setQuantity(line.key, s.b % 5);
        return;
      case 3:
        if (line) model.removeLine(line.key);
        return;
      case 4:
        if (s.a % 3 === 0) model.clear();
        return;
      case 5: {
        const target = models[s.c % 2] as Cart; // a replica of the user cart
        if (model.cartId !== target.cartId) model.mergeInto(target);
        return;
      }
    }
  } else {
    const conflicts = model.conflicts();
    if (s.action % 5 === 4 && conflicts.length) {
      const conflict = conflicts[s.b % conflicts.length]!;
      const strategy = (["accept", "compensate", "merge"] as const)[s.c % 3]!;
      model.resolve(conflict.id, strategy, { actor: `manager-${s.replica}`, ...(strategy === "merge" ? { level: s.a } : {}) });
      return;
    }
    if (s.action % 5 === 3) { // a stocktake: concurrent ones on other replicas disagree or agree
      model.count(SKUS[s.c % SKUS.length]!, s.b, {
        actor: `clerk-${s.replica}`, ...(s.a % 2 ? { id: `count-${s.a}` } : {}), at: 1_700_000_000_000 + s.b,
      });
      return;
    }
    const delta = s.action % 2 === 0 ? -(1 + (s.b % 4)) : 1 + (s.b % 3);
    model.record(SKUS[s.c % SKUS.length]!, delta, {
      id: `adj-${s.a}`, reason: delta < 0 ? "sale" : "restock", actor: `till-${s.replica}`, at: 1_700_000_000_000 + s.b,
    });
  }
}

function generate(kind: Kind, runs: number, seed: number): Json {
  const samples = fc.sample(fc.array(step, { minLength: 5, maxLength: 40, size: "max" }), { numRuns: runs, seed });
  return { seed, scenarios: samples.map((steps) => scenario(kind, steps)) };
}

function read(input: Json): Json {
  return {
    scenarios: input.scenarios.map((s: Json) => {
      const run = new CaseRun(s.kind, { replicas: s.replicas });
      for (const [name, spec] of Object.entries<Json>(s.replicas)) {
        Y.applyUpdate(run.models.get(name)!.doc, Buffer.from(spec.update, "base64"));
      }
      const outcomes = (s.steps ?? []).map((st: Json) => run.step(st));
      const updates: Json = {};
      for (const [name, model] of run.models) updates[name] = base64(Y.encodeStateAsUpdate(model.doc));
      return { outcomes, views: run.views(), updates };
    }),
  };
}

const [command, ...args] = process.argv.slice(2);
if (command === "generate") {
  const [kind, runs, seed] = args;
  process.stdout.write(JSON.stringify(generate(kind as Kind, Number(runs), Number(seed))));
} else if (command === "read") {
  process.stdout.write(JSON.stringify(read(JSON.parse(readFileSync(0, "utf-8")))));
} else {
  process.stderr.write("usage: documents.js generate <cart|stock|order> <runs> <seed> | documents.js read < input.json\n");
  process.exit(2);
}
