// Executes a decoded CDB against a logical unit's BlockDevice (SBC-3 over SPC-4). Knows nothing of
// iSCSI: the transport hands in the command, the Data-Out it gathered and the most Data-In the
// initiator expects, and gets a ScsiResult back. A device answer that is synchronous is answered
// synchronously (no promise hop: the design's data-path finding); only a Promise from the device
// makes the result a Promise. It never throws for a device failure: those become sense data.
import { assert, unreachable } from "../util/assert.ts";
import type { BlockDevice, BlockDeviceInfo, IoResult, MaybePromise } from "../volume/block-device.ts";
import type { Command, ReadWriteCommand } from "./cdb.ts";
import { inquiry, transferBytesMax } from "./commands/inquiry.ts";
import { readCapacity10, readCapacity16 } from "./commands/capacity.ts";
import { modeSelect, modeSense, type CacheSettings } from "./commands/mode-sense.ts";
import { reportLuns } from "./commands/report-luns.ts";
import { compareAndWrite, getLbaStatus, orWrite, preFetch, unmap, verify, writeSame } from "./commands/block.ts";
import { extendedCopy, receiveCopyResults } from "./commands/extended-copy.ts";
import { checkReservation, persistentReserveIn, persistentReserveOut, release, reserve } from "./commands/persistent-reservations.ts";
import { readDefectData, reportSupportedOpcodes, reportSupportedTmf, reportTargetPortGroups, type TargetPortGroups } from "./commands/reports.ts";
import { UnitAttention, type LunState, type LunStateTable, type Nexus } from "./lun-state.ts";
import { cutToAllocation } from "./bytes.ts";
import { Asc, SenseKey, Status, checkCondition, encodeSense, goodResult, illegalRequest, senseForErrorCode, type ScsiResult } from "./sense.ts";

/** SPC-4 §4.5.2: descriptor-format sense, response code 72h, an 8-byte header with no descriptors. */
const descriptorSenseCurrentError = 0x72;
const descriptorSenseHeaderBytes = 8;
/** SPC-4 table 28: INVALID FIELD IN COMMAND INFORMATION UNIT (0Eh/03h), for a Data-Out shorter than the CDB asks and not a whole number of blocks. */
const invalidFieldInInformationUnit = { asc: 0x0e, ascq: 0x03 } as const;

/** What the SCSI layer needs to know about the port a command came through. */
export interface ScsiPort {
  readonly targetName: string;
  readonly relativePortId: number;
  /** The LUNs the target exposes now, ascending (for REPORT LUNS). */
  lunNumbers(): readonly number[];
  /**
   * The cluster's target port groups for REPORT TARGET PORT GROUPS, this node's (the LU's
   * coordinator: the command runs here) optimized. Absent: this port alone.
   */
  readonly portGroups?: () => TargetPortGroups;
}

export interface CommandRequest {
  readonly command: Command;
  /** The device at the addressed LUN, or undefined when no logical unit sits there. */
  readonly device: BlockDevice | undefined;
  readonly port: ScsiPort;
  /** Data-Out the initiator sent (at most what the CDB asks for); null for commands without one. */
  readonly dataOut: Uint8Array | null;
  /** The most Data-In the initiator takes (iSCSI's Expected Data Transfer Length). */
  readonly dataInBytesMax: number;
  /** The I_T nexus the command came through (unit attentions, reservations). */
  readonly nexus: Nexus;
  /** The shared state of the portal's logical units. */
  readonly lunStates: LunStateTable;
  /**
   * Whether the task was aborted (TMF, PREEMPT AND ABORT, its session gone) while it waited for
   * COMPARE AND WRITE's turn: then it does not run at all.
   */
  readonly aborted?: () => boolean;
}

const taskAbortedResult: ScsiResult = { status: Status.taskAborted };

function fromIo(r: IoResult<void>, info: BlockDeviceInfo): ScsiResult {
  if (r.ok) return goodResult;
  return senseForErrorCode(r.code, r.offsetBytes === undefined ? undefined : Math.floor(r.offsetBytes / info.blockBytes));
}

/** Checks a READ/WRITE's fields and range (SBC-3 §4.5, §5.11); null when it may run. */
export function checkReadWrite(command: ReadWriteCommand, info: BlockDeviceInfo): ScsiResult | null {
  if (command.protect !== 0) return illegalRequest(Asc.invalidFieldInCdb); // no protection information
  const capacityBlocks = Math.floor(info.sizeBytes / info.blockBytes);
  if (command.lba > capacityBlocks || command.lba + command.blocks > capacityBlocks) return illegalRequest(Asc.lbaOutOfRange);
  if (command.blocks * info.blockBytes > transferBytesMax) return illegalRequest(Asc.invalidFieldInCdb);
  return null;
}

function read(command: ReadWriteCommand, device: BlockDevice, info: BlockDeviceInfo, dataInBytesMax: number): MaybePromise<ScsiResult> {
  const scsiBytes = command.blocks * info.blockBytes;
  // Read only the blocks the initiator will take (it may expect less than the CDB names).
  const wantBytes = Math.min(scsiBytes, Math.ceil(dataInBytesMax / info.blockBytes) * info.blockBytes);
  if (wantBytes === 0) return { status: Status.good, scsiBytes };
  const offsetBytes = command.lba * info.blockBytes;
  const finish = (r: IoResult<Uint8Array>): ScsiResult => {
    if (!r.ok) return senseForErrorCode(r.code, Math.floor((r.offsetBytes ?? offsetBytes) / info.blockBytes));
    assert(r.value.length >= wantBytes, "device returned less than asked");
    return { status: Status.good, data: r.value.subarray(0, Math.min(wantBytes, dataInBytesMax)), scsiBytes };
  };
  const r = device.read(offsetBytes, wantBytes);
  return r instanceof Promise ? r.then(finish) : finish(r);
}

function write(command: ReadWriteCommand, device: BlockDevice, info: BlockDeviceInfo, dataOut: Uint8Array | null, writeThrough: boolean): MaybePromise<ScsiResult> {
  const scsiBytes = command.blocks * info.blockBytes;
  const haveBytes = Math.min(dataOut?.length ?? 0, scsiBytes);
  // The initiator sent less than the CDB names (iSCSI overflow): write what came if it is whole
  // blocks (FCP-4's option a), else write nothing (option b), as libiscsi's residual tests accept.
  if (haveBytes % info.blockBytes !== 0) return { ...illegalRequest(invalidFieldInInformationUnit), scsiBytes };
  if (haveBytes === 0) return { status: Status.good, scsiBytes };
  assert(dataOut !== null);
  const finish = (r: IoResult<void>): ScsiResult => (r.ok ? { status: Status.good, scsiBytes } : fromIo(r, info));
  const r = device.write(command.lba * info.blockBytes, dataOut.subarray(0, haveBytes), { fua: command.fua || writeThrough });
  return r instanceof Promise ? r.then(finish) : finish(r);
}

function requestSense(command: { descriptorFormat: boolean; allocationBytes: number }, attention: { asc: number; ascq: number } | undefined): ScsiResult {
  // SPC-4 §6.29: a pending unit attention is reported (and cleared) here; else NO SENSE.
  const key = attention === undefined ? SenseKey.noSense : SenseKey.unitAttention;
  const asc = attention ?? Asc.noAdditionalSense;
  if (command.descriptorFormat) {
    const b = new Uint8Array(descriptorSenseHeaderBytes);
    b[0] = descriptorSenseCurrentError;
    b[1] = key;
    b[2] = asc.asc;
    b[3] = asc.ascq;
    return { status: Status.good, data: cutToAllocation(b, command.allocationBytes) };
  }
  const s = encodeSense({ key, asc: asc.asc, ascq: asc.ascq });
  return { status: Status.good, data: cutToAllocation(s, command.allocationBytes) };
}

function cacheOf(state: LunState, info: BlockDeviceInfo): CacheSettings {
  return { writeCache: state.writeCacheOverride ?? info.writeCache, readCacheDisabled: state.readCacheDisabled };
}

function applyModeSelect(state: LunState, device: BlockDevice, info: BlockDeviceInfo, request: CommandRequest, command: Extract<Command, { kind: "mode-select" }>): MaybePromise<ScsiResult> {
  const scsiBytes = command.parameterBytes;
  const before = cacheOf(state, info);
  const outcome = modeSelect(command, request.dataOut, before);
  if (!outcome.ok) return { ...outcome.result, scsiBytes };
  const after = outcome.cache;
  if (after.writeCache === before.writeCache && after.readCacheDisabled === before.readCacheDisabled) return { status: Status.good, scsiBytes };
  state.writeCacheOverride = after.writeCache;
  state.readCacheDisabled = after.readCacheDisabled;
  // SPC-4 §6.9: the other I_T nexuses learn of the change through MODE PARAMETERS CHANGED.
  state.raise(UnitAttention.modeParametersChanged, request.nexus.id);
  const save = after.writeCache !== before.writeCache ? device.setWriteCache?.(after.writeCache) : undefined;
  if (save === undefined) return { status: Status.good, scsiBytes };
  const done = (r: IoResult<void>): ScsiResult => ({ ...fromIo(r, info), scsiBytes });
  return save instanceof Promise ? save.then(done) : done(save);
}

/**
 * COMPARE AND WRITE's exclusive turn: it waits for the LUN's device calls under way to end, and
 * every command arriving meanwhile (any session) waits for it (SBC-3 §5.2: atomic).
 */
function exclusively(state: LunState, run: () => Promise<ScsiResult>): Promise<ScsiResult> {
  const previous = state.exclusive ?? Promise.resolve();
  const result = previous.then(() => state.drained()).then(run);
  const gate = result.then(
    () => undefined,
    () => undefined,
  );
  state.exclusive = gate;
  void gate.then(() => {
    if (state.exclusive === gate) state.exclusive = null;
  });
  return result;
}

/** Runs one command. The result's data is a view valid until the next call on the same device. */
export function executeCommand(request: CommandRequest): MaybePromise<ScsiResult> {
  const { command, device, port, nexus } = request;
  // Commands that any LUN answers, with or without a logical unit behind it (SPC-4 §4.6.4.2 and
  // §6.33), and that a unit attention does not stop (SPC-4 §5.13).
  switch (command.kind) {
    case "inquiry":
      return inquiry(command, device?.info(), port, { unmap: device?.unmap !== undefined });
    case "report-luns":
      return reportLuns(command, port.lunNumbers());
    case "request-sense":
      return requestSense(command, device === undefined ? undefined : request.lunStates.get(device).take(nexus.id));
    default:
      break;
  }
  if (device === undefined) return illegalRequest(Asc.logicalUnitNotSupported);
  const state = request.lunStates.get(device);
  const info = device.info();
  state.seen(nexus.id);
  if (info.sizeBytes !== state.sizeBytes) {
    state.sizeBytes = info.sizeBytes;
    state.raise(UnitAttention.capacityDataChanged);
  }
  const attention = state.take(nexus.id);
  if (attention !== undefined) return checkCondition(SenseKey.unitAttention, attention);
  const conflict = checkReservation(state, nexus, command);
  if (conflict !== null) return conflict;
  if (state.exclusive !== null) {
    // A COMPARE AND WRITE holds the LUN: run after it, with a copy of the Data-Out (a view).
    const copy = { ...request, dataOut: request.dataOut === null ? null : request.dataOut.slice() };
    return state.exclusive.then(() => (copy.aborted?.() === true ? taskAbortedResult : executeCommand(copy)));
  }
  const result = run(request, command, device, info, state);
  // COMPARE AND WRITE and ORWRITE wait for the tracked calls to drain, so they are not tracked
  // themselves; EXTENDED COPY tracks itself on each LU it copies between, once it may start.
  const selfTracked = command.kind === "compare-and-write" || command.kind === "or-write" || command.kind === "extended-copy";
  return result instanceof Promise && !selfTracked ? state.track(result) : result;
}

function run(request: CommandRequest, command: Command, device: BlockDevice, info: BlockDeviceInfo, state: LunState): MaybePromise<ScsiResult> {
  const writeThrough = state.writeCacheOverride === false;
  // The async commands below keep Data-Out across device calls: they get a copy.
  const owned = (): Uint8Array | null => (request.dataOut === null ? null : request.dataOut.slice());
  switch (command.kind) {
    case "read":
    case "write": {
      const bad = checkReadWrite(command, info);
      if (bad !== null) return bad;
      return command.kind === "read" ? read(command, device, info, request.dataInBytesMax) : write(command, device, info, request.dataOut, writeThrough);
    }
    case "test-unit-ready":
    case "start-stop-unit":
    case "prevent-allow-medium-removal":
      return goodResult;
    case "read-capacity-10":
      return readCapacity10(info);
    case "read-capacity-16":
      return readCapacity16(command, info, { unmap: device.unmap !== undefined });
    case "mode-sense":
      return modeSense(command, info, cacheOf(state, info));
    case "mode-select":
      return applyModeSelect(state, device, info, request, command);
    case "synchronize-cache": {
      const capacityBlocks = Math.floor(info.sizeBytes / info.blockBytes);
      if (command.lba > capacityBlocks || command.lba + command.blocks > capacityBlocks) return illegalRequest(Asc.lbaOutOfRange);
      const r = device.flush();
      return r instanceof Promise ? r.then((x) => fromIo(x, info)) : fromIo(r, info);
    }
    case "verify":
      return verify(command, device, owned());
    case "pre-fetch":
      return preFetch(command, info);
    case "write-same":
      return writeSame(command, device, owned(), { fua: writeThrough });
    case "unmap":
      if (device.unmap === undefined) return illegalRequest(Asc.invalidCommandOperationCode);
      return unmap(command, device, owned());
    case "get-lba-status":
      return getLbaStatus(command, device);
    case "compare-and-write": {
      const data = owned();
      return exclusively(state, () => compareAndWrite(command, device, data, { fua: writeThrough }));
    }
    case "or-write": {
      const data = owned();
      return exclusively(state, () => orWrite(command, device, data, { fua: writeThrough, transferBytesMax }));
    }
    case "extended-copy":
      return extendedCopy(command, owned(), { manager: device, nexus: request.nexus, targetName: request.port.targetName, lunStates: request.lunStates });
    case "receive-copy-results":
      return receiveCopyResults(command, state, request.nexus, info);
    case "report-supported-opcodes":
      return reportSupportedOpcodes(command);
    case "report-supported-tmf":
      return reportSupportedTmf(command);
    case "report-target-port-groups":
      return reportTargetPortGroups(command, request.port.portGroups?.() ?? { relativePortIds: [request.port.relativePortId], optimized: request.port.relativePortId });
    case "read-defect-data":
      return readDefectData(command);
    case "reserve":
      return reserve(state, request.nexus);
    case "release":
      return release(state, request.nexus);
    case "persistent-reserve-in":
      return persistentReserveIn(state, command);
    case "persistent-reserve-out":
      return { ...persistentReserveOut(state, request.nexus, command, request.dataOut), scsiBytes: command.parameterBytes };
    case "unsupported":
      return illegalRequest(Asc.invalidCommandOperationCode);
    case "invalid":
      return checkCondition(SenseKey.illegalRequest, command.sense);
    case "inquiry":
    case "report-luns":
    case "request-sense":
      // Answered before the unit attention check, in executeCommand.
      return unreachable(command as never);
    default:
      return unreachable(command);
  }
}
