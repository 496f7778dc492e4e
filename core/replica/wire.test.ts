import { expect, test } from "bun:test";
import { Decoder } from "cbor-x/decode";
import { Encoder } from "cbor-x/encode";
import type { Membership, Message, UnitReport } from "./types.ts";
import { decodeEnvelope, encodeEnvelope } from "./envelope.ts";
import { parseMessage } from "./wire.ts";

// The options core/net uses for control messages: plain maps, byte strings copied.
const options = { useRecords: false, mapsAsObjects: true, copyBuffers: true, bundleStrings: false, tagUint8Array: false, pack: false, structuredClone: false } as const;
const encoder = new Encoder(options);
const decoder = new Decoder(options);

const m: Membership = { segment: "lun1/seg4", epoch: 9, policy: "replica:2", primary: "u1", secondaries: ["u2"], inactive: [], arbiter: "u3" };
const report: UnitReport = { segment: "lun1/seg4", unit: "u2", epoch: 9, fence: 10, lastLsn: 1234, consistent: true, serving: false, needsEpoch: false };
const bytes = new Uint8Array([1, 2, 3, 4]);

const every: Message[] = [
  { type: "write", epoch: 9, reqId: 5, completeBelow: 3, page: 7, pages: 1, data: bytes },
  { type: "read", epoch: 9, reqId: 6, completeBelow: 3, page: 7, pages: 2 },
  { type: "flush", epoch: 9, reqId: 7, completeBelow: 3 },
  { type: "write-done", epoch: 9, reqId: 5 },
  { type: "read-done", epoch: 9, reqId: 6, data: bytes },
  { type: "flush-done", epoch: 9, reqId: 7 },
  { type: "rejected", epoch: 9, reqId: 5, reason: "no-lease", membership: m },
  { type: "rejected", epoch: 9, reqId: 5, reason: "busy", membership: null },
  { type: "forward", epoch: 9, lsn: 100, page: 7, pages: 1, data: bytes, commitLsn: 98 },
  { type: "forward-ack", epoch: 9, lsn: 100 },
  { type: "flush-req", epoch: 9, upToLsn: 100 },
  { type: "flush-ack", epoch: 9, durableLsn: 100 },
  { type: "lease-req", epoch: 9, sentAt: 123456.75, membership: m, commitLsn: 98 },
  { type: "lease-grant", epoch: 9, sentAt: 123456.75 },
  { type: "catchup-req", epoch: 9, session: 4, commitLsn: 90, changedPages: [1, 2, 900] },
  { type: "catchup-start", epoch: 9, session: 4, fromLsn: 100, pageCount: 3 },
  { type: "catchup-page", epoch: 9, session: 4, fromLsn: 100, pageCount: 3, page: 2, seq: 97, data: bytes },
  { type: "caught-up", epoch: 9, session: 4, lsn: 104 },
  { type: "stale", epoch: 10, membership: null },
  { type: "probe", epoch: 9, fence: 10, round: 3 },
  { type: "probe-reply", epoch: 9, round: 3, report },
  { type: "membership", epoch: 9, membership: m },
  { type: "heartbeat", epoch: 9, report },
];

test("parseMessage() accepts every message type after a trip through CBOR, unchanged", () => {
  for (const msg of every) {
    const parsed = parseMessage(decoder.decode(encoder.encode(msg)));
    expect(parsed).toEqual({ ok: true, msg });
  }
});

test("parseMessage() refuses unknown types, missing or mistyped fields and bad memberships, saying which", () => {
  expect(parseMessage([1, 2])).toEqual({ ok: false, reason: "not a map" });
  expect(parseMessage({ type: "launch", epoch: 1 })).toMatchObject({ ok: false, reason: expect.stringContaining("unknown message type") });
  expect(parseMessage({ type: "forward-ack", epoch: -1, lsn: 3 })).toMatchObject({ ok: false, reason: expect.stringContaining("epoch") });
  expect(parseMessage({ type: "forward", epoch: 1, lsn: 1.5, page: 0, pages: 1, data: bytes, commitLsn: 0 })).toMatchObject({ ok: false, reason: "forward: field lsn is not a lsn" });
  expect(parseMessage({ type: "forward", epoch: 1, lsn: 1, page: 0, pages: 1, data: "AAAA", commitLsn: 0 })).toMatchObject({ ok: false, reason: "forward: field data is not a bytes" });
  expect(parseMessage({ type: "membership", epoch: 1, membership: { ...m, policy: "replica:9" } })).toMatchObject({ ok: false });
  expect(parseMessage({ type: "rejected", epoch: 1, reqId: 1, reason: "because", membership: null })).toMatchObject({ ok: false });
  expect(parseMessage({ type: "heartbeat", epoch: 1, report: { ...report, consistent: "yes" } })).toMatchObject({ ok: false });
});

test("parseMessage() drops fields it does not know (a newer sender's)", () => {
  expect(parseMessage({ type: "forward-ack", epoch: 2, lsn: 3, extra: "x" })).toEqual({ ok: true, msg: { type: "forward-ack", epoch: 2, lsn: 3 } });
});

test("decodeEnvelope() gives back every message type encodeEnvelope() wrote, with its addresses, data copied", () => {
  for (const msg of every) {
    const bytes = encodeEnvelope("u1", "client:n0/lun0 é", msg);
    const d = decodeEnvelope(bytes);
    expect(d).toEqual({ from: "u1", to: "client:n0/lun0 é", msg });
    if (typeof d !== "string" && "data" in d.msg) expect(d.msg.data.buffer).not.toBe(bytes.buffer);
    if (typeof d !== "string") expect(parseMessage(d.msg)).toEqual({ ok: true, msg });
  }
});

test("decodeEnvelope() returns a reason, never throws, for every envelope cut short or with any byte flipped", () => {
  for (const msg of every) {
    const bytes = encodeEnvelope("u1", "u2", msg);
    for (let n = 0; n < bytes.length; n++) {
      const cut = decodeEnvelope(bytes.subarray(0, n));
      // A data message cut inside its data is still one (shorter data); anything cut before is refused.
      if (typeof cut !== "string") expect("data" in cut.msg).toBe(true);
    }
    for (let i = 0; i < bytes.length; i++) {
      const bad = bytes.slice();
      bad[i] = (bad[i] as number) ^ 0xff;
      const d = decodeEnvelope(bad);
      if (typeof d !== "string") expect(parseMessage(d.msg).ok).toBe(true);
    }
  }
});

test("decodeEnvelope() refuses an unknown kind, a fraction where a whole number goes, and bytes after a fixed layout", () => {
  const ack = encodeEnvelope("u1", "u2", { type: "forward-ack", epoch: 3, lsn: 7 });
  const unknown = ack.slice();
  unknown[0] = 200;
  expect(decodeEnvelope(unknown)).toBe("unknown envelope kind 200");
  const fraction = ack.slice();
  new DataView(fraction.buffer).setFloat64(ack.length - 8, 7.5);
  expect(decodeEnvelope(fraction)).toBe("forward-ack: field lsn is not a whole number");
  const longer = new Uint8Array(ack.length + 1);
  longer.set(ack);
  expect(decodeEnvelope(longer)).toBe("forward-ack: bytes after its fields");
});
