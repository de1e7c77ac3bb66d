import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { canonicalJson, lineKey } from "../src/index.js";

test("canonical JSON sorts keys by UTF-16 code units and writes numbers as ECMAScript does", () => {
  assert.equal(canonicalJson({ b: 1e-7, a: [1e21, -0, 0.1 + 0.2], "😀": 1, "\ue000": 2 }), '{"a":[1e+21,0,0.30000000000000004],"b":1e-7,"😀":1,"\ue000":2}');
  assert.throws(() => canonicalJson(Number.NaN), TypeError);
  assert.throws(() => canonicalJson(undefined), TypeError);
});

test("canonical JSON parses back to the same value, whatever the key order", () => {
  fc.assert(fc.property(fc.jsonValue(), (value) => {
    const text = canonicalJson(value);
    assert.equal(canonicalJson(JSON.parse(text)), text);
    assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(value)));
  }));
});

test("a line key is 32 hex digits and ignores key order", () => {
  const key = lineKey("tee", { size: "M", color: "blue" });
  assert.match(key, /^[0-9a-f]{32}$/);
  assert.equal(lineKey("tee", { color: "blue", size: "M" }), key);
  assert.equal(lineKey("tee"), lineKey("tee", {}));
  assert.notEqual(lineKey("tee", { size: "L" }), key);
});
