import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import * as Y from "yjs";
import {
  Order, OrderNotPlaced, PAYMENTS, STAGES, TransitionRefused, ValidationError,
  type OrderLineInput, type Payment, type PlaceOptions, type Stage,
} from "../src/index.js";

const TEE: OrderLineInput = { key: "k-tee", productId: "tee", attributes: { size: "M" }, quantity: 2, unitPrice: 1299, lineTotal: 2598 };
const MUG: OrderLineInput = { key: "k-mug", productId: "mug", attributes: {}, quantity: 1, unitPrice: 850, lineTotal: 850 };
const CHECKOUT: PlaceOptions = { cart: "c-1", location: "north", currency: "EUR", lines: [TEE, MUG], by: "till" };

function placed(): Order {
  const order = Order.create("o-1", { clientId: 7, clock: () => 1_000 });
  assert.equal(order.place(CHECKOUT), true);
  return order;
}

function sync(a: Y.Doc, b: Y.Doc): void {
  const toB = Y.encodeStateAsUpdate(a, Y.encodeStateVector(b));
  const toA = Y.encodeStateAsUpdate(b, Y.encodeStateVector(a));
  Y.applyUpdate(b, toB);
  Y.applyUpdate(a, toA);
}

const state = (order: Order): Uint8Array => Y.encodeStateAsUpdate(order.doc);

test("a placed order holds its priced lines and total", () => {
  const view = placed().view();
  assert.equal(view.placed, true);
  assert.deepEqual([view.cart, view.location, view.currency], ["c-1", "north", "EUR"]);
  assert.deepEqual(view.lines, [TEE, MUG]);
  assert.equal(view.total, 2598 + 850);
  assert.deepEqual([view.stage, view.payment, view.trail], ["placed", "pending", []]);
  assert.deepEqual([view.placedAt, view.placedBy, view.orderId], [1_000, "till", "o-1"]);
  assert.deepEqual(view.issues, []);
});

test("an order's line attributes default to an empty object", () => {
  const order = Order.create("o-1");
  const { attributes: _, ...bare } = TEE;
  order.place({ ...CHECKOUT, lines: [bare] });
  assert.deepEqual(order.view().lines[0]!.attributes, {});
});

test("placing twice writes nothing the second time", () => {
  const order = placed();
  const before = state(order);
  assert.equal(order.place({ cart: "c-2", location: "south", currency: "USD", lines: [MUG], by: "other" }), false);
  assert.deepEqual(state(order), before);
  assert.equal(order.view().cart, "c-1");
});

test("a bad checkout is refused with the engine's field names and writes nothing", () => {
  const line = (quantity: number, unitPrice: number, lineTotal: number, productId = "tee"): OrderLineInput =>
    ({ key: "k", productId, attributes: {}, quantity, unitPrice, lineTotal });
  const cases: [Partial<PlaceOptions>, string][] = [
    [{ currency: "eur" }, "currency"],
    [{ currency: "EURO" }, "currency"],
    [{ currency: "€UR" }, "currency"],
    [{ lines: [] }, "lines"],
    [{ lines: [line(2, 100, 201)] }, "lines[0].line_total"],
    [{ lines: [line(0, 100, 0)] }, "lines[0].quantity"],
    [{ lines: [line(1, -5, -5)] }, "lines[0].unit_price"],
    [{ lines: [line(1, 5, 5, "")] }, "lines[0].product"],
    [{ lines: [TEE, { ...TEE, attributes: { bad: Number.NaN } }] }, "lines[1].attributes"],
    [{ cart: "" }, "cart"],
    [{ by: "x".repeat(129) }, "by"],
    [{ at: -1 }, "at"],
  ];
  const empty = state(Order.create("o-1", { clientId: 7 }));
  for (const [changes, field] of cases) {
    const order = Order.create("o-1", { clientId: 7 });
    assert.throws(() => order.place({ ...CHECKOUT, ...changes }),
      (error: unknown) => error instanceof ValidationError && error.field === field, field);
    assert.equal(order.view().placed, false);
    assert.deepEqual(state(order), empty, field);
  }
});

test("an order moves forward skipping stages and keeps a trail", () => {
  const order = placed();
  assert.equal(order.advance("confirmed", { by: "kitchen", at: 2_000 }), true);
  assert.equal(order.advance("ready", { by: "kitchen", note: "on the counter", at: 3_000 }), true);
  assert.equal(order.advance("ready", { by: "kitchen" }), false); // already there: nothing written
  assert.equal(order.recordPayment("authorized", { by: "terminal", at: 3_500 }), true);
  assert.equal(order.recordPayment("paid", { by: "terminal", at: new Date(4_000) }), true);
  assert.equal(order.advance("completed", { by: "till", at: 5_000 }), true);
  assert.deepEqual(order.trail().map((t) => [t.kind, t.previous, t.to, t.by, t.at, t.note]), [
    ["stage", "placed", "confirmed", "kitchen", 2_000, null],
    ["stage", "confirmed", "ready", "kitchen", 3_000, "on the counter"],
    ["payment", "pending", "authorized", "terminal", 3_500, null],
    ["payment", "authorized", "paid", "terminal", 4_000, null],
    ["stage", "ready", "completed", "till", 5_000, null],
  ]);
  assert.ok(order.trail().every((t) => t.effective));
  assert.deepEqual([order.stage(), order.payment()], ["completed", "paid"]);
  assert.deepEqual(order.trail().map((t) => t.id), [0, 1, 2, 3, 4].map((n) => `7.${(n + 1).toString(16)}`),
    "ids are {client hex}.{clock hex}, after the placing item");
});

test("refused transitions are typed and write nothing", () => {
  const cases: [string[], "stage" | "payment", string][] = [
    [["confirmed"], "stage", "placed"],
    [["cancelled"], "stage", "completed"],
    [["cancelled"], "stage", "ready"],
    [["completed"], "stage", "cancelled"],
    [["payment:authorized"], "payment", "failed"],
    [["payment:authorized"], "payment", "refunded"],
    [["payment:paid"], "payment", "authorized"],
    [["payment:paid", "payment:refunded"], "payment", "paid"],
  ];
  for (const [path, kind, to] of cases) {
    const order = placed();
    for (const step of path) {
      if (step.startsWith("payment:")) order.recordPayment(step.slice(8) as Payment, { by: "terminal" });
      else order.advance(step as Stage, { by: "till" });
    }
    const before = state(order);
    const current = kind === "stage" ? order.stage() : order.payment();
    assert.throws(
      () => (kind === "stage" ? order.advance(to as Stage, { by: "till" }) : order.recordPayment(to as Payment, { by: "till" })),
      (error: unknown) => error instanceof TransitionRefused && error.kind === kind && error.current === current
        && error.requested === to && error.reason.length > 0,
      `${path.join(",")} then ${to}`,
    );
    assert.deepEqual(state(order), before);
  }
});

test("a failed payment can be retried", () => {
  const order = placed();
  order.recordPayment("failed", { by: "terminal", note: "card declined" });
  assert.equal(order.recordPayment("paid", { by: "terminal" }), true);
  assert.equal(order.payment(), "paid");
});

test("moving an order that was never placed is refused; bad moves are validation errors", () => {
  assert.throws(() => Order.create("o-2").advance("confirmed", { by: "till" }),
    (error: unknown) => error instanceof OrderNotPlaced && error.orderId === "o-2");
  assert.throws(() => placed().advance("shipped" as Stage, { by: "till" }),
    (error: unknown) => error instanceof ValidationError && error.field === "stage");
  assert.throws(() => placed().recordPayment("paid", { by: "till", note: "x".repeat(2000) }),
    (error: unknown) => error instanceof ValidationError && error.field === "note");
  assert.throws(() => placed().cancel({ by: "" }), (error: unknown) => error instanceof ValidationError && error.field === "by");
  assert.throws(() => new Order(new Y.Doc(), ""), (error: unknown) => error instanceof ValidationError && error.field === "order_id");
});

test("foreign content is reported and skipped, never trusted", () => {
  const order = placed();
  order.advance("confirmed", { by: "till", at: 2_000 });
  const trail = order.doc.getArray("trail");
  trail.push([{ id: "evil.1", k: "stage", to: "teleported", at: 1, by: "x" }]);
  trail.push([{ id: "evil.2", k: "refund-all", to: "paid", at: 1, by: "x" }]);
  trail.push(["not an object"]);
  trail.push([{ id: "late.1", k: "stage", to: "placed", at: 3_000, by: "old-till" }]);
  const view = order.view();
  assert.equal(view.stage, "confirmed");
  assert.deepEqual(view.issues.map((issue) => issue.path), ["trail[1]", "trail[2]", "trail[3]"]);
  const late = view.trail[view.trail.length - 1]!;
  assert.deepEqual([late.to, late.previous, late.effective], ["placed", "confirmed", false]);
});

test("a tampered checkout is reported, not believed", () => {
  const order = placed();
  const meta = order.doc.getMap("order");
  meta.set("placed", { ...(meta.get("placed") as object), total: 1 });
  let view = order.view();
  assert.equal(view.placed, false);
  assert.equal(view.total, 0);
  assert.deepEqual(view.issues.map((issue) => issue.path), ["order.placed"]);
  meta.set("placed", new Y.Map());
  view = order.view();
  assert.equal(view.placed, false);
  assert.match(view.issues[0]!.reason, /nested Map/);
});

test("a completion concurrent with a cancellation wins; the cancellation stays in the trail", () => {
  const counter = placed();
  const kitchen = new Order(new Y.Doc(), "o-1");
  sync(counter.doc, kitchen.doc);
  kitchen.advance("ready", { by: "kitchen" });
  kitchen.advance("completed", { by: "till" });
  counter.cancel({ by: "manager", note: "customer called" });
  sync(counter.doc, kitchen.doc);
  for (const order of [counter, kitchen]) {
    assert.equal(order.stage(), "completed");
    const cancellation = order.trail().find((t) => t.to === "cancelled")!;
    assert.deepEqual([cancellation.by, cancellation.note], ["manager", "customer called"]);
  }
  assert.deepEqual(counter.view(), kitchen.view());
  assert.throws(() => counter.cancel({ by: "manager" }),
    (error: unknown) => error instanceof TransitionRefused && error.current === "completed");
});

test("observe reports local and remote changes until unsubscribed", () => {
  const order = placed();
  const other = new Order(new Y.Doc(), "o-1");
  let calls = 0;
  const stop = other.observe(() => calls++);
  sync(order.doc, other.doc);
  assert.equal(calls, 1);
  other.advance("confirmed", { by: "till" });
  assert.equal(calls, 2);
  stop();
  other.advance("ready", { by: "till" });
  assert.equal(calls, 2);
});

// -- convergence against a reference model ---------------------------------------------------

/** The written rules as a table: the moves each value allows (docs/semantics.md, "Orders"). */
const STAGE_NEXT: Record<string, readonly string[]> = {
  placed: ["confirmed", "preparing", "ready", "cancelled", "completed"],
  confirmed: ["preparing", "ready", "cancelled", "completed"],
  preparing: ["ready", "cancelled", "completed"],
  ready: ["cancelled", "completed"],
  cancelled: [],
  completed: [],
};
const PAYMENT_NEXT: Record<string, readonly string[]> = {
  pending: ["failed", "authorized", "paid"],
  failed: ["authorized", "paid"],
  authorized: ["paid"],
  paid: ["refunded"],
  refunded: [],
};

const furthest = (names: readonly string[], targets: string[]): string =>
  targets.reduce((best, to) => (names.indexOf(to) > names.indexOf(best) ? to : best), names[0]!);

type Move = { op: "move"; replica: number; kind: "stage" | "payment"; to: number; by: number; at: number };
type Deliver = { op: "deliver"; to: number; picks: number[]; twice: boolean };

const move: fc.Arbitrary<Move> = fc.record({
  op: fc.constant("move" as const), replica: fc.nat(3), kind: fc.constantFrom("stage" as const, "payment" as const),
  to: fc.nat(5), by: fc.nat(2), at: fc.nat(10_000),
});
const deliver: fc.Arbitrary<Deliver> = fc.record({
  op: fc.constant("deliver" as const), to: fc.nat(3), picks: fc.array(fc.nat(60), { maxLength: 10 }), twice: fc.boolean(),
});

test("replicas moving an order offline converge to the reference model in any delivery order", () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 4 }), fc.array(fc.oneof({ weight: 3, arbitrary: move }, { weight: 2, arbitrary: deliver }), { maxLength: 40 }),
      (count, steps) => {
        const orders = Array.from({ length: count }, (_, index) => {
          const doc = new Y.Doc();
          doc.clientID = 100 + index;
          return new Order(doc, "o-1", { clock: () => 7_000 });
        });
        orders[0]!.place({ ...CHECKOUT, lines: [TEE] });
        for (const order of orders.slice(1)) sync(orders[0]!.doc, order.doc);
        const updates: Uint8Array[] = [];
        for (const order of orders) {
          order.doc.on("update", (update: Uint8Array, origin: unknown) => {
            if (origin !== "remote") updates.push(update);
          });
        }
        const accepted: { kind: string; to: string; by: string; at: number }[] = [];
        for (const step of steps) {
          if (step.op === "deliver") {
            const target = orders[step.to % count]!;
            for (const pick of step.picks) {
              const update = updates[pick % Math.max(updates.length, 1)];
              if (update === undefined) continue;
              Y.applyUpdate(target.doc, update, "remote");
              if (step.twice) Y.applyUpdate(target.doc, update, "remote");
            }
            continue;
          }
          const order = orders[step.replica % count]!;
          const names = step.kind === "stage" ? STAGES : PAYMENTS;
          const to = names[step.to % names.length]!;
          const by = ["till", "kitchen", "manager"][step.by]!;
          const view = order.view();
          const current = step.kind === "stage" ? view.stage : view.payment;
          const allowed = to === current || (step.kind === "stage" ? STAGE_NEXT : PAYMENT_NEXT)[current]!.includes(to);
          let wrote: boolean;
          try {
            wrote = step.kind === "stage"
              ? order.advance(to as Stage, { by, at: step.at })
              : order.recordPayment(to as Payment, { by, at: step.at });
          } catch (error) {
            assert.ok(error instanceof TransitionRefused, String(error));
            assert.ok(!allowed, `${step.kind} ${current} -> ${to} was refused`);
            assert.deepEqual([error.current, error.requested], [current, to]);
            assert.equal(order.trail().length, view.trail.length);
            continue;
          }
          assert.ok(allowed, `${step.kind} ${current} -> ${to} was allowed`);
          assert.equal(wrote, to !== current);
          if (wrote) {
            accepted.push({ kind: step.kind, to, by, at: step.at });
            const after = order.view();
            assert.equal(step.kind === "stage" ? after.stage : after.payment, to);
            assert.equal(after.trail.length, view.trail.length + 1);
          }
          // Before a full sync a replica may know less, never something nobody accepted.
          for (const other of orders) {
            assert.ok(other.stage() === "placed" || accepted.some((a) => a.kind === "stage" && a.to === other.stage()));
            assert.ok(other.payment() === "pending" || accepted.some((a) => a.kind === "payment" && a.to === other.payment()));
          }
        }
        for (const order of orders) for (const update of updates) Y.applyUpdate(order.doc, update, "remote");
        const stage = furthest(STAGES, accepted.filter((a) => a.kind === "stage").map((a) => a.to));
        const payment = furthest(PAYMENTS, accepted.filter((a) => a.kind === "payment").map((a) => a.to));
        const first = orders[0]!.view();
        const key = (t: { kind: string; to: string; by: string; at: number }): string => JSON.stringify([t.kind, t.to, t.by, t.at]);
        for (const order of orders) {
          const view = order.view();
          assert.deepEqual(view, first);
          assert.deepEqual([view.stage, view.payment], [stage, payment]);
          assert.deepEqual(view.issues, []);
          assert.deepEqual(view.lines, [TEE]);
          assert.equal(view.total, 2598);
          assert.deepEqual(view.trail.map(key).sort(), accepted.map(key).sort(), "the trail holds every accepted move once");
        }
      }),
    { numRuns: 200 },
  );
});
