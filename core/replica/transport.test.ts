// The replication router on two loopback nodes: bursts larger than the connection's in-flight
// limit arrive whole and in order (a catch-up sends hundreds of pages at once), a malformed
// message in a batch costs only itself, and a coordinator's request is answered by the unit's
// reply to its request id, or fails when the unit says nothing in time.
import { afterAll, describe, expect, test } from "bun:test";
import { randomLoopback } from "../../test/helpers/node.ts";
import { until } from "../../test/helpers/wait.ts";
import { encodeFrame, frameFlags } from "../net/frame.ts";
import { messageType } from "../net/messages.ts";
import type { PeerNode } from "../net/peers.ts";
import { startPeers } from "../net/peers.ts";
import { testCluster, testNodeTls } from "../net/test-certs.ts";
import { silentLogger } from "../util/log.ts";
import { encodeEnvelope } from "./envelope.ts";
import { ReplicaRouter } from "./transport.ts";
import type { Address, Message } from "./types.ts";

const ca = testCluster("replica-transport");
function node(id: string) {
  const host = randomLoopback();
  const peers = startPeers({ host, port: 0, tls: testNodeTls(ca, id, host), self: { nodeId: id, name: id }, logger: silentLogger });
  return { peers, info: { id, name: id, address: peers.address } as PeerNode };
}
const a = node("a");
const b = node("b");
const where = (to: Address): PeerNode | undefined => (to.startsWith("ua") || to.startsWith("client:") ? a.info : to.startsWith("ub") ? b.info : undefined);
const ra = new ReplicaRouter({ peers: a.peers, directory: where, selfNodeId: "a", logger: silentLogger });
const rb = new ReplicaRouter({ peers: b.peers, directory: where, selfNodeId: "b", logger: silentLogger, clientWaitMs: 200 });
afterAll(() => {
  ra.close();
  rb.close();
  a.peers.close();
  b.peers.close();
});

describe("ReplicaRouter", () => {
  test("a burst of 500 messages (beyond the connection's 64 in flight) arrives whole and in order", async () => {
    const got: number[] = [];
    rb.attach("ub1", (_from, msg) => {
      if (msg.type === "forward-ack") got.push(msg.lsn);
    });
    for (let i = 1; i <= 500; i++) ra.send("ua1", "ub1", { type: "forward-ack", epoch: 1, lsn: i });
    await until("500 messages", () => got.length === 500);
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
  });

  test("a malformed message in a batch is dropped alone", async () => {
    const got: Message[] = [];
    rb.attach("ub2", (_from, msg) => got.push(msg));
    const good = encodeEnvelope("ua2", "ub2", { type: "forward-ack", epoch: 3, lsn: 7 });
    // A control message (CBOR) that parseMessage() refuses: a negative epoch.
    const bad = encodeEnvelope("ua2", "ub2", { type: "flush-req", epoch: -1, upToLsn: 7 });
    const payload = new Uint8Array(8 + good.length + bad.length);
    const dv = new DataView(payload.buffer);
    dv.setUint32(0, bad.length);
    payload.set(bad, 4);
    dv.setUint32(4 + bad.length, good.length);
    payload.set(good, 8 + bad.length);
    a.peers.post(b.info, (tagBytes) => encodeFrame({ type: messageType.replica, flags: frameFlags.oneWay, requestId: 0 }, payload, tagBytes), 1000);
    await until("the good message", () => got.length > 0);
    expect(got).toEqual([{ type: "forward-ack", epoch: 3, lsn: 7 }]);
  });

  test("a client request is answered by the unit's reply to its request id, or fails when none comes in time", async () => {
    rb.attach("ub3", (from, msg) => {
      if (msg.type === "write" && msg.reqId === 1) rb.send("ub3", from, { type: "write-done", epoch: msg.epoch, reqId: msg.reqId });
    });
    const write = (reqId: number) => ({ type: "write" as const, epoch: 1, reqId, completeBelow: 1, page: 0, pages: 1, data: new Uint8Array(4096) });
    expect(await ra.request("client:t", "ub3", write(1), 1000)).toEqual({ ok: true, reply: { type: "write-done", epoch: 1, reqId: 1 } });
    const silent = await ra.request("client:t", "ub3", write(2), 150);
    expect(silent.ok).toBe(false);
    if (!silent.ok) expect(silent.reason).toBe("no reply from ub3 within 150 ms");
  });

  test("failWaiting fails at once a coordinator's requests waiting on one unit, and no one else's", async () => {
    const write = (reqId: number) => ({ type: "write" as const, epoch: 1, reqId, completeBelow: 1, page: 0, pages: 1, data: new Uint8Array(4096) });
    const t0 = performance.now();
    const mine = ra.request("client:x", "ub9", write(1), 1000);
    const other = ra.request("client:y", "ub9", write(1), 300);
    ra.failWaiting("client:x", "ub9", "epoch 2 has another primary");
    expect(await mine).toEqual({ ok: false, reason: "epoch 2 has another primary" });
    expect(performance.now() - t0).toBeLessThan(100);
    const late = await other;
    expect(late.ok === false && late.reason).toBe("no reply from ub9 within 300 ms");
  });
});
