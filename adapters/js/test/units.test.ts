import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";
import * as syncProtocol from "y-protocols/sync";
import * as Y from "yjs";
import { Backoff, closeAction } from "../src/index.js";
import { decodeMap, encodeMap, MsgpackError } from "../src/msgpack.js";
import { PendingEdits } from "../src/pending.js";
import { resetDoc } from "../src/reset.js";
import { HELLO, frameKind, readExtension } from "../src/wire.js";

describe("Backoff", () => {
  test("delays are full jitter under a doubling ceiling capped at maxMs, and reset starts over", () => {
    let r = 0.999;
    const backoff = new Backoff({ initialMs: 100, maxMs: 1_000, random: () => r });
    assert.deepEqual([1, 2, 3, 4, 5].map(() => backoff.next()), [99, 199, 399, 799, 999]);
    r = 0;
    assert.equal(backoff.next(), 0, "full jitter reaches zero");
    backoff.reset();
    r = 0.5;
    assert.equal(backoff.next(), 50);
  });

  test("refuses a ceiling below the first delay", () => {
    assert.throws(() => new Backoff({ initialMs: 10, maxMs: 5 }), RangeError);
  });
});

describe("PendingEdits", () => {
  test("an ack covers the edits of the acknowledged frames only, in the prefix the relay counts", () => {
    const edits = new PendingEdits<string>();
    edits.connected();
    const a = edits.add("a");
    edits.sentUpdate(a);
    const b = edits.add("b");
    edits.sentUpdate(b);
    edits.sentUpdate(null); // a frame without a local edit (an empty step 2)
    assert.equal(edits.count, 2);
    assert.deepEqual(edits.ack(1).map((e) => e.data), ["a"]);
    assert.deepEqual(edits.ack(1), [], "an ack never counts twice");
    assert.deepEqual(edits.ack(3).map((e) => e.data), ["b"]);
    assert.equal(edits.count, 0);
    assert.equal(edits.acknowledged, 2);
  });

  test("a step 2 carries every pending edit, and a new connection restarts the frame count", () => {
    const edits = new PendingEdits<string>();
    edits.connected();
    edits.sentUpdate(edits.add("sent, never acked"));
    edits.add("offline");
    edits.connected();
    edits.sentStep2();
    const later = edits.add("later");
    edits.sentUpdate(later);
    assert.deepEqual(edits.ack(1).map((e) => e.data), ["sent, never acked", "offline"]);
    assert.deepEqual(edits.list().map((e) => e.data), ["later"]);
    assert.equal(edits.forget().length, 1);
    assert.equal(edits.count, 0);
  });
});

describe("wire", () => {
  test("msgpack maps round-trip and the relay's forms decode", () => {
    const body = { op: "welcome", version: 1, acks: true, writes: 70_000, big: 2 ** 40, neg: -5, none: null };
    assert.deepEqual(decodeMap(encodeMap(body)), body);
    // {"op": "ack", "n": 300} as Python's msgpack packs it
    assert.deepEqual(decodeMap(Uint8Array.from([0x82, 0xa2, 0x6f, 0x70, 0xa3, 0x61, 0x63, 0x6b, 0xa1, 0x6e, 0xcd, 0x01, 0x2c])), { op: "ack", n: 300 });
    assert.throws(() => decodeMap(Uint8Array.from([0x81, 0xa1])), MsgpackError);
    assert.throws(() => decodeMap(Uint8Array.from([0x80, 0x00])), MsgpackError);
  });

  test("hello is a type-100 frame asking for acks; writes are step 2 and updates only", () => {
    const decoder = decoding.createDecoder(HELLO);
    assert.equal(decoding.readVarUint(decoder), 100);
    assert.deepEqual(readExtension(decoder), { op: "hello", acks: true });
    const doc = new Y.Doc();
    const frame = (write: (e: encoding.Encoder) => void): Uint8Array => {
      const e = encoding.createEncoder();
      encoding.writeVarUint(e, 0);
      write(e);
      return encoding.toUint8Array(e);
    };
    assert.equal(frameKind(frame((e) => syncProtocol.writeSyncStep1(e, doc))), "other");
    assert.equal(frameKind(frame((e) => syncProtocol.writeSyncStep2(e, doc))), "step2");
    assert.equal(frameKind(frame((e) => syncProtocol.writeUpdate(e, Y.encodeStateAsUpdate(doc)))), "update");
    assert.equal(frameKind(Uint8Array.from([1, 0])), "other");
    assert.equal(frameKind(HELLO), "other");
  });

  test("close codes: refusals roll back, 4405 reads on, transient codes retry", () => {
    assert.equal(closeAction(4405), "read-only");
    for (const code of [4400, 4401, 4403, 4404, 4409, 4413, 4422]) assert.equal(closeAction(code), "refused", String(code));
    assert.equal(closeAction(4419), "stop");
    for (const code of [1000, 1001, 1006, 1011, 4408, 4425, 4429, 4430, 4431, 4503, 4504, 4505, 4506]) assert.equal(closeAction(code), "retry", String(code));
  });
});

describe("resetDoc", () => {
  test("the document becomes the given state, keeps its top-level types and tells their observers", () => {
    const server = new Y.Doc();
    server.getMap("lines").set("tee", new Y.Map([["quantity", 2]]));
    server.getArray("log").push(["a"]);
    const local = new Y.Doc();
    Y.applyUpdate(local, Y.encodeStateAsUpdate(server));
    const lines = local.getMap("lines");
    const log = local.getArray("log");
    local.getMap("lines").set("mug", new Y.Map([["quantity", 1]]));
    (lines.get("tee") as Y.Map<number>).set("quantity", 9);
    log.push(["b"]);
    local.getMap("extra").set("x", 1);
    let told = 0;
    lines.observeDeep(() => (told += 1));
    local.getMap("extra").observe(() => (told += 1));

    resetDoc(local, Y.encodeStateAsUpdate(server), "reset");
    assert.equal(local.getMap("lines"), lines, "the same type object");
    assert.deepEqual(local.toJSON(), { lines: { tee: { quantity: 2 } }, log: ["a"], extra: {} });
    assert.equal(told, 2, "both maps' observers ran");

    // Later writes from the server resolve exactly as on the server.
    (server.getMap("lines").get("tee") as Y.Map<number>).set("quantity", 3);
    server.getArray("log").insert(0, ["z"]);
    Y.applyUpdate(local, Y.encodeStateAsUpdate(server, Y.encodeStateVector(local)));
    assert.deepEqual(local.toJSON(), { ...server.toJSON(), extra: {} });
    local.getArray("log").push(["c"]);
    assert.deepEqual(local.getArray("log").toJSON(), ["z", "a", "c"]);
  });
});
