/** A location's stock ledger: levels, sales and restocks as adjustments, oversold skus as conflicts. */
import type { StockLedger } from "../../src/index.js";
import { PRODUCTS, productName } from "./products.js";

const ACTOR = "storefront-demo";

interface Props {
  ledger: StockLedger;
  levels: Readonly<Record<string, number>>;
  conflicts: readonly { id: string; sku: string; level: number }[];
  onError: (message: string) => void;
}

export function StockPanel({ ledger, levels, conflicts, onError }: Props) {
  const attempt = (edit: () => void) => {
    try {
      edit();
    } catch (error) {
      onError(error instanceof Error ? error.message : String(error));
    }
  };
  return (
    <section className="panel stock">
      <h2>Stock</h2>
      <table>
        <tbody>
          {PRODUCTS.map((product) => (
            <tr key={product.id}>
              <td className="name">{product.name}</td>
              <td className="level" data-testid={`level-${product.id}`}>{levels[product.id] ?? 0}</td>
              <td>
                <button data-testid={`receive-${product.id}`}
                  onClick={() => attempt(() => ledger.record(product.id, 5, { reason: "restock", actor: ACTOR }))}>
                  +5
                </button>
                <button data-testid={`sell-${product.id}`}
                  onClick={() => attempt(() => ledger.record(product.id, -1, { reason: "sale", actor: ACTOR }))}>
                  −1
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Conflicts</h3>
      <ul data-testid="conflicts" className="conflicts">
        {conflicts.map((conflict) => (
          <li key={conflict.id} data-conflict={conflict.id}>
            {productName(conflict.sku)} oversold: level {conflict.level}
            <button data-testid={`compensate-${conflict.sku}`}
              onClick={() => attempt(() => ledger.resolve(conflict.id, "compensate", { actor: ACTOR }))}>
              Compensate
            </button>
          </li>
        ))}
      </ul>
      {conflicts.length === 0 ? <p className="empty">No conflicts.</p> : null}
    </section>
  );
}
