/**
 * Listing a tenant's orders over REST (`GET /v1/tenants/{tenant}/orders`, docs/rest.md).
 *
 * One order is a document, read and moved through a connection with {@link Order}; a list
 * spans documents, so it is a query to the relay. A page holds up to `limit` order
 * summaries in id order, filtered by stage and payment on the relay, and `nextCursor`
 * where the next page goes on (null at the end). A filtered page may hold fewer than
 * `limit`, even none, and still have a next page: follow `nextCursor`, as
 * {@link allOrders} does.
 */
import { ValidationError } from "./errors.js";
import { PAYMENTS, STAGES, type Payment, type Stage } from "./order.js";
import { checkId, checkInt } from "./validation.js";

/** The relay's largest page (docs/rest.md: `limit` is at most 100, 25 by default). */
export const MAX_ORDER_PAGE = 100;

/** One order of a list, as the relay summarises it; amounts in the currency's minor unit. */
export interface OrderSummary {
  readonly id: string;
  readonly cart: string;
  readonly location: string;
  readonly currency: string;
  readonly total: number;
  readonly stage: Stage;
  readonly payment: Payment;
  /** When the checkout placed it, epoch milliseconds. */
  readonly placed_at: number;
  /** How many lines it holds (read the order for them). */
  readonly lines: number;
}

/** One page of orders; `nextCursor` is opaque (pass it back as it is), null after the last page. */
export interface OrderPage {
  readonly orders: OrderSummary[];
  readonly nextCursor: string | null;
}

export interface ListOrdersOptions {
  /** The relay: `http(s)://host:port`, or its sync address `ws(s)://host:port/v1/sync`. */
  url: string;
  /** Sent as `Authorization: Bearer TOKEN`; the list holds only the orders it may read. */
  token: string;
  tenant: string;
  /** Only orders at this stage. */
  stage?: Stage;
  /** Only orders with this payment status. */
  payment?: Payment;
  /** Orders per page, 1 to {@link MAX_ORDER_PAGE} (the relay's default: 25). */
  limit?: number;
  /** Go on after a previous page: its `nextCursor`. */
  cursor?: string;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

/**
 * Raised when the relay answers a REST request with an error: its HTTP `status` and the
 * RFC 9457 problem's `type`, `title` and `detail` (`problem` holds the whole body, with
 * extension members such as `retry_after`).
 */
export class RestProblem extends Error {
  readonly status: number;
  /** `https://syncline.dev/problems/{name}`, or `about:blank` when the body was no problem. */
  readonly type: string;
  readonly title: string;
  readonly detail: string | null;
  readonly instance: string | null;
  readonly problem: Readonly<Record<string, unknown>>;
  constructor(status: number, problem: Record<string, unknown>, statusText = "") {
    const type = typeof problem.type === "string" ? problem.type : "about:blank";
    const title = typeof problem.title === "string" ? problem.title : statusText || `HTTP ${status}`;
    const detail = typeof problem.detail === "string" ? problem.detail : null;
    super(`${status} ${title}${detail === null ? "" : `: ${detail}`}`);
    this.name = new.target.name;
    this.status = status;
    this.type = type;
    this.title = title;
    this.detail = detail;
    this.instance = typeof problem.instance === "string" ? problem.instance : null;
    this.problem = problem;
  }
}

/** One page of the tenant's orders. Invalid options throw {@link ValidationError} before any request. */
export async function listOrders(options: ListOrdersOptions): Promise<OrderPage> {
  const url = ordersUrl(options);
  const fetchImpl = options.fetch ?? globalThis.fetch; // called unbound: a browser's fetch refuses another `this`
  const init: RequestInit = {
    headers: { Accept: "application/json", Authorization: `Bearer ${options.token}` },
  };
  if (options.signal !== undefined) init.signal = options.signal;
  const response = await fetchImpl(url, init);
  if (!response.ok) throw await problemOf(response);
  return pageOf(await response.json());
}

/** Every order matching the filters, page after page (from `cursor` when given). */
export async function* allOrders(options: ListOrdersOptions): AsyncGenerator<OrderSummary, void, undefined> {
  let cursor = options.cursor;
  for (;;) {
    const page = await listOrders({ ...options, cursor });
    yield* page.orders;
    if (page.nextCursor === null) return;
    cursor = page.nextCursor;
  }
}

// -- internals ----------------------------------------------------------------------------

/** The list's URL for `options`, every option checked. */
function ordersUrl(options: ListOrdersOptions): string {
  const tenant = checkId(options.tenant, "tenant");
  const url = new URL(`${restBase(options.url)}/v1/tenants/${encodeURIComponent(tenant)}/orders`);
  if (options.stage !== undefined) url.searchParams.set("stage", oneOf(options.stage, STAGES, "stage"));
  if (options.payment !== undefined) url.searchParams.set("payment", oneOf(options.payment, PAYMENTS, "payment"));
  if (options.limit !== undefined) url.searchParams.set("limit", String(checkInt(options.limit, "limit", 1, MAX_ORDER_PAGE)));
  if (options.cursor !== undefined) url.searchParams.set("cursor", checkId(options.cursor, "cursor"));
  return url.toString();
}

/** `ws(s)://host:port/v1/sync` or `http(s)://host:port[/]` → `http(s)://host:port`, keeping any path prefix. */
function restBase(address: string): string {
  let url: URL;
  try {
    url = new URL(address);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    throw new ValidationError("url", `must be an absolute URL, not ${JSON.stringify(address)}`);
  }
  const scheme = ({ "ws:": "http:", "wss:": "https:", "http:": "http:", "https:": "https:" } as Record<string, string>)[url.protocol];
  if (scheme === undefined) throw new ValidationError("url", `must be ws:, wss:, http: or https:, not ${url.protocol}`);
  const path = url.pathname.replace(/\/+$/, "").replace(/\/v1\/sync$/, "");
  return `${scheme}//${url.host}${path}`;
}

function oneOf<T extends string>(value: unknown, names: readonly T[], field: string): T {
  if (typeof value !== "string" || !(names as readonly string[]).includes(value)) {
    throw new ValidationError(field, `must be one of ${names.join(", ")}, not ${JSON.stringify(value)}`);
  }
  return value as T;
}

function pageOf(body: unknown): OrderPage {
  const page = body as { orders?: unknown; next_cursor?: unknown } | null;
  if (typeof page !== "object" || page === null || !Array.isArray(page.orders)
    || !(page.next_cursor === null || typeof page.next_cursor === "string")) {
    throw new TypeError("the relay's answer is not a page of orders ({orders, next_cursor})");
  }
  return { orders: page.orders as OrderSummary[], nextCursor: page.next_cursor };
}

/** The error answer as a {@link RestProblem}, its body read whatever it holds. */
async function problemOf(response: Response): Promise<RestProblem> {
  const text = await response.text();
  let problem: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) problem = parsed as Record<string, unknown>;
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error; // not JSON (a proxy's page): the status says enough
  }
  return new RestProblem(response.status, problem, response.statusText);
}
