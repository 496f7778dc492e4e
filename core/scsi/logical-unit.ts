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
import { modeSense } from "./commands/mode-sense.ts";
import { reportLuns } from "./commands/report-luns.ts";
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
}

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

function write(command: ReadWriteCommand, device: BlockDevice, info: BlockDeviceInfo, dataOut: Uint8Array | null): MaybePromise<ScsiResult> {
  const scsiBytes = command.blocks * info.blockBytes;
  const haveBytes = Math.min(dataOut?.length ?? 0, scsiBytes);
  // The initiator sent less than the CDB names (iSCSI overflow): write what came if it is whole
  // blocks (FCP-4's option a), else write nothing (option b), as libiscsi's residual tests accept.
  if (haveBytes % info.blockBytes !== 0) return { ...illegalRequest(invalidFieldInInformationUnit), scsiBytes };
  if (haveBytes === 0) return { status: Status.good, scsiBytes };
  assert(dataOut !== null);
  const finish = (r: IoResult<void>): ScsiResult => (r.ok ? { status: Status.good, scsiBytes } : fromIo(r, info));
  const r = device.write(command.lba * info.blockBytes, dataOut.subarray(0, haveBytes), { fua: command.fua });
  return r instanceof Promise ? r.then(finish) : finish(r);
}

function requestSense(command: { descriptorFormat: boolean; allocationBytes: number }): ScsiResult {
  // No deferred errors or unit attentions are kept yet: the answer is NO SENSE.
  if (command.descriptorFormat) {
    const b = new Uint8Array(descriptorSenseHeaderBytes);
    b[0] = descriptorSenseCurrentError;
    b[1] = SenseKey.noSense;
    return { status: Status.good, data: cutToAllocation(b, command.allocationBytes) };
  }
  const s = encodeSense({ key: SenseKey.noSense, asc: 0, ascq: 0 });
  return { status: Status.good, data: cutToAllocation(s, command.allocationBytes) };
}

/** Runs one command. The result's data is a view valid until the next call on the same device. */
export function executeCommand(request: CommandRequest): MaybePromise<ScsiResult> {
  const { command, device, port } = request;
  // Commands that any LUN answers, with or without a logical unit behind it (SPC-4 §4.6.4.2 and §6.33).
  switch (command.kind) {
    case "inquiry":
      return inquiry(command, device?.info(), port);
    case "report-luns":
      return reportLuns(command, port.lunNumbers());
    case "request-sense":
      return requestSense(command);
    default:
      break;
  }
  if (device === undefined) return illegalRequest(Asc.logicalUnitNotSupported);
  const info = device.info();
  switch (command.kind) {
    case "read":
    case "write": {
      const bad = checkReadWrite(command, info);
      if (bad !== null) return bad;
      return command.kind === "read" ? read(command, device, info, request.dataInBytesMax) : write(command, device, info, request.dataOut);
    }
    case "test-unit-ready":
    case "start-stop-unit":
    case "prevent-allow-medium-removal":
      return goodResult;
    case "read-capacity-10":
      return readCapacity10(info);
    case "read-capacity-16":
      return readCapacity16(command, info);
    case "mode-sense":
      return modeSense(command, info);
    case "synchronize-cache": {
      const capacityBlocks = Math.floor(info.sizeBytes / info.blockBytes);
      if (command.lba > capacityBlocks || command.lba + command.blocks > capacityBlocks) return illegalRequest(Asc.lbaOutOfRange);
      const r = device.flush();
      return r instanceof Promise ? r.then((x) => fromIo(x, info)) : fromIo(r, info);
    }
    case "unsupported":
      return illegalRequest(Asc.invalidCommandOperationCode);
    case "invalid":
      return checkCondition(SenseKey.illegalRequest, command.sense);
    default:
      // inquiry, report-luns and request-sense were answered above.
      return unreachable(command);
  }
}
