/**
 * The connection to a Syncline relay: y-websocket's provider plus durable
 * acknowledgements, a status, reconnects with backoff, and rollback of refused edits.
 */
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { IndexeddbPersistence } from "y-indexeddb";
import type * as decoding from "lib0/decoding";
import { Backoff, type BackoffOptions } from "./backoff.js";
import { CLOSE_REASONS, closeAction } from "./closecodes.js";
import { Emitter } from "./emitter.js";
import { PendingEdits } from "./pending.js";
import { resetDoc } from "./reset.js";
import { HELLO, MESSAGE_EXTENSION, frameKind, readExtension } from "./wire.js";

/**
 * - `offline`: no connection and none being opened (paused, refused, or waiting to retry);
 * - `connecting`: a WebSocket is opening (or local storage is loading first);
 * - `syncing`: connected, and the relay's state is not received yet or local edits await acknowledgement;
 * - `synced`: connected, the relay's state received, every local edit acknowledged.
 */
export type SyncStatus = "offline" | "connecting" | "syncing" | "synced";

export interface StatusEvent {
  status: SyncStatus;
  pending: number;
  acknowledged: number;
}

/**
 * Local edits were undone. `reason` is the relay's reason for the close code
 * (`"read-only"`, `"forbidden"`, …) or `"cleared"` for {@link SynclineConnection.clearPending};
 * `code` is the close code (null for `clearPending`); `undone` counts the edits undone.
 */
export interface RollbackEvent {
  reason: string;
  code: number | null;
  undone: number;
}

/** The relay refused the connection for good (or the token expired): the connection stays offline. */
export interface ConnectionErrorEvent {
  code: number;
  reason: string;
}

export interface ConnectionEvents extends Record<string, unknown> {
  status: StatusEvent;
  rollback: RollbackEvent;
  error: ConnectionErrorEvent;
}

/** A WebSocket class: the browser's, or a polyfill such as the `ws` package's in Node. */
export type WebSocketClass = new (url: string, protocols?: string | string[]) => WebSocket;

export interface ConnectionOptions {
  /** The relay's sync endpoint without the document: `ws://host:port/v1/sync`. */
  url: string;
  /** The document's name, `tenant/kind/id`. */
  document: string;
  token: string;
  /** The document to sync (default: a new one). */
  doc?: Y.Doc;
  /** Keep the document in IndexedDB (y-indexeddb), default: true where `indexedDB` exists. */
  persistence?: boolean;
  /** Sync same-browser tabs over BroadcastChannel, default: true in a browser window. */
  tabs?: boolean;
  /** The WebSocket class (default: the global one; in Node 20 pass the `ws` package's). */
  WebSocketPolyfill?: unknown;
  /** Reconnect delays: exponential backoff with full jitter. */
  backoff?: BackoffOptions;
  /** Connect at once (default true); otherwise call {@link SynclineConnection.resume}. */
  connect?: boolean;
}

const PENDING_KEY = "syncline:pending";

/** Every origin counts: which transactions are tracked is decided by `captureTransaction`. */
class EveryOrigin extends Set<unknown> {
  override has(): boolean {
    return true;
  }
}

type StackItem = Y.UndoManager["undoStack"][number];
/** A local edit: its update (for `confirmed` once acknowledged) and what undoes it. */
interface LocalEdit {
  update: Uint8Array;
  undo: StackItem | null;
}

type Waiter = { ready: () => boolean; resolve: () => void; reject: (error: Error) => void };

/**
 * A document kept in sync with a relay.
 *
 * **Pending and acknowledged.** Every local Yjs transaction (one `Cart.addItem`, one
 * `doc.transact(...)`) is one edit. `pending` counts the local edits the relay has not
 * yet acknowledged as durable (the acknowledgement extension of docs/protocol.md);
 * `acknowledged` counts those it has, since this object was made. An edit made while
 * offline stays pending until a connection delivers it (in the sync step 2 that answers
 * the relay) and the relay acknowledges that frame. The undo of `clearPending` is an edit
 * too (counted as pending) on a connection that may write: it must reach the relay. The
 * undo after a refusal is not: nothing more is sent with that token.
 * With persistence, the pending count is stored next to the document in IndexedDB; after
 * a page reload those edits come back from IndexedDB and count as pending until the
 * first connection's step 2 (which carries them) is acknowledged.
 *
 * **Rollback of refused edits.** The connection keeps a second document, `confirmed`:
 * what the relay sent plus the local edits it acknowledged. When the relay closes with a
 * refusal that the same request would meet again (4405 read-only, 4403, 4422, … see
 * `closeAction`), `doc` is reset in place to `confirmed` (see `resetDoc`: undoing would
 * leave local items that later resolve conflicts differently from the relay), the stored
 * copy in IndexedDB is rewritten, and a `rollback` event says why; `undone` counts the
 * pending edits dropped (edits restored after a reload too). After 4405 the connection
 * reconnects to read: it sends no writes any more, and each later local edit is reset
 * away at once with another `rollback` event. After any other refusal it stays offline;
 * {@link resume} tries again (its sync fetches what the relay has).
 *
 * **clearPending** undoes the pending edits with a `Y.UndoManager` over the whole
 * document that captures local transactions only (one stack item per transaction; an
 * acknowledged edit leaves the stack). On a connection that may write, the undo is
 * delivered like any edit, so every replica holds the same history.
 *
 * **Reconnects.** y-websocket's own reconnect timer is disarmed; after a close the
 * connection waits `Backoff.next()` (full jitter) and opens a new socket. The backoff
 * starts over once a connection has synced.
 */
export class SynclineConnection {
  readonly doc: Y.Doc;
  readonly document: string;
  readonly provider: WebsocketProvider;
  private readonly events = new Emitter<ConnectionEvents>();
  private readonly edits = new PendingEdits<LocalEdit>();
  /** What the relay sent, plus the local edits it acknowledged. */
  private readonly confirmed = new Y.Doc();
  private readonly undoManager: Y.UndoManager;
  private readonly backoff: Backoff;
  private persistence: IndexeddbPersistence | null = null;
  private lastStackItem: StackItem | null = null;
  private persistenceName: string;
  private currentEdit: number | null = null;
  private rollingBack = false;
  private rollbackQueued = false;
  private readOnlyMode = false;
  private paused: boolean;
  private stopped = false;
  private destroyed = false;
  private loading = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private waiters: Waiter[] = [];
  private last: StatusEvent | null = null;

  constructor(options: ConnectionOptions) {
    this.doc = options.doc ?? new Y.Doc();
    this.document = options.document;
    this.backoff = new Backoff(options.backoff);
    this.paused = options.connect === false;
    this.undoManager = new Y.UndoManager(this.doc, {
      captureTimeout: 0,
      trackedOrigins: new EveryOrigin(),
      captureTransaction: (tr) => tr.local && !this.rollingBack,
    });
    this.undoManager.on("stack-item-added", ({ stackItem, type }) => {
      if (type === "undo") this.lastStackItem = stackItem;
    });
    // Registered before the provider's own handler, so an update frame knows its edit.
    this.doc.on("update", this.onUpdate);

    const Base = (options.WebSocketPolyfill ?? globalThis.WebSocket) as WebSocketClass | undefined;
    if (Base === undefined) throw new TypeError("no WebSocket class: pass WebSocketPolyfill (the ws package in Node)");
    const tabs = options.tabs ?? (typeof window !== "undefined" && typeof BroadcastChannel !== "undefined");
    this.provider = new WebsocketProvider(options.url, options.document, this.doc, {
      connect: false,
      params: { token: options.token },
      WebSocketPolyfill: this.socketClass(Base) as unknown as typeof WebSocket,
      disableBc: !tabs,
      resyncInterval: -1,
      shouldReconnect: () => true, // the close codes are read in onClose
    });
    this.provider.messageHandlers[MESSAGE_EXTENSION] = (_encoder: unknown, decoder: decoding.Decoder) => {
      this.onExtension(readExtension(decoder));
    };
    this.provider.on("status", () => this.refresh());
    this.provider.on("sync", () => this.refresh());
    this.provider.on("connection-close", (event) => this.onClose(event));

    this.persistenceName = `syncline:${options.url}/${options.document}`;
    const persistence = options.persistence ?? typeof indexedDB !== "undefined";
    if (persistence) {
      this.loading = true;
      this.persistence = new IndexeddbPersistence(this.persistenceName, this.doc);
      void this.restore(this.persistence);
    } else if (!this.paused) {
      this.provider.connect();
    }
    this.refresh();
  }

  /** The connection's status; see {@link SyncStatus}. */
  get status(): SyncStatus {
    if (this.destroyed || this.paused || this.stopped) return "offline";
    if (this.loading || this.provider.wsconnecting) return "connecting";
    if (!this.provider.wsconnected) return "offline";
    return this.provider.synced && this.edits.count === 0 ? "synced" : "syncing";
  }

  /** Local edits not yet acknowledged by the relay. */
  get pending(): number {
    return this.edits.count;
  }

  /** Local edits the relay acknowledged as durable since this connection was made. */
  get acknowledged(): number {
    return this.edits.acknowledged;
  }

  /** The relay refused a write for a read-only token (4405): local edits are undone, nothing is sent. */
  get readOnly(): boolean {
    return this.readOnlyMode;
  }

  on<K extends keyof ConnectionEvents>(event: K, listener: (payload: ConnectionEvents[K]) => void): () => void {
    return this.events.on(event, listener);
  }

  /** Resolves once the status is `synced`. */
  whenSynced(): Promise<void> {
    return this.wait(() => this.status === "synced");
  }

  /** Resolves once no local edit is pending. */
  whenAcknowledged(): Promise<void> {
    return this.wait(() => this.edits.count === 0);
  }

  /** Close the connection and stay offline (edits keep accumulating as pending) until {@link resume}. */
  pause(): void {
    this.paused = true;
    this.clearRetry();
    this.provider.disconnect();
    this.refresh();
  }

  /** Connect again (also after a refusal): the backoff starts over. */
  resume(): void {
    if (this.destroyed) return;
    this.paused = false;
    this.stopped = false;
    this.backoff.reset();
    this.clearRetry();
    if (!this.loading) this.provider.connect();
    this.refresh();
  }

  /** Forget the local edits not yet acknowledged: undo them (a `rollback` event with reason `"cleared"`). */
  clearPending(): void {
    if (this.readOnlyMode) {
      this.reset("cleared", null);
      return;
    }
    const dropped = this.edits.forget().length;
    this.rollingBack = true;
    try {
      while (this.undoManager.canUndo()) this.undoManager.undo();
    } finally {
      this.rollingBack = false;
    }
    this.undoManager.clear();
    this.pendingChanged();
    this.events.emit("rollback", { reason: "cleared", code: null, undone: dropped });
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.clearRetry();
    this.provider.destroy();
    this.provider.awareness.destroy(); // its renewal timer; the provider leaves it to the doc's destroy
    this.undoManager.destroy();
    this.doc.off("update", this.onUpdate);
    this.confirmed.destroy();
    void this.persistence?.destroy();
    this.refresh();
    for (const waiter of this.waiters) waiter.reject(new Error("connection destroyed"));
    this.waiters = [];
    this.events.clear();
  }

  // -- internals ---------------------------------------------------------------------

  private async restore(persistence: IndexeddbPersistence): Promise<void> {
    await persistence.whenSynced;
    const stored: unknown = await persistence.get(PENDING_KEY);
    if (this.destroyed) return;
    if (typeof stored === "number" && Number.isSafeInteger(stored)) {
      for (let i = 0; i < stored; i++) this.edits.add(null); // restored: in the document, not in confirmed
    }
    this.loading = false;
    if (!this.paused) this.provider.connect();
    this.refresh();
  }

  /** The WebSocket class given to y-websocket: sends `hello` first and counts write frames. */
  private socketClass(Base: WebSocketClass): WebSocketClass {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const connection = this;
    return class SynclineSocket extends Base {
      private helloSent = false;

      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        connection.edits.connected();
      }

      override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
        if (!this.helloSent) {
          this.helloSent = true;
          super.send(HELLO);
        }
        if (data instanceof Uint8Array) {
          const kind = frameKind(data);
          if (kind !== "other") {
            if (connection.readOnlyMode) return; // the relay would close us again
            if (kind === "step2") connection.edits.sentStep2();
            else connection.edits.sentUpdate(connection.currentEdit);
          }
        }
        super.send(data);
      }
    };
  }

  private readonly onUpdate = (update: Uint8Array, origin: unknown, _doc: Y.Doc, tr: Y.Transaction): void => {
    this.currentEdit = null;
    if (!tr.local) {
      if (origin === this.provider) Y.applyUpdate(this.confirmed, update); // from the relay (or a tab)
      return;
    }
    if (this.rollingBack) {
      this.currentEdit = this.edits.add({ update, undo: null }); // the undo must reach the relay
      this.pendingChanged();
      return;
    }
    const undo = this.lastStackItem;
    this.lastStackItem = null;
    this.currentEdit = this.edits.add({ update, undo });
    this.pendingChanged();
    if (this.readOnlyMode && !this.rollbackQueued) {
      this.rollbackQueued = true; // after this transaction's other listeners: one reset for a burst
      queueMicrotask(() => {
        this.rollbackQueued = false;
        if (!this.destroyed) this.reset(CLOSE_REASONS[4405] ?? "read-only", 4405);
      });
    }
  };

  private onExtension(body: Record<string, unknown>): void {
    if (body.op !== "ack" || typeof body.n !== "number") return; // "welcome", or an op of a later version
    const done = this.edits.ack(body.n);
    if (done.length === 0) return;
    for (const edit of done) if (edit.data !== null) Y.applyUpdate(this.confirmed, edit.data.update);
    if (this.edits.count === 0) {
      this.undoManager.clear(); // lets Yjs collect what the stack kept alive
    } else {
      const durable = new Set(done.map((edit) => edit.data?.undo));
      this.undoManager.undoStack = this.undoManager.undoStack.filter((item) => !durable.has(item));
    }
    this.pendingChanged();
  }

  private onClose(event: CloseEvent | null): void {
    this.provider.shouldConnect = false; // y-websocket's own timer must not reconnect
    if (this.provider.synced) this.backoff.reset();
    if (this.destroyed || this.paused) return;
    const code = event?.code ?? null;
    const action = code === null ? "retry" : closeAction(code);
    if (action === "retry") {
      this.scheduleRetry();
    } else if (action === "read-only") {
      this.readOnlyMode = true;
      this.reset(CLOSE_REASONS[4405] ?? "read-only", 4405);
      this.scheduleRetry();
    } else {
      const reason = CLOSE_REASONS[code as number] ?? (event?.reason || `closed with ${code}`);
      this.stopped = true;
      if (action === "refused") this.reset(reason, code);
      this.events.emit("error", { code: code as number, reason });
    }
    queueMicrotask(() => this.refresh()); // y-websocket updates its flags after this event
  }

  private scheduleRetry(): void {
    this.clearRetry();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.destroyed && !this.paused && !this.stopped) this.provider.connect();
      this.refresh();
    }, this.backoff.next());
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /** Drop every pending edit: reset the document to `confirmed` (see the class comment). */
  private reset(reason: string, code: number | null): void {
    const undone = this.edits.forget().length;
    this.undoManager.undoStack = []; // their items are gone with the reset
    this.undoManager.redoStack = [];
    resetDoc(this.doc, Y.encodeStateAsUpdate(this.confirmed), this);
    this.pendingChanged();
    void this.rewriteStore();
    this.events.emit("rollback", { reason, code, undone });
  }

  /** IndexedDB holds the dropped edits too: store the document afresh. */
  private async rewriteStore(): Promise<void> {
    const old = this.persistence;
    if (old === null) return;
    this.persistence = null;
    await old.clearData();
    if (this.destroyed) return;
    this.persistence = new IndexeddbPersistence(this.persistenceName, this.doc);
    await this.persistence.whenSynced;
    void this.persistence.set(PENDING_KEY, this.edits.count);
  }

  private pendingChanged(): void {
    void this.persistence?.set(PENDING_KEY, this.edits.count);
    this.refresh();
  }

  private wait(ready: () => boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    if (this.destroyed) return Promise.reject(new Error("connection destroyed"));
    return new Promise((resolve, reject) => this.waiters.push({ ready, resolve, reject }));
  }

  private refresh(): void {
    const now: StatusEvent = { status: this.status, pending: this.pending, acknowledged: this.acknowledged };
    const last = this.last;
    if (last === null || last.status !== now.status || last.pending !== now.pending || last.acknowledged !== now.acknowledged) {
      this.last = now;
      this.events.emit("status", now);
    }
    if (this.waiters.length > 0) {
      const ready = this.waiters.filter((w) => w.ready());
      this.waiters = this.waiters.filter((w) => !ready.includes(w));
      for (const waiter of ready) waiter.resolve();
    }
  }
}

/** Connect a document to a relay: `new SynclineConnection(options)`. */
export function connect(options: ConnectionOptions): SynclineConnection {
  return new SynclineConnection(options);
}
