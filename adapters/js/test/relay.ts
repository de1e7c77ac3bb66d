/**
 * A real Syncline relay for tests: `syncline serve` in a subprocess, on 127.0.0.1, a
 * free port and a temporary data directory.
 *
 *     const relay = await Relay.start();
 *     const token = await relay.token({ tenant: "t", docs: ["t/*"] });
 *     // relay.wsUrl = "ws://127.0.0.1:PORT/v1/sync", relay.httpUrl = "http://127.0.0.1:PORT"
 *     await relay.stop();      // SIGTERM, then SIGKILL after a grace period
 *     await relay.restart();   // the same port and data directory
 *     await relay.close();     // stop and delete the data directory
 *
 * The `syncline` executable is `$SYNCLINE_BIN`, else `$VIRTUAL_ENV/bin/syncline`, else
 * `syncline` on the PATH (run the tests from an activated venv). Tokens are minted
 * with `syncline token` and the relay's secret, so they are the ones the CLI gives.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TokenOptions {
  tenant: string;
  /** Document patterns (`t/*`, `t/cart/*`, `t/cart/c-1`). */
  docs: string[];
  readOnly?: boolean;
  ttlSeconds?: number;
  subject?: string;
}

export interface RelayOptions {
  /** Extra `syncline serve` flags, e.g. `["--feed-retention-seconds", "5"]`. */
  args?: string[];
  /** Milliseconds to wait for /readyz (default 20,000). */
  readyTimeoutMs?: number;
}

/** The `syncline` executable the tests run. */
export function synclineBin(): string {
  if (process.env.SYNCLINE_BIN) return process.env.SYNCLINE_BIN;
  if (process.env.VIRTUAL_ENV) return join(process.env.VIRTUAL_ENV, "bin", "syncline");
  return "syncline";
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class Relay {
  readonly port: number;
  readonly dataDir: string;
  readonly secret: string;
  private readonly options: RelayOptions;
  private child: ChildProcess | null = null;
  private output = "";

  private constructor(port: number, dataDir: string, options: RelayOptions) {
    this.port = port;
    this.dataDir = dataDir;
    this.secret = randomBytes(32).toString("hex");
    this.options = options;
  }

  /** Start a relay on a free port with a new data directory, ready to serve. */
  static async start(options: RelayOptions = {}): Promise<Relay> {
    const relay = new Relay(await freePort(), mkdtempSync(join(tmpdir(), "syncline-js-")), options);
    await relay.launch();
    return relay;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The sync endpoint without the document, as `SynclineConnection` takes it. */
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/v1/sync`;
  }

  /** The relay's stdout and stderr so far (for failure messages). */
  get log(): string {
    return this.output;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** Mint a token with `syncline token`. */
  token(options: TokenOptions): Promise<string> {
    const args = ["token", "--secret", this.secret, "--tenant", options.tenant];
    for (const doc of options.docs) args.push("--doc", doc);
    if (options.readOnly) args.push("--read-only");
    if (options.ttlSeconds !== undefined) args.push("--ttl", String(options.ttlSeconds));
    if (options.subject !== undefined) args.push("--subject", options.subject);
    return new Promise((resolve, reject) => {
      execFile(synclineBin(), args, (error, stdout, stderr) => {
        if (error) reject(new Error(`syncline token failed: ${stderr || error.message}`));
        else resolve(stdout.trim());
      });
    });
  }

  /** Start the process again on the same port and data directory. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  async stop(graceMs = 5_000): Promise<void> {
    const child = this.child;
    if (child === null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
    this.child = null;
  }

  /** SIGSTOP: the process stops answering but keeps its connections open (a frozen relay). */
  freeze(): void {
    this.child?.kill("SIGSTOP");
  }

  /** SIGCONT: a frozen relay goes on. */
  thaw(): void {
    this.child?.kill("SIGCONT");
  }

  /** SIGKILL at once (a crash): nothing is flushed that was not already durable. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGKILL");
    await exited;
    this.child = null;
  }

  /** Stop the relay and delete its data directory. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    const args = ["serve", "--host", "127.0.0.1", "--port", String(this.port), "--data-dir", this.dataDir,
      "--secret", this.secret, ...(this.options.args ?? [])];
    const child = spawn(synclineBin(), args, { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    child.stdout?.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    let exitCode: number | null | undefined;
    child.once("exit", (code) => {
      exitCode = code;
      if (this.child === child) this.child = null;
    });
    const deadline = Date.now() + (this.options.readyTimeoutMs ?? 20_000);
    while (Date.now() < deadline) {
      if (exitCode !== undefined) throw new Error(`syncline serve exited with ${exitCode}:\n${this.output}`);
      try {
        const response = await fetch(`${this.httpUrl}/readyz`);
        if (response.ok) return;
      } catch (error) {
        if (!(error instanceof TypeError)) throw error; // TypeError: not listening yet
      }
      await sleep(50);
    }
    await this.kill();
    throw new Error(`syncline serve was not ready in time:\n${this.output}`);
  }
}
