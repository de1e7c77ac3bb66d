import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  allOrders, listOrders, RestProblem, ValidationError, type ListOrdersOptions, type OrderSummary, type Payment, type Stage,
} from "../src/index.js";
import { Relay, synclineBin } from "./relay.js";
import { within } from "./deadline.js";

const TENANT = "jsorders";
const PRICES = { tee: 1299, mug: 450, cap: 800 };
let relay: Relay;
let token: string;
/** Each order as the relay last answered it (checkout, then each move). */
const placed = new Map<string, Record<string, unknown>>();

async function rest(path: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const response = await fetch(`${relay.httpUrl}/v1/tenants/${TENANT}/${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
}

async function checkout(id: string, items: [string, number][]): Promise<void> {
  for (const [product, quantity] of items) await rest(`carts/${id}/items`, { product, quantity });
  const answer = await rest(`carts/${id}/checkout`, { location: "north", actor: "till" });
  placed.set(id, answer.order as Record<string, unknown>);
}

async function move(id: string, what: "stage" | "payment" | "cancel", body: Record<string, unknown>): Promise<void> {
  placed.set(id, await rest(`orders/${id}/${what}`, { actor: "back-office", ...body }));
}

/** The summary the list should give of an order, from the order as the relay answered it. */
function summary(id: string): OrderSummary {
  const order = placed.get(id);
  assert.ok(order !== undefined, id);
  return {
    id, cart: order.cart as string, location: order.location as string, currency: order.currency as string,
    total: order.total as number, stage: order.stage as Stage, payment: order.payment as Payment,
    placed_at: order.placed_at as number, lines: (order.lines as unknown[]).length,
  };
}

function options(extra: Partial<ListOrdersOptions> = {}): ListOrdersOptions {
  return { url: relay.httpUrl, token, tenant: TENANT, ...extra };
}

async function collect(orders: AsyncIterable<OrderSummary>): Promise<OrderSummary[]> {
  const all: OrderSummary[] = [];
  for await (const order of orders) all.push(order);
  return all;
}

/** A fetch that records the URLs it is asked for, then fetches them. */
function recordingFetch(): { fetch: typeof fetch; urls: string[] } {
  const urls: string[] = [];
  const recorder = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    urls.push(String(input));
    return fetch(input, init);
  };
  return { fetch: recorder as typeof fetch, urls };
}

before(async () => {
  relay = await Relay.start();
  const file = join(relay.dataDir, "prices.json");
  writeFileSync(file, JSON.stringify({ currency: "EUR", prices: PRICES }));
  execFileSync(synclineBin(), ["catalog", "load", file, "--tenant", TENANT, "--data-dir", relay.dataDir],
    { stdio: ["ignore", "ignore", "inherit"] });
  token = await relay.token({ tenant: TENANT, docs: [`${TENANT}/*`] });
  await within((async () => {
    await checkout("o-1", [["tee", 2], ["mug", 1]]);
    await checkout("o-2", [["cap", 1]]);
    await checkout("o-3", [["mug", 3]]);
    await checkout("o-4", [["tee", 1], ["cap", 2]]);
    await checkout("o-5", [["mug", 1]]);
    await move("o-2", "stage", { stage: "confirmed" });
    await move("o-3", "payment", { status: "paid" });
    await move("o-4", "stage", { stage: "confirmed" });
    await move("o-4", "payment", { status: "authorized" });
    await move("o-4", "payment", { status: "paid" });
    await move("o-5", "cancel", { note: "customer left" });
  })(), 30_000, "five orders checked out and moved");
});

after(async () => {
  await relay.close();
});

describe("listOrders and allOrders against a real relay", () => {
  test("lists every order of the tenant in id order, as summaries", async () => {
    const page = await listOrders(options());
    assert.deepEqual(page.orders, ["o-1", "o-2", "o-3", "o-4", "o-5"].map(summary));
    assert.equal(page.nextCursor, null);
    assert.deepEqual(page.orders.map((o) => [o.id, o.stage, o.payment, o.total, o.lines]), [
      ["o-1", "placed", "pending", 2 * PRICES.tee + PRICES.mug, 2],
      ["o-2", "confirmed", "pending", PRICES.cap, 1],
      ["o-3", "placed", "paid", 3 * PRICES.mug, 1],
      ["o-4", "confirmed", "paid", PRICES.tee + 2 * PRICES.cap, 2],
      ["o-5", "cancelled", "pending", PRICES.mug, 1],
    ]);
  });

  test("takes the relay's sync address or its HTTP base, with or without a trailing slash", async () => {
    const recorded = recordingFetch();
    const expected = await listOrders(options());
    for (const url of [relay.wsUrl, `${relay.wsUrl}/`, `${relay.httpUrl}/`, relay.httpUrl]) {
      assert.deepEqual(await listOrders(options({ url, stage: "confirmed", fetch: recorded.fetch })),
        { orders: expected.orders.filter((o) => o.stage === "confirmed"), nextCursor: null }, url);
    }
    assert.deepEqual(new Set(recorded.urls), new Set([`${relay.httpUrl}/v1/tenants/${TENANT}/orders?stage=confirmed`]));
  });

  test("filters by stage, by payment, and by both", async () => {
    const ids = async (extra: Partial<ListOrdersOptions>): Promise<string[]> =>
      (await listOrders(options(extra))).orders.map((o) => o.id);
    assert.deepEqual(await ids({ stage: "confirmed" }), ["o-2", "o-4"]);
    assert.deepEqual(await ids({ stage: "cancelled" }), ["o-5"]);
    assert.deepEqual(await ids({ payment: "paid" }), ["o-3", "o-4"]);
    assert.deepEqual(await ids({ payment: "pending" }), ["o-1", "o-2", "o-5"]);
    assert.deepEqual(await ids({ stage: "confirmed", payment: "paid" }), ["o-4"]);
    assert.deepEqual(await ids({ stage: "completed" }), []);
  });

  test("pages of two, followed by their cursors, make up the unpaged list", async () => {
    const unpaged = (await listOrders(options())).orders;
    const pages: OrderSummary[][] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await listOrders(options({ limit: 2, ...(cursor === undefined ? {} : { cursor }) }));
      pages.push(page.orders);
      if (page.nextCursor === null) break;
      cursor = page.nextCursor;
    }
    assert.deepEqual(pages.map((p) => p.length), [2, 2, 1]);
    assert.deepEqual(pages.flat(), unpaged);
  });

  test("allOrders walks every page, with the filters", async () => {
    const unpaged = (await listOrders(options())).orders;
    const recorded = recordingFetch();
    assert.deepEqual(await collect(allOrders(options({ limit: 2, fetch: recorded.fetch }))), unpaged);
    assert.equal(recorded.urls.length, 3);
    assert.deepEqual(await collect(allOrders(options({ limit: 1, payment: "paid" }))),
      unpaged.filter((o) => o.payment === "paid"));
    const first = await listOrders(options({ limit: 2 }));
    assert.ok(first.nextCursor !== null);
    assert.deepEqual(await collect(allOrders(options({ cursor: first.nextCursor }))), unpaged.slice(2));
  });

  test("lists only the orders the token may read", async () => {
    const some = await relay.token({ tenant: TENANT, docs: [`${TENANT}/order/o-2`, `${TENANT}/order/o-5`] });
    assert.deepEqual((await listOrders(options({ token: some }))).orders, [summary("o-2"), summary("o-5")]);
  });

  test("a bad token rejects with a RestProblem of status 401", async () => {
    await assert.rejects(listOrders(options({ token: "not-a-token" })), (error: unknown) => {
      assert.ok(error instanceof RestProblem);
      assert.equal(error.status, 401);
      assert.equal(error.type, "https://syncline.dev/problems/unauthorized");
      assert.equal(error.title, "A valid token is required");
      assert.equal(error.instance, `/v1/tenants/${TENANT}/orders`);
      return true;
    });
    await assert.rejects(collect(allOrders(options({ token: "not-a-token" }))), { name: "RestProblem", status: 401 });
  });

  test("the relay's refusal of a cursor is a RestProblem with its type and detail", async () => {
    await assert.rejects(listOrders(options({ cursor: "not a cursor" })), (error: unknown) => {
      assert.ok(error instanceof RestProblem);
      assert.equal(error.status, 400);
      assert.equal(error.type, "https://syncline.dev/problems/invalid-parameter");
      assert.equal(error.detail, "cursor must be the next_cursor of a previous page");
      assert.equal(error.problem.status, 400);
      return true;
    });
  });

  test("an invalid stage, payment or limit throws a ValidationError before any request", async () => {
    const calls: unknown[] = [];
    const recorder = ((...args: unknown[]) => {
      calls.push(args);
      return Promise.reject(new Error("fetch must not be called"));
    }) as typeof fetch;
    const bad: [Partial<ListOrdersOptions>, string][] = [
      [{ stage: "shipped" as Stage }, "stage"],
      [{ stage: "Placed" as Stage }, "stage"],
      [{ payment: "settled" as Payment }, "payment"],
      [{ limit: 0 }, "limit"],
      [{ limit: 101 }, "limit"],
      [{ limit: 2.5 }, "limit"],
      [{ cursor: "" }, "cursor"],
      [{ tenant: "" }, "tenant"],
      [{ url: "ftp://127.0.0.1/" }, "url"],
      [{ url: "127.0.0.1:8787" }, "url"],
    ];
    for (const [extra, field] of bad) {
      const isField = (error: unknown): boolean => error instanceof ValidationError && error.field === field;
      await assert.rejects(listOrders(options({ ...extra, fetch: recorder })), isField, field);
      await assert.rejects(collect(allOrders(options({ ...extra, fetch: recorder }))), isField, field);
    }
    assert.deepEqual(calls, []);
  });

  test("an aborted signal aborts the request", async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(listOrders(options({ signal: controller.signal })), { name: "AbortError" });
  });
});
