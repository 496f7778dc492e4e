// CDB decoding (SPC-4 §4.2, SBC-3 §5): turns the bytes of a Command Descriptor Block into a
// typed command. Pure and allocation-light: it never touches a device and never throws for bad
// input; a CDB with a bad field decodes to `{ kind: "invalid" }` with the sense to return.
import { assert } from "../util/assert.ts";
import { be16, be32, be64 } from "./bytes.ts";
import { Asc, type AdditionalSense } from "./sense.ts";

/** Operation codes (SPC-4 annex D, SBC-3 table 16). */
export const Opcode = {
  testUnitReady: 0x00,
  requestSense: 0x03,
  read6: 0x08,
  write6: 0x0a,
  inquiry: 0x12,
  modeSense6: 0x1a,
  startStopUnit: 0x1b,
  preventAllowMediumRemoval: 0x1e,
  readCapacity10: 0x25,
  read10: 0x28,
  write10: 0x2a,
  synchronizeCache10: 0x35,
  modeSense10: 0x5a,
  read16: 0x88,
  write16: 0x8a,
  synchronizeCache16: 0x91,
  serviceActionIn16: 0x9e,
  reportLuns: 0xa0,
  read12: 0xa8,
  write12: 0xaa,
} as const;

/** SBC-3 §5.16: SERVICE ACTION IN(16) service action of READ CAPACITY(16). */
export const serviceActionReadCapacity16 = 0x10;
/** SAM-5 §5.2 CONTROL byte bit 2: NACA, which this target does not support. */
const controlNaca = 0x04;
/** SBC-3 §5.15/§5.47: a READ(6)/WRITE(6) TRANSFER LENGTH of 0 means 256 blocks. */
const sixByteZeroBlocks = 256;
/** SBC-3 §5.11: the FUA bit (byte 1 bit 3) of READ/WRITE 10/12/16. */
const rwFuaBit = 0x08;

/** Bytes of a CDB by its group code (opcode bits 7..5), SPC-4 §4.2.5.1; 0 for reserved groups. */
export function cdbBytes(opcode: number): number {
  switch (opcode >>> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return 0;
  }
}

export interface ReadWriteCommand {
  readonly kind: "read" | "write";
  readonly opcode: number;
  readonly lba: number;
  readonly blocks: number;
  readonly fua: boolean;
  /** RDPROTECT/WRPROTECT: must be 0 on a LUN without protection information. */
  readonly protect: number;
}

export type Command =
  | ReadWriteCommand
  | { readonly kind: "test-unit-ready" }
  | { readonly kind: "request-sense"; readonly descriptorFormat: boolean; readonly allocationBytes: number }
  | { readonly kind: "inquiry"; readonly evpd: boolean; readonly page: number; readonly allocationBytes: number }
  | {
      readonly kind: "mode-sense";
      readonly tenByte: boolean;
      readonly disableBlockDescriptors: boolean;
      readonly longLba: boolean;
      readonly pageControl: number;
      readonly page: number;
      readonly subpage: number;
      readonly allocationBytes: number;
    }
  | { readonly kind: "read-capacity-10" }
  | { readonly kind: "read-capacity-16"; readonly allocationBytes: number }
  | { readonly kind: "synchronize-cache"; readonly lba: number; readonly blocks: number }
  | { readonly kind: "report-luns"; readonly selectReport: number; readonly allocationBytes: number }
  | { readonly kind: "start-stop-unit" }
  | { readonly kind: "prevent-allow-medium-removal" }
  | { readonly kind: "unsupported"; readonly opcode: number }
  | { readonly kind: "invalid"; readonly sense: AdditionalSense };

const invalidField: Command = { kind: "invalid", sense: Asc.invalidFieldInCdb };

// DPO (byte 1 bit 4) is accepted and ignored: a cache retention hint (SBC-3 §5.11), not a
// correctness bit.
function readWrite(kind: "read" | "write", cdb: Uint8Array, lba: number, blocks: number): ReadWriteCommand {
  const flags = cdb[1] as number;
  return { kind, opcode: cdb[0] as number, lba, blocks, fua: (flags & rwFuaBit) !== 0, protect: flags >>> 5 };
}

/** Decodes a CDB (`cdb` holds at least 16 bytes: the iSCSI BHS's CDB field). */
export function decodeCdb(cdb: Uint8Array): Command {
  assert(cdb.length >= 16, "a CDB field holds 16 bytes");
  const opcode = cdb[0] as number;
  const length = cdbBytes(opcode);
  if (length === 0) return { kind: "unsupported", opcode };
  if (((cdb[length - 1] as number) & controlNaca) !== 0) return invalidField;
  switch (opcode) {
    case Opcode.testUnitReady:
      return { kind: "test-unit-ready" };
    case Opcode.requestSense:
      return { kind: "request-sense", descriptorFormat: ((cdb[1] as number) & 0x01) !== 0, allocationBytes: cdb[4] as number };
    case Opcode.read6:
    case Opcode.write6: {
      const blocks = cdb[4] === 0 ? sixByteZeroBlocks : (cdb[4] as number);
      const lba = (((cdb[1] as number) & 0x1f) << 16) | be16(cdb, 2);
      // READ(6)/WRITE(6) have no FUA or PROTECT fields.
      return { kind: opcode === Opcode.read6 ? "read" : "write", opcode, lba, blocks, fua: false, protect: 0 };
    }
    case Opcode.read10:
    case Opcode.write10:
      return readWrite(opcode === Opcode.read10 ? "read" : "write", cdb, be32(cdb, 2), be16(cdb, 7));
    case Opcode.read12:
    case Opcode.write12:
      return readWrite(opcode === Opcode.read12 ? "read" : "write", cdb, be32(cdb, 2), be32(cdb, 6));
    case Opcode.read16:
    case Opcode.write16:
      return readWrite(opcode === Opcode.read16 ? "read" : "write", cdb, be64(cdb, 2), be32(cdb, 10));
    case Opcode.inquiry: {
      const evpd = ((cdb[1] as number) & 0x01) !== 0;
      // SPC-4 §6.6.1: CMDDT (bit 1) is obsolete and must be zero; a page code without EVPD is invalid.
      if (((cdb[1] as number) & 0x02) !== 0) return invalidField;
      if (!evpd && cdb[2] !== 0) return invalidField;
      return { kind: "inquiry", evpd, page: cdb[2] as number, allocationBytes: be16(cdb, 3) };
    }
    case Opcode.modeSense6:
    case Opcode.modeSense10: {
      const tenByte = opcode === Opcode.modeSense10;
      return {
        kind: "mode-sense",
        tenByte,
        disableBlockDescriptors: ((cdb[1] as number) & 0x08) !== 0,
        longLba: tenByte && ((cdb[1] as number) & 0x10) !== 0,
        pageControl: (cdb[2] as number) >>> 6,
        page: (cdb[2] as number) & 0x3f,
        subpage: cdb[3] as number,
        allocationBytes: tenByte ? be16(cdb, 7) : (cdb[4] as number),
      };
    }
    case Opcode.readCapacity10:
      // SBC-3 §5.17: the PMI bit and LOGICAL BLOCK ADDRESS are obsolete; an LBA without PMI is invalid.
      if (((cdb[8] as number) & 0x01) === 0 && be32(cdb, 2) !== 0) return invalidField;
      return { kind: "read-capacity-10" };
    case Opcode.serviceActionIn16:
      if (((cdb[1] as number) & 0x1f) !== serviceActionReadCapacity16) return invalidField;
      return { kind: "read-capacity-16", allocationBytes: be32(cdb, 10) };
    case Opcode.synchronizeCache10:
      return { kind: "synchronize-cache", lba: be32(cdb, 2), blocks: be16(cdb, 7) };
    case Opcode.synchronizeCache16:
      return { kind: "synchronize-cache", lba: be64(cdb, 2), blocks: be32(cdb, 10) };
    case Opcode.reportLuns:
      return { kind: "report-luns", selectReport: cdb[2] as number, allocationBytes: be32(cdb, 6) };
    case Opcode.startStopUnit:
      return { kind: "start-stop-unit" };
    case Opcode.preventAllowMediumRemoval:
      return { kind: "prevent-allow-medium-removal" };
    default:
      return { kind: "unsupported", opcode };
  }
}

export function isReadWrite(command: Command): command is ReadWriteCommand {
  return command.kind === "read" || command.kind === "write";
}
