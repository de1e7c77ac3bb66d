/** The demo's shelf. Prices are not here: the relay prices carts from the tenant's catalog. */
export interface Product {
  id: string;
  name: string;
}

export const PRODUCTS: readonly Product[] = [
  { id: "tee", name: "T-shirt" },
  { id: "mug", name: "Mug" },
  { id: "cap", name: "Cap" },
  { id: "sock", name: "Socks" },
];

export function productName(id: string): string {
  return PRODUCTS.find((p) => p.id === id)?.name ?? id;
}

/** Minor units as money, e.g. 2598 EUR as "€25.98"; "—" when the server has no price. */
export function money(cents: number | null | undefined, currency: string | null | undefined): string {
  if (cents === null || cents === undefined || !currency) return "—";
  return new Intl.NumberFormat("en", { style: "currency", currency }).format(cents / 100);
}
