// INQUIRY (SPC-4 §6.6): standard data and the VPD pages 00h (supported pages), 80h (unit serial
// number), 83h (device identification), 86h (extended INQUIRY), 8Fh (third-party copy), B0h
// (block limits), B1h (block device characteristics) and B2h (logical block provisioning). Pure: builds bytes from the device's identity; never touches the device's data.
import { assert } from "../../util/assert.ts";
import type { BlockDeviceInfo } from "../../volume/block-device.ts";
import { asciiField, cutToAllocation, putBe16, putBe32, putBe64 } from "../bytes.ts";
import { maxCompareAndWriteBlocks, maxUnmapBytes, maxUnmapDescriptors, maxWriteSameBytes } from "./block.ts";
import { Asc, Status, illegalRequest, type ScsiResult } from "../sense.ts";
import { CopyResults, Opcode, serviceActionExtendedCopyLid1 } from "../cdb.ts";

export interface InquiryPort {
  /** The iSCSI target name (SCSI name string designators). */
  readonly targetName: string;
  /**
   * RELATIVE TARGET PORT IDENTIFIER: the portal group tag of the node the command came in on.
   * It names the target port group too: each node's portal group is one target port group with
   * one target port (REPORT TARGET PORT GROUPS), so VPD 83h says which node a path goes to.
   */
  readonly relativePortId: number;
}

/** SPC-4 §6.6.2: standard INQUIRY data we return (36 mandatory bytes plus version descriptors). */
const standardBytes = 66;
/** PERIPHERAL QUALIFIER 000b, DEVICE TYPE 00h: a direct-access block device is connected. */
const peripheralDirectAccess = 0x00;
/** PERIPHERAL QUALIFIER 011b, DEVICE TYPE 1Fh: no logical unit at this LUN (SPC-4 §6.6.2). */
const peripheralNoLun = 0x7f;
/** VERSION 06h: the device claims SPC-4. */
const versionSpc4 = 0x06;
/** Byte 3: HISUP (bit 4) and RESPONSE DATA FORMAT 2. */
const hisupFormat2 = 0x12;
/** Byte 5: TPGS 01b, implicit asymmetric logical unit access (SPC-4 §6.6.2). */
const tpgsImplicit = 0x10;
/** Byte 5 bit 3: 3PC, the LU is a copy manager (EXTENDED COPY, commands/extended-copy.ts). */
const thirdPartyCopy = 0x08;
/** Byte 7: CMDQUE, full task management model. */
const cmdque = 0x02;
/** SPC-4 table 151: version descriptors SAM-5, iSCSI (RFC 7143), SPC-4, SBC-3. */
const versionDescriptors = [0x00a0, 0x0960, 0x0460, 0x04c0] as const;
const versionDescriptorsAt = 58;

export const vendorId = "QSTORA";
export const productId = "VIRTUAL-DISK";
export const productRevision = "0001";

/** VPD page codes (SPC-4 §7.8, SBC-3 §6.5). */
export const VpdPage = {
  supportedPages: 0x00,
  unitSerialNumber: 0x80,
  deviceIdentification: 0x83,
  blockLimits: 0xb0,
  extendedInquiry: 0x86,
  blockDeviceCharacteristics: 0xb1,
  logicalBlockProvisioning: 0xb2,
  thirdPartyCopy: 0x8f,
} as const;
/** Ascending, as SPC-4 §7.8.14 wants the list. */
const supportedPages = [VpdPage.supportedPages, VpdPage.unitSerialNumber, VpdPage.deviceIdentification, VpdPage.extendedInquiry, VpdPage.thirdPartyCopy, VpdPage.blockLimits, VpdPage.blockDeviceCharacteristics, VpdPage.logicalBlockProvisioning];
/** SPC-4 §7.8.17.3: the Supported Commands third-party copy descriptor (type 0001h). */
const tpcSupportedCommands = 0x0001;
/** The copy commands this copy manager runs (commands/extended-copy.ts), with their service actions. */
const copyCommands: ReadonlyArray<readonly [number, readonly number[]]> = [
  [Opcode.extendedCopy, [serviceActionExtendedCopyLid1]],
  [Opcode.receiveCopyResults, [CopyResults.copyStatus, CopyResults.receiveData, CopyResults.operatingParameters, CopyResults.failedSegmentDetails]],
];
/** SPC-4 §7.8.7: the extended INQUIRY data page is 3Ch bytes; byte 5 HEADSUP, ORDSUP, SIMPSUP. */
const extendedInquiryPageBytes = 0x3c;
const headOrderedSimpleSupported = 0x07;
/** SBC-3 §6.5.4: logical block provisioning page: LBPU, LBPWS, LBPWS10, LBPRZ; PROVISIONING TYPE 010b thin. */
const provisioningPageBytes = 4;
const lbpu = 0x80;
const lbpws = 0x40;
const lbpws10 = 0x20;
const lbprzBit = 0x04;
const provisioningThin = 0x02;

/** SBC-3 §6.5.3: the block limits page is 3Ch bytes long after its 4-byte header. */
const blockLimitsPageBytes = 0x3c;
/** SBC-3 §6.5.2: the block device characteristics page is 3Ch bytes long. */
const blockDeviceCharacteristicsPageBytes = 0x3c;
/** SBC-3 table 196: MEDIUM ROTATION RATE 0001h, a non-rotating medium. */
const nonRotatingMedium = 0x0001;

/** The largest READ/WRITE the target accepts in one command (Block limits MAXIMUM TRANSFER LENGTH). */
export const transferBytesMax = 8 << 20;
/** What we suggest initiators send (OPTIMAL TRANSFER LENGTH): one stripe. */
const optimalTransferBytes = 1 << 20;

/** SPC-4 §7.8.6.1 designator header fields. */
const CodeSet = { binary: 0x1, ascii: 0x2, utf8: 0x3 } as const;
const Association = { logicalUnit: 0x00, targetPort: 0x10, targetDevice: 0x20 } as const;
const DesignatorType = { t10VendorId: 0x1, naa: 0x3, relativeTargetPort: 0x4, targetPortGroup: 0x5, scsiNameString: 0x8 } as const;
/** PROTOCOL IDENTIFIER 5h: iSCSI (SPC-4 table 362), valid when PIV is set. */
const protocolIscsi = 0x5;
const piv = 0x80;
/** NAA 3h: locally assigned (SPC-4 §7.8.6.6.3): 60 bits the target chooses, here from the uuid. */
const naaLocallyAssigned = 0x3;

/** The 16 bytes of a uuid string (hex digits, dashes ignored); missing digits read as zero. */
export function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/[^0-9a-fA-F]/g, "");
  const out = new Uint8Array(16);
  for (let i = 0; i < 16 && i * 2 + 2 <= hex.length; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** The unit serial number: the uuid's 32 hex digits. */
export function unitSerial(info: BlockDeviceInfo): string {
  return Array.from(uuidBytes(info.uuid), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The 8-byte NAA 3h designator: NAA in the top 4 bits, then the uuid's first 60 bits. */
export function naaDesignator(uuid: string): Uint8Array {
  const u = uuidBytes(uuid);
  const out = new Uint8Array(8);
  out[0] = (naaLocallyAssigned << 4) | ((u[0] as number) >>> 4);
  for (let i = 1; i < 8; i++) out[i] = (((u[i - 1] as number) & 0x0f) << 4) | ((u[i] as number) >>> 4);
  return out;
}

function standardInquiry(connected: boolean): Uint8Array {
  const b = new Uint8Array(standardBytes);
  b[0] = connected ? peripheralDirectAccess : peripheralNoLun;
  b[2] = versionSpc4;
  b[3] = hisupFormat2;
  b[4] = standardBytes - 5; // ADDITIONAL LENGTH: bytes after byte 4
  b[5] = tpgsImplicit | (connected ? thirdPartyCopy : 0);
  b[7] = cmdque;
  b.set(asciiField(vendorId, 8), 8);
  b.set(asciiField(productId, 16), 16);
  b.set(asciiField(productRevision, 4), 32);
  versionDescriptors.forEach((v, i) => putBe16(b, versionDescriptorsAt + i * 2, v));
  return b;
}

function vpdPage(page: number, body: Uint8Array): Uint8Array {
  assert(body.length <= 0xffff, "VPD page too long");
  const b = new Uint8Array(4 + body.length);
  b[0] = peripheralDirectAccess;
  b[1] = page;
  putBe16(b, 2, body.length);
  b.set(body, 4);
  return b;
}

function designator(options: { codeSet: number; association: number; type: number; body: Uint8Array; iscsi: boolean }): Uint8Array {
  const d = new Uint8Array(4 + options.body.length);
  d[0] = (options.iscsi ? protocolIscsi << 4 : 0) | options.codeSet;
  d[1] = (options.iscsi ? piv : 0) | options.association | options.type;
  d[3] = options.body.length;
  d.set(options.body, 4);
  return d;
}

/** SPC-4 §7.8.6.11: a SCSI name string is UTF-8, NUL-terminated and padded to a multiple of 4. */
function scsiNameString(name: string): Uint8Array {
  const raw = new TextEncoder().encode(name);
  const out = new Uint8Array((raw.length + 1 + 3) & ~3);
  out.set(raw);
  return out;
}

function deviceIdentification(info: BlockDeviceInfo, port: InquiryPort): Uint8Array {
  const relative = new Uint8Array(4);
  putBe16(relative, 2, port.relativePortId);
  const group = new Uint8Array(4);
  putBe16(group, 2, port.relativePortId); // the port's group has its id (see InquiryPort)
  const t10 = new Uint8Array(8 + 32);
  t10.set(asciiField(vendorId, 8));
  t10.set(asciiField(unitSerial(info), 32), 8);
  const parts = [
    designator({ codeSet: CodeSet.binary, association: Association.logicalUnit, type: DesignatorType.naa, body: naaDesignator(info.uuid), iscsi: false }),
    designator({ codeSet: CodeSet.ascii, association: Association.logicalUnit, type: DesignatorType.t10VendorId, body: t10, iscsi: false }),
    designator({ codeSet: CodeSet.binary, association: Association.targetPort, type: DesignatorType.relativeTargetPort, body: relative, iscsi: true }),
    designator({ codeSet: CodeSet.binary, association: Association.targetPort, type: DesignatorType.targetPortGroup, body: group, iscsi: true }),
    // The iSCSI SCSI target port name (RFC 7143 §4.2.7, SPC-4 §7.8.6.11): "<iqn>,t,0x<tpgt in hex>".
    designator({ codeSet: CodeSet.utf8, association: Association.targetPort, type: DesignatorType.scsiNameString, body: scsiNameString(`${port.targetName},t,0x${port.relativePortId.toString(16).padStart(4, "0")}`), iscsi: true }),
    designator({ codeSet: CodeSet.utf8, association: Association.targetDevice, type: DesignatorType.scsiNameString, body: scsiNameString(port.targetName), iscsi: true }),
  ];
  const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    body.set(p, at);
    at += p.length;
  }
  return vpdPage(VpdPage.deviceIdentification, body);
}

/** What the LUN supports beyond READ/WRITE, for the block limits and provisioning pages. */
export interface LunFeatures {
  readonly unmap: boolean;
}

function blockLimits(info: BlockDeviceInfo, features: LunFeatures): Uint8Array {
  const b = new Uint8Array(blockLimitsPageBytes);
  // Offsets below are of the page minus its 4-byte header (SBC-3 table 193 minus 4).
  b[1] = maxCompareAndWriteBlocks; // MAXIMUM COMPARE AND WRITE LENGTH
  if (features.unmap) {
    putBe32(b, 16, maxUnmapBytes / info.blockBytes); // MAXIMUM UNMAP LBA COUNT
    putBe32(b, 20, maxUnmapDescriptors); // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
    putBe32(b, 24, Math.max(1, info.physicalBlockBytes / info.blockBytes)); // OPTIMAL UNMAP GRANULARITY
    b[28] = 0x80; // UGAVALID, UNMAP GRANULARITY ALIGNMENT 0
  }
  putBe64(b, 32, maxWriteSameBytes / info.blockBytes); // MAXIMUM WRITE SAME LENGTH
  putBe16(b, 2, Math.max(1, info.physicalBlockBytes / info.blockBytes)); // OPTIMAL TRANSFER LENGTH GRANULARITY
  putBe32(b, 4, transferBytesMax / info.blockBytes); // MAXIMUM TRANSFER LENGTH
  putBe32(b, 8, optimalTransferBytes / info.blockBytes); // OPTIMAL TRANSFER LENGTH
  return vpdPage(VpdPage.blockLimits, b);
}

function extendedInquiry(): Uint8Array {
  const b = new Uint8Array(extendedInquiryPageBytes);
  b[1] = headOrderedSimpleSupported;
  return vpdPage(VpdPage.extendedInquiry, b);
}

function logicalBlockProvisioning(features: LunFeatures): Uint8Array {
  const b = new Uint8Array(provisioningPageBytes);
  if (features.unmap) {
    b[1] = lbpu | lbpws | lbpws10 | lbprzBit;
    b[2] = provisioningThin;
  }
  return vpdPage(VpdPage.logicalBlockProvisioning, b);
}

/**
 * VPD 8Fh, third-party copy (SPC-4 §7.8.17): the Supported Commands descriptor, which initiators
 * (and newer libiscsi) read to learn that EXTENDED COPY(LID1) and RECEIVE COPY RESULTS run here.
 * The limits are in RECEIVE COPY RESULTS' OPERATING PARAMETERS, the LID1 way of reporting them.
 */
function thirdPartyCopyPage(): Uint8Array {
  const list = copyCommands.flatMap(([opcode, actions]) => [opcode, actions.length, ...actions]);
  // Descriptor: type, length, list length, the list, padded to a multiple of four bytes.
  const descriptorBytes = (4 + 1 + list.length + 3) & ~3;
  const d = new Uint8Array(descriptorBytes);
  putBe16(d, 0, tpcSupportedCommands);
  putBe16(d, 2, descriptorBytes - 4);
  d[4] = list.length;
  d.set(list, 5);
  return vpdPage(VpdPage.thirdPartyCopy, d);
}

function blockDeviceCharacteristics(): Uint8Array {
  const b = new Uint8Array(blockDeviceCharacteristicsPageBytes);
  putBe16(b, 0, nonRotatingMedium);
  return vpdPage(VpdPage.blockDeviceCharacteristics, b);
}

/** Runs INQUIRY. `info` is undefined when no logical unit sits at the addressed LUN. */
export function inquiry(command: { evpd: boolean; page: number; allocationBytes: number }, info: BlockDeviceInfo | undefined, port: InquiryPort, features: LunFeatures = { unmap: false }): ScsiResult {
  if (!command.evpd) return { status: Status.good, data: cutToAllocation(standardInquiry(info !== undefined), command.allocationBytes) };
  if (info === undefined) return illegalRequest(Asc.logicalUnitNotSupported);
  let page: Uint8Array;
  switch (command.page) {
    case VpdPage.supportedPages:
      page = vpdPage(VpdPage.supportedPages, Uint8Array.from(supportedPages));
      break;
    case VpdPage.unitSerialNumber:
      page = vpdPage(VpdPage.unitSerialNumber, asciiField(unitSerial(info), 32));
      break;
    case VpdPage.deviceIdentification:
      page = deviceIdentification(info, port);
      break;
    case VpdPage.blockLimits:
      page = blockLimits(info, features);
      break;
    case VpdPage.blockDeviceCharacteristics:
      page = blockDeviceCharacteristics();
      break;
    case VpdPage.extendedInquiry:
      page = extendedInquiry();
      break;
    case VpdPage.logicalBlockProvisioning:
      page = logicalBlockProvisioning(features);
      break;
    case VpdPage.thirdPartyCopy:
      page = thirdPartyCopyPage();
      break;
    default:
      return illegalRequest(Asc.invalidFieldInCdb);
  }
  return { status: Status.good, data: cutToAllocation(page, command.allocationBytes) };
}
