/**
 * Reconnect delays: exponential backoff with full jitter (each delay is uniform in
 * [0, min(maxMs, initialMs * 2^attempt)]), so clients that lost the relay together
 * do not come back together.
 */

export interface BackoffOptions {
  /** Ceiling of the first delay, in milliseconds (default 250). */
  initialMs?: number;
  /** Largest ceiling, in milliseconds (default 30,000). */
  maxMs?: number;
  /** The random source, uniform in [0, 1) (default Math.random): inject one to test. */
  random?: () => number;
}

export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  private readonly random: () => number;
  /** Failed attempts since the last success. */
  attempt = 0;

  constructor({ initialMs = 250, maxMs = 30_000, random = Math.random }: BackoffOptions = {}) {
    if (!(initialMs > 0) || !(maxMs >= initialMs)) throw new RangeError("backoff needs 0 < initialMs <= maxMs");
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.random = random;
  }

  /** The ceiling of the next delay. */
  ceiling(): number {
    return Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 52));
  }

  /** The delay before the next attempt; counts the attempt. */
  next(): number {
    const delay = Math.floor(this.random() * this.ceiling());
    this.attempt += 1;
    return delay;
  }

  /** A connection succeeded: start again from the first delay. */
  reset(): void {
    this.attempt = 0;
  }
}
