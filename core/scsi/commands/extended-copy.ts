// EXTENDED COPY (LID1, SPC-4 §6.4) and RECEIVE COPY RESULTS (SPC-4 §6.18): the logical unit that
// receives the command is the copy manager; it copies block ranges between LUNs of this portal
// that the initiator can reach, named by identification target descriptors (E4h) carrying the
// NAA designator VPD 83h reports, with block-to-block segment descriptors (02h). Data moves
// through the BlockDevice contract in chunks of `chunkBytes`; the whole descriptor list is
// checked, every copy target found and every range checked before the first byte moves, so a bad
// list copies nothing. It never keeps a device's read buffer past the next call on that device,
// and never throws for a device failure (that becomes COPY ABORTED sense).
import { assert } from "../../util/assert.ts";
import type { BlockDevice, BlockDeviceInfo, MaybePromise } from "../../volume/block-device.ts";
import { be16, be32, be64, cutToAllocation, putBe16, putBe32 } from "../bytes.ts";
import type { Command } from "../cdb.ts";
import { CopyResults } from "../cdb.ts";
import { copiesInProgressMax, copyRecordsPerNexusMax, type CopyRecord } from "../copy-results.ts";
import type { LunState, LunStateTable, Nexus } from "../lun-state.ts";
import { Asc, SenseKey, Status, checkCondition, encodeFixedSense, fixedSenseBytes, illegalField, segmentPointer, senseForErrorCode, type AdditionalSense, type ScsiResult } from "../sense.ts";
import { chunkBytes } from "./block.ts";
import { naaDesignator } from "./inquiry.ts";
import { checkReservation } from "./persistent-reservations.ts";

/** What RECEIVE COPY RESULTS (OPERATING PARAMETERS) promises, and EXTENDED COPY enforces. */
export const targetDescriptorsMax = 8;
export const segmentDescriptorsMax = 16;
export const descriptorListBytesMax = 1024;
/** The most bytes one segment may copy: 16 segments then move at most 512 MiB per command. */
export const segmentBytesMax = 32 << 20;

/** SPC-4 §6.4.3.1: the LID1 parameter list header. */
const headerBytes = 16;
/** SPC-4 table 104: LIST ID USAGE (byte 1 bits 4..3). */
const ListIdUsage = { hold: 0, reserved: 1, noHold: 2, noListId: 3 } as const;
/** SPC-4 §6.4.6.1, §6.4.6.2: every LID1 target descriptor we take is 32 bytes; E4h identifies an LU by designator. */
const targetDescriptorBytes = 32;
const identificationDescriptor = 0xe4;
/** Bytes 4..23 of an E4h descriptor hold a designation descriptor: its 4-byte header and at most 16 bytes. */
const designationAt = 4;
const designatorBytesMax = 16;
/** Bytes 29..31 DISK BLOCK LENGTH of the block device type specific parameters (byte 28's PAD is for streams). */
const diskBlockLengthAt = 29;
const peripheralBlockDevice = 0x00;
/** SPC-4 §6.4.5.5: block device to block device segment descriptor (02h), 1Ch bytes; DC is byte 1 bit 1. */
const blockToBlock = 0x02;
const blockToBlockBytes = 0x1c;
const destinationCountBit = 0x02;
/** Field offsets inside a block-to-block segment descriptor (for the segment pointer in sense). */
const Segment = { sourceIndex: 4, destinationIndex: 6, blocks: 10, sourceLba: 12, destinationLba: 20 } as const;
/** SPC-4 §7.8.6.1: designator CODE SET binary, ASSOCIATION logical unit, TYPE NAA. */
const codeSetBinary = 0x1;
const associationLogicalUnit = 0x0;
const designatorNaa = 0x3;
/** SPC-4 table 118 (COPY STATUS): COPY MANAGER STATUS values, TRANSFER COUNT UNITS. */
const CopyManagerStatus = { inProgress: 0x00, completed: 0x01, completedWithErrors: 0x02 } as const;
const TransferCountUnits = { bytes: 0x00, kibibytes: 0x01, mebibytes: 0x02, gibibytes: 0x03 } as const;
const copyStatusBytes = 12;
/** SPC-4 §6.18.4: OPERATING PARAMETERS is 44 bytes plus the list of implemented descriptor codes. */
const operatingParametersBytes = 44;
const implementedDescriptors = [blockToBlock, identificationDescriptor] as const;
/** SNLID: LIST ID USAGE 11b (no list identifier) is supported. */
const snlid = 0x01;
/** SPC-4 §6.18.5: FAILED SEGMENT DETAILS puts the command's status at byte 56 and its sense from byte 60. */
const failedSegmentStatusAt = 56;
const failedSegmentSenseAt = 60;

interface TargetDescriptor {
  /** Offset of the descriptor in the parameter list (for field pointers). */
  readonly at: number;
  readonly codeSet: number;
  readonly association: number;
  readonly designatorType: number;
  readonly designator: Uint8Array;
  readonly blockBytes: number;
}

interface BlockSegment {
  readonly at: number;
  readonly source: number;
  readonly destination: number;
  readonly destinationCount: boolean;
  readonly blocks: number;
  readonly sourceLba: number;
  readonly destinationLba: number;
}

export interface CopyPlan {
  readonly listId: number;
  readonly usage: number;
  readonly targets: readonly TargetDescriptor[];
  readonly segments: readonly BlockSegment[];
}

const parameterListLengthError = (): ScsiResult => checkCondition(SenseKey.illegalRequest, Asc.parameterListLengthError);
const badParameter = (additional: AdditionalSense, byte: number): ScsiResult => illegalField(additional, { inCdb: false, byte });

/**
 * Checks an EXTENDED COPY parameter list (SPC-4 §6.4.3) in the order libiscsi and the standard
 * expect: lengths, then counts, then each descriptor. `null` plan: parameter list length 0, a
 * copy of nothing (GOOD).
 */
export function parseCopyParameters(data: Uint8Array | null, parameterBytes: number): { ok: true; plan: CopyPlan | null } | { ok: false; result: ScsiResult } {
  if (parameterBytes === 0) return { ok: true, plan: null };
  const p = data ?? new Uint8Array(0);
  if (parameterBytes < headerBytes || p.length < parameterBytes) return { ok: false, result: parameterListLengthError() };
  const listId = p[0] as number;
  const usage = ((p[1] as number) >>> 3) & 0x03;
  const targetBytes = be16(p, 2);
  const segmentBytes = be32(p, 8);
  const inlineBytes = be32(p, 12);
  if (headerBytes + targetBytes + segmentBytes + inlineBytes > parameterBytes) return { ok: false, result: parameterListLengthError() };
  if (targetBytes + segmentBytes > descriptorListBytesMax) return { ok: false, result: parameterListLengthError() };
  // MAXIMUM INLINE DATA LENGTH is 0: block-to-block segments never use inline data.
  if (inlineBytes !== 0) return { ok: false, result: badParameter(Asc.invalidFieldInParameterList, 12) };
  if (usage === ListIdUsage.reserved) return { ok: false, result: badParameter(Asc.invalidFieldInParameterList, 1) };
  if (usage === ListIdUsage.noListId && listId !== 0) return { ok: false, result: badParameter(Asc.invalidFieldInParameterList, 0) };

  if (Math.ceil(targetBytes / targetDescriptorBytes) > targetDescriptorsMax) return { ok: false, result: checkCondition(SenseKey.illegalRequest, Asc.tooManyTargetDescriptors) };
  const segmentsAt = headerBytes + targetBytes;
  const segmentsEnd = segmentsAt + segmentBytes;
  let count = 0;
  for (let at = segmentsAt; at < segmentsEnd; count++) {
    if (count >= segmentDescriptorsMax) return { ok: false, result: checkCondition(SenseKey.illegalRequest, Asc.tooManySegmentDescriptors) };
    if (at + 4 > segmentsEnd) return { ok: false, result: badParameter(Asc.invalidFieldInParameterList, at) };
    at += 4 + be16(p, at + 2);
  }

  const targets: TargetDescriptor[] = [];
  for (let at = headerBytes; at < segmentsAt; at += targetDescriptorBytes) {
    if (p[at] !== identificationDescriptor) return { ok: false, result: badParameter(Asc.unsupportedTargetDescriptorType, at) };
    if (at + targetDescriptorBytes > segmentsAt) return { ok: false, result: badParameter(Asc.invalidFieldInParameterList, 2) };
    // LU ID TYPE and NUL (byte 1 bits 7..5) are ignored, as SPC-4 has them (NUL is obsolete).
    if (((p[at + 1] as number) & 0x1f) !== peripheralBlockDevice) return { ok: false, result: badParameter(Asc.invalidFieldInParameterList, at + 1) };
    const d = at + designationAt;
    const length = p[d + 3] as number;
    if (length > designatorBytesMax) return { ok: false, result: badParameter(Asc.invalidFieldInParameterList, d + 3) };
    const blockBytes = ((p[at + diskBlockLengthAt] as number) << 16) | be16(p, at + diskBlockLengthAt + 1);
    targets.push({
      at,
      codeSet: (p[d] as number) & 0x0f,
      association: ((p[d + 1] as number) >>> 4) & 0x03,
      designatorType: (p[d + 1] as number) & 0x0f,
      // A copy: the parameter list is a view of the transport's buffer.
      designator: p.slice(d + 4, d + 4 + length),
      blockBytes,
    });
  }

  const segments: BlockSegment[] = [];
  for (let at = segmentsAt; at < segmentsEnd; at += 4 + be16(p, at + 2)) {
    if (p[at] !== blockToBlock) return { ok: false, result: badParameter(Asc.unsupportedSegmentDescriptorType, at) };
    if (4 + be16(p, at + 2) !== blockToBlockBytes || at + blockToBlockBytes > segmentsEnd) return { ok: false, result: badParameter(Asc.invalidFieldInParameterList, at + 2) };
    segments.push({
      at,
      source: be16(p, at + Segment.sourceIndex),
      destination: be16(p, at + Segment.destinationIndex),
      destinationCount: ((p[at + 1] as number) & destinationCountBit) !== 0,
      blocks: be16(p, at + Segment.blocks),
      sourceLba: be64(p, at + Segment.sourceLba),
      destinationLba: be64(p, at + Segment.destinationLba),
    });
  }
  return { ok: true, plan: { listId, usage, targets, segments } };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The device a target descriptor names: its designator must be the NAA one our VPD 83h reports. */
function findTarget(target: TargetDescriptor, candidates: readonly BlockDevice[]): BlockDevice | undefined {
  if (target.codeSet !== codeSetBinary || target.association !== associationLogicalUnit || target.designatorType !== designatorNaa) return undefined;
  return candidates.find((d) => sameBytes(naaDesignator(d.info().uuid), target.designator));
}

/**
 * COPY ABORTED for segment `index` (SPC-4 §6.4.5 as we read it): INFORMATION holds the segment
 * number, the sense-key specific field points into the segment descriptor, and there is no copy
 * target sense data (COMMAND-SPECIFIC INFORMATION 0).
 */
function copyAborted(additional: AdditionalSense, index: number, field: number): ScsiResult {
  return {
    status: Status.checkCondition,
    sense: { key: SenseKey.copyAborted, asc: additional.asc, ascq: additional.ascq, information: index, commandSpecific: 0, senseKeySpecific: segmentPointer(field) },
  };
}

interface ResolvedSegment {
  readonly source: BlockDevice;
  readonly destination: BlockDevice;
  readonly sourceOffsetBytes: number;
  readonly destinationOffsetBytes: number;
  readonly bytes: number;
}

/** Finds each segment's devices and checks its ranges; the first bad segment fails the whole copy. */
function resolve(plan: CopyPlan, candidates: readonly BlockDevice[]): { ok: true; segments: ResolvedSegment[] } | { ok: false; result: ScsiResult } {
  const found = new Map<number, BlockDevice>();
  const device = (segment: BlockSegment, index: number, which: "source" | "destination"): BlockDevice | ScsiResult => {
    const targetIndex = which === "source" ? segment.source : segment.destination;
    const field = which === "source" ? Segment.sourceIndex : Segment.destinationIndex;
    const target = plan.targets[targetIndex];
    if (target === undefined) return copyAborted(Asc.unreachableCopyTarget, index, field);
    let d = found.get(targetIndex);
    if (d === undefined) {
      d = findTarget(target, candidates);
      if (d === undefined) return copyAborted(Asc.copyTargetDeviceNotReachable, index, field);
      found.set(targetIndex, d);
    }
    if (target.blockBytes !== d.info().blockBytes) return badParameter(Asc.invalidFieldInParameterList, target.at + diskBlockLengthAt);
    return d;
  };
  const out: ResolvedSegment[] = [];
  for (const [index, s] of plan.segments.entries()) {
    const source = device(s, index, "source");
    if (!("read" in source)) return { ok: false, result: source };
    const destination = device(s, index, "destination");
    if (!("read" in destination)) return { ok: false, result: destination };
    const from = source.info();
    const to = destination.info();
    const bytes = s.blocks * (s.destinationCount ? to.blockBytes : from.blockBytes);
    if (bytes % from.blockBytes !== 0 || bytes % to.blockBytes !== 0) return { ok: false, result: copyAborted(Asc.noAdditionalSense, index, Segment.blocks) };
    if (bytes > segmentBytesMax) return { ok: false, result: badParameter(Asc.invalidFieldInParameterList, s.at + Segment.blocks) };
    if (beyondEnd(s.sourceLba, bytes, from)) return { ok: false, result: copyAborted(Asc.noAdditionalSense, index, Segment.sourceLba) };
    if (beyondEnd(s.destinationLba, bytes, to)) return { ok: false, result: copyAborted(Asc.noAdditionalSense, index, Segment.destinationLba) };
    out.push({ source, destination, sourceOffsetBytes: s.sourceLba * from.blockBytes, destinationOffsetBytes: s.destinationLba * to.blockBytes, bytes });
  }
  return { ok: true, segments: out };
}

function beyondEnd(lba: number, bytes: number, info: BlockDeviceInfo): boolean {
  const capacityBlocks = Math.floor(info.sizeBytes / info.blockBytes);
  return lba > capacityBlocks || lba + bytes / info.blockBytes > capacityBlocks;
}

const settle = async <T>(r: MaybePromise<T>): Promise<T> => await r;

/**
 * Lets the event loop run between chunks. Volumes answer synchronously from the page cache, and
 * awaiting a settled value only queues a microtask: without this a 512 MiB copy would hold the
 * loop, and every other session of the portal, for seconds.
 */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The iSCSI initiator name of an initiator port "<name>,i,0x<ISID>". */
function initiatorNameOf(initiatorPort: string): string {
  const at = initiatorPort.toLowerCase().lastIndexOf(",i,0x");
  return at < 0 ? initiatorPort : initiatorPort.slice(0, at);
}

const readAccess: Command = { kind: "read", opcode: 0, lba: 0, blocks: 0, fua: false, protect: 0 };
const writeAccess: Command = { kind: "write", opcode: 0, lba: 0, blocks: 0, fua: false, protect: 0 };

/** Whether the source chunk was never written (thin): then the destination is deallocated, not filled with zeros. */
async function deallocatedChunk(s: ResolvedSegment, at: number, length: number): Promise<boolean> {
  const mappingAt = s.source.mappingAt;
  if (mappingAt === undefined || s.destination.unmap === undefined) return false;
  const r = await settle(mappingAt.call(s.source, s.sourceOffsetBytes + at, length));
  return r.ok && !r.value.mapped && r.value.lengthBytes >= length;
}

/**
 * Copies one segment in chunks. Within one device a destination above an overlapping source is
 * copied from the end, so every block is read before it is overwritten. A chunk the source
 * reports deallocated is unmapped on the destination (both read as zeros: LBPRZ), so copying a
 * thin LUN keeps the copy thin.
 */
async function copySegment(s: ResolvedSegment, record: CopyRecord | null, options: { fua: boolean }): Promise<ScsiResult | null> {
  const sameDevice = s.source === s.destination;
  const backwards = sameDevice && s.destinationOffsetBytes > s.sourceOffsetBytes && s.destinationOffsetBytes < s.sourceOffsetBytes + s.bytes;
  const info = s.source.info();
  let unmapped = false;
  for (let done = 0; done < s.bytes; ) {
    const length = Math.min(chunkBytes, s.bytes - done);
    const at = backwards ? s.bytes - done - length : done;
    const unmap = s.destination.unmap;
    if (unmap !== undefined && (await deallocatedChunk(s, at, length))) {
      const u = await settle(unmap.call(s.destination, s.destinationOffsetBytes + at, length));
      if (!u.ok) return senseForErrorCode(u.code);
      unmapped = true;
      done += length;
      if (record !== null) record.bytesCopied += length;
      await nextTurn();
      continue;
    }
    const r = await settle(s.source.read(s.sourceOffsetBytes + at, length));
    if (!r.ok) return senseForErrorCode(r.code, r.offsetBytes === undefined ? undefined : Math.floor(r.offsetBytes / info.blockBytes));
    // The write is the next call on the source when both are one device: it may reuse the buffer.
    const data = sameDevice ? r.value.slice(0, length) : r.value.subarray(0, length);
    const w = await settle(s.destination.write(s.destinationOffsetBytes + at, data, options));
    if (!w.ok) return senseForErrorCode(w.code);
    done += length;
    if (record !== null) record.bytesCopied += length;
    await nextTurn();
  }
  // Write-through: the deallocations are durable before the copy is acknowledged, as FUA writes are.
  if (unmapped && options.fua) {
    const f = await settle(s.destination.flush());
    if (!f.ok) return senseForErrorCode(f.code);
  }
  return null;
}

/** As COPY ABORTED: a device failure in segment `index` keeps its additional sense code. */
function abortedBy(result: ScsiResult, index: number): ScsiResult {
  const sense = result.sense;
  assert(sense !== undefined, "a failure carries sense");
  return { status: Status.checkCondition, sense: { key: SenseKey.copyAborted, asc: sense.asc, ascq: sense.ascq, information: index, commandSpecific: 0 } };
}

export interface CopyRequest {
  /** The logical unit that received EXTENDED COPY: the copy manager. */
  readonly manager: BlockDevice;
  readonly nexus: Nexus;
  readonly targetName: string;
  readonly lunStates: LunStateTable;
}

/** Runs EXTENDED COPY(LID1). It tracks itself on every LunState it touches (executeCommand does not). */
export async function extendedCopy(command: { parameterBytes: number }, dataOut: Uint8Array | null, request: CopyRequest): Promise<ScsiResult> {
  const scsiBytes = command.parameterBytes;
  const parsed = parseCopyParameters(dataOut, command.parameterBytes);
  if (!parsed.ok) return { ...parsed.result, scsiBytes };
  const plan = parsed.plan;
  if (plan === null || plan.segments.length === 0) return { status: Status.good, scsiBytes };
  const managerState = request.lunStates.get(request.manager);
  const copies = managerState.copies;
  if (copies.inProgress >= copiesInProgressMax) return { ...checkCondition(SenseKey.illegalRequest, Asc.insufficientResources), scsiBytes };
  let record: CopyRecord | null = null;
  if (plan.usage !== ListIdUsage.noListId) {
    const begun = copies.begin(request.nexus.id, plan.listId, plan.usage === ListIdUsage.hold);
    if (begun === "busy") return { ...checkCondition(SenseKey.illegalRequest, Asc.operationInProgress), scsiBytes };
    if (begun === "full") return { ...checkCondition(SenseKey.illegalRequest, Asc.insufficientResources), scsiBytes };
    record = begun;
  }
  copies.inProgress++;
  let result: ScsiResult = { status: Status.checkCondition, sense: { key: SenseKey.copyAborted, asc: Asc.internalTargetFailure.asc, ascq: Asc.internalTargetFailure.ascq } };
  try {
    result = await run(plan, record, request);
    return { ...result, scsiBytes };
  } finally {
    // Also after an exception (a bug): the list identifier must not stay "in progress" for ever.
    copies.inProgress--;
    assert(copies.inProgress >= 0);
    if (record !== null) {
      record.state = result.status === Status.good ? "completed" : "failed";
      record.failure = result.status === Status.good || result.sense === undefined ? null : { status: result.status, sense: result.sense };
      copies.finish(request.nexus.id, record);
    }
  }
}

async function run(plan: CopyPlan, record: CopyRecord | null, request: CopyRequest): Promise<ScsiResult> {
  const candidates = [request.manager, ...request.lunStates.copyTargets({ targetName: request.targetName, initiatorName: initiatorNameOf(request.nexus.initiatorPort) })];
  const resolved = resolve(plan, candidates);
  if (!resolved.ok) return resolved.result;
  // Reservations of the copy targets apply to this nexus as if it read and wrote them itself.
  const involved = new Set<LunState>();
  for (const s of resolved.segments) {
    const from = request.lunStates.get(s.source);
    const to = request.lunStates.get(s.destination);
    if (checkReservation(from, request.nexus, readAccess) !== null || checkReservation(to, request.nexus, writeAccess) !== null) return { status: Status.reservationConflict };
    involved.add(from);
    involved.add(to);
  }
  // A COMPARE AND WRITE holding a copy target runs to its end first; from the moment this copy is
  // tracked there, a new one waits for the copy (LunState.drained). The copy waits while holding
  // nothing (it is tracked nowhere yet), so two copies and two COMPARE AND WRITEs cannot deadlock.
  for (;;) {
    const holding = [...involved].find((s) => s.exclusive !== null);
    if (holding === undefined) break;
    await holding.exclusive;
  }
  const work = (async (): Promise<ScsiResult> => {
    for (const [index, s] of resolved.segments.entries()) {
      const writeThrough = request.lunStates.get(s.destination).writeCacheOverride === false;
      const failed = await copySegment(s, record, { fua: writeThrough });
      if (failed !== null) return abortedBy(failed, index);
      if (record !== null) record.segmentsProcessed = index + 1;
    }
    return { status: Status.good };
  })();
  let tracked: Promise<ScsiResult> = work;
  for (const s of involved) tracked = s.track(tracked);
  return await tracked;
}

/** RECEIVE COPY RESULTS (SPC-4 §6.18) for LID1 copies sent through `nexus` to this LU. */
export function receiveCopyResults(command: { serviceAction: number; listId: number; allocationBytes: number }, state: LunState, nexus: Nexus, info: BlockDeviceInfo): ScsiResult {
  let out: Uint8Array;
  const unknownList = illegalField(Asc.invalidFieldInCdb, { inCdb: true, byte: 2 });
  switch (command.serviceAction) {
    case CopyResults.operatingParameters: {
      out = new Uint8Array(operatingParametersBytes + implementedDescriptors.length);
      putBe32(out, 0, out.length - 4);
      out[4] = snlid;
      putBe16(out, 8, targetDescriptorsMax);
      putBe16(out, 10, segmentDescriptorsMax);
      putBe32(out, 12, descriptorListBytesMax);
      putBe32(out, 16, segmentBytesMax);
      // MAXIMUM INLINE DATA LENGTH, HELD DATA LIMIT, MAXIMUM STREAM DEVICE TRANSFER SIZE: 0.
      putBe16(out, 34, copiesInProgressMax); // TOTAL CONCURRENT COPIES
      out[36] = Math.min(0xff, copyRecordsPerNexusMax); // MAXIMUM CONCURRENT COPIES (per I_T nexus)
      out[37] = Math.log2(info.blockBytes); // DATA SEGMENT GRANULARITY: whole logical blocks
      out[43] = implementedDescriptors.length;
      out.set(implementedDescriptors, operatingParametersBytes);
      break;
    }
    case CopyResults.copyStatus: {
      const record = state.copies.get(nexus.id, command.listId);
      if (record === undefined) return unknownList;
      out = new Uint8Array(copyStatusBytes);
      putBe32(out, 0, copyStatusBytes - 4);
      out[4] = record.state === "in-progress" ? CopyManagerStatus.inProgress : record.state === "completed" ? CopyManagerStatus.completed : CopyManagerStatus.completedWithErrors;
      putBe16(out, 5, Math.min(0xffff, record.segmentsProcessed));
      const [units, count] = transferCount(record.bytesCopied);
      out[7] = units;
      putBe32(out, 8, count);
      break;
    }
    case CopyResults.receiveData: {
      // Block-to-block segments hold no data: an empty answer for a copy we know of.
      if (state.copies.get(nexus.id, command.listId) === undefined) return unknownList;
      out = new Uint8Array(4);
      break;
    }
    case CopyResults.failedSegmentDetails: {
      const record = state.copies.get(nexus.id, command.listId);
      if (record === undefined) return unknownList;
      const failure = record.failure;
      if (failure === null) {
        out = new Uint8Array(4); // in progress or completed without error: nothing to report
        break;
      }
      const sense = new Uint8Array(fixedSenseBytes);
      encodeFixedSense(failure.sense, sense, 0);
      out = new Uint8Array(failedSegmentSenseAt + sense.length);
      putBe32(out, 0, out.length - 4);
      out[failedSegmentStatusAt] = failure.status;
      putBe16(out, failedSegmentStatusAt + 2, sense.length);
      out.set(sense, failedSegmentSenseAt);
      // SPC-4 §6.18.5: the details are given once, then the copy manager forgets them.
      state.copies.discard(nexus.id, command.listId);
      break;
    }
    default:
      return illegalField(Asc.invalidFieldInCdb, { inCdb: true, byte: 1, bit: 4 });
  }
  return { status: Status.good, data: cutToAllocation(out, command.allocationBytes) };
}

/** TRANSFER COUNT in the smallest unit that fits its 32 bits. */
function transferCount(bytes: number): [number, number] {
  const units: Array<[number, number]> = [
    [TransferCountUnits.bytes, 1],
    [TransferCountUnits.kibibytes, 2 ** 10],
    [TransferCountUnits.mebibytes, 2 ** 20],
    [TransferCountUnits.gibibytes, 2 ** 30],
  ];
  for (const [code, size] of units) if (Math.floor(bytes / size) <= 0xffffffff) return [code, Math.floor(bytes / size)];
  return [TransferCountUnits.gibibytes, 0xffffffff];
}
