import { test } from "node:test";
import assert from "node:assert/strict";
import * as Y from "yjs";
import fc from "fast-check";
import { DuplicateCount, StockLedger, ValidationError } from "../src/index.js";

function sync(a: Y.Doc, b: Y.Doc): void {
  const toB = Y.encodeStateAsUpdate(a, Y.encodeStateVector(b));
  const toA = Y.encodeStateAsUpdate(b, Y.encodeStateVector(a));
  Y.applyUpdate(b, toB);
  Y.applyUpdate(a, toA);
}

/** The ids of the adjustments and counts a replica holds, read from its raw document. */
function held(doc: Y.Doc): Set<string> {
  const ids = new Set<string>();
  for (const root of ["adjustments", "counts"]) for (const body of doc.getArray<{ id: string }>(root).toJSON()) ids.add(body.id);
  return ids;
}

interface Written { id: string; past: Set<string>; delta?: number; counted?: number }

/**
 * The reference model of docs/semantics.md, from each entry's past (what its writer held), never
 * from the stored `seen`/`after`: the level through a head is its count plus the deltas it had not
 * seen; the level is the lowest; heads giving different levels disagree.
 */
function modelLevel(entries: readonly Written[]): { level: number; disagree: boolean; heads: string[] } {
  const adjustments = entries.filter((e) => e.delta !== undefined);
  const counts = entries.filter((e) => e.counted !== undefined);
  const heads = counts.filter((c) => !counts.some((other) => other.past.has(c.id)));
  if (!heads.length) return { level: adjustments.reduce((sum, a) => sum + a.delta!, 0), disagree: false, heads: [] };
  const through = heads.map((h) => h.counted! + adjustments.filter((a) => !h.past.has(a.id)).reduce((sum, a) => sum + a.delta!, 0));
  return { level: Math.min(...through), disagree: new Set(through).size > 1, heads: heads.map((h) => h.id).sort() };
}

test("fast-check: replicas counting and selling offline converge to the reference model", () => {
  const op = fc.record({ replica: fc.nat(2), count: fc.boolean(), n: fc.integer({ min: 0, max: 9 }), sync: fc.nat(5) });
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 25 }), (ops) => {
      const ledgers = [0, 1, 2].map((i) => StockLedger.create("north", { clientId: i + 1, clock: () => 1_000 }));
      const written: Written[] = [];
      ops.forEach((o, index) => {
        const ledger = ledgers[o.replica]!;
        const past = held(ledger.doc);
        if (o.count) {
          const mine = written.filter((w) => past.has(w.id));
          const complete = mine.every((w) => [...w.past].every((id) => past.has(id)));
          const count = ledger.count("tee", o.n, { actor: `clerk-${o.replica}` });
          if (complete) {
            const expected = modelLevel(mine);
            assert.equal(count.seen, expected.level);
            assert.deepEqual(count.after, expected.heads);
          }
          assert.equal(count.base, mine.reduce((sum, w) => sum + (w.delta ?? 0), 0));
          written.push({ id: count.id, past, counted: o.n });
        } else {
          const id = `adj-${index}`;
          const delta = o.n % 2 ? o.n : -1 - (o.n % 3);
          ledger.record("tee", delta, { id, reason: "r", actor: "till" });
          written.push({ id, past, delta });
        }
        if (o.sync < 3 && o.sync !== o.replica) sync(ledger.doc, ledgers[o.sync]!.doc);
      });
      for (const a of ledgers) for (const b of ledgers) if (a !== b) sync(a.doc, b.doc);
      const expected = modelLevel(written);
      for (const ledger of ledgers) {
        assert.equal(ledger.level("tee"), expected.level);
        assert.equal(ledger.conflicts().some((c) => c.kind === "count_mismatch"), expected.disagree);
        assert.deepEqual(ledger.view(), ledgers[0]!.view());
      }
    }),
    { numRuns: 200 },
  );
});

test("two clerks counting 10 and 12 at level 8 give one mismatch, not 14; merge settles it", () => {
  const north = StockLedger.create("north", { clientId: 1 });
  const south = StockLedger.create("north", { clientId: 2 });
  north.record("tee", 8, { id: "in", reason: "restock", actor: "w" });
  sync(north.doc, south.doc);
  north.count("tee", 10, { actor: "ann", id: "count-ann" });
  south.count("tee", 12, { actor: "bob", id: "count-bob" });
  sync(north.doc, south.doc);
  assert.equal(north.level("tee"), 10);
  const [mismatch] = north.conflicts();
  assert.deepEqual(south.conflicts(), [mismatch]);
  assert.equal(mismatch!.kind, "count_mismatch");
  assert.deepEqual(mismatch!.counts.map((c) => [c.id, c.counted, c.seen]), [["count-ann", 10, 8], ["count-bob", 12, 8]]);
  south.resolve(mismatch!.id, "compensate", { actor: "m" });
  sync(north.doc, south.doc);
  assert.equal(north.level("tee"), 8, "compensate trusts neither count");
  assert.deepEqual(north.count("tee", 10, { actor: "ann", id: "count-ann" }).seen, 8);
  assert.throws(() => north.count("tee", 11, { actor: "ann", id: "count-ann" }), DuplicateCount);
  assert.throws(() => north.count("tee", -1, { actor: "ann" }), (e: unknown) => e instanceof ValidationError && e.field === "counted");
});
