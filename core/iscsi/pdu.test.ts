// PduDecoder and encodePdu: every fixture split at every byte, truncated and corrupted.
import { describe, expect, test } from "bun:test";
import { Bhs, Op, PduDecoder, bhsBytes, encodePdu, encodedBytes, put24, put32, u32, type Pdu, type PduSink } from "./pdu.ts";

function header(opcode: number, itt: number): Uint8Array {
  const h = new Uint8Array(bhsBytes);
  h[Bhs.opcode] = opcode;
  h[Bhs.flags] = 0x80;
  put32(h, Bhs.initiatorTaskTag, itt);
  return h;
}

function encode(pdus: Array<{ opcode: number; itt: number; dataBytes: number }>, digests: boolean): Uint8Array {
  const total = pdus.reduce((n, p) => n + encodedBytes(p.dataBytes, digests, digests), 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of pdus) {
    const data = Uint8Array.from({ length: p.dataBytes }, (_, i) => (i * 7 + p.itt) & 0xff);
    at += encodePdu(out, at, { header: header(p.opcode, p.itt), data: p.dataBytes > 0 ? data : null, headerDigest: digests, dataDigest: digests });
  }
  expect(at).toBe(total);
  return out;
}

interface Seen {
  pdus: string[];
  digestErrors: number;
}

function sink(seen: Seen): PduSink {
  return {
    onPdu: (p: Pdu) => {
      const sum = p.data.reduce((a, b) => (a + b) & 0xffff, 0);
      seen.pdus.push(`${p.opcode}:${u32(p.header, Bhs.initiatorTaskTag)}:${p.data.length}:${sum}`);
    },
    onDataDigestError: () => seen.digestErrors++,
  };
}

const fixture = [
  { opcode: Op.nopOut, itt: 1, dataBytes: 5 },
  { opcode: Op.scsiCommand, itt: 2, dataBytes: 0 },
  { opcode: Op.dataOut, itt: 3, dataBytes: 4096 },
  { opcode: Op.textRequest, itt: 4, dataBytes: 13 },
];

describe("PduDecoder", () => {
  for (const digests of [false, true]) {
    test(`decodes the same PDUs however the stream is split in two or three (digests ${digests})`, () => {
      const stream = encode(fixture, digests);
      const want: Seen = { pdus: [], digestErrors: 0 };
      const whole = new PduDecoder(8192);
      whole.headerDigest = whole.dataDigest = digests;
      expect(whole.push(stream, sink(want))).toBeNull();
      expect(want.pdus.length).toBe(4);
      for (let cut = 0; cut <= stream.length; cut++) {
        const seen: Seen = { pdus: [], digestErrors: 0 };
        const d = new PduDecoder(8192);
        d.headerDigest = d.dataDigest = digests;
        const second = Math.min(stream.length, cut + 1 + (cut % 61));
        expect(d.push(stream.subarray(0, cut), sink(seen))).toBeNull();
        expect(d.push(stream.subarray(cut, second), sink(seen))).toBeNull();
        expect(d.push(stream.subarray(second), sink(seen))).toBeNull();
        expect(seen.pdus).toEqual(want.pdus);
      }
    });
  }

  test("decodes a stream fed one byte at a time", () => {
    const stream = encode(fixture, true);
    const seen: Seen = { pdus: [], digestErrors: 0 };
    const d = new PduDecoder(8192);
    d.headerDigest = d.dataDigest = true;
    for (let i = 0; i < stream.length; i++) expect(d.push(stream.subarray(i, i + 1), sink(seen))).toBeNull();
    expect(seen.pdus.length).toBe(4);
  });

  test("holds back a truncated PDU until the rest arrives", () => {
    const stream = encode(fixture, false);
    for (let cut = 1; cut < stream.length; cut++) {
      const seen: Seen = { pdus: [], digestErrors: 0 };
      const d = new PduDecoder(8192);
      d.push(stream.subarray(0, stream.length - cut), sink(seen));
      expect(seen.pdus.length).toBeLessThan(4);
    }
  });

  test("rejects a data segment longer than MaxRecvDataSegmentLength", () => {
    const stream = encode([{ opcode: Op.dataOut, itt: 9, dataBytes: 2048 }], false);
    for (const cut of [0, 10, 47, 48, 100]) {
      const d = new PduDecoder(1024);
      const seen: Seen = { pdus: [], digestErrors: 0 };
      const first = d.push(stream.subarray(0, cut), sink(seen));
      const error = first ?? d.push(stream.subarray(cut), sink(seen));
      expect(error).toEqual({ kind: "too-long", dataBytes: 2048 });
      expect(seen.pdus).toEqual([]);
    }
  });

  test("a corrupted header digest stops the stream; a corrupted data digest drops one PDU", () => {
    const stream = encode(fixture, true);
    // Every bit flip in the first BHS or its digest is caught.
    for (let i = 0; i < bhsBytes + 4; i++) {
      const bad = stream.slice();
      bad[i] = (bad[i] as number) ^ 0x10;
      const d = new PduDecoder(1 << 20);
      d.headerDigest = d.dataDigest = true;
      const seen: Seen = { pdus: [], digestErrors: 0 };
      const error = d.push(bad, sink(seen));
      // Nothing from a corrupted header is ever delivered.
      expect(seen.pdus).toEqual([]);
      if (i >= Bhs.dataSegmentLength && i < Bhs.dataSegmentLength + 3) continue; // may read as incomplete or oversize instead
      expect(error).toEqual({ kind: "header-digest" });
      expect(d.push(new Uint8Array(10), sink(seen))).toEqual({ kind: "header-digest" }); // stays failed
    }
    // A flipped byte in the first PDU's data: that PDU is reported and dropped, the rest decode.
    const bad = stream.slice();
    bad[bhsBytes + 4 + 2] = (bad[bhsBytes + 4 + 2] as number) ^ 0xff;
    const d = new PduDecoder(8192);
    d.headerDigest = d.dataDigest = true;
    const seen: Seen = { pdus: [], digestErrors: 0 };
    expect(d.push(bad, sink(seen))).toBeNull();
    expect(seen.digestErrors).toBe(1);
    expect(seen.pdus.length).toBe(3);
  });

  test("encodePdu pads data to 4 bytes and sets DataSegmentLength", () => {
    const out = new Uint8Array(100).fill(0xee);
    const n = encodePdu(out, 0, { header: header(Op.nopIn, 5), data: new Uint8Array([1, 2, 3, 4, 5]), headerDigest: false, dataDigest: false });
    expect(n).toBe(bhsBytes + 8);
    expect([...out.subarray(Bhs.dataSegmentLength, Bhs.dataSegmentLength + 3)]).toEqual([0, 0, 5]);
    expect([...out.subarray(bhsBytes, bhsBytes + 8)]).toEqual([1, 2, 3, 4, 5, 0, 0, 0]);
    const h = header(Op.nopIn, 5);
    put24(h, Bhs.dataSegmentLength, 999); // ignored: the encoder sets it
    encodePdu(out, 0, { header: h, data: null, headerDigest: false, dataDigest: false });
    expect([...out.subarray(Bhs.dataSegmentLength, Bhs.dataSegmentLength + 3)]).toEqual([0, 0, 0]);
  });
});
