/**
 * The demo beside the relay's other doors: a REST write made from Python appears in the page
 * (on the same line the page edits: one line key in both languages), and a read-only token's
 * edit is undone in the page with the relay's reason shown.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Browser } from "playwright-core";
import { skipBrowser } from "./chromium.js";
import { click, freshCart, openDemo, PRICES, pythonAddItem, read, restCart, waitFor, demoSuite, tenantToken } from "./demo-page.js";
import type { Relay } from "../relay.js";

describe("the storefront demo and the relay's other doors", { skip: skipBrowser }, () => {
  let relay: Relay;
  let browser: Browser;
  let token: string;
  demoSuite((suite) => ({ relay, browser, token } = suite));

  test("a REST write from Python shows in the page, on the line the page edits", async () => {
    const cart = freshCart("rest");
    const context = await browser.newContext();
    const page = await openDemo(context, relay, { token, cart });
    await waitFor(page, "status", "synced");

    pythonAddItem(relay, token, cart, "mug", 2);
    await waitFor(page, "qty-mug", "2");
    await waitFor(page, "total", `€${((2 * PRICES.mug) / 100).toFixed(2)}`);

    await click(page, "add-mug");
    await waitFor(page, "qty-mug", "3");
    assert.equal(await page.locator('input[type="number"]').count(), 1, "one line for the product, whoever added it");
    await waitFor(page, "pending", "0");
    const server = await restCart(relay, token, cart);
    assert.deepEqual(server.lines.map((l) => [l.product, l.quantity]), [["mug", 3]]);
    assert.equal(server.total, 3 * PRICES.mug);
    await context.close();
  });

  test("a read-only token's edit is rolled back in the page, saying why", async () => {
    const cart = freshCart("readonly");
    const context = await browser.newContext();
    pythonAddItem(relay, token, cart, "cap", 1);
    const page = await openDemo(context, relay, { token: await tenantToken(relay, { readOnly: true }), cart });
    await waitFor(page, "qty-cap", "1");
    assert.equal(await read(page, "rollback"), null, "no rollback before any edit");

    await click(page, "add-tee");
    await waitFor(page, "rollback", /read.?only|forbidden|refused/i);
    await waitFor(page, "qty-tee", null);
    await waitFor(page, "qty-cap", "1");
    assert.deepEqual((await restCart(relay, token, cart)).lines.map((l) => [l.product, l.quantity]), [["cap", 1]]);
    await context.close();
  });
});
