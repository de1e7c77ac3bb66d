/**
 * Debian's Chromium for the browser tests, driven by playwright-core.
 *
 * Without /usr/bin/chromium the suites skip, visibly, on a developer's machine; in CI
 * (`CI=true`) or when services are required (`SYNCLINE_REQUIRE_SERVICES=1`, as .ci/run sets)
 * they fail instead, saying how to install it.
 */
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

export const CHROMIUM = process.env.SYNCLINE_CHROMIUM ?? "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"];

const required = process.env.CI === "true" || process.env.SYNCLINE_REQUIRE_SERVICES === "1";
const missing = `Chromium is not installed at ${CHROMIUM}: install it with \`apt-get install -y chromium\``;

/** The reason to skip a browser suite here, or false to run it (and fail if Chromium is missing but required). */
export const skipBrowser: string | false = existsSync(CHROMIUM) || required ? false : `${missing} (skipped)`;

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(missing);
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS });
}
