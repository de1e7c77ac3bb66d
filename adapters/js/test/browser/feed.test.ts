/**
 * The demo's change-feed panel (ChangeFeed over SSE) across a restart of the relay: it
 * reconnects, resumes after the last event it saw, and neither loses nor repeats events.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Browser } from "playwright-core";
import { skipBrowser } from "./chromium.js";
import { freshCart, openDemo, pythonAddItem, TENANT, waitFor, demoSuite } from "./demo-page.js";
import type { Relay } from "../relay.js";

describe("the demo's change feed", { skip: skipBrowser }, () => {
  let relay: Relay;
  let browser: Browser;
  let token: string;
  demoSuite((suite) => ({ relay, browser, token } = suite));

  test("resumes after the relay restarts, without losing or repeating events", async () => {
    const cart = freshCart("feed");
    const context = await browser.newContext();
    const page = await openDemo(context, relay, { token, cart });
    await waitFor(page, "status", "synced");
    await waitFor(page, "feed-status", "open");

    pythonAddItem(relay, token, cart, "tee", 1);
    await waitFor(page, "qty-tee", "1");
    await waitFor(page, "feed", /cart\.add_item/);
    const before = await page.locator('[data-testid="feed"] li').count();

    await relay.restart();
    pythonAddItem(relay, token, cart, "sock", 2);  // written while the page's feed is reconnecting
    await waitFor(page, "qty-sock", "2");
    await waitFor(page, "status", "synced");
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="feed"] li').length === n + 1, before,
      { timeout: 15_000 });
    await waitFor(page, "feed-status", "open");
    const docs = await page.locator('[data-testid="feed"] li').allTextContents();
    assert.equal(docs.filter((text) => text.includes(`${TENANT}/cart/${cart}`)).length, before + 1);
    await context.close();
  });
});
