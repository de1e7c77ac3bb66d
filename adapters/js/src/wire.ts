/**
 * Frames of the relay's protocol the connection needs to recognise or build
 * (docs/protocol.md): which outgoing frames are writes, and the extension frames.
 */
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import { decodeMap, encodeMap, type ExtensionBody } from "./msgpack.js";

export const MESSAGE_SYNC = 0;
export const MESSAGE_EXTENSION = 100;
export const SYNC_STEP1 = 0;
export const SYNC_STEP2 = 1;
export const SYNC_UPDATE = 2;

/** What an outgoing frame is, as far as acknowledgements go. */
export type FrameKind = "step2" | "update" | "other";

/** Classify an outgoing frame: sync step 2 and update messages are the relay's "writes". */
export function frameKind(frame: Uint8Array): FrameKind {
  const decoder = decoding.createDecoder(frame);
  if (!decoding.hasContent(decoder) || decoding.readVarUint(decoder) !== MESSAGE_SYNC) return "other";
  if (!decoding.hasContent(decoder)) return "other";
  const subtype = decoding.readVarUint(decoder);
  return subtype === SYNC_STEP2 ? "step2" : subtype === SYNC_UPDATE ? "update" : "other";
}

/** A type-100 frame carrying ``body``. */
export function extensionFrame(body: ExtensionBody): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MESSAGE_EXTENSION);
  encoding.writeVarUint8Array(encoder, encodeMap(body));
  return encoding.toUint8Array(encoder);
}

/** The body of a type-100 frame whose type varuint has been read already. */
export function readExtension(decoder: decoding.Decoder): ExtensionBody {
  return decodeMap(decoding.readVarUint8Array(decoder));
}

/** The client's first frame: ask for durable acknowledgements. */
export const HELLO = extensionFrame({ op: "hello", acks: true });
