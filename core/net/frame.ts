// The node-to-node wire frame: a fixed 20-byte header, then the payload, then (on transports
// that authenticate frames themselves) a tag of a fixed length. Pure: it builds frames into
// buffers and cuts a byte stream into whole frames; it never touches a socket, and it knows
// nothing of what a payload means (messages.ts does).
//
// Header layout (all integers big-endian, like iSCSI and most network protocols):
//   0  u32 magic        "QSNT" (0x51534e54): a stream that is not ours is refused at once
//   4  u8  version      frameVersion
//   5  u8  type         a MessageType (messages.ts)
//   6  u16 flags        frameFlags
//   8  u32 requestId    correlates a response with its request (0: none)
//   12 u32 payloadBytes length of the payload that follows the header
//   16 u32 checksum     CRC-32C of header bytes 0..15, continued over the payload when the
//                       frame carries no tag
// The checksum sits last so that it covers one contiguous run of the header; it catches
// corruption in memory and in software between the two ends (TLS itself would catch the wire).
// A tagged frame's tag (GMAC or HMAC, frame-auth.ts) covers header and payload already, and a
// frame is used only after its tag was verified (connection.ts): there the checksum covers the
// header alone, so that the decoder still refuses a torn header before reading a length from it.
// A second pass over every byte bought nothing (one per frame built and one per frame received:
// two per MiB on a replicated write's primary node, for its forwards, one on each secondary).
import { assert } from "../util/assert.ts";
import { handOver } from "../util/handover.ts";
import { crc32c } from "../util/crc32c.ts";
import { uninitialized } from "../util/bytes.ts";

export const frameMagic = 0x51534e54;
export const frameVersion = 2;
export const frameHeaderBytes = 20;

const offsets = { magic: 0, version: 4, type: 5, flags: 6, requestId: 8, payloadBytes: 12, checksum: 16 } as const;

export const frameFlags = {
  /** The frame answers the request with the same requestId. */
  response: 0x0001,
  /**
   * A one-way frame (a post): nothing answers it, its requestId is 0. Replication batches are
   * posts, their replies are messages of their own: an empty answer per batch cost a frame each
   * way, a seal, a verify and a system call for nothing.
   */
  oneWay: 0x0002,
} as const;
const knownFlags = frameFlags.response | frameFlags.oneWay;

/**
 * The largest payload a decoder accepts unless told otherwise: a 1 MiB data write with its
 * fixed fields, with room to spare. Bounded so that a corrupt or hostile length can't make a
 * receiver allocate without limit.
 */
export const payloadBytesMaxDefault = (1 << 20) + 4096;

export interface FrameHead {
  type: number;
  flags: number;
  requestId: number;
}

/**
 * A decoded frame. `payload`, `tag` and `bytes` are views into the pushed chunk or the
 * decoder's buffer, valid only during the onFrame call: code that keeps one copies it.
 */
export interface Frame extends FrameHead {
  payload: Uint8Array;
  /** The authentication tag after the payload (empty when the decoder's tagBytes is 0). */
  tag: Uint8Array;
  /** Header and payload: what a tag is computed over. */
  bytes: Uint8Array;
}

function checkHead(head: FrameHead): void {
  assert(Number.isInteger(head.type) && head.type >= 0 && head.type <= 0xff, "frame type is a u8");
  assert(Number.isInteger(head.flags) && head.flags >= 0 && (head.flags & ~knownFlags) === 0, "frame flags are known bits");
  assert(Number.isInteger(head.requestId) && head.requestId >= 0 && head.requestId <= 0xffffffff, "request id is a u32");
}

export interface FrameSpec {
  payloadBytes: number;
  /** Writes the payload in place (so that a data message is copied once). */
  fill: (payload: Uint8Array) => void;
  /** Room for an authentication tag after the payload, left zero for the sealer. */
  tagBytes?: number;
  /**
   * Bytes at the end of the payload that `fill` overwrites whole (copied data): left
   * uninitialised rather than zeroed first. Everything else starts at zero, so that reserved
   * fields are zero and no stale memory can reach the wire.
   */
  filledTailBytes?: number;
}

/**
 * Builds one frame: allocates header + payload + tag, lets `fill` write the payload, then
 * computes the checksum. The buffer is not zero-filled by the allocator (that costs ≈450 µs
 * per MiB here against ≈25 µs) but by this function, except the tail `fill` promises to write.
 */
export function buildFrame(head: FrameHead, spec: FrameSpec): Uint8Array {
  checkHead(head);
  const { payloadBytes } = spec;
  const tagBytes = spec.tagBytes ?? 0;
  const filledTailBytes = spec.filledTailBytes ?? 0;
  assert(Number.isInteger(payloadBytes) && payloadBytes >= 0 && payloadBytes <= 0xffffffff);
  assert(Number.isInteger(tagBytes) && tagBytes >= 0);
  assert(Number.isInteger(filledTailBytes) && filledTailBytes >= 0 && filledTailBytes <= payloadBytes);
  const total = frameHeaderBytes + payloadBytes + tagBytes;
  const out = frameBuffer(total);
  const tailAt = frameHeaderBytes + payloadBytes - filledTailBytes;
  out.fill(0, 0, tailAt);
  out.fill(0, frameHeaderBytes + payloadBytes);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(offsets.magic, frameMagic);
  view.setUint8(offsets.version, frameVersion);
  view.setUint8(offsets.type, head.type);
  view.setUint16(offsets.flags, head.flags);
  view.setUint32(offsets.requestId, head.requestId);
  view.setUint32(offsets.payloadBytes, payloadBytes);
  const payload = out.subarray(frameHeaderBytes, frameHeaderBytes + payloadBytes);
  spec.fill(payload);
  view.setUint32(offsets.checksum, frameChecksum(out.subarray(0, offsets.checksum), payload, tagBytes));
  return out;
}

/** The header's checksum field: CRC-32C of its first 16 bytes, continued over the payload of an untagged frame. */
function frameChecksum(head: Uint8Array, payload: Uint8Array, tagBytes: number): number {
  const sum = crc32c(head);
  return tagBytes === 0 ? crc32c(payload, sum) : sum;
}

/** A frame whose payload is given whole (control messages). */
export function encodeFrame(head: FrameHead, payload: Uint8Array, tagBytes = 0): Uint8Array {
  return buildFrame(head, { payloadBytes: payload.byteLength, fill: (p) => p.set(payload), tagBytes, filledTailBytes: payload.byteLength });
}

// ---- reused buffers for large frames ----
//
// A fresh 1 MiB buffer costs ≈310 µs here to fill (the first touch of every page faults) against
// ≈50 µs for one filled before (docs/PERFORMANCE.md): node a builds two such frames per MiB a
// replicated LUN is written. A large frame's buffer goes back to a pool once a connection's
// socket took every byte of it (releaseFrame; the socket keeps no reference) and is reused by
// the next frame of its size class. A frame that is never released is ordinary garbage.

/** Frames from this size on come from the pool (smaller ones are gathered into a write anyway). */
export const pooledFrameBytesMin = 64 << 10;
/** Buffers kept per size class, and in all. */
const poolPerClassMax = 4;
const poolBytesMax = 32 << 20;
const pool = new Map<number, ArrayBuffer[]>();
/** Buffers this module made for the pool, and those in it now (a release twice is ignored). */
const pooledBuffers = new WeakSet<ArrayBuffer>();
const idleBuffers = new WeakSet<ArrayBuffer>();
let poolBytes = 0;

function sizeClass(bytes: number): number {
  return 2 ** Math.ceil(Math.log2(bytes));
}

function frameBuffer(bytes: number): Uint8Array {
  if (bytes < pooledFrameBytesMin) return uninitialized(bytes);
  const cls = sizeClass(bytes);
  let buffer = pool.get(cls)?.pop();
  if (buffer !== undefined) {
    idleBuffers.delete(buffer);
    poolBytes -= cls;
  } else {
    buffer = new ArrayBuffer(cls);
    pooledBuffers.add(buffer);
  }
  return new Uint8Array(buffer, 0, bytes);
}

/**
 * Gives a frame's buffer back once nothing reads it any more (a socket took all of it). Only a
 * whole frame that buildFrame made from the pool counts; anything else is left alone.
 */
export function releaseFrame(frame: Uint8Array): void {
  // Every frame a socket takes whole comes here: the small ones leave at the first test.
  if (frame.byteLength < pooledFrameBytesMin) return;
  const buffer = frame.buffer;
  if (!(buffer instanceof ArrayBuffer) || !pooledBuffers.has(buffer) || idleBuffers.has(buffer) || frame.byteOffset !== 0) return;
  const cls = buffer.byteLength;
  const list = pool.get(cls) ?? [];
  if (list.length >= poolPerClassMax || poolBytes + cls > poolBytesMax) return;
  list.push(buffer);
  pool.set(cls, list);
  idleBuffers.add(buffer);
  poolBytes += cls;
}

export type FrameError =
  | { reason: "bad-magic" }
  | { reason: "bad-version"; version: number }
  | { reason: "bad-flags"; flags: number }
  | { reason: "too-long"; payloadBytes: number; payloadBytesMax: number }
  | { reason: "bad-checksum"; type: number; requestId: number };

export interface FrameDecoderOptions {
  /** Longest payload accepted (default payloadBytesMaxDefault). */
  payloadBytesMax?: number;
  /** Bytes of authentication tag after each payload (0 on TLS). */
  tagBytes?: number;
}

/**
 * Cuts a byte stream into whole frames. Frames that lie whole inside a pushed chunk are
 * yielded as views of it (no copy); a frame split across chunks is gathered into the decoder's
 * own buffer, which is reused, or, a large one (pooledFrameBytesMin on), into a buffer of its
 * own that is handed over with it (core/util/handover.ts: nothing writes it again). After the
 * first error the decoder refuses everything: a stream that has lost its framing can't be
 * trusted again, and the connection must be closed.
 */
export class FrameDecoder {
  readonly payloadBytesMax: number;
  readonly tagBytes: number;
  /** The held-back frame's bytes: in `gather`, or (a large frame) in a buffer of its own. */
  private partial: Uint8Array;
  /** The buffer small frames split across chunks are gathered in, reused. */
  private gather: Uint8Array;
  private partialBytes = 0;
  private failed: FrameError | null = null;

  constructor(options: FrameDecoderOptions = {}) {
    this.payloadBytesMax = options.payloadBytesMax ?? payloadBytesMaxDefault;
    this.tagBytes = options.tagBytes ?? 0;
    assert(Number.isInteger(this.payloadBytesMax) && this.payloadBytesMax >= 0 && this.payloadBytesMax <= 0xffffffff);
    assert(Number.isInteger(this.tagBytes) && this.tagBytes >= 0 && this.tagBytes <= 64);
    this.gather = new Uint8Array(frameHeaderBytes + this.tagBytes + 4096);
    this.partial = this.gather;
  }

  /** Bytes held back waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.partialBytes;
  }

  /**
   * Feeds a chunk; calls `onFrame` for each whole frame, in order. Returns null, or the error
   * that ended the stream (frames before it in the chunk were delivered).
   */
  push(chunk: Uint8Array, onFrame: (frame: Frame) => void): FrameError | null {
    if (this.failed !== null) return this.failed;
    let at = 0;
    if (this.partialBytes > 0) {
      // Complete the held-back frame first: the header, then the rest.
      at = this.fill(chunk, at, frameHeaderBytes);
      if (this.partialBytes < frameHeaderBytes) return null;
      const head = this.readHeader(this.partial, 0);
      if ("reason" in head) return this.fail(head);
      const total = frameHeaderBytes + head.payloadBytes + this.tagBytes;
      const large = total >= pooledFrameBytesMin;
      if (this.partial.byteLength < total || (large && this.partial === this.gather)) {
        // Not zero-filled: only bytes copied in are ever read. A large frame gets a buffer of
        // its own, handed over with it (receivers keep views of its data instead of copying).
        const grown = uninitialized(total);
        grown.set(this.partial.subarray(0, this.partialBytes));
        this.partial = grown;
        if (!large) this.gather = grown;
      }
      at = this.fill(chunk, at, total);
      if (this.partialBytes < total) return null;
      const frame = this.frameAt(this.partial, 0, head.payloadBytes);
      this.partialBytes = 0;
      if (large) {
        handOver(this.partial);
        this.partial = this.gather;
      }
      if ("reason" in frame) return this.fail(frame);
      onFrame(frame);
    }
    while (chunk.byteLength - at >= frameHeaderBytes) {
      const head = this.readHeader(chunk, at);
      if ("reason" in head) return this.fail(head);
      const total = frameHeaderBytes + head.payloadBytes + this.tagBytes;
      if (chunk.byteLength - at < total) break;
      const frame = this.frameAt(chunk, at, head.payloadBytes);
      if ("reason" in frame) return this.fail(frame);
      onFrame(frame);
      at += total;
    }
    if (at < chunk.byteLength) {
      // Keep the tail. The buffer only grows to the frame's length, bounded by payloadBytesMax.
      const rest = chunk.byteLength - at;
      if (this.partial.byteLength < rest) this.partial = uninitialized(rest);
      this.partial.set(chunk.subarray(at));
      this.partialBytes = rest;
    }
    return null;
  }

  /** Copies from chunk into the partial buffer until it holds `upTo` bytes; returns the new position in chunk. */
  private fill(chunk: Uint8Array, at: number, upTo: number): number {
    const n = Math.min(upTo - this.partialBytes, chunk.byteLength - at);
    if (n <= 0) return at;
    this.partial.set(chunk.subarray(at, at + n), this.partialBytes);
    this.partialBytes += n;
    return at + n;
  }

  private readHeader(buf: Uint8Array, at: number): { payloadBytes: number } | FrameError {
    const view = new DataView(buf.buffer, buf.byteOffset + at, frameHeaderBytes);
    if (view.getUint32(offsets.magic) !== frameMagic) return { reason: "bad-magic" };
    const version = view.getUint8(offsets.version);
    if (version !== frameVersion) return { reason: "bad-version", version };
    const flags = view.getUint16(offsets.flags);
    if ((flags & ~knownFlags) !== 0) return { reason: "bad-flags", flags };
    const payloadBytes = view.getUint32(offsets.payloadBytes);
    if (payloadBytes > this.payloadBytesMax) return { reason: "too-long", payloadBytes, payloadBytesMax: this.payloadBytesMax };
    return { payloadBytes };
  }

  private frameAt(buf: Uint8Array, at: number, payloadBytes: number): Frame | FrameError {
    const view = new DataView(buf.buffer, buf.byteOffset + at, frameHeaderBytes);
    const type = view.getUint8(offsets.type);
    const requestId = view.getUint32(offsets.requestId);
    const payloadEnd = at + frameHeaderBytes + payloadBytes;
    const payload = buf.subarray(at + frameHeaderBytes, payloadEnd);
    if (frameChecksum(buf.subarray(at, at + offsets.checksum), payload, this.tagBytes) !== view.getUint32(offsets.checksum)) return { reason: "bad-checksum", type, requestId };
    return { type, flags: view.getUint16(offsets.flags), requestId, payload, tag: buf.subarray(payloadEnd, payloadEnd + this.tagBytes), bytes: buf.subarray(at, payloadEnd) };
  }

  private fail(error: FrameError): FrameError {
    this.failed = error;
    this.partialBytes = 0;
    return error;
  }
}

/** One line for a log or an error message. */
export function describeFrameError(e: FrameError): string {
  switch (e.reason) {
    case "bad-magic":
      return "the peer sent bytes that are not a qstora frame";
    case "bad-version":
      return `the peer speaks frame version ${e.version}, this node ${frameVersion}`;
    case "bad-flags":
      return `the peer sent unknown frame flags 0x${e.flags.toString(16)}`;
    case "too-long":
      return `the peer announced a ${e.payloadBytes}-byte payload, more than the ${e.payloadBytesMax} allowed`;
    case "bad-checksum":
      return `frame type ${e.type} (request ${e.requestId}) failed its checksum`;
  }
}
