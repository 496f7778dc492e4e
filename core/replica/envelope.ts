// The byte layout of a replication envelope {from, to, msg}: what transport.ts puts in its
// frames, one envelope per message. Data messages (client writes and reads and their answers,
// forwards and their acks, catch-up copies) have fixed layouts, so that a forward costs one copy
// into its frame and a few DataView stores instead of a CBOR encoding of its 4 KiB..1 MiB of
// data (CBOR was ≈25% of a replicated write's CPU); every other message is a CBOR map (rare,
// small, with nested memberships and reports) checked by parseMessage(). Pure: it never touches
// a socket and never throws on bytes from the network (a malformed envelope is a returned reason);
// it asserts only on what this node asks it to encode.
//
// Layout (integers big-endian):
//   0  u8   kind         0: the message is CBOR (parseMessage checks it); k > 0: fixedLayouts[k-1]
//   1  u8   reserved     0
//   2  u16  fromBytes    UTF-8 length of the sender's address
//   4  u16  toBytes      UTF-8 length of the addressee's
//   6       from, to     the two addresses (types.ts Address)
//   then, CBOR:  the message's CBOR map to the end
//         fixed: the layout's numeric fields, each an f64 (every one a whole number, at most
//                2^53 - 1: lsns, epochs, pages, request ids), in the layout's order; then,
//                for a layout with data, the data bytes to the end
import { assert } from "../util/assert.ts";
import { isHandedOver } from "../util/handover.ts";
import { decodeCbor, encodeCbor } from "../net/messages.ts";
import type { Address, Message } from "./types.ts";
import { parseMessage } from "./wire.ts";

const headBytes = 6;
/** Longest address, in UTF-8 bytes (wire.ts allows 256 characters). */
export const addressBytesMax = 1024;
const f64Bytes = 8;

type FixedType = "write" | "read" | "flush" | "write-done" | "read-done" | "flush-done" | "forward" | "forward-ack" | "catchup-page";

interface Layout {
  readonly type: FixedType;
  /** The numeric fields after `epoch` (which every layout starts with), in wire order. */
  readonly fields: readonly string[];
  readonly data: boolean;
}

/** The fixed layouts; an envelope's kind is the index here plus one. Append only: the index is on the wire. */
const fixedLayouts: readonly Layout[] = [
  { type: "write", fields: ["reqId", "completeBelow", "page", "pages"], data: true },
  { type: "read", fields: ["reqId", "completeBelow", "page", "pages"], data: false },
  { type: "flush", fields: ["reqId", "completeBelow"], data: false },
  { type: "write-done", fields: ["reqId"], data: false },
  { type: "read-done", fields: ["reqId"], data: true },
  { type: "flush-done", fields: ["reqId"], data: false },
  { type: "forward", fields: ["lsn", "page", "pages", "commitLsn"], data: true },
  { type: "forward-ack", fields: ["lsn"], data: false },
  { type: "catchup-page", fields: ["session", "fromLsn", "pageCount", "page", "seq"], data: true },
];
const kindOf = new Map<string, number>(fixedLayouts.map((l, i) => [l.type, i + 1]));

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Encoded addresses, cached: a node talks to few of them, over and over. Bounded by a reset. */
const addressCache = new Map<string, Uint8Array>();
const addressCacheMax = 4096;
function addressBytes(a: Address): Uint8Array {
  let b = addressCache.get(a);
  if (b === undefined) {
    b = utf8.encode(a);
    assert(b.length <= addressBytesMax, `address longer than ${addressBytesMax} bytes`);
    if (addressCache.size >= addressCacheMax) addressCache.clear();
    addressCache.set(a, b);
  }
  return b;
}

/** An envelope sized but not yet written: written straight into the frame that carries it. */
export interface Envelope {
  readonly bytes: number;
  /** Writes the whole envelope (every byte of it) at `at` of `into`. */
  write(into: Uint8Array, at: number): void;
}

/** Sizes the envelope of a message; the data of a data message is not copied until write(). */
export function envelopeOf(from: Address, to: Address, msg: Message): Envelope {
  const fromB = addressBytes(from);
  const toB = addressBytes(to);
  const kind = kindOf.get(msg.type) ?? 0;
  const layout = kind === 0 ? undefined : fixedLayouts[kind - 1];
  const record = msg as unknown as Record<string, unknown>;
  const cbor = layout === undefined ? encodeCbor(msg) : undefined;
  const data = layout?.data === true ? (record.data as Uint8Array) : undefined;
  const bodyBytes = cbor !== undefined ? cbor.length : f64Bytes * (1 + (layout?.fields.length ?? 0)) + (data?.length ?? 0);
  const bytes = headBytes + fromB.length + toB.length + bodyBytes;
  return {
    bytes,
    write(into, at) {
      assert(at + bytes <= into.length, "envelope beyond its buffer");
      const dv = new DataView(into.buffer, into.byteOffset + at, bytes);
      dv.setUint8(0, kind);
      dv.setUint8(1, 0);
      dv.setUint16(2, fromB.length);
      dv.setUint16(4, toB.length);
      let p = headBytes;
      into.set(fromB, at + p);
      p += fromB.length;
      into.set(toB, at + p);
      p += toB.length;
      if (cbor !== undefined) return into.set(cbor, at + p);
      assert(layout !== undefined);
      dv.setFloat64(p, msg.epoch);
      p += f64Bytes;
      for (const f of layout.fields) {
        const v = record[f];
        assert(typeof v === "number" && Number.isSafeInteger(v) && v >= 0, `${msg.type}.${f} is a whole number`);
        dv.setFloat64(p, v);
        p += f64Bytes;
      }
      if (data !== undefined) into.set(data, at + p);
    },
  };
}

/** One envelope as a buffer of its own (a client request's whole payload, tests). */
export function encodeEnvelope(from: Address, to: Address, msg: Message): Uint8Array {
  const e = envelopeOf(from, to, msg);
  const out = new Uint8Array(e.bytes);
  e.write(out, 0);
  return out;
}

export type DecodedEnvelope = { readonly from: Address; readonly to: Address; readonly msg: Message };

const isLsn = (v: number): boolean => Number.isSafeInteger(v) && v >= 0;

/**
 * The envelope in `bytes` (exactly one), or why it is none. The data of a data message is
 * copied, as `bytes` is a view of a socket buffer that is reused after the frame is handled,
 * unless `bytes` was handed over (core/util/handover.ts: a large frame's own buffer).
 */
export function decodeEnvelope(bytes: Uint8Array): DecodedEnvelope | string {
  if (bytes.length < headBytes) return "envelope shorter than its head";
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kind = dv.getUint8(0);
  const fromBytes = dv.getUint16(2);
  const toBytes = dv.getUint16(4);
  if (dv.getUint8(1) !== 0) return "envelope's reserved byte is not zero";
  if (fromBytes === 0 || toBytes === 0 || fromBytes > addressBytesMax || toBytes > addressBytesMax) return "envelope address empty or too long";
  let p = headBytes + fromBytes + toBytes;
  if (p > bytes.length) return "envelope cut inside its addresses";
  let from: string;
  let to: string;
  try {
    from = utf8Decoder.decode(bytes.subarray(headBytes, headBytes + fromBytes));
    to = utf8Decoder.decode(bytes.subarray(headBytes + fromBytes, p));
  } catch {
    return "envelope address is not UTF-8";
  }
  if (kind === 0) {
    const d = decodeCbor(bytes.subarray(p));
    if (!d.ok) return d.reason;
    const m = parseMessage(d.value);
    return m.ok ? { from, to, msg: m.msg } : m.reason;
  }
  const layout = fixedLayouts[kind - 1];
  if (layout === undefined) return `unknown envelope kind ${kind}`;
  const fixedEnd = p + f64Bytes * (1 + layout.fields.length);
  if (fixedEnd > bytes.length) return `${layout.type}: envelope cut inside its fields`;
  if (!layout.data && fixedEnd !== bytes.length) return `${layout.type}: bytes after its fields`;
  const out: Record<string, unknown> = { type: layout.type };
  for (const f of ["epoch", ...layout.fields]) {
    const v = dv.getFloat64(p);
    if (!isLsn(v)) return `${layout.type}: field ${f} is not a whole number`;
    out[f] = v;
    p += f64Bytes;
  }
  if (layout.data) out.data = isHandedOver(bytes) ? bytes.subarray(p) : bytes.slice(p); // see above
  // The layout table is the type's definition, field by field, as parseMessage's shapes are.
  return { from, to, msg: out as unknown as Message };
}
