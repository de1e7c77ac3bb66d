/**
 * The storefront demo in real Chromium against a real relay: tabs of one browser sync through
 * BroadcastChannel, separate browsers through the relay, an offline tab keeps its edits in
 * IndexedDB across a reload and merges them on reconnecting, and concurrent offline sales
 * surface as a stock conflict on every replica.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Browser } from "playwright-core";
import { skipBrowser } from "./chromium.js";
import { click, freshCart, goOffline, goOnline, openDemo, PRICES, read, restCart, screenshot, waitFor, demoSuite } from "./demo-page.js";
import type { Relay } from "../relay.js";

describe("the storefront demo syncing", { skip: skipBrowser }, () => {
  let relay: Relay;
  let browser: Browser;
  let token: string;
  demoSuite((suite) => ({ relay, browser, token } = suite));

  test("two tabs of one browser sync through BroadcastChannel while the relay is down", async () => {
    const cart = freshCart("tabs");
    const context = await browser.newContext();
    const a = await openDemo(context, relay, { token, cart });
    const b = await openDemo(context, relay, { token, cart });
    await waitFor(a, "status", "synced");
    await waitFor(b, "status", "synced");
    await relay.stop();
    await waitFor(a, "status", /offline|connecting/);

    await click(a, "add-tee", 2);
    await waitFor(b, "qty-tee", "2");
    await click(b, "add-mug");
    await waitFor(a, "qty-mug", "1");
    assert.notEqual(await read(a, "pending"), "0", "the relay has not acknowledged the edits");

    await relay.restart();
    await waitFor(a, "pending", "0", 15_000);
    await waitFor(b, "pending", "0", 15_000);
    assert.deepEqual((await restCart(relay, token, cart)).lines.map((l) => [l.product, l.quantity]).sort(),
      [["mug", 1], ["tee", 2]]);
    await context.close();
  });

  test("an offline tab keeps its edits pending while another browser's pass through the relay", async () => {
    const cart = freshCart("offline");
    const [one, two] = [await browser.newContext(), await browser.newContext()];
    const a = await openDemo(one, relay, { token, cart });
    const b = await openDemo(two, relay, { token, cart });
    await waitFor(a, "status", "synced");
    await waitFor(b, "status", "synced");
    await goOffline(a);
    await click(a, "add-tee", 2);
    await click(b, "add-mug");
    await waitFor(b, "pending", "0");
    await waitFor(a, "qty-tee", "2");
    assert.equal(await read(a, "qty-mug"), null, "nothing reaches the offline tab");
    assert.notEqual(await read(a, "pending"), "0");
    await screenshot(a, "demo-offline");
    assert.deepEqual((await restCart(relay, token, cart)).lines.map((l) => l.product), ["mug"]);

    await goOnline(a);
    await waitFor(a, "qty-mug", "1");
    await waitFor(b, "qty-tee", "2");
    await Promise.all([one.close(), two.close()]);
  });

  test("two browsers sync through the relay, which prices the cart", async () => {
    const cart = freshCart("relay");
    const [one, two] = [await browser.newContext(), await browser.newContext()];
    const a = await openDemo(one, relay, { token, cart });
    const b = await openDemo(two, relay, { token, cart });
    await waitFor(a, "status", "synced");
    await waitFor(b, "status", "synced");

    await click(a, "add-tee", 2);
    await waitFor(b, "qty-tee", "2");
    await click(b, "add-mug");
    await b.fill('[data-testid="qty-mug"]', "3");
    await waitFor(a, "qty-mug", "3");
    const expected = `€${((2 * PRICES.tee + 3 * PRICES.mug) / 100).toFixed(2)}`;
    await waitFor(a, "total", expected);
    await waitFor(b, "total", expected);
    assert.equal((await restCart(relay, token, cart)).total, 2 * PRICES.tee + 3 * PRICES.mug);

    await click(b, "remove-tee");
    await waitFor(a, "qty-tee", null);
    await waitFor(a, "total", `€${((3 * PRICES.mug) / 100).toFixed(2)}`);
    await click(a, "add-cap");
    await waitFor(b, "qty-cap", "1");
    await screenshot(a, "demo-two-tabs");
    await Promise.all([one.close(), two.close()]);
  });

  test("an offline tab's edits survive a reload and merge with another browser's when it reconnects", async () => {
    const cart = freshCart("reload");
    const [one, two] = [await browser.newContext(), await browser.newContext()];
    const a = await openDemo(one, relay, { token, cart });
    const b = await openDemo(two, relay, { token, cart });
    await waitFor(a, "status", "synced");
    await waitFor(b, "status", "synced");
    await goOffline(a);
    await click(a, "add-tee");
    await click(a, "add-cap", 2);
    await click(b, "add-tee");
    await waitFor(b, "pending", "0");

    await a.reload();
    await waitFor(a, "status", "offline");  // the switch outlives the reload, so this is IndexedDB's copy
    await waitFor(a, "qty-tee", "1");
    await waitFor(a, "qty-cap", "2");
    assert.notEqual(await read(a, "pending"), "0", "the reloaded tab still knows its edits are unacknowledged");

    await goOnline(a);
    await waitFor(a, "qty-tee", "2");
    await waitFor(b, "qty-tee", "2");
    await waitFor(b, "qty-cap", "2");
    await waitFor(a, "pending", "0");
    assert.equal((await restCart(relay, token, cart)).total, 2 * PRICES.tee + 2 * PRICES.cap);
    await Promise.all([one.close(), two.close()]);
  });

  test("two offline tills selling the last items show the same stock conflict once they reconnect", async () => {
    const cart = freshCart("stock");
    const location = `loc-${cart}`;
    const [one, two] = [await browser.newContext(), await browser.newContext()];
    const a = await openDemo(one, relay, { token, cart, location });
    const b = await openDemo(two, relay, { token, cart, location });
    await waitFor(a, "status", "synced");
    await waitFor(b, "status", "synced");
    await click(a, "receive-sock");
    await waitFor(b, "level-sock", "5");

    await goOffline(a);
    await goOffline(b);
    await click(a, "sell-sock", 3);
    await click(b, "sell-sock", 3);
    await waitFor(a, "level-sock", "2");
    await waitFor(b, "level-sock", "2");
    await goOnline(a);
    await goOnline(b);

    await waitFor(a, "level-sock", "-1");
    await waitFor(b, "level-sock", "-1");
    await waitFor(a, "conflicts", /Socks oversold: level -1/);
    await waitFor(b, "conflicts", /Socks oversold: level -1/);
    await screenshot(a, "demo-stock-conflict");

    await click(b, "compensate-sock");
    await waitFor(a, "level-sock", "0");
    await waitFor(a, "conflicts", "");
    await Promise.all([one.close(), two.close()]);
  });
});
