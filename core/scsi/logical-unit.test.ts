// executeCommand(): the SCSI block commands against an in-memory device, sync and async.
import { describe, expect, test } from "bun:test";
import { MemoryBlockDevice } from "../../test/iscsi-mem-target.ts";
import { be16, be32 } from "./bytes.ts";
import { Opcode, decodeCdb } from "./cdb.ts";
import { naaDesignator } from "./commands/inquiry.ts";
import { decodeLun, encodeLun, reportLunsWellKnownLun } from "./commands/report-luns.ts";
import { executeCommand, type ScsiPort } from "./logical-unit.ts";
import { LunStateTable, type Nexus } from "./lun-state.ts";
import { SenseKey, Status, type ScsiResult } from "./sense.ts";

const port: ScsiPort = { targetName: "iqn.2026-11.org.qstora:t", relativePortId: 1, lunNumbers: () => [0, 3] };
const uuid = "0123456789abcdef0123456789abcdef";
const nexus: Nexus = { id: "iqn.2026-11.org.qstora:i,i,0x000000000001|1", initiatorPort: "iqn.2026-11.org.qstora:i,i,0x000000000001", relativePortId: 1 };
const lunStates = new LunStateTable();

function cdb(bytes: number[]): Uint8Array {
  const out = new Uint8Array(16);
  out.set(bytes);
  return out;
}

async function run(device: MemoryBlockDevice | undefined, bytes: number[], options: { dataOut?: Uint8Array; edtl?: number } = {}): Promise<ScsiResult> {
  return await executeCommand({ command: decodeCdb(cdb(bytes)), device, port, dataOut: options.dataOut ?? null, dataInBytesMax: options.edtl ?? 1 << 20, nexus, lunStates });
}

const sense = (r: ScsiResult): string => (r.sense === undefined ? "none" : `${r.sense.key}/${r.sense.asc.toString(16)}/${r.sense.ascq}`);

for (const async of [false, true]) {
  describe(`executeCommand() on a ${async ? "asynchronous" : "synchronous"} device`, () => {
    const fresh = () => new MemoryBlockDevice({ sizeBytes: 1 << 20, uuid, async });

    test("answers synchronously exactly when the device does", () => {
      const r = executeCommand({ command: decodeCdb(cdb([Opcode.read10, 0, 0, 0, 0, 0, 0, 0, 1, 0])), device: fresh(), port, dataOut: null, dataInBytesMax: 512, nexus, lunStates });
      expect(r instanceof Promise).toBe(async);
    });

    test("WRITE then READ returns the data; FUA reaches the device", async () => {
      const d = fresh();
      const data = Uint8Array.from({ length: 1024 }, (_, i) => i & 0xff);
      const w = await run(d, [Opcode.write10, 0x08, 0, 0, 0, 4, 0, 0, 2, 0], { dataOut: data });
      expect(w.status).toBe(Status.good);
      expect(w.scsiBytes).toBe(1024);
      expect(d.fuaWrites).toBe(1);
      const r = await run(d, [Opcode.read16, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0]);
      expect([...(r.data ?? [])]).toEqual([...data]);
    });

    test("a READ reads only what the initiator will take", async () => {
      const r = await run(fresh(), [Opcode.read10, 0, 0, 0, 0, 0, 0, 0, 4, 0], { edtl: 200 });
      expect(r.data?.length).toBe(200);
      expect(r.scsiBytes).toBe(2048);
    });

    test("LBA out of range, also with zero blocks past the end", async () => {
      expect(sense(await run(fresh(), [Opcode.read10, 0, 0, 0, 0x08, 0x00, 0, 0, 1, 0]))).toBe("5/21/0"); // LBA 2048 of 2048
      expect(sense(await run(fresh(), [Opcode.write10, 0, 0, 0, 0x07, 0xff, 0, 0, 2, 0], { dataOut: new Uint8Array(1024) }))).toBe("5/21/0");
      expect(sense(await run(fresh(), [Opcode.read10, 0, 0, 0, 0x08, 0x01, 0, 0, 0, 0]))).toBe("5/21/0");
      expect((await run(fresh(), [Opcode.read10, 0, 0, 0, 0x08, 0x00, 0, 0, 0, 0])).status).toBe(Status.good);
      expect(sense(await run(fresh(), [Opcode.read16, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0]))).toBe("5/21/0");
    });

    test("RDPROTECT without protection information is an invalid field", async () => {
      expect(sense(await run(fresh(), [Opcode.read10, 0x20, 0, 0, 0, 0, 0, 0, 1, 0]))).toBe("5/24/0");
    });

    test("a medium error becomes MEDIUM ERROR / UNRECOVERED READ ERROR with the LBA in INFORMATION", async () => {
      const d = fresh();
      d.badOffsets.add(5 * 512 + 17);
      const r = await run(d, [Opcode.read10, 0, 0, 0, 0, 2, 0, 0, 8, 0]);
      expect(r.status).toBe(Status.checkCondition);
      expect(r.sense).toEqual({ key: SenseKey.mediumError, asc: 0x11, ascq: 0, information: 5 });
    });

    test("a Data-Out shorter than the CDB: whole blocks are written, a partial block is refused", async () => {
      const d = fresh();
      const w = await run(d, [Opcode.write10, 0, 0, 0, 0, 0, 0, 0, 2, 0], { dataOut: new Uint8Array(512).fill(7) });
      expect(w.status).toBe(Status.good);
      expect(d.bytes[511]).toBe(7);
      expect(d.bytes[512]).toBe(0);
      const partial = await run(d, [Opcode.write10, 0, 0, 0, 0, 8, 0, 0, 1, 0], { dataOut: new Uint8Array(200).fill(9) });
      expect(sense(partial)).toBe("5/e/3");
      expect(partial.scsiBytes).toBe(512);
      expect(d.bytes[8 * 512]).toBe(0);
    });

    test("SYNCHRONIZE CACHE flushes; past the end it is out of range", async () => {
      const d = fresh();
      expect((await run(d, [Opcode.synchronizeCache10, 0, 0, 0, 0, 0, 0, 0, 0, 0])).status).toBe(Status.good);
      expect((await run(d, [Opcode.synchronizeCache16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0])).status).toBe(Status.good);
      expect(d.flushes).toBe(2);
      expect(sense(await run(d, [Opcode.synchronizeCache10, 0, 0, 0, 0x07, 0xff, 0, 0, 2, 0]))).toBe("5/21/0");
    });
  });
}

describe("executeCommand() other commands", () => {
  const d = new MemoryBlockDevice({ sizeBytes: 1 << 20, uuid });

  test("standard INQUIRY: direct access, SPC-4, cut to the allocation length", async () => {
    const r = await run(d, [Opcode.inquiry, 0, 0, 0, 36, 0]);
    expect(r.data?.length).toBe(36);
    expect(r.data?.[0]).toBe(0);
    expect(r.data?.[2]).toBe(6);
    expect(new TextDecoder().decode(r.data?.subarray(8, 16))).toBe("QSTORA  ");
  });

  test("INQUIRY on a LUN without a logical unit: qualifier 3, device type 1Fh; VPD refused", async () => {
    expect((await run(undefined, [Opcode.inquiry, 0, 0, 0, 96, 0])).data?.[0]).toBe(0x7f);
    expect(sense(await run(undefined, [Opcode.inquiry, 1, 0x80, 0, 96, 0]))).toBe("5/25/0");
    expect(sense(await run(undefined, [Opcode.testUnitReady, 0, 0, 0, 0, 0]))).toBe("5/25/0");
  });

  test("VPD 00h lists pages in ascending order, 80h is the uuid, B0h is 3Ch long", async () => {
    const pages = (await run(d, [Opcode.inquiry, 1, 0, 0, 255, 0])).data!;
    const list = [...pages.subarray(4, 4 + be16(pages, 2))];
    expect(list).toEqual([...list].sort((a, b) => a - b));
    expect(new TextDecoder().decode((await run(d, [Opcode.inquiry, 1, 0x80, 0, 255, 0])).data!.subarray(4))).toBe(uuid);
    expect(be16((await run(d, [Opcode.inquiry, 1, 0xb0, 0, 255, 0])).data!, 2)).toBe(0x3c);
    expect(sense(await run(d, [Opcode.inquiry, 1, 0x99, 0, 255, 0]))).toBe("5/24/0");
  });

  test("VPD 83h carries an NAA designator from the uuid and the target name", async () => {
    const page = (await run(d, [Opcode.inquiry, 1, 0x83, 0x01, 0, 0])).data!;
    const designators: Array<{ type: number; assoc: number; body: Uint8Array }> = [];
    for (let at = 4; at < 4 + be16(page, 2); ) {
      const length = page[at + 3]!;
      designators.push({ type: page[at + 1]! & 0x0f, assoc: (page[at + 1]! >> 4) & 3, body: page.subarray(at + 4, at + 4 + length) });
      at += 4 + length;
    }
    const naa = designators.find((x) => x.type === 3);
    expect([...naa!.body]).toEqual([...naaDesignator(uuid)]);
    expect(naa!.body[0]! >> 4).toBe(3);
    const name = designators.find((x) => x.type === 8 && x.assoc === 2);
    expect(new TextDecoder().decode(name!.body).replace(/\0+$/, "")).toBe(port.targetName);
  });

  test("READ CAPACITY(10)/(16) report the last LBA and block size", async () => {
    const r10 = (await run(d, [Opcode.readCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0])).data!;
    expect(be32(r10, 0)).toBe(2047);
    expect(be32(r10, 4)).toBe(512);
    const r16 = (await run(d, [Opcode.serviceActionIn16, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0])).data!;
    expect(be32(r16, 4)).toBe(2047);
    expect(r16[13]).toBe(3); // 8 logical blocks per 4 KiB physical block
  });

  test("MODE SENSE: caching page with WCE, all pages, DBD, changeable values, saved values", async () => {
    const caching = (await run(d, [Opcode.modeSense6, 0x08, 0x08, 0, 255, 0])).data!;
    expect(caching[3]).toBe(0); // no block descriptor with DBD
    expect(caching[4]! & 0x3f).toBe(0x08);
    expect(caching[6]! & 0x04).toBe(0x04);
    const all = (await run(d, [Opcode.modeSense10, 0, 0x3f, 0, 0, 0, 0, 0x10, 0, 0])).data!;
    expect(be16(all, 0)).toBe(all.length - 2);
    expect(be16(all, 6)).toBe(8);
    const changeable = (await run(d, [Opcode.modeSense6, 0x08, 0x48, 0, 255, 0])).data!;
    expect(changeable[6]! & 0x05).toBe(0x05); // WCE and RCD are changeable
    expect((await run(d, [Opcode.modeSense6, 0x08, 0xc8, 0, 255, 0])).data![6]! & 0x04).toBe(0x04);
    expect(sense(await run(d, [Opcode.modeSense6, 0, 0x19, 0, 255, 0]))).toBe("5/24/0");
  });

  test("REPORT LUNS answers on any LUN; too small an allocation is refused", async () => {
    const r = (await run(undefined, [Opcode.reportLuns, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])).data!;
    expect(be32(r, 0)).toBe(16);
    expect(r[9]).toBe(0);
    expect(r[17]).toBe(3);
    expect(sense(await run(undefined, [Opcode.reportLuns, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]))).toBe("5/24/0");
    expect(be32((await run(undefined, [Opcode.reportLuns, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0])).data!, 0)).toBe(0);
  });

  test("REQUEST SENSE reports NO SENSE; unknown opcodes are INVALID COMMAND OPERATION CODE", async () => {
    const r = await run(d, [Opcode.requestSense, 0, 0, 0, 252, 0]);
    expect(r.data?.[0]).toBe(0x70);
    expect(r.data?.[2]).toBe(SenseKey.noSense);
    expect(sense(await run(d, [0x3b, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toBe("5/20/0");
  });

  test("LUN fields: peripheral and flat addressing round-trip; the REPORT LUNS well-known LUN decodes", () => {
    const b = new Uint8Array(8);
    for (const lun of [0, 1, 255, 256, 16383]) {
      encodeLun(lun, b, 0);
      expect(decodeLun(b, 0)).toBe(lun);
    }
    expect(decodeLun(Uint8Array.from([0xc1, 0x01, 0, 0, 0, 0, 0, 0]), 0)).toBe(reportLunsWellKnownLun);
    expect(decodeLun(Uint8Array.from([0x00, 0x01, 0, 1, 0, 0, 0, 0]), 0)).toBe(-1);
  });
});
