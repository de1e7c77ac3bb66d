import { test } from "node:test";
import assert from "node:assert/strict";
import { VERSION } from "../src/index.js";

test("the package reports its version", () => {
  assert.match(VERSION, /^\d+\.\d+\.\d+$/);
});
