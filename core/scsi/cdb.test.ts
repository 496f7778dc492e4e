// decodeCdb(): every opcode this target knows, its fields, and bad CDBs.
import { describe, expect, test } from "bun:test";
import { Opcode, cdbBytes, decodeCdb } from "./cdb.ts";
import { Asc } from "./sense.ts";

function cdb(bytes: number[]): Uint8Array {
  const out = new Uint8Array(16);
  out.set(bytes);
  return out;
}

describe("decodeCdb()", () => {
  test("READ(6)/WRITE(6): 21-bit LBA, 0 blocks means 256, no FUA", () => {
    expect(decodeCdb(cdb([Opcode.read6, 0x1f, 0xff, 0xfe, 0, 0]))).toEqual({ kind: "read", opcode: Opcode.read6, lba: 0x1ffffe, blocks: 256, fua: false, protect: 0 });
    expect(decodeCdb(cdb([Opcode.write6, 0xe1, 0, 2, 8, 0]))).toEqual({ kind: "write", opcode: Opcode.write6, lba: 0x10002, blocks: 8, fua: false, protect: 0 });
  });

  test("READ/WRITE 10, 12 and 16: LBA, blocks, FUA and PROTECT", () => {
    expect(decodeCdb(cdb([Opcode.read10, 0x08, 0x12, 0x34, 0x56, 0x78, 0, 0x01, 0x00, 0]))).toEqual({ kind: "read", opcode: Opcode.read10, lba: 0x12345678, blocks: 256, fua: true, protect: 0 });
    expect(decodeCdb(cdb([Opcode.write10, 0x20, 0, 0, 0, 1, 0, 0, 0, 0]))).toMatchObject({ kind: "write", protect: 1, fua: false, blocks: 0 });
    expect(decodeCdb(cdb([Opcode.write12, 0x08, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0]))).toMatchObject({ kind: "write", lba: 256, blocks: 65536, fua: true });
    expect(decodeCdb(cdb([Opcode.read16, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0]))).toMatchObject({ kind: "read", lba: 2 ** 32, blocks: 9 });
    expect(decodeCdb(cdb([Opcode.write16, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0]))).toMatchObject({ kind: "write", fua: true, blocks: 1 });
    const huge = decodeCdb(cdb([Opcode.read16, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0]));
    expect(huge.kind === "read" && huge.lba > 2 ** 60).toBe(true);
  });

  test("INQUIRY: EVPD, page code and allocation length; a page without EVPD is invalid", () => {
    expect(decodeCdb(cdb([Opcode.inquiry, 1, 0x83, 0x01, 0x00, 0]))).toEqual({ kind: "inquiry", evpd: true, page: 0x83, allocationBytes: 256 });
    expect(decodeCdb(cdb([Opcode.inquiry, 0, 0x83, 0, 255, 0]))).toEqual({ kind: "invalid", sense: Asc.invalidFieldInCdb });
    expect(decodeCdb(cdb([Opcode.inquiry, 2, 0, 0, 255, 0]))).toEqual({ kind: "invalid", sense: Asc.invalidFieldInCdb });
  });

  test("MODE SENSE(6)/(10): DBD, LLBAA, page control, page, subpage, allocation", () => {
    expect(decodeCdb(cdb([Opcode.modeSense6, 0x08, 0x7f, 0xff, 200, 0]))).toEqual({ kind: "mode-sense", tenByte: false, disableBlockDescriptors: true, longLba: false, pageControl: 1, page: 0x3f, subpage: 0xff, allocationBytes: 200 });
    expect(decodeCdb(cdb([Opcode.modeSense10, 0x10, 0x08, 0, 0, 0, 0, 0x10, 0x00, 0]))).toMatchObject({ tenByte: true, longLba: true, pageControl: 0, page: 8, allocationBytes: 4096 });
  });

  test("READ CAPACITY(10)/(16), SYNCHRONIZE CACHE(10)/(16), REPORT LUNS", () => {
    expect(decodeCdb(cdb([Opcode.readCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toEqual({ kind: "read-capacity-10" });
    expect(decodeCdb(cdb([Opcode.readCapacity10, 0, 0, 0, 0, 5, 0, 0, 0, 0]))).toEqual({ kind: "invalid", sense: Asc.invalidFieldInCdb });
    expect(decodeCdb(cdb([Opcode.serviceActionIn16, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]))).toEqual({ kind: "read-capacity-16", allocationBytes: 32 });
    expect(decodeCdb(cdb([Opcode.serviceActionIn16, 0x12, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 64, 0, 0]))).toEqual({ kind: "get-lba-status", lba: 5, allocationBytes: 64 });
    expect(decodeCdb(cdb([Opcode.serviceActionIn16, 0x13]))).toEqual({ kind: "invalid", sense: Asc.invalidFieldInCdb });
    expect(decodeCdb(cdb([Opcode.synchronizeCache10, 0, 0, 0, 0, 10, 0, 0, 5, 0]))).toEqual({ kind: "synchronize-cache", lba: 10, blocks: 5 });
    expect(decodeCdb(cdb([Opcode.synchronizeCache16, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0]))).toEqual({ kind: "synchronize-cache", lba: 7, blocks: 3 });
    expect(decodeCdb(cdb([Opcode.reportLuns, 0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0]))).toEqual({ kind: "report-luns", selectReport: 2, allocationBytes: 256 });
  });

  test("an unknown opcode decodes as unsupported; NACA in CONTROL is an invalid field", () => {
    expect(decodeCdb(cdb([0x3b]))).toEqual({ kind: "unsupported", opcode: 0x3b }); // WRITE BUFFER
    expect(decodeCdb(cdb([0xc0]))).toEqual({ kind: "unsupported", opcode: 0xc0 }); // vendor-specific group
    expect(decodeCdb(cdb([Opcode.testUnitReady, 0, 0, 0, 0, 0x04]))).toEqual({ kind: "invalid", sense: Asc.invalidFieldInCdb });
    expect(decodeCdb(cdb([Opcode.read10, 0, 0, 0, 0, 0, 0, 0, 1, 0x04]))).toEqual({ kind: "invalid", sense: Asc.invalidFieldInCdb });
  });

  test("cdbBytes() follows the group code", () => {
    expect([0x00, 0x28, 0x5a, 0x88, 0xa0, 0x7f, 0xc0].map(cdbBytes)).toEqual([6, 10, 10, 16, 12, 0, 0]);
  });
});
