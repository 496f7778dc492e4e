// The frame codec against fixtures of every message kind: whole, split at every byte, one byte
// at a time, truncated, corrupted at every byte, and fed seeded random bytes and mutations.
import { describe, expect, test } from "bun:test";
import { seededRng } from "../../test/helpers/rng.ts";
import { crc32c } from "../util/crc32c.ts";
import { isHandedOver } from "../util/handover.ts";
import { FrameDecoder, buildFrame, encodeFrame, frameFlags, frameHeaderBytes, pooledFrameBytesMin, releaseFrame, type Frame, type FrameError } from "./frame.ts";
import { controlFrame, errorFrame, messageType, readRequestFrame, readResponseFrame, uuidToBytes, writeRequestFrame, writeResponseFrame, dataStatus } from "./messages.ts";

const volumeId = uuidToBytes("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
const pattern = (n: number, seed: number): Uint8Array => {
  const next = seededRng(seed);
  return Uint8Array.from({ length: n }, () => next() & 0xff);
};

const fixtures: Record<string, Uint8Array> = {
  ping: controlFrame({ type: messageType.ping, flags: 0, requestId: 1 }, { from: "node-a", sentAtMs: 1_700_000_000_123 }),
  pong: controlFrame({ type: messageType.ping, flags: frameFlags.response, requestId: 1 }, { nodeId: "n-b", name: "node-b", sentAtMs: 1_700_000_000_123 }),
  error: errorFrame(0xffffffff, { code: "busy", message: "too many requests in flight" }),
  emptyPayload: encodeFrame({ type: 99, flags: 0, requestId: 7 }, new Uint8Array(0)),
  writeEmpty: writeRequestFrame(2, { volumeId, segment: 3, epoch: 4, sequence: 5, offsetBytes: 0, data: new Uint8Array(0) }),
  write4k: writeRequestFrame(3, { volumeId, segment: 0xffffffff, epoch: 2 ** 40, sequence: 2 ** 53 - 1, offsetBytes: 1 << 30, data: pattern(4096, 1) }),
  writeAck: writeResponseFrame(3, { epoch: 2 ** 40, sequence: 2 ** 53 - 1, status: dataStatus.ok }),
  read: readRequestFrame(4, { volumeId, segment: 1, epoch: 1, offsetBytes: 8192, lengthBytes: 4096 }),
  readReply: readResponseFrame(4, { epoch: 1, status: dataStatus.ok, data: pattern(777, 2) }),
};
const all = Object.values(fixtures);
const stream = (frames: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(frames.reduce((n, f) => n + f.byteLength, 0));
  let at = 0;
  for (const f of frames) {
    out.set(f, at);
    at += f.byteLength;
  }
  return out;
};
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** Feeds `chunks` and returns each frame's bytes (copied, as the contract asks) and the error. */
function feed(decoder: FrameDecoder, chunks: Uint8Array[]): { frames: string[]; heads: Array<Omit<Frame, "payload" | "tag" | "bytes">>; error: FrameError | null } {
  const frames: string[] = [];
  const heads: Array<Omit<Frame, "payload" | "tag" | "bytes">> = [];
  let error: FrameError | null = null;
  for (const c of chunks) {
    error = decoder.push(c, (f) => {
      frames.push(hex(f.bytes) + hex(f.tag));
      heads.push({ type: f.type, flags: f.flags, requestId: f.requestId });
    });
    if (error !== null) break;
  }
  return { frames, heads, error };
}

describe("FrameDecoder", () => {
  test("decodes each fixture whole, with its header fields", () => {
    const r = feed(new FrameDecoder(), [fixtures.write4k as Uint8Array]);
    expect(r.error).toBeNull();
    expect(r.heads).toEqual([{ type: messageType.write, flags: 0, requestId: 3 }]);
    for (const f of all) expect(feed(new FrameDecoder(), [f]).frames).toEqual([hex(f)]);
    expect(feed(new FrameDecoder(), [fixtures.error as Uint8Array]).heads).toEqual([{ type: messageType.error, flags: frameFlags.response, requestId: 0xffffffff }]);
  });

  test("yields every frame of a stream split in two at every byte", () => {
    const s = stream(all);
    const want = all.map(hex);
    for (let cut = 0; cut <= s.byteLength; cut++) {
      const r = feed(new FrameDecoder(), [s.subarray(0, cut), s.subarray(cut)]);
      if (r.error !== null || r.frames.length !== want.length) throw new Error(`split at ${cut}: ${JSON.stringify(r.error)} ${r.frames.length}`);
      expect(r.frames).toEqual(want);
    }
  });

  test("yields every frame when fed one byte at a time, and in random chunk sizes", () => {
    const s = stream(all);
    const ones = Array.from({ length: s.byteLength }, (_, i) => s.subarray(i, i + 1));
    expect(feed(new FrameDecoder(), ones).frames).toEqual(all.map(hex));
    const next = seededRng(42);
    for (let round = 0; round < 50; round++) {
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < s.byteLength; ) {
        const n = 1 + (next() % 600);
        chunks.push(s.subarray(at, at + n));
        at += n;
      }
      expect(feed(new FrameDecoder(), chunks).frames).toEqual(all.map(hex));
    }
  });

  test("a truncated frame yields nothing and no error, and completes when the rest arrives", () => {
    for (const f of all) {
      for (let cut = 0; cut < f.byteLength; cut++) {
        const d = new FrameDecoder();
        const r = feed(d, [f.subarray(0, cut)]);
        expect(r.error).toBeNull();
        expect(r.frames).toEqual([]);
        expect(d.bufferedBytes).toBe(cut);
        expect(feed(d, [f.subarray(cut)]).frames).toEqual([hex(f)]);
      }
    }
  });

  test("a frame corrupted at any byte is never delivered", () => {
    for (const [name, f] of Object.entries(fixtures)) {
      const step = f.byteLength > 1000 ? 7 : 1;
      for (let i = 0; i < f.byteLength; i += step) {
        const bad = f.slice();
        bad[i] = (bad[i] as number) ^ 0xff;
        // Followed by a good frame: a corrupt length may swallow it, but nothing corrupt comes out.
        const r = feed(new FrameDecoder(), [bad, fixtures.ping as Uint8Array]);
        if (r.frames.includes(hex(bad)) || (r.frames.length > 0 && r.frames[0] !== hex(fixtures.ping as Uint8Array))) throw new Error(`${name} byte ${i} corrupted was delivered`);
        if (i < frameHeaderBytes - 4 && i >= 12) continue; // the length field: the decoder may be waiting for more
        expect(r.error).not.toBeNull();
      }
    }
  });

  test("rejects bad magic, version, flags and checksum by name", () => {
    const f = fixtures.ping as Uint8Array;
    const at = (i: number, v: number): Uint8Array => {
      const b = f.slice();
      b[i] = v;
      return b;
    };
    expect(feed(new FrameDecoder(), [at(0, 0)]).error?.reason).toBe("bad-magic");
    expect(feed(new FrameDecoder(), [at(4, 99)]).error?.reason).toBe("bad-version");
    expect(feed(new FrameDecoder(), [at(6, 0x80)]).error?.reason).toBe("bad-flags");
    expect(feed(new FrameDecoder(), [at(frameHeaderBytes, (f[frameHeaderBytes] as number) ^ 1)]).error).toEqual({ reason: "bad-checksum", type: messageType.ping, requestId: 1 });
  });

  test("rejects a payload longer than payloadBytesMax from the header alone", () => {
    const d = new FrameDecoder({ payloadBytesMax: 4096 });
    const big = fixtures.write4k as Uint8Array;
    const r = feed(d, [big.subarray(0, frameHeaderBytes)]);
    expect(r.error).toEqual({ reason: "too-long", payloadBytes: big.byteLength - frameHeaderBytes, payloadBytesMax: 4096 });
    expect(d.bufferedBytes).toBe(0);
  });

  test("after an error it refuses everything, even good frames", () => {
    const d = new FrameDecoder();
    expect(feed(d, [new Uint8Array(frameHeaderBytes)]).error?.reason).toBe("bad-magic");
    expect(feed(d, [fixtures.ping as Uint8Array]).error?.reason).toBe("bad-magic");
  });

  test("frames before an error in the same chunk are delivered", () => {
    const r = feed(new FrameDecoder(), [stream([fixtures.ping as Uint8Array, fixtures.read as Uint8Array, new Uint8Array(frameHeaderBytes)])]);
    expect(r.frames).toEqual([hex(fixtures.ping as Uint8Array), hex(fixtures.read as Uint8Array)]);
    expect(r.error?.reason).toBe("bad-magic");
  });

  test("with tagBytes, each frame's tag follows its payload, split anywhere", () => {
    // A tagged frame's checksum covers its header alone (the tag covers the rest).
    const tagged = all.map((f, i) => {
      const t = new Uint8Array(f.byteLength + 16);
      t.set(f);
      t.fill(i + 1, f.byteLength);
      new DataView(t.buffer).setUint32(16, crc32c(t.subarray(0, 16)));
      return t;
    });
    const s = stream(tagged);
    for (let cut = 0; cut <= s.byteLength; cut += 3) {
      const r = feed(new FrameDecoder({ tagBytes: 16 }), [s.subarray(0, cut), s.subarray(cut)]);
      expect(r.frames).toEqual(tagged.map(hex));
    }
  });

  test("fuzz: random bytes and random mutations of a stream never throw nor deliver a corrupt frame", () => {
    const good = new Set(all.map(hex));
    const s = stream(all);
    for (let seed = 1; seed <= 300; seed++) {
      const next = seededRng(seed);
      const noise = Uint8Array.from({ length: 1 + (next() % 300) }, () => next() & 0xff);
      const r1 = feed(new FrameDecoder(), [noise]);
      expect(r1.frames).toEqual([]);
      const m = s.slice();
      const flips = 1 + (next() % 4);
      for (let k = 0; k < flips; k++) {
        const i = next() % m.byteLength;
        m[i] = (m[i] as number) ^ (1 + (next() % 255));
      }
      const r2 = feed(new FrameDecoder(), [m.subarray(0, next() % m.byteLength), m.subarray(0)]);
      for (const f of r2.frames) if (!good.has(f)) throw new Error(`seed ${seed}: delivered a frame that is not a fixture`);
    }
  });
});

describe("buildFrame()", () => {
  test("leaves tagBytes zeroed after the payload for the caller to fill", () => {
    const f = buildFrame({ type: 1, flags: 0, requestId: 9 }, { payloadBytes: 3, fill: (p) => p.set([1, 2, 3]), tagBytes: 8 });
    expect(f.byteLength).toBe(frameHeaderBytes + 3 + 8);
    expect(Array.from(f.subarray(frameHeaderBytes))).toEqual([1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  test("zeroes every byte fill() does not claim, though the allocator does not (no stale memory on the wire)", () => {
    for (let i = 0; i < 50; i++) {
      const f = buildFrame({ type: 1, flags: 0, requestId: 1 }, { payloadBytes: 4096, fill: (p) => p.fill(7, 4000), filledTailBytes: 96, tagBytes: 16 });
      expect(f.subarray(frameHeaderBytes, frameHeaderBytes + 4000).every((b) => b === 0)).toBe(true);
      expect(f.subarray(frameHeaderBytes + 4096).every((b) => b === 0)).toBe(true);
    }
    const w = writeRequestFrame(1, { volumeId, segment: 1, epoch: 1, sequence: 1, offsetBytes: 0, data: new Uint8Array(8).fill(9) });
    expect(Array.from(w.subarray(frameHeaderBytes + 20, frameHeaderBytes + 24))).toEqual([0, 0, 0, 0]);
    expect(Array.from(w.subarray(frameHeaderBytes + 52, frameHeaderBytes + 56))).toEqual([0, 0, 0, 0]);
  });

  test("asserts on fields out of range (a bug in the caller, not an input error)", () => {
    expect(() => encodeFrame({ type: 256, flags: 0, requestId: 0 }, new Uint8Array(0))).toThrow();
    expect(() => encodeFrame({ type: 1, flags: 0x8000, requestId: 0 }, new Uint8Array(0))).toThrow();
    expect(() => encodeFrame({ type: 1, flags: 0, requestId: 2 ** 32 }, new Uint8Array(0))).toThrow();
  });
});

describe("large frames' buffers (releaseFrame)", () => {
  const big = (byte: number, bytes = 300_000) => encodeFrame({ type: messageType.replica, flags: frameFlags.oneWay, requestId: 0 }, new Uint8Array(bytes).fill(byte));
  const decodeOne = (bytes: Uint8Array): Frame => {
    const got: Frame[] = [];
    const d = new FrameDecoder({ payloadBytesMax: 1 << 20, tagBytes: 0 });
    expect(d.push(bytes, (f) => got.push({ ...f, payload: f.payload.slice() }))).toBeNull();
    expect(got.length).toBe(1);
    return got[0] as Frame;
  };

  test("a released frame's buffer carries the next frame of its size, which reads back whole", () => {
    const first = big(1);
    releaseFrame(first);
    const second = big(2, 280_000);
    expect(second.buffer).toBe(first.buffer);
    const f = decodeOne(second);
    expect(f.payload.length).toBe(280_000);
    expect(f.payload.every((b) => b === 2)).toBe(true);
  });

  test("released twice, a buffer still goes to one frame only", () => {
    const first = big(3);
    releaseFrame(first);
    releaseFrame(first);
    const a = big(4);
    const b = big(5);
    expect(a.buffer).not.toBe(b.buffer);
    expect(decodeOne(a).payload.every((x) => x === 4)).toBe(true);
  });

  test("small frames, views into a frame and buffers made elsewhere are left alone", () => {
    const small = encodeFrame({ type: messageType.replica, flags: frameFlags.oneWay, requestId: 0 }, new Uint8Array(100));
    expect(small.byteLength).toBeLessThan(pooledFrameBytesMin);
    const frame = big(6);
    releaseFrame(frame.subarray(10));
    releaseFrame(new Uint8Array(1 << 20));
    releaseFrame(small);
    expect(big(7).buffer).not.toBe(frame.buffer);
  });

  test("a large frame split across chunks comes in a buffer of its own, handed over and never written again; a small one is borrowed", () => {
    const big = (seed: number): Uint8Array => encodeFrame({ type: 9, flags: 0, requestId: seed }, pattern(pooledFrameBytesMin + 100, seed));
    const small = encodeFrame({ type: 9, flags: 0, requestId: 99 }, pattern(9000, 99));
    const s = stream([big(1), small, big(2), big(3)]);
    const decoder = new FrameDecoder();
    const kept: Frame[] = [];
    for (let at = 0; at < s.length; at += 7000) {
      const chunk = s.slice(at, at + 7000); // a fresh chunk each time, as a socket's
      expect(decoder.push(chunk, (f) => kept.push(f))).toBeNull();
      chunk.fill(0);
    }
    expect(kept.map((f) => f.requestId)).toEqual([1, 99, 2, 3]);
    expect(kept.map((f) => isHandedOver(f.payload))).toEqual([true, false, true, true]);
    // Every large frame kept as delivered: later frames did not reuse its buffer.
    for (const [i, seed] of [[0, 1], [2, 2], [3, 3]] as const) expect(hex(kept[i]?.payload ?? new Uint8Array())).toBe(hex(pattern(pooledFrameBytesMin + 100, seed)));
    expect(new Set(kept.filter((f) => isHandedOver(f.payload)).map((f) => f.payload.buffer)).size).toBe(3);
  });
});
