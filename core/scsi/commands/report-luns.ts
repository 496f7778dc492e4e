// REPORT LUNS (SPC-4 §6.33) and LUN field encoding (SAM-5 §4.7). Pure. REPORT LUNS is answered
// whether or not a logical unit sits at the addressed LUN (SPC-4: LUN 0 or the REPORT LUNS
// well-known LUN must answer it even on a target without LUN 0).
import { assert } from "../../util/assert.ts";
import { cutToAllocation, putBe16, putBe32 } from "../bytes.ts";
import { Asc, Status, illegalRequest, type ScsiResult } from "../sense.ts";

/** SPC-4 table 282 SELECT REPORT: 00h all LUs, 01h well-known only, 02h all; 10h-12h administrative. */
const SelectReport = { all: 0x00, wellKnownOnly: 0x01, allLogicalUnits: 0x02 } as const;
const administrativeSelectMin = 0x10;
const administrativeSelectMax = 0x12;
/** SPC-4 §6.33: an ALLOCATION LENGTH under 16 bytes is an error. */
const allocationBytesMin = 16;
/** SAM-5 §4.7.3: peripheral device addressing covers LUNs 0..255, flat space 0..16383. */
const peripheralLunMax = 255;
export const flatSpaceLunMax = 16383;
const flatSpaceMethod = 0x4000; // ADDRESS METHOD 01b in the top two bits of the first 16-bit word
/** SAM-5 §4.7.7: the REPORT LUNS well-known LUN is C101h. */
export const reportLunsWellKnownLun = 0xc101;

/** Writes an 8-byte LUN field for `lun` (peripheral addressing below 256, flat space above). */
export function encodeLun(lun: number, out: Uint8Array, at: number): void {
  assert(Number.isInteger(lun) && lun >= 0 && lun <= flatSpaceLunMax, "LUN out of range");
  out.fill(0, at, at + 8);
  if (lun <= peripheralLunMax) out[at + 1] = lun;
  else putBe16(out, at, flatSpaceMethod | lun);
}

/**
 * The LUN addressed by an 8-byte LUN field: a number for peripheral and flat space addressing,
 * `reportLunsWellKnownLun` for that well-known LUN, and -1 for anything else (no such LU).
 */
export function decodeLun(field: Uint8Array, at: number): number {
  const b0 = field[at] as number;
  const b1 = field[at + 1] as number;
  for (let i = 2; i < 8; i++) if (field[at + i] !== 0) return -1; // second-level addressing
  switch (b0 >>> 6) {
    case 0:
      return b0 === 0 ? b1 : -1; // bus identifier must be 0
    case 1:
      return ((b0 & 0x3f) << 8) | b1;
    case 3:
      return ((b0 << 8) | b1) === reportLunsWellKnownLun ? reportLunsWellKnownLun : -1;
    default:
      return -1;
  }
}

export function reportLuns(command: { selectReport: number; allocationBytes: number }, lunNumbers: readonly number[]): ScsiResult {
  const select = command.selectReport;
  const administrative = select >= administrativeSelectMin && select <= administrativeSelectMax;
  if (select > SelectReport.allLogicalUnits && !administrative) return illegalRequest(Asc.invalidFieldInCdb);
  if (command.allocationBytes < allocationBytesMin) return illegalRequest(Asc.invalidFieldInCdb);
  const luns = select === SelectReport.wellKnownOnly ? [] : lunNumbers;
  const b = new Uint8Array(8 + luns.length * 8);
  putBe32(b, 0, luns.length * 8); // LUN LIST LENGTH
  luns.forEach((lun, i) => encodeLun(lun, b, 8 + i * 8));
  return { status: Status.good, data: cutToAllocation(b, command.allocationBytes) };
}
