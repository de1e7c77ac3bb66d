/**
 * What the demo page reads from its address: `#token=...&tenant=demo&cart=c-1&location=store-1`.
 * The relay's own origin serves the page, so the WebSocket and REST addresses derive from it.
 */
export interface DemoSettings {
  token: string;
  tenant: string;
  cart: string;
  location: string;
  /** ws://host:port/v1/sync */
  syncUrl: string;
  /** http://host:port */
  httpUrl: string;
}

export function readSettings(where: Location): DemoSettings | null {
  const params = new URLSearchParams(where.hash.replace(/^#/, ""));
  const token = params.get("token");
  if (!token) return null;
  const wsScheme = where.protocol === "https:" ? "wss:" : "ws:";
  return {
    token,
    tenant: params.get("tenant") ?? "demo",
    cart: params.get("cart") ?? "c-1",
    location: params.get("location") ?? "store-1",
    syncUrl: `${wsScheme}//${where.host}/v1/sync`,
    httpUrl: where.origin,
  };
}

const OFFLINE_KEY = "syncline-demo-offline";

/** The online/offline switch outlives a reload of the tab (sessionStorage), so a reload stays offline. */
export function storedOffline(): boolean {
  return sessionStorage.getItem(OFFLINE_KEY) === "1";
}

export function storeOffline(offline: boolean): void {
  if (offline) sessionStorage.setItem(OFFLINE_KEY, "1");
  else sessionStorage.removeItem(OFFLINE_KEY);
}
