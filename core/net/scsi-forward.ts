// The wire form of a SCSI command that a node's portal forwards to the LUN's coordinator, and of
// its result; and the CBOR body of a forwarded task management request (LU reset) or I_T nexus
// end. Pure: values in, bytes out, and back. It knows no SCSI semantics (core/scsi decodes the
// CDB at the coordinator) and never throws on bytes from the network: a malformed payload is a
// returned reason. It asserts only on values this node itself asks it to encode.
//
// Forwarding at the command level keeps one logical unit state (reservations, unit attentions,
// COMPARE AND WRITE's exclusion) at the coordinator: the request carries everything the
// coordinator's SCSI layer needs to run the command as if it had arrived there, including the
// I_T nexus it came through (initiator name, ISID, the receiving node's relative target port).
import { assert } from "../util/assert.ts";
import { buildFrame, encodeFrame, frameFlags } from "./frame.ts";
import { decodeCbor, encodeCbor, getU64, messageType, setU64, u64Max, volumeIdBytes, type Decoded } from "./messages.ts";

/** A CDB travels as 16 bytes whatever its length (the iSCSI BHS carries 16: RFC 7143 §11.3). */
export const cdbBytes = 16;
/** The ISID of the initiator port (RFC 7143 §11.12.5), 6 bytes. */
export const isidBytes = 6;
/** iSCSI names are at most 223 bytes (RFC 7143 §4.2.7.1); a u8 length holds them. */
export const initiatorNameBytesMax = 223;
/** Data-Out or Data-In of one forwarded command: the iSCSI connection's own per-command maximum. */
export const forwardDataBytesMax = 16 << 20;
/** The longest payload of a forwarded command's frame: data plus fixed fields and the name (the peer connections' decoder limit). */
export const forwardFramePayloadBytesMax = forwardDataBytesMax + 4096;

/**
 * forward request (all integers big-endian):
 *   0 lunId[16]  16 u16 relativePortId  18 u8 flags  19 u8 initiatorNameBytes  20 isid[6]
 *   26 u16 reserved  28 u32 dataInBytesMax  32 u32 dataOutBytes  36 u32 reserved  40 cdb[16]
 *   56 initiatorName[initiatorNameBytes] (UTF-8)  then dataOut[dataOutBytes]
 */
export const forwardRequestFixedBytes = 56;
const Req = { lunId: 0, relativePortId: 16, flags: 18, nameBytes: 19, isid: 20, dataInBytesMax: 28, dataOutBytes: 32, cdb: 40 } as const;
/** flags bit 0: the command has a Data-Out buffer (a write-direction command; it may be empty). */
const reqHasDataOut = 0x01;

export interface ForwardRequest {
  /** The LUN's uuid as 16 bytes (a view when decoded). */
  lunId: Uint8Array;
  /** The receiving node's target port (SPC-4 RELATIVE TARGET PORT IDENTIFIER). */
  relativePortId: number;
  initiatorName: string;
  /** 6 bytes (a view when decoded). */
  isid: Uint8Array;
  /** 16 bytes (a view when decoded). */
  cdb: Uint8Array;
  /** Data-Out the initiator sent; null for a command without one (a view when decoded). */
  dataOut: Uint8Array | null;
  /** iSCSI's Expected Data Transfer Length: the most Data-In the initiator takes. */
  dataInBytesMax: number;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

export function forwardRequestFrame(requestId: number, m: ForwardRequest, tagBytes = 0): Uint8Array {
  assert(m.lunId.byteLength === volumeIdBytes, "a LUN id is 16 bytes");
  assert(m.isid.byteLength === isidBytes, "an ISID is 6 bytes");
  assert(m.cdb.byteLength === cdbBytes, "a CDB travels as 16 bytes");
  assert(Number.isInteger(m.relativePortId) && m.relativePortId >= 1 && m.relativePortId <= 0xffff, "relative port id is 1..65535");
  assert(Number.isInteger(m.dataInBytesMax) && m.dataInBytesMax >= 0 && m.dataInBytesMax <= 0xffffffff);
  const name = textEncoder.encode(m.initiatorName);
  assert(name.byteLength >= 1 && name.byteLength <= initiatorNameBytesMax, "initiator name is 1..223 bytes");
  const dataOutBytes = m.dataOut?.byteLength ?? 0;
  assert(dataOutBytes <= forwardDataBytesMax, "Data-Out beyond the forwarding maximum");
  return buildFrame({ type: messageType.scsiCommand, flags: 0, requestId }, {
    payloadBytes: forwardRequestFixedBytes + name.byteLength + dataOutBytes,
    tagBytes,
    filledTailBytes: dataOutBytes,
    fill: (p) => {
      const v = new DataView(p.buffer, p.byteOffset, forwardRequestFixedBytes);
      p.set(m.lunId, Req.lunId);
      v.setUint16(Req.relativePortId, m.relativePortId);
      p[Req.flags] = m.dataOut === null ? 0 : reqHasDataOut;
      p[Req.nameBytes] = name.byteLength;
      p.set(m.isid, Req.isid);
      v.setUint32(Req.dataInBytesMax, m.dataInBytesMax);
      v.setUint32(Req.dataOutBytes, dataOutBytes);
      p.set(m.cdb, Req.cdb);
      p.set(name, forwardRequestFixedBytes);
      if (m.dataOut !== null) p.set(m.dataOut, forwardRequestFixedBytes + name.byteLength);
    },
  });
}

export function decodeForwardRequest(p: Uint8Array): Decoded<ForwardRequest> {
  if (p.byteLength < forwardRequestFixedBytes) return { ok: false, reason: `forward request of ${p.byteLength} bytes, shorter than its ${forwardRequestFixedBytes} fixed bytes` };
  const v = new DataView(p.buffer, p.byteOffset, forwardRequestFixedBytes);
  const flags = p[Req.flags] as number;
  if ((flags & ~reqHasDataOut) !== 0) return { ok: false, reason: `unknown forward request flags 0x${flags.toString(16)}` };
  const relativePortId = v.getUint16(Req.relativePortId);
  if (relativePortId === 0) return { ok: false, reason: "relative port id 0 is reserved" };
  const nameBytes = p[Req.nameBytes] as number;
  if (nameBytes === 0 || nameBytes > initiatorNameBytesMax) return { ok: false, reason: `initiator name of ${nameBytes} bytes` };
  const dataOutBytes = v.getUint32(Req.dataOutBytes);
  if (dataOutBytes > forwardDataBytesMax) return { ok: false, reason: `Data-Out of ${dataOutBytes} bytes, more than ${forwardDataBytesMax}` };
  if ((flags & reqHasDataOut) === 0 && dataOutBytes !== 0) return { ok: false, reason: "Data-Out bytes without the Data-Out flag" };
  if (p.byteLength !== forwardRequestFixedBytes + nameBytes + dataOutBytes) return { ok: false, reason: `forward request says ${nameBytes}+${dataOutBytes} bytes follow but carries ${p.byteLength - forwardRequestFixedBytes}` };
  let initiatorName: string;
  try {
    initiatorName = textDecoder.decode(p.subarray(forwardRequestFixedBytes, forwardRequestFixedBytes + nameBytes));
  } catch {
    return { ok: false, reason: "initiator name is not UTF-8" };
  }
  const dataAt = forwardRequestFixedBytes + nameBytes;
  return {
    ok: true,
    value: {
      lunId: p.subarray(Req.lunId, Req.lunId + volumeIdBytes),
      relativePortId,
      initiatorName,
      isid: p.subarray(Req.isid, Req.isid + isidBytes),
      cdb: p.subarray(Req.cdb, Req.cdb + cdbBytes),
      dataOut: (flags & reqHasDataOut) === 0 ? null : p.subarray(dataAt, dataAt + dataOutBytes),
      dataInBytesMax: v.getUint32(Req.dataInBytesMax),
    },
  };
}

/**
 * forward response:
 *   0 u8 status (SAM-5)  1 u8 flags  2 u8 senseKey  3 u8 asc  4 u8 ascq  5..7 reserved
 *   8 u64 information  16 u32 commandSpecific  20 u32 senseKeySpecific  24 u32 scsiBytes
 *   28 u32 dataBytes  32 data[dataBytes]
 * The sense travels as its fields, not as fixed-format bytes: the receiving portal encodes it
 * exactly as it would a local command's (one encoder, core/scsi/sense.ts).
 */
export const forwardResponseFixedBytes = 32;
const Res = { status: 0, flags: 1, senseKey: 2, asc: 3, ascq: 4, information: 8, commandSpecific: 16, senseKeySpecific: 20, scsiBytes: 24, dataBytes: 28 } as const;
const ResFlag = { sense: 0x01, information: 0x02, commandSpecific: 0x04, senseKeySpecific: 0x08, scsiBytes: 0x10 } as const;
const resFlagsKnown = 0x1f;

export interface ForwardSense {
  key: number;
  asc: number;
  ascq: number;
  information?: number;
  commandSpecific?: number;
  senseKeySpecific?: number;
}

export interface ForwardResponse {
  status: number;
  sense?: ForwardSense;
  /** Data-In (a view when decoded; empty when the command produced none). */
  data: Uint8Array;
  /** The command's transfer length in bytes when the CDB names one (for residuals). */
  scsiBytes?: number;
}

export function forwardResponseFrame(requestId: number, m: ForwardResponse, tagBytes = 0): Uint8Array {
  assert(Number.isInteger(m.status) && m.status >= 0 && m.status <= 0xff);
  assert(m.data.byteLength <= forwardDataBytesMax, "Data-In beyond the forwarding maximum");
  assert(m.scsiBytes === undefined || (Number.isInteger(m.scsiBytes) && m.scsiBytes >= 0 && m.scsiBytes <= 0xffffffff));
  const s = m.sense;
  if (s !== undefined) {
    assert(s.key >= 0 && s.key <= 0xf && s.asc >= 0 && s.asc <= 0xff && s.ascq >= 0 && s.ascq <= 0xff, "sense fields out of range");
    assert(s.commandSpecific === undefined || (s.commandSpecific >= 0 && s.commandSpecific <= 0xffffffff));
    assert(s.senseKeySpecific === undefined || (s.senseKeySpecific >= 0 && s.senseKeySpecific <= 0xffffff));
  }
  return buildFrame({ type: messageType.scsiCommand, flags: frameFlags.response, requestId }, {
    payloadBytes: forwardResponseFixedBytes + m.data.byteLength,
    tagBytes,
    filledTailBytes: m.data.byteLength,
    fill: (p) => {
      const v = new DataView(p.buffer, p.byteOffset, forwardResponseFixedBytes);
      let flags = 0;
      p[Res.status] = m.status;
      if (s !== undefined) {
        flags |= ResFlag.sense;
        p[Res.senseKey] = s.key;
        p[Res.asc] = s.asc;
        p[Res.ascq] = s.ascq;
        if (s.information !== undefined) {
          flags |= ResFlag.information;
          setU64(v, Res.information, s.information);
        }
        if (s.commandSpecific !== undefined) {
          flags |= ResFlag.commandSpecific;
          v.setUint32(Res.commandSpecific, s.commandSpecific);
        }
        if (s.senseKeySpecific !== undefined) {
          flags |= ResFlag.senseKeySpecific;
          v.setUint32(Res.senseKeySpecific, s.senseKeySpecific);
        }
      }
      if (m.scsiBytes !== undefined) {
        flags |= ResFlag.scsiBytes;
        v.setUint32(Res.scsiBytes, m.scsiBytes);
      }
      p[Res.flags] = flags;
      v.setUint32(Res.dataBytes, m.data.byteLength);
      p.set(m.data, forwardResponseFixedBytes);
    },
  });
}

export function decodeForwardResponse(p: Uint8Array): Decoded<ForwardResponse> {
  if (p.byteLength < forwardResponseFixedBytes) return { ok: false, reason: `forward response of ${p.byteLength} bytes, shorter than its ${forwardResponseFixedBytes} fixed bytes` };
  const v = new DataView(p.buffer, p.byteOffset, forwardResponseFixedBytes);
  const flags = p[Res.flags] as number;
  if ((flags & ~resFlagsKnown) !== 0) return { ok: false, reason: `unknown forward response flags 0x${flags.toString(16)}` };
  if ((flags & ResFlag.sense) === 0 && (flags & (ResFlag.information | ResFlag.commandSpecific | ResFlag.senseKeySpecific)) !== 0) return { ok: false, reason: "sense fields without sense" };
  const dataBytes = v.getUint32(Res.dataBytes);
  if (dataBytes > forwardDataBytesMax) return { ok: false, reason: `Data-In of ${dataBytes} bytes, more than ${forwardDataBytesMax}` };
  if (p.byteLength !== forwardResponseFixedBytes + dataBytes) return { ok: false, reason: `forward response says ${dataBytes} data bytes but carries ${p.byteLength - forwardResponseFixedBytes}` };
  const out: ForwardResponse = { status: p[Res.status] as number, data: p.subarray(forwardResponseFixedBytes) };
  if ((flags & ResFlag.sense) !== 0) {
    const key = p[Res.senseKey] as number;
    if (key > 0xf) return { ok: false, reason: `sense key ${key} beyond 0xf` };
    const sense: ForwardSense = { key, asc: p[Res.asc] as number, ascq: p[Res.ascq] as number };
    if ((flags & ResFlag.information) !== 0) {
      const information = getU64(v, Res.information);
      if (information > u64Max) return { ok: false, reason: "sense information beyond 2^53" };
      sense.information = information;
    }
    if ((flags & ResFlag.commandSpecific) !== 0) sense.commandSpecific = v.getUint32(Res.commandSpecific);
    if ((flags & ResFlag.senseKeySpecific) !== 0) {
      const sks = v.getUint32(Res.senseKeySpecific);
      if (sks > 0xffffff) return { ok: false, reason: "sense-key specific beyond 24 bits" };
      sense.senseKeySpecific = sks;
    }
    out.sense = sense;
  }
  if ((flags & ResFlag.scsiBytes) !== 0) out.scsiBytes = v.getUint32(Res.scsiBytes);
  return { ok: true, value: out };
}

// ---- task management and nexus end (CBOR: rare and small) --------------------------------

/** What a portal tells the coordinator besides commands. */
export const scsiTaskKinds = ["lu-reset", "nexus-lost"] as const;
export type ScsiTaskKind = (typeof scsiTaskKinds)[number];

export interface ScsiTaskRequest {
  kind: ScsiTaskKind;
  /** The LUN's uuid (text). */
  lun: string;
  initiatorName: string;
  /** The ISID in 12 hex digits. */
  isid: string;
  relativePortId: number;
}

export function scsiTaskFrame(requestId: number, m: ScsiTaskRequest, tagBytes = 0): Uint8Array {
  assert(/^[0-9a-f]{12}$/.test(m.isid), "ISID as 12 lower-case hex digits");
  return encodeFrame({ type: messageType.scsiTask, flags: 0, requestId }, encodeCbor({ kind: m.kind, lun: m.lun, initiatorName: m.initiatorName, isid: m.isid, relativePortId: m.relativePortId }), tagBytes);
}

export function decodeScsiTask(payload: Uint8Array): Decoded<ScsiTaskRequest> {
  const d = decodeCbor(payload);
  if (!d.ok) return d;
  const { kind, lun, initiatorName, isid, relativePortId } = d.value;
  if (typeof kind !== "string" || !(scsiTaskKinds as readonly string[]).includes(kind)) return { ok: false, reason: "scsi task of an unknown kind" };
  if (typeof lun !== "string" || typeof initiatorName !== "string" || initiatorName.length === 0 || initiatorName.length > initiatorNameBytesMax) return { ok: false, reason: "scsi task lacks lun/initiatorName" };
  if (typeof isid !== "string" || !/^[0-9a-f]{12}$/.test(isid)) return { ok: false, reason: "scsi task ISID is not 12 hex digits" };
  if (typeof relativePortId !== "number" || !Number.isInteger(relativePortId) || relativePortId < 1 || relativePortId > 0xffff) return { ok: false, reason: "scsi task relative port id out of range" };
  return { ok: true, value: { kind: kind as ScsiTaskKind, lun, initiatorName, isid, relativePortId } };
}

/** The scsi task's answer: an empty CBOR map (failures travel as error frames). */
export function scsiTaskDoneFrame(requestId: number, tagBytes = 0): Uint8Array {
  return encodeFrame({ type: messageType.scsiTask, flags: frameFlags.response, requestId }, encodeCbor({}), tagBytes);
}
