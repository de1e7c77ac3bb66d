/**
 * React bindings (the package's "./react" entry; React is a peer dependency):
 * hooks over the stores of ./stores.ts with `useSyncExternalStore`.
 */
import { useMemo, useSyncExternalStore } from "react";
import type * as Y from "yjs";
import { Cart } from "./cart.js";
import { SynclineConnection, type StatusEvent } from "./connection.js";
import { StockLedger } from "./stock.js";
import { eventsNamed, type ChangeFeed, type FeedEvent, type FeedEventOf, type FeedEventType, type FeedHealth } from "./feed.js";
import { eventsStore, healthStore, statusStore, viewStore, type ObservableModel } from "./stores.js";

export type { ExternalStore, ObservableModel } from "./stores.js";
export { eventsStore, healthStore, statusStore, viewStore } from "./stores.js";

/** The view type of a model. */
export type ViewOf<M> = M extends ObservableModel<infer V> ? V : never;

/** A connection or a bare document. */
export type DocSource = SynclineConnection | Y.Doc;

function docOf(source: DocSource): Y.Doc {
  return source instanceof SynclineConnection ? source.doc : source;
}

/**
 * A model of a document (made once per document and id by `create`) and its view,
 * re-rendered after each change.
 */
export function useModel<M extends ObservableModel<unknown>>(source: DocSource, id: string,
  create: (doc: Y.Doc, id: string) => M): { model: M; view: ViewOf<M> } {
  const doc = docOf(source);
  const model = useMemo(() => create(doc, id), [doc, id]);
  const store = useMemo(() => viewStore(model as ObservableModel<ViewOf<M>>), [model]);
  const view = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
  return { model, view };
}

const newCart = (doc: Y.Doc, cartId: string): Cart => new Cart(doc, cartId);
const newLedger = (doc: Y.Doc, locationId: string): StockLedger => new StockLedger(doc, locationId);

/** A cart (the bare id, e.g. "c-1") and its view; `create` may make another model of the document. */
export function useCart<M extends ObservableModel<unknown> = Cart>(source: DocSource, cartId: string,
  create: (doc: Y.Doc, cartId: string) => M = newCart as unknown as (doc: Y.Doc, cartId: string) => M,
): { cart: M; view: ViewOf<M> } {
  const { model, view } = useModel(source, cartId, create);
  return { cart: model, view };
}

/** A location's stock ledger and its view; `create` may make another model of the document. */
export function useStockLedger<M extends ObservableModel<unknown> = StockLedger>(source: DocSource,
  locationId: string,
  create: (doc: Y.Doc, locationId: string) => M = newLedger as unknown as (doc: Y.Doc, locationId: string) => M,
): { ledger: M; view: ViewOf<M> } {
  const { model, view } = useModel(source, locationId, create);
  return { ledger: model, view };
}

/** The connection's `{status, pending, acknowledged}`. */
export function useSyncStatus(connection: SynclineConnection): StatusEvent {
  const store = useMemo(() => statusStore(connection), [connection]);
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}

/** The feed's `{status, eventsSeen, uptimeMs, lastEventId}`, as of its last status change or event. */
export function useConnectionHealth(feed: ChangeFeed): FeedHealth {
  const store = useMemo(() => healthStore(feed), [feed]);
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}

/**
 * The feed's kept events (its history), optionally filtered: by event names
 * (`useChangeFeed(feed, ["order.created", "order.stage_changed"])`, typed by those names), or
 * by a function. Pass a stable function (module-level or memoised): a new function each render
 * makes a new store. Names may be a new array each render.
 */
export function useChangeFeed(feed: ChangeFeed, filter?: (event: FeedEvent) => boolean): readonly FeedEvent[];
export function useChangeFeed<K extends FeedEventType>(feed: ChangeFeed, names: readonly K[]): readonly FeedEventOf<K>[];
export function useChangeFeed(feed: ChangeFeed, selector?: ((event: FeedEvent) => boolean) | readonly FeedEventType[],
): readonly FeedEvent[] {
  const key = Array.isArray(selector) ? selector.join(",") : selector;
  const store = useMemo(
    () => eventsStore(feed, Array.isArray(selector) ? eventsNamed(selector) : (selector as ((e: FeedEvent) => boolean) | undefined)),
    [feed, key],
  );
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}
