// REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35), REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS
// (SPC-4 §6.37), REPORT TARGET PORT GROUPS (SPC-4 §6.36) and READ DEFECT DATA (SBC-3 §5.18-19,
// always an empty list). Pure: builds bytes from the table below, which must list exactly the
// commands core/scsi/cdb.ts decodes.
import { CopyResults, MaintenanceIn, Opcode, cdbBytes, serviceActionExtendedCopyLid1, serviceActionGetLbaStatus, serviceActionReadCapacity16 } from "../cdb.ts";
import { cutToAllocation, putBe16, putBe32 } from "../bytes.ts";
import { assert } from "../../util/assert.ts";
import { Asc, Status, illegalField, illegalRequest, type ScsiResult } from "../sense.ts";

interface Supported {
  readonly opcode: number;
  /** Service action, for opcodes that have them. */
  readonly serviceAction?: number;
  /** CDB USAGE DATA: which bits of each CDB byte the command uses (byte 0, the opcode, is added by fitUsage). */
  readonly usage: readonly number[];
}

// Usage masks are conservative: every field the decoder reads is marked.
const rw10 = [0xfa, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x00];
const rw12 = [0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00];
const rw16 = [0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00];
const verify10 = [0xf6, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x00];
const verify12 = [0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00];
const verify16 = [0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00];
const maintenanceIn = [0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00];

/**
 * The literal masks below are of CDB bytes 1 onwards and may be short: the opcode is put in
 * front, and zeros before the CONTROL byte, to the CDB's length for its group code.
 */
function fitUsage(c: Supported): Supported {
  const length = cdbBytes(c.opcode);
  const u = [c.opcode, ...c.usage];
  while (u.length < length) u.splice(u.length - 1, 0, 0);
  return { ...c, usage: u.slice(0, length - 1).concat([0x00]) };
}

const table: readonly Supported[] = ([
  { opcode: Opcode.testUnitReady, usage: [0, 0, 0, 0, 0x00] },
  { opcode: Opcode.requestSense, usage: [0x01, 0, 0, 0xff, 0x00] },
  { opcode: Opcode.read6, usage: [0x1f, 0xff, 0xff, 0xff, 0x00] },
  { opcode: Opcode.write6, usage: [0x1f, 0xff, 0xff, 0xff, 0x00] },
  { opcode: Opcode.inquiry, usage: [0x01, 0xff, 0xff, 0xff, 0x00] },
  { opcode: Opcode.modeSelect6, usage: [0x11, 0, 0, 0xff, 0x00] },
  { opcode: Opcode.reserve6, usage: [0, 0, 0, 0, 0x00] },
  { opcode: Opcode.release6, usage: [0, 0, 0, 0, 0x00] },
  { opcode: Opcode.modeSense6, usage: [0x08, 0xff, 0xff, 0xff, 0x00] },
  { opcode: Opcode.startStopUnit, usage: [0x01, 0, 0x0f, 0xf7, 0x00] },
  { opcode: Opcode.preventAllowMediumRemoval, usage: [0, 0, 0, 0x03, 0x00] },
  { opcode: Opcode.readCapacity10, usage: [0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0x00] },
  { opcode: Opcode.read10, usage: rw10 },
  { opcode: Opcode.write10, usage: rw10 },
  { opcode: Opcode.writeAndVerify10, usage: verify10 },
  { opcode: Opcode.verify10, usage: verify10 },
  { opcode: Opcode.preFetch10, usage: [0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x00] },
  { opcode: Opcode.synchronizeCache10, usage: [0x06, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x00] },
  { opcode: Opcode.readDefectData10, usage: [0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0x00] },
  { opcode: Opcode.writeSame10, usage: [0xf8, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x00] },
  { opcode: Opcode.unmap, usage: [0x01, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0x00] },
  { opcode: Opcode.modeSelect10, usage: [0x11, 0, 0, 0, 0, 0, 0xff, 0xff, 0x00] },
  { opcode: Opcode.reserve10, usage: [0, 0, 0, 0, 0, 0, 0, 0, 0x00] },
  { opcode: Opcode.release10, usage: [0, 0, 0, 0, 0, 0, 0, 0, 0x00] },
  { opcode: Opcode.modeSense10, usage: [0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0x00] },
  ...[0, 1, 2, 3].map((sa) => ({ opcode: Opcode.persistentReserveIn, serviceAction: sa, usage: [0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0x00] })),
  ...[0, 1, 2, 3, 4, 5, 6, 7].map((sa) => ({ opcode: Opcode.persistentReserveOut, serviceAction: sa, usage: [0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00] })),
  { opcode: Opcode.extendedCopy, serviceAction: serviceActionExtendedCopyLid1, usage: [0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x00] },
  ...Object.values(CopyResults).map((sa) => ({ opcode: Opcode.receiveCopyResults, serviceAction: sa, usage: [0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x00] })),
  { opcode: Opcode.read16, usage: rw16 },
  { opcode: Opcode.orWrite, usage: rw16 },
  { opcode: Opcode.compareAndWrite, usage: [0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0x1f, 0x00] },
  { opcode: Opcode.write16, usage: rw16 },
  { opcode: Opcode.writeAndVerify16, usage: verify16 },
  { opcode: Opcode.verify16, usage: verify16 },
  { opcode: Opcode.preFetch16, usage: [0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00] },
  { opcode: Opcode.synchronizeCache16, usage: [0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00] },
  { opcode: Opcode.writeSame16, usage: [0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00] },
  { opcode: Opcode.serviceActionIn16, serviceAction: serviceActionReadCapacity16, usage: [0x1f, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x00] },
  { opcode: Opcode.serviceActionIn16, serviceAction: serviceActionGetLbaStatus, usage: [0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x00] },
  { opcode: Opcode.reportLuns, usage: [0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x00] },
  { opcode: Opcode.maintenanceIn, serviceAction: MaintenanceIn.reportTargetPortGroups, usage: [0xff, ...maintenanceIn.slice(1)] },
  { opcode: Opcode.maintenanceIn, serviceAction: MaintenanceIn.reportSupportedOperationCodes, usage: [0x1f, 0x87, ...maintenanceIn.slice(2)] },
  { opcode: Opcode.maintenanceIn, serviceAction: MaintenanceIn.reportSupportedTaskManagementFunctions, usage: [0x1f, 0x80, ...maintenanceIn.slice(2)] },
  { opcode: Opcode.read12, usage: rw12 },
  { opcode: Opcode.write12, usage: rw12 },
  { opcode: Opcode.writeAndVerify12, usage: verify12 },
  { opcode: Opcode.verify12, usage: verify12 },
  { opcode: Opcode.readDefectData12, usage: [0x1f, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x00] },
] as Supported[]).map(fitUsage);

/** SPC-4 table 254 REPORTING OPTIONS, and table 257 SUPPORT values. */
const ReportingOptions = { all: 0, byOpcode: 1, byOpcodeAndServiceAction: 2, byOpcodeOrServiceAction: 3 } as const;
const SupportValue = { notSupported: 1, supported: 3 } as const;
/** Where REPORTING OPTIONS sits in the CDB: byte 2, bits 2..0. */
const reportingOptionsByte = 2;
const reportingOptionsTopBit = 2;
/** Command descriptor flags (SPC-4 table 256): CTDP (timeouts descriptor present), SERVACTV. */
const ctdp = 0x02;
const servactv = 0x01;
/** SPC-4 §6.35.4: the command timeouts descriptor is 12 bytes (length field 0Ah). */
const timeoutsDescriptorBytes = 12;
/** Nominal and recommended timeouts we report, seconds. */
const nominalTimeoutS = 1;
const recommendedTimeoutS = 30;

function timeouts(): Uint8Array {
  const t = new Uint8Array(timeoutsDescriptorBytes);
  putBe16(t, 0, timeoutsDescriptorBytes - 2);
  putBe32(t, 4, nominalTimeoutS);
  putBe32(t, 8, recommendedTimeoutS);
  return t;
}

export function reportSupportedOpcodes(command: { rctd: boolean; options: number; opcode: number; serviceAction: number; allocationBytes: number }): ScsiResult {
  const extra = command.rctd ? timeoutsDescriptorBytes : 0;
  if (command.options === ReportingOptions.all) {
    const descriptorBytes = 8 + extra;
    const out = new Uint8Array(4 + table.length * descriptorBytes);
    putBe32(out, 0, table.length * descriptorBytes);
    table.forEach((c, i) => {
      const at = 4 + i * descriptorBytes;
      out[at] = c.opcode;
      if (c.serviceAction !== undefined) putBe16(out, at + 2, c.serviceAction);
      out[at + 5] = (command.rctd ? ctdp : 0) | (c.serviceAction !== undefined ? servactv : 0);
      putBe16(out, at + 6, c.usage.length);
      if (command.rctd) out.set(timeouts(), at + 8);
    });
    return { status: Status.good, data: cutToAllocation(out, command.allocationBytes) };
  }
  const hasActions = table.some((c) => c.opcode === command.opcode && c.serviceAction !== undefined);
  // The field pointer names REPORTING OPTIONS: without it libiscsi reads INVALID FIELD IN CDB
  // from a MAINTENANCE IN as "command not implemented".
  const badOptions = illegalField(Asc.invalidFieldInCdb, { inCdb: true, byte: reportingOptionsByte, bit: reportingOptionsTopBit });
  let found: Supported | undefined;
  switch (command.options) {
    case ReportingOptions.byOpcode:
      if (hasActions) return badOptions;
      found = table.find((c) => c.opcode === command.opcode);
      break;
    case ReportingOptions.byOpcodeAndServiceAction:
      if (!hasActions && table.some((c) => c.opcode === command.opcode)) return badOptions;
      found = table.find((c) => c.opcode === command.opcode && c.serviceAction === command.serviceAction);
      break;
    case ReportingOptions.byOpcodeOrServiceAction:
      found = table.find((c) => c.opcode === command.opcode && (!hasActions || c.serviceAction === command.serviceAction));
      break;
    default:
      return badOptions;
  }
  const usage = found?.usage ?? [];
  const out = new Uint8Array(4 + usage.length + (found === undefined ? 0 : extra));
  out[1] = (found === undefined ? SupportValue.notSupported : SupportValue.supported) | (found !== undefined && command.rctd ? 0x80 : 0);
  putBe16(out, 2, usage.length);
  usage.forEach((u, i) => (out[4 + i] = u));
  if (found !== undefined && command.rctd) out.set(timeouts(), 4 + usage.length);
  return { status: Status.good, data: cutToAllocation(out, command.allocationBytes) };
}

/** SPC-4 §6.37.2 byte 0: ATS, ATSS, CTSS, LURS, TRS (what core/iscsi/connection.ts answers). */
const tmfSupported = 0x80 | 0x40 | 0x10 | 0x08 | 0x02;
const tmfBasicBytes = 4;
const tmfExtendedBytes = 16;

export function reportSupportedTmf(command: { extended: boolean; allocationBytes: number }): ScsiResult {
  const out = new Uint8Array(command.extended ? tmfExtendedBytes : tmfBasicBytes);
  out[0] = tmfSupported;
  if (command.extended) out[3] = tmfExtendedBytes - 4; // ADDITIONAL DATA LENGTH
  return { status: Status.good, data: cutToAllocation(out, command.allocationBytes) };
}

/** SPC-4 §6.36: ASYMMETRIC ACCESS STATE 0h active/optimized, 1h active/non-optimized; supported states AO_SUP (1h) and AN_SUP (2h). */
const accessActiveOptimized = 0x00;
const accessActiveNonOptimized = 0x01;
const supportsOptimized = 0x01;
const supportsBoth = 0x03;
/** FORMAT TYPE 001b (extended header) in byte 4, and IMPLICIT TRANSITION TIME (seconds) in byte 5. */
const extendedHeaderFormat = 0x10;
const implicitTransitionS = 0;
/** Target port groups reported at most (one per node of the cluster). */
export const targetPortGroupsMax = 1024;

/**
 * The cluster's target ports as the LU sees them: each node's portal group is one target port
 * group holding one target port, both numbered by the node's portal group tag; the node running
 * the LU's coordinator is active/optimized, every other node active/non-optimized (it forwards).
 */
export interface TargetPortGroups {
  readonly relativePortIds: readonly number[];
  readonly optimized: number;
}

export function reportTargetPortGroups(command: { extended: boolean; allocationBytes: number }, groups: TargetPortGroups): ScsiResult {
  assert(groups.relativePortIds.length >= 1 && groups.relativePortIds.length <= targetPortGroupsMax, "target port groups 1..max");
  const headerBytes = command.extended ? 8 : 4;
  const groupBytes = 8 + 4; // a group with one port
  const out = new Uint8Array(headerBytes + groupBytes * groups.relativePortIds.length);
  putBe32(out, 0, out.length - 4); // RETURN DATA LENGTH: bytes after the first four
  if (command.extended) {
    out[4] = extendedHeaderFormat;
    out[5] = implicitTransitionS;
  }
  groups.relativePortIds.forEach((id, i) => {
    const at = headerBytes + i * groupBytes;
    // PREF is left clear: libiscsi 1.19 reads the state from the wrong end of byte 0 and would
    // see PREF as an invalid state; the optimized state says which path to prefer anyway.
    out[at] = id === groups.optimized ? accessActiveOptimized : accessActiveNonOptimized;
    // A cluster of one node has only the optimized state to offer.
    out[at + 1] = groups.relativePortIds.length > 1 ? supportsBoth : supportsOptimized;
    putBe16(out, at + 2, id);
    out[at + 7] = 1; // TARGET PORT COUNT
    putBe16(out, at + 8 + 2, id);
  });
  return { status: Status.good, data: cutToAllocation(out, command.allocationBytes) };
}

/** READ DEFECT DATA: an empty list in the format asked for (SBC-3 §5.18.2, §5.19.2). */
export function readDefectData(command: { tenByte: boolean; format: number; allocationBytes: number }): ScsiResult {
  const out = new Uint8Array(command.tenByte ? 4 : 8);
  out[1] = command.format & 0x1f; // PLIST, GLIST and the list format echo the request
  return { status: Status.good, data: cutToAllocation(out, command.allocationBytes) };
}
