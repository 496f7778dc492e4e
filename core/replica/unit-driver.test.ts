// The unit driver's contract on a real archive, with a router that records what is sent: a
// probe's fence is durable in the unit's meta file before the reply leaves, a write's pages and
// log marker are on the archive before its acknowledgement is sent (a batch of forwards gets one
// marker write and one cumulative ack), and a restarted driver recovers the fence, the log
// marker and the pages' sequence numbers.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Archive, type SegmentUnit } from "../archive/archive.ts";
import { pageBytes } from "../archive/format.ts";
import { silentLogger } from "../util/log.ts";
import { MemoryMembershipStore } from "./record-store.ts";
import { testClusterId, testVolumeId } from "./test-cluster.ts";
import type { Address, Membership, Message } from "./types.ts";
import { UnitDriver, type UnitRouter } from "./unit-driver.ts";
import { until } from "../../test/helpers/wait.ts";

const dir = mkdtempSync(join(tmpdir(), "qstora-unit-driver-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const m: Membership = { segment: "s", epoch: 1, policy: "replica:3", primary: "p", secondaries: ["me", "other"], inactive: [], arbiter: null };

function fakeRouter(onSend: (to: Address, msg: Message) => void) {
  const receivers = new Map<Address, (from: Address, msg: Message) => void>();
  const router: UnitRouter = {
    attach: (a, r) => void receivers.set(a, r),
    detach: (a) => void receivers.delete(a),
    send: (_from, to, msg) => onSend(to, msg),
    flushNow: () => undefined,
  };
  return { router, deliver: (to: Address, from: Address, msg: Message) => receivers.get(to)?.(from, msg) };
}

describe("UnitDriver", () => {
  const archive = Archive.create({ path: join(dir, "a.img"), sizeBytes: 64 << 20, clusterId: testClusterId });
  const created = archive.createUnit({ volumeId: testVolumeId, segmentIndex: 0, sizeBytes: 1 << 20 });
  if (!created.ok) throw new Error(created.message);
  const unit: SegmentUnit = created.value;
  const store = new MemoryMembershipStore();
  store.records.set("s", m);
  const stateDir = join(dir, "units");
  const metaFile = join(stateDir, "me.meta");

  test("a probe's fence is in the meta file before the reply is sent; a forward is on the archive before its ack", async () => {
    const seen: string[] = [];
    const f = fakeRouter((to, msg) => {
      if (msg.type === "probe-reply") seen.push(`reply with fence on disk ${JSON.parse(readFileSync(metaFile, "utf8")).fence}`);
      if (msg.type === "forward-ack") seen.push(`ack ${msg.lsn} with page seq ${unit.pageSeq(3)}`);
      void to;
    });
    const d = new UnitDriver({ router: f.router, store, stateDir, logger: silentLogger });
    d.host({ unitId: "me", segment: "s", store: { archive, unit } });
    await until("the unit at epoch 1", () => d.report("me")?.epoch === 1);
    const data = new Uint8Array(pageBytes).fill(7);
    f.deliver("me", "p", { type: "forward", epoch: 1, lsn: 1, page: 3, pages: 1, data, commitLsn: 0 });
    await until("an ack", () => seen.some((s) => s.startsWith("ack")));
    f.deliver("me", "manager", { type: "probe", epoch: 1, fence: 2, round: 1 });
    await until("a reply", () => seen.some((s) => s.startsWith("reply")));
    expect(seen).toEqual(["ack 1 with page seq 1", "reply with fence on disk 2"]);
    const back = unit.read(3 * pageBytes, pageBytes);
    expect(back.ok && back.value[0]).toBe(7);
    d.stop();
  });

  test("forwards of one batch: each on the archive, the marker written once, one ack (the last, cumulative) sent after it", async () => {
    const other = archive.createUnit({ volumeId: testVolumeId, segmentIndex: 1, sizeBytes: 1 << 20 });
    if (!other.ok) throw new Error(other.message);
    const u2 = other.value;
    store.records.set("s2", { ...m, segment: "s2", secondaries: ["batch", "other"] });
    const acks: string[] = [];
    const markFile = join(stateDir, "batch.mark");
    const f = fakeRouter((_to, msg) => {
      if (msg.type !== "forward-ack") return;
      const mark = new DataView(readFileSync(markFile).buffer);
      acks.push(`ack ${msg.lsn} with marker at ${mark.getFloat64(8)} and page 9 seq ${u2.pageSeq(9)}`);
    });
    const d = new UnitDriver({ router: f.router, store, stateDir, logger: silentLogger });
    d.host({ unitId: "batch", segment: "s2", store: { archive, unit: u2 } });
    await until("the unit at epoch 1", () => d.report("batch")?.epoch === 1);
    // One frame's worth, delivered in one turn (as the router does with a batch).
    for (let lsn = 1; lsn <= 8; lsn++) f.deliver("batch", "p", { type: "forward", epoch: 1, lsn, page: lsn + 1, pages: 1, data: new Uint8Array(pageBytes).fill(lsn), commitLsn: 0 });
    await until("an ack", () => acks.length > 0);
    await Bun.sleep(20);
    expect(acks).toEqual(["ack 8 with marker at 8 and page 9 seq 8"]);
    for (let lsn = 1; lsn <= 8; lsn++) {
      const r = u2.read((lsn + 1) * pageBytes, pageBytes);
      expect(r.ok && r.value[0]).toBe(lsn);
    }
    d.stop();
  });

  test("a primary's forwards leave before its own persist (flushed at once); its answer to the client waits for the batch's marker", async () => {
    const made = archive.createUnit({ volumeId: testVolumeId, segmentIndex: 2, sizeBytes: 1 << 20 });
    if (!made.ok) throw new Error(made.message);
    const u3 = made.value;
    store.records.set("sp", { ...m, segment: "sp", primary: "pri", secondaries: ["s1", "s2"] });
    const seen: string[] = [];
    const markFile = join(stateDir, "pri.mark");
    const markedLsn = (): number => (existsSync(markFile) ? new DataView(readFileSync(markFile).buffer).getFloat64(8) : 0);
    const receivers = new Map<Address, (from: Address, msg: Message) => void>();
    const deliver = (to: Address, from: Address, msg: Message): void => queueMicrotask(() => receivers.get(to)?.(from, msg));
    const router: UnitRouter = {
      attach: (a, r) => void receivers.set(a, r),
      detach: (a) => void receivers.delete(a),
      send: (_from, to, msg) => {
        if (msg.type === "lease-req") deliver("pri", to, { type: "lease-grant", epoch: msg.epoch, sentAt: msg.sentAt });
        if (msg.type === "forward") {
          seen.push(`forward ${msg.lsn} to ${to}: page 5 seq ${u3.pageSeq(5)} on the primary`);
          deliver("pri", to, { type: "forward-ack", epoch: msg.epoch, lsn: msg.lsn });
        }
        if (msg.type === "write-done") seen.push(`write-done ${msg.reqId}: marker at ${markedLsn()}`);
      },
      flushNow: () => void seen.push("flush"),
    };
    const d = new UnitDriver({ router, store, stateDir, logger: silentLogger });
    d.host({ unitId: "pri", segment: "sp", store: { archive, unit: u3 } });
    await until("the primary's lease", () => Number.isFinite(d.stateOf("pri")?.pri?.leaseUntil ?? -Infinity));
    receivers.get("pri")?.("client:n/sp", { type: "write", epoch: 1, reqId: 1, completeBelow: 0, page: 5, pages: 1, data: new Uint8Array(pageBytes).fill(9) });
    await until("the write answered", () => seen.some((x) => x.startsWith("write-done")));
    expect(seen).toEqual(["forward 1 to s1: page 5 seq 0 on the primary", "forward 1 to s2: page 5 seq 0 on the primary", "flush", "write-done 1: marker at 1"]);
    const back = u3.read(5 * pageBytes, pageBytes);
    expect(back.ok && back.value[0]).toBe(9);
    d.stop();
  });

  test("a restarted driver recovers the fence, the log marker and the pages' seqs", async () => {
    const d = new UnitDriver({ router: fakeRouter(() => undefined).router, store, stateDir, logger: silentLogger });
    d.host({ unitId: "me", segment: "s", store: { archive, unit } });
    expect(d.report("me")).toMatchObject({ fence: 2, lastLsn: 1, epoch: 1, consistent: true });
    expect(d.stateOf("me")?.pageSeq.get(3)).toBe(1);
    d.stop();
    archive.close();
  });
});
