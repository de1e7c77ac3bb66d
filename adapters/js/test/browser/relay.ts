/**
 * A real `syncline serve` subprocess on a loopback port, with a temporary data directory,
 * for the browser tests: start, restart on the same port, tokens and catalog loads through the CLI.
 */
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const SECRET = "browser-test-secret-" + "x".repeat(40);
const STARTUP_MS = 20_000;
const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..", "..");

/** The repository's virtual environment's Python when there is one (README's set-up), else python3. */
export function python(): string {
  const venv = join(REPO, ".venv", "bin", "python");
  return process.env.SYNCLINE_PYTHON ?? (existsSync(venv) ? venv : "python3");
}

export class Relay {
  port = 0;
  private child: ChildProcessWithoutNullStreams | null = null;

  private constructor(readonly dataDir: string) {}

  static async start(): Promise<Relay> {
    const relay = new Relay(mkdtempSync(join(tmpdir(), "syncline-browser-")));
    await relay.launch();
    return relay;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/v1/sync`;
  }

  private launch(): Promise<void> {
    const child = spawn(python(), ["-m", "syncline.app.cli", "serve", "--host", "127.0.0.1",
      "--port", String(this.port), "--data-dir", this.dataDir, "--secret", SECRET],
      { env: { ...process.env, PYTHONUNBUFFERED: "1" } });
    this.child = child;
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => { stderr += chunk.toString(); });
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`relay did not start:\n${stderr}`)), STARTUP_MS);
      const lines = createInterface({ input: child.stdout });
      lines.on("line", (line) => {
        const match = /^Syncline relay listening on http:\/\/[^:]+:(\d+)/.exec(line);
        if (match) {
          this.port = Number(match[1]);
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`relay exited with ${code}:\n${stderr}`));
      });
    }).then(() => this.waitReady());
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + STARTUP_MS;
    while (Date.now() < deadline) {
      try {
        if ((await fetch(`${this.httpUrl}/readyz`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error("relay never became ready");
  }

  /** A signed token (`syncline token`). */
  async token(options: { tenant: string; docs: string[]; readOnly?: boolean }): Promise<string> {
    const args = ["-m", "syncline.app.cli", "token", "--secret", SECRET, "--tenant", options.tenant,
      ...options.docs.flatMap((p) => ["--doc", p]), ...(options.readOnly ? ["--read-only"] : [])];
    return execFileSync(python(), args, { encoding: "utf8" }).trim();
  }

  /** Start again on the same port and data directory (stopping first if running). */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** SIGTERM and wait for the exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === null || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
    this.child = null;
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
