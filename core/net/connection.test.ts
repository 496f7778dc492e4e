// PeerConnection without sockets: two connections joined by fake wires that take only part of
// each write, so that queueing, drain order, coalescing, limits and teardown are exercised
// deterministically. Plus the certificate judgement both transports rely on.
import { describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { newKeyPair, signNodeCertificate } from "../cluster/ca.ts";
import { silentLogger } from "../util/log.ts";
import { PeerConnection, connectionLimitsDefault, postQueuedBytesMax, type Handler, type RequestSpec, type Wire } from "./connection.ts";
import { buildFrame, encodeFrame, frameFlags, pooledFrameBytesMin } from "./frame.ts";
import { dataStatus, decodeWriteResponse, messageType, uuidToBytes, writeRequestFrame, writeResponseFrame, decodeWriteRequest } from "./messages.ts";
import { judgePeerCertificate } from "./peer.ts";
import { testCluster, testNodeTls } from "./test-certs.ts";

/** A wire that takes at most `takeMax` bytes per write and hands them to `deliver` later (on pump). */
class FakeWire implements Wire {
  taken: Uint8Array[] = [];
  writes = 0;
  ended = false;
  constructor(public takeMax: number) {}
  write(bytes: Uint8Array): number {
    this.writes++;
    const n = Math.min(this.takeMax, bytes.byteLength);
    this.taken.push(bytes.slice(0, n));
    return n;
  }
  end(): void {
    this.ended = true;
  }
}

const volumeId = uuidToBytes("00112233-4455-6677-8899-aabbccddeeff");
const ack: Handler = (f, { tagBytes }) => {
  const w = decodeWriteRequest(f.payload);
  if (!w.ok) throw new Error(w.reason);
  // The data is the sequence number's low byte throughout: any byte lost or moved shows.
  if (!w.value.data.every((b) => b === (w.value.sequence & 0xff))) throw new Error(`write ${w.value.sequence} arrived damaged`);
  return writeResponseFrame(f.requestId, { epoch: w.value.epoch, sequence: w.value.sequence, status: dataStatus.ok }, tagBytes);
};
const writeSpec = (sequence: number, bytes: number, timeoutMs?: number): RequestSpec<number> => ({
  build: (id, tagBytes) => writeRequestFrame(id, { volumeId, segment: 0, epoch: 1, sequence, offsetBytes: 0, data: new Uint8Array(bytes).fill(sequence & 0xff) }, tagBytes),
  decode: (f) => {
    const d = decodeWriteResponse(f.payload);
    return d.ok ? { ok: true, value: d.value.sequence } : d;
  },
  responseType: messageType.write,
  ...(timeoutMs === undefined ? {} : { timeoutMs }),
});

function pair(takeMax: number, limits = connectionLimitsDefault) {
  const aWire = new FakeWire(takeMax);
  const bWire = new FakeWire(takeMax);
  const a = new PeerConnection({ wire: aWire, peer: { name: "b", address: "b:1" }, handlers: new Map(), logger: silentLogger, limits });
  const b = new PeerConnection({ wire: bWire, peer: { name: "a", address: "a:1" }, handlers: new Map([[messageType.write, ack]]), logger: silentLogger, limits });
  /** Moves what each wire took to the other side, then lets both write more (drain), until quiet. */
  const pump = async (): Promise<void> => {
    for (let i = 0; i < 10_000; i++) {
      await Promise.resolve();
      const moved = aWire.taken.length + bWire.taken.length;
      for (const c of aWire.taken.splice(0)) b.receive(c);
      for (const c of bWire.taken.splice(0)) a.receive(c);
      a.drained();
      b.drained();
      await Promise.resolve();
      if (moved === 0 && aWire.taken.length === 0 && bWire.taken.length === 0 && a.queued === 0 && b.queued === 0) return;
    }
    throw new Error("pump did not settle");
  };
  return { a, b, aWire, bWire, pump };
}

describe("PeerConnection", () => {
  test("a wire that takes 1000 bytes at a time: every request is answered, in order, bytes intact", async () => {
    const { a, pump } = pair(1000);
    const replies = Array.from({ length: 20 }, (_, i) => a.request(writeSpec(i + 1, 3000 + i)));
    expect(a.queued).toBeGreaterThan(0);
    await pump();
    expect((await Promise.all(replies)).map((r) => (r.ok ? r.value : r.reason))).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(a.inflight).toBe(0);
  });

  test("a large frame the socket took in parts goes back to the pool once its last byte is written", async () => {
    const { a, pump } = pair(16 << 10);
    let first: ArrayBufferLike | undefined;
    const spec = writeSpec(1, pooledFrameBytesMin * 2);
    const reply = a.request({ ...spec, build: (id, tagBytes) => {
      const f = spec.build(id, tagBytes);
      first = f.buffer;
      return f;
    } });
    expect(a.queued).toBeGreaterThan(0);
    await pump();
    expect(await reply).toEqual({ ok: true, value: 1 });
    const next = buildFrame({ type: messageType.write, flags: 0, requestId: 9 }, { payloadBytes: pooledFrameBytesMin * 2, fill: () => {}, tagBytes: 0, filledTailBytes: 0 });
    expect(next.buffer).toBe(first as ArrayBufferLike);
  });

  test("small frames of one turn leave in one write", async () => {
    const { a, aWire, pump } = pair(1 << 20);
    const replies = Array.from({ length: 10 }, (_, i) => a.request(writeSpec(i + 1, 100)));
    expect(aWire.writes).toBe(0);
    await Promise.resolve();
    expect(aWire.writes).toBe(1);
    await pump();
    expect((await Promise.all(replies)).every((r) => r.ok)).toBe(true);
  });

  test("a peer that stops reading is cut once queuedBytesMax is passed, failing what is in flight", async () => {
    const { a, aWire } = pair(0, { ...connectionLimitsDefault, queuedBytesMax: 64 << 10 });
    const replies = Array.from({ length: 4 }, (_, i) => a.request(writeSpec(i + 1, 20 << 10)));
    const outcomes = await Promise.all(replies);
    expect(outcomes.map((r) => r.ok)).toEqual([false, false, false, false]);
    expect(outcomes[0]).toMatchObject({ reason: "disconnected" });
    expect(aWire.ended).toBe(true);
    expect(a.isOpen).toBe(false);
    expect(a.queued).toBe(0);
  });

  test("closed() fails every request in flight at once, and any made after it", async () => {
    const { a, b, bWire } = pair(1 << 20);
    const reply = a.request(writeSpec(1, 10));
    await Promise.resolve();
    a.closed("test");
    expect(await reply).toMatchObject({ ok: false, reason: "disconnected" });
    expect(await a.request(writeSpec(2, 10))).toMatchObject({ ok: false, reason: "disconnected" });
    expect(b.isOpen).toBe(true);
    expect(bWire.taken.length).toBe(0);
  });

  test("a post reaches the peer's post handler in order with requests, and nothing answers it; refused once closed or past postQueuedBytesMax", async () => {
    const aWire = new FakeWire(1 << 20);
    const bWire = new FakeWire(1 << 20);
    const got: number[] = [];
    const a = new PeerConnection({ wire: aWire, peer: { name: "b", address: "b:1" }, handlers: new Map(), logger: silentLogger });
    const b = new PeerConnection({ wire: bWire, peer: { name: "a", address: "a:1" }, handlers: new Map(), postHandlers: new Map([[messageType.replica, (f) => void got.push(f.payload[0] as number)]]), logger: silentLogger });
    const post = (n: number) => (tagBytes: number) => encodeFrame({ type: messageType.replica, flags: frameFlags.oneWay, requestId: 0 }, new Uint8Array([n]), tagBytes);
    expect(a.post(post(1))).toBe(true);
    expect(a.post(post(2))).toBe(true);
    await Promise.resolve();
    for (const c of aWire.taken.splice(0)) b.receive(c);
    expect(got).toEqual([1, 2]);
    await Promise.resolve();
    expect(bWire.writes).toBe(0);
    expect(b.isOpen).toBe(true);
    // A wire that takes nothing: posts queue up to the limit, then are refused (not the connection cut).
    aWire.takeMax = 0;
    const big = (tagBytes: number) => encodeFrame({ type: messageType.replica, flags: frameFlags.oneWay, requestId: 0 }, new Uint8Array(1 << 20), tagBytes);
    let accepted = 0;
    while (a.post(big) && accepted < 100) accepted++;
    expect(accepted).toBe(postQueuedBytesMax / (1 << 20)); // each frame a little over 1 MiB
    expect(a.isOpen).toBe(true);
    a.closed("test");
    expect(a.post(post(3))).toBe(false);
  });

  test("a corrupt byte from the peer closes the connection", async () => {
    const { a, aWire } = pair(1 << 20);
    a.receive(new Uint8Array(20).fill(0x55));
    expect(a.isOpen).toBe(false);
    expect(aWire.ended).toBe(true);
  });
});

describe("judgePeerCertificate()", () => {
  const ca = testCluster("judge");
  const caCert = new X509Certificate(ca.certPem);
  const now = Date.now();

  test("accepts a node certificate of the cluster and names the node", () => {
    // Judged at a time after it was made: its notBefore (whole seconds) may be later than `now`.
    const cert = new X509Certificate(testNodeTls(ca, "node-x", "127.0.0.1").certPem);
    expect(judgePeerCertificate(cert, caCert, Date.now() + 1000)).toEqual({ ok: true, name: "node-x" });
  });

  test("refuses another cluster's, an expired one, the CA itself and none at all", () => {
    const other = testNodeTls(testCluster("other"), "node-x", "127.0.0.1");
    expect(judgePeerCertificate(new X509Certificate(other.certPem), caCert, now).ok).toBe(false);
    const keys = newKeyPair();
    const old = signNodeCertificate(ca, { nodeName: "old", publicKeyPem: keys.publicKey.export({ type: "spki", format: "pem" }).toString(), altNames: ["127.0.0.1"], now: new Date(now - 900 * 86_400_000) });
    const expired = judgePeerCertificate(new X509Certificate(old), caCert, now);
    expect(expired.ok).toBe(false);
    if (!expired.ok) expect(expired.problem).toContain("valid only");
    expect(judgePeerCertificate(caCert, caCert, now).ok).toBe(false);
    expect(judgePeerCertificate(undefined, caCert, now).ok).toBe(false);
  });
});
