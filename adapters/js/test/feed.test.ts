import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import * as Y from "yjs";
import {
  Cart, ChangeFeed, eventsNamed, StockLedger, SynclineConnection, type ChangeFeedOptions, type FeedEvent, type FeedHealth,
} from "../src/index.js";
import { Relay } from "./relay.js";
import { next, within } from "./deadline.js";

const TENANT = "jsfeed";
let relay: Relay;
let token: string;
const feeds: ChangeFeed[] = [];
const conns = new Map<string, SynclineConnection>();

before(async () => {
  relay = await Relay.start();
  token = await relay.token({ tenant: TENANT, docs: [`${TENANT}/*`] });
});

after(async () => {
  for (const feed of feeds) feed.close();
  for (const conn of conns.values()) conn.destroy();
  await relay.close();
});

function feed(options: Partial<ChangeFeedOptions> = {}): ChangeFeed {
  const f = new ChangeFeed({ url: `${relay.httpUrl}/v1/tenants/${TENANT}/events`, token, ...options });
  feeds.push(f);
  return f;
}

function opened(f: ChangeFeed): Promise<unknown> {
  if (f.health().status === "open") return Promise.resolve();
  return next<FeedHealth>((l) => f.on("status", l), (h) => h.status === "open", 10_000, "the feed to open");
}

/** Wait until `f`'s first stream is open and its `connected` event, which comes right after the
 * headers, has arrived (with the stream's position and heartbeat period). */
async function streaming(f: ChangeFeed): Promise<void> {
  await within(opened(f), 10_000, "the feed to open");
  if (f.health().lastHeartbeatAt === null) {
    await next<FeedHealth>((l) => f.on("status", l), (h) => h.lastHeartbeatAt !== null, 10_000, "`connected`");
  }
}

/** Wait until `f` has received `count` events matching `accept` (counting those already in its history). */
function received(f: ChangeFeed, count: number, accept: (e: FeedEvent) => boolean = () => true): Promise<FeedEvent[]> {
  const got = f.history().filter(accept);
  if (got.length >= count) return Promise.resolve(got);
  return new Promise<FeedEvent[]>((resolve) => {
    const off = f.on("event", (e) => {
      if (!accept(e)) return;
      got.push(e);
      if (got.length >= count) {
        off();
        resolve(got);
      }
    });
  });
}

/** One acknowledged write to `document` (one event on the feed). */
async function write(document: string, key: string): Promise<void> {
  await edit(document, (doc) => doc.getMap("t").set(key, Date.now()));
}

/** One acknowledged edit of `document` by `change` (one stored update). */
async function edit(document: string, change: (doc: Y.Doc) => void): Promise<void> {
  let conn = conns.get(document);
  if (conn === undefined) {
    conn = new SynclineConnection({
      url: relay.wsUrl, document, token, WebSocketPolyfill: WebSocket, persistence: false, tabs: false,
      backoff: { initialMs: 20, maxMs: 200 },
    });
    conns.set(document, conn);
  }
  change(conn.doc);
  await within(conn.whenAcknowledged(), 15_000, `the write to ${document}`);
}

describe("ChangeFeed against a real relay", () => {
  test("delivers change events and filters them by type and document on the relay", async () => {
    const all = feed();
    const stock = feed({ types: ["stock.changed"] });
    const one = feed({ documents: [`${TENANT}/cart/a`] });
    await within(Promise.all([opened(all), opened(stock), opened(one)]), 10_000, "the feeds to open");
    await write(`${TENANT}/cart/b`, "1");
    await write(`${TENANT}/stock/x`, "1");
    await write(`${TENANT}/cart/a`, "1");
    await write(`${TENANT}/stock/x`, "2");

    const everything = await within(received(all, 4), 10_000, "all four events");
    assert.deepEqual(everything.map((e) => [e.type, e.type === "reset" ? "" : e.data.doc]), [
      ["cart.changed", `${TENANT}/cart/b`],
      ["stock.changed", `${TENANT}/stock/x`],
      ["cart.changed", `${TENANT}/cart/a`],
      ["stock.changed", `${TENANT}/stock/x`],
    ]);
    const first = everything[0];
    assert.ok(first !== undefined && first.type === "cart.changed");
    assert.equal(first.data.action, "sync");
    assert.match(first.id, /^[0-9a-f]{16}-\d+$/);

    // The relay sends in seq order, so once the last wanted event is in, the unwanted ones were filtered.
    const stocks = await within(received(stock, 2), 10_000, "the stock events");
    assert.deepEqual(stock.history().map((e) => e.type), ["stock.changed", "stock.changed"]);
    assert.deepEqual(stocks.map((e) => e.id), everything.filter((e) => e.type === "stock.changed").map((e) => e.id));
    await within(received(one, 1), 10_000, "the cart/a event");
    assert.deepEqual(one.history().map((e) => (e.type === "reset" ? "" : e.data.doc)), [`${TENANT}/cart/a`]);
    assert.equal(all.health().eventsSeen, 4);
    assert.equal(all.health().lastEventId, everything[3]?.id);
  });

  test("delivers typed events with previous and new values, one id per event of a change", async () => {
    const stockDoc = `${TENANT}/stock/typed`;
    const cartDoc = `${TENANT}/cart/typed`;
    const levels = feed({ types: ["stock.level_changed", "stock.conflict_opened"], documents: [stockDoc] });
    const carts = feed({ types: ["cart.*"], documents: [cartDoc] });
    const byOrder = feed({ orders: ["o-1"] });
    await within(Promise.all([opened(levels), opened(carts), opened(byOrder)]), 10_000, "the feeds to open");
    await streaming(levels);
    assert.notEqual(levels.health().lastHeartbeatAt, null, "the connected event counts as a sign of life");
    await edit(stockDoc, (doc) => new StockLedger(doc, "typed").record("tee", 2, { id: "in", reason: "restock", actor: "js" }));
    await edit(stockDoc, (doc) => new StockLedger(doc, "typed").record("tee", -3,
      { id: "s1", reason: "sale", actor: "js", ref: "o-1" }));
    await edit(cartDoc, (doc) => new Cart(doc, "typed").addItem("tee", 2));

    const [up, down, conflict] = await within(received(levels, 3), 10_000, "the stock events");
    assert.ok(up?.type === "stock.level_changed" && down?.type === "stock.level_changed");
    assert.deepEqual([up.data.sku, up.data.location, up.data.previous, up.data.level, up.data.refs], ["tee", "typed", 0, 2, []]);
    assert.deepEqual([down.data.previous, down.data.level, down.data.refs], [2, -1, ["o-1"]]);
    assert.ok(conflict?.type === "stock.conflict_opened");
    assert.deepEqual([conflict.data.conflict_kind, conflict.data.sku, conflict.data.level], ["negative_level", "tee", -1]);
    // Two events of one change: the first has the id EPOCH-SEQ.0, the last EPOCH-SEQ.
    assert.equal(down.id, `${conflict.id}.0`);
    assert.equal(down.data.seq, conflict.data.seq);

    const [added] = await within(received(carts, 1), 10_000, "the cart event");
    assert.ok(added?.type === "cart.changed");
    assert.deepEqual(added.data.lines.map((l) => [l.product, l.previous, l.quantity]), [["tee", 0, 2]]);

    const [sale] = await within(received(byOrder, 1), 10_000, "the order's event");
    assert.ok(sale?.type === "stock.level_changed" && sale.data.refs.includes("o-1"));

    // eventsNamed narrows: the filtered events are typed by the names.
    const named = levels.history().filter(eventsNamed(["stock.level_changed"]));
    assert.deepEqual(named.map((e) => e.data.level), [2, -1]);
  });

  test("keeps only the last historySize events", async () => {
    const small = feed({ historySize: 2, documents: [`${TENANT}/cart/h`] });
    await within(opened(small), 10_000, "the feed to open");
    const seen: string[] = [];
    small.on("event", (e) => seen.push(e.id));
    const four = new Promise<void>((resolve) => small.on("event", () => seen.length === 4 && resolve()));
    for (const key of ["1", "2", "3", "4"]) await write(`${TENANT}/cart/h`, key);
    await within(four, 10_000, "four events");
    assert.equal(small.health().eventsSeen, 4);
    assert.deepEqual(small.history().map((e) => e.id), seen.slice(-2));
  });

  test("a feed that drops before any event resumes from where its stream began", async () => {
    const doc = `${TENANT}/cart/quiet`;
    const live = feed({ documents: [doc], backoff: { initialMs: 2_000, maxMs: 2_000, random: () => 0.95 } });
    await streaming(live);
    assert.match(live.health().lastEventId ?? "", /^[0-9a-f]{16}-[0-9]+$/, "the stream's position");
    const away = next<FeedHealth>((l) => live.on("status", l), (h) => h.status === "reconnecting", 10_000, "the feed to notice");
    await relay.stop();
    await away;
    await relay.restart();
    await write(doc, "while-away");
    assert.notEqual(live.health().status, "open", "the write happened while the feed was away");
    const [event] = await within(received(live, 1), 15_000, "the change written while the feed was away");
    assert.equal(event?.type, "cart.changed");
  });

  test("a stream that goes quiet past three heartbeats is reopened, and follows the relay when it wakes", async () => {
    const quiet = await Relay.start({ args: ["--sse-heartbeat-seconds", "0.3"] });
    try {
      const quietToken = await quiet.token({ tenant: TENANT, docs: [`${TENANT}/*`] });
      const live = new ChangeFeed({ url: `${quiet.httpUrl}/v1/tenants/${TENANT}/events`, token: quietToken,
        backoff: { initialMs: 100, maxMs: 300 } });
      feeds.push(live);
      await streaming(live); // `connected` has told the feed the heartbeat period to hold the relay to
      quiet.freeze(); // the connection stays open; nothing more comes down it
      try {
        await next<FeedHealth>((l) => live.on("status", l), (h) => h.status === "reconnecting", 10_000,
          "the feed to notice the silence");
      } finally {
        quiet.thaw();
      }
      await within(opened(live), 10_000, "the feed to reopen");
      const doc = `${TENANT}/cart/woke`;
      const writer = new SynclineConnection({
        url: quiet.wsUrl, document: doc, token: quietToken, WebSocketPolyfill: WebSocket, persistence: false,
        tabs: false, backoff: { initialMs: 20, maxMs: 200 },
      });
      try {
        writer.doc.getMap("t").set("k", 1);
        await within(writer.whenAcknowledged(), 15_000, "the write after waking");
      } finally {
        writer.destroy();
      }
      const [event] = await within(received(live, 1, (e) => e.type === "cart.changed"), 10_000, "the change after waking");
      assert.equal((event?.data as { doc: string }).doc, doc);
    } finally {
      await quiet.close();
    }
  });

  test("resumes after a relay restart from the last id it saw, without losing or repeating events", async () => {
    const doc = `${TENANT}/cart/r`;
    // Retries wait 1.9 s (random pinned high), so the writes after the restart happen while the feed is away.
    const live = feed({ documents: [doc], backoff: { initialMs: 2_000, maxMs: 2_000, random: () => 0.95 } });
    await within(opened(live), 10_000, "the feed to open");
    await write(doc, "before");
    const [before] = await within(received(live, 1), 10_000, "the first event");
    assert.ok(before !== undefined);

    const away = next<FeedHealth>((l) => live.on("status", l), (h) => h.status === "reconnecting", 10_000, "the feed to notice");
    await relay.stop();
    await away;
    await relay.restart();
    await write(doc, "after-1");
    await write(doc, "after-2");
    assert.notEqual(live.health().status, "open", "the writes happened while the feed was away");

    const events = await within(received(live, 3), 15_000, "the events written while the feed was away");
    assert.equal(live.health().status, "open");
    const ids = events.map((e) => e.id);
    assert.equal(new Set(ids).size, 3, "no event twice");
    assert.ok(events.every((e) => e.type === "cart.changed"), "no reset: the relay could follow");

    // A fresh feed resuming from the first event sees exactly what the live one got after it.
    const fresh = feed({ documents: [doc], since: before.id });
    const replay = await within(received(fresh, 2), 10_000, "the replay");
    assert.deepEqual(replay.map((e) => e.id), ids.slice(1));
  });
});
