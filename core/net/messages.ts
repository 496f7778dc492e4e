// The node-to-node messages: their type numbers, the CBOR encoding of control messages and the
// fixed byte layouts of data messages. Pure: bytes in, values out, and back. It never touches a
// socket and never throws on bytes from the network (a malformed payload is a returned reason);
// it asserts only on values this node itself asks it to encode.
//
// Data messages (a write of replica data, a read) have hand-written layouts so that a 1 MiB
// write costs one copy and no allocation beyond its frame; control messages are rare and small
// and use CBOR (RFC 8949) through cbor-x, with every option written out below.
// The subpath entries, not "cbor-x" itself: its main entry loads the optional native string
// extractor (cbor-extract) when it is installed, and that crashes Bun 1.3.9 (a segfault on
// decoding any string of a few hundred bytes). The subpaths are the same code without it.
import { Encoder } from "cbor-x/encode";
import { Decoder, FLOAT32_OPTIONS } from "cbor-x/decode";
import { assert } from "../util/assert.ts";
import { buildFrame, frameFlags, frameHeaderBytes, type FrameHead } from "./frame.ts";

/** Message types (the header's type byte). Control below 16, data from 16. */
export const messageType = {
  /** Reachability and round-trip time; also the first request on every connection. */
  ping: 1,
  /** A request's failure, sent as its response (ErrorBody). */
  error: 2,
  /** The first frame each way on a MAC-authenticated connection (frame-auth.ts), untagged. */
  hello: 3,
  /** Replication messages (core/replica/types.ts), a batch of envelopes (core/replica/envelope.ts), posted one-way. */
  replica: 4,
  /** Reserved: was a coordinator's request to a primary as a request/response; those are replica messages now. */
  replicaClient: 5,
  /** Task management (LU reset) or an I_T nexus's end, sent by a portal to a LUN's coordinator (scsi-forward.ts): CBOR. */
  scsiTask: 6,
  /** Replica data to write at an offset of a segment, under an epoch and a sequence number. */
  write: 16,
  /** Bytes to read from a segment. */
  read: 17,
  /** A SCSI command a portal forwards to the LUN's coordinator, answered with its result (scsi-forward.ts). */
  scsiCommand: 18,
} as const;
export type MessageType = (typeof messageType)[keyof typeof messageType];

export function isDataType(type: number): boolean {
  return type >= 16;
}

// ---- control messages (CBOR) -------------------------------------------------------------

// cbor-x, options spelled out: plain maps (no records: a peer of another version must be able
// to read what we send without shared structures), no bundled strings, no packing, no
// structured clone; decoded byte strings are copied because a payload is a view into a socket
// buffer that is reused after the frame has been handled.
const cborOptions = {
  useRecords: false,
  mapsAsObjects: true,
  variableMapSize: true,
  copyBuffers: true,
  bundleStrings: false,
  useTimestamp32: false,
  largeBigIntToFloat: false,
  encodeUndefinedAsNil: false,
  useFloat32: FLOAT32_OPTIONS.NEVER,
  alwaysUseFloat: false,
  tagUint8Array: false,
  pack: false,
  sequential: false,
  structuredClone: false,
  useSelfDescribedHeader: false,
  useToJSON: false,
} as const;
const cborEncoder = new Encoder(cborOptions);
const cborDecoder = new Decoder(cborOptions);

export interface PingRequest {
  /** The sender's node id. */
  from: string;
  /** The sender's clock when it sent the ping (ms since the epoch), echoed back. */
  sentAtMs: number;
}
export interface PingResponse {
  /** The answering node's id and name. */
  nodeId: string;
  name: string;
  sentAtMs: number;
}

/** Why a request failed, as the responder says. `busy` means: try again later. */
export const errorCodes = ["busy", "unknown-type", "bad-message", "handler-failed", "shutting-down"] as const;
export type WireErrorCode = (typeof errorCodes)[number];
export interface ErrorBody {
  code: WireErrorCode;
  message: string;
}

export type ControlBody = PingRequest | PingResponse | ErrorBody | { cert: string; nonce: Uint8Array; mac: string };

export function encodeCbor(value: unknown): Uint8Array {
  return cborEncoder.encode(value);
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Decodes a CBOR payload into a plain object, or says why not. */
export function decodeCbor(payload: Uint8Array): Decoded<Record<string, unknown>> {
  let value: unknown;
  try {
    value = cborDecoder.decode(payload);
  } catch (e) {
    return { ok: false, reason: `not CBOR: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || value instanceof Uint8Array) return { ok: false, reason: "not a CBOR map" };
  return { ok: true, value: value as Record<string, unknown> };
}

const isStr = (v: unknown): v is string => typeof v === "string";
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

export function decodePingRequest(payload: Uint8Array): Decoded<PingRequest> {
  const d = decodeCbor(payload);
  if (!d.ok) return d;
  const { from, sentAtMs } = d.value;
  if (!isStr(from) || !isNum(sentAtMs)) return { ok: false, reason: "ping request lacks from/sentAtMs" };
  return { ok: true, value: { from, sentAtMs } };
}

export function decodePingResponse(payload: Uint8Array): Decoded<PingResponse> {
  const d = decodeCbor(payload);
  if (!d.ok) return d;
  const { nodeId, name, sentAtMs } = d.value;
  if (!isStr(nodeId) || !isStr(name) || !isNum(sentAtMs)) return { ok: false, reason: "ping response lacks nodeId/name/sentAtMs" };
  return { ok: true, value: { nodeId, name, sentAtMs } };
}

export function decodeErrorBody(payload: Uint8Array): Decoded<ErrorBody> {
  const d = decodeCbor(payload);
  if (!d.ok) return d;
  const { code, message } = d.value;
  if (!isStr(code) || !(errorCodes as readonly string[]).includes(code) || !isStr(message)) return { ok: false, reason: "error body lacks a known code/message" };
  return { ok: true, value: { code: code as WireErrorCode, message } };
}

/** A frame carrying a CBOR body. */
export function controlFrame(head: FrameHead, body: ControlBody, tagBytes = 0): Uint8Array {
  assert(!isDataType(head.type), "control frame of a data type");
  const payload = encodeCbor(body);
  return buildFrame(head, { payloadBytes: payload.byteLength, fill: (p) => p.set(payload), tagBytes, filledTailBytes: payload.byteLength });
}

/** The response frame that fails request `requestId`. */
export function errorFrame(requestId: number, body: ErrorBody, tagBytes = 0): Uint8Array {
  return controlFrame({ type: messageType.error, flags: frameFlags.response, requestId }, body, tagBytes);
}

// ---- data messages (fixed layouts, big-endian) -------------------------------------------

/** A volume id is a UUID, carried as its 16 bytes. */
export const volumeIdBytes = 16;

export function uuidToBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, "");
  assert(/^[0-9a-f]{32}$/i.test(hex), `not a UUID: ${uuid}`);
  const out = new Uint8Array(volumeIdBytes);
  for (let i = 0; i < volumeIdBytes; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToUuid(bytes: Uint8Array): string {
  assert(bytes.byteLength === volumeIdBytes);
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Outcome of a data request, as the responder reports it. */
export const dataStatus = {
  ok: 0,
  /** The request's epoch is older than the responder's: the sender lost its role. */
  staleEpoch: 1,
  /** The write's sequence number is not the next one the responder expects. */
  outOfOrder: 2,
  noSpace: 3,
  ioError: 4,
  /** The responder holds no such volume or segment. */
  notFound: 5,
} as const;
export type DataStatus = (typeof dataStatus)[keyof typeof dataStatus];
const dataStatusMax = 5;

// u64 fields travel as two u32 halves and are numbers here: epochs, sequence numbers and byte
// offsets stay below 2^53 (9 PB, or a write per nanosecond for 100 days), and a peer that sends
// more is refused rather than silently rounded.
export function setU64(view: DataView, at: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, "u64 field is a safe non-negative integer");
  view.setUint32(at, Math.floor(value / 2 ** 32));
  view.setUint32(at + 4, value >>> 0);
}
export function getU64(view: DataView, at: number): number {
  return view.getUint32(at) * 2 ** 32 + view.getUint32(at + 4);
}
export const u64Max = Number.MAX_SAFE_INTEGER;

export interface SegmentAddress {
  /** The volume's id, 16 bytes (a view when decoded). */
  volumeId: Uint8Array;
  segment: number;
  epoch: number;
}

/**
 * write request:
 *   0 volumeId[16]  16 u32 segment  20 u32 reserved  24 u64 epoch  32 u64 sequence
 *   40 u64 offsetBytes  48 u32 dataBytes  52 u32 reserved  56 data[dataBytes]
 */
export const writeRequestFixedBytes = 56;
export interface WriteRequest extends SegmentAddress {
  sequence: number;
  offsetBytes: number;
  /** The bytes to write (a view when decoded). */
  data: Uint8Array;
}

function checkAddress(m: SegmentAddress): void {
  assert(m.volumeId.byteLength === volumeIdBytes);
  assert(Number.isInteger(m.segment) && m.segment >= 0 && m.segment <= 0xffffffff);
}

export function writeRequestFrame(requestId: number, m: WriteRequest, tagBytes = 0): Uint8Array {
  checkAddress(m);
  return buildFrame({ type: messageType.write, flags: 0, requestId }, { payloadBytes: writeRequestFixedBytes + m.data.byteLength, tagBytes, filledTailBytes: m.data.byteLength, fill: (p) => {
    const v = new DataView(p.buffer, p.byteOffset, writeRequestFixedBytes);
    p.set(m.volumeId, 0);
    v.setUint32(16, m.segment);
    setU64(v, 24, m.epoch);
    setU64(v, 32, m.sequence);
    setU64(v, 40, m.offsetBytes);
    v.setUint32(48, m.data.byteLength);
    p.set(m.data, writeRequestFixedBytes);
  } });
}

export function decodeWriteRequest(p: Uint8Array): Decoded<WriteRequest> {
  if (p.byteLength < writeRequestFixedBytes) return { ok: false, reason: `write request of ${p.byteLength} bytes, shorter than its ${writeRequestFixedBytes} fixed bytes` };
  const v = new DataView(p.buffer, p.byteOffset, writeRequestFixedBytes);
  const dataBytes = v.getUint32(48);
  if (p.byteLength !== writeRequestFixedBytes + dataBytes) return { ok: false, reason: `write request says ${dataBytes} data bytes but carries ${p.byteLength - writeRequestFixedBytes}` };
  const epoch = getU64(v, 24);
  const sequence = getU64(v, 32);
  const offsetBytes = getU64(v, 40);
  if (epoch > u64Max || sequence > u64Max || offsetBytes > u64Max) return { ok: false, reason: "write request field beyond 2^53" };
  return { ok: true, value: { volumeId: p.subarray(0, volumeIdBytes), segment: v.getUint32(16), epoch, sequence, offsetBytes, data: p.subarray(writeRequestFixedBytes) } };
}

/** write response:  0 u64 epoch (the responder's)  8 u64 sequence (echoed)  16 u16 status  18 u16 reserved  20 u32 reserved */
export const writeResponseBytes = 24;
export interface WriteResponse {
  epoch: number;
  sequence: number;
  status: DataStatus;
}

export function writeResponseFrame(requestId: number, m: WriteResponse, tagBytes = 0): Uint8Array {
  return buildFrame({ type: messageType.write, flags: frameFlags.response, requestId }, { payloadBytes: writeResponseBytes, tagBytes, fill: (p) => {
    const v = new DataView(p.buffer, p.byteOffset, writeResponseBytes);
    setU64(v, 0, m.epoch);
    setU64(v, 8, m.sequence);
    v.setUint16(16, m.status);
  } });
}

export function decodeWriteResponse(p: Uint8Array): Decoded<WriteResponse> {
  if (p.byteLength !== writeResponseBytes) return { ok: false, reason: `write response of ${p.byteLength} bytes, not ${writeResponseBytes}` };
  const v = new DataView(p.buffer, p.byteOffset, writeResponseBytes);
  const status = v.getUint16(16);
  if (status > dataStatusMax) return { ok: false, reason: `unknown data status ${status}` };
  const epoch = getU64(v, 0);
  const sequence = getU64(v, 8);
  if (epoch > u64Max || sequence > u64Max) return { ok: false, reason: "write response field beyond 2^53" };
  return { ok: true, value: { epoch, sequence, status: status as DataStatus } };
}

/**
 * read request:
 *   0 volumeId[16]  16 u32 segment  20 u32 reserved  24 u64 epoch  32 u64 offsetBytes
 *   40 u32 lengthBytes  44 u32 reserved
 */
export const readRequestBytes = 48;
export interface ReadRequest extends SegmentAddress {
  offsetBytes: number;
  lengthBytes: number;
}

export function readRequestFrame(requestId: number, m: ReadRequest, tagBytes = 0): Uint8Array {
  checkAddress(m);
  assert(Number.isInteger(m.lengthBytes) && m.lengthBytes >= 0 && m.lengthBytes <= 0xffffffff);
  return buildFrame({ type: messageType.read, flags: 0, requestId }, { payloadBytes: readRequestBytes, tagBytes, fill: (p) => {
    const v = new DataView(p.buffer, p.byteOffset, readRequestBytes);
    p.set(m.volumeId, 0);
    v.setUint32(16, m.segment);
    setU64(v, 24, m.epoch);
    setU64(v, 32, m.offsetBytes);
    v.setUint32(40, m.lengthBytes);
  } });
}

export function decodeReadRequest(p: Uint8Array): Decoded<ReadRequest> {
  if (p.byteLength !== readRequestBytes) return { ok: false, reason: `read request of ${p.byteLength} bytes, not ${readRequestBytes}` };
  const v = new DataView(p.buffer, p.byteOffset, readRequestBytes);
  const epoch = getU64(v, 24);
  const offsetBytes = getU64(v, 32);
  if (epoch > u64Max || offsetBytes > u64Max) return { ok: false, reason: "read request field beyond 2^53" };
  return { ok: true, value: { volumeId: p.subarray(0, volumeIdBytes), segment: v.getUint32(16), epoch, offsetBytes, lengthBytes: v.getUint32(40) } };
}

/** read response:  0 u64 epoch  8 u16 status  10 u16 reserved  12 u32 dataBytes  16 data[dataBytes] */
export const readResponseFixedBytes = 16;
export interface ReadResponse {
  epoch: number;
  status: DataStatus;
  /** The bytes read (a view when decoded; empty unless status is ok). */
  data: Uint8Array;
}

export function readResponseFrame(requestId: number, m: ReadResponse, tagBytes = 0): Uint8Array {
  return buildFrame({ type: messageType.read, flags: frameFlags.response, requestId }, { payloadBytes: readResponseFixedBytes + m.data.byteLength, tagBytes, filledTailBytes: m.data.byteLength, fill: (p) => {
    const v = new DataView(p.buffer, p.byteOffset, readResponseFixedBytes);
    setU64(v, 0, m.epoch);
    v.setUint16(8, m.status);
    v.setUint32(12, m.data.byteLength);
    p.set(m.data, readResponseFixedBytes);
  } });
}

export function decodeReadResponse(p: Uint8Array): Decoded<ReadResponse> {
  if (p.byteLength < readResponseFixedBytes) return { ok: false, reason: `read response of ${p.byteLength} bytes, shorter than its ${readResponseFixedBytes} fixed bytes` };
  const v = new DataView(p.buffer, p.byteOffset, readResponseFixedBytes);
  const status = v.getUint16(8);
  if (status > dataStatusMax) return { ok: false, reason: `unknown data status ${status}` };
  const dataBytes = v.getUint32(12);
  if (p.byteLength !== readResponseFixedBytes + dataBytes) return { ok: false, reason: `read response says ${dataBytes} data bytes but carries ${p.byteLength - readResponseFixedBytes}` };
  const epoch = getU64(v, 0);
  if (epoch > u64Max) return { ok: false, reason: "read response epoch beyond 2^53" };
  return { ok: true, value: { epoch, status: status as DataStatus, data: p.subarray(readResponseFixedBytes) } };
}

/** Bytes of a frame around `dataBytes` of write data (for sizing limits). */
export function writeFrameBytes(dataBytes: number): number {
  return frameHeaderBytes + writeRequestFixedBytes + dataBytes;
}
