/**
 * External stores (subscribe + getSnapshot, the shape React's `useSyncExternalStore`
 * takes) over connections, feeds and document models. A snapshot is the same object
 * until something changed, as React requires.
 */
import type { StatusEvent, SynclineConnection } from "./connection.js";
import type { ChangeFeed, FeedEvent, FeedHealth } from "./feed.js";

export interface ExternalStore<T> {
  subscribe(onChange: () => void): () => void;
  getSnapshot(): T;
}

/** A document model with a view: `Cart` and `StockLedger` have this shape. */
export interface ObservableModel<V> {
  observe(listener: () => void): () => void;
  view(): V;
}

/** A connection's status, pending and acknowledged counts. */
export function statusStore(connection: SynclineConnection): ExternalStore<StatusEvent> {
  let snapshot: StatusEvent = { status: connection.status, pending: connection.pending, acknowledged: connection.acknowledged };
  return {
    subscribe(onChange) {
      return connection.on("status", (event) => {
        snapshot = event;
        onChange();
      });
    },
    getSnapshot() {
      const s = snapshot;
      if (s.status !== connection.status || s.pending !== connection.pending || s.acknowledged !== connection.acknowledged) {
        snapshot = { status: connection.status, pending: connection.pending, acknowledged: connection.acknowledged };
      }
      return snapshot;
    },
  };
}

/** A feed's health, refreshed on each status change and event (uptime as of then). */
export function healthStore(feed: ChangeFeed): ExternalStore<FeedHealth> {
  let snapshot = feed.health();
  return {
    subscribe(onChange) {
      return feed.on("status", (health) => {
        snapshot = health;
        onChange();
      });
    },
    getSnapshot: () => snapshot,
  };
}

/** The events a feed holds in its history, optionally filtered, oldest first. */
export function eventsStore(feed: ChangeFeed, filter?: (event: FeedEvent) => boolean): ExternalStore<readonly FeedEvent[]> {
  const pick = (): FeedEvent[] => (filter === undefined ? feed.history() : feed.history().filter(filter));
  let snapshot: readonly FeedEvent[] = pick();
  return {
    subscribe(onChange) {
      return feed.on("event", () => {
        snapshot = pick();
        onChange();
      });
    },
    getSnapshot: () => snapshot,
  };
}

/** A model's view, recomputed after each change of its document. */
export function viewStore<V>(model: ObservableModel<V>): ExternalStore<V> {
  let snapshot = model.view();
  return {
    subscribe(onChange) {
      snapshot = model.view(); // changes between the first render and the subscription
      return model.observe(() => {
        snapshot = model.view();
        onChange();
      });
    },
    getSnapshot: () => snapshot,
  };
}
