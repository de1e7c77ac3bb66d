/**
 * Guest merges count every guest operation once, and checked-out carts: the JavaScript mirror of
 * tests/engine/test_convergence_guest_merge.py and the engine's checkout tests.
 *
 * Reference model: the user's quantity of a line = the user's own adds on it + the guest's
 * quantity of that line in G*, where G* is the guest document holding exactly the union of what
 * every merging replica held of the guest cart when it merged.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as Y from "yjs";
import fc from "fast-check";
import { Cart, CartClosed, lineKey, UnknownLine } from "../src/index.js";

const PRODUCTS = ["tee", "mug", "cap"] as const;

type Step =
  | { kind: "guestAdd"; replica: number; product: number; quantity: number }
  | { kind: "guestSet"; replica: number; product: number; quantity: number }
  | { kind: "userAdd"; replica: number; product: number; quantity: number }
  | { kind: "merge"; replica: number }
  | { kind: "deliver"; pick: number; twice: boolean };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant("guestAdd" as const), replica: fc.nat(2), product: fc.nat(2), quantity: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant("guestSet" as const), replica: fc.nat(2), product: fc.nat(2), quantity: fc.integer({ min: 0, max: 4 }) }),
  fc.record({ kind: fc.constant("userAdd" as const), replica: fc.nat(2), product: fc.nat(2), quantity: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant("merge" as const), replica: fc.nat(2) }),
  fc.record({ kind: fc.constant("deliver" as const), pick: fc.nat(1000), twice: fc.boolean() }),
);

interface Replica {
  readonly user: Cart;
  readonly guest: Cart;
}

test("guest merges on any replicas, of any part of the guest's history, count each guest operation once", () => {
  fc.assert(
    fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
      const replicas: Replica[] = [0, 1, 2].map((i) => {
        const user = new Cart(new Y.Doc(), "user-1", { clock: () => 7 });
        const guest = new Cart(new Y.Doc(), "guest-1", { clock: () => 7 });
        user.doc.clientID = 100 + i;
        guest.doc.clientID = 200 + i;
        return { user, guest };
      });
      // In flight: [receiver, which doc, update]; delivered in a drawn order, some twice.
      const inFlight: [number, "user" | "guest", Uint8Array][] = [];
      replicas.forEach((replica, index) => {
        for (const which of ["user", "guest"] as const) {
          replica[which].doc.on("update", (update: Uint8Array, origin: unknown) => {
            if (origin === "remote") return;
            for (let other = 0; other < 3; other += 1) if (other !== index) inFlight.push([other, which, update]);
          });
        }
      });
      const mergedStates: Uint8Array[] = [];
      const own = new Map<string, number>();
      for (const s of steps) {
        if (s.kind === "deliver") {
          if (inFlight.length === 0) continue;
          const index = s.pick % inFlight.length;
          const [receiver, which, update] = inFlight[index]!;
          if (!s.twice) inFlight.splice(index, 1);
          Y.applyUpdate(replicas[receiver]![which].doc, update, "remote");
          continue;
        }
        const { user, guest } = replicas[s.replica]!;
        const closed = guest.status().state === "merged";
        if (s.kind === "merge") {
          mergedStates.push(Y.encodeStateAsUpdate(guest.doc));
          assert.equal(guest.mergeInto(user).replayed, closed);
          const before = [Y.encodeStateVector(guest.doc), Y.encodeStateVector(user.doc)];
          assert.equal(guest.mergeInto(user).replayed, true);
          assert.deepEqual([Y.encodeStateVector(guest.doc), Y.encodeStateVector(user.doc)], before, "a replay wrote");
        } else if (s.kind === "userAdd") {
          const key = user.addItem(PRODUCTS[s.product]!, s.quantity);
          own.set(key, (own.get(key) ?? 0) + s.quantity);
        } else if (s.kind === "guestAdd") {
          if (closed) assert.throws(() => guest.addItem(PRODUCTS[s.product]!, s.quantity), CartClosed);
          else guest.addItem(PRODUCTS[s.product]!, s.quantity);
        } else {
          const key = lineKey(PRODUCTS[s.product]!);
          if (closed) assert.throws(() => guest.setQuantity(key, s.quantity), CartClosed);
          else if (!guest.doc.getMap("lines").has(key)) assert.throws(() => guest.setQuantity(key, s.quantity), UnknownLine);
          else guest.setQuantity(key, s.quantity);
        }
      }
      // Everyone catches up.
      for (const which of ["user", "guest"] as const) {
        const all = Y.mergeUpdates(replicas.map((replica) => Y.encodeStateAsUpdate(replica[which].doc)));
        for (const replica of replicas) Y.applyUpdate(replica[which].doc, all, "remote");
      }
      const union = new Y.Doc();
      for (const state of mergedStates) Y.applyUpdate(union, state);
      const guestPart = new Map(new Cart(union, "guest-1").lines().map((line) => [line.key, line.quantity]));
      const expected: Record<string, number> = {};
      for (const key of new Set([...own.keys(), ...guestPart.keys()])) {
        const n = (own.get(key) ?? 0) + (guestPart.get(key) ?? 0);
        if (n > 0) expected[key] = n;
      }
      const views = replicas.map((replica) => replica.user.view());
      for (const view of views) {
        assert.deepEqual(Object.fromEntries(view.lines.map((line) => [line.key, line.quantity])), expected);
        assert.deepEqual(view.issues, []);
        assert.deepEqual(view, views[0]);
      }
    }),
    { numRuns: 150 },
  );
});

test("two devices that each merged one of two concurrent guest +1s sum to 2, no replay needed", () => {
  const [guestA, guestB] = [Cart.create("g-1"), Cart.create("g-1")];
  const [userA, userB] = [Cart.create("c-1"), Cart.create("c-1")];
  const key = guestA.addItem("tee", 1);
  guestB.addItem("tee", 1);
  guestA.mergeInto(userA);
  guestB.mergeInto(userB);
  Y.applyUpdate(userA.doc, Y.encodeStateAsUpdate(userB.doc));
  Y.applyUpdate(userB.doc, Y.encodeStateAsUpdate(userA.doc));
  assert.equal(userA.quantity(key), 2);
  assert.equal(userB.quantity(key), 2);
});

test("a checked-out cart refuses edits and merges; checking out again into the same order changes nothing", () => {
  const cart = Cart.create("c-1", { clock: () => 5 });
  const key = cart.addItem("tee", 2);
  const status = cart.checkOut("o-1", { at: 1_700_000_000_000 });
  assert.deepEqual(status, { state: "checked_out", mergedInto: null, mergedAt: null, order: "o-1", checkedOutAt: 1_700_000_000_000 });
  assert.equal(cart.quantity(key), 2);
  const before = Y.encodeStateAsUpdate(cart.doc);
  assert.deepEqual(cart.checkOut("o-1"), status);
  assert.deepEqual(Y.encodeStateAsUpdate(cart.doc), before, "a repeated checkout wrote");
  const closedInto = (order: string) => (error: unknown) =>
    error instanceof CartClosed && error.state === "checked_out" && error.target === order && error.order === order
    && error.mergedInto === null && /checked out into order "o-1"/.test(error.message);
  assert.throws(() => cart.addItem("tee", 1), closedInto("o-1"));
  assert.throws(() => cart.setQuantity(key, 0), closedInto("o-1"));
  assert.throws(() => cart.clear(), closedInto("o-1"));
  assert.throws(() => cart.checkOut("o-2"), closedInto("o-1"));
  assert.throws(() => cart.mergeInto(Cart.create("c-2")), closedInto("o-1"));
  assert.throws(() => Cart.create("g-1").mergeInto(cart), closedInto("o-1"));
  assert.deepEqual(Y.encodeStateAsUpdate(cart.doc), before, "a refused edit wrote");
});

test("checking out a merged cart is refused; the default time is the clock's", () => {
  const guest = Cart.create("g-1");
  guest.addItem("mug", 1);
  guest.mergeInto(Cart.create("c-1"));
  assert.throws(() => guest.checkOut("o-1"), (error: unknown) =>
    error instanceof CartClosed && error.state === "merged" && error.mergedInto === "c-1" && error.order === null);
  const cart = Cart.create("c-2", { clock: () => 99 });
  assert.equal(cart.checkOut("o-9").checkedOutAt, 99);
});
