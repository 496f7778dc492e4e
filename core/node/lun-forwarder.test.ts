// LunForwarder, both ends on real transports in one process: commands sent through a node's
// ForwardedUnit run at the coordinator's logical unit (writes land, reads return them, at queue
// depth too), the nexus and port travel with them (a reservation conflicts across ports), an LU
// reset reaches the coordinator, and an unreachable coordinator answers a retryable sense.
import { afterAll, describe, expect, test } from "bun:test";
import { randomLoopback } from "../../test/helpers/node.ts";
import { MemoryBlockDevice } from "../../test/iscsi-mem-target.ts";
import { startPeers } from "../net/peers.ts";
import { testCluster, testNodeTls } from "../net/test-certs.ts";
import { LunStateTable } from "../scsi/lun-state.ts";
import { Status, type ScsiResult } from "../scsi/sense.ts";
import { silentLogger } from "../util/log.ts";
import type { NodeRecord } from "./records.ts";
import { LunForwarder } from "./lun-forwarder.ts";

const ca = testCluster("forwarder-test");
const hostA = randomLoopback();
const hostB = randomLoopback();
const peersA = startPeers({ host: hostA, port: 0, tls: testNodeTls(ca, "node-a", hostA), self: { nodeId: "id-a", name: "node-a" }, logger: silentLogger });
const peersB = startPeers({ host: hostB, port: 0, tls: testNodeTls(ca, "node-b", hostB), self: { nodeId: "id-b", name: "node-b" }, logger: silentLogger });
afterAll(() => {
  peersA.close();
  peersB.close();
});
const record = (id: string, name: string, peer: string): NodeRecord => ({ id, name, peer, portal: `${name}.example:3260`, api: "", version: "", startedAt: "" });
const uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const device = new MemoryBlockDevice({ sizeBytes: 8 << 20, uuid });
const coordinator = new LunForwarder({ nodeId: "id-a", portId: 1, logger: silentLogger });
const holdMs = 600;
const portal = new LunForwarder({ nodeId: "id-b", portId: 2, logger: silentLogger, unreachableHoldMs: holdMs });
const nodes = [record("id-a", "node-a", peersA.address), record("id-b", "node-b", peersB.address)];
const ports = new Map([["id-a", 1], ["id-b", 2]]);
coordinator.setDirectory(nodes, ports);
portal.setDirectory(nodes, ports);
coordinator.start(peersA, new LunStateTable(), { localLun: (u) => (u === uuid ? { device, targetName: "iqn.x:t", lunNumbers: () => [0] } : undefined) });
portal.start(peersB, new LunStateTable(), { localLun: () => undefined });
const unit = portal.unit({ uuid, coordinator: () => "id-a", blockBytes: 512 });
const nexus = (n: number) => ({ initiatorName: `iqn.2026-12.org.test:i${n}`, isid: Uint8Array.from([0x80, 0, 0, 0, 0, n]), relativePortId: 2 });

function cdb(bytes: number[]): Uint8Array {
  const c = new Uint8Array(16);
  c.set(bytes);
  return c;
}
/** READ(16)/WRITE(16) of `blocks` at `lba`. */
const rw16 = (op: number, lba: number, blocks: number): Uint8Array => cdb([op, 0, 0, 0, 0, 0, lba >>> 24, (lba >>> 16) & 0xff, (lba >>> 8) & 0xff, lba & 0xff, 0, 0, 0, blocks, 0, 0]);
async function settled(n: number): Promise<ScsiResult> {
  // The first command of a nexus may meet POWER ON, RESET: asked again, it runs.
  let r = await unit.execute({ cdb: cdb([0]), nexus: nexus(n), dataOut: null, dataInBytesMax: 0 });
  for (let i = 0; i < 3 && r.status !== Status.good; i++) r = await unit.execute({ cdb: cdb([0]), nexus: nexus(n), dataOut: null, dataInBytesMax: 0 });
  return r;
}

describe("LunForwarder", () => {
  test("a write through the portal lands on the coordinator's device; a read returns it; the Data-Out view may be reused at once", async () => {
    expect((await settled(1)).status).toBe(Status.good);
    const data = new Uint8Array(4096).fill(0xab);
    const pending = unit.execute({ cdb: rw16(0x8a, 8, 8), nexus: nexus(1), dataOut: data, dataInBytesMax: 4096 });
    data.fill(0); // the caller's buffer is a view reused after the call: the forwarder copied it
    const w = await pending;
    expect(w.status).toBe(Status.good);
    expect(device.bytes.subarray(4096, 8192).every((x) => x === 0xab)).toBe(true);
    const r = await unit.execute({ cdb: rw16(0x88, 8, 8), nexus: nexus(1), dataOut: null, dataInBytesMax: 4096 });
    expect(r.status).toBe(Status.good);
    expect(r.data?.length).toBe(4096);
    expect(r.data?.every((x) => x === 0xab)).toBe(true);
  });

  test("256 writes then reads of distinct blocks at queue depth 32 read back each its own pattern", async () => {
    const blocks = 256;
    const write = async (i: number): Promise<ScsiResult> => unit.execute({ cdb: rw16(0x8a, i * 8, 8), nexus: nexus(1), dataOut: new Uint8Array(4096).fill(i & 0xff), dataInBytesMax: 4096 });
    const read = async (i: number): Promise<ScsiResult> => unit.execute({ cdb: rw16(0x88, i * 8, 8), nexus: nexus(1), dataOut: null, dataInBytesMax: 4096 });
    for (let base = 0; base < blocks; base += 32) {
      const ws = await Promise.all(Array.from({ length: 32 }, (_, k) => write(base + k)));
      expect(ws.every((r) => r.status === Status.good)).toBe(true);
    }
    for (let base = 0; base < blocks; base += 32) {
      const rs = await Promise.all(Array.from({ length: 32 }, (_, k) => read(base + k)));
      rs.forEach((r, k) => expect(r.data?.every((x) => x === ((base + k) & 0xff))).toBe(true));
    }
  });

  test("an LU reset through the portal reaches the coordinator: the other nexus sees POWER ON, RESET", async () => {
    expect((await settled(2)).status).toBe(Status.good);
    expect(await unit.reset(nexus(1))).toBe(true);
    const r = await unit.execute({ cdb: cdb([0]), nexus: nexus(2), dataOut: null, dataInBytesMax: 0 });
    expect(r.status).toBe(Status.checkCondition);
    expect(r.sense).toMatchObject({ key: 0x6, asc: 0x29, ascq: 0 });
  });

  test("REPORT TARGET PORT GROUPS forwarded: both ports' groups, the coordinator's active/optimized", async () => {
    await settled(1);
    const r = await unit.execute({ cdb: cdb([0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]), nexus: nexus(1), dataOut: null, dataInBytesMax: 4096 });
    expect(r.status).toBe(Status.good);
    const d = r.data ?? new Uint8Array();
    expect([d[4] as number, d[7] as number, d[16] as number, d[19] as number]).toEqual([0x00, 1, 0x01, 2]);
  });

  test("SendTargets' other portals: every other node's portal with its tag, not this node's", () => {
    expect(portal.otherPortals()).toEqual(["node-a.example:3260,1"]);
    expect(coordinator.otherPortals()).toEqual(["node-b.example:3260,2"]);
  });

  test("a coordinator the directory can't reach is tried again for the hold, then answers NOT READY, ASYMMETRIC ACCESS STATE TRANSITION", async () => {
    const lost = portal.unit({ uuid, coordinator: () => "id-z", blockBytes: 512 });
    const started = performance.now();
    const r = await lost.execute({ cdb: cdb([0]), nexus: nexus(1), dataOut: null, dataInBytesMax: 0 });
    expect(r).toMatchObject({ status: Status.checkCondition, sense: { key: 0x2, asc: 0x04, ascq: 0x0a } });
    expect(performance.now() - started).toBeGreaterThanOrEqual(holdMs - 250);
    expect(await lost.reset(nexus(1))).toBe(false);
  });

  test("a command held while its coordinator is unreachable, or does not coordinate the LUN, goes to the one the records name next (a takeover)", async () => {
    await settled(5);
    for (const away of ["id-z", "id-b"]) {
      // id-z: not in the directory; id-b: a node that does not run the LUN (it answers NOT READY too).
      const started = performance.now();
      const moving = portal.unit({ uuid, coordinator: () => (performance.now() - started < 300 ? away : "id-a"), blockBytes: 512 });
      const r = await moving.execute({ cdb: cdb([0]), nexus: nexus(5), dataOut: null, dataInBytesMax: 0 });
      expect(r.status).toBe(Status.good);
      expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    }
  });
});
