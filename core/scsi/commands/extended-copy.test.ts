// EXTENDED COPY (LID1) and RECEIVE COPY RESULTS through executeCommand(): copies between LUNs
// named by their NAA designator, overlapping copies inside one LUN, every parameter list error
// with the sense the standard (and libiscsi) expect, nothing written by a list that fails,
// reservations of the copy targets, held results per I_T nexus, thin copies, mutated lists
// (seeded), and ORWRITE.
import { describe, expect, test } from "bun:test";
import { MemoryBlockDevice } from "../../../test/iscsi-mem-target.ts";
import type { BlockDevice } from "../../volume/block-device.ts";
import { be16, be32, putBe16, putBe32, putBe64 } from "../bytes.ts";
import { CopyResults, Opcode, decodeCdb } from "../cdb.ts";
import { executeCommand, type ScsiPort } from "../logical-unit.ts";
import { LunStateTable, type Nexus } from "../lun-state.ts";
import { Status, type ScsiResult } from "../sense.ts";
import { descriptorListBytesMax, segmentDescriptorsMax, targetDescriptorsMax } from "./extended-copy.ts";
import { naaDesignator } from "./inquiry.ts";
import { seededRng } from "../../../test/helpers/rng.ts";

const port: ScsiPort = { targetName: "iqn.2026-11.org.qstora:t", relativePortId: 1, lunNumbers: () => [0, 1] };
const nexusOf = (n: number): Nexus => ({ id: `iqn.2026-11.org.qstora:i${n},i,0x00000000000${n}|1`, initiatorPort: `iqn.2026-11.org.qstora:i${n},i,0x00000000000${n}`, relativePortId: 1 });
const a = nexusOf(1);
const b = nexusOf(2);
const sense = (r: ScsiResult): string => (r.sense === undefined ? (r.status === Status.good ? "good" : `status ${r.status}`) : `${r.sense.key}/${r.sense.asc.toString(16)}/${r.sense.ascq.toString(16)}`);

/** An E4h target descriptor naming `device` by the NAA designator VPD 83h reports. */
function target(device: BlockDevice, options: { blockBytes?: number; type?: number; peripheral?: number } = {}): Uint8Array {
  const d = new Uint8Array(32);
  d[0] = options.type ?? 0xe4;
  d[1] = options.peripheral ?? 0;
  d[4] = 0x01; // binary
  d[5] = 0x03; // LU association, NAA
  d[7] = 8;
  d.set(naaDesignator(device.info().uuid), 8);
  const bs = options.blockBytes ?? device.info().blockBytes;
  d[29] = bs >>> 16;
  d[30] = bs >>> 8;
  d[31] = bs;
  return d;
}

function segment(source: number, destination: number, blocks: number, sourceLba: number, destinationLba: number, type = 0x02): Uint8Array {
  const s = new Uint8Array(28);
  s[0] = type;
  putBe16(s, 2, 0x18);
  putBe16(s, 4, source);
  putBe16(s, 6, destination);
  putBe16(s, 10, blocks);
  putBe64(s, 12, sourceLba);
  putBe64(s, 20, destinationLba);
  return s;
}

function parameters(targets: Uint8Array[], segments: Uint8Array[], options: { listId?: number; usage?: number } = {}): Uint8Array {
  const t = targets.reduce((n, x) => n + x.length, 0);
  const s = segments.reduce((n, x) => n + x.length, 0);
  const p = new Uint8Array(16 + t + s);
  p[0] = options.listId ?? 1;
  p[1] = (options.usage ?? 0) << 3;
  putBe16(p, 2, t);
  putBe32(p, 8, s);
  let at = 16;
  for (const x of [...targets, ...segments]) {
    p.set(x, at);
    at += x.length;
  }
  return p;
}

function setup(options: { async?: boolean; resolver?: boolean } = {}) {
  const one = new MemoryBlockDevice({ sizeBytes: 4 << 20, async: options.async ?? false, uuid: "11111111-2222-4333-8444-555555555555" });
  const two = new MemoryBlockDevice({ sizeBytes: 4 << 20, async: options.async ?? false, uuid: "66666666-7777-4888-9999-aaaaaaaaaaaa" });
  const lunStates = new LunStateTable({}, options.resolver === false ? {} : { copyTargets: () => [one, two] });
  const run = async (nexus: Nexus, device: BlockDevice, cdb: number[], dataOut: Uint8Array | null = null): Promise<ScsiResult> => {
    const bytes = new Uint8Array(16);
    bytes.set(cdb);
    return await executeCommand({ command: decodeCdb(bytes), device, port, dataOut, dataInBytesMax: 1 << 20, nexus, lunStates });
  };
  const xcopy = (nexus: Nexus, device: BlockDevice, p: Uint8Array, length = p.length) => run(nexus, device, [Opcode.extendedCopy, 0, 0, 0, 0, 0, 0, 0, 0, 0, length >>> 24, length >>> 16, length >>> 8, length, 0, 0], p.subarray(0, length));
  const results = (nexus: Nexus, device: BlockDevice, action: number, listId: number) => run(nexus, device, [Opcode.receiveCopyResults, action, listId, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0]);
  return { one, two, lunStates, run, xcopy, results };
}

describe("EXTENDED COPY", () => {
  for (const async of [false, true]) {
    test(`copies between two LUNs named by NAA, and COPY STATUS reports it (${async ? "async" : "sync"})`, async () => {
      const { one, two, xcopy, results } = setup({ async });
      for (let i = 0; i < 3 << 20; i++) one.bytes[i] = (i * 7) & 0xff;
      // 3 MiB from LUN one at LBA 0 to LUN two at LBA 100: more than one chunk.
      const p = parameters([target(one), target(two)], [segment(0, 1, 2048, 0, 100), segment(0, 1, 4096, 2048, 2148)]);
      expect(sense(await xcopy(a, one, p))).toBe("good");
      expect(Buffer.compare(two.bytes.subarray(100 * 512, 100 * 512 + (3 << 20)), one.bytes.subarray(0, 3 << 20))).toBe(0);
      const status = await results(a, one, CopyResults.copyStatus, 1);
      expect(sense(status)).toBe("good");
      const d = status.data as Uint8Array;
      expect(d[4]).toBe(0x01); // completed without errors
      expect(be16(d, 5)).toBe(2); // segments processed
      expect(d[7]).toBe(0x00); // bytes
      expect(be32(d, 8)).toBe(3 << 20);
      // Held per I_T nexus: another nexus does not see it; a logout forgets it.
      expect(sense(await results(b, one, CopyResults.copyStatus, 1))).toBe("5/24/0");
      expect((await results(a, one, CopyResults.failedSegmentDetails, 1)).data?.length).toBe(4);
    });
  }

  test("a long copy on synchronous devices lets the event loop (other sessions) run between chunks", async () => {
    const { one, two, xcopy } = setup();
    const events: string[] = [];
    // Queued before the copy starts: it runs at the copy's first yield (a timer would need 1 ms
    // to pass, which a fast copy may not take).
    setImmediate(() => events.push("timer"));
    const copy = xcopy(a, one, parameters([target(one), target(two)], [segment(0, 1, 6144, 0, 0)])).then((r) => events.push(`copy ${sense(r)}`));
    await copy;
    expect(events).toEqual(["timer", "copy good"]);
  });

  test("an overlapping copy inside one LUN reads every block before overwriting it", async () => {
    const { one, xcopy } = setup();
    for (let i = 0; i < 3 << 20; i++) one.bytes[i] = (i * 13 + 5) & 0xff;
    const before = one.bytes.slice(0, 3 << 20);
    // 3 MiB from LBA 0 to LBA 1024 (512 KiB higher): the ranges overlap.
    expect(sense(await xcopy(a, one, parameters([target(one)], [segment(0, 0, 6144, 0, 1024)])))).toBe("good");
    expect(Buffer.compare(one.bytes.subarray(1024 * 512, 1024 * 512 + (3 << 20)), before)).toBe(0);
    // And downwards.
    const mid = one.bytes.slice(1024 * 512, 1024 * 512 + (3 << 20));
    expect(sense(await xcopy(a, one, parameters([target(one)], [segment(0, 0, 6144, 1024, 0)])))).toBe("good");
    expect(Buffer.compare(one.bytes.subarray(0, 3 << 20), mid)).toBe(0);
  });

  test("a deallocated source range is unmapped on the destination, not written with zeros", async () => {
    const { one, two, xcopy } = setup();
    two.bytes.fill(0x77, 0, 3 << 20);
    one.bytes.fill(0x11, 0, 1 << 20);
    // LUN one: the first MiB written, the next two never (deallocated).
    one.deallocated.fill(1, 2048, 6144);
    expect(sense(await xcopy(a, one, parameters([target(one), target(two)], [segment(0, 1, 6144, 0, 0)])))).toBe("good");
    expect(two.bytes.subarray(0, 1 << 20).every((x) => x === 0x11)).toBe(true);
    expect(two.bytes.subarray(1 << 20, 3 << 20).every((x) => x === 0)).toBe(true);
    expect(two.deallocated.subarray(2048, 6144).every((x) => x === 1)).toBe(true);
    expect(two.deallocated[0]).toBe(0);
  });

  test("parameter list errors: lengths first, then counts, then descriptor types", async () => {
    const { one, two, xcopy } = setup();
    const good = parameters([target(one)], [segment(0, 0, 8, 0, 100)]);
    expect(sense(await xcopy(a, one, good, 0))).toBe("good");
    expect(sense(await xcopy(a, one, good, 15))).toBe("5/1a/0");
    expect(sense(await xcopy(a, one, good, 16 + 31))).toBe("5/1a/0");
    expect(sense(await xcopy(a, one, good, good.length - 1))).toBe("5/1a/0");
    const manyTargets = Array.from({ length: targetDescriptorsMax + 1 }, () => target(one));
    expect(sense(await xcopy(a, one, parameters(manyTargets, [segment(0, 0, 8, 0, 100)])))).toBe("5/26/6");
    const manySegments = Array.from({ length: segmentDescriptorsMax + 1 }, () => segment(0, 0, 8, 0, 100));
    expect(sense(await xcopy(a, one, parameters([target(one)], manySegments)))).toBe("5/26/8");
    const tooLong = Array.from({ length: Math.ceil(descriptorListBytesMax / 28) }, () => segment(0, 0, 8, 0, 100));
    expect(sense(await xcopy(a, one, parameters(manyTargets, tooLong)))).toBe("5/1a/0");
    expect(sense(await xcopy(a, one, parameters([target(one, { type: 0xe0 })], [segment(0, 0, 8, 0, 100)])))).toBe("5/26/7");
    const stream = segment(0, 0, 8, 0, 100, 0x03);
    expect(sense(await xcopy(a, one, parameters([target(one)], [stream])))).toBe("5/26/9");
    expect(sense(await xcopy(a, one, parameters([target(one, { peripheral: 1 })], [segment(0, 0, 8, 0, 100)])))).toBe("5/26/0");
    expect(sense(await xcopy(a, one, parameters([target(one, { blockBytes: 4096 })], [segment(0, 0, 8, 0, 100)])))).toBe("5/26/0");
    // LIST ID USAGE 11b needs list identifier 0; 01b is reserved.
    expect(sense(await xcopy(a, one, parameters([target(one)], [segment(0, 0, 8, 0, 100)], { usage: 3, listId: 4 })))).toBe("5/26/0");
    expect(sense(await xcopy(a, one, parameters([target(one)], [segment(0, 0, 8, 0, 100)], { usage: 1 })))).toBe("5/26/0");
    expect(sense(await xcopy(a, one, parameters([target(one)], [segment(0, 0, 8, 0, 100)], { usage: 3, listId: 0 })))).toBe("good");
    void two;
  });

  test("a bad segment aborts the copy before any block moves, and FAILED SEGMENT DETAILS tells why once", async () => {
    const { one, two, xcopy, results } = setup();
    one.bytes.fill(0xab, 0, 4096);
    const capacity = (4 << 20) / 512;
    // Segment 0 is fine, segment 1 runs past the end of LUN two: nothing is copied.
    const r = await xcopy(a, one, parameters([target(one), target(two)], [segment(0, 1, 8, 0, 0), segment(0, 1, 8, 0, capacity - 4)], { listId: 9 }));
    expect(sense(r)).toBe("10/0/0"); // COPY ABORTED
    expect(r.sense?.information).toBe(1);
    expect(r.sense?.senseKeySpecific).toBe(0xa00014); // SKSV, SD, byte 20: DESTINATION LBA
    expect(two.bytes[0]).toBe(0);
    // An index past the target list, and a designator no LUN has.
    expect(sense(await xcopy(a, one, parameters([target(one)], [segment(0, 1, 8, 0, 0)])))).toBe("10/8/4");
    const stranger = new MemoryBlockDevice({ sizeBytes: 1 << 20, uuid: "deadbeef-0000-4000-8000-000000000000" });
    expect(sense(await xcopy(a, one, parameters([target(one), target(stranger)], [segment(0, 1, 8, 0, 0)])))).toBe("10/d/2");
    const details = await results(a, one, CopyResults.failedSegmentDetails, 9);
    expect(sense(details)).toBe("good");
    const d = details.data as Uint8Array;
    expect(d[56]).toBe(Status.checkCondition);
    expect(be16(d, 58)).toBe(18);
    expect(d[60 + 2]).toBe(0x0a); // the sense it ended with: COPY ABORTED
    expect((await results(a, one, CopyResults.copyStatus, 9)).sense).toBeDefined(); // given once, then forgotten
  });

  test("without a copy target resolver only the copy manager itself is reachable", async () => {
    const { one, two, xcopy } = setup({ resolver: false });
    expect(sense(await xcopy(a, one, parameters([target(one), target(two)], [segment(0, 1, 8, 0, 0)])))).toBe("10/d/2");
    expect(sense(await xcopy(a, one, parameters([target(one)], [segment(0, 0, 8, 0, 16)])))).toBe("good");
  });

  test("a destination reserved by another nexus gives RESERVATION CONFLICT and is not written", async () => {
    const { one, two, run, xcopy } = setup();
    one.bytes.fill(0x5a, 0, 4096);
    const key = new Uint8Array(24);
    key[15] = 7; // SERVICE ACTION RESERVATION KEY 7
    expect(sense(await run(b, two, [Opcode.persistentReserveOut, 0, 0, 0, 0, 0, 0, 0, 24, 0], key))).toBe("good");
    const reserve = new Uint8Array(24);
    reserve[7] = 7;
    expect(sense(await run(b, two, [Opcode.persistentReserveOut, 1, 1, 0, 0, 0, 0, 0, 24, 0], reserve))).toBe("good"); // WRITE EXCLUSIVE
    expect((await xcopy(a, one, parameters([target(one), target(two)], [segment(0, 1, 8, 0, 0)]))).status).toBe(Status.reservationConflict);
    expect(two.bytes[0]).toBe(0);
    // Reading a LUN under WRITE EXCLUSIVE is allowed: two may be the source.
    expect(sense(await xcopy(a, one, parameters([target(two), target(one)], [segment(0, 1, 8, 0, 100)])))).toBe("good");
  });

  test("a list identifier still in progress on the same nexus gives OPERATION IN PROGRESS", async () => {
    const { one, two, xcopy } = setup({ async: true });
    const p = parameters([target(one), target(two)], [segment(0, 1, 4096, 0, 0)], { listId: 3 });
    const first = xcopy(a, one, p);
    await Bun.sleep(0);
    expect(sense(await xcopy(a, one, p))).toBe("5/0/16");
    // Another nexus has its own list identifiers.
    expect(sense(await xcopy(b, one, p))).toBe("good");
    expect(sense(await first)).toBe("good");
    expect(sense(await xcopy(a, one, p))).toBe("good");
  });

  test("OPERATING PARAMETERS reports the limits EXTENDED COPY enforces and the descriptors it takes", async () => {
    const { one, results } = setup();
    const r = await results(a, one, CopyResults.operatingParameters, 0);
    const d = r.data as Uint8Array;
    expect(be16(d, 8)).toBe(targetDescriptorsMax);
    expect(be16(d, 10)).toBe(segmentDescriptorsMax);
    expect(be32(d, 12)).toBe(descriptorListBytesMax);
    expect(d[37]).toBe(9); // 512-byte blocks
    expect([...d.subarray(44, 44 + (d[43] as number))]).toEqual([0x02, 0xe4]);
    expect(sense(await results(a, one, 0x05, 0))).toBe("5/24/0");
    expect(sense(await results(a, one, CopyResults.receiveData, 1))).toBe("5/24/0");
  });

  test("standard INQUIRY sets 3PC; VPD 8Fh and REPORT SUPPORTED OPCODES list EXTENDED COPY and RECEIVE COPY RESULTS", async () => {
    const { one, run } = setup();
    const inq = await run(a, one, [Opcode.inquiry, 0, 0, 0, 96, 0]);
    expect(((inq.data as Uint8Array)[5] as number) & 0x08).toBe(0x08);
    // VPD 8Fh's Supported Commands descriptor, in the ascending list of pages.
    const pages = (await run(a, one, [Opcode.inquiry, 1, 0x00, 0, 255, 0])).data as Uint8Array;
    const codes = [...pages.subarray(4)];
    expect(codes).toContain(0x8f);
    expect(codes).toEqual([...codes].sort((x, y) => x - y));
    const tpc = (await run(a, one, [Opcode.inquiry, 1, 0x8f, 0, 255, 0])).data as Uint8Array;
    expect(be16(tpc, 4)).toBe(0x0001);
    expect(be16(tpc, 6) % 4).toBe(0);
    expect([...tpc.subarray(9, 9 + (tpc[8] as number))]).toEqual([0x83, 1, 0x00, 0x84, 4, 0x00, 0x01, 0x03, 0x04]);
    for (const [op, sa] of [[Opcode.extendedCopy, 0], [Opcode.receiveCopyResults, 3]] as const) {
      const r = await run(a, one, [Opcode.maintenanceIn, 0x0c, 2, op, 0, sa, 0, 0, 1, 0, 0, 0]);
      expect(((r.data as Uint8Array)[1] as number) & 0x07).toBe(3); // supported
    }
  });
});

describe("ORWRITE(16)", () => {
  test("ORs the Data-Out into the blocks; PROTECT and ranges are checked", async () => {
    const { one, run } = setup();
    one.bytes.fill(0x0f, 0, 1024);
    const cdb = (lba: number, blocks: number, flags = 0) => [Opcode.orWrite, flags, 0, 0, 0, 0, lba >>> 24, lba >>> 16, lba >>> 8, lba, blocks >>> 24, blocks >>> 16, blocks >>> 8, blocks, 0, 0];
    expect(sense(await run(a, one, cdb(0, 2), new Uint8Array(1024).fill(0xf0)))).toBe("good");
    expect(one.bytes.subarray(0, 1024).every((x) => x === 0xff)).toBe(true);
    expect(sense(await run(a, one, cdb(0, 1, 0x20), new Uint8Array(512)))).toBe("5/24/0");
    expect(sense(await run(a, one, cdb((4 << 20) / 512, 1), new Uint8Array(512)))).toBe("5/21/0");
    expect(sense(await run(a, one, cdb(0, 0)))).toBe("good");
  });
});

describe("EXTENDED COPY under mutated parameter lists", () => {
  test("never throws; answers GOOD, CHECK CONDITION or RESERVATION CONFLICT; never writes outside a LUN (seeded)", async () => {
    const seed = 0x5eed_c0de;
    const rng = seededRng(seed);
    const { one, two, xcopy } = setup();
    const valid = parameters([target(one), target(two)], [segment(0, 1, 8, 0, 16), segment(1, 0, 8, 32, 64)]);
    const statuses = new Set<number>([Status.good, Status.checkCondition, Status.reservationConflict]);
    for (let i = 0; i < 3000; i++) {
      const p = valid.slice();
      const flips = 1 + (rng() % 4);
      for (let f = 0; f < flips; f++) p[rng() % p.length] = rng() & 0xff;
      const length = rng() % 8 === 0 ? rng() % (p.length + 1) : p.length;
      let r: ScsiResult;
      try {
        r = await xcopy(a, one, p, length);
      } catch (e) {
        throw new Error(`seed ${seed} iteration ${i}: ${String(e)} for ${Buffer.from(p.subarray(0, length)).toString("hex")}`);
      }
      expect(statuses.has(r.status)).toBe(true);
    }
  });
});
