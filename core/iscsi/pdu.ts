// iSCSI PDU layout (RFC 7143 §11) and a chunk decoder. Knows nothing of sockets: `PduDecoder`
// takes byte chunks and yields whole PDUs whose header and data are views into the chunk (or
// into its own reassembly buffer when a PDU spans chunks) — valid until the next push; code
// that keeps one copies it. Header/data digests (CRC32C) are checked when negotiated.
import { crc32c } from "../util/crc32c.ts";

export const bhsBytes = 48; // RFC 7143 §11.2: Basic Header Segment

/** Opcodes, RFC 7143 §11.2.1.2. */
export const Op = {
  nopOut: 0x00,
  scsiCommand: 0x01,
  taskMgmtRequest: 0x02,
  loginRequest: 0x03,
  textRequest: 0x04,
  dataOut: 0x05,
  logoutRequest: 0x06,
  snackRequest: 0x10,
  nopIn: 0x20,
  scsiResponse: 0x21,
  taskMgmtResponse: 0x22,
  loginResponse: 0x23,
  textResponse: 0x24,
  dataIn: 0x25,
  logoutResponse: 0x26,
  r2t: 0x31,
  asyncMessage: 0x32,
  reject: 0x3f,
} as const;

export const reservedTag = 0xffffffff; // RFC 7143 §11.18/§11.19: "no task" tag

/** Reject reasons, RFC 7143 §11.17.1. */
export const RejectReason = { dataDigestError: 0x02, protocolError: 0x04, commandNotSupported: 0x05, invalidPduField: 0x09 } as const;

export interface Pdu {
  /** The 48-byte BHS. */
  readonly header: Uint8Array;
  readonly opcode: number;
  readonly immediate: boolean;
  /** Additional header segments (RFC 7143 §11.2.2), possibly empty. */
  readonly ahs: Uint8Array;
  readonly data: Uint8Array;
}

export type DecodeError = { kind: "header-digest" } | { kind: "data-digest"; header: Uint8Array } | { kind: "too-long"; length: number };

export const u32 = (b: Uint8Array, at: number): number => (((b[at] as number) << 24) | ((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number)) >>> 0;
export const u24 = (b: Uint8Array, at: number): number => ((b[at] as number) << 16) | ((b[at + 1] as number) << 8) | (b[at + 2] as number);
export const u16 = (b: Uint8Array, at: number): number => ((b[at] as number) << 8) | (b[at + 1] as number);
export function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}
export function put24(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 16;
  b[at + 1] = v >>> 8;
  b[at + 2] = v;
}
export function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v;
}

const pad4 = (n: number): number => (n + 3) & ~3;

export class PduDecoder {
  headerDigest = false;
  dataDigest = false;
  /** Largest data segment accepted (our MaxRecvDataSegmentLength, or more during login). */
  dataBytesMax: number;
  private pending: Uint8Array = new Uint8Array(0);
  private pendingBytes = 0;

  constructor(dataBytesMax: number) {
    this.dataBytesMax = dataBytesMax;
  }

  /** Total bytes of the PDU starting at `b[at]` once its BHS is known. */
  private pduBytes(b: Uint8Array, at: number): number {
    const ahsBytes = (b[at + 4] as number) * 4;
    const dataBytes = u24(b, at + 5);
    return bhsBytes + ahsBytes + (this.headerDigest ? 4 : 0) + (dataBytes > 0 ? pad4(dataBytes) + (this.dataDigest ? 4 : 0) : 0);
  }

  /** Decodes every whole PDU in `chunk` (plus any leftover), calling `onPdu` for each. */
  push(chunk: Uint8Array, onPdu: (pdu: Pdu) => void, onError: (e: DecodeError) => void): void {
    let buf = chunk;
    let at = 0;
    if (this.pendingBytes > 0) {
      // Join the leftover with just enough of the chunk to finish one PDU, then go on in the chunk.
      const need = (): number => (this.pendingBytes < bhsBytes ? bhsBytes : this.pduBytes(this.pending, 0));
      while (this.pendingBytes < need() && at < chunk.length) {
        const want = need();
        if (this.pending.length < want) {
          const grown = new Uint8Array(Math.max(want, this.pending.length * 2));
          grown.set(this.pending.subarray(0, this.pendingBytes));
          this.pending = grown;
        }
        const take = Math.min(want - this.pendingBytes, chunk.length - at);
        this.pending.set(chunk.subarray(at, at + take), this.pendingBytes);
        this.pendingBytes += take;
        at += take;
      }
      if (this.pendingBytes < need()) return;
      const whole = this.pending.subarray(0, this.pendingBytes);
      this.pendingBytes = 0;
      if (!this.emit(whole, 0, onPdu, onError)) return;
      buf = chunk;
    }
    while (buf.length - at >= bhsBytes) {
      const dataBytes = u24(buf, at + 5);
      if (dataBytes > this.dataBytesMax) {
        onError({ kind: "too-long", length: dataBytes });
        return;
      }
      const total = this.pduBytes(buf, at);
      if (buf.length - at < total) break;
      if (!this.emit(buf, at, onPdu, onError)) return;
      at += total;
    }
    const rest = buf.length - at;
    if (rest > 0) {
      if (this.pending.length < rest) this.pending = new Uint8Array(Math.max(rest, bhsBytes, 65536));
      this.pending.set(buf.subarray(at));
      this.pendingBytes = rest;
    }
  }

  private emit(b: Uint8Array, at: number, onPdu: (pdu: Pdu) => void, onError: (e: DecodeError) => void): boolean {
    const ahsBytes = (b[at + 4] as number) * 4;
    const dataBytes = u24(b, at + 5);
    const headerEnd = at + bhsBytes + ahsBytes;
    if (this.headerDigest) {
      const want = u32le(b, headerEnd);
      if (crc32c(b.subarray(at, headerEnd)) !== want) {
        onError({ kind: "header-digest" });
        return false;
      }
    }
    const dataStart = headerEnd + (this.headerDigest ? 4 : 0);
    const data = b.subarray(dataStart, dataStart + dataBytes);
    if (this.dataDigest && dataBytes > 0) {
      const want = u32le(b, dataStart + pad4(dataBytes));
      if (crc32c(b.subarray(dataStart, dataStart + pad4(dataBytes))) !== want) {
        onError({ kind: "data-digest", header: b.slice(at, at + bhsBytes) });
        return true; // the PDU is skipped; the stream stays in sync
      }
    }
    onPdu({ header: b.subarray(at, at + bhsBytes), opcode: (b[at] as number) & 0x3f, immediate: ((b[at] as number) & 0x40) !== 0, ahs: b.subarray(at + bhsBytes, headerEnd), data });
    return true;
  }
}

// Digests are sent as the CRC's four bytes, least significant first (RFC 7143 §13.1 with the
// byte order iSCSI implementations use: the CRC register in little-endian order).
export function u32le(b: Uint8Array, at: number): number {
  return ((b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16) | ((b[at + 3] as number) << 24)) >>> 0;
}
export function put32le(b: Uint8Array, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

/** Bytes an outgoing PDU takes with this data length and these digests. */
export function encodedBytes(dataBytes: number, headerDigest: boolean, dataDigest: boolean): number {
  return bhsBytes + (headerDigest ? 4 : 0) + (dataBytes > 0 ? pad4(dataBytes) + (dataDigest ? 4 : 0) : 0);
}

/**
 * Writes a PDU into `out` at `at`: the 48-byte header (already filled by the caller in
 * out[at..at+48), with its DataSegmentLength set here), digests and the padded data.
 * Returns the bytes written.
 */
export function finishPdu(out: Uint8Array, at: number, data: Uint8Array | null, headerDigest: boolean, dataDigest: boolean): number {
  const dataBytes = data === null ? 0 : data.length;
  out[at + 4] = 0; // no AHS in target PDUs
  put24(out, at + 5, dataBytes);
  let pos = at + bhsBytes;
  if (headerDigest) {
    put32le(out, pos, crc32c(out.subarray(at, at + bhsBytes)));
    pos += 4;
  }
  if (data !== null && dataBytes > 0) {
    out.set(data, pos);
    const padded = pad4(dataBytes);
    out.fill(0, pos + dataBytes, pos + padded);
    if (dataDigest) put32le(out, pos + padded, crc32c(out.subarray(pos, pos + padded)));
    pos += padded + (dataDigest ? 4 : 0);
  }
  return pos - at;
}
