/** The shared conformance vectors (tests/vectors/*.json), run against the JavaScript client. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { CaseRun, canonicalOutcome, type Json } from "../interop/vectors.js";

const VECTORS = new URL("../../../../tests/vectors/", import.meta.url);

function load(name: string): Json {
  return JSON.parse(readFileSync(new URL(name, VECTORS), "utf-8"));
}

const name = (case_: Json): string => case_.name ?? JSON.stringify(case_.value).slice(0, 40);

for (const case_ of load("canonical.json").cases) {
  test(`canonical vector: ${name(case_)}`, () => {
    assert.deepEqual(canonicalOutcome(case_), case_.expect);
  });
}

for (const kind of ["cart", "stock"] as const) {
  for (const case_ of load(`${kind}.json`).cases) {
    test(`${kind} vector: ${name(case_)}`, () => {
      const run = new CaseRun(kind, case_);
      case_.steps.forEach((step: Json, position: number) => {
        assert.deepEqual(run.step(step), step.expect ?? null, `step ${position}: ${step.op}`);
      });
      assert.deepEqual(run.views(), case_.expect);
    });
  }
}

for (const case_ of load("orders.json").cases) {
  test(`order vector: ${name(case_)}`, () => {
    const run = new CaseRun("order", case_);
    case_.steps.forEach((step: Json, position: number) => {
      assert.deepEqual(run.step(step), step.expect ?? null, `step ${position}: ${step.op}`);
    });
    assert.deepEqual(run.views(), case_.expect);
  });
}
