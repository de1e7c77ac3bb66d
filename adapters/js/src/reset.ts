/**
 * Reset a `Y.Doc` in place to a given state: what a refused edit needs, since Yjs can
 * add to a document but never take structs out of it.
 *
 * Undoing a refused edit (Y.UndoManager) would leave the edit's items in the document
 * and add new ones of this client that the relay never receives: the view would match
 * the relay's at first, but later concurrent writes to the same keys would resolve
 * against those local items differently than on every other replica. So the document
 * is emptied and refilled with `state` instead, inside one transaction: the same
 * `Y.Doc` object and the same top-level types (their observers stay attached), nested
 * types are new objects. Every top-level type is reported as changed to its observers.
 *
 * This reaches into Yjs internals (the struct store and the fields of AbstractType) of
 * yjs 13.6; tests/reset in this package fail if a Yjs release changes them.
 */
import * as Y from "yjs";

interface TypeInternals {
  _map: Map<string, unknown>;
  _start: unknown;
  _length: number;
  _searchMarker: unknown[] | null;
}

interface StoreInternals {
  clients: Map<number, unknown[]>;
  pendingStructs: unknown;
  pendingDs: unknown;
}

export function resetDoc(doc: Y.Doc, state: Uint8Array, origin: unknown): void {
  Y.transact(
    doc,
    (tr) => {
      for (const type of doc.share.values()) {
        const inner = type as unknown as TypeInternals;
        inner._map = new Map();
        inner._start = null;
        inner._length = 0;
        if (inner._searchMarker !== null) inner._searchMarker.length = 0;
        tr.changed.set(type, new Set());
      }
      const store = doc.store as unknown as StoreInternals;
      store.clients = new Map();
      store.pendingStructs = null;
      store.pendingDs = null;
      // Everything in the refilled store is this transaction's insertion (its update event carries it all).
      tr.beforeState = new Map();
      Y.applyUpdate(doc, state, origin);
    },
    origin,
    false,
  );
}
