/**
 * The storefront demo: one connection to the cart, one to the location's stock ledger and the
 * change feed, all to the relay that serves the page.
 */
import { useEffect, useMemo, useReducer, useState } from "react";
import { ChangeFeed, connect } from "../../src/index.js";
import { useCart, useStockLedger, useSyncStatus } from "../../src/react.js";
import { CartPanel } from "./cart-panel.js";
import { FeedPanel } from "./feed-panel.js";
import { useServerCart } from "./server-cart.js";
import { type DemoSettings, storedOffline, storeOffline } from "./settings.js";
import { StatusBar } from "./status-bar.js";
import { StockPanel } from "./stock-panel.js";

export function App({ settings }: { settings: DemoSettings }) {
  const { cartConnection, stockConnection, feed } = useMemo(() => {
    const base = { url: settings.syncUrl, token: settings.token };
    return {
      cartConnection: connect({ ...base, document: `${settings.tenant}/cart/${settings.cart}` }),
      stockConnection: connect({ ...base, document: `${settings.tenant}/stock/${settings.location}` }),
      feed: new ChangeFeed({ url: `${settings.httpUrl}/v1/tenants/${settings.tenant}/events`, token: settings.token }),
    };
  }, [settings]);

  const [offline, setOffline] = useState(storedOffline);
  useEffect(() => {
    for (const connection of [cartConnection, stockConnection]) {
      if (offline) connection.pause();
      else connection.resume();
    }
    storeOffline(offline);
  }, [offline, cartConnection, stockConnection]);

  const [rollback, setRollback] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const off = [cartConnection, stockConnection].map((connection) =>
      connection.on("rollback", ({ reason, undone }) => setRollback(`${reason} (${undone} edit${undone === 1 ? "" : "s"} undone)`)),
    );
    return () => off.forEach((unsubscribe) => unsubscribe());
  }, [cartConnection, stockConnection]);

  const { cart, view } = useCart(cartConnection, settings.cart);
  const { ledger, view: stock } = useStockLedger(stockConnection, settings.location);
  const { acknowledged } = useSyncStatus(cartConnection);
  // Re-price when the cart changes (a remote change is already on the relay) and when the relay acknowledges ours.
  const [version, bump] = useReducer((n: number) => n + 1, 0);
  useEffect(() => cart.observe(bump), [cart]);
  useEffect(bump, [acknowledged]);
  const priced = useServerCart(settings, version);

  return (
    <>
      <StatusBar cart={cartConnection} stock={stockConnection} offline={offline} onToggle={() => setOffline(!offline)} />
      {rollback ? (
        <p className="banner rollback" role="alert">
          The relay refused an edit, undone here: <span data-testid="rollback">{rollback}</span>
          <button onClick={() => setRollback(null)}>Dismiss</button>
        </p>
      ) : null}
      {error ? (
        <p className="banner error" role="alert">
          {error} <button onClick={() => setError(null)}>Dismiss</button>
        </p>
      ) : null}
      <main>
        <CartPanel cart={cart} lines={view.lines} priced={priced.cart} pricingError={priced.error} onError={setError} />
        <StockPanel ledger={ledger} levels={stock.levels} conflicts={stock.conflicts} onError={setError} />
        <FeedPanel feed={feed} />
      </main>
    </>
  );
}
