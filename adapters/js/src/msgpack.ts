/**
 * The few msgpack forms the Syncline extension (message type 100) uses: a map of
 * string keys to strings, booleans, integers and null. Anything else raises
 * {@link MsgpackError}: the relay never sends it.
 */

export type ExtensionValue = string | number | boolean | null;
export type ExtensionBody = Record<string, ExtensionValue>;

/** Raised when bytes are not one of the msgpack forms this module reads. */
export class MsgpackError extends Error {
  override readonly name = "MsgpackError";
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

function writeString(out: number[], value: string): void {
  const bytes = utf8.encode(value);
  const n = bytes.length;
  if (n < 32) out.push(0xa0 | n);
  else if (n < 0x100) out.push(0xd9, n);
  else if (n < 0x10000) out.push(0xda, n >> 8, n & 0xff);
  else throw new MsgpackError("string too long for an extension message");
  for (const b of bytes) out.push(b);
}

function writeInteger(out: number[], value: number): void {
  if (!Number.isSafeInteger(value)) throw new MsgpackError(`not an integer: ${value}`);
  if (value >= 0 && value < 0x80) out.push(value);
  else if (value < 0 && value >= -32) out.push(0x100 + value);
  else if (value >= 0 && value <= 0xffffffff) out.push(0xce, (value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
  else {
    const view = new DataView(new ArrayBuffer(8));
    view.setBigInt64(0, BigInt(value));
    out.push(0xd3, ...new Uint8Array(view.buffer));
  }
}

/** Encode a flat map (at most 15 entries) as msgpack. */
export function encodeMap(body: ExtensionBody): Uint8Array {
  const entries = Object.entries(body);
  if (entries.length > 15) throw new MsgpackError("at most 15 entries");
  const out: number[] = [0x80 | entries.length];
  for (const [key, value] of entries) {
    writeString(out, key);
    if (value === null) out.push(0xc0);
    else if (value === false) out.push(0xc2);
    else if (value === true) out.push(0xc3);
    else if (typeof value === "string") writeString(out, value);
    else writeInteger(out, value);
  }
  return Uint8Array.from(out);
}

/** Decode a msgpack map of string keys to scalars; trailing bytes are an error. */
export function decodeMap(bytes: Uint8Array): ExtensionBody {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const need = (n: number): void => {
    if (pos + n > bytes.length) throw new MsgpackError("truncated msgpack");
  };
  const u8 = (): number => {
    need(1);
    return bytes[pos++] as number;
  };
  const str = (n: number): string => {
    need(n);
    const s = fromUtf8.decode(bytes.subarray(pos, pos + n));
    pos += n;
    return s;
  };
  const value = (): ExtensionValue => {
    const tag = u8();
    if (tag < 0x80) return tag;
    if (tag >= 0xe0) return tag - 0x100;
    if ((tag & 0xe0) === 0xa0) return str(tag & 0x1f);
    switch (tag) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xcc: return u8();
      case 0xcd: need(2); pos += 2; return view.getUint16(pos - 2);
      case 0xce: need(4); pos += 4; return view.getUint32(pos - 4);
      case 0xcf: need(8); pos += 8; return Number(view.getBigUint64(pos - 8));
      case 0xd0: need(1); pos += 1; return view.getInt8(pos - 1);
      case 0xd1: need(2); pos += 2; return view.getInt16(pos - 2);
      case 0xd2: need(4); pos += 4; return view.getInt32(pos - 4);
      case 0xd3: need(8); pos += 8; return Number(view.getBigInt64(pos - 8));
      case 0xd9: return str(u8());
      case 0xda: need(2); pos += 2; return str(view.getUint16(pos - 2));
      default: throw new MsgpackError(`unsupported msgpack tag 0x${tag.toString(16)}`);
    }
  };
  const head = u8();
  let size: number;
  if ((head & 0xf0) === 0x80) size = head & 0x0f;
  else if (head === 0xde) { need(2); pos += 2; size = view.getUint16(pos - 2); }
  else throw new MsgpackError("not a msgpack map");
  const body: ExtensionBody = {};
  for (let i = 0; i < size; i++) {
    const key = value();
    if (typeof key !== "string") throw new MsgpackError("map key is not a string");
    body[key] = value();
  }
  if (pos !== bytes.length) throw new MsgpackError("trailing bytes after msgpack map");
  return body;
}
