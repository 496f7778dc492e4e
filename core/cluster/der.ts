// The few ASN.1 DER encodings an X.509 certificate needs (ITU-T X.690 §8, §10): lengths, tags,
// INTEGER, OID, strings, times and constructed types. Pure; writes bytes, never parses.
import { assert } from "../util/assert.ts";
import { concatBytes } from "../util/bytes.ts";

export type Der = Uint8Array;

/** X.690 §8.1.3: short form below 128, else long form with the fewest length octets. */
function length(n: number): Der {
  assert(Number.isSafeInteger(n) && n >= 0);
  if (n < 0x80) return new Uint8Array([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return new Uint8Array([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, content: Der): Der {
  return concatBytes([new Uint8Array([tag]), length(content.length), content]);
}

export const sequence = (...items: Der[]): Der => tlv(0x30, concatBytes(items));
export const set = (...items: Der[]): Der => tlv(0x31, concatBytes(items));
/** [n] EXPLICIT: a constructed context-specific tag around one element. */
export const explicit = (n: number, item: Der): Der => tlv(0xa0 | n, item);
export const bool = (v: boolean): Der => tlv(0x01, new Uint8Array([v ? 0xff : 0x00]));
export const octets = (v: Der): Der => tlv(0x04, v);
export const utf8 = (s: string): Der => tlv(0x0c, new TextEncoder().encode(s));

/** A non-negative INTEGER from big-endian magnitude bytes (a 0x00 is prefixed when the top bit is set). */
export function integer(magnitude: Der): Der {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const m = magnitude.subarray(start);
  return tlv(0x02, ((m[0] as number) & 0x80) !== 0 ? concatBytes([new Uint8Array([0]), m]) : m);
}

export function bitString(bytes: Der, unusedBits = 0): Der {
  return tlv(0x03, concatBytes([new Uint8Array([unusedBits]), bytes]));
}

export function oid(dotted: string): Der {
  const arcs = dotted.split(".").map(Number);
  assert(arcs.length >= 2 && arcs.every((a) => Number.isSafeInteger(a) && a >= 0), `bad OID ${dotted}`);
  const out: number[] = [(arcs[0] as number) * 40 + (arcs[1] as number)];
  for (const arc of arcs.slice(2)) {
    const chunk: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, new Uint8Array(out));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
export function time(d: Date): Der {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return d.getUTCFullYear() < 2050 ? tlv(0x17, new TextEncoder().encode(digits.slice(2))) : tlv(0x18, new TextEncoder().encode(digits));
}

export const contextPrimitive = (n: number, content: Der): Der => tlv(0x80 | n, content);
