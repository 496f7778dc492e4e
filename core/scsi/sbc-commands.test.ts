// The issue-3 command set through executeCommand(): VERIFY, WRITE SAME (UNMAP), UNMAP, GET LBA
// STATUS, COMPARE AND WRITE (miscompare offset, atomic against other nexuses), MODE SELECT with its
// unit attention, capacity and reset unit attentions, REPORT SUPPORTED OPERATION CODES / TMF,
// REPORT TARGET PORT GROUPS, and SPC-2 / persistent reservations between two nexuses.
import { describe, expect, test } from "bun:test";
import { MemoryBlockDevice } from "../../test/iscsi-mem-target.ts";
import { be16, be32, be64 } from "./bytes.ts";
import { Opcode, decodeCdb } from "./cdb.ts";
import { executeCommand, type ScsiPort } from "./logical-unit.ts";
import { LunStateTable, type Nexus } from "./lun-state.ts";
import { Status, type ScsiResult } from "./sense.ts";

const port: ScsiPort = { targetName: "iqn.2026-11.org.qstora:t", relativePortId: 1, lunNumbers: () => [0] };
const nexusOf = (n: number): Nexus => ({ id: `iqn.2026-11.org.qstora:i${n},i,0x00000000000${n}|1`, initiatorPort: `iqn.2026-11.org.qstora:i${n},i,0x00000000000${n}`, relativePortId: 1 });
const a = nexusOf(1);
const b = nexusOf(2);

function cdb(bytes: number[]): Uint8Array {
  const out = new Uint8Array(16);
  out.set(bytes);
  return out;
}
const sense = (r: ScsiResult): string => (r.sense === undefined ? (r.status === Status.good ? "good" : `status ${r.status}`) : `${r.sense.key}/${r.sense.asc.toString(16)}/${r.sense.ascq.toString(16)}`);

function setup(async = false) {
  const device = new MemoryBlockDevice({ sizeBytes: 1 << 20, async });
  const lunStates = new LunStateTable();
  const run = async (nexus: Nexus, bytes: number[], dataOut: Uint8Array | null = null, edtl = 1 << 20): Promise<ScsiResult> =>
    await executeCommand({ command: decodeCdb(cdb(bytes)), device, port, dataOut, dataInBytesMax: edtl, nexus, lunStates });
  return { device, lunStates, run };
}
const lba16 = (op: number, lba: number, blocks: number, flags = 0) => [op, flags, 0, 0, 0, 0, lba >>> 24, lba >>> 16, lba >>> 8, lba, blocks >>> 24, blocks >>> 16, blocks >>> 8, blocks, 0, 0];
const fill = (bytes: number, v: number) => new Uint8Array(bytes).fill(v);

describe("SBC-3 commands", () => {
  test("VERIFY: BYTCHK 0 reads, BYTCHK 1 compares and reports the miscompare offset", async () => {
    const { device, run } = setup();
    device.bytes.fill(5, 0, 1024);
    expect(sense(await run(a, lba16(Opcode.verify16, 0, 2)))).toBe("good");
    expect(sense(await run(a, lba16(Opcode.verify16, 0, 2, 0x02), fill(1024, 5)))).toBe("good");
    const data = fill(1024, 5);
    data[700] = 9;
    const r = await run(a, lba16(Opcode.verify16, 0, 2, 0x02), data);
    expect(sense(r)).toBe("14/1d/0");
    expect(r.sense?.information).toBe(700);
    expect(sense(await run(a, lba16(Opcode.verify16, 2047, 2)))).toBe("5/21/0");
  });

  test("WRITE SAME writes the pattern; with UNMAP it deallocates, reads zeros and GET LBA STATUS says so", async () => {
    const { device, run } = setup();
    expect(sense(await run(a, lba16(Opcode.writeSame16, 8, 16), fill(512, 0xab)))).toBe("good");
    expect(device.bytes[8 * 512]).toBe(0xab);
    expect(device.bytes[24 * 512 - 1]).toBe(0xab);
    expect(device.bytes[24 * 512]).toBe(0);
    expect(sense(await run(a, lba16(Opcode.writeSame16, 8, 8, 0x08), fill(512, 0xff)))).toBe("good");
    expect(device.bytes[8 * 512]).toBe(0);
    const status = await run(a, [Opcode.serviceActionIn16, 0x12, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 64, 0, 0]);
    const d = status.data!;
    expect(be64(d, 8)).toBe(8);
    expect(be32(d, 16)).toBe(8);
    expect(d[20]).toBe(1); // deallocated
    expect(be64(d, 24)).toBe(16);
    expect(d[36]).toBe(0); // mapped
    // Data-Out of the wrong size, ANCHOR without ANC_SUP.
    expect(sense(await run(a, lba16(Opcode.writeSame16, 0, 1), fill(1024, 0)))).toBe("5/24/0");
    expect(sense(await run(a, lba16(Opcode.writeSame16, 0, 1, 0x18), fill(512, 0)))).toBe("5/24/0");
  });

  test("UNMAP deallocates each descriptor's range and checks ranges and lengths", async () => {
    const { device, run } = setup();
    device.bytes.fill(1);
    const list = new Uint8Array(8 + 32);
    list[1] = 38;
    list[3] = 32;
    list[15] = 4; // LBA 0, 4 blocks ... LBA 0x100? set below
    list[8 + 7] = 0; // first descriptor LBA 0
    list[8 + 11] = 4;
    list[24 + 7] = 100; // second descriptor LBA 100, 2 blocks
    list[24 + 11] = 2;
    expect(sense(await run(a, [Opcode.unmap, 0, 0, 0, 0, 0, 0, 0, 40, 0], list))).toBe("good");
    expect(device.bytes[0]).toBe(0);
    expect(device.bytes[4 * 512]).toBe(1);
    expect(device.bytes[100 * 512]).toBe(0);
    expect(device.bytes[102 * 512]).toBe(1);
    list[24 + 7] = 0xff;
    list[24 + 6] = 0xff;
    expect(sense(await run(a, [Opcode.unmap, 0, 0, 0, 0, 0, 0, 0, 40, 0], list))).toBe("5/21/0");
    expect(sense(await run(a, [Opcode.unmap, 0, 0, 0, 0, 0, 0, 0, 4, 0], list.subarray(0, 4)))).toBe("5/1a/0");
  });

  for (const async of [false, true]) {
    test(`COMPARE AND WRITE: writes on a match, MISCOMPARE with the offset otherwise, atomic across nexuses (${async ? "async" : "sync"})`, async () => {
      const { device, run } = setup(async);
      device.bytes.fill(7, 0, 512);
      const caw = [Opcode.compareAndWrite, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0];
      const ok = new Uint8Array(1024);
      ok.fill(7, 0, 512);
      ok.fill(8, 512);
      expect(sense(await run(a, caw, ok))).toBe("good");
      expect(device.bytes[0]).toBe(8);
      const miss = ok.slice();
      miss.fill(8, 0, 512);
      miss[300] = 1;
      const r = await run(a, caw, miss);
      expect(sense(r)).toBe("14/1d/0");
      expect(r.sense?.information).toBe(300);
      expect(sense(await run(a, caw, ok.subarray(0, 512)))).toBe("5/24/0");
      // Two nexuses race to take the same "lock" block: exactly one wins.
      const take = (owner: number) => {
        const d = new Uint8Array(1024);
        d.fill(8, 0, 512);
        d.fill(owner, 512);
        return d;
      };
      const results = await Promise.all([run(a, caw, take(1)), run(b, caw, take(2)), run(a, caw, take(3))]);
      expect(results.filter((x) => x.status === Status.good).length).toBe(1);
      const winner = results.findIndex((x) => x.status === Status.good);
      expect(device.bytes[0]).toBe(winner + 1);
    });
  }

  test("COMPARE AND WRITE of 0 blocks is a no-op, but 0 blocks sent with Data-Out (256 wrapped to 8 bits) is INVALID FIELD IN CDB", async () => {
    const { device, run } = setup();
    device.bytes.fill(7, 0, 512);
    const caw0 = [Opcode.compareAndWrite, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    expect(sense(await run(a, caw0, null))).toBe("good");
    expect(sense(await run(a, caw0, fill(256 * 1024, 7)))).toBe("5/24/0");
    expect(device.bytes[0]).toBe(7);
  });

  test("MODE SELECT turns WCE off (writes become FUA) and the other nexus gets MODE PARAMETERS CHANGED", async () => {
    const { device, run } = setup();
    await run(b, [Opcode.testUnitReady, 0, 0, 0, 0, 0]);
    const sensed = (await run(a, [Opcode.modeSense6, 0x08, 0x08, 0, 255, 0])).data!;
    const list = sensed.slice();
    list[0] = 0;
    list[6] = (list[6] as number) & ~0x04;
    expect(sense(await run(a, [Opcode.modeSelect6, 0x10, 0, 0, list.length, 0], list))).toBe("good");
    expect(device.info().writeCache).toBe(false);
    expect(sense(await run(b, [Opcode.testUnitReady, 0, 0, 0, 0, 0]))).toBe("6/2a/1");
    expect(sense(await run(b, [Opcode.testUnitReady, 0, 0, 0, 0, 0]))).toBe("good");
    await run(a, [Opcode.write10, 0, 0, 0, 0, 0, 0, 0, 1, 0], fill(512, 1));
    expect(device.fuaWrites).toBe(1);
    // A change to a field that is not changeable is refused.
    list[7] = 0xff;
    expect(sense(await run(a, [Opcode.modeSelect6, 0x10, 0, 0, list.length, 0], list))).toBe("5/26/0");
  });

  test("capacity change and LUN reset raise unit attentions (the reset's for every nexus, the requester too); REQUEST SENSE reports and clears one", async () => {
    const { device, lunStates, run } = setup();
    await run(a, [Opcode.testUnitReady, 0, 0, 0, 0, 0]);
    await run(b, [Opcode.testUnitReady, 0, 0, 0, 0, 0]);
    (device as unknown as { details: { sizeBytes: number } }).details.sizeBytes = 2 << 20;
    expect(sense(await run(a, [Opcode.testUnitReady, 0, 0, 0, 0, 0]))).toBe("6/2a/9");
    const rs = await run(b, [Opcode.requestSense, 0, 0, 0, 18, 0]);
    expect(rs.data![2]).toBe(6);
    expect(rs.data![12]).toBe(0x2a);
    expect(sense(await run(b, [Opcode.testUnitReady, 0, 0, 0, 0, 0]))).toBe("good");
    lunStates.get(device).reset(a.id);
    expect(sense(await run(a, [Opcode.testUnitReady, 0, 0, 0, 0, 0]))).toBe("6/29/0");
    expect(sense(await run(a, [Opcode.testUnitReady, 0, 0, 0, 0, 0]))).toBe("good");
    expect(sense(await run(b, [Opcode.testUnitReady, 0, 0, 0, 0, 0]))).toBe("6/29/0");
    // A requester that never sent this LU a command gets it as well.
    lunStates.get(device).reset("never-seen");
    expect(lunStates.get(device).take("never-seen")).toEqual({ asc: 0x29, ascq: 0 });
  });

  test("REPORT SUPPORTED OPERATION CODES lists every command; one command has its CDB usage; TMF and target port groups", async () => {
    const { run } = setup();
    const all = (await run(a, [Opcode.maintenanceIn, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0])).data!;
    const opcodes = new Set<number>();
    for (let at = 4; at < 4 + be32(all, 0); at += 8) opcodes.add(all[at] as number);
    for (const op of [Opcode.read10, Opcode.compareAndWrite, Opcode.unmap, Opcode.writeSame16, Opcode.persistentReserveOut]) expect(opcodes.has(op)).toBe(true);
    const one = (await run(a, [Opcode.maintenanceIn, 0x0c, 0x01, Opcode.read16, 0, 0, 0, 0, 1, 0, 0, 0])).data!;
    expect(one[1]! & 0x07).toBe(3);
    expect(be16(one, 2)).toBe(16);
    expect(one[4]).toBe(Opcode.read16);
    expect(sense(await run(a, [Opcode.maintenanceIn, 0x0c, 0x01, Opcode.persistentReserveIn, 0, 0, 0, 0, 1, 0, 0, 0]))).toBe("5/24/0");
    const tmf = (await run(a, [Opcode.maintenanceIn, 0x0d, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0])).data!;
    expect(tmf[0]! & 0x88).toBe(0x88); // ABORT TASK, LOGICAL UNIT RESET
    const groups = (await run(a, [Opcode.maintenanceIn, 0x2a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])).data!;
    expect(groups[4]).toBe(0x10); // extended header
    expect(groups[8]! & 0x0f).toBe(0); // active/optimized
    expect(be16(groups, 10)).toBe(1);
  });
});

describe("reservations between two nexuses", () => {
  const prout = (action: number, type: number, key: bigint, actionKey: bigint, flags = 0) => {
    const p = new Uint8Array(24);
    const dv = new DataView(p.buffer);
    dv.setBigUint64(0, key);
    dv.setBigUint64(8, actionKey);
    p[20] = flags;
    return { cdb: [Opcode.persistentReserveOut, action, type, 0, 0, 0, 0, 0, 24, 0], data: p };
  };
  const read10 = [Opcode.read10, 0, 0, 0, 0, 0, 0, 0, 1, 0];
  const write10 = [Opcode.write10, 0, 0, 0, 0, 0, 0, 0, 1, 0];

  test("RESERVE(6) blocks the other nexus until RELEASE; a reset releases it", async () => {
    const { device, lunStates, run } = setup();
    expect(sense(await run(a, [Opcode.reserve6, 0, 0, 0, 0, 0]))).toBe("good");
    expect((await run(b, read10)).status).toBe(Status.reservationConflict);
    expect(sense(await run(b, [Opcode.inquiry, 0, 0, 0, 36, 0]))).toBe("good");
    expect(sense(await run(a, [Opcode.release6, 0, 0, 0, 0, 0]))).toBe("good");
    expect(sense(await run(b, read10))).toBe("good");
    await run(a, [Opcode.reserve6, 0, 0, 0, 0, 0]);
    lunStates.forgetNexus(a.id); // a logged out
    expect(sense(await run(b, [Opcode.reserve6, 0, 0, 0, 0, 0]))).toBe("good");
    lunStates.get(device).reset();
    await run(a, [Opcode.testUnitReady, 0, 0, 0, 0, 0]);
    expect(sense(await run(a, [Opcode.reserve6, 0, 0, 0, 0, 0]))).toBe("good");
  });

  test("PR: register, WRITE EXCLUSIVE lets others read not write; READ KEYS/RESERVATION/FULL STATUS; PREEMPT; CLEAR", async () => {
    const { run } = setup();
    let x = prout(0, 0, 0n, 0xaan);
    expect(sense(await run(a, x.cdb, x.data))).toBe("good");
    x = prout(0, 0, 0n, 0xbbn);
    expect(sense(await run(b, x.cdb, x.data))).toBe("good");
    x = prout(0, 0, 0x99n, 0xccn); // wrong key
    expect((await run(b, x.cdb, x.data)).status).toBe(Status.reservationConflict);
    x = prout(1, 0x01, 0xaan, 0n); // RESERVE, WRITE EXCLUSIVE
    expect(sense(await run(a, x.cdb, x.data))).toBe("good");
    expect(sense(await run(b, read10))).toBe("good");
    expect((await run(b, write10, fill(512, 0))).status).toBe(Status.reservationConflict);
    expect(sense(await run(a, write10, fill(512, 0)))).toBe("good");
    const keys = (await run(a, [Opcode.persistentReserveIn, 0, 0, 0, 0, 0, 0, 1, 0, 0])).data!;
    expect(be32(keys, 0)).toBe(2); // generation
    expect(be32(keys, 4)).toBe(16);
    const res = (await run(a, [Opcode.persistentReserveIn, 1, 0, 0, 0, 0, 0, 1, 0, 0])).data!;
    expect(be32(res, 12)).toBe(0xaa);
    expect(res[21]).toBe(0x01);
    const full = (await run(a, [Opcode.persistentReserveIn, 3, 0, 0, 0, 0, 0, 1, 0, 0])).data!;
    expect(full[8 + 12]).toBe(1); // first registrant holds it
    expect(new TextDecoder().decode(full.subarray(8 + 28, 8 + 28 + a.initiatorPort.length))).toBe(a.initiatorPort);
    // b preempts a: a's registration goes, b holds EXCLUSIVE ACCESS, a gets REGISTRATIONS PREEMPTED.
    x = prout(4, 0x03, 0xbbn, 0xaan);
    expect(sense(await run(b, x.cdb, x.data))).toBe("good");
    expect(sense(await run(a, read10))).toBe("6/2a/5");
    expect((await run(a, read10)).status).toBe(Status.reservationConflict);
    x = prout(3, 0, 0xbbn, 0n); // CLEAR
    expect(sense(await run(b, x.cdb, x.data))).toBe("good");
    expect(sense(await run(a, write10, fill(512, 0)))).toBe("good");
    const caps = (await run(a, [Opcode.persistentReserveIn, 2, 0, 0, 0, 0, 0, 0, 8, 0])).data!;
    expect(be16(caps, 0)).toBe(8);
  });

  test("PR: REGISTER AND MOVE hands the reservation to the nexus named by a TransportID", async () => {
    const { run } = setup();
    let x = prout(0, 0, 0n, 0xaan);
    await run(a, x.cdb, x.data);
    x = prout(1, 0x01, 0xaan, 0n);
    await run(a, x.cdb, x.data);
    const name = new TextEncoder().encode(b.initiatorPort);
    const tidBytes = (name.length + 1 + 3) & ~3;
    const p = new Uint8Array(24 + 4 + tidBytes);
    const dv = new DataView(p.buffer);
    dv.setBigUint64(0, 0xaan);
    dv.setBigUint64(8, 0xbbn);
    p[17] = 0x02; // UNREG
    dv.setUint16(18, 1);
    dv.setUint32(20, 4 + tidBytes);
    p[24] = 0x45;
    dv.setUint16(26, tidBytes);
    p.set(name, 28);
    expect(sense(await run(a, [Opcode.persistentReserveOut, 7, 0x01, 0, 0, 0, 0, 0, p.length, 0], p))).toBe("good");
    expect(sense(await run(b, write10, fill(512, 0)))).toBe("good");
    expect((await run(a, write10, fill(512, 0))).status).toBe(Status.reservationConflict);
  });

  test("PR: REGISTER with SPEC_I_PT registers this nexus and every one its iSCSI TransportIDs name, or none", async () => {
    const { run } = setup();
    const c = nexusOf(3);
    const transportIds = (...ports: string[]) => {
      const parts = ports.map((port) => {
        const name = new TextEncoder().encode(port);
        const t = new Uint8Array(4 + ((name.length + 1 + 3) & ~3));
        t[0] = 0x45; // FORMAT 01b (port name with ISID), iSCSI
        new DataView(t.buffer).setUint16(2, t.length - 4);
        t.set(name, 4);
        return t;
      });
      const length = parts.reduce((n, t) => n + t.length, 0);
      const p = new Uint8Array(28 + length);
      const dv = new DataView(p.buffer);
      dv.setBigUint64(8, 0x77n);
      p[20] = 0x08 | 0x04; // SPEC_I_PT, ALL_TG_PT
      dv.setUint32(24, length);
      let at = 28;
      for (const t of parts) {
        p.set(t, at);
        at += t.length;
      }
      return { cdb: [Opcode.persistentReserveOut, 0, 0, 0, 0, 0, 0, 0, p.length, 0], data: p };
    };
    const keys = async () => {
      const r = await run(a, [Opcode.persistentReserveIn, 0, 0, 0, 0, 0, 0, 0x10, 0, 0]);
      return be32(r.data!, 4) / 8;
    };
    // A bad TransportID (FORMAT 00b has no ISID here) registers nobody.
    const bad = transportIds(b.initiatorPort);
    bad.data[28] = 0x05;
    expect(sense(await run(a, bad.cdb, bad.data))).toBe("5/26/0");
    expect(await keys()).toBe(0);
    let x = transportIds(b.initiatorPort, c.initiatorPort);
    expect(sense(await run(a, x.cdb, x.data))).toBe("good");
    expect(await keys()).toBe(3);
    // b is registered through a's command: it may reserve with the key.
    const reserve = prout(1, 0x01, 0x77n, 0n);
    expect(sense(await run(b, reserve.cdb, reserve.data))).toBe("good");
    // Registered already: SPEC_I_PT again is refused, as is naming a registered nexus.
    x = transportIds(nexusOf(4).initiatorPort);
    expect(sense(await run(a, x.cdb, x.data))).toBe("5/24/0");
    x = transportIds(c.initiatorPort);
    expect(sense(await run(nexusOf(4), x.cdb, x.data))).toBe("5/26/0");
    expect(await keys()).toBe(3);
    // REPORT CAPABILITIES now says SIP_C.
    const caps = await run(a, [Opcode.persistentReserveIn, 2, 0, 0, 0, 0, 0, 0, 8, 0]);
    expect(caps.data![2]! & 0x08).toBe(0x08);
  });
});
