import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import * as Y from "yjs";
import { SynclineConnection, type ConnectionOptions, type RollbackEvent, type StatusEvent, type SyncStatus } from "../src/index.js";
import { Relay } from "./relay.js";
import { next, within } from "./deadline.js";

const TENANT = "jsconn";
let relay: Relay;
let token: string;
let readOnlyToken: string;
let docCounter = 0;
const open: SynclineConnection[] = [];

function newDocName(): string {
  docCounter += 1;
  return `${TENANT}/cart/c-${process.pid}-${docCounter}`;
}

function connection(document: string, options: Partial<ConnectionOptions> = {}): SynclineConnection {
  const conn = new SynclineConnection({
    url: relay.wsUrl,
    document,
    token,
    WebSocketPolyfill: WebSocket,
    persistence: false,
    tabs: false,
    backoff: { initialMs: 20, maxMs: 200 },
    ...options,
  });
  open.push(conn);
  return conn;
}

/** What the relay holds: the map `t` as a fresh peer receives it. */
async function relayState(document: string): Promise<Record<string, unknown>> {
  const reader = connection(document);
  await within(reader.whenSynced(), 10_000, "a reader to sync");
  const state = reader.doc.getMap("t").toJSON();
  reader.destroy();
  return state;
}

before(async () => {
  relay = await Relay.start();
  token = await relay.token({ tenant: TENANT, docs: [`${TENANT}/*`] });
  readOnlyToken = await relay.token({ tenant: TENANT, docs: [`${TENANT}/*`], readOnly: true });
});

after(async () => {
  for (const conn of open) conn.destroy();
  await relay.close();
});

describe("SynclineConnection against a real relay", () => {
  test("local edits are pending until the relay acknowledges them, then the status is synced", async () => {
    const name = newDocName();
    const conn = connection(name);
    const statuses: SyncStatus[] = [conn.status];
    let mostPending = 0;
    conn.on("status", ({ status, pending }) => {
      if (statuses.at(-1) !== status) statuses.push(status);
      mostPending = Math.max(mostPending, pending);
    });
    await within(conn.whenSynced(), 10_000, "the first sync");
    const map = conn.doc.getMap("t");
    map.set("a", 1);
    map.set("b", 2);
    conn.doc.transact(() => {
      map.set("c", 3);
      map.delete("a");
    });
    assert.equal(conn.pending, 3, "three transactions, none acknowledged yet");
    await within(conn.whenAcknowledged(), 10_000, "the acknowledgements");
    assert.equal(conn.pending, 0);
    assert.equal(conn.acknowledged, 3);
    assert.equal(mostPending, 3);
    await within(conn.whenSynced(), 5_000, "synced after the acks");
    assert.deepEqual(statuses.slice(0, 3), ["connecting", "syncing", "synced"]);
    assert.equal(statuses.at(-1), "synced");
    assert.ok(statuses.includes("syncing"));
    assert.deepEqual(await relayState(name), { b: 2, c: 3 });
  });

  test("edits made while the relay is down are delivered and acknowledged after it restarts", async () => {
    const name = newDocName();
    const conn = connection(name);
    await within(conn.whenSynced(), 10_000, "the first sync");
    conn.doc.getMap("t").set("before", 1);
    await within(conn.whenAcknowledged(), 10_000, "the first ack");

    const down = next<StatusEvent>((l) => conn.on("status", l), (e) => e.status === "offline" || e.status === "connecting", 10_000, "the connection to drop");
    await relay.kill();
    await down;
    conn.doc.getMap("t").set("offline", 2);
    conn.doc.getMap("t").set("offline2", 3);
    assert.equal(conn.pending, 2);
    assert.notEqual(conn.status, "synced");

    await relay.restart();
    await within(conn.whenAcknowledged(), 15_000, "the offline edits to be acknowledged");
    await within(conn.whenSynced(), 15_000, "synced again");
    assert.equal(conn.acknowledged, 3);
    await relay.kill(); // acknowledged means durable: it survives SIGKILL
    await relay.restart();
    assert.deepEqual(await relayState(name), { before: 1, offline: 2, offline2: 3 });
  });

  test("pause stops the exchange both ways and resume delivers what waited", async () => {
    const name = newDocName();
    const paused = connection(name);
    const other = connection(name);
    await within(Promise.all([paused.whenSynced(), other.whenSynced()]), 10_000, "both to sync");
    paused.pause();
    assert.equal(paused.status, "offline");
    paused.doc.getMap("t").set("mine", 1);
    other.doc.getMap("t").set("theirs", 2);
    await within(other.whenAcknowledged(), 10_000, "the other's ack");
    assert.equal(paused.pending, 1);
    assert.equal(paused.status, "offline");
    assert.equal(paused.doc.getMap("t").get("theirs"), undefined, "nothing arrives while paused");

    const arrived = new Promise<void>((resolve) => {
      const map = paused.doc.getMap("t");
      const check = (): void => {
        if (map.get("theirs") === 2) resolve();
      };
      map.observe(check);
    });
    paused.resume();
    await within(paused.whenAcknowledged(), 10_000, "the paused edit's ack");
    await within(arrived, 10_000, "the other's edit to arrive");
    assert.deepEqual(await relayState(name), { mine: 1, theirs: 2 });
  });

  test("clearPending undoes the unacknowledged edits and the relay ends with the acknowledged state", async () => {
    const name = newDocName();
    const conn = connection(name);
    await within(conn.whenSynced(), 10_000, "the first sync");
    const map = conn.doc.getMap("t");
    map.set("kept", 1);
    await within(conn.whenAcknowledged(), 10_000, "the first ack");
    conn.pause();
    map.set("kept", 5);
    map.set("dropped", 2);
    assert.equal(conn.pending, 2);
    const rollback = next<RollbackEvent>((l) => conn.on("rollback", l), () => true, 1_000, "the rollback event");
    conn.clearPending();
    assert.deepEqual(await rollback, { reason: "cleared", code: null, undone: 2 });
    assert.deepEqual(map.toJSON(), { kept: 1 });
    conn.resume();
    await within(conn.whenAcknowledged(), 10_000, "the undo to be acknowledged");
    assert.deepEqual(await relayState(name), { kept: 1 });
  });

  test("a read-only token's edit is rolled back (4405) and the connection keeps reading", async () => {
    const name = newDocName();
    const writer = connection(name);
    await within(writer.whenSynced(), 10_000, "the writer to sync");
    writer.doc.getMap("t").set("price", 10);
    await within(writer.whenAcknowledged(), 10_000, "the writer's ack");

    const reader = connection(name, { token: readOnlyToken });
    await within(reader.whenSynced(), 10_000, "the reader to sync");
    const map = reader.doc.getMap("t");
    assert.equal(map.get("price"), 10);
    const rollback = next<RollbackEvent>((l) => reader.on("rollback", l), () => true, 10_000, "the rollback event");
    map.set("price", 0);
    map.set("extra", 1);
    assert.equal(map.get("price"), 0, "the edit applies locally first");
    assert.deepEqual(await rollback, { reason: "read-only", code: 4405, undone: 2 });
    assert.deepEqual(map.toJSON(), { price: 10 }, "the document is the relay's again");
    assert.equal(reader.readOnly, true);
    assert.equal(reader.pending, 0);

    await within(reader.whenSynced(), 10_000, "the reader to reconnect");
    const seen = new Promise<void>((resolve) => map.observe(() => map.get("price") === 12 && resolve()));
    writer.doc.getMap("t").set("price", 12);
    await within(seen, 10_000, "the writer's later edit to reach the read-only reader");

    const again = next<RollbackEvent>((l) => reader.on("rollback", l), () => true, 5_000, "the second rollback");
    map.set("price", 1);
    assert.deepEqual(await again, { reason: "read-only", code: 4405, undone: 1 });
    assert.equal(map.get("price"), 12);
    assert.equal(reader.status, "synced", "a read-only edit no longer costs the connection");
    assert.deepEqual(await relayState(name), { price: 12 });
  });

  test("a refused document (4403) rolls back the offline edits, reports an error and stays offline", async () => {
    const name = `othertenant/cart/c-${process.pid}`;
    const conn = connection(name, { connect: false });
    conn.doc.getMap("t").set("x", 1);
    assert.equal(conn.pending, 1);
    const rollback = next<RollbackEvent>((l) => conn.on("rollback", l), () => true, 10_000, "the rollback event");
    const error = next((l) => conn.on("error", l), () => true, 10_000, "the error event");
    conn.resume();
    assert.deepEqual(await rollback, { reason: "forbidden", code: 4403, undone: 1 });
    assert.deepEqual(await error, { reason: "forbidden", code: 4403 });
    assert.deepEqual(conn.doc.getMap("t").toJSON(), {});
    assert.equal(conn.status, "offline");
    assert.equal(conn.pending, 0, "nothing is left to send with this token");
  });
});
