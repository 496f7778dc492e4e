// The coordinator of one replicated segment against a scripted primary (a stand-in for the
// router): what it sends on a retry. The daemon-level behaviour (failover, forwarding) is in
// drivers.test.ts and the fault tests.
import { describe, expect, test } from "bun:test";
import { handOver } from "../util/handover.ts";
import { ReplicatedSegment } from "./coordinator.ts";
import { MemoryMembershipStore } from "./record-store.ts";
import type { ReplicaRouter } from "./transport.ts";
import type { ClientReply, ClientRequest, Membership } from "./types.ts";

const membership: Membership = { segment: "s", epoch: 1, policy: "replica:3", primary: "s/u0", secondaries: ["s/u1", "s/u2"], inactive: [], arbiter: null };

describe("ReplicatedSegment", () => {
  test("a write retried after a refusal sends the data of the call, though the caller reused its buffer at once", async () => {
    // The caller's data is a view good until the call's first await (an iSCSI PDU's immediate
    // data lives in the receive buffer, which the next PDU overwrites); the retry comes later.
    const sent: number[][] = [];
    const router = {
      request: async (_from: string, _to: string, msg: ClientRequest): Promise<{ ok: true; reply: ClientReply }> => {
        if (msg.type !== "write") throw new Error(`unexpected ${msg.type}`);
        await Bun.sleep(5);
        sent.push([...msg.data.subarray(0, 4)]);
        if (sent.length === 1) return { ok: true, reply: { type: "rejected", epoch: 1, reqId: msg.reqId, reason: "no-lease", membership: null } };
        return { ok: true, reply: { type: "write-done", epoch: 1, reqId: msg.reqId } };
      },
    } as unknown as ReplicaRouter;
    const store = new MemoryMembershipStore();
    expect(await store.cas(0, membership)).toEqual({ outcome: "applied" });
    const seg = new ReplicatedSegment({ router, store, segment: "s", client: "client:test/0", limits: { retryMs: 1 } });
    const buffer = new Uint8Array(4096).fill(7);
    const done = seg.write(0, buffer);
    buffer.fill(9); // the receive buffer, overwritten by the next PDU
    expect(await done).toEqual({ ok: true, value: undefined });
    expect(sent).toEqual([[7, 7, 7, 7], [7, 7, 7, 7]]);
  });

  test("a handed-over write is sent as a view of the caller's buffer, a borrowed one as a copy", async () => {
    const sent: Uint8Array[] = [];
    const router = {
      request: async (_from: string, _to: string, msg: ClientRequest): Promise<{ ok: true; reply: ClientReply }> => {
        if (msg.type !== "write") throw new Error(`unexpected ${msg.type}`);
        sent.push(msg.data);
        return { ok: true, reply: { type: "write-done", epoch: 1, reqId: msg.reqId } };
      },
    } as unknown as ReplicaRouter;
    const store = new MemoryMembershipStore();
    expect(await store.cas(0, membership)).toEqual({ outcome: "applied" });
    const seg = new ReplicatedSegment({ router, store, segment: "s", client: "client:test/0" });
    const owned = handOver(new Uint8Array(8192).fill(3));
    const borrowed = new Uint8Array(8192).fill(4);
    expect(await seg.write(0, owned)).toEqual({ ok: true, value: undefined });
    expect(await seg.write(0, borrowed)).toEqual({ ok: true, value: undefined });
    expect(sent.map((d) => d.buffer === owned.buffer)).toEqual([true, false]);
    expect(sent[1]).toEqual(borrowed);
  });

  test("a membership naming another coordinator node is never sent under: it waits for one naming its own, or fails MOVED", async () => {
    const sentEpochs: number[] = [];
    const router = {
      request: async (_from: string, _to: string, msg: ClientRequest): Promise<{ ok: true; reply: ClientReply }> => {
        sentEpochs.push(msg.epoch);
        // The unit is at epoch 2 (which names node b): an older epoch is turned away with it.
        if (msg.epoch < 2) return { ok: true, reply: { type: "rejected", epoch: 2, reqId: msg.reqId, reason: "stale-epoch", membership: { ...membership, epoch: 2, coordinator: "b" } } };
        return { ok: true, reply: { type: "write-done", epoch: msg.epoch, reqId: msg.reqId } };
      },
    } as unknown as ReplicaRouter;
    // The LUN is given to b: a's coordinator sees that (moved), b's waits for the record.
    const standing = (node: string) => (m: Membership) => (m.coordinator === undefined || m.coordinator === node ? "send" : node === "b" ? "wait" : "moved");
    // Node a, the old coordinator: its epoch is turned away, and it never uses the newer one.
    const storeA = new MemoryMembershipStore();
    expect(await storeA.cas(0, { ...membership, coordinator: "a" })).toEqual({ outcome: "applied" });
    const a = new ReplicatedSegment({ router, store: storeA, segment: "s", client: "client:a/s", standing: standing("a"), limits: { opTimeoutMs: 5_000 } });
    const started = performance.now();
    const failed = await a.write(0, new Uint8Array(4096));
    expect(failed.ok === false && failed.code).toBe("MOVED");
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(sentEpochs).toEqual([1]);
    // Node b, the new one: it waits while the record still names a, and sends once it names b.
    sentEpochs.length = 0;
    const storeB = new MemoryMembershipStore();
    expect(await storeB.cas(0, { ...membership, coordinator: "a" })).toEqual({ outcome: "applied" });
    const b = new ReplicatedSegment({ router, store: storeB, segment: "s", client: "client:b/s", standing: standing("b"), limits: { opTimeoutMs: 5_000 } });
    const done = b.write(0, new Uint8Array(4096));
    await Bun.sleep(250);
    expect(sentEpochs).toEqual([]);
    b.learn({ ...membership, epoch: 2, coordinator: "b" });
    expect(await done).toEqual({ ok: true, value: undefined });
    expect(sentEpochs).toEqual([2]);
  });
});
