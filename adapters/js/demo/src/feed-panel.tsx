/** The tenant's change feed (Server-Sent Events): what each stored update changed, with its health. */
import type { ChangeFeed, FeedEvent } from "../../src/index.js";
import { useChangeFeed, useConnectionHealth } from "../../src/react.js";

const SHOWN = 8;

/** What an event says, in a few words: the values it carries. */
function summary(event: FeedEvent): string {
  switch (event.type) {
    case "cart.changed": {
      const lines = event.data.lines.map((l) => `${l.product} ${l.previous}→${l.quantity}`);
      if (event.data.status !== undefined) lines.push(`${event.data.status.previous}→${event.data.status.state}`);
      return lines.join(", ");
    }
    case "order.created":
      return `${event.data.lines.length} lines, ${(event.data.total / 100).toFixed(2)} ${event.data.currency}`;
    case "order.stage_changed":
    case "order.cancelled":
      return `${event.data.previous}→${event.data.stage}${event.data.by === undefined ? "" : ` by ${event.data.by}`}`;
    case "order.payment_changed":
      return `${event.data.previous}→${event.data.payment}`;
    case "stock.level_changed":
      return `${event.data.sku} ${event.data.previous}→${event.data.level}`;
    case "stock.conflict_opened":
      return `${event.data.sku} ${event.data.conflict_kind} at ${event.data.level}`;
    case "stock.conflict_resolved":
      return `${event.data.sku} ${event.data.resolution?.strategy ?? "cleared"}`;
    case "stock.changed":
    case "order.changed":
      return event.data.current === undefined ? "" : "re-read";
    case "reset":
      return event.data.reason;
  }
}

export function FeedPanel({ feed }: { feed: ChangeFeed }) {
  const events = useChangeFeed(feed);
  const health = useConnectionHealth(feed);
  const recent = events.slice(-SHOWN).reverse();
  return (
    <section className="panel feed">
      <h2>Change feed</h2>
      <p className="health">
        <span data-testid="feed-status">{health.status}</span>, {health.eventsSeen} events seen
      </p>
      <ol data-testid="feed">
        {recent.map((event) => (
          <li key={event.id}>
            <code>{event.type}</code>{" "}
            {event.type !== "reset" && <>{event.data.doc} <span className="action">{event.data.action}</span> </>}
            <span className="values">{summary(event)}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}
