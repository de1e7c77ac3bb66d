/**
 * Driving the storefront demo the relay serves at /demo/, by its data-testid attributes,
 * and what the browser suites share: the catalog, unique cart ids, screenshots.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { Relay } from "../relay.js";
import { launchChromium } from "./chromium.js";

export const TENANT = "demo";
/** Unit prices in cents, loaded as the tenant's catalog: the page's totals come from these. */
export const PRICES = { tee: 1299, mug: 450, cap: 999, sock: 300 };
export const WAIT_MS = 10_000;

/** What a suite's tests drive: a relay with the demo catalog, a Chromium and a tenant token. */
export interface DemoSuite {
  relay: Relay;
  browser: Browser;
  token: string;
}

/**
 * Inside a `describe`: start the relay (catalog loaded) and Chromium before its tests, close
 * them after; `ready` receives them once started.
 */
export function demoSuite(ready: (suite: DemoSuite) => void): void {
  let started: Partial<DemoSuite> = {};
  before(async () => {
    const [relay, browser] = await Promise.all([Relay.start(), launchChromium()]);
    started = { relay, browser };
    const token = await tenantToken(relay);
    loadCatalog(relay, TENANT, "EUR", PRICES);
    ready({ relay, browser, token });
  });
  after(async () => {
    await started.browser?.close();
    await started.relay?.close();
  });
}

let carts = 0;
/** A cart id no other test of this run uses (contexts start with empty IndexedDB, the relay's store does not). */
export function freshCart(label: string): string {
  carts += 1;
  return `${label}-${process.pid}-${carts}`;
}

export interface DemoOptions {
  token: string;
  cart: string;
  location?: string;
}

export async function openDemo(context: BrowserContext, relay: Relay, options: DemoOptions): Promise<Page> {
  const page = await context.newPage();
  const hash = new URLSearchParams({ token: options.token, tenant: TENANT, cart: options.cart,
    location: options.location ?? `loc-${options.cart}` });
  await page.goto(`${relay.httpUrl}/demo/#${hash.toString()}`);
  return page;
}

/** The text of a data-testid element (an input's value). */
export async function read(page: Page, testid: string): Promise<string | null> {
  return page.evaluate((id) => {
    const el = document.querySelector(`[data-testid="${id}"]`);
    if (el === null) return null;
    return el instanceof HTMLInputElement ? el.value : (el.textContent ?? "");
  }, testid);
}

/**
 * Wait until the element's text (or input value) satisfies `expected` (a string is matched exactly,
 * null means the element is absent); on timeout, fail saying what it was.
 */
export async function waitFor(page: Page, testid: string, expected: string | RegExp | null, timeout = WAIT_MS): Promise<void> {
  const matches = (value: string | null): boolean =>
    expected === null ? value === null
      : value !== null && (typeof expected === "string" ? value === expected : expected.test(value));
  const deadline = Date.now() + timeout;
  let value = await read(page, testid);
  while (!matches(value)) {
    if (Date.now() > deadline) {
      throw new Error(`data-testid="${testid}" is ${JSON.stringify(value)}, expected ${String(expected)}`);
    }
    await page.waitForTimeout(25);
    value = await read(page, testid);
  }
}

export async function click(page: Page, testid: string, times = 1): Promise<void> {
  for (let i = 0; i < times; i += 1) await page.click(`[data-testid="${testid}"]`);
}

/** Flip the page's online/offline switch and wait for the status it leads to. */
export async function goOffline(page: Page): Promise<void> {
  await click(page, "offline-toggle");
  await waitFor(page, "status", "offline");
}

export async function goOnline(page: Page): Promise<void> {
  await click(page, "offline-toggle");
  await waitFor(page, "status", "synced");
}

/** The relay's priced view of a cart, read over REST as a legacy client would. */
export async function restCart(relay: Relay, token: string, cart: string): Promise<{ total: number | null; lines: { product: string; quantity: number }[] }> {
  const response = await fetch(`${relay.httpUrl}/v1/tenants/${TENANT}/carts/${cart}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (!response.ok) throw new Error(`GET cart: ${response.status} ${await response.text()}`);
  return (await response.json()) as { total: number | null; lines: { product: string; quantity: number }[] };
}

/** The Python of the virtual environment the tests run in (README's set-up), else python3. */
export function python(): string {
  return process.env.VIRTUAL_ENV ? join(process.env.VIRTUAL_ENV, "bin", "python") : "python3";
}

/** Load `prices` (product to minor units) as `tenant`'s catalog with `syncline catalog load`. */
export function loadCatalog(relay: Relay, tenant: string, currency: string, prices: Record<string, number>): void {
  const file = join(relay.dataDir, `catalog-${tenant}.json`);
  writeFileSync(file, JSON.stringify({ currency, prices }));
  execFileSync(python(), ["-m", "syncline.app.cli", "catalog", "load", file, "--tenant", tenant,
    "--data-dir", relay.dataDir], { stdio: ["ignore", "ignore", "inherit"] });
}

/** A token for the whole demo tenant. */
export function tenantToken(relay: Relay, options: { readOnly?: boolean } = {}): Promise<string> {
  return relay.token({ tenant: TENANT, docs: [`${TENANT}/*`], readOnly: options.readOnly ?? false });
}

/** POST an item to a cart from Python (httpx), as a legacy back office would. */
export function pythonAddItem(relay: Relay, token: string, cart: string, product: string, quantity: number): void {
  const script = [
    "import httpx, sys",
    "url, token, product, quantity = sys.argv[1:5]",
    "r = httpx.post(url, json={'product': product, 'quantity': int(quantity)}, headers={'Authorization': 'Bearer ' + token})",
    "r.raise_for_status()",
  ].join("\n");
  execFileSync(python(), ["-c", script, `${relay.httpUrl}/v1/tenants/${TENANT}/carts/${cart}/items`, token, product,
    String(quantity)], { stdio: ["ignore", "ignore", "inherit"] });
}

const IMAGES = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..", "..", "docs", "images");

/** With SYNCLINE_SCREENSHOTS=1, save the page as docs/images/NAME.png (the docs' pictures). */
export async function screenshot(page: Page, name: string): Promise<void> {
  if (process.env.SYNCLINE_SCREENSHOTS !== "1") return;
  mkdirSync(IMAGES, { recursive: true });
  await page.screenshot({ path: join(IMAGES, `${name}.png`) });
}
