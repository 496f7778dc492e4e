// Session-level state of the iSCSI target (RFC 7143 §4.2.2, §6.3.5): the CmdSN window, and the
// table of sessions by I_T nexus with TSIH allocation and session reinstatement. Pure: no
// sockets, no clock. A session has exactly one connection here (MaxConnections=1), so the
// connection drives its session directly.
import { assert } from "../util/assert.ts";
import type { Nexus } from "../scsi/lun-state.ts";

/** RFC 1982 serial number arithmetic on 32 bits, as RFC 7143 §4.2.2.1 requires for CmdSN. */
const serialHalf = 2 ** 31;
export function serialLess(a: number, b: number): boolean {
  return a !== b && ((a < b && b - a < serialHalf) || (a > b && a - b > serialHalf));
}
export const serialAdd = (a: number, n: number): number => (a + n) >>> 0;

/**
 * The command window: ExpCmdSN and MaxCmdSN = ExpCmdSN + window - 1. The window is fixed:
 * initiators ignore a MaxCmdSN that goes backwards (RFC 7143 §4.2.2.1), so shrinking it to push
 * back would make them send commands we then ignore. Past the connection's command limit the
 * answer is TASK SET FULL instead.
 */
export class CommandWindow {
  expCmdSN = 0;
  private readonly window: number;

  constructor(window: number) {
    assert(window >= 1 && window < serialHalf, "bad command window");
    this.window = window;
  }

  /** Starts numbering at the CmdSN of the leading Login Request (RFC 7143 §11.12.6). */
  reset(cmdSN: number): void {
    this.expCmdSN = cmdSN >>> 0;
  }

  maxCmdSN(): number {
    return serialAdd(this.expCmdSN, this.window - 1);
  }

  /**
   * Checks a command's CmdSN against the window and advances ExpCmdSN for non-immediate
   * commands. RFC 7143 §4.2.2.1: a non-immediate command outside [ExpCmdSN, MaxCmdSN] is
   * silently ignored; an immediate command carries the next CmdSN and does not advance it.
   */
  accept(cmdSN: number, immediate: boolean): boolean {
    if (immediate) return true;
    if (serialLess(cmdSN, this.expCmdSN) || serialLess(this.maxCmdSN(), cmdSN)) return false;
    // On one connection commands arrive in order; a gap inside the window (an initiator that
    // skipped a number) is closed by moving past it.
    this.expCmdSN = serialAdd(cmdSN, 1);
    return true;
  }
}

/** The I_T nexus key of a session (RFC 7143 §4.4.3): initiator name, ISID and target. */
export function nexusKey(initiatorName: string, isid: Uint8Array, targetName: string): string {
  assert(isid.length === 6, "an ISID is 6 bytes");
  return `${initiatorName.toLowerCase()}|${Array.from(isid, (b) => b.toString(16).padStart(2, "0")).join("")}|${targetName}`;
}

/**
 * The I_T nexus of a session as the SCSI layer knows it: the initiator port name
 * "<initiator name>,i,0x<ISID>" (RFC 7143 §4.2.7) and the target port. A forwarded LUN's
 * coordinator rebuilds it from the same three values, so both ends name the nexus alike.
 */
export function scsiNexus(initiatorName: string, isid: Uint8Array, relativePortId: number): Nexus {
  assert(isid.length === 6, "an ISID is 6 bytes");
  const initiatorPort = `${initiatorName},i,0x${Array.from(isid, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  return { id: `${initiatorPort}|${relativePortId}`, initiatorPort, relativePortId };
}

export interface SessionHandle {
  readonly tsih: number;
  readonly nexus: string;
  readonly targetName: string | undefined;
  /** Ends the session's connection (reinstatement or server close). */
  close(reason: string): void;
}

/** Sessions at once across the portal (each holds buffers; more must be refused, not queued). */
export const sessionsMax = 4096;
/** RFC 7143 §11.12.5: TSIH is 16 bits and 0 is reserved for "new session". */
const tsihMax = 0xffff;

/** The portal's sessions by TSIH and by I_T nexus. */
export class SessionTable {
  private readonly byTsih = new Map<number, SessionHandle>();
  private readonly byNexus = new Map<string, SessionHandle>();
  private nextTsih = 1;

  get size(): number {
    return this.byTsih.size;
  }

  /** Sessions of one target, or all normal sessions. */
  count(targetName?: string): number {
    let n = 0;
    for (const s of this.byTsih.values()) if (s.targetName !== undefined && (targetName === undefined || s.targetName === targetName)) n++;
    return n;
  }

  allocateTsih(): number | null {
    if (this.byTsih.size >= sessionsMax) return null;
    for (let i = 0; i < tsihMax; i++) {
      const tsih = this.nextTsih;
      this.nextTsih = this.nextTsih >= tsihMax ? 1 : this.nextTsih + 1;
      if (!this.byTsih.has(tsih)) return tsih;
    }
    return null;
  }

  /**
   * Adds a session. A session already on the same I_T nexus is reinstated (RFC 7143 §6.3.5):
   * the old one is closed first, so its tasks end before the new session's begin.
   */
  add(session: SessionHandle): void {
    assert(!this.byTsih.has(session.tsih), "TSIH in use");
    const old = this.byNexus.get(session.nexus);
    if (old !== undefined) {
      this.remove(old);
      old.close("session reinstated by a new login on the same I_T nexus");
    }
    this.byTsih.set(session.tsih, session);
    this.byNexus.set(session.nexus, session);
  }

  remove(session: SessionHandle): void {
    if (this.byTsih.get(session.tsih) === session) this.byTsih.delete(session.tsih);
    if (this.byNexus.get(session.nexus) === session) this.byNexus.delete(session.nexus);
  }

  all(): SessionHandle[] {
    return [...this.byTsih.values()];
  }
}
