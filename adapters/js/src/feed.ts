/**
 * The change feed client: the relay's Server-Sent Events stream of a tenant
 * (`GET /v1/tenants/{tenant}/events`, docs/rest.md), resumed from the last event id.
 */
import { Backoff, type BackoffOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { FetchEventSource, type EventSourceClass, type EventSourceLike, type SseMessage } from "./sse.js";

/** How long a new stream may take to send its first event, `connected`, before it is reopened. */
export const FIRST_EVENT_MS = 30_000;

/** The change events the relay derives from each stored update (docs/rest.md, "The change feed"). */
export const CHANGE_EVENT_TYPES = [
  "cart.changed",
  "order.created",
  "order.stage_changed",
  "order.payment_changed",
  "order.cancelled",
  "stock.level_changed",
  "stock.conflict_opened",
  "stock.conflict_resolved",
  "stock.changed",
  "order.changed",
] as const;

/** The event types the feed delivers: a document changed (typed), or the client must re-read (`reset`). */
export const FEED_EVENT_TYPES = [...CHANGE_EVENT_TYPES, "reset"] as const;
export type FeedEventType = (typeof FEED_EVENT_TYPES)[number];
export type ChangeEventType = (typeof CHANGE_EVENT_TYPES)[number];
/** What the relay's `type` filter takes: an event type, or `kind.*` for every event of a kind. */
export type FeedTypeFilter = ChangeEventType | "cart.*" | "stock.*" | "order.*";

/** What every change event carries: which update of which document, when. */
export interface ChangeData {
  seq: number;
  /** The full document name, `tenant/kind/id`. */
  doc: string;
  kind: string;
  id: string;
  /** The REST operation (`cart.add_item`, …) or `"sync"` for a WebSocket peer's update. */
  action: string;
  /** When the update was stored, milliseconds since the epoch. */
  at: number;
}

/** A cart line whose quantity changed (a removed line has quantity 0). */
export interface ChangedLine {
  key: string;
  product: string;
  attributes: Record<string, unknown>;
  previous: number;
  quantity: number;
}

export interface CartChangedData extends ChangeData {
  lines: ChangedLine[];
  /** Present when the cart closed: merged (`merged_into`, `merged_at`) or checked out (`order`, `checked_out_at`). */
  status?: { state: "open" | "merged" | "checked_out"; previous: string; merged_into?: string; merged_at?: number;
    order?: string; checked_out_at?: number };
}

export interface OrderCreatedData extends ChangeData {
  order: string;
  cart: string;
  location: string;
  currency: string;
  total: number;
  lines: { key: string; product: string; quantity: number; unit_price: number; line_total: number }[];
  placed_at: number;
  placed_by: string;
  stage: string;
  payment: string;
}

/** Who moved the order and when (`moved_at`, epoch ms). */
export interface OrderMove {
  order: string;
  previous: string;
  by?: string;
  moved_at?: number;
  note?: string;
}

export interface OrderStageData extends ChangeData, OrderMove { stage: string }
export interface OrderPaymentData extends ChangeData, OrderMove { payment: string }

export interface StockLevelData extends ChangeData {
  sku: string;
  location: string;
  previous: number;
  level: number;
  /** The `ref`s of the adjustments newly counted (a checkout's sales name their order). */
  refs: string[];
}

export interface StockConflictData extends ChangeData {
  location: string;
  conflict: string;
  conflict_kind: "negative_level" | "count_mismatch";
  sku: string;
  level: number;
  adjustments?: string[];
  counts?: { id: string; counted: number; actor: string; at: number }[];
}

export interface StockConflictResolvedData extends StockConflictData {
  /** True when the conflict is no longer derived without a decision (a restock, a replacing conflict). */
  cleared: boolean;
  resolution: { id: string; strategy: string; actor: string; at: number } | null;
}

/** `{kind}.changed`: nothing typed to say, or, with `current`, a change compaction folded away. */
export interface GenericChangeData extends ChangeData {
  current?: Record<string, unknown>;
}

/** `reset`: events were pruned or the store's history changed; re-read your documents. */
export interface ResetData {
  floor: number;
  reason: string;
}

/** Each event type's data. */
export interface FeedEventMap {
  "cart.changed": CartChangedData;
  "order.created": OrderCreatedData;
  "order.stage_changed": OrderStageData;
  "order.payment_changed": OrderPaymentData;
  "order.cancelled": OrderStageData;
  "stock.level_changed": StockLevelData;
  "stock.conflict_opened": StockConflictData;
  "stock.conflict_resolved": StockConflictResolvedData;
  "stock.changed": GenericChangeData;
  "order.changed": GenericChangeData;
  reset: ResetData;
}

/** One event as the feed hands it out: its id, its type and its typed data. */
export type FeedEvent = { [K in FeedEventType]: { id: string; type: K; data: FeedEventMap[K] } }[FeedEventType];

/** An event of one of the types `K`. */
export type FeedEventOf<K extends FeedEventType> = Extract<FeedEvent, { type: K }>;

/** A filter keeping the events named in `names` (typed: the events it keeps are of those types). */
export function eventsNamed<K extends FeedEventType>(names: readonly K[]): (event: FeedEvent) => event is FeedEventOf<K> {
  const wanted = new Set<string>(names);
  return (event: FeedEvent): event is FeedEventOf<K> => wanted.has(event.type);
}

/** `connected`: the stream opened; `position` is the id it continues after. */
export interface ConnectedData {
  position: string;
  epoch: string;
  reset: boolean;
  heartbeat_seconds: number;
}

/** `connecting` (first attempt), `open`, `reconnecting` (waiting or retrying after a drop), `closed` (by {@link ChangeFeed.close}). */
export type FeedStatus = "connecting" | "open" | "reconnecting" | "closed";

export interface FeedHealth {
  status: FeedStatus;
  /** Events received since the feed was made (resets included). */
  eventsSeen: number;
  /** Milliseconds the current stream has been open (0 when it is not). */
  uptimeMs: number;
  /** The id of the last event received: where a new stream resumes. */
  lastEventId: string | null;
  /** When the last `heartbeat` (or `connected`) arrived, epoch ms; null before the first. */
  lastHeartbeatAt: number | null;
}

export interface FeedEvents extends Record<string, unknown> {
  event: FeedEvent;
  status: FeedHealth;
}

export interface ChangeFeedOptions {
  /** The tenant's feed: `http://host:port/v1/tenants/T/events`. */
  url: string;
  /** Sent as `?token=`: browsers' EventSource cannot set headers. */
  token: string;
  /** Only these event types (`stock.level_changed`, `order.*`; `stock.changed` for every stock event); filtered by the relay. */
  types?: FeedTypeFilter[];
  /** Only the events of these orders (their document, their cart's checkout, the levels their sales moved). */
  orders?: string[];
  /** Only these documents, `kind/id` or `tenant/kind/id`; filtered by the relay. */
  documents?: string[];
  /** Events kept for {@link ChangeFeed.history} (default 100). */
  historySize?: number;
  /** Resume after this event id instead of starting from now. */
  since?: string;
  /** The EventSource class (default: the global one, else a fetch-based reader). */
  EventSource?: EventSourceClass;
  backoff?: BackoffOptions;
}

/**
 * A live view of the change feed.
 *
 * Each stream is opened with `?since=` the last event id received, and closed and
 * reopened (after a backoff with full jitter) by the feed itself on any error, so a
 * relay restart or a new EventSource never loses events: the relay continues right
 * after that id, or sends `reset` when it cannot (pruned events, another history).
 * A browser EventSource's own retry is not relied on, nor is a connection that went
 * quiet: a stream that sends nothing, not even the heartbeat the relay promised in
 * `connected`, for three heartbeat periods is closed and reopened the same way (a relay
 * frozen, or a connection a network dropped without telling either end).
 */
export class ChangeFeed {
  private readonly events = new Emitter<FeedEvents>();
  private readonly options: ChangeFeedOptions;
  private readonly backoff: Backoff;
  private readonly EventSourceImpl: EventSourceClass;
  private readonly kept: FeedEvent[] = [];
  private readonly historySize: number;
  private source: EventSourceLike | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private silenceTimer: ReturnType<typeof setTimeout> | null = null;
  private silenceMs: number | null = null;
  private currentStatus: FeedStatus = "connecting";
  private openedAt: number | null = null;
  private seen = 0;
  private lastId: string | null;
  private heartbeatAt: number | null = null;

  constructor(options: ChangeFeedOptions) {
    this.options = options;
    this.backoff = new Backoff({ initialMs: 500, maxMs: 30_000, ...options.backoff });
    this.historySize = options.historySize ?? 100;
    if (!(this.historySize >= 0)) throw new RangeError("historySize must be at least 0");
    this.lastId = options.since ?? null;
    this.EventSourceImpl = options.EventSource
      ?? (globalThis as { EventSource?: EventSourceClass }).EventSource
      ?? FetchEventSource;
    this.open();
  }

  on<K extends keyof FeedEvents>(event: K, listener: (payload: FeedEvents[K]) => void): () => void {
    return this.events.on(event, listener);
  }

  /** The last `historySize` events, oldest first. */
  history(): FeedEvent[] {
    return [...this.kept];
  }

  health(): FeedHealth {
    return {
      status: this.currentStatus,
      eventsSeen: this.seen,
      uptimeMs: this.openedAt === null ? 0 : Date.now() - this.openedAt,
      lastEventId: this.lastId,
      lastHeartbeatAt: this.heartbeatAt,
    };
  }

  close(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.silenceTimer !== null) clearTimeout(this.silenceTimer);
    this.silenceTimer = null;
    this.source?.close();
    this.source = null;
    this.setStatus("closed");
    this.events.clear();
  }

  /** The stream's URL: filters, the token, and where to resume. */
  streamUrl(): string {
    const url = new URL(this.options.url);
    for (const type of this.options.types ?? []) url.searchParams.append("type", type);
    for (const doc of this.options.documents ?? []) url.searchParams.append("doc", kindAndId(doc));
    for (const order of this.options.orders ?? []) url.searchParams.append("order", order);
    if (this.lastId !== null) url.searchParams.set("since", this.lastId);
    url.searchParams.set("token", this.options.token);
    return url.toString();
  }

  private open(): void {
    const source = new this.EventSourceImpl(this.streamUrl());
    this.source = source;
    this.silenceMs = null; // until this stream's `connected` says its heartbeat period
    this.heard(source);
    source.onopen = () => {
      if (this.source !== source) return;
      this.openedAt = Date.now();
      this.backoff.reset();
      this.setStatus("open");
    };
    source.onerror = () => {
      if (this.source === source) this.drop(source);
    };
    for (const type of FEED_EVENT_TYPES) {
      source.addEventListener(type, (message: SseMessage) => {
        if (this.source !== source) return;
        this.heard(source);
        this.receive(type, message);
      });
    }
    for (const type of ["connected", "heartbeat", "broadcast"]) {
      source.addEventListener(type, (message: SseMessage) => {
        if (this.source !== source) return;
        if (type === "connected") {
          // `connected` opens the stream with the id it continues after: a stream that drops
          // before any change resumes from there, not from whatever is newest by then.
          if (message.lastEventId) this.lastId = message.lastEventId;
          const promised = heartbeatSeconds(message.data);
          this.silenceMs = promised === null ? null : Math.max(3_000 * promised, 1_000);
        }
        this.heard(source);
        if (type !== "broadcast") {
          this.heartbeatAt = Date.now();
          this.events.emit("status", this.health());
        }
      });
    }
  }

  /** The stream said something: it is alive for another three heartbeat periods (or, before
   * its `connected` told the period, for {@link FIRST_EVENT_MS}). */
  private heard(source: EventSourceLike): void {
    if (this.silenceTimer !== null) clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      this.silenceTimer = null;
      if (this.source === source) this.drop(source);
    }, this.silenceMs ?? FIRST_EVENT_MS);
  }

  /** Close ``source`` and open a new stream after a backoff, from the last id we saw. */
  private drop(source: EventSourceLike): void {
    source.close();
    if (this.silenceTimer !== null) clearTimeout(this.silenceTimer);
    this.silenceTimer = null;
    this.source = null;
    this.openedAt = null;
    this.setStatus("reconnecting");
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.currentStatus !== "closed") this.open();
    }, this.backoff.next());
  }

  private receive(type: FeedEventType, message: SseMessage): void {
    const event = { id: message.lastEventId, type, data: JSON.parse(message.data) } as FeedEvent;
    this.lastId = message.lastEventId || this.lastId;
    this.seen += 1;
    if (this.historySize > 0) {
      this.kept.push(event);
      if (this.kept.length > this.historySize) this.kept.splice(0, this.kept.length - this.historySize);
    }
    this.events.emit("event", event);
    this.events.emit("status", this.health());
  }

  private setStatus(status: FeedStatus): void {
    if (this.currentStatus === status) return;
    this.currentStatus = status;
    this.events.emit("status", this.health());
  }
}

/** The heartbeat period a `connected` event's data promises, in seconds (null if it promises none). */
function heartbeatSeconds(data: string): number | null {
  try {
    const promised = (JSON.parse(data) as Partial<ConnectedData> | null)?.heartbeat_seconds;
    return typeof promised === "number" && promised > 0 && promised < 3_600 ? promised : null;
  } catch {
    return null; // not the relay's JSON: no promise to hold it to
  }
}

/** `tenant/kind/id` or `kind/id` → `kind/id`, the form of the relay's `doc` filter. */
function kindAndId(doc: string): string {
  const parts = doc.split("/");
  return parts.length === 3 ? `${parts[1]}/${parts[2]}` : doc;
}
