import { test } from "node:test";
import assert from "node:assert/strict";
import * as Y from "yjs";
import fc from "fast-check";
import { AlreadyMerged, Cart, CartClosed, UnknownLine, ValidationError, lineKey } from "../src/index.js";

function sync(a: Y.Doc, b: Y.Doc): void {
  const toB = Y.encodeStateAsUpdate(a, Y.encodeStateVector(b));
  const toA = Y.encodeStateAsUpdate(b, Y.encodeStateVector(a));
  Y.applyUpdate(b, toB);
  Y.applyUpdate(a, toA);
}

test("bad input is refused with a ValidationError naming the field, and nothing is written", () => {
  const cart = Cart.create("c-1");
  const cases: [() => unknown, string][] = [
    [() => cart.addItem("tee", 0), "quantity"],
    [() => cart.addItem("tee", 2.5), "quantity"],
    [() => cart.addItem("tee", 100_001), "quantity"],
    [() => cart.addItem("tee", "2" as unknown as number), "quantity"],
    [() => cart.addItem("", 1), "product_id"],
    [() => cart.addItem(" tee", 1), "product_id"],
    [() => cart.addItem("tee", 1, { w: Number.NaN }), "attributes"],
    [() => cart.addItem("tee", 1, { w: 1e21 }), "attributes"],
    [() => cart.addItem("tee", 1, [] as unknown as Record<string, never>), "attributes"],
    [() => cart.addItem("tee", 1, { d: new Date() } as unknown as Record<string, never>), "attributes"],
    [() => cart.setQuantity("", 1), "line"],
    [() => new Cart(new Y.Doc(), ""), "cart_id"],
  ];
  for (const [call, field] of cases) {
    assert.throws(call, (error: unknown) => error instanceof ValidationError && error.field === field, field);
  }
  assert.equal(cart.doc.getArray("ops").length, 0);
  assert.equal(cart.doc.getMap("lines").size, 0);
  assert.throws(() => cart.setQuantity(lineKey("tee"), 1), UnknownLine);
});

test("the same product and attributes in any key order is one line; quantities add", () => {
  const cart = Cart.create("c-1");
  const a = cart.addItem("tee", 2, { size: "M", color: { name: "blue", hex: "#00f" } });
  const b = cart.addItem("tee", 3, { color: { hex: "#00f", name: "blue" }, size: "M" });
  const c = cart.addItem("tee", 1, { size: "L" });
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.equal(cart.quantity(a), 5);
  assert.equal(cart.view().totalQuantity, 6);
});

test("every edit is one transaction", () => {
  const cart = Cart.create("c-1");
  let transactions = 0;
  cart.doc.on("afterTransaction", () => transactions++);
  const key = cart.addItem("tee", 2);
  cart.setQuantity(key, 5);
  cart.clear();
  assert.equal(transactions, 3);
});

test("concurrent adds converge as counters, in any delivery order, however often delivered", () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ replica: fc.nat(2), quantity: fc.integer({ min: 1, max: 9 }) }), { minLength: 1, maxLength: 12 }),
      fc.array(fc.nat(100), { maxLength: 30 }),
      (adds, order) => {
        const replicas = [0, 1, 2].map(() => new Cart(new Y.Doc(), "c-1"));
        const updates: Uint8Array[] = [];
        replicas.forEach((cart) => cart.doc.on("update", (update: Uint8Array, origin: unknown) => {
          if (origin !== "remote") updates.push(update);
        }));
        let key = "";
        for (const { replica, quantity } of adds) key = replicas[replica]!.addItem("tee", quantity, { size: "M" });
        for (const pick of order) Y.applyUpdate(replicas[pick % 3]!.doc, updates[pick % updates.length]!, "remote");
        for (const cart of replicas) for (const update of updates) Y.applyUpdate(cart.doc, update, "remote");
        const total = adds.reduce((sum, add) => sum + add.quantity, 0);
        for (const cart of replicas) assert.equal(cart.quantity(key), total);
      },
    ),
    { numRuns: 50 },
  );
});

test("a remove acts on what the replica observed: a concurrent add survives it", () => {
  const till = Cart.create("c-1");
  const phone = new Cart(new Y.Doc(), "c-1");
  const key = till.addItem("tee", 5);
  sync(till.doc, phone.doc);
  till.removeLine(key);
  phone.addItem("tee", 1);
  sync(till.doc, phone.doc);
  assert.equal(till.quantity(key), 1);
  assert.equal(phone.quantity(key), 1);
  till.setQuantity(key, 2);
  phone.setQuantity(key, 3);
  sync(till.doc, phone.doc);
  assert.equal(till.quantity(key), 3); // concurrent sets: the larger, never the sum
});

test("a merge sums lines, closes the guest cart, and a replay changes nothing", () => {
  const user = Cart.create("c-1");
  const guest = Cart.create("g-1", { clock: () => 42 });
  const mug = user.addItem("mug", 1);
  guest.addItem("mug", 2);
  const first = guest.mergeInto(user);
  assert.equal(first.replayed, false);
  assert.equal(user.quantity(mug), 3);
  assert.deepEqual(guest.status(), { state: "merged", mergedInto: "c-1", mergedAt: 42, order: null, checkedOutAt: null });
  const before = Y.encodeStateAsUpdate(user.doc);
  const again = guest.mergeInto(user);
  assert.equal(again.replayed, true);
  assert.deepEqual(Y.encodeStateAsUpdate(user.doc), before, "a replay wrote something");
  assert.equal(user.quantity(mug), 3);
  // The contribution names the guest cart by its id, as the REST merge writes it.
  assert.deepEqual(user.doc.getArray("ops").toJSON().filter((op: { k: string }) => op.k === "merge").map((op: { g: string }) => op.g), ["g-1"]);
});

test("two replicas performing the same merge offline count the guest once", () => {
  const guest = Cart.create("g-1");
  guest.addItem("mug", 2);
  const guestCopy = new Cart(new Y.Doc(), "g-1");
  sync(guest.doc, guestCopy.doc);
  const user = Cart.create("c-1");
  const userCopy = new Cart(new Y.Doc(), "c-1");
  guest.mergeInto(user);
  guestCopy.mergeInto(userCopy);
  sync(user.doc, userCopy.doc);
  assert.equal(user.view().totalQuantity, 2);
  assert.equal(userCopy.view().totalQuantity, 2);
});

test("a merged cart refuses edits and other targets", () => {
  const guest = Cart.create("g-1");
  const key = guest.addItem("mug", 1);
  guest.mergeInto(Cart.create("c-1"));
  assert.throws(() => guest.addItem("mug", 1), (error: unknown) => error instanceof CartClosed && error.mergedInto === "c-1");
  assert.throws(() => guest.setQuantity(key, 0), CartClosed);
  assert.throws(() => guest.clear(), CartClosed);
  assert.throws(() => guest.mergeInto(Cart.create("c-2")), (error: unknown) =>
    error instanceof AlreadyMerged && error.mergedInto === "c-1" && error.requested === "c-2");
  assert.throws(() => guest.mergeInto(Cart.create("g-1")), ValidationError);
});

test("foreign entries are reported as issues, never thrown", () => {
  const cart = Cart.create("c-1");
  const key = cart.addItem("mug", 3);
  cart.doc.getArray("ops").push([{ id: "x", l: key, k: "add", n: "999" }, 7]);
  const nested = new Y.Map();
  cart.doc.getMap("lines").set("zzz", nested);
  cart.doc.getMap("cart").set("status", "frozen");
  const view = cart.view();
  assert.equal(view.lines[0]!.quantity, 3);
  assert.deepEqual(view.issues.map((issue) => issue.path), ["ops[1]", "ops[2]", "lines[zzz]", "cart.status"]);
  assert.match(view.issues[2]!.reason, /a nested Map where plain JSON belongs/);
});

test("observe calls back on local and remote changes until unsubscribed", () => {
  const a = Cart.create("c-1");
  const b = new Cart(new Y.Doc(), "c-1");
  let calls = 0;
  const stop = b.observe(() => calls++);
  a.addItem("tee", 1);
  sync(a.doc, b.doc);
  assert.equal(calls, 1);
  b.addItem("tee", 1);
  assert.equal(calls, 2);
  stop();
  b.addItem("tee", 1);
  assert.equal(calls, 2);
});
