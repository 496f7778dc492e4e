// PERSISTENT RESERVE IN/OUT (SPC-4 §6.14, §6.15, §5.7), RESERVE/RELEASE(6/10) (SPC-2 §7.21,
// §7.17) and the reservation conflict check that runs before every command. Works on a
// LunState; never does I/O (persistence goes through LunState.persist). Expected outcomes
// (conflicts, bad parameter lists) are returned as ScsiResults, never thrown.
import type { Command } from "../cdb.ts";
import { be16, be32, cutToAllocation, putBe16, putBe32 } from "../bytes.ts";
import { UnitAttention, registrationsMax, type LunState, type Nexus } from "../lun-state.ts";
import { Asc, SenseKey, Status, checkCondition, goodResult, illegalRequest, type ScsiResult } from "../sense.ts";

/** SPC-4 table 170: PERSISTENT RESERVE OUT service actions. */
export const ProutAction = { register: 0, reserve: 1, release: 2, clear: 3, preempt: 4, preemptAndAbort: 5, registerAndIgnore: 6, registerAndMove: 7 } as const;
/** SPC-4 table 162: PERSISTENT RESERVE IN service actions. */
export const PrinAction = { readKeys: 0, readReservation: 1, reportCapabilities: 2, readFullStatus: 3 } as const;
/** SPC-4 table 169: reservation types. */
export const PrType = { writeExclusive: 1, exclusiveAccess: 3, writeExclusiveRegistrantsOnly: 5, exclusiveAccessRegistrantsOnly: 6, writeExclusiveAllRegistrants: 7, exclusiveAccessAllRegistrants: 8 } as const;
const validTypes = new Set<number>(Object.values(PrType));
/** SPC-4 §6.15.3: the basic PERSISTENT RESERVE OUT parameter list is 24 bytes. */
const basicParameterBytes = 24;
/** Byte 20 of the basic parameter list. */
const flagSpecIPt = 0x08;
const flagAllTgPt = 0x04;
const flagAptpl = 0x01;
/** With SPEC_I_PT, bytes 24..27 give the length of the TransportIDs that follow (SPC-4 §6.15.3). */
const specIPtHeaderBytes = basicParameterBytes + 4;
/** TransportIDs one SPEC_I_PT registration may name. */
const specIPtPortsMax = 64;
/** Byte 17 of the REGISTER AND MOVE parameter list (SPC-4 §6.15.4). */
const moveUnreg = 0x02;
const moveAptpl = 0x01;
/** SPC-4 §6.15.4: REGISTER AND MOVE's TransportID starts at byte 24. */
const moveTransportIdAt = 24;
/** SPC-4 §7.6.4.6: iSCSI TransportID, PROTOCOL IDENTIFIER 5h; FORMAT CODE 01b carries an initiator port name. */
const protocolIscsi = 0x05;
const transportIdPortFormat = 0x40;
/** LU_SCOPE, the only scope (SPC-4 table 168). */
const scopeLogicalUnit = 0;
/** SPC-4 table 28: INVALID RELEASE OF PERSISTENT RESERVATION, INSUFFICIENT REGISTRATION RESOURCES. */
const invalidRelease = { asc: 0x26, ascq: 0x04 } as const;
const insufficientRegistrationResources = { asc: 0x55, ascq: 0x04 } as const;
/** REPORT CAPABILITIES (SPC-4 §6.14.4): length 8; CRH, ATP_C, PTPL_C; TMV and the type mask. */
const capabilitiesBytes = 8;
const capCrh = 0x10;
const capSipC = 0x08;
const capAtpC = 0x04;
const capPtplC = 0x01;
const capTmv = 0x80;
const capPtplA = 0x01;
const typeMask = [0x80 | 0x40 | 0x20 | 0x08 | 0x02, 0x01] as const;

export const reservationConflict: ScsiResult = { status: Status.reservationConflict };

const allRegistrants = (type: number): boolean => type === PrType.writeExclusiveAllRegistrants || type === PrType.exclusiveAccessAllRegistrants;
const registrantsOnly = (type: number): boolean => type === PrType.writeExclusiveRegistrantsOnly || type === PrType.exclusiveAccessRegistrantsOnly;
const exclusiveAccessType = (type: number): boolean => type === PrType.exclusiveAccess || type === PrType.exclusiveAccessRegistrantsOnly || type === PrType.exclusiveAccessAllRegistrants;

function isHolder(state: LunState, nexusId: string): boolean {
  const r = state.reservation;
  if (r === null) return false;
  return allRegistrants(r.type) ? state.registrations.has(nexusId) : r.holder === nexusId;
}

/** How a command touches the medium, for the conflict tables (SPC-4 table 63, SBC-3 table 13). */
function access(command: Command): "none" | "read" | "write" {
  switch (command.kind) {
    case "read":
    case "verify":
    case "pre-fetch":
    case "get-lba-status":
    case "mode-sense":
    case "read-defect-data":
      return "read";
    case "write":
    case "write-same":
    case "unmap":
    case "compare-and-write":
    case "or-write":
    case "synchronize-cache":
    case "mode-select":
    case "start-stop-unit":
    case "prevent-allow-medium-removal":
      return "write";
    case "reserve":
    case "release":
      return "write";
    default:
      return "none";
  }
}

/** RESERVATION CONFLICT when a reservation held through another nexus forbids `command`; else null. */
export function checkReservation(state: LunState, nexus: Nexus, command: Command): ScsiResult | null {
  if (state.reservedBy !== null && state.reservedBy !== nexus.id) {
    // SPC-2 §5.5.1: under a RESERVE(6/10) held elsewhere only these run; RELEASE answers GOOD.
    switch (command.kind) {
      case "inquiry":
      case "report-luns":
      case "request-sense":
      case "release":
      case "report-target-port-groups":
      case "report-supported-opcodes":
      case "report-supported-tmf":
      case "read-capacity-10":
      case "read-capacity-16":
        return null;
      default:
        return reservationConflict;
    }
  }
  const r = state.reservation;
  if (r === null || isHolder(state, nexus.id)) return null;
  const kind = access(command);
  if (kind === "none") return null;
  if (command.kind === "reserve" || command.kind === "release") return reservationConflict;
  const registered = state.registrations.has(nexus.id);
  if ((registrantsOnly(r.type) || allRegistrants(r.type)) && registered) return null;
  if (kind === "read" && !exclusiveAccessType(r.type)) return null;
  return reservationConflict;
}

/** RESERVE(6/10): SPC-2 reservation of the whole LU; conflicts with persistent reservations. */
export function reserve(state: LunState, nexus: Nexus): ScsiResult {
  if (state.reservedBy !== null && state.reservedBy !== nexus.id) return reservationConflict;
  if (state.reservation !== null && !isHolder(state, nexus.id)) return reservationConflict;
  state.reservedBy = nexus.id;
  return goodResult;
}

export function release(state: LunState, nexus: Nexus): ScsiResult {
  if (state.reservedBy === nexus.id) state.reservedBy = null;
  return goodResult;
}

const readKey = (b: Uint8Array, at: number): bigint => (BigInt(be32(b, at)) << 32n) | BigInt(be32(b, at + 4));
function putKey(b: Uint8Array, at: number, key: bigint): void {
  putBe32(b, at, Number((key >> 32n) & 0xffffffffn));
  putBe32(b, at + 4, Number(key & 0xffffffffn));
}

/** The iSCSI TransportID (FORMAT 01b: initiator port name), NUL-terminated, padded to 4 (SPC-4 §7.6.4.6). */
export function encodeTransportId(initiatorPort: string): Uint8Array {
  const name = new TextEncoder().encode(initiatorPort);
  const nameBytes = (name.length + 1 + 3) & ~3;
  const b = new Uint8Array(4 + nameBytes);
  b[0] = transportIdPortFormat | protocolIscsi;
  putBe16(b, 2, nameBytes);
  b.set(name, 4);
  return b;
}

/** The initiator port named by an iSCSI TransportID; null when it is not one we can use. */
export function decodeTransportId(b: Uint8Array): string | null {
  if (b.length < 4 || ((b[0] as number) & 0x0f) !== protocolIscsi) return null;
  const length = be16(b, 2);
  if (4 + length > b.length) return null;
  const body = b.subarray(4, 4 + length);
  const nul = body.indexOf(0);
  const text = new TextDecoder().decode(nul < 0 ? body : body.subarray(0, nul));
  // FORMAT 00b names only the initiator; FORMAT 01b has ",i,0x<ISID>" (the separator is case-insensitive).
  if (((b[0] as number) & 0xc0) === transportIdPortFormat) {
    const m = /^(.+),i,0x([0-9a-f]{12})$/i.exec(text);
    return m === null ? null : `${m[1] as string},i,0x${(m[2] as string).toLowerCase()}`;
  }
  return null;
}

function specifiesPorts(action: number, p: Uint8Array): boolean {
  return (action === ProutAction.register || action === ProutAction.registerAndIgnore) && p.length > 20 && ((p[20] as number) & flagSpecIPt) !== 0;
}

/** The initiator ports a SPEC_I_PT list of iSCSI TransportIDs names; null if one is not usable. */
function transportIdPorts(list: Uint8Array): string[] | null {
  const out: string[] = [];
  for (let at = 0; at < list.length; ) {
    if (at + 4 > list.length || out.length >= specIPtPortsMax) return null;
    const length = 4 + be16(list, at + 2);
    const port = decodeTransportId(list.subarray(at, at + length));
    if (port === null) return null;
    out.push(port);
    at += length;
  }
  return out;
}

export function persistentReserveIn(state: LunState, command: { serviceAction: number; allocationBytes: number }): ScsiResult {
  let out: Uint8Array;
  switch (command.serviceAction) {
    case PrinAction.readKeys: {
      const keys = [...state.registrations.values()];
      out = new Uint8Array(8 + keys.length * 8);
      putBe32(out, 0, state.generation);
      putBe32(out, 4, keys.length * 8);
      keys.forEach((r, i) => putKey(out, 8 + i * 8, r.key));
      break;
    }
    case PrinAction.readReservation: {
      const r = state.reservation;
      out = new Uint8Array(r === null ? 8 : 24);
      putBe32(out, 0, state.generation);
      if (r !== null) {
        putBe32(out, 4, 16);
        // SPC-4 §6.14.3: for the all-registrants types the key reads 0.
        putKey(out, 8, allRegistrants(r.type) ? 0n : (state.registrations.get(r.holder)?.key ?? 0n));
        out[21] = (scopeLogicalUnit << 4) | r.type;
      }
      break;
    }
    case PrinAction.reportCapabilities:
      out = new Uint8Array(capabilitiesBytes);
      putBe16(out, 0, capabilitiesBytes);
      out[2] = capCrh | capSipC | capAtpC | capPtplC;
      out[3] = capTmv | (state.aptpl ? capPtplA : 0);
      out[4] = typeMask[0];
      out[5] = typeMask[1];
      break;
    case PrinAction.readFullStatus: {
      const parts = [...state.registrations.values()].map((reg) => {
        const tid = encodeTransportId(reg.initiatorPort);
        const d = new Uint8Array(24 + tid.length);
        putKey(d, 0, reg.key);
        const holder = isHolder(state, reg.nexusId);
        d[12] = holder ? 0x01 : 0; // R_HOLDER
        if (holder && state.reservation !== null) d[13] = (scopeLogicalUnit << 4) | state.reservation.type;
        putBe16(d, 18, reg.relativePortId);
        putBe32(d, 20, tid.length);
        d.set(tid, 24);
        return d;
      });
      const length = parts.reduce((n, p) => n + p.length, 0);
      out = new Uint8Array(8 + length);
      putBe32(out, 0, state.generation);
      putBe32(out, 4, length);
      let at = 8;
      for (const p of parts) {
        out.set(p, at);
        at += p.length;
      }
      break;
    }
    default:
      return illegalRequest(Asc.invalidFieldInCdb);
  }
  return { status: Status.good, data: cutToAllocation(out, command.allocationBytes) };
}

function unregister(state: LunState, nexusId: string): void {
  state.registrations.delete(nexusId);
  const r = state.reservation;
  if (r === null) return;
  if (allRegistrants(r.type)) {
    if (state.registrations.size === 0) state.reservation = null;
    return;
  }
  if (r.holder === nexusId) {
    state.reservation = null;
    // SPC-4 §5.7.11.2: releasing a registrants-only reservation by unregistering tells the others.
    if (registrantsOnly(r.type)) for (const id of state.registrations.keys()) state.raiseFor(id, UnitAttention.reservationsReleased);
  }
}

export function persistentReserveOut(state: LunState, nexus: Nexus, command: { serviceAction: number; scope: number; type: number; parameterBytes: number }, data: Uint8Array | null): ScsiResult {
  const action = command.serviceAction;
  if (action > ProutAction.registerAndMove) return illegalRequest(Asc.invalidFieldInCdb);
  if (state.reservedBy !== null && state.reservedBy !== nexus.id) return reservationConflict;
  const p = data ?? new Uint8Array(0);
  if (action === ProutAction.registerAndMove) {
    if (command.parameterBytes < moveTransportIdAt || p.length < moveTransportIdAt) return illegalRequest(Asc.parameterListLengthError);
  } else if (specifiesPorts(action, p)) {
    // SPC-4 §6.15.3: with SPEC_I_PT the TransportIDs follow the 24 bytes and their length.
    if (command.parameterBytes < specIPtHeaderBytes || p.length < specIPtHeaderBytes || specIPtHeaderBytes + be32(p, basicParameterBytes) > Math.min(command.parameterBytes, p.length)) return illegalRequest(Asc.parameterListLengthError);
  } else if (command.parameterBytes !== basicParameterBytes || p.length < basicParameterBytes) {
    return illegalRequest(Asc.parameterListLengthError);
  }
  const key = readKey(p, 0);
  const actionKey = readKey(p, 8);
  const own = state.registrations.get(nexus.id);
  const result = run();
  if (result.status === Status.good) state.persist();
  return result;

  function run(): ScsiResult {
    switch (action) {
      case ProutAction.register:
      case ProutAction.registerAndIgnore: {
        const flags = p[20] as number;
        // ALL_TG_PT: this target has one target port, so "every target port" is the one the
        // command came through; the registrations below are the same either way (ATP_C is 1).
        void flagAllTgPt;
        if ((flags & flagSpecIPt) !== 0) {
          // SPEC_I_PT is for REGISTER only, and only from an unregistered I_T nexus (SPC-4 §5.7.7.3).
          if (action !== ProutAction.register) return illegalRequest(Asc.invalidFieldInParameterList);
          if (own !== undefined) return illegalRequest(Asc.invalidFieldInCdb);
          if (key !== 0n) return reservationConflict;
          if (actionKey === 0n) return goodResult;
          const named = transportIdPorts(p.subarray(specIPtHeaderBytes, specIPtHeaderBytes + be32(p, basicParameterBytes)));
          if (named === null) return illegalRequest(Asc.invalidFieldInParameterList);
          const ids = new Set<string>([nexus.id]);
          for (const port of named) {
            const id = `${port}|${nexus.relativePortId}`;
            // A nexus named twice, or one registered already, fails the whole list: nothing is registered.
            if (ids.has(id) || state.registrations.has(id)) return illegalRequest(Asc.invalidFieldInParameterList);
            ids.add(id);
          }
          if (state.registrations.size + ids.size > registrationsMax) return checkCondition(SenseKey.illegalRequest, insufficientRegistrationResources);
          for (const id of ids) {
            const initiatorPort = id === nexus.id ? nexus.initiatorPort : id.slice(0, id.lastIndexOf("|"));
            state.registrations.set(id, { nexusId: id, initiatorPort, relativePortId: nexus.relativePortId, key: actionKey });
          }
          state.generation++;
          state.aptpl = (flags & flagAptpl) !== 0;
          return goodResult;
        }
        if (action === ProutAction.register) {
          if (own === undefined ? key !== 0n : key !== own.key) return reservationConflict;
        }
        if (actionKey === 0n) {
          if (own !== undefined) {
            unregister(state, nexus.id);
            state.generation++;
          }
        } else if (own !== undefined) {
          own.key = actionKey;
          state.generation++;
        } else {
          if (state.registrations.size >= registrationsMax) return checkCondition(SenseKey.illegalRequest, insufficientRegistrationResources);
          state.registrations.set(nexus.id, { nexusId: nexus.id, initiatorPort: nexus.initiatorPort, relativePortId: nexus.relativePortId, key: actionKey });
          state.generation++;
        }
        state.aptpl = (flags & flagAptpl) !== 0;
        return goodResult;
      }
      case ProutAction.reserve: {
        if (own === undefined || own.key !== key) return reservationConflict;
        if (command.scope !== scopeLogicalUnit || !validTypes.has(command.type)) return illegalRequest(Asc.invalidFieldInCdb);
        const r = state.reservation;
        if (r === null) {
          state.reservation = { holder: nexus.id, type: command.type };
          return goodResult;
        }
        return isHolder(state, nexus.id) && r.type === command.type ? goodResult : reservationConflict;
      }
      case ProutAction.release: {
        if (own === undefined || own.key !== key) return reservationConflict;
        const r = state.reservation;
        if (r === null || !isHolder(state, nexus.id)) return goodResult;
        if (command.scope !== scopeLogicalUnit || r.type !== command.type) return checkCondition(SenseKey.illegalRequest, invalidRelease);
        state.reservation = null;
        if (registrantsOnly(r.type) || allRegistrants(r.type)) {
          for (const id of state.registrations.keys()) if (id !== nexus.id) state.raiseFor(id, UnitAttention.reservationsReleased);
        }
        return goodResult;
      }
      case ProutAction.clear: {
        if (own === undefined || own.key !== key) return reservationConflict;
        for (const id of state.registrations.keys()) if (id !== nexus.id) state.raiseFor(id, UnitAttention.reservationsPreempted);
        state.registrations.clear();
        state.reservation = null;
        state.generation++;
        return goodResult;
      }
      case ProutAction.preempt:
      case ProutAction.preemptAndAbort: {
        if (own === undefined || own.key !== key) return reservationConflict;
        const r = state.reservation;
        if (r !== null && allRegistrants(r.type) && actionKey === 0n) {
          // SPC-4 §5.7.11.4.4: preempting an all-registrants reservation with key 0 removes every other registrant.
          for (const id of [...state.registrations.keys()]) {
            if (id === nexus.id) continue;
            state.registrations.delete(id);
            state.raiseFor(id, UnitAttention.registrationsPreempted);
            if (action === ProutAction.preemptAndAbort) state.abortTasksOf(id, { attention: true });
          }
          state.reservation = { holder: nexus.id, type: command.type };
          state.generation++;
          return goodResult;
        }
        if (actionKey === 0n) return illegalRequest(Asc.invalidFieldInParameterList);
        const holderKey = r === null || allRegistrants(r.type) ? undefined : state.registrations.get(r.holder)?.key;
        const victims = [...state.registrations.values()].filter((reg) => reg.key === actionKey && reg.nexusId !== nexus.id);
        if (victims.length === 0 && holderKey !== actionKey) return reservationConflict;
        if (r !== null && (holderKey === actionKey || (allRegistrants(r.type) && victims.length > 0))) {
          if (command.scope !== scopeLogicalUnit || !validTypes.has(command.type)) return illegalRequest(Asc.invalidFieldInCdb);
          state.reservation = { holder: nexus.id, type: command.type };
        }
        for (const v of victims) {
          state.registrations.delete(v.nexusId);
          state.raiseFor(v.nexusId, UnitAttention.registrationsPreempted);
          // SPC-4 §5.7.11.5: PREEMPT AND ABORT also aborts the preempted nexuses' tasks.
          if (action === ProutAction.preemptAndAbort) state.abortTasksOf(v.nexusId, { attention: true });
        }
        state.generation++;
        return goodResult;
      }
      case ProutAction.registerAndMove: {
        if (own === undefined || own.key !== key) return reservationConflict;
        const r = state.reservation;
        if (r === null || allRegistrants(r.type) || r.holder !== nexus.id) return reservationConflict;
        if (actionKey === 0n) return illegalRequest(Asc.invalidFieldInParameterList);
        const tidBytes = be32(p, 20);
        if (moveTransportIdAt + tidBytes > p.length) return illegalRequest(Asc.parameterListLengthError);
        const port = decodeTransportId(p.subarray(moveTransportIdAt, moveTransportIdAt + tidBytes));
        if (port === null) return illegalRequest(Asc.invalidFieldInParameterList);
        const relativePortId = be16(p, 18);
        const destId = `${port}|${relativePortId}`;
        if (destId === nexus.id) return illegalRequest(Asc.invalidFieldInParameterList);
        const dest = state.registrations.get(destId);
        if (dest === undefined) {
          if (state.registrations.size >= registrationsMax) return checkCondition(SenseKey.illegalRequest, insufficientRegistrationResources);
          state.registrations.set(destId, { nexusId: destId, initiatorPort: port, relativePortId, key: actionKey });
        } else dest.key = actionKey;
        state.reservation = { holder: destId, type: r.type };
        if (((p[17] as number) & moveUnreg) !== 0) state.registrations.delete(nexus.id);
        state.aptpl = ((p[17] as number) & moveAptpl) !== 0;
        state.generation++;
        return goodResult;
      }
      default:
        return illegalRequest(Asc.invalidFieldInCdb);
    }
  }
}
