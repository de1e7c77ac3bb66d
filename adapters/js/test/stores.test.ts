import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createElement } from "react";
import { renderToString } from "react-dom/server";
import WebSocket from "ws";
import * as Y from "yjs";
import { SynclineConnection, type StatusEvent } from "../src/index.js";
import { statusStore, useModel, useSyncStatus, viewStore, type ObservableModel } from "../src/react.js";

/** A real model over a Y.Map: a counter whose view is its total. */
class Counter implements ObservableModel<{ total: number }> {
  private readonly map: Y.Map<number>;
  constructor(doc: Y.Doc, id: string) {
    this.map = doc.getMap(id);
  }
  add(n: number): void {
    this.map.set("total", (this.map.get("total") ?? 0) + n);
  }
  observe(listener: () => void): () => void {
    this.map.observe(listener);
    return () => this.map.unobserve(listener);
  }
  view(): { total: number } {
    return { total: this.map.get("total") ?? 0 };
  }
}

function offlineConnection(): SynclineConnection {
  // Never connects (connect: false): the status store is exercised without a relay.
  return new SynclineConnection({ url: "ws://127.0.0.1:9/v1/sync", document: "t/cart/c", token: "x",
    WebSocketPolyfill: WebSocket, persistence: false, tabs: false, connect: false });
}

describe("stores behind the React hooks", () => {
  test("a view store keeps one snapshot until the document changes, then notifies", () => {
    const doc = new Y.Doc();
    const counter = new Counter(doc, "c");
    const store = viewStore(counter);
    let calls = 0;
    const off = store.subscribe(() => (calls += 1));
    const first = store.getSnapshot();
    assert.equal(store.getSnapshot(), first, "stable between changes");
    counter.add(2);
    assert.equal(calls, 1);
    assert.deepEqual(store.getSnapshot(), { total: 2 });
    assert.notEqual(store.getSnapshot(), first);
    off();
    counter.add(1);
    assert.equal(calls, 1, "no call after unsubscribing");
  });

  test("the status store follows a connection's pending count", () => {
    const conn = offlineConnection();
    const store = statusStore(conn);
    const seen: StatusEvent[] = [];
    const off = store.subscribe(() => seen.push(store.getSnapshot()));
    assert.deepEqual(store.getSnapshot(), { status: "offline", pending: 0, acknowledged: 0 });
    conn.doc.getMap("t").set("a", 1);
    conn.doc.getMap("t").set("b", 1);
    assert.deepEqual(seen.map((s) => s.pending), [1, 2]);
    assert.equal(store.getSnapshot(), store.getSnapshot());
    off();
    conn.destroy();
  });

  test("the hooks render with react-dom/server", () => {
    const conn = offlineConnection();
    conn.doc.getMap("t").set("a", 1);
    const doc = new Y.Doc();
    new Counter(doc, "c").add(5);
    function Status(): ReturnType<typeof createElement> {
      const { status, pending } = useSyncStatus(conn);
      const { view } = useModel(doc, "c", (d, id) => new Counter(d, id));
      return createElement("p", null, `${status} ${pending} ${view.total}`);
    }
    assert.equal(renderToString(createElement(Status)), "<p>offline 1 5</p>");
    conn.destroy();
  });
});
