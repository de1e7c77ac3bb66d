/** The sync status and pending count of the page's connections, and the online/offline switch. */
import type { SynclineConnection } from "../../src/index.js";
import { useSyncStatus } from "../../src/react.js";

const ORDER = ["offline", "connecting", "syncing", "synced"] as const;

interface Props {
  cart: SynclineConnection;
  stock: SynclineConnection;
  offline: boolean;
  onToggle: () => void;
}

export function StatusBar({ cart, stock, offline, onToggle }: Props) {
  const a = useSyncStatus(cart);
  const b = useSyncStatus(stock);
  // The page is as synced as its least synced connection.
  const status = ORDER[Math.min(ORDER.indexOf(a.status), ORDER.indexOf(b.status))] ?? "offline";
  return (
    <header className="status-bar">
      <h1>Syncline storefront</h1>
      <span className={`status status-${status}`} data-testid="status">{status}</span>
      <span className="pending">
        pending <strong data-testid="pending">{a.pending + b.pending}</strong>
      </span>
      <button data-testid="offline-toggle" aria-pressed={offline} onClick={onToggle}>
        {offline ? "Go online" : "Go offline"}
      </button>
    </header>
  );
}
