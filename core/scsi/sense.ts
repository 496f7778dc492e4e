// SCSI status codes, sense keys, additional sense codes and the fixed-format sense encoder
// (SAM-5 §5.3, SPC-4 §4.5). Pure values: this file never performs I/O and never throws for an
// expected outcome; a command that fails returns a `ScsiResult` built here.
import { assert } from "../util/assert.ts";
import { errorTable, type ErrorCode, type ErrorSpec } from "../util/errors.ts";

/** SAM-5 table 47: status codes. */
export const Status = {
  good: 0x00,
  checkCondition: 0x02,
  busy: 0x08,
  reservationConflict: 0x18,
  taskSetFull: 0x28,
  taskAborted: 0x40,
} as const;

/** SPC-4 table 27: sense keys. */
export const SenseKey = {
  noSense: 0x0,
  notReady: 0x2,
  mediumError: 0x3,
  hardwareError: 0x4,
  illegalRequest: 0x5,
  unitAttention: 0x6,
  dataProtect: 0x7,
  copyAborted: 0xa,
  abortedCommand: 0xb,
  miscompare: 0xe,
} as const;

export interface AdditionalSense {
  readonly asc: number;
  readonly ascq: number;
}

/** SPC-4 table 28: the additional sense codes this target reports. */
export const Asc = {
  noAdditionalSense: { asc: 0x00, ascq: 0x00 },
  unrecoveredReadError: { asc: 0x11, ascq: 0x00 },
  parameterListLengthError: { asc: 0x1a, ascq: 0x00 },
  invalidCommandOperationCode: { asc: 0x20, ascq: 0x00 },
  lbaOutOfRange: { asc: 0x21, ascq: 0x00 },
  invalidFieldInCdb: { asc: 0x24, ascq: 0x00 },
  logicalUnitNotSupported: { asc: 0x25, ascq: 0x00 },
  invalidFieldInParameterList: { asc: 0x26, ascq: 0x00 },
  powerOnResetOrBusDeviceReset: { asc: 0x29, ascq: 0x00 },
  modeParametersChanged: { asc: 0x2a, ascq: 0x01 },
  reservationsPreempted: { asc: 0x2a, ascq: 0x03 },
  reservationsReleased: { asc: 0x2a, ascq: 0x04 },
  registrationsPreempted: { asc: 0x2a, ascq: 0x05 },
  capacityDataChanged: { asc: 0x2a, ascq: 0x09 },
  commandsClearedByAnotherInitiator: { asc: 0x2f, ascq: 0x00 },
  savingParametersNotSupported: { asc: 0x39, ascq: 0x00 },
  internalTargetFailure: { asc: 0x44, ascq: 0x00 },
  operationInProgress: { asc: 0x00, ascq: 0x16 },
  unreachableCopyTarget: { asc: 0x08, ascq: 0x04 },
  copyTargetDeviceNotReachable: { asc: 0x0d, ascq: 0x02 },
  tooManyTargetDescriptors: { asc: 0x26, ascq: 0x06 },
  unsupportedTargetDescriptorType: { asc: 0x26, ascq: 0x07 },
  tooManySegmentDescriptors: { asc: 0x26, ascq: 0x08 },
  unsupportedSegmentDescriptorType: { asc: 0x26, ascq: 0x09 },
  insufficientResources: { asc: 0x55, ascq: 0x03 },
  reportedLunsDataChanged: { asc: 0x3f, ascq: 0x0e },
  /** With NOT READY: the path's access state is changing (SPC-4 §5.15.2.6); initiators retry. A forwarded LUN's coordinator out of reach says this. */
  asymmetricAccessStateTransition: { asc: 0x04, ascq: 0x0a },
} as const satisfies Record<string, AdditionalSense>;

export interface Sense {
  readonly key: number;
  readonly asc: number;
  readonly ascq: number;
  /** INFORMATION field (for a medium error: the first bad LBA); sets the VALID bit. */
  readonly information?: number;
  /** COMMAND-SPECIFIC INFORMATION field (bytes 8..11; EXTENDED COPY's copy target sense offset). */
  readonly commandSpecific?: number;
  /** SENSE KEY SPECIFIC field, the three bytes 15..17 with SKSV set (see fieldPointer, segmentPointer). */
  readonly senseKeySpecific?: number;
}

/** SPC-4 §4.5.2.4: SKSV, the top bit of the sense-key specific field. */
const sksv = 0x80_0000;
/** SPC-4 §4.5.2.4.2 field pointer: C/D (the error is in the CDB), BPV (the bit pointer is valid). */
const fieldPointerInCdb = 0x40_0000;
const bitPointerValid = 0x08_0000;
/** SPC-4 §4.5.2.4.5 segment pointer: SD (the field pointer is inside the segment descriptor). */
const segmentDescriptorRelative = 0x20_0000;

/**
 * The sense-key specific field pointing at the byte (and bit) that was wrong, in the CDB or in
 * the parameter list. Initiators use it, and libiscsi tells "not implemented" from "bad field" by it.
 */
export function fieldPointer(options: { inCdb: boolean; byte: number; bit?: number }): number {
  assert(options.byte >= 0 && options.byte <= 0xffff, "field pointer out of range");
  const bit = options.bit === undefined ? 0 : bitPointerValid | ((options.bit & 0x07) << 16);
  return sksv | (options.inCdb ? fieldPointerInCdb : 0) | bit | options.byte;
}

/** The segment pointer of a COPY ABORTED sense: the byte inside the failed segment descriptor. */
export function segmentPointer(byteInSegment: number): number {
  assert(byteInSegment >= 0 && byteInSegment <= 0xffff, "segment pointer out of range");
  return sksv | segmentDescriptorRelative | byteInSegment;
}

export interface ScsiResult {
  readonly status: number;
  readonly sense?: Sense;
  /**
   * Data-In for the initiator, already cut to the CDB's allocation length. A view: valid until
   * the next call on the same logical unit (the device's read buffer), so the transport sends or
   * copies it before running another command.
   */
  readonly data?: Uint8Array;
  /**
   * The transfer length the command asked for in bytes, when the CDB names one (READ/WRITE):
   * the transport computes residuals against it (RFC 7143 §11.4.5.2).
   */
  readonly scsiBytes?: number;
}

export const goodResult: ScsiResult = { status: Status.good };

export function checkCondition(key: number, additional: AdditionalSense, information?: number): ScsiResult {
  const sense: Sense = information === undefined ? { key, asc: additional.asc, ascq: additional.ascq } : { key, asc: additional.asc, ascq: additional.ascq, information };
  return { status: Status.checkCondition, sense };
}

/** ILLEGAL REQUEST with a field pointer to what was wrong (SPC-4 §4.5.2.4.2). */
export function illegalField(additional: AdditionalSense, pointer: { inCdb: boolean; byte: number; bit?: number }): ScsiResult {
  return { status: Status.checkCondition, sense: { key: SenseKey.illegalRequest, asc: additional.asc, ascq: additional.ascq, senseKeySpecific: fieldPointer(pointer) } };
}

export const illegalRequest = (additional: AdditionalSense): ScsiResult => checkCondition(SenseKey.illegalRequest, additional);

/** A CHECK CONDITION for a qstora error code, with the sense from the one error table. */
/** NOT READY, ASYMMETRIC ACCESS STATE TRANSITION: the LUN is (for a moment) served elsewhere; initiators retry it. */
export function isAccessStateTransition(r: ScsiResult): boolean {
  const s = r.sense;
  return r.status === Status.checkCondition && s !== undefined && s.key === SenseKey.notReady && s.asc === Asc.asymmetricAccessStateTransition.asc && s.ascq === Asc.asymmetricAccessStateTransition.ascq;
}

export function senseForErrorCode(code: ErrorCode, information?: number): ScsiResult {
  const spec: ErrorSpec = errorTable[code];
  const sense = spec.sense ?? errorTable.INTERNAL.sense;
  return checkCondition(sense.key, { asc: sense.asc, ascq: sense.ascq }, information);
}

/** SPC-4 §4.5.3: fixed-format sense data is 18 bytes with ADDITIONAL SENSE LENGTH 10. */
export const fixedSenseBytes = 18;
const fixedSenseCurrentError = 0x70; // RESPONSE CODE 70h: current error, fixed format
const fixedSenseValid = 0x80; // byte 0 bit 7: the INFORMATION field is valid
const fixedSenseAdditionalLength = 10; // bytes 8..17

/** Writes fixed-format sense data into `out` at `at`; returns the bytes written (always 18). */
export function encodeFixedSense(sense: Sense, out: Uint8Array, at: number): number {
  assert(at + fixedSenseBytes <= out.length, "sense buffer too small");
  assert(sense.key >= 0 && sense.key <= 0xf, "sense key out of range");
  out.fill(0, at, at + fixedSenseBytes);
  out[at] = fixedSenseCurrentError | (sense.information === undefined ? 0 : fixedSenseValid);
  out[at + 2] = sense.key;
  if (sense.information !== undefined) {
    // The INFORMATION field holds 4 bytes; a larger LBA cannot be reported in fixed format
    // (SPC-4 §4.5.3: VALID is then cleared).
    if (sense.information > 0xffffffff) out[at] = fixedSenseCurrentError;
    else {
      const v = sense.information >>> 0;
      out[at + 3] = v >>> 24;
      out[at + 4] = v >>> 16;
      out[at + 5] = v >>> 8;
      out[at + 6] = v;
    }
  }
  out[at + 7] = fixedSenseAdditionalLength;
  if (sense.commandSpecific !== undefined) {
    assert(sense.commandSpecific >= 0 && sense.commandSpecific <= 0xffffffff, "command-specific information out of range");
    const v = sense.commandSpecific >>> 0;
    out[at + 8] = v >>> 24;
    out[at + 9] = v >>> 16;
    out[at + 10] = v >>> 8;
    out[at + 11] = v;
  }
  out[at + 12] = sense.asc;
  out[at + 13] = sense.ascq;
  if (sense.senseKeySpecific !== undefined) {
    assert((sense.senseKeySpecific & sksv) !== 0 && sense.senseKeySpecific <= 0xffffff, "sense-key specific needs SKSV");
    out[at + 15] = sense.senseKeySpecific >>> 16;
    out[at + 16] = sense.senseKeySpecific >>> 8;
    out[at + 17] = sense.senseKeySpecific;
  }
  return fixedSenseBytes;
}

export function encodeSense(sense: Sense): Uint8Array {
  const out = new Uint8Array(fixedSenseBytes);
  encodeFixedSense(sense, out, 0);
  return out;
}
