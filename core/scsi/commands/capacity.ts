// READ CAPACITY(10) (SBC-3 §5.16) and READ CAPACITY(16) (SBC-3 §5.17). Pure.
import type { BlockDeviceInfo } from "../../volume/block-device.ts";
import { cutToAllocation, putBe32, putBe64 } from "../bytes.ts";
import { Status, type ScsiResult } from "../sense.ts";

/** SBC-3 §5.16.2: READ CAPACITY(10) data is 8 bytes; an LBA above 32 bits reads FFFFFFFFh. */
const readCapacity10Bytes = 8;
const lba32Max = 0xffffffff;
/** SBC-3 §5.17.2: READ CAPACITY(16) parameter data is 32 bytes. */
const readCapacity16Bytes = 32;

function lastLba(info: BlockDeviceInfo): number {
  return Math.floor(info.sizeBytes / info.blockBytes) - 1;
}

export function readCapacity10(info: BlockDeviceInfo): ScsiResult {
  const b = new Uint8Array(readCapacity10Bytes);
  putBe32(b, 0, Math.min(lastLba(info), lba32Max));
  putBe32(b, 4, info.blockBytes);
  return { status: Status.good, data: b };
}

/** SBC-3 §5.17.2 byte 14: LBPME (thin provisioning) and LBPRZ (deallocated blocks read zeros). */
const lbpme = 0x80;
const lbprz = 0x40;

export function readCapacity16(command: { allocationBytes: number }, info: BlockDeviceInfo, options: { unmap: boolean } = { unmap: false }): ScsiResult {
  const b = new Uint8Array(readCapacity16Bytes);
  putBe64(b, 0, lastLba(info));
  putBe32(b, 8, info.blockBytes);
  // Byte 13 bits 3..0: LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT.
  b[13] = Math.max(0, Math.round(Math.log2(info.physicalBlockBytes / info.blockBytes))) & 0x0f;
  if (options.unmap) b[14] = lbpme | lbprz;
  return { status: Status.good, data: cutToAllocation(b, command.allocationBytes) };
}
