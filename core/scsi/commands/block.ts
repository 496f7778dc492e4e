// The SBC-3 block commands beyond READ/WRITE: VERIFY (§5.29-31, BYTCHK 0/1/3), PRE-FETCH
// (§5.9-10), WRITE SAME (§5.47-48, UNMAP and NDOB), UNMAP (§5.27), GET LBA STATUS (§5.8) and
// COMPARE AND WRITE (§5.2). They are not on the hot path, so they are written as async
// functions and move large ranges in chunks of `chunkBytes`. They never keep a device's read
// buffer past the next device call, and never throw for a device failure (it becomes sense).
import type { BlockDevice, BlockDeviceInfo, IoResult, MaybePromise } from "../../volume/block-device.ts";
import { be16, be32, be64, cutToAllocation, putBe32, putBe64 } from "../bytes.ts";
import { Asc, SenseKey, Status, checkCondition, goodResult, illegalRequest, senseForErrorCode, type ScsiResult } from "../sense.ts";

/** Bytes moved per device call when a command covers a large range. */
export const chunkBytes = 1 << 20;
/** Block limits (VPD B0h) we advertise and enforce. */
export const maxCompareAndWriteBlocks = 1;
export const maxUnmapDescriptors = 256;
/** MAXIMUM UNMAP LBA COUNT and MAXIMUM WRITE SAME LENGTH, in bytes (converted to blocks per LUN). */
export const maxUnmapBytes = 256 << 20;
export const maxWriteSameBytes = 8 << 20;
/** SPC-4 table 28: MISCOMPARE DURING VERIFY OPERATION (1Dh/00h). */
const miscompareDuringVerify = { asc: 0x1d, ascq: 0x00 } as const;
/** SBC-3 §5.27.2: UNMAP parameter list header and block descriptors. */
const unmapHeaderBytes = 8;
const unmapDescriptorBytes = 16;
/** SBC-3 §5.8.2: GET LBA STATUS header and descriptors; PROVISIONING STATUS values. */
const lbaStatusHeaderBytes = 8;
const lbaStatusDescriptorBytes = 16;
const lbaStatusDescriptorsMax = 64;
/** The most bytes one mappingAt() call covers (the device maps the range piece by piece). */
const mappingQueryBytesMax = 64 << 20;
const ProvisioningStatus = { mapped: 0, deallocated: 1 } as const;
/** Invalid field in CDB: the INVALID FIELD IN COMMAND INFORMATION UNIT variant for a Data-Out of the wrong size. */
const invalidFieldInInformationUnit = { asc: 0x0e, ascq: 0x03 } as const;

const settle = async <T>(r: MaybePromise<T>): Promise<T> => await r;

function capacityBlocks(info: BlockDeviceInfo): number {
  return Math.floor(info.sizeBytes / info.blockBytes);
}

function outOfRange(lba: number, blocks: number, info: BlockDeviceInfo): boolean {
  const capacity = capacityBlocks(info);
  return lba > capacity || lba + blocks > capacity;
}

function failure(r: IoResult<unknown>, info: BlockDeviceInfo): ScsiResult {
  if (r.ok) return goodResult;
  return senseForErrorCode(r.code, r.offsetBytes === undefined ? undefined : Math.floor(r.offsetBytes / info.blockBytes));
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function miscompare(offsetBytes: number): ScsiResult {
  return checkCondition(SenseKey.miscompare, miscompareDuringVerify, offsetBytes);
}

export async function verify(command: { lba: number; blocks: number; byteCheck: number; protect: number }, device: BlockDevice, dataOut: Uint8Array | null): Promise<ScsiResult> {
  const info = device.info();
  if (command.protect !== 0) return illegalRequest(Asc.invalidFieldInCdb);
  if (outOfRange(command.lba, command.blocks, info)) return illegalRequest(Asc.lbaOutOfRange);
  const totalBytes = command.blocks * info.blockBytes;
  const expectBytes = command.byteCheck === 0 ? 0 : command.byteCheck === 3 ? info.blockBytes : totalBytes;
  const data = dataOut ?? new Uint8Array(0);
  if (command.blocks === 0) return { status: Status.good, scsiBytes: 0 };
  if (data.length < expectBytes) return { ...illegalRequest(invalidFieldInInformationUnit), scsiBytes: expectBytes };
  for (let done = 0; done < totalBytes; ) {
    const length = Math.min(chunkBytes, totalBytes - done);
    const r = await settle(device.read(command.lba * info.blockBytes + done, length));
    if (!r.ok) return failure(r, info);
    if (command.byteCheck === 1) {
      const at = firstDifference(r.value.subarray(0, length), data.subarray(done, done + length));
      if (at >= 0) return miscompare(done + at);
    } else if (command.byteCheck === 3) {
      for (let b = 0; b < length; b += info.blockBytes) {
        const at = firstDifference(r.value.subarray(b, b + info.blockBytes), data.subarray(0, info.blockBytes));
        if (at >= 0) return miscompare(done + b + at);
      }
    }
    done += length;
  }
  return { status: Status.good, scsiBytes: expectBytes };
}

export function preFetch(command: { lba: number; blocks: number }, info: BlockDeviceInfo): ScsiResult {
  // Nothing to stage: pages are read on demand. GOOD says so (CONDITION MET would promise a cache hit).
  if (outOfRange(command.lba, command.blocks, info)) return illegalRequest(Asc.lbaOutOfRange);
  return goodResult;
}

async function unmapRange(device: BlockDevice, info: BlockDeviceInfo, lba: number, blocks: number): Promise<ScsiResult> {
  const unmap = device.unmap;
  if (unmap === undefined) return writeZeros(device, info, lba, blocks);
  const r = await settle(unmap.call(device, lba * info.blockBytes, blocks * info.blockBytes));
  return failure(r, info);
}

async function writeZeros(device: BlockDevice, info: BlockDeviceInfo, lba: number, blocks: number): Promise<ScsiResult> {
  return writePattern(device, info, lba, blocks, new Uint8Array(info.blockBytes), false);
}

async function writePattern(device: BlockDevice, info: BlockDeviceInfo, lba: number, blocks: number, block: Uint8Array, fua: boolean): Promise<ScsiResult> {
  const totalBytes = blocks * info.blockBytes;
  const fill = new Uint8Array(Math.min(chunkBytes, totalBytes));
  for (let at = 0; at < fill.length; at += info.blockBytes) fill.set(block.subarray(0, info.blockBytes), at);
  for (let done = 0; done < totalBytes; ) {
    const length = Math.min(fill.length, totalBytes - done);
    const r = await settle(device.write(lba * info.blockBytes + done, fill.subarray(0, length), { fua }));
    if (!r.ok) return failure(r, info);
    done += length;
  }
  return goodResult;
}

export function maxWriteSameBlocks(info: BlockDeviceInfo): number {
  return Math.floor(maxWriteSameBytes / info.blockBytes);
}

export async function writeSame(
  command: { lba: number; blocks: number; unmap: boolean; anchor: boolean; noDataOut: boolean; protect: number },
  device: BlockDevice,
  dataOut: Uint8Array | null,
  options: { fua: boolean },
): Promise<ScsiResult> {
  const info = device.info();
  const scsiBytes = command.noDataOut ? 0 : info.blockBytes;
  const bad = (r: ScsiResult): ScsiResult => ({ ...r, scsiBytes });
  if (command.protect !== 0) return bad(illegalRequest(Asc.invalidFieldInCdb));
  // ANCHOR needs UNMAP, and this target does not anchor (ANC_SUP is 0): both are invalid.
  if (command.anchor) return bad(illegalRequest(Asc.invalidFieldInCdb));
  // WSNZ is 0: zero blocks means from LBA to the end of the medium (SBC-3 §5.47).
  const blocks = command.blocks === 0 ? Math.max(0, capacityBlocks(info) - command.lba) : command.blocks;
  if (outOfRange(command.lba, blocks, info)) return bad(illegalRequest(Asc.lbaOutOfRange));
  if (blocks > maxWriteSameBlocks(info)) return bad(illegalRequest(Asc.invalidFieldInCdb));
  let block: Uint8Array;
  if (command.noDataOut) block = new Uint8Array(info.blockBytes);
  else {
    // Exactly one block of Data-Out (SBC-3 §5.47); more or less is an error.
    if (dataOut === null || dataOut.length !== info.blockBytes) return bad(illegalRequest(Asc.invalidFieldInCdb));
    block = dataOut.subarray(0, info.blockBytes);
  }
  if (blocks === 0) return { status: Status.good, scsiBytes };
  // UNMAP set: the blocks are deallocated whatever the pattern (LBPRZ: they read as zeros
  // afterwards, as initiators that unmap with WRITE SAME expect).
  const r = command.unmap && device.unmap !== undefined ? await unmapRange(device, info, command.lba, blocks) : await writePattern(device, info, command.lba, blocks, block, options.fua);
  return { ...r, scsiBytes };
}

export async function unmap(command: { anchor: boolean; parameterBytes: number }, device: BlockDevice, dataOut: Uint8Array | null): Promise<ScsiResult> {
  const info = device.info();
  const scsiBytes = command.parameterBytes;
  if (command.anchor) return { ...illegalRequest(Asc.invalidFieldInCdb), scsiBytes };
  if (command.parameterBytes === 0) return goodResult;
  const p = dataOut ?? new Uint8Array(0);
  if (command.parameterBytes < unmapHeaderBytes || p.length < unmapHeaderBytes) return { ...illegalRequest(Asc.parameterListLengthError), scsiBytes };
  const descriptorBytes = Math.min(be16(p, 2), p.length - unmapHeaderBytes);
  const count = Math.floor(descriptorBytes / unmapDescriptorBytes);
  if (count > maxUnmapDescriptors) return { ...illegalRequest(Asc.invalidFieldInParameterList), scsiBytes };
  const maxBlocks = Math.floor(maxUnmapBytes / info.blockBytes);
  const ranges: Array<[number, number]> = [];
  for (let i = 0; i < count; i++) {
    const at = unmapHeaderBytes + i * unmapDescriptorBytes;
    const lba = be64(p, at);
    const blocks = be32(p, at + 8);
    if (outOfRange(lba, blocks, info)) return { ...illegalRequest(Asc.lbaOutOfRange), scsiBytes };
    if (blocks > maxBlocks) return { ...illegalRequest(Asc.invalidFieldInParameterList), scsiBytes };
    if (blocks > 0) ranges.push([lba, blocks]);
  }
  for (const [lba, blocks] of ranges) {
    const r = await unmapRange(device, info, lba, blocks);
    if (r.status !== Status.good) return { ...r, scsiBytes };
  }
  return { status: Status.good, scsiBytes };
}

export async function getLbaStatus(command: { lba: number; allocationBytes: number }, device: BlockDevice): Promise<ScsiResult> {
  const info = device.info();
  const capacity = capacityBlocks(info);
  if (command.lba >= capacity) return illegalRequest(Asc.lbaOutOfRange);
  const extents: Array<{ lba: number; blocks: number; status: number }> = [];
  const descriptorsMax = Math.min(lbaStatusDescriptorsMax, Math.max(1, Math.floor((command.allocationBytes - lbaStatusHeaderBytes) / lbaStatusDescriptorBytes)));
  let lba = command.lba;
  while (lba < capacity && extents.length < descriptorsMax) {
    let mapped = true;
    let blocks = capacity - lba;
    const mappingAt = device.mappingAt;
    if (mappingAt !== undefined) {
      const queryBytes = Math.min(blocks * info.blockBytes, Math.floor(mappingQueryBytesMax / info.blockBytes) * info.blockBytes);
      const r = await settle(mappingAt.call(device, lba * info.blockBytes, queryBytes));
      if (!r.ok) return failure(r, info);
      mapped = r.value.mapped;
      blocks = Math.max(1, Math.floor(r.value.lengthBytes / info.blockBytes));
    }
    // The descriptor's block count is 32 bits.
    blocks = Math.min(blocks, 0xffffffff);
    const last = extents[extents.length - 1];
    const status = mapped ? ProvisioningStatus.mapped : ProvisioningStatus.deallocated;
    if (last !== undefined && last.status === status && last.blocks + blocks <= 0xffffffff) last.blocks += blocks;
    else extents.push({ lba, blocks, status });
    lba += blocks;
  }
  const out = new Uint8Array(lbaStatusHeaderBytes + extents.length * lbaStatusDescriptorBytes);
  putBe32(out, 0, out.length - 4); // PARAMETER DATA LENGTH: bytes after itself
  extents.forEach((e, i) => {
    const at = lbaStatusHeaderBytes + i * lbaStatusDescriptorBytes;
    putBe64(out, at, e.lba);
    putBe32(out, at + 8, e.blocks);
    out[at + 12] = e.status;
  });
  return { status: Status.good, data: cutToAllocation(out, command.allocationBytes) };
}

/**
 * Reads, compares with the first half of Data-Out, writes the second half. The caller makes it
 * atomic (LunState's exclusive turn); this function only does the three steps.
 */
export async function compareAndWrite(command: { lba: number; blocks: number; fua: boolean; protect: number }, device: BlockDevice, dataOut: Uint8Array | null, options: { fua: boolean }): Promise<ScsiResult> {
  const info = device.info();
  const bytes = command.blocks * info.blockBytes;
  const scsiBytes = bytes * 2;
  if (command.protect !== 0) return { ...illegalRequest(Asc.invalidFieldInCdb), scsiBytes };
  // NUMBER OF LOGICAL BLOCKS 0 is no operation (SBC-3 §5.2), but not when Data-Out came with it:
  // the field is 8 bits, so an initiator asking for 256 blocks sends 0 with 256 blocks' data
  // (Debian's libiscsi 1.19 CompareAndWrite tests do), and that must not pass as done.
  if (command.blocks === 0) return (dataOut?.length ?? 0) === 0 ? goodResult : { ...illegalRequest(Asc.invalidFieldInCdb), scsiBytes: 0 };
  if (command.blocks > maxCompareAndWriteBlocks) return { ...illegalRequest(Asc.invalidFieldInCdb), scsiBytes };
  if (outOfRange(command.lba, command.blocks, info)) return { ...illegalRequest(Asc.lbaOutOfRange), scsiBytes };
  if (dataOut === null || dataOut.length !== scsiBytes) return { ...illegalRequest(Asc.invalidFieldInCdb), scsiBytes };
  const offsetBytes = command.lba * info.blockBytes;
  const r = await settle(device.read(offsetBytes, bytes));
  if (!r.ok) return { ...failure(r, info), scsiBytes };
  const at = firstDifference(r.value.subarray(0, bytes), dataOut.subarray(0, bytes));
  if (at >= 0) return { ...miscompare(at), scsiBytes };
  const w = await settle(device.write(offsetBytes, dataOut.subarray(bytes, scsiBytes), { fua: command.fua || options.fua }));
  if (!w.ok) return { ...failure(w, info), scsiBytes };
  return { status: Status.good, scsiBytes };
}
