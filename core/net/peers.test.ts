// Peers, the daemon's end of the transport: two nodes on loopback ping each other by node id,
// a handler registered on one answers requests from the other, and identities are checked.
import { afterAll, describe, expect, test } from "bun:test";
import { randomLoopback } from "../../test/helpers/node.ts";
import { silentLogger } from "../util/log.ts";
import type { Handler } from "./connection.ts";
import { dataStatus, decodeWriteRequest, decodeWriteResponse, messageType, uuidToBytes, writeRequestFrame, writeResponseFrame } from "./messages.ts";
import { startPeers } from "./peers.ts";
import { testCluster, testNodeTls } from "./test-certs.ts";

const ca = testCluster("peers-test");
const hostA = randomLoopback();
const hostB = randomLoopback();
const a = startPeers({ host: hostA, port: 0, tls: testNodeTls(ca, "node-a", hostA), self: { nodeId: "id-a", name: "node-a" }, logger: silentLogger });
const b = startPeers({ host: hostB, port: 0, tls: testNodeTls(ca, "node-b", hostB), self: { nodeId: "id-b", name: "node-b" }, logger: silentLogger });
afterAll(() => {
  a.close();
  b.close();
});
const nodeA = { id: "id-a", name: "node-a", address: a.address };
const nodeB = { id: "id-b", name: "node-b", address: b.address };

describe("Peers", () => {
  test("each node pings the other by id and gets its name and a round trip", async () => {
    const r = await a.ping(nodeB, 2000);
    expect(r).toMatchObject({ ok: true, name: "node-b" });
    if (r.ok) expect(r.rttMs).toBeGreaterThan(0);
    expect((await b.ping(nodeA, 2000)).ok).toBe(true);
  });

  test("a node record whose id or name does not match the listener is refused", async () => {
    expect(await a.ping({ ...nodeB, id: "id-z" }, 2000)).toMatchObject({ ok: false });
    expect(await a.ping({ ...nodeB, id: "id-y", name: "node-z" }, 2000)).toMatchObject({ ok: false });
  });

  test("a handler registered on one node answers the other's requests; a second for the same type is a bug", async () => {
    const seen: string[] = [];
    const ack: Handler = (f, { peer, tagBytes }) => {
      const w = decodeWriteRequest(f.payload);
      if (!w.ok) throw new Error(w.reason);
      seen.push(`${peer.name}:${w.value.sequence}`);
      return writeResponseFrame(f.requestId, { epoch: w.value.epoch, sequence: w.value.sequence, status: dataStatus.ok }, tagBytes);
    };
    b.handle(messageType.write, ack);
    expect(() => b.handle(messageType.write, ack)).toThrow();
    const volumeId = uuidToBytes("00112233-4455-6677-8899-aabbccddeeff");
    const r = await a.request(nodeB, {
      build: (id, tagBytes) => writeRequestFrame(id, { volumeId, segment: 1, epoch: 2, sequence: 3, offsetBytes: 0, data: new Uint8Array(4096) }, tagBytes),
      decode: (f) => decodeWriteResponse(f.payload),
      responseType: messageType.write,
    });
    expect(r).toMatchObject({ ok: true, value: { epoch: 2, sequence: 3, status: dataStatus.ok } });
    expect(seen).toEqual(["node-a:3"]);
  });

  test("a node whose address changed gets a new client", () => {
    const first = a.client(nodeB);
    expect(a.client(nodeB)).toBe(first);
    const moved = a.client({ ...nodeB, address: `${hostB}:1` });
    expect(moved).not.toBe(first);
    expect(first.state).toBe("closed");
    a.forget(nodeB.id);
    expect(moved.state).toBe("closed");
    expect(a.client(nodeB)).not.toBe(moved);
  });
});

test("a node that comes back and connects to us is dialled again at once, not after our grown backoff", async () => {
  const hostC = randomLoopback();
  const tlsC = testNodeTls(ca, "node-c", hostC);
  let c = startPeers({ host: hostC, port: 0, tls: tlsC, self: { nodeId: "id-c", name: "node-c" }, logger: silentLogger });
  const port = Number(c.address.split(":").pop());
  const nodeC = { id: "id-c", name: "node-c", address: c.address };
  expect((await a.ping(nodeC, 2000)).ok).toBe(true);
  c.close();
  // Down for 4 s: a's client fails its attempts and its backoff grows past a second.
  await Bun.sleep(4_000);
  c = startPeers({ host: hostC, port, tls: tlsC, self: { nodeId: "id-c", name: "node-c" }, logger: silentLogger });
  try {
    expect((await c.ping(nodeA, 2000)).ok).toBe(true);
    const t0 = performance.now();
    const back = await a.ping(nodeC, 5_000);
    const ms = performance.now() - t0;
    console.log(`a reached c again ${Math.round(ms)} ms after c connected to a`);
    expect(back.ok).toBe(true);
    expect(ms).toBeLessThan(700);
  } finally {
    c.close();
  }
}, 20_000);
