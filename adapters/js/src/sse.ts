/**
 * A Server-Sent Events reader over `fetch`, for runtimes without `EventSource` (Node 20).
 * It has the part of the `EventSource` interface the change feed uses, and unlike the
 * browser's it never reconnects by itself: the feed reconnects, with its last event id.
 */

/** One dispatched event, as `EventSource` hands it to listeners. */
export interface SseMessage {
  readonly type: string;
  readonly data: string;
  readonly lastEventId: string;
}

/** The part of `EventSource` the change feed uses. */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
  addEventListener(type: string, listener: (event: SseMessage) => void): void;
  close(): void;
}

export type EventSourceClass = new (url: string) => EventSourceLike;

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;

export class FetchEventSource implements EventSourceLike {
  readyState = CONNECTING;
  onopen: ((event: unknown) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly url: string;
  private readonly listeners = new Map<string, Set<(event: SseMessage) => void>>();
  private readonly abort = new AbortController();
  private lastEventId = "";

  constructor(url: string) {
    this.url = url;
    void this.run();
  }

  addEventListener(type: string, listener: (event: SseMessage) => void): void {
    let set = this.listeners.get(type);
    if (set === undefined) this.listeners.set(type, (set = new Set()));
    set.add(listener);
  }

  close(): void {
    this.readyState = CLOSED;
    this.abort.abort();
  }

  private async run(): Promise<void> {
    try {
      const response = await fetch(this.url, {
        headers: { Accept: "text/event-stream" },
        cache: "no-store",
        signal: this.abort.signal,
      });
      const type = response.headers.get("content-type") ?? "";
      if (!response.ok || !type.startsWith("text/event-stream") || response.body === null) {
        await response.body?.cancel();
        this.fail({ status: response.status });
        return;
      }
      this.readyState = OPEN;
      this.onopen?.({ type: "open" });
      await this.read(response.body);
      this.fail({ type: "end" });
    } catch (error) {
      if (this.readyState !== CLOSED) this.fail({ type: "error", error });
    }
  }

  private fail(detail: unknown): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.onerror?.(detail);
  }

  /** The event stream format of the HTML standard (§9.2.6): fields, then a blank line dispatches. */
  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder("utf-8");
    let buffer = "";
    let data: string[] = [];
    let event = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || this.readyState === CLOSED) return;
      buffer += decoder.decode(value, { stream: true });
      // A final "\r" may be half of a "\r\n" split across chunks: keep it for the next one.
      const held = buffer.endsWith("\r");
      const lines = (held ? buffer.slice(0, -1) : buffer).split(/\r\n|\r|\n/);
      buffer = (lines.pop() ?? "") + (held ? "\r" : ""); // a line is complete only once its end arrived
      for (const line of lines) {
        if (line === "") {
          if (data.length > 0) this.dispatch(event || "message", data.join("\n"));
          data = [];
          event = "";
          continue;
        }
        if (line.startsWith(":")) continue; // a comment (the relay's pings)
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") event = value;
        else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
      }
    }
  }

  private dispatch(type: string, data: string): void {
    const message: SseMessage = { type, data, lastEventId: this.lastEventId };
    for (const listener of [...(this.listeners.get(type) ?? [])]) listener(message);
  }
}
