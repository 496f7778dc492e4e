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
  modeSelect6: 0x15,
  reserve6: 0x16,
  release6: 0x17,
  writeAndVerify10: 0x2e,
  verify10: 0x2f,
  preFetch10: 0x34,
  readDefectData10: 0x37,
  writeSame10: 0x41,
  unmap: 0x42,
  modeSelect10: 0x55,
  reserve10: 0x56,
  release10: 0x57,
  persistentReserveIn: 0x5e,
  persistentReserveOut: 0x5f,
  compareAndWrite: 0x89,
  writeAndVerify16: 0x8e,
  verify16: 0x8f,
  preFetch16: 0x90,
  writeSame16: 0x93,
  maintenanceIn: 0xa3,
  writeAndVerify12: 0xae,
  extendedCopy: 0x83,
  receiveCopyResults: 0x84,
  orWrite: 0x8b,
  verify12: 0xaf,
  readDefectData12: 0xb7,
} as const;

/** SBC-3 §5.23: SERVICE ACTION IN(16) service action of GET LBA STATUS. */
export const serviceActionGetLbaStatus = 0x12;
/** SPC-4 §6.35, §6.37, §6.36: MAINTENANCE IN service actions. */
export const MaintenanceIn = { reportTargetPortGroups: 0x0a, reportSupportedOperationCodes: 0x0c, reportSupportedTaskManagementFunctions: 0x0d } as const;
/** SBC-3 §5.48: WRITE SAME byte 1 bits: NDOB (16 only), UNMAP, ANCHOR. */
const writeSameNdob = 0x01;
const writeSameUnmap = 0x08;
const writeSameAnchor = 0x10;
/** SBC-3 §5.27: UNMAP byte 1 bit 0: ANCHOR. */
const unmapAnchor = 0x01;

/** SPC-4 §6.3: EXTENDED COPY service action 00h is the LID1 form (01h, LID4, is not supported). */
export const serviceActionExtendedCopyLid1 = 0x00;
/** SPC-4 §6.18: RECEIVE COPY RESULTS service actions for LID1 copies. */
export const CopyResults = { copyStatus: 0x00, receiveData: 0x01, operatingParameters: 0x03, failedSegmentDetails: 0x04 } as const;

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

/** MODE SENSE(6/10)'s fields (SPC-4 §6.11, §6.12), as commands/mode-sense.ts takes them. */
export interface ModeSenseCommand {
  readonly tenByte: boolean;
  readonly disableBlockDescriptors: boolean;
  readonly longLba: boolean;
  readonly pageControl: number;
  readonly page: number;
  readonly subpage: number;
  readonly allocationBytes: number;
}

export type Command =
  | ReadWriteCommand
  | { readonly kind: "test-unit-ready" }
  | { readonly kind: "request-sense"; readonly descriptorFormat: boolean; readonly allocationBytes: number }
  | { readonly kind: "inquiry"; readonly evpd: boolean; readonly page: number; readonly allocationBytes: number }
  | ({ readonly kind: "mode-sense" } & ModeSenseCommand)
  | { readonly kind: "read-capacity-10" }
  | { readonly kind: "read-capacity-16"; readonly allocationBytes: number }
  | { readonly kind: "synchronize-cache"; readonly lba: number; readonly blocks: number }
  | { readonly kind: "report-luns"; readonly selectReport: number; readonly allocationBytes: number }
  | { readonly kind: "start-stop-unit" }
  | { readonly kind: "prevent-allow-medium-removal" }
  | { readonly kind: "verify"; readonly opcode: number; readonly lba: number; readonly blocks: number; readonly byteCheck: number; readonly protect: number }
  | { readonly kind: "pre-fetch"; readonly lba: number; readonly blocks: number }
  | { readonly kind: "write-same"; readonly lba: number; readonly blocks: number; readonly unmap: boolean; readonly anchor: boolean; readonly noDataOut: boolean; readonly protect: number }
  | { readonly kind: "unmap"; readonly anchor: boolean; readonly parameterBytes: number }
  | { readonly kind: "get-lba-status"; readonly lba: number; readonly allocationBytes: number }
  | { readonly kind: "compare-and-write"; readonly lba: number; readonly blocks: number; readonly fua: boolean; readonly protect: number }
  | { readonly kind: "or-write"; readonly lba: number; readonly blocks: number; readonly fua: boolean; readonly protect: number }
  | { readonly kind: "extended-copy"; readonly parameterBytes: number }
  | { readonly kind: "receive-copy-results"; readonly serviceAction: number; readonly listId: number; readonly allocationBytes: number }
  | { readonly kind: "mode-select"; readonly tenByte: boolean; readonly pageFormat: boolean; readonly savePages: boolean; readonly parameterBytes: number }
  | { readonly kind: "report-supported-opcodes"; readonly rctd: boolean; readonly options: number; readonly opcode: number; readonly serviceAction: number; readonly allocationBytes: number }
  | { readonly kind: "report-supported-tmf"; readonly extended: boolean; readonly allocationBytes: number }
  | { readonly kind: "report-target-port-groups"; readonly extended: boolean; readonly allocationBytes: number }
  | { readonly kind: "read-defect-data"; readonly tenByte: boolean; readonly format: number; readonly allocationBytes: number }
  | { readonly kind: "reserve" }
  | { readonly kind: "release" }
  | { readonly kind: "persistent-reserve-in"; readonly serviceAction: number; readonly allocationBytes: number }
  | { readonly kind: "persistent-reserve-out"; readonly serviceAction: number; readonly scope: number; readonly type: number; readonly parameterBytes: number }
  | { readonly kind: "unsupported"; readonly opcode: number }
  | { readonly kind: "invalid"; readonly sense: AdditionalSense };

const invalidField: Command = { kind: "invalid", sense: Asc.invalidFieldInCdb };

// DPO (byte 1 bit 4) is accepted and ignored: a cache retention hint (SBC-3 §5.11), not a
// correctness bit.
function readWrite(kind: "read" | "write", cdb: Uint8Array, lba: number, blocks: number): ReadWriteCommand {
  const flags = cdb[1] as number;
  return { kind, opcode: cdb[0] as number, lba, blocks, fua: (flags & rwFuaBit) !== 0, protect: flags >>> 5 };
}

function verify(cdb: Uint8Array, lba: number, blocks: number): Command {
  const flags = cdb[1] as number;
  // SBC-3 §5.29: BYTCHK (bits 2..1) 00b checks the medium, 01b compares with Data-Out,
  // 11b compares every block with one block of Data-Out; 10b is reserved.
  const byteCheck = (flags >>> 1) & 0x03;
  if (byteCheck === 2) return invalidField;
  return { kind: "verify", opcode: cdb[0] as number, lba, blocks, byteCheck, protect: flags >>> 5 };
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
      switch ((cdb[1] as number) & 0x1f) {
        case serviceActionReadCapacity16:
          return { kind: "read-capacity-16", allocationBytes: be32(cdb, 10) };
        case serviceActionGetLbaStatus:
          return { kind: "get-lba-status", lba: be64(cdb, 2), allocationBytes: be32(cdb, 10) };
        default:
          return invalidField;
      }
    case Opcode.writeAndVerify10:
      return { ...readWrite("write", cdb, be32(cdb, 2), be16(cdb, 7)), fua: true };
    case Opcode.writeAndVerify12:
      return { ...readWrite("write", cdb, be32(cdb, 2), be32(cdb, 6)), fua: true };
    case Opcode.writeAndVerify16:
      return { ...readWrite("write", cdb, be64(cdb, 2), be32(cdb, 10)), fua: true };
    case Opcode.verify10:
      return verify(cdb, be32(cdb, 2), be16(cdb, 7));
    case Opcode.verify12:
      return verify(cdb, be32(cdb, 2), be32(cdb, 6));
    case Opcode.verify16:
      return verify(cdb, be64(cdb, 2), be32(cdb, 10));
    case Opcode.preFetch10:
      return { kind: "pre-fetch", lba: be32(cdb, 2), blocks: be16(cdb, 7) };
    case Opcode.preFetch16:
      return { kind: "pre-fetch", lba: be64(cdb, 2), blocks: be32(cdb, 10) };
    case Opcode.writeSame10:
    case Opcode.writeSame16: {
      const flags = cdb[1] as number;
      const ten = opcode === Opcode.writeSame10;
      // NDOB exists only in WRITE SAME(16); in (10) bit 0 is reserved (SBC-3 §5.47).
      if (ten && (flags & writeSameNdob) !== 0) return invalidField;
      return {
        kind: "write-same",
        lba: ten ? be32(cdb, 2) : be64(cdb, 2),
        blocks: ten ? be16(cdb, 7) : be32(cdb, 10),
        unmap: (flags & writeSameUnmap) !== 0,
        anchor: (flags & writeSameAnchor) !== 0,
        noDataOut: (flags & writeSameNdob) !== 0,
        protect: flags >>> 5,
      };
    }
    case Opcode.unmap:
      return { kind: "unmap", anchor: ((cdb[1] as number) & unmapAnchor) !== 0, parameterBytes: be16(cdb, 7) };
    case Opcode.compareAndWrite: {
      const flags = cdb[1] as number;
      return { kind: "compare-and-write", lba: be64(cdb, 2), blocks: cdb[13] as number, fua: (flags & rwFuaBit) !== 0, protect: flags >>> 5 };
    }
    case Opcode.orWrite: {
      // SBC-3 §5.12 ORWRITE(16): ORPROTECT, DPO, FUA in byte 1 as in WRITE(16).
      const flags = cdb[1] as number;
      return { kind: "or-write", lba: be64(cdb, 2), blocks: be32(cdb, 10), fua: (flags & rwFuaBit) !== 0, protect: flags >>> 5 };
    }
    case Opcode.extendedCopy:
      if (((cdb[1] as number) & 0x1f) !== serviceActionExtendedCopyLid1) return invalidField;
      return { kind: "extended-copy", parameterBytes: be32(cdb, 10) };
    case Opcode.receiveCopyResults:
      return { kind: "receive-copy-results", serviceAction: (cdb[1] as number) & 0x1f, listId: cdb[2] as number, allocationBytes: be32(cdb, 10) };
    case Opcode.modeSelect6:
    case Opcode.modeSelect10: {
      const tenByte = opcode === Opcode.modeSelect10;
      const flags = cdb[1] as number;
      return { kind: "mode-select", tenByte, pageFormat: (flags & 0x10) !== 0, savePages: (flags & 0x01) !== 0, parameterBytes: tenByte ? be16(cdb, 7) : (cdb[4] as number) };
    }
    case Opcode.maintenanceIn: {
      const action = (cdb[1] as number) & 0x1f;
      switch (action) {
        case MaintenanceIn.reportSupportedOperationCodes:
          return {
            kind: "report-supported-opcodes",
            rctd: ((cdb[2] as number) & 0x80) !== 0,
            options: (cdb[2] as number) & 0x07,
            opcode: cdb[3] as number,
            serviceAction: be16(cdb, 4),
            allocationBytes: be32(cdb, 6),
          };
        case MaintenanceIn.reportSupportedTaskManagementFunctions:
          return { kind: "report-supported-tmf", extended: ((cdb[2] as number) & 0x80) !== 0, allocationBytes: be32(cdb, 6) };
        case MaintenanceIn.reportTargetPortGroups:
          return { kind: "report-target-port-groups", extended: (cdb[1] as number) >>> 5 === 1, allocationBytes: be32(cdb, 6) };
        default:
          return invalidField;
      }
    }
    case Opcode.readDefectData10:
      return { kind: "read-defect-data", tenByte: true, format: cdb[2] as number, allocationBytes: be16(cdb, 7) };
    case Opcode.readDefectData12:
      return { kind: "read-defect-data", tenByte: false, format: cdb[1] as number, allocationBytes: be32(cdb, 6) };
    case Opcode.reserve6:
    case Opcode.reserve10:
    case Opcode.release6:
    case Opcode.release10: {
      // SPC-2 §7.21: third-party reservations (3RDPTY, byte 1 bit 4 of the 10-byte forms) and
      // the obsolete extent bit (bit 0 of the 6-byte forms) are not supported.
      const ten = opcode === Opcode.reserve10 || opcode === Opcode.release10;
      if (((cdb[1] as number) & (ten ? 0x10 : 0x01)) !== 0) return invalidField;
      return { kind: opcode === Opcode.reserve6 || opcode === Opcode.reserve10 ? "reserve" : "release" };
    }
    case Opcode.persistentReserveIn:
      return { kind: "persistent-reserve-in", serviceAction: (cdb[1] as number) & 0x1f, allocationBytes: be16(cdb, 7) };
    case Opcode.persistentReserveOut:
      return { kind: "persistent-reserve-out", serviceAction: (cdb[1] as number) & 0x1f, scope: (cdb[2] as number) >>> 4, type: (cdb[2] as number) & 0x0f, parameterBytes: be32(cdb, 5) };
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
