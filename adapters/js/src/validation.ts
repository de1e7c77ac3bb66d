/**
 * Input rules shared by every document kind, as in the engine's `engine/validation.py`.
 *
 * `check*` functions guard the write path and throw {@link ValidationError}; `read*`
 * functions parse what any peer may have stored. JavaScript has one number type, so an
 * integral number is an integer on both paths (`2.0` is `2`).
 */
import { canonicalJson, compareCodePoints } from "./canonical.js";
import { ValidationError } from "./errors.js";

/** A JSON value as attributes hold it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object: a line's attributes. */
export type JsonObject = { [key: string]: JsonValue };

/** Ids, skus, product ids, actors, reasons and references: 1 to 128 characters (code points). */
export const MAX_ID_LENGTH = 128;
/** Largest quantity one cart operation may add or set. */
export const MAX_QUANTITY = 100_000;
/** Largest absolute stock delta of one adjustment. */
export const MAX_DELTA = 1_000_000_000;
/** Largest canonical JSON encoding of a line's attributes, in UTF-8 bytes. */
export const MAX_ATTRIBUTE_BYTES = 2048;
export const MAX_ATTRIBUTE_DEPTH = 4;
export const MAX_ATTRIBUTE_KEYS = 32;
export const MAX_ATTRIBUTE_ITEMS = 64;
export const MAX_NOTE_LENGTH = 1024;
export const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER;

// Python's str.isprintable(): no "Other" (Cc, Cf, Cs, Co, Cn) and no separator but the space.
const UNPRINTABLE = /[\p{C}\p{Z}]/u;
const LONE_SURROGATE = /\p{Cs}/u;

/** The name of a value's JSON type, for messages. */
export function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "object") {
    const name = (value as object).constructor?.name;
    return name && name !== "Object" ? name : "object";
  }
  return typeof value;
}

function codePoints(value: string): number {
  let count = 0;
  for (const _ of value) count++;
  return count;
}

function checkUnicode(value: string, field: string): string {
  if (LONE_SURROGATE.test(value)) throw new ValidationError(field, "must be valid Unicode (no lone surrogates)");
  return value;
}

/** Returns `value` if it is a bounded, printable, non-empty string. */
export function checkId(value: unknown, field = "id"): string {
  if (typeof value !== "string") throw new ValidationError(field, `must be a string, not ${typeName(value)}`);
  if (!value) throw new ValidationError(field, "must not be empty");
  if (codePoints(value) > MAX_ID_LENGTH) throw new ValidationError(field, `must be at most ${MAX_ID_LENGTH} characters`);
  if ([...value].some((char) => char !== " " && UNPRINTABLE.test(char))) {
    throw new ValidationError(field, "must not contain control or unprintable characters");
  }
  checkUnicode(value, field);
  if (value.startsWith(" ") || value.endsWith(" ")) {
    throw new ValidationError(field, "must not start or end with white space");
  }
  return value;
}

/** Returns `value` if it is an integral number (not a boolean) within `[low, high]`. */
export function checkInt(value: unknown, field: string, low: number, high: number): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new ValidationError(field, `must be an integer, not ${typeName(value)}`);
  }
  if (value < low || value > high) throw new ValidationError(field, `must be between ${low} and ${high}`);
  return value === 0 ? 0 : value; // -0 is 0
}

/** Quantities: integers from 1 (or 0 where allowed) to {@link MAX_QUANTITY}. */
export function checkQuantity(value: unknown, allowZero: boolean, field = "quantity"): number {
  return checkInt(value, field, allowZero ? 0 : 1, MAX_QUANTITY);
}

/** Stock deltas: non-zero integers within ±{@link MAX_DELTA}. */
export function checkDelta(value: unknown, field = "delta"): number {
  const delta = checkInt(value, field, -MAX_DELTA, MAX_DELTA);
  if (delta === 0) throw new ValidationError(field, "must not be zero");
  return delta;
}

/** Free text: a string of at most {@link MAX_NOTE_LENGTH} characters. */
export function checkNote(value: unknown, field = "note"): string {
  if (typeof value !== "string") throw new ValidationError(field, `must be a string, not ${typeName(value)}`);
  if (codePoints(value) > MAX_NOTE_LENGTH) throw new ValidationError(field, `must be at most ${MAX_NOTE_LENGTH} characters`);
  return checkUnicode(value, field);
}

/** Epoch milliseconds (a number) or a `Date`; returns milliseconds. */
export function checkTimestamp(value: unknown, field = "at"): number {
  if (value instanceof Date) value = value.getTime();
  return checkInt(value, field, 0, MAX_SAFE_INTEGER);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Returns a normalised copy of a bounded JSON object: keys are strings, values null,
 * booleans, finite numbers, strings, arrays and objects, nested at most
 * {@link MAX_ATTRIBUTE_DEPTH} deep, at most {@link MAX_ATTRIBUTE_BYTES} as canonical JSON.
 */
export function checkAttributes(value: unknown, field = "attributes"): JsonObject {
  if (!isPlainObject(value)) throw new ValidationError(field, `must be a JSON object, not ${typeName(value)}`);
  const normalised = normaliseJson(value, field, 1) as JsonObject;
  if (utf8Length(canonicalJson(normalised)) > MAX_ATTRIBUTE_BYTES) {
    throw new ValidationError(field, `must encode to at most ${MAX_ATTRIBUTE_BYTES} bytes`);
  }
  return normalised;
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

function normaliseJson(value: unknown, field: string, depth: number): JsonValue {
  if (depth > MAX_ATTRIBUTE_DEPTH + 1) {
    throw new ValidationError(field, `must nest at most ${MAX_ATTRIBUTE_DEPTH} levels deep`);
  }
  if (value === null || typeof value === "boolean") return value;
  if (typeof value === "string") return checkUnicode(value, field);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new ValidationError(field, "numbers must be finite (no NaN or infinity)");
    return value === 0 ? 0 : value;
  }
  if (Array.isArray(value)) {
    if (value.length > MAX_ATTRIBUTE_ITEMS) {
      throw new ValidationError(field, `lists must have at most ${MAX_ATTRIBUTE_ITEMS} items`);
    }
    return value.map((item) => normaliseJson(item, field, depth + 1));
  }
  if (isPlainObject(value)) {
    const keys = Object.keys(value);
    if (keys.length > MAX_ATTRIBUTE_KEYS) {
      throw new ValidationError(field, `objects must have at most ${MAX_ATTRIBUTE_KEYS} keys`);
    }
    const out: JsonObject = {};
    for (const key of keys.sort(compareCodePoints)) {
      if (!key || codePoints(key) > MAX_ID_LENGTH) {
        throw new ValidationError(field, "keys must be non-empty strings of at most 128 characters");
      }
      checkUnicode(key, field);
      out[key] = normaliseJson(value[key], field, depth + 1);
    }
    return out;
  }
  throw new ValidationError(field, `${typeName(value)} is not a JSON value`);
}

// -- read side: parsing what a peer stored --------------------------------------------

/** Like {@link checkInt}: JavaScript numbers are integers when integral. */
export function readInt(value: unknown, field: string, low: number, high: number): number {
  return checkInt(value, field, low, high);
}

/** Returns `value` if it is a JSON object (not an array, not null). */
export function readMapping(value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ValidationError(field, `must be a JSON object, not ${typeName(value)}`);
  }
  return value as Record<string, unknown>;
}
