/** The tenant's change feed (Server-Sent Events) as the relay stores each update, with its health. */
import type { ChangeFeed } from "../../src/index.js";
import { useChangeFeed, useConnectionHealth } from "../../src/react.js";

const SHOWN = 8;

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
            {"doc" in event.data ? <>{event.data.doc} <span className="action">{event.data.action}</span></>
              : event.data.reason}
          </li>
        ))}
      </ol>
    </section>
  );
}
