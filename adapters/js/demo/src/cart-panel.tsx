/** The shelf and the cart: quantities edited in the CRDT, prices and the total read from the relay. */
import type { Cart, CartLine } from "../../src/index.js";
import { money, PRODUCTS, productName } from "./products.js";
import type { ServerCart } from "./server-cart.js";

interface Props {
  cart: Cart;
  lines: readonly CartLine[];
  priced: ServerCart | null;
  pricingError: string | null;
  onError: (message: string) => void;
}

/** The line the shelf's buttons edit: the product without attributes. */
function plainLine(lines: readonly CartLine[], product: string): CartLine | undefined {
  return lines.find((line) => line.productId === product && Object.keys(line.attributes).length === 0);
}

export function CartPanel({ cart, lines, priced, pricingError, onError }: Props) {
  const unitPrices = new Map(priced?.lines.map((l) => [l.product, l.unit_price]) ?? []);
  const serverLines = new Map(priced?.lines.map((l) => [l.id, l]) ?? []);
  const attempt = (edit: () => void) => {
    try {
      edit();
    } catch (error) {
      onError(error instanceof Error ? error.message : String(error));
    }
  };

  return (
    <>
      <section className="panel shelf">
        <h2>Products</h2>
        <ul>
          {PRODUCTS.map((product) => (
            <li key={product.id}>
              <span className="name">{product.name}</span>
              <span className="price">{money(unitPrices.get(product.id), priced?.currency)}</span>
              <button data-testid={`add-${product.id}`} onClick={() => attempt(() => cart.addItem(product.id, 1))}>
                Add
              </button>
            </li>
          ))}
        </ul>
      </section>
      <section className="panel cart">
        <h2>Cart</h2>
        {lines.length === 0 ? <p className="empty">The cart is empty.</p> : null}
        <table>
          <tbody>
            {lines.map((line) => {
              const plain = plainLine(lines, line.productId) === line;
              const server = serverLines.get(line.key);
              return (
                <tr key={line.key}>
                  <td className="name">
                    {productName(line.productId)}
                    {Object.keys(line.attributes).length > 0 ? (
                      <span className="attributes"> {JSON.stringify(line.attributes)}</span>
                    ) : null}
                  </td>
                  <td>
                    <input
                      type="number"
                      min={0}
                      value={line.quantity}
                      aria-label={`quantity of ${productName(line.productId)}`}
                      data-testid={plain ? `qty-${line.productId}` : undefined}
                      onChange={(event) => {
                        const n = Number.parseInt(event.target.value, 10);
                        if (Number.isInteger(n) && n >= 0) attempt(() => cart.setQuantity(line.key, n));
                      }}
                    />
                  </td>
                  <td className="money">{server ? money(server.line_total, priced?.currency) : "…"}</td>
                  <td>
                    <button
                      className="remove"
                      data-testid={plain ? `remove-${line.productId}` : undefined}
                      aria-label={`remove ${productName(line.productId)}`}
                      onClick={() => attempt(() => cart.removeLine(line.key))}
                    >
                      ×
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        <p className="total">
          Total (priced by the relay): <strong data-testid="total">{money(priced?.total, priced?.currency)}</strong>
        </p>
        {pricingError ? <p className="hint">Pricing unavailable: {pricingError}</p> : null}
        {priced && priced.lines.some((l) => l.unit_price === null) ? (
          <p className="hint">
            Some products have no price: load a catalog with <code>syncline catalog load FILE --tenant TENANT</code>.
          </p>
        ) : null}
      </section>
    </>
  );
}
