// The forwarded SCSI command's layouts: round trips, every truncation and bad field refused,
// and random corruption never throws (a seeded fuzz).
import { describe, expect, test } from "bun:test";
import { FrameDecoder, type Frame } from "./frame.ts";
import { messageType, uuidToBytes } from "./messages.ts";
import { seededRandom01 } from "../util/rng.ts";
import {
  cdbBytes,
  decodeForwardRequest,
  decodeForwardResponse,
  decodeScsiTask,
  forwardRequestFixedBytes,
  forwardRequestFrame,
  forwardResponseFixedBytes,
  forwardResponseFrame,
  scsiTaskFrame,
  type ForwardRequest,
} from "./scsi-forward.ts";

function payloadOf(bytes: Uint8Array): { type: number; payload: Uint8Array } {
  let got: Frame | undefined;
  const err = new FrameDecoder({ payloadBytesMax: 32 << 20 }).push(bytes, (f) => (got = { ...f, payload: f.payload.slice() }));
  expect(err).toBeNull();
  if (got === undefined) throw new Error("no frame");
  return { type: got.type, payload: got.payload };
}

const lunId = uuidToBytes("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
const cdb = Uint8Array.from({ length: cdbBytes }, (_, i) => 0x2a + i);
const isid = Uint8Array.from([0x80, 1, 2, 3, 4, 5]);
const request: ForwardRequest = { lunId, relativePortId: 3, initiatorName: "iqn.2026-12.org.example:host-ü", isid, cdb, dataOut: Uint8Array.from({ length: 4096 }, (_, i) => i * 13), dataInBytesMax: 4096 };

describe("forward request", () => {
  test("round-trips every field, the Data-Out and a multi-byte initiator name", () => {
    const { type, payload } = payloadOf(forwardRequestFrame(7, request));
    expect(type).toBe(messageType.scsiCommand);
    const d = decodeForwardRequest(payload);
    if (!d.ok) throw new Error(d.reason);
    expect(d.value.relativePortId).toBe(3);
    expect(d.value.initiatorName).toBe(request.initiatorName);
    expect([...d.value.isid]).toEqual([...isid]);
    expect([...d.value.cdb]).toEqual([...cdb]);
    expect([...d.value.lunId]).toEqual([...lunId]);
    expect(d.value.dataInBytesMax).toBe(4096);
    expect(Buffer.from(d.value.dataOut ?? new Uint8Array()).equals(Buffer.from(request.dataOut ?? new Uint8Array()))).toBe(true);
  });

  test("a command without Data-Out decodes with dataOut null; an empty Data-Out stays empty, not null", () => {
    const none = decodeForwardRequest(payloadOf(forwardRequestFrame(1, { ...request, dataOut: null })).payload);
    expect(none.ok && none.value.dataOut).toBeNull();
    const empty = decodeForwardRequest(payloadOf(forwardRequestFrame(1, { ...request, dataOut: new Uint8Array(0) })).payload);
    expect(empty.ok && empty.value.dataOut?.length).toBe(0);
  });

  test("decodeForwardRequest() refuses every truncation, a longer payload, port 0, a zero-length name and unknown flags", () => {
    const p = payloadOf(forwardRequestFrame(1, request)).payload;
    for (let n = 0; n < p.length; n++) expect(decodeForwardRequest(p.subarray(0, n)).ok).toBe(false);
    const longer = new Uint8Array(p.length + 1);
    longer.set(p);
    expect(decodeForwardRequest(longer).ok).toBe(false);
    const bad = (at: number, value: number): boolean => {
      const q = p.slice();
      q[at] = value;
      return decodeForwardRequest(q).ok;
    };
    const port0 = p.slice();
    port0[16] = 0;
    port0[17] = 0;
    expect(decodeForwardRequest(port0).ok).toBe(false);
    expect(bad(18, 0x02)).toBe(false);
    expect(bad(19, 0)).toBe(false);
    expect(p.length).toBe(forwardRequestFixedBytes + new TextEncoder().encode(request.initiatorName).length + 4096);
  });
});

describe("forward response", () => {
  test("round-trips status, every sense field, scsiBytes and Data-In", () => {
    const data = Uint8Array.from({ length: 512 }, (_, i) => 255 - (i & 0xff));
    const sense = { key: 0x3, asc: 0x11, ascq: 0x00, information: 2 ** 40 + 5, commandSpecific: 0xdeadbeef, senseKeySpecific: 0x80_0102 };
    const d = decodeForwardResponse(payloadOf(forwardResponseFrame(9, { status: 0x02, sense, data, scsiBytes: 8192 })).payload);
    if (!d.ok) throw new Error(d.reason);
    expect(d.value.status).toBe(0x02);
    expect(d.value.sense).toEqual(sense);
    expect(d.value.scsiBytes).toBe(8192);
    expect(Buffer.from(d.value.data).equals(Buffer.from(data))).toBe(true);
  });

  test("absent fields stay absent (GOOD without sense, data or transfer length)", () => {
    const d = decodeForwardResponse(payloadOf(forwardResponseFrame(9, { status: 0, data: new Uint8Array(0) })).payload);
    expect(d).toEqual({ ok: true, value: { status: 0, data: new Uint8Array(0) } });
  });

  test("decodeForwardResponse() refuses every truncation, unknown flags and sense fields without sense", () => {
    const p = payloadOf(forwardResponseFrame(1, { status: 2, sense: { key: 5, asc: 0x24, ascq: 0 }, data: new Uint8Array(64) })).payload;
    for (let n = 0; n < p.length; n++) expect(decodeForwardResponse(p.subarray(0, n)).ok).toBe(false);
    const flags = p.slice();
    flags[1] = 0x20;
    expect(decodeForwardResponse(flags).ok).toBe(false);
    const orphan = p.slice();
    orphan[1] = 0x02;
    expect(decodeForwardResponse(orphan).ok).toBe(false);
    expect(p.length).toBe(forwardResponseFixedBytes + 64);
  });
});

describe("scsi task", () => {
  test("round-trips; bad fields are refused", () => {
    const m = { kind: "lu-reset" as const, lun: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", initiatorName: "iqn.x:y", isid: "800102030405", relativePortId: 2 };
    const d = decodeScsiTask(payloadOf(scsiTaskFrame(3, m)).payload);
    expect(d).toEqual({ ok: true, value: m });
    expect(decodeScsiTask(new Uint8Array([0xff])).ok).toBe(false);
  });
});

test("seeded fuzz: corrupted and random payloads are refused or decoded, never thrown", () => {
  const rng = seededRandom01(0x5eed);
  const samples = [payloadOf(forwardRequestFrame(1, request)).payload, payloadOf(forwardResponseFrame(1, { status: 2, sense: { key: 5, asc: 0x24, ascq: 0, information: 7 }, data: new Uint8Array(100), scsiBytes: 100 })).payload];
  let decoded = 0;
  for (let i = 0; i < 20_000; i++) {
    const base = samples[i % samples.length] as Uint8Array;
    const p = base.slice(0, Math.floor(rng() * (base.length + 1)));
    for (let k = 0; k < 3; k++) if (p.length > 0) p[Math.floor(rng() * p.length)] = Math.floor(rng() * 256);
    const r = i % 2 === 0 ? decodeForwardRequest(p) : decodeForwardResponse(p);
    if (r.ok) decoded++;
  }
  // Some corruptions hit only data bytes and still decode: the fuzz reached the success path too.
  expect(decoded).toBeGreaterThan(0);
});
