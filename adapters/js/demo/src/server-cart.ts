/**
 * The relay's priced view of the cart (`GET /v1/tenants/T/carts/C`): unit prices, line totals
 * and the total come from the tenant's catalog on the server, never from the page.
 */
import { useEffect, useRef, useState } from "react";
import type { DemoSettings } from "./settings.js";

export interface ServerLine {
  id: string;
  product: string;
  quantity: number;
  unit_price: number | null;
  line_total: number | null;
}

export interface ServerCart {
  lines: ServerLine[];
  total: number | null;
  currency: string | null;
  total_quantity: number;
}

/**
 * Re-read the priced cart whenever `version` changes (the page bumps it when the cart changes
 * and when the relay acknowledges an edit). Answers that arrive out of order are dropped.
 */
export function useServerCart(settings: DemoSettings, version: number): { cart: ServerCart | null; error: string | null } {
  const [state, setState] = useState<{ cart: ServerCart | null; error: string | null }>({ cart: null, error: null });
  const latest = useRef(0);
  useEffect(() => {
    const asked = ++latest.current;
    const controller = new AbortController();
    const url = `${settings.httpUrl}/v1/tenants/${encodeURIComponent(settings.tenant)}/carts/${encodeURIComponent(settings.cart)}`;
    fetch(url, { headers: { Authorization: `Bearer ${settings.token}` }, signal: controller.signal })
      .then(async (response) => {
        if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
        const body = (await response.json()) as ServerCart;
        if (asked === latest.current) setState({ cart: body, error: null });
      })
      .catch((error: unknown) => {
        if (controller.signal.aborted) return;
        if (asked === latest.current) setState((s) => ({ cart: s.cart, error: String(error) }));
      });
    return () => controller.abort();
  }, [settings, version]);
  return state;
}
