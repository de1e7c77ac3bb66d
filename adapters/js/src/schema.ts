/**
 * Reporting what a reader skipped, as the engine's `engine/schema.py` does.
 *
 * Any Yjs peer can write anything into a document. Readers never trust it: an entry that
 * does not fit the documented layout is skipped and reported as a {@link SchemaIssue},
 * and the meaning of every valid entry stays as it was.
 */
import * as Y from "yjs";

/** One entry a reader skipped: where it was and which rule it broke. */
export interface SchemaIssue {
  readonly path: string;
  readonly reason: string;
}

/** Returns the current time in epoch milliseconds. */
export type Clock = () => number;

export const wallClock: Clock = () => Date.now();

/** Options every document model takes. */
export interface ModelOptions {
  /** The time stamped on merges, adjustments and resolutions (epoch milliseconds); defaults to `Date.now`. */
  clock?: Clock;
}

/** True for a Y.Map, Y.Array, Y.Text or XML type object. */
export function isSharedType(value: unknown): value is Y.AbstractType<unknown> {
  return value instanceof Y.AbstractType;
}

/** The name the engine gives a shared type in messages ("Map", "Array", "Text", ...). */
export function sharedTypeName(value: Y.AbstractType<unknown>): string {
  return value.constructor.name.replace(/^Y/, "");
}

/**
 * Report entries a peer wrote into `root` as the other kind of type (map keys in an
 * array root, items in a map root). Yjs keeps both parts of a root type whichever
 * constructor it was opened with.
 */
export function misplacedEntries(root: string, type: Y.Array<unknown> | Y.Map<unknown>): SchemaIssue[] {
  const expectArray = type instanceof Y.Array;
  let count = 0;
  if (expectArray) {
    for (const item of type._map.values()) if (!item.deleted) count++;
  } else {
    count = type._length;
  }
  if (!count) return [];
  const kind = expectArray ? "map entries" : "array items";
  return [{ path: root, reason: `${count} ${kind} written into a root that must be a ${expectArray ? "Array" : "Map"}` }];
}

/** The own Yjs clock of `doc`: what the next item its client writes will get. */
export function ownClock(doc: Y.Doc): number {
  return Y.getState(doc.store, doc.clientID);
}

/** The id Syncline writes on an entry: `{clientID hex}.{clock hex}`, unique per replica. */
export function nextId(doc: Y.Doc): string {
  return `${doc.clientID.toString(16)}.${ownClock(doc).toString(16)}`;
}

/**
 * Calls `listener` after every transaction that changed `doc` (local or remote);
 * returns the function that stops it.
 */
export function observeDoc(doc: Y.Doc, listener: () => void): () => void {
  const handler = (): void => listener();
  doc.on("update", handler);
  return () => doc.off("update", handler);
}
