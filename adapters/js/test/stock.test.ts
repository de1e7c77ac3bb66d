import { test } from "node:test";
import assert from "node:assert/strict";
import * as Y from "yjs";
import { DuplicateAdjustment, DuplicateResolution, StockLedger, UnknownConflict, ValidationError } from "../src/index.js";

function sync(a: Y.Doc, b: Y.Doc): void {
  const toB = Y.encodeStateAsUpdate(a, Y.encodeStateVector(b));
  const toA = Y.encodeStateAsUpdate(b, Y.encodeStateVector(a));
  Y.applyUpdate(b, toB);
  Y.applyUpdate(a, toA);
}

test("an adjustment counts once; the same id with another body is refused", () => {
  const ledger = StockLedger.create("north", { clock: () => 5 });
  const first = ledger.record("tee", 3, { id: "r-1", reason: "restock", actor: "w" });
  assert.deepEqual(ledger.record("tee", 3, { id: "r-1", reason: "restock", actor: "w" }), first);
  assert.throws(() => ledger.record("tee", 4, { id: "r-1", reason: "restock", actor: "w" }),
    (error: unknown) => error instanceof DuplicateAdjustment && error.adjustmentId === "r-1");
  assert.equal(ledger.level("tee"), 3);
  assert.equal(ledger.doc.getArray("adjustments").length, 1);
});

test("bad input is refused with a ValidationError naming the field", () => {
  const ledger = StockLedger.create("north");
  const cases: [() => unknown, string][] = [
    [() => ledger.record("tee", 0, { reason: "r", actor: "a" }), "delta"],
    [() => ledger.record("tee", 1.5, { reason: "r", actor: "a" }), "delta"],
    [() => ledger.record("", 1, { reason: "r", actor: "a" }), "sku"],
    [() => ledger.record("tee", 1, { reason: "", actor: "a" }), "reason"],
    [() => ledger.record("tee", 1, { reason: "r", actor: "a", at: -1 }), "at"],
    [() => ledger.resolve("x", "guess" as "accept", { actor: "a" }), "strategy"],
    [() => ledger.resolve("x", "merge", { actor: "a" }), "level"],
    [() => ledger.resolve("x", "accept", { actor: "a", note: "n".repeat(1025) }), "note"],
  ];
  for (const [call, field] of cases) {
    assert.throws(call, (error: unknown) => error instanceof ValidationError && error.field === field, field);
  }
  assert.throws(() => ledger.resolve("negative_level:none", "accept", { actor: "a" }), UnknownConflict);
});

test("concurrent sales oversell; every replica derives the same conflict; a resolution converges", () => {
  const north = StockLedger.create("north", { clock: () => 1 });
  const south = new StockLedger(new Y.Doc(), "north", { clock: () => 2 });
  north.record("tee", 3, { id: "restock-1", reason: "restock", actor: "w" });
  sync(north.doc, south.doc);
  north.record("tee", -2, { id: "sale-1", reason: "sale", actor: "till-1" });
  south.record("tee", -2, { id: "sale-2", reason: "sale", actor: "till-2" });
  sync(north.doc, south.doc);
  assert.equal(north.level("tee"), -1);
  const [conflict] = north.conflicts();
  assert.deepEqual(south.conflicts(), [conflict]);
  assert.deepEqual(conflict!.adjustments, ["sale-1", "sale-2"]);
  // Two managers compensate offline: the level changes once, both decisions stay in the trail.
  north.resolve(conflict!.id, "compensate", { actor: "m-1" });
  south.resolve(conflict!.id, "compensate", { actor: "m-2" });
  sync(north.doc, south.doc);
  assert.equal(north.level("tee"), 0);
  assert.deepEqual(south.view(), north.view());
  assert.equal(north.view().resolutions.length, 2);
  assert.deepEqual(north.history("tee").map((entry) => entry.id).filter((id) => id.startsWith("resolve:")), [`resolve:${conflict!.id}`]);
});

test("a named resolution retried is the same decision; a different one under its id is refused", () => {
  const ledger = StockLedger.create("north");
  ledger.record("tee", -1, { id: "s", reason: "sale", actor: "t" });
  const [conflict] = ledger.conflicts();
  const decision = ledger.resolve(conflict!.id, "merge", { actor: "m", level: 4, resolutionId: "recount" });
  assert.deepEqual(ledger.resolve(conflict!.id, "merge", { actor: "m", level: 4, resolutionId: "recount" }), decision);
  assert.throws(() => ledger.resolve(conflict!.id, "accept", { actor: "m", resolutionId: "recount" }), DuplicateResolution);
  assert.equal(ledger.level("tee"), 4);
  assert.deepEqual(ledger.levels(), { tee: 4 });
});

test("observe reports ledger changes until unsubscribed", () => {
  const ledger = StockLedger.create("north");
  let calls = 0;
  const stop = ledger.observe(() => calls++);
  ledger.record("tee", 1, { reason: "r", actor: "a" });
  stop();
  ledger.record("tee", 1, { reason: "r", actor: "a" });
  assert.equal(calls, 1);
  assert.equal(ledger.level("tee"), 2, "generated ids are unique");
});
