/**
 * Which local edits the relay has made durable: the bookkeeping behind a connection's
 * `pending` and `acknowledged` counts, free of I/O.
 *
 * An edit is one local Yjs transaction. Each write frame sent on a connection (sync
 * step 2, update) is recorded with the edits it carries: an update frame carries the
 * one edit whose transaction produced it, a step 2 carries every edit not yet
 * acknowledged (it answers the relay's state vector with everything the relay lacks).
 * The relay's `{"op": "ack", "n"}` acknowledges the first `n` write frames of the
 * connection, so the edits of those frames are durable.
 */

/** One local edit not yet acknowledged. */
export interface PendingEdit<T = unknown> {
  readonly seq: number;
  /** What the caller keeps with it; null for edits restored after a reload. */
  readonly data: T | null;
}

export class PendingEdits<T = unknown> {
  private edits: PendingEdit<T>[] = [];
  private frames: number[][] = [];
  private framesAcked = 0;
  private nextSeq = 1;
  /** Edits acknowledged since this object was made. */
  acknowledged = 0;

  /** Local edits not yet acknowledged. */
  get count(): number {
    return this.edits.length;
  }

  /** The unacknowledged edits, oldest first. */
  list(): readonly PendingEdit<T>[] {
    return this.edits;
  }

  /** Record a local edit; returns its sequence number. */
  add(data: T | null): number {
    const seq = this.nextSeq++;
    this.edits.push({ seq, data });
    return seq;
  }

  /** A new connection: frame counting restarts (the relay's counters do too). */
  connected(): void {
    this.frames = [];
    this.framesAcked = 0;
  }

  /** A step 2 went out: it carries every edit not yet acknowledged. */
  sentStep2(): void {
    this.frames.push(this.edits.map((edit) => edit.seq));
  }

  /** An update frame went out carrying the edit `seq` (null: not a local edit). */
  sentUpdate(seq: number | null): void {
    this.frames.push(seq === null ? [] : [seq]);
  }

  /**
   * The relay acknowledged the first `n` write frames of this connection: returns the
   * edits that became durable (removed from the pending list).
   */
  ack(n: number): PendingEdit<T>[] {
    if (n <= this.framesAcked) return [];
    const durable = new Set<number>();
    for (const frame of this.frames.slice(this.framesAcked, n)) for (const seq of frame) durable.add(seq);
    this.framesAcked = Math.min(n, this.frames.length);
    const done = this.edits.filter((edit) => durable.has(edit.seq));
    if (done.length > 0) {
      this.edits = this.edits.filter((edit) => !durable.has(edit.seq));
      this.acknowledged += done.length;
    }
    return done;
  }

  /** Drop every pending edit (they were rolled back or will never be written); returns them. */
  forget(): PendingEdit<T>[] {
    const dropped = this.edits;
    this.edits = [];
    return dropped;
  }
}
