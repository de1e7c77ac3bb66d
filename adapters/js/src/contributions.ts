/**
 * Guest-merge contributions, one for one with the engine's `engine/contributions.py`: what a
 * merge carries of a guest cart's history, counted once (docs/semantics.md, "Cart document").
 *
 * A `merge` operation `{id, l, k: "merge", g, o, v}` carries, for one line, the guest's
 * operations present there as the merging device saw them (`o`: `[id, n]` adds,
 * `[id, n, "set"]` sets, `[key, n, "merged"]` for what the guest line holds from an earlier
 * merge into it) and the guest document's state vector (`v`: client id hex -> clock). The
 * target counts the union of the entries, each id once, without those a contribution's `v`
 * covers but it does not carry (replaced on the guest before that merge). A set absorbs what
 * it replaced in `ag`: per guest, `{v, o, m}`.
 */
import { canonicalJson, compareCodePoints } from "./canonical.js";
import { ValidationError } from "./errors.js";
import { checkId, MAX_QUANTITY, MAX_SAFE_INTEGER, readInt, readMapping } from "./validation.js";

/** Most guest entries (and state vector clients) one contribution or absorption may hold. */
export const MAX_ENTRIES = 1024;
/** Most guest carts one set operation may record as absorbed. */
export const MAX_GUESTS = 1024;

export type EntryKind = "add" | "set" | "merged";
export type Vector = ReadonlyMap<number, number>;

const SYNCLINE_ID = /^([0-9a-f]{1,14})\.([0-9a-f]{1,14})$/;
const CLIENT_HEX = /^[0-9a-f]{1,14}$/;

/** One guest operation (or the part of a guest line from an earlier merge into it). */
export interface Entry {
  readonly kind: EntryKind;
  readonly id: string;
  readonly n: number;
}

/** A parsed `merge` operation: guest `guest`'s entries on one line, and its state vector. */
export interface Contribution {
  readonly guest: string;
  readonly entries: readonly Entry[];
  readonly vector: Vector;
}

/** What target sets replaced of one guest's contributions (the `ag` value of a set). */
export interface Absorbed {
  readonly vector: Vector;
  readonly ids: ReadonlySet<string>;
  readonly merged: ReadonlySet<string>;
}

/** Entries count once per identity: op ids, and `merged` keys apart from them. */
export function identity(entry: Entry): string {
  return `${entry.kind === "merged" ? "m" : "o"}:${entry.id}`;
}

/** Whether a device at state `vector` had seen the operation with this id. */
export function covered(opId: string, vector: Vector): boolean {
  const match = SYNCLINE_ID.exec(opId);
  if (match === null) return false;
  return (vector.get(parseInt(match[1]!, 16)) ?? 0) > parseInt(match[2]!, 16);
}

export function maxVector(a: Vector, b: Vector): Map<number, number> {
  const out = new Map(a);
  for (const [client, clock] of b) out.set(client, Math.max(out.get(client) ?? 0, clock));
  return out;
}

/** `a` has seen everything `b` has. */
export function dominates(a: Vector, b: Vector): boolean {
  for (const [client, clock] of b) if ((a.get(client) ?? 0) < clock) return false;
  return true;
}

export function absorbedCovers(absorbed: Absorbed, entry: Entry): boolean {
  if (entry.kind === "merged") return absorbed.merged.has(entry.id);
  return absorbed.ids.has(entry.id) || covered(entry.id, absorbed.vector);
}

function union(a: Absorbed, b: Absorbed): Absorbed {
  return {
    vector: maxVector(a.vector, b.vector),
    ids: new Set([...a.ids, ...b.ids]),
    merged: new Set([...a.merged, ...b.merged]),
  };
}

/** What a set replacing these contributions and earlier absorptions records, per guest. */
export function absorb(
  contributions: Iterable<Contribution>, absorbed: Iterable<ReadonlyMap<string, Absorbed>>,
): Map<string, Absorbed> {
  const out = new Map<string, Absorbed>();
  const add = (guest: string, part: Absorbed): void => {
    const known = out.get(guest);
    out.set(guest, known === undefined ? part : union(known, part));
  };
  for (const c of contributions) {
    add(c.guest, {
      vector: new Map(c.vector),
      ids: new Set(c.entries.filter((e) => e.kind !== "merged").map((e) => e.id)),
      merged: new Set(c.entries.filter((e) => e.kind === "merged").map((e) => e.id)),
    });
  }
  for (const mapping of absorbed) for (const [guest, part] of mapping) add(guest, part);
  return out;
}

/** The entries of one guest's contributions on one line that count, by identity. */
export function liveEntries(contributions: readonly Contribution[], absorbed: Absorbed | undefined): Map<string, Entry> {
  const all = new Map<string, Entry>();
  for (const c of contributions) {
    for (const entry of c.entries) {
      const known = all.get(identity(entry));
      if (known === undefined || compareEntries(entry, known) > 0) all.set(identity(entry), entry);
    }
  }
  const carried = contributions.map((c) => new Set(c.entries.map(identity)));
  const live = new Map<string, Entry>();
  for (const [id, entry] of all) {
    if (absorbed !== undefined && absorbedCovers(absorbed, entry)) continue;
    if (entry.kind !== "merged" && contributions.some((c, i) => !carried[i]!.has(id) && covered(entry.id, c.vector))) {
      continue; // replaced on the guest before that other merge
    }
    live.set(id, entry);
  }
  return live;
}

export function sameEntries(a: ReadonlyMap<string, Entry>, b: ReadonlyMap<string, Entry>): boolean {
  if (a.size !== b.size) return false;
  for (const [id, entry] of a) {
    const other = b.get(id);
    if (other === undefined || other.n !== entry.n || other.kind !== entry.kind) return false;
  }
  return true;
}

/** One guest's part of a line: the cart rule over the union of its live entries. */
export function guestQuantity(contributions: readonly Contribution[], absorbed: Absorbed | undefined): number {
  let base = 0;
  let added = 0;
  for (const entry of liveEntries(contributions, absorbed).values()) {
    if (entry.kind === "set") base = Math.max(base, entry.n);
    else added += entry.n;
  }
  return base + added;
}

/** Two copies of one id differ only if a foreign writer forged one: the larger n counts. */
function compareEntries(a: Entry, b: Entry): number {
  return a.n - b.n || compareCodePoints(a.kind, b.kind);
}

// -- parsing what a peer stored ------------------------------------------------------

export function parseEntries(raw: unknown): Entry[] {
  if (!Array.isArray(raw) || raw.length > MAX_ENTRIES) {
    throw new ValidationError("o", `must be a list of at most ${MAX_ENTRIES} entries`);
  }
  return raw.map((item: unknown) => {
    if (!Array.isArray(item) || (item.length !== 2 && item.length !== 3)) {
      throw new ValidationError("o", "each entry must be [id, n] or [id, n, kind]");
    }
    const kind: unknown = item.length === 3 ? item[2] : "add";
    let n: number;
    if (kind === "add") n = readInt(item[1], "o", 1, MAX_QUANTITY);
    else if (kind === "set") n = readInt(item[1], "o", 0, MAX_QUANTITY);
    else if (kind === "merged") n = readInt(item[1], "o", 1, MAX_SAFE_INTEGER);
    else throw new ValidationError("o", `unknown entry kind ${JSON.stringify(kind) ?? String(kind)}`);
    return { kind, id: checkId(item[0], "o"), n };
  });
}

export function parseVector(raw: unknown, field = "v"): Map<number, number> {
  const entry = readMapping(raw, field);
  const keys = Object.keys(entry);
  if (keys.length > MAX_ENTRIES) throw new ValidationError(field, `must have at most ${MAX_ENTRIES} clients`);
  const vector = new Map<number, number>();
  for (const client of keys) {
    if (!CLIENT_HEX.test(client)) throw new ValidationError(field, "keys must be client ids in lowercase hex");
    vector.set(parseInt(client, 16), readInt(entry[client], field, 0, MAX_SAFE_INTEGER));
  }
  return vector;
}

export function parseAbsorbed(raw: unknown): Map<string, Absorbed> {
  const entry = readMapping(raw, "ag");
  const guests = Object.keys(entry);
  if (guests.length > MAX_GUESTS) throw new ValidationError("ag", `must name at most ${MAX_GUESTS} guest carts`);
  const out = new Map<string, Absorbed>();
  for (const guest of guests) {
    const part = readMapping(entry[guest], "ag");
    const ids = Object.hasOwn(part, "o") ? part.o : [];
    const merged = Object.hasOwn(part, "m") ? part.m : [];
    if (!Array.isArray(ids) || !Array.isArray(merged) || ids.length + merged.length > MAX_ENTRIES) {
      throw new ValidationError("ag", `o and m must be lists of at most ${MAX_ENTRIES} ids in all`);
    }
    out.set(checkId(guest, "ag"), {
      vector: parseVector(Object.hasOwn(part, "v") ? part.v : {}, "ag"),
      ids: new Set(ids.map((id: unknown) => checkId(id, "ag"))),
      merged: new Set(merged.map((id: unknown) => checkId(id, "ag"))),
    });
  }
  return out;
}

// -- writing ---------------------------------------------------------------------------

export function vectorJson(vector: Vector): Record<string, number> {
  const out: Record<string, number> = {};
  for (const client of [...vector.keys()].sort((a, b) => a - b)) {
    const clock = vector.get(client)!;
    if (clock > 0) out[client.toString(16)] = clock;
  }
  return out;
}

export function entryJson(entry: Entry): unknown[] {
  return entry.kind === "add" ? [entry.id, entry.n] : [entry.id, entry.n, entry.kind];
}

export function contributionJson(c: Contribution): Record<string, unknown> {
  return { g: c.guest, o: c.entries.map(entryJson), v: vectorJson(c.vector) };
}

export function absorbedJson(absorbed: ReadonlyMap<string, Absorbed>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const guest of [...absorbed.keys()].sort(compareCodePoints)) {
    const part = absorbed.get(guest)!;
    const body: Record<string, unknown> = { v: vectorJson(part.vector) };
    const ids = [...part.ids].filter((id) => !covered(id, part.vector)).sort(compareCodePoints);
    if (ids.length) body.o = ids;
    if (part.merged.size) body.m = [...part.merged].sort(compareCodePoints);
    out[guest] = body;
  }
  return out;
}

/** A deterministic text of a parsed value, to order copies of one op id alike in every language. */
export function detail(value: unknown): string {
  return canonicalJson(value);
}
