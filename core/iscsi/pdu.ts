// iSCSI PDU layout (RFC 7143 §11), a chunk decoder and an encoder. Knows nothing of sockets or
// sessions: `PduDecoder.push` takes byte chunks and hands whole PDUs to a sink as views into the
// chunk (or into its own bounded reassembly buffer when a PDU spans chunks), valid only until
// the sink returns; code that keeps a PDU's bytes copies them. `encodePdu` writes a PDU into a
// buffer it is given. Header and data digests (CRC32C, RFC 7143 §13.1) are checked and written
// when negotiated.
import { assert } from "../util/assert.ts";
import { crc32c } from "../util/crc32c.ts";

/** RFC 7143 §11.2: the Basic Header Segment is 48 bytes. */
export const bhsBytes = 48;
/** RFC 7143 §11.2.1.5: TotalAHSLength counts 4-byte words in one byte. */
const ahsWordsMax = 255;
/** RFC 7143 §11.2.1.6: DataSegmentLength is a 24-bit field. */
export const dataSegmentBytesLimit = 0xffffff;
/** RFC 7143 §13.1: a digest is a 4-byte CRC32C. */
export const digestBytes = 4;

/** Opcodes, RFC 7143 §11.2.1.2 (initiator opcodes 0x00-0x1f, target opcodes 0x20-0x3f). */
export const Op = {
  nopOut: 0x00,
  scsiCommand: 0x01,
  taskManagementRequest: 0x02,
  loginRequest: 0x03,
  textRequest: 0x04,
  dataOut: 0x05,
  logoutRequest: 0x06,
  snackRequest: 0x10,
  nopIn: 0x20,
  scsiResponse: 0x21,
  taskManagementResponse: 0x22,
  loginResponse: 0x23,
  textResponse: 0x24,
  dataIn: 0x25,
  logoutResponse: 0x26,
  r2t: 0x31,
  asyncMessage: 0x32,
  reject: 0x3f,
} as const;

/** Byte 0: bit 6 is the I (immediate delivery) bit; bits 5..0 the opcode (RFC 7143 §11.2.1.1). */
export const immediateBit = 0x40;
const opcodeMask = 0x3f;

/** Byte offsets in the BHS (RFC 7143 §11.3-§11.19); several fields share an offset by opcode. */
export const Bhs = {
  opcode: 0,
  flags: 1,
  /** Login/logout/TMF/SCSI response: response or status bytes. */
  byte2: 2,
  byte3: 3,
  totalAhsLength: 4,
  dataSegmentLength: 5,
  lun: 8,
  /** Login: ISID (6 bytes) and TSIH (2 bytes) in place of the LUN. */
  isid: 8,
  tsih: 14,
  initiatorTaskTag: 16,
  targetTransferTag: 20,
  /** SCSI Command: Expected Data Transfer Length. */
  expectedDataTransferLength: 20,
  /** TMF request: Referenced Task Tag. */
  referencedTaskTag: 20,
  cmdSN: 24,
  statSN: 24,
  expStatSN: 28,
  expCmdSN: 28,
  maxCmdSN: 32,
  /** SCSI Command: the CDB field (16 bytes). */
  cdb: 32,
  dataSN: 36,
  r2tSN: 36,
  /** Login response: Status-Class and Status-Detail. */
  statusClass: 36,
  statusDetail: 37,
  bufferOffset: 40,
  /** Logout response: Time2Wait and Time2Retain. */
  time2Wait: 40,
  time2Retain: 42,
  residualCount: 44,
  desiredDataTransferLength: 44,
} as const;

/** Flags byte bits (RFC 7143 §11). */
export const Flag = {
  /** F: final PDU of a sequence (all PDUs with a flags byte). */
  final: 0x80,
  /** Login: T (transit). */
  transit: 0x80,
  /** Login/Text: C (continue). */
  continue: 0x40,
  /** SCSI Command: R (read) and W (write). */
  read: 0x40,
  write: 0x20,
  /** Data-In: A (acknowledge), S (status present); Data-In and SCSI Response: O and U residuals. */
  acknowledge: 0x40,
  residualOverflow: 0x04,
  residualUnderflow: 0x02,
  status: 0x01,
} as const;

/** "No task" / "no transfer" tag value (RFC 7143 §11.18, §11.19). */
export const reservedTag = 0xffffffff;

/** Reject reasons, RFC 7143 §11.17.1. */
export const RejectReason = {
  dataDigestError: 0x02,
  snackReject: 0x03,
  protocolError: 0x04,
  commandNotSupported: 0x05,
  immediateCommandRejected: 0x06,
  taskInProgress: 0x07,
  invalidDataAck: 0x08,
  invalidPduField: 0x09,
  outOfResources: 0x0a,
  waitingForLogout: 0x0c,
} as const;

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

// Digests travel as the CRC's four bytes least significant first (RFC 7143 §13.1 with the byte
// order every implementation uses: the CRC register stored little-endian).
export function u32le(b: Uint8Array, at: number): number {
  return ((b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16) | ((b[at + 3] as number) << 24)) >>> 0;
}
export function put32le(b: Uint8Array, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

/** RFC 7143 §11.2.3: the data segment is padded to a 4-byte boundary. */
export const pad4 = (n: number): number => (n + 3) & ~3;

/**
 * One decoded PDU. The decoder reuses one object: every field is valid only during the sink
 * call that receives it.
 */
export interface Pdu {
  /** The 48-byte BHS. */
  header: Uint8Array;
  opcode: number;
  immediate: boolean;
  /** Additional header segments (RFC 7143 §11.2.2), possibly empty. */
  ahs: Uint8Array;
  data: Uint8Array;
}

export interface PduSink {
  onPdu(pdu: Pdu): void;
  /**
   * A PDU whose data digest failed (RFC 7143 §7.8): the stream is still in sync, the PDU is
   * dropped; `header` is a view valid during the call.
   */
  onDataDigestError(header: Uint8Array): void;
}

export type DecodeError = { readonly kind: "header-digest" } | { readonly kind: "too-long"; readonly dataBytes: number };

export class PduDecoder {
  headerDigest = false;
  dataDigest = false;
  /** Largest data segment accepted: our MaxRecvDataSegmentLength (or the login limit before it). */
  dataBytesMax: number;
  /** Reassembly buffer for a PDU that spans chunks, bounded by the largest PDU we accept. */
  private partial: Uint8Array = new Uint8Array(bhsBytes);
  private partialBytes = 0;
  private failed: DecodeError | null = null;
  private readonly pdu: Pdu = { header: new Uint8Array(0), opcode: 0, immediate: false, ahs: new Uint8Array(0), data: new Uint8Array(0) };

  constructor(dataBytesMax: number) {
    assert(dataBytesMax > 0 && dataBytesMax <= dataSegmentBytesLimit, "bad dataBytesMax");
    this.dataBytesMax = dataBytesMax;
  }

  /** The largest whole PDU this decoder accepts, for bounding buffers. */
  pduBytesMax(): number {
    return bhsBytes + ahsWordsMax * 4 + digestBytes + pad4(this.dataBytesMax) + digestBytes;
  }

  /** Bytes of the PDU whose BHS starts at `b[at]`; null when its data segment is too long. */
  private pduBytes(b: Uint8Array, at: number): number | null {
    const ahsBytes = (b[at + Bhs.totalAhsLength] as number) * 4;
    const dataBytes = u24(b, at + Bhs.dataSegmentLength);
    if (dataBytes > this.dataBytesMax) return null;
    const headerBytes = bhsBytes + ahsBytes + (this.headerDigest ? digestBytes : 0);
    return headerBytes + (dataBytes > 0 ? pad4(dataBytes) + (this.dataDigest ? digestBytes : 0) : 0);
  }

  /**
   * Decodes every whole PDU in `chunk` (after any bytes left from earlier chunks), handing each
   * to `sink`. Returns an error when the stream can no longer be followed (the connection must
   * close); once failed, the decoder stays failed.
   */
  push(chunk: Uint8Array, sink: PduSink): DecodeError | null {
    if (this.failed !== null) return this.failed;
    let at = 0;
    if (this.partialBytes > 0) {
      at = this.fillPartial(chunk, sink);
      if (at < 0) return this.failed;
      if (this.partialBytes > 0) return null; // still incomplete: the chunk is used up
    }
    while (chunk.length - at >= bhsBytes) {
      const total = this.pduBytes(chunk, at);
      if (total === null) return this.fail({ kind: "too-long", dataBytes: u24(chunk, at + Bhs.dataSegmentLength) });
      if (chunk.length - at < total) break;
      if (!this.emit(chunk, at, sink)) return this.failed;
      at += total;
    }
    if (at < chunk.length) this.keep(chunk.subarray(at));
    return null;
  }

  private fail(e: DecodeError): DecodeError {
    this.failed = e;
    this.partialBytes = 0;
    return e;
  }

  private keep(rest: Uint8Array): void {
    assert(this.partialBytes === 0);
    this.ensurePartial(Math.max(rest.length, bhsBytes));
    this.partial.set(rest);
    this.partialBytes = rest.length;
  }

  private ensurePartial(bytes: number): void {
    assert(bytes <= this.pduBytesMax(), "reassembly beyond the largest PDU");
    if (this.partial.length >= bytes) return;
    const grown = new Uint8Array(Math.min(Math.max(bytes, this.partial.length * 2), this.pduBytesMax()));
    grown.set(this.partial.subarray(0, this.partialBytes));
    this.partial = grown;
  }

  /**
   * Completes the PDU held in `partial` from the front of `chunk` and emits it. Returns the
   * chunk offset after the bytes taken (with `partialBytes` still > 0 when the chunk ran out),
   * or -1 on a stream error.
   */
  private fillPartial(chunk: Uint8Array, sink: PduSink): number {
    let at = 0;
    if (this.partialBytes < bhsBytes) {
      const take = Math.min(bhsBytes - this.partialBytes, chunk.length);
      this.ensurePartial(bhsBytes);
      this.partial.set(chunk.subarray(0, take), this.partialBytes);
      this.partialBytes += take;
      at = take;
      if (this.partialBytes < bhsBytes) return at;
    }
    const total = this.pduBytes(this.partial, 0);
    if (total === null) {
      this.fail({ kind: "too-long", dataBytes: u24(this.partial, Bhs.dataSegmentLength) });
      return -1;
    }
    this.ensurePartial(total);
    const take = Math.min(total - this.partialBytes, chunk.length - at);
    this.partial.set(chunk.subarray(at, at + take), this.partialBytes);
    this.partialBytes += take;
    at += take;
    if (this.partialBytes < total) return at;
    this.partialBytes = 0;
    return this.emit(this.partial, 0, sink) ? at : -1;
  }

  /** Emits the PDU at `b[at]` (whole). False when its header digest fails. */
  private emit(b: Uint8Array, at: number, sink: PduSink): boolean {
    const ahsBytes = (b[at + Bhs.totalAhsLength] as number) * 4;
    const dataBytes = u24(b, at + Bhs.dataSegmentLength);
    const headerEnd = at + bhsBytes + ahsBytes;
    if (this.headerDigest && crc32c(b.subarray(at, headerEnd)) !== u32le(b, headerEnd)) {
      this.fail({ kind: "header-digest" });
      return false;
    }
    const dataStart = headerEnd + (this.headerDigest ? digestBytes : 0);
    if (this.dataDigest && dataBytes > 0) {
      const padded = pad4(dataBytes);
      if (crc32c(b.subarray(dataStart, dataStart + padded)) !== u32le(b, dataStart + padded)) {
        sink.onDataDigestError(b.subarray(at, at + bhsBytes));
        return true;
      }
    }
    const first = b[at] as number;
    const pdu = this.pdu;
    pdu.header = b.subarray(at, at + bhsBytes);
    pdu.opcode = first & opcodeMask;
    pdu.immediate = (first & immediateBit) !== 0;
    pdu.ahs = b.subarray(at + bhsBytes, headerEnd);
    pdu.data = b.subarray(dataStart, dataStart + dataBytes);
    sink.onPdu(pdu);
    return true;
  }
}

/** Bytes an outgoing PDU takes with `dataBytes` of data and these digests. */
export function encodedBytes(dataBytes: number, headerDigest: boolean, dataDigest: boolean): number {
  return bhsBytes + (headerDigest ? digestBytes : 0) + (dataBytes > 0 ? pad4(dataBytes) + (dataDigest ? digestBytes : 0) : 0);
}

/**
 * Writes one PDU into `out` at `at`: `header` (48 bytes; its TotalAHSLength and
 * DataSegmentLength are set here), the header digest, `data` padded to 4 bytes and the data
 * digest. Returns the bytes written. Target PDUs carry no AHS.
 */
export function encodePdu(out: Uint8Array, at: number, pdu: { header: Uint8Array; data: Uint8Array | null; headerDigest: boolean; dataDigest: boolean }): number {
  const dataBytes = pdu.data === null ? 0 : pdu.data.length;
  assert(pdu.header.length === bhsBytes, "a BHS is 48 bytes");
  assert(dataBytes <= dataSegmentBytesLimit, "data segment too long");
  assert(at + encodedBytes(dataBytes, pdu.headerDigest, pdu.dataDigest) <= out.length, "output buffer too small");
  out.set(pdu.header, at);
  out[at + Bhs.totalAhsLength] = 0;
  put24(out, at + Bhs.dataSegmentLength, dataBytes);
  let pos = at + bhsBytes;
  if (pdu.headerDigest) {
    put32le(out, pos, crc32c(out.subarray(at, pos)));
    pos += digestBytes;
  }
  if (pdu.data !== null && dataBytes > 0) {
    out.set(pdu.data, pos);
    const padded = pad4(dataBytes);
    out.fill(0, pos + dataBytes, pos + padded);
    if (pdu.dataDigest) put32le(out, pos + padded, crc32c(out.subarray(pos, pos + padded)));
    pos += padded + (pdu.dataDigest ? digestBytes : 0);
  }
  return pos - at;
}
