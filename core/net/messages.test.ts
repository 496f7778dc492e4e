// Message layouts: each round-trips, and each decoder refuses payloads a peer could send wrong
// (too short, a length that disagrees, a value beyond 2^53, an unknown status, not CBOR).
import { describe, expect, test } from "bun:test";
import { FrameDecoder, frameFlags, frameHeaderBytes, type Frame } from "./frame.ts";
import {
  bytesToUuid,
  controlFrame,
  dataStatus,
  decodeCbor,
  decodeErrorBody,
  decodePingRequest,
  decodePingResponse,
  decodeReadRequest,
  decodeReadResponse,
  decodeWriteRequest,
  decodeWriteResponse,
  encodeCbor,
  errorFrame,
  messageType,
  readRequestFrame,
  readRequestBytes,
  readResponseFrame,
  uuidToBytes,
  writeRequestFixedBytes,
  writeRequestFrame,
  writeResponseFrame,
} from "./messages.ts";

const uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const volumeId = uuidToBytes(uuid);

function one(bytes: Uint8Array): Frame {
  let got: Frame | undefined;
  const err = new FrameDecoder().push(bytes, (f) => (got = { ...f, payload: f.payload.slice() }));
  expect(err).toBeNull();
  if (got === undefined) throw new Error("no frame");
  return got;
}

describe("data messages", () => {
  test("a write request round-trips, data and u64 fields up to 2^53-1", () => {
    const data = Uint8Array.from({ length: 4096 }, (_, i) => i * 7);
    const f = one(writeRequestFrame(5, { volumeId, segment: 0xfffffffe, epoch: 2 ** 53 - 1, sequence: 123456789012, offsetBytes: 2 ** 44, data }));
    expect(f.type).toBe(messageType.write);
    const d = decodeWriteRequest(f.payload);
    if (!d.ok) throw new Error(d.reason);
    expect(bytesToUuid(d.value.volumeId)).toBe(uuid);
    expect(d.value).toMatchObject({ segment: 0xfffffffe, epoch: 2 ** 53 - 1, sequence: 123456789012, offsetBytes: 2 ** 44 });
    expect(Buffer.from(d.value.data).equals(Buffer.from(data))).toBe(true);
  });

  test("decodeWriteRequest() refuses a short payload and a dataBytes that disagrees", () => {
    const p = one(writeRequestFrame(1, { volumeId, segment: 0, epoch: 1, sequence: 1, offsetBytes: 0, data: new Uint8Array(8) })).payload;
    expect(decodeWriteRequest(p.subarray(0, writeRequestFixedBytes - 1)).ok).toBe(false);
    expect(decodeWriteRequest(p.subarray(0, p.byteLength - 1)).ok).toBe(false);
    const longer = new Uint8Array(p.byteLength + 1);
    longer.set(p);
    expect(decodeWriteRequest(longer).ok).toBe(false);
  });

  test("decodeWriteRequest() refuses an epoch beyond 2^53 instead of rounding it", () => {
    const p = one(writeRequestFrame(1, { volumeId, segment: 0, epoch: 1, sequence: 1, offsetBytes: 0, data: new Uint8Array(0) })).payload;
    p.fill(0xff, 24, 32);
    const d = decodeWriteRequest(p);
    expect(d.ok).toBe(false);
  });

  test("write response, read request and read response round-trip", () => {
    const w = one(writeResponseFrame(9, { epoch: 3, sequence: 77, status: dataStatus.staleEpoch }));
    expect(w.flags).toBe(frameFlags.response);
    expect(decodeWriteResponse(w.payload)).toEqual({ ok: true, value: { epoch: 3, sequence: 77, status: dataStatus.staleEpoch } });
    const r = one(readRequestFrame(10, { volumeId, segment: 2, epoch: 3, offsetBytes: 4096, lengthBytes: 1 << 20 }));
    const rd = decodeReadRequest(r.payload);
    if (!rd.ok) throw new Error(rd.reason);
    expect(rd.value).toMatchObject({ segment: 2, epoch: 3, offsetBytes: 4096, lengthBytes: 1 << 20 });
    const data = new Uint8Array([1, 2, 3]);
    const rr = one(readResponseFrame(10, { epoch: 3, status: dataStatus.ok, data }));
    const rrd = decodeReadResponse(rr.payload);
    if (!rrd.ok) throw new Error(rrd.reason);
    expect(Array.from(rrd.value.data)).toEqual([1, 2, 3]);
  });

  test("decoders refuse wrong lengths and unknown statuses", () => {
    expect(decodeWriteResponse(new Uint8Array(23)).ok).toBe(false);
    const w = one(writeResponseFrame(1, { epoch: 0, sequence: 0, status: dataStatus.ok })).payload;
    w[17] = 200;
    expect(decodeWriteResponse(w).ok).toBe(false);
    expect(decodeReadRequest(new Uint8Array(readRequestBytes + 1)).ok).toBe(false);
    expect(decodeReadResponse(new Uint8Array(15)).ok).toBe(false);
    const r = one(readResponseFrame(1, { epoch: 0, status: dataStatus.ok, data: new Uint8Array(4) })).payload;
    expect(decodeReadResponse(r.subarray(0, r.byteLength - 1)).ok).toBe(false);
  });

  test("uuidToBytes() and bytesToUuid() are inverse; a non-UUID is a bug", () => {
    expect(bytesToUuid(uuidToBytes(uuid))).toBe(uuid);
    expect(() => uuidToBytes("not-a-uuid")).toThrow();
  });
});

describe("control messages (CBOR)", () => {
  test("ping request and response round-trip through frames", () => {
    const f = one(controlFrame({ type: messageType.ping, flags: 0, requestId: 1 }, { from: "n1", sentAtMs: 12.5 }));
    expect(decodePingRequest(f.payload)).toEqual({ ok: true, value: { from: "n1", sentAtMs: 12.5 } });
    const g = one(controlFrame({ type: messageType.ping, flags: frameFlags.response, requestId: 1 }, { nodeId: "n2", name: "b", sentAtMs: 12.5 }));
    expect(decodePingResponse(g.payload)).toEqual({ ok: true, value: { nodeId: "n2", name: "b", sentAtMs: 12.5 } });
  });

  test("an error body round-trips; an unknown code is refused", () => {
    const f = one(errorFrame(4, { code: "busy", message: "full" }));
    expect(f.type).toBe(messageType.error);
    expect(decodeErrorBody(f.payload)).toEqual({ ok: true, value: { code: "busy", message: "full" } });
    expect(decodeErrorBody(encodeCbor({ code: "nope", message: "x" })).ok).toBe(false);
  });

  test("encodes plain CBOR maps (no cbor-x records), readable by any CBOR decoder", () => {
    const bytes = encodeCbor({ from: "a", sentAtMs: 1 });
    expect((bytes[0] as number) >> 5).toBe(5); // major type 5: map (RFC 8949 §3.1)
    expect(bytes[0]).toBe(0xa2);
  });

  test("decodes long strings (a certificate) without cbor-x's native extractor", () => {
    const cert = "c".repeat(5000);
    const d = decodeCbor(encodeCbor({ cert }));
    expect(d.ok && d.value["cert"]).toBe(cert);
  });

  test("decoded byte strings are copies, not views of the payload", () => {
    const payload = encodeCbor({ blob: new Uint8Array([1, 2, 3]) });
    const d = decodeCbor(payload);
    if (!d.ok) throw new Error(d.reason);
    payload.fill(0);
    expect(Array.from(d.value["blob"] as Uint8Array)).toEqual([1, 2, 3]);
  });

  test("refuses garbage, truncation and non-maps without throwing", () => {
    expect(decodeCbor(new Uint8Array([0xff, 0xff])).ok).toBe(false);
    expect(decodeCbor(encodeCbor({ a: "long string here" }).subarray(0, 5)).ok).toBe(false);
    expect(decodeCbor(encodeCbor([1, 2])).ok).toBe(false);
    expect(decodeCbor(encodeCbor(5)).ok).toBe(false);
    expect(decodePingRequest(encodeCbor({ from: 1, sentAtMs: "x" })).ok).toBe(false);
    expect(frameHeaderBytes).toBe(20);
  });
});
