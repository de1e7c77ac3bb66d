/**
 * Canonical JSON (RFC 8785, the JSON Canonicalization Scheme) and the line key it names.
 *
 * Byte for byte the form of the Python engine's `engine/canonical.py`: no white space,
 * object members sorted by their keys' UTF-16 code units, strings and numbers as
 * `JSON.stringify` writes them (so `1e-7`, `1e+21`, `-0` as `0`), UTF-8 kept.
 */
import { digest } from "lib0/hash/sha256";
import { checkAttributes, checkId, type JsonObject } from "./validation.js";

/** The RFC 8785 form of a JSON value; throws `TypeError` for NaN, infinities and non-JSON values. */
export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "string":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("NaN and infinities have no JSON form");
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort();
      return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`).join(",")}}`;
    }
    default:
      throw new TypeError(`${typeof value} is not a JSON value`);
  }
}

const encoder = new TextEncoder();

/** Lowercase hex of the SHA-256 of a string's UTF-8 bytes. */
export function sha256Hex(text: string): string {
  let hex = "";
  for (const byte of digest(encoder.encode(text))) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/**
 * The identity of a cart line: the same product and attributes, in any key order, give the
 * same key. The first 32 hex digits of `sha256(canonicalJson([productId, attributes]))`.
 * Throws `ValidationError` for a bad product id or attributes.
 */
export function lineKey(productId: string, attributes?: JsonObject | null): string {
  const product = checkId(productId, "product_id");
  const attrs = checkAttributes(attributes ?? {});
  return lineKeyOf(product, attrs);
}

/** {@link lineKey} of values already checked. */
export function lineKeyOf(productId: string, attributes: JsonObject): string {
  return sha256Hex(canonicalJson([productId, attributes])).slice(0, 32);
}

/**
 * Compares strings by Unicode code points, as Python does (and UTF-8 bytes would): the order
 * of sorted ids, skus and canonical forms, which must match the engine's. JavaScript's `<`
 * compares UTF-16 code units, which put U+E000..U+FFFF after astral characters.
 */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000; // a surrogate: an astral code point
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

/** Compares arrays of strings element by element, then by length (Python's list order). */
export function compareStringLists(a: readonly string[], b: readonly string[]): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const order = compareCodePoints(a[i]!, b[i]!);
    if (order !== 0) return order;
  }
  return a.length - b.length;
}
