// One iSCSI connection (= one session, MaxConnections=1) as a state machine (RFC 7143): login,
// then the full feature phase: SCSI commands with immediate data, unsolicited Data-Out and R2T
// sequences, Data-In split to the initiator's MaxRecvDataSegmentLength, SCSI responses with
// sense and exact residuals, NOP, Text (SendTargets with continuation), task management, logout.
// No sockets: bytes come in through `receive`, bytes go out through the transport's `send`, one
// call per batch. A device answer that is synchronous is answered in the same turn, without a
// promise hop (the design's data-path finding). It never keeps a decoded PDU past its handler
// (PDUs are views into the receive buffer): data that must outlive it is copied, and says so.
import { assert } from "../util/assert.ts";
import { handOver, isHandedOver } from "../util/handover.ts";
import { uninitialized } from "../util/bytes.ts";
import type { Logger } from "../util/log.ts";
import type { BlockDevice, MaybePromise } from "../volume/block-device.ts";
import { decodeCdb, type Command } from "../scsi/cdb.ts";
import { executeCommand, type ScsiPort } from "../scsi/logical-unit.ts";
import type { TargetPortGroups } from "../scsi/commands/reports.ts";
import { UnitAttention, type LunStateTable, type Nexus, type NexusTasks } from "../scsi/lun-state.ts";
import { decodeLun, encodeLun } from "../scsi/commands/report-luns.ts";
import { Asc, SenseKey, Status, checkCondition, fixedSenseBytes, encodeFixedSense, isAccessStateTransition, senseForErrorCode, type ScsiResult } from "../scsi/sense.ts";
import { ResponseBatch } from "./batch.ts";
import { encodeKeys, loginStep, type ChapSecrets, loginTextBytesMax, LoginStatus, newLoginState, parseKeys, type KeyValue, type LoginFailure, type LoginState, type TargetLimits } from "./login.ts";
import { Bhs, Flag, Op, PduDecoder, RejectReason, bhsBytes, put16, put32, reservedTag, u16, u32, type Pdu, type PduSink } from "./pdu.ts";
import { CommandWindow, nexusKey, scsiNexus, type SessionHandle, type SessionTable } from "./session.ts";

/** What the daemon provides: the targets, looked up at login (may change at any time). */
export interface TargetRegistry {
  /** The targets `initiator` may see (a target's access list hides it from the others). */
  listTargets(initiator?: string): Array<{ iqn: string; alias?: string }>;
  /**
   * The target, if `initiator` may log in to it (undefined otherwise, as if it did not exist).
   * `chap`, when set, makes the target require CHAP (see ChapSecrets in login.ts).
   */
  lookupTarget(iqn: string, initiator?: string): RegistryTarget | undefined;
}

/** A target as the registry hands it to a session: its local logical units and its forwarded ones. */
export interface RegistryTarget {
  iqn: string;
  alias?: string;
  /** LUNs whose logical unit runs here (this node is their coordinator). */
  luns: Map<number, BlockDevice>;
  /** LUNs whose logical unit runs on another node: every command goes there (a LUN number is in one map only). */
  forwarded?: ReadonlyMap<number, ForwardedUnit>;
  chap?: ChapSecrets;
}

/** An I_T nexus as the coordinator of a forwarded LUN rebuilds it (SAM-5 §4.6.2). */
export interface ForwardNexus {
  readonly initiatorName: string;
  /** 6 bytes. */
  readonly isid: Uint8Array;
  /** The receiving node's target port. */
  readonly relativePortId: number;
}

/**
 * A LUN whose logical unit runs at its coordinator on another node (core/node/lun-forwarder.ts):
 * the session hands each command there whole, so reservations, unit attentions and COMPARE AND
 * WRITE's atomicity live in one place whichever portal the initiator uses. The arguments are
 * views: an implementation reads or copies them before it returns.
 */
export interface ForwardedUnit {
  /** The logical block size (to size a write's Data-Out buffer before the command runs). */
  readonly blockBytes: number;
  /** Runs the command at the coordinator. Always settles, within a bounded time: a retryable sense when the coordinator can't be reached. */
  execute(request: { cdb: Uint8Array; nexus: ForwardNexus; dataOut: Uint8Array | null; dataInBytesMax: number }): Promise<ScsiResult>;
  /** LOGICAL UNIT RESET at the coordinator (a target reset sends one per LU); false when it could not be done. */
  reset(nexus: ForwardNexus): Promise<boolean>;
  /** The nexus ended on this node (logout, connection loss): the coordinator forgets it. Fire and forget. */
  nexusLost(nexus: ForwardNexus): void;
}

export interface ConnectionTransport {
  /** Writes or copies `bytes` before returning (the view is reused afterwards). */
  send(bytes: Uint8Array): void;
  /** Ends the connection once what was sent has gone out. */
  close(): void;
}

export interface ConnectionOptions {
  readonly registry: TargetRegistry;
  readonly sessions: SessionTable;
  /**
   * "host:port" of the portal this connection came in on, its portal group tag, and the
   * TargetAddress values ("host:port,tag") SendTargets lists: every portal of the group (one
   * portal's address alone when absent).
   */
  readonly portal: { readonly address: string; readonly portalGroupTag: number; readonly targetAddresses?: () => readonly string[]; readonly portGroups?: () => TargetPortGroups };
  readonly limits: TargetLimits;
  readonly transport: ConnectionTransport;
  readonly logger: Logger;
  /** The portal's shared logical unit state (unit attentions, reservations, mode pages). */
  readonly lunStates: LunStateTable;
  /** Target NOP-In pings (pingDefaults when absent). */
  readonly ping?: PingSettings;
}

/**
 * Target-initiated NOP-In pings (RFC 7143 §11.19: a NOP-In with a valid Target Transfer Tag, which
 * the initiator must answer with a NOP-Out carrying it). A connection in full feature phase that
 * has received nothing for `idleMs` is pinged; if still nothing arrives for `timeoutMs` after the
 * ping, the initiator is taken for dead and the connection dropped, which ends its tasks. Any PDU
 * counts as a sign of life, not only the answer: a busy initiator is alive. `idleMs` 0 turns pings
 * off (TCP keepalive in the server still finds vanished hosts, only much later).
 */
export interface PingSettings {
  readonly idleMs: number;
  readonly timeoutMs: number;
}
/** 5 s of silence before a ping; 20 s for the answer (Linux's own NOP-Out timeout is 15 s). */
export const pingDefaults: PingSettings = { idleMs: 5_000, timeoutMs: 20_000 };

/** CmdSN window we advertise (MaxCmdSN - ExpCmdSN + 1). */
export const commandWindow = 128;
/** Tasks a connection holds at once (waiting for Data-Out or for the device); more get TASK SET FULL. */
export const tasksMax = 256;
/** Bytes of Data-Out a connection buffers at once across its write tasks; more get TASK SET FULL. */
export const writeBufferBytesMax = 64 << 20;
/** The largest Expected Data Transfer Length we accept for one command. */
export const transferBytesMax = 16 << 20;
/** The largest data segment accepted before login completes (login text is small). */
const loginDataSegmentBytes = 8192;
/** Text responses larger than this are cut (SendTargets of a huge registry). */
const textResponseBytesMax = 1 << 20;
/** Output batch: starts small, grows to hold a large read's Data-In, never past this. */
const batchBytesInitial = 64 << 10;
const batchBytesMax = 2 << 20;
/** RFC 7143 §11.5.1: TMF function codes and §11.6.1: responses. */
const TmfFunction = { abortTask: 1, abortTaskSet: 2, clearAca: 3, clearTaskSet: 4, logicalUnitReset: 5, targetWarmReset: 6, targetColdReset: 7, taskReassign: 8 } as const;
const TmfResponse = { complete: 0, taskDoesNotExist: 1, lunDoesNotExist: 2, reassignmentNotSupported: 4, notSupported: 5, rejected: 255 } as const;
/** RFC 7143 §11.14.1 logout reason codes and §11.15.1 responses. */
const LogoutReason = { closeSession: 0, closeConnection: 1, removeForRecovery: 2 } as const;
const LogoutResponse = { closed: 0, recoveryNotSupported: 2 } as const;
/** SPC-4 table 28: DATA PHASE ERROR (4Bh/00h) and DATA OFFSET ERROR (4Bh/05h) for bad Data-Out sequences. */
const dataPhaseError = { asc: 0x4b, ascq: 0x00 } as const;
const dataOffsetError = { asc: 0x4b, ascq: 0x05 } as const;
/** iSCSI names (RFC 7143 §4.2.7.1) start with one of these; other SendTargets values are rejected. */
const iscsiNamePattern = /^(iqn\.|eui\.|naa\.)/i;

interface R2tState {
  readonly ttt: number;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  receivedBytes: number;
  nextDataSN: number;
}

/** A write command waiting for its Data-Out. */
interface WriteTask {
  readonly itt: number;
  readonly lunField: Uint8Array; // copied from the command PDU
  readonly lun: number;
  readonly command: Command;
  /** The CDB's 16 bytes, copied: a forwarded command sends them whole. */
  readonly cdb: Uint8Array;
  readonly edtl: number;
  /** Data-Out kept: the first `buffer.length` bytes (what the CDB asks for, at most EDTL). */
  readonly buffer: Uint8Array;
  receivedBytes: number;
  /** Unsolicited Data-Out covers [unsolicitedNextOffset, unsolicitedEnd). */
  readonly unsolicitedEnd: number;
  unsolicitedNextOffset: number;
  unsolicitedDataSN: number;
  /** R2Ts have been sent for everything below this offset. */
  r2tIssuedTo: number;
  r2tSN: number;
  readonly outstanding: R2tState[];
}

interface TextContinuation {
  readonly ttt: number;
  readonly rest: Uint8Array; // copied
}

let connectionIds = 0;

export class IscsiConnection implements PduSink {
  readonly id = ++connectionIds;
  private phase: "login" | "full-feature" | "closed" = "login";
  private readonly decoder = new PduDecoder(loginDataSegmentBytes);
  private readonly login: LoginState;
  private readonly window = new CommandWindow(commandWindow);
  private readonly batch: ResponseBatch;
  private readonly header = new Uint8Array(bhsBytes);
  private readonly digests = { header: false, data: false };
  private statSN = 0;
  private isid = new Uint8Array(6);
  private firstLogin = true;
  private session: SessionHandle | undefined;
  private target: RegistryTarget | undefined;
  private readonly port: ScsiPort;
  /** This session's tasks as other nexuses see them (PREEMPT AND ABORT, CLEAR TASK SET, resets). */
  private readonly nexusTasks: NexusTasks = { abortTasks: (device) => this.abortTasks((_, lun) => this.target?.luns.get(lun) === device) };
  private nexus: Nexus = { id: "", initiatorPort: "", relativePortId: 0 };
  /** The same nexus as a forwarded LUN's coordinator rebuilds it. */
  private forwardNexus: ForwardNexus = { initiatorName: "", isid: new Uint8Array(6), relativePortId: 0 };
  /** The target's LUN inventory version this session last reported (REPORTED LUNS DATA HAS CHANGED). */
  private inventorySeen = 0;
  private readonly writes = new Map<number, WriteTask>();
  private writeBufferBytes = 0;
  /** Tasks whose device call is under way, by ITT; an aborted one is answered by nobody. */
  private readonly running = new Map<number, { lun: number; aborted: boolean }>();
  private nextTtt = 1;
  private textContinuation: TextContinuation | null = null;
  private flushScheduled = false;
  private readonly idleWaiters: Array<() => void> = [];
  private readonly pingSettings: PingSettings;
  /** A PDU arrived since the last tick (set on the data path; the clock is read only in tick). */
  private heard = true;
  /** When the connection last showed life, as tick saw it; and the ping we wait on, if any. */
  private heardAtMs: number | undefined = undefined;
  private ping: { readonly ttt: number; readonly sentAtMs: number } | null = null;

  constructor(private readonly options: ConnectionOptions) {
    this.login = newLoginState(options.limits, options.portal.portalGroupTag);
    this.pingSettings = options.ping ?? pingDefaults;
    assert(this.pingSettings.idleMs >= 0, "ping idle time must not be negative");
    assert(this.pingSettings.timeoutMs > 0, "ping timeout must be positive");
    this.batch = new ResponseBatch((bytes) => options.transport.send(bytes), { initialBytes: batchBytesInitial, bytesMax: batchBytesMax });
    const self = this;
    this.port = {
      get targetName() {
        return self.target?.iqn ?? "";
      },
      relativePortId: options.portal.portalGroupTag,
      lunNumbers: () => [...(self.target?.luns.keys() ?? []), ...(self.target?.forwarded?.keys() ?? [])].sort((a, b) => a - b),
      ...(options.portal.portGroups === undefined ? {} : { portGroups: options.portal.portGroups }),
    };
  }

  get initiatorName(): string {
    return this.login.initiatorName ?? "";
  }

  get targetName(): string | undefined {
    return this.target?.iqn;
  }

  get fullFeature(): boolean {
    return this.phase === "full-feature";
  }

  get closed(): boolean {
    return this.phase === "closed";
  }

  /** Tasks still waiting on a device. */
  get busy(): boolean {
    return this.running.size > 0;
  }

  /** Resolves when no device call is under way (for a clean server close). */
  idle(): Promise<void> {
    if (this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Feeds received bytes; answers go out in one batch at the end. */
  receive(chunk: Uint8Array): void {
    if (this.phase === "closed") return;
    const error = this.decoder.push(chunk, this);
    if (error !== null && !this.closed) {
      this.options.logger.warn("protocol error, closing the connection", { error: error.kind, initiator: this.initiatorName });
      this.shutdown("protocol error");
    }
    this.batch.flush();
  }

  /** The transport closed (peer gone or server closing). */
  closedByTransport(): void {
    if (this.phase === "closed") return;
    this.phase = "closed";
    this.release();
  }

  /**
   * The server's clock, about once a second: pings a quiet initiator and drops one that stays
   * silent past the ping's timeout (see PingSettings). Time comes in as an argument (monotonic ms).
   */
  tick(nowMs: number): void {
    if (this.phase !== "full-feature") return;
    const { idleMs, timeoutMs } = this.pingSettings;
    if (this.heard || this.heardAtMs === undefined) {
      this.heard = false;
      this.heardAtMs = nowMs;
      this.ping = null;
      return;
    }
    if (idleMs === 0) return;
    if (this.ping !== null) {
      if (nowMs - this.ping.sentAtMs < timeoutMs) return;
      this.options.logger.warn("initiator did not answer a NOP-In ping, dropping its session", { initiator: this.initiatorName, target: this.target?.iqn ?? "(discovery)", silentMs: Math.round(nowMs - this.heardAtMs) });
      return this.shutdown("NOP-In ping not answered");
    }
    if (nowMs - this.heardAtMs < idleMs) return;
    this.ping = { ttt: this.allocateTtt(), sentAtMs: nowMs };
    this.sendPing(this.ping.ttt);
    this.batch.flush();
  }

  /**
   * The transport saw the initiator take bytes we had queued (its socket drained). That is life
   * too: while our queue is long the server stops reading, so a slow but working initiator's
   * answer to a ping may sit unread behind the data it is still taking.
   */
  peerReading(): void {
    this.heard = true;
  }

  /** Whether a ping is waiting for its answer (for tests and status). */
  get pinging(): boolean {
    return this.ping !== null;
  }

  private sendPing(ttt: number): void {
    const h = this.beginPdu(Op.nopIn, Flag.final);
    // RFC 7143 §11.19.2: with a valid TTT the LUN must be valid; the initiator echoes it.
    const lun = this.port.lunNumbers()[0];
    if (lun !== undefined) encodeLun(lun, h, Bhs.lun);
    put32(h, Bhs.initiatorTaskTag, reservedTag);
    put32(h, Bhs.targetTransferTag, ttt);
    // §11.19.3: StatSN is the next one, not advanced (the ITT is reserved).
    this.sequenceFields(h, false);
    put32(h, Bhs.statSN, this.statSN);
    this.sendPdu(null);
  }

  /** Ends the connection: drops pending writes, forgets the session, closes the transport. */
  shutdown(reason: string): void {
    if (this.phase === "closed") return;
    this.options.logger.debug("closing connection", { reason, initiator: this.initiatorName });
    this.batch.flush();
    this.phase = "closed";
    this.release();
    this.options.transport.close();
  }

  /**
   * I_T nexus loss (SAM-5 §6.3.4): every task ends. Writes waiting for Data-Out drop their
   * buffers; commands waiting for COMPARE AND WRITE's turn will not run; device calls under way
   * finish (a write cannot be recalled from the device) and their answers are dropped.
   */
  private release(): void {
    this.writes.clear();
    this.writeBufferBytes = 0;
    for (const t of this.running.values()) t.aborted = true;
    this.textContinuation = null;
    this.ping = null;
    if (this.session !== undefined) this.options.sessions.remove(this.session);
    if (this.nexus.id !== "") this.options.lunStates.forgetNexus(this.nexus.id, this.nexusTasks);
    if (this.nexus.id !== "") for (const unit of new Set(this.target?.forwarded?.values() ?? [])) unit.nexusLost(this.forwardNexus);
  }

  // ---- output ----

  private beginPdu(opcode: number, flags: number): Uint8Array {
    const h = this.header;
    h.fill(0);
    h[Bhs.opcode] = opcode;
    h[Bhs.flags] = flags;
    return h;
  }

  private sendPdu(data: Uint8Array | null): void {
    this.batch.append(this.header, data, this.digests);
  }

  /** StatSN (when this PDU carries status), ExpCmdSN and MaxCmdSN. */
  private sequenceFields(h: Uint8Array, withStatus: boolean): void {
    if (withStatus) {
      put32(h, Bhs.statSN, this.statSN);
      this.statSN = (this.statSN + 1) >>> 0;
    }
    put32(h, Bhs.expCmdSN, this.window.expCmdSN);
    put32(h, Bhs.maxCmdSN, this.window.maxCmdSN());
  }

  /** Sends what async completions produced, once per turn of the event loop. */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      if (this.phase !== "closed") this.batch.flush();
    });
  }

  private reject(rejected: Uint8Array, reason: number): void {
    const copy = rejected.slice(0, bhsBytes); // the header slot is reused by beginPdu
    const h = this.beginPdu(Op.reject, Flag.final);
    h[Bhs.byte2] = reason;
    put32(h, Bhs.initiatorTaskTag, reservedTag);
    this.sequenceFields(h, true);
    this.sendPdu(copy);
  }

  // ---- input ----

  onDataDigestError(header: Uint8Array): void {
    // RFC 7143 §7.8: at ERL 0 a PDU with a bad data digest is rejected and dropped.
    if (this.phase === "full-feature") this.reject(header, RejectReason.dataDigestError);
    else this.shutdown("data digest error during login");
  }

  onPdu(pdu: Pdu): void {
    if (this.phase === "closed") return;
    this.heard = true;
    if (this.phase === "login") {
      if (pdu.opcode !== Op.loginRequest) return this.shutdown(`opcode ${pdu.opcode} before login completed`);
      return this.onLogin(pdu);
    }
    const h = pdu.header;
    if (pdu.opcode !== Op.dataOut && pdu.opcode !== Op.snackRequest && pdu.opcode !== Op.loginRequest) {
      if (!this.window.accept(u32(h, Bhs.cmdSN), pdu.immediate)) {
        this.options.logger.debug("command outside the CmdSN window ignored", { cmdSN: u32(h, Bhs.cmdSN), expCmdSN: this.window.expCmdSN });
        return;
      }
    }
    switch (pdu.opcode) {
      case Op.scsiCommand:
        return this.onCommand(pdu);
      case Op.dataOut:
        return this.onDataOut(pdu);
      case Op.nopOut:
        return this.onNopOut(pdu);
      case Op.textRequest:
        return this.onText(pdu);
      case Op.logoutRequest:
        return this.onLogout(pdu);
      case Op.taskManagementRequest:
        return this.onTaskManagement(pdu);
      case Op.loginRequest:
        return this.reject(h, RejectReason.protocolError);
      default:
        return this.reject(h, RejectReason.commandNotSupported);
    }
  }

  // ---- login ----

  private loginResponse(request: Uint8Array, flags: number, status: readonly [number, number], keys: readonly KeyValue[]): void {
    const itt = u32(request, Bhs.initiatorTaskTag);
    const isid = request.slice(Bhs.isid, Bhs.isid + 6);
    const h = this.beginPdu(Op.loginResponse, flags);
    h[Bhs.byte2] = 0; // Version-max
    h[Bhs.byte3] = 0; // Version-active
    h.set(isid, Bhs.isid);
    put16(h, Bhs.tsih, this.session?.tsih ?? 0);
    put32(h, Bhs.initiatorTaskTag, itt);
    this.sequenceFields(h, status[0] === 0);
    if (status[0] !== 0) put32(h, Bhs.statSN, this.statSN);
    h[Bhs.statusClass] = status[0];
    h[Bhs.statusDetail] = status[1];
    this.sendPdu(keys.length > 0 ? encodeKeys(keys) : null);
  }

  private loginFailed(request: Uint8Array, status: LoginFailure, reason: string): void {
    this.options.logger.warn("login refused", { reason, initiator: this.initiatorName, status: `${status[0]}/${status[1]}` });
    this.loginResponse(request, 0, status, []);
    this.shutdown("login failed");
  }

  private onLogin(pdu: Pdu): void {
    const h = pdu.header;
    const flags = h[Bhs.flags] as number;
    if (this.firstLogin) {
      this.firstLogin = false;
      this.isid = h.slice(Bhs.isid, Bhs.isid + 6);
      this.window.reset(u32(h, Bhs.cmdSN));
      this.statSN = u32(h, Bhs.expStatSN); // any start works; the initiator's guess is friendliest
    }
    const keys = parseKeys(pdu.data);
    if (keys === null) return this.loginFailed(h, LoginStatus.initiatorError, "login text is not key=value pairs");
    const step = loginStep(
      this.login,
      {
        transit: (flags & Flag.transit) !== 0,
        continued: (flags & Flag.continue) !== 0,
        currentStage: (flags >>> 2) & 0x3,
        nextStage: flags & 0x3,
        versionMax: h[2] as number,
        versionMin: h[3] as number,
        tsih: u16(h, Bhs.tsih),
        keys,
      },
      (iqn) => {
        const t = this.options.registry.lookupTarget(iqn, this.login.initiatorName);
        if (t === undefined) return undefined;
        return { iqn: t.iqn, ...(t.alias === undefined ? {} : { alias: t.alias }), ...(t.chap === undefined ? {} : { chap: t.chap }) };
      },
    );
    if (!step.ok) return this.loginFailed(h, step.status, step.reason);
    if (step.fullFeature) {
      const tsih = this.options.sessions.allocateTsih();
      if (tsih === null) return this.loginFailed(h, LoginStatus.outOfResources, "too many sessions");
      const targetName = this.login.sessionType === "Normal" ? this.login.target?.iqn : undefined;
      if (targetName !== undefined) {
        this.target = this.options.registry.lookupTarget(targetName, this.initiatorName);
        if (this.target === undefined) return this.loginFailed(h, LoginStatus.targetRemoved, `target ${targetName} was removed during login`);
      }
      const relativePortId = this.options.portal.portalGroupTag;
      this.nexus = scsiNexus(this.initiatorName, this.isid, relativePortId);
      this.forwardNexus = { initiatorName: this.initiatorName, isid: this.isid, relativePortId };
      if (targetName !== undefined) this.inventorySeen = this.options.lunStates.inventoryVersion(targetName);
      this.session = { tsih, nexus: nexusKey(this.initiatorName, this.isid, targetName ?? "(discovery)"), targetName, close: (reason) => this.shutdown(reason) };
      // After add: reinstatement closes the old session first, and its close detaches its tasks.
      this.options.sessions.add(this.session);
      if (targetName !== undefined) this.options.lunStates.attachNexus(this.nexus.id, this.nexusTasks);
    }
    const responseFlags = (step.transit ? Flag.transit | step.nextStage : 0) | (step.currentStage << 2);
    this.loginResponse(h, responseFlags, [0, 0], step.reply);
    if (step.fullFeature) {
      this.phase = "full-feature";
      // Digests and the larger segment limit apply from the first PDU after the final login
      // response (RFC 7143 §13.1, §13.12): send that response as it is, then switch.
      this.batch.flush();
      const p = this.login.params;
      this.digests.header = p.headerDigest;
      this.digests.data = p.dataDigest;
      this.decoder.headerDigest = p.headerDigest;
      this.decoder.dataDigest = p.dataDigest;
      this.decoder.dataBytesMax = Math.max(p.recvDataSegmentBytes, loginDataSegmentBytes);
      this.options.logger.info("session logged in", { initiator: this.initiatorName, target: this.target?.iqn ?? "(discovery)", tsih: this.session?.tsih });
    }
  }

  // ---- text ----

  private sendTargets(value: string): KeyValue[] | null {
    const portal = this.options.portal;
    const addresses = portal.targetAddresses?.() ?? [`${portal.address},${portal.portalGroupTag}`];
    const entry = (iqn: string): KeyValue[] => [["TargetName", iqn], ...addresses.map((a): KeyValue => ["TargetAddress", a])];
    if (value === "All") {
      // RFC 7143 §12.3 / appendix C: in a normal session "All" may be answered with every target too.
      const out: KeyValue[] = [];
      for (const t of this.options.registry.listTargets(this.initiatorName)) out.push(...entry(t.iqn));
      return out;
    }
    const name = value === "" ? this.target?.iqn : value;
    if (name === undefined) return null; // empty value in a discovery session
    if (!iscsiNamePattern.test(name)) return null;
    const t = this.options.registry.lookupTarget(name.toLowerCase(), this.initiatorName);
    return t === undefined ? [] : entry(t.iqn);
  }

  private onText(pdu: Pdu): void {
    const h = pdu.header;
    const itt = u32(h, Bhs.initiatorTaskTag);
    const ttt = u32(h, Bhs.targetTransferTag);
    let body: Uint8Array;
    if (ttt !== reservedTag) {
      // A request for the rest of an answer we split (RFC 7143 §11.10.4).
      if (this.textContinuation === null || this.textContinuation.ttt !== ttt) return this.reject(h, RejectReason.invalidPduField);
      body = this.textContinuation.rest;
    } else {
      this.textContinuation = null;
      const keys = parseKeys(pdu.data);
      if (keys === null || pdu.data.length > loginTextBytesMax) return this.reject(h, RejectReason.protocolError);
      // Only SendTargets is offered in a Text request. Anything else, or a bad SendTargets value,
      // is rejected as a whole (Reject, reason protocol error) rather than answered with
      // NotUnderstood/Reject values: initiators that asked for SendTargets parse every reply key as
      // a target, and libiscsi's iSCSISendTargets.Invalid test expects exactly this.
      const reply: KeyValue[] = [];
      for (const [key, value] of keys) {
        const found = key === "SendTargets" ? this.sendTargets(value) : null;
        if (found === null) return this.reject(h, RejectReason.protocolError);
        reply.push(...found);
      }
      if (keys.length === 0) return this.reject(h, RejectReason.protocolError);
      body = encodeKeys(reply);
      if (body.length > textResponseBytesMax) body = body.subarray(0, body.lastIndexOf(0, textResponseBytesMax - 1) + 1);
    }
    const max = this.login.params.sendDataSegmentBytes;
    let more = body.length > max;
    let cut = body.length;
    if (more) {
      // Split at a key boundary when one falls in this piece, else at the limit (both allowed).
      const nul = body.lastIndexOf(0, max - 1);
      cut = nul >= 0 ? nul + 1 : max;
      more = cut < body.length;
    }
    const nextTtt = more ? this.allocateTtt() : reservedTag;
    this.textContinuation = more ? { ttt: nextTtt, rest: body.slice(cut) } : null;
    const r = this.beginPdu(Op.textResponse, more ? Flag.continue : Flag.final);
    r.set(h.subarray(Bhs.lun, Bhs.lun + 8), Bhs.lun);
    put32(r, Bhs.initiatorTaskTag, itt);
    put32(r, Bhs.targetTransferTag, nextTtt);
    this.sequenceFields(r, true);
    this.sendPdu(cut > 0 ? body.subarray(0, cut) : null);
  }

  private allocateTtt(): number {
    const ttt = this.nextTtt;
    this.nextTtt = this.nextTtt >= 0xfffffffe ? 1 : this.nextTtt + 1;
    return ttt;
  }

  // ---- NOP, logout, task management ----

  private onNopOut(pdu: Pdu): void {
    const h = pdu.header;
    const itt = u32(h, Bhs.initiatorTaskTag);
    // An answer to a ping of ours (its TTT): nothing to say; onPdu already counted it as life.
    if (itt === reservedTag) return;
    const r = this.beginPdu(Op.nopIn, Flag.final);
    r.set(h.subarray(Bhs.lun, Bhs.lun + 8), Bhs.lun);
    put32(r, Bhs.initiatorTaskTag, itt);
    put32(r, Bhs.targetTransferTag, reservedTag);
    this.sequenceFields(r, true);
    // RFC 7143 §11.19: the ping data is returned as it came.
    this.sendPdu(pdu.data.length > 0 ? pdu.data : null);
  }

  private onLogout(pdu: Pdu): void {
    const h = pdu.header;
    const reason = (h[Bhs.flags] as number) & 0x7f;
    const response = reason === LogoutReason.removeForRecovery ? LogoutResponse.recoveryNotSupported : LogoutResponse.closed;
    const r = this.beginPdu(Op.logoutResponse, Flag.final);
    r[Bhs.byte2] = response;
    put32(r, Bhs.initiatorTaskTag, u32(h, Bhs.initiatorTaskTag));
    this.sequenceFields(r, true);
    put16(r, Bhs.time2Wait, 0);
    put16(r, Bhs.time2Retain, 0);
    this.sendPdu(null);
    if (response !== LogoutResponse.closed) return;
    this.options.logger.info("session logged out", { initiator: this.initiatorName, target: this.target?.iqn ?? "(discovery)" });
    this.shutdown("logout");
  }

  /** Ends tasks matching `which` without answering them (they were aborted). */
  private abortTasks(which: (itt: number, lun: number) => boolean): number {
    let n = 0;
    for (const [itt, w] of this.writes) {
      if (which(itt, w.lun)) {
        this.dropWrite(w);
        n++;
      }
    }
    for (const [itt, t] of this.running) {
      if (!t.aborted && which(itt, t.lun)) {
        t.aborted = true;
        n++;
      }
    }
    return n;
  }

  /** Aborts the tasks other sessions hold for `device` (CLEAR TASK SET and the resets). */
  private abortOtherNexuses(device: BlockDevice, options: { attention: boolean }): void {
    const state = this.options.lunStates.get(device);
    for (const id of state.nexuses()) if (id !== this.nexus.id) state.abortTasksOf(id, options);
  }

  private onTaskManagement(pdu: Pdu): void {
    const h = pdu.header;
    const fn = (h[Bhs.flags] as number) & 0x7f;
    const lun = decodeLun(h, Bhs.lun);
    let response: number = TmfResponse.complete;
    /** Resets of forwarded LUNs, done at their coordinators: the response waits for them. */
    let remote: Promise<boolean> | null = null;
    switch (fn) {
      case TmfFunction.abortTask: {
        const referenced = u32(h, Bhs.referencedTaskTag);
        // A task that is not here was answered already: "task does not exist" tells the
        // initiator to expect (or keep) that answer, as libiscsi's AbortTaskSimpleAsync expects.
        if (this.abortTasks((itt) => itt === referenced) === 0) response = TmfResponse.taskDoesNotExist;
        break;
      }
      case TmfFunction.abortTaskSet:
        this.abortTasks((_, l) => l === lun);
        break;
      case TmfFunction.clearTaskSet: {
        // SAM-5 §7.4: every task in the LU's task set, from every nexus (one shared task set).
        this.abortTasks((_, l) => l === lun);
        const device = this.target?.luns.get(lun);
        if (device !== undefined) this.abortOtherNexuses(device, { attention: true });
        break;
      }
      case TmfFunction.logicalUnitReset: {
        const device = this.target?.luns.get(lun);
        const forwarded = this.target?.forwarded?.get(lun);
        if (forwarded !== undefined) {
          this.abortTasks((_, l) => l === lun);
          remote = forwarded.reset(this.forwardNexus);
        } else if (device === undefined) response = TmfResponse.lunDoesNotExist;
        else {
          this.abortTasks((_, l) => l === lun);
          // The reset's POWER ON, RESET unit attention (every nexus, this one too: SAM-5 §6.3.3)
          // tells the others why their tasks ended.
          this.options.lunStates.get(device).logicalUnitReset(this.nexus.id);
        }
        break;
      }
      case TmfFunction.targetWarmReset:
      case TmfFunction.targetColdReset:
        this.abortTasks(() => true);
        for (const device of this.target?.luns.values() ?? []) this.options.lunStates.get(device).logicalUnitReset(this.nexus.id);
        if ((this.target?.forwarded?.size ?? 0) > 0) {
          const resets = [...new Set(this.target?.forwarded?.values() ?? [])].map((u) => u.reset(this.forwardNexus));
          remote = Promise.all(resets).then((oks) => oks.every((ok) => ok));
        }
        break;
      case TmfFunction.taskReassign:
        response = TmfResponse.reassignmentNotSupported;
        break;
      default:
        response = TmfResponse.notSupported;
    }
    const itt = u32(h, Bhs.initiatorTaskTag);
    if (remote === null) return this.taskManagementResponse(itt, fn, response);
    void remote
      .catch(() => false)
      .then((ok) => {
        if (this.phase === "closed") return;
        this.taskManagementResponse(itt, fn, ok ? response : TmfResponse.rejected);
        this.scheduleFlush();
      });
  }

  private taskManagementResponse(itt: number, fn: number, response: number): void {
    const r = this.beginPdu(Op.taskManagementResponse, Flag.final);
    r[Bhs.byte2] = response;
    put32(r, Bhs.initiatorTaskTag, itt);
    this.sequenceFields(r, true);
    this.sendPdu(null);
    // RFC 7143 §11.5.1: a cold reset also ends the connection, after the response.
    if (fn === TmfFunction.targetColdReset && response === TmfResponse.complete) this.shutdown("target cold reset");
  }

  // ---- SCSI commands ----

  private onCommand(pdu: Pdu): void {
    const h = pdu.header;
    const itt = u32(h, Bhs.initiatorTaskTag);
    const flags = h[Bhs.flags] as number;
    const edtl = u32(h, Bhs.expectedDataTransferLength);
    if (this.target === undefined) return this.reject(h, RejectReason.protocolError); // discovery session
    if (this.writes.has(itt) || this.running.has(itt)) return this.reject(h, RejectReason.taskInProgress);
    const lun = decodeLun(h, Bhs.lun);
    const cdb = h.subarray(Bhs.cdb, Bhs.cdb + 16);
    const command = decodeCdb(cdb);
    const device = lun < 0 ? undefined : this.target.luns.get(lun);
    const forwarded = lun < 0 || device !== undefined ? undefined : this.target.forwarded?.get(lun);
    const lunsChanged = this.reportedLunsChanged(command);
    const writing = (flags & Flag.write) !== 0;
    const immediate = pdu.data;
    if (immediate.length > edtl || (immediate.length > 0 && !writing)) return this.reject(h, RejectReason.protocolError);
    if (lunsChanged !== null) return this.answer(itt, edtl, lunsChanged);
    if (!writing || edtl === immediate.length) {
      if (forwarded !== undefined) return this.forward(itt, edtl, cdb, forwarded, lun, writing ? immediate : null);
      return this.execute(itt, edtl, command, device, lun, writing ? immediate : null, cdb);
    }
    // More Data-Out to come: gather it (unsolicited, then R2Ts), then run.
    if (edtl > transferBytesMax) return this.answer(itt, edtl, checkCondition(SenseKey.illegalRequest, Asc.invalidFieldInCdb));
    if (this.writes.size + this.running.size >= tasksMax || this.writeBufferBytes + edtl > writeBufferBytesMax) {
      return this.answer(itt, edtl, { status: Status.taskSetFull });
    }
    const keepBytes = Math.min(edtl, this.dataOutBytesWanted(command, device?.info().blockBytes ?? forwarded?.blockBytes, edtl));
    // Not zeroed: Data-Out arrives in order (DataPDUInOrder) and the command runs only once all
    // of EDTL has arrived, so every byte is written before it is read.
    const buffer = uninitialized(keepBytes);
    if (immediate.length > 0) buffer.set(immediate.subarray(0, Math.min(immediate.length, keepBytes)));
    const p = this.login.params;
    const unsolicitedEnd = p.initialR2T ? immediate.length : Math.min(Math.max(p.firstBurstBytes, immediate.length), edtl);
    const task: WriteTask = {
      itt,
      lunField: h.slice(Bhs.lun, Bhs.lun + 8),
      lun,
      command,
      cdb: cdb.slice(),
      edtl,
      buffer,
      receivedBytes: immediate.length,
      unsolicitedEnd,
      unsolicitedNextOffset: immediate.length,
      unsolicitedDataSN: 0,
      r2tIssuedTo: unsolicitedEnd,
      r2tSN: 0,
      outstanding: [],
    };
    this.writes.set(itt, task);
    this.writeBufferBytes += keepBytes;
    this.issueR2Ts(task);
  }

  /**
   * SPC-4 §5.13: after the target's LUN inventory changed, the next command (other than INQUIRY
   * and REQUEST SENSE) gets REPORTED LUNS DATA HAS CHANGED; REPORT LUNS clears it.
   */
  private reportedLunsChanged(command: Command): ScsiResult | null {
    const target = this.target;
    if (target === undefined) return null;
    const version = this.options.lunStates.inventoryVersion(target.iqn);
    if (version === this.inventorySeen) return null;
    if (command.kind === "inquiry" || command.kind === "request-sense") return null;
    this.inventorySeen = version;
    if (command.kind === "report-luns") return null;
    return checkCondition(SenseKey.unitAttention, UnitAttention.reportedLunsDataChanged);
  }

  /** Bytes of Data-Out the command can use (the rest of EDTL is received and dropped). */
  private dataOutBytesWanted(command: Command, blockBytes: number | undefined, edtl: number): number {
    if ((command.kind === "write" || command.kind === "read") && blockBytes !== undefined) return command.blocks * blockBytes;
    return edtl;
  }

  private issueR2Ts(task: WriteTask): void {
    const p = this.login.params;
    while (task.r2tIssuedTo < task.edtl && task.outstanding.length < p.maxOutstandingR2T) {
      const offsetBytes = task.r2tIssuedTo;
      const lengthBytes = Math.min(p.maxBurstBytes, task.edtl - offsetBytes);
      const r2t: R2tState = { ttt: this.allocateTtt(), offsetBytes, lengthBytes, receivedBytes: 0, nextDataSN: 0 };
      task.outstanding.push(r2t);
      task.r2tIssuedTo += lengthBytes;
      const h = this.beginPdu(Op.r2t, Flag.final);
      h.set(task.lunField, Bhs.lun);
      put32(h, Bhs.initiatorTaskTag, task.itt);
      put32(h, Bhs.targetTransferTag, r2t.ttt);
      this.sequenceFields(h, false);
      put32(h, Bhs.statSN, this.statSN); // R2T carries StatSN without advancing it
      put32(h, Bhs.r2tSN, task.r2tSN++);
      put32(h, Bhs.bufferOffset, offsetBytes);
      put32(h, Bhs.desiredDataTransferLength, lengthBytes);
      this.sendPdu(null);
    }
  }

  private dropWrite(task: WriteTask): void {
    if (this.writes.delete(task.itt)) this.writeBufferBytes -= task.buffer.length;
    assert(this.writeBufferBytes >= 0);
  }

  private onDataOut(pdu: Pdu): void {
    const h = pdu.header;
    const itt = u32(h, Bhs.initiatorTaskTag);
    const task = this.writes.get(itt);
    if (task === undefined) return; // aborted or already answered: dropped (ERL 0)
    const ttt = u32(h, Bhs.targetTransferTag);
    const dataSN = u32(h, Bhs.dataSN);
    const offset = u32(h, Bhs.bufferOffset);
    const length = pdu.data.length;
    // DataPDUInOrder=Yes and DataSequenceInOrder=Yes: every PDU continues where the last one of
    // its sequence ended, with the next DataSN (RFC 7143 §4.2.5.3, §11.7.5).
    let r2t: R2tState | undefined;
    if (ttt === reservedTag) {
      if (dataSN !== task.unsolicitedDataSN) return this.failWrite(task, dataPhaseError, `unsolicited DataSN ${dataSN}, expected ${task.unsolicitedDataSN}`);
      if (offset !== task.unsolicitedNextOffset || offset + length > task.unsolicitedEnd) return this.failWrite(task, dataOffsetError, `unsolicited data at ${offset}+${length}`);
      task.unsolicitedDataSN++;
      task.unsolicitedNextOffset += length;
    } else {
      r2t = task.outstanding.find((r) => r.ttt === ttt);
      if (r2t === undefined) return this.failWrite(task, { asc: 0x4b, ascq: 0x01 }, `Data-Out with unknown TTT ${ttt}`); // INVALID TARGET PORT TRANSFER TAG RECEIVED
      if (dataSN !== r2t.nextDataSN) return this.failWrite(task, dataPhaseError, `DataSN ${dataSN}, expected ${r2t.nextDataSN}`);
      if (offset !== r2t.offsetBytes + r2t.receivedBytes || r2t.receivedBytes + length > r2t.lengthBytes) return this.failWrite(task, dataOffsetError, `solicited data at ${offset}+${length}`);
      r2t.nextDataSN++;
      r2t.receivedBytes += length;
    }
    if (offset < task.buffer.length) task.buffer.set(pdu.data.subarray(0, Math.min(length, task.buffer.length - offset)), offset);
    task.receivedBytes += length;
    if (r2t !== undefined && r2t.receivedBytes === r2t.lengthBytes) {
      task.outstanding.splice(task.outstanding.indexOf(r2t), 1);
      this.issueR2Ts(task);
    }
    if (task.receivedBytes < task.edtl) return;
    this.dropWrite(task);
    const device = task.lun < 0 ? undefined : this.target?.luns.get(task.lun);
    const forwarded = task.lun < 0 || device !== undefined ? undefined : this.target?.forwarded?.get(task.lun);
    // The connection has forgotten the task: nothing writes its buffer again (core/util/handover.ts).
    handOver(task.buffer);
    if (forwarded !== undefined) return this.forward(task.itt, task.edtl, task.cdb, forwarded, task.lun, task.buffer);
    this.execute(task.itt, task.edtl, task.command, device, task.lun, task.buffer, task.cdb);
  }

  private failWrite(task: WriteTask, sense: { asc: number; ascq: number }, why: string): void {
    this.options.logger.warn("bad Data-Out sequence, command ended", { reason: why, initiator: this.initiatorName });
    this.dropWrite(task);
    this.answer(task.itt, task.edtl, checkCondition(SenseKey.abortedCommand, sense));
  }

  /**
   * Runs a command whose Data-Out (if any) is complete; answers now, or when the device does. A
   * command to a LUN that can move (BlockDevice.movable) is kept whole, its Data-Out copied and
   * handed over to the device (which then keeps it without a copy of its own): if the device
   * answers that the LUN is served elsewhere now and the target forwards it from here, the
   * command, not yet answered, goes there instead (a LUN taken over while this node was cut off).
   */
  private execute(itt: number, edtl: number, command: Command, device: BlockDevice | undefined, lun: number, dataOut: Uint8Array | null, cdb: Uint8Array): void {
    let result: MaybePromise<ScsiResult>;
    const entry = { lun, aborted: false };
    const whole = device?.movable === true ? { cdb: cdb.slice(), dataOut: dataOut === null || isHandedOver(dataOut) ? dataOut : handOver(dataOut.slice()) } : null;
    if (whole !== null) dataOut = whole.dataOut;
    try {
      result = executeCommand({ command, device, port: this.port, dataOut, dataInBytesMax: edtl, nexus: this.nexus, lunStates: this.options.lunStates, aborted: () => entry.aborted });
    } catch (e) {
      this.options.logger.error("command failed with an exception (a bug)", { error: String(e), opcode: command.kind });
      result = senseForErrorCode("INTERNAL");
    }
    if (!(result instanceof Promise)) return this.answer(itt, edtl, result);
    this.running.set(itt, entry);
    result.then(
      (r) => {
        const moved = whole !== null && !entry.aborted && isAccessStateTransition(r) ? this.forwardedNow(lun, device) : undefined;
        if (whole !== null && moved !== undefined) return this.forward(itt, edtl, whole.cdb, moved, lun, whole.dataOut);
        this.finishAsync(itt, edtl, entry, r);
      },
      (e: unknown) => {
        this.options.logger.error("device call failed with an exception (a bug)", { error: String(e) });
        this.finishAsync(itt, edtl, entry, senseForErrorCode("INTERNAL"));
      },
    );
  }

  /**
   * Sends a command to the coordinator of its LUN. It is a task like a local device call: an
   * abort (TMF, nexus loss) drops its answer here; the coordinator still runs it (a command
   * already forwarded cannot be recalled, like a write already handed to the device).
   */
  private forward(itt: number, edtl: number, cdb: Uint8Array, unit: ForwardedUnit, lun: number, dataOut: Uint8Array | null): void {
    const entry = { lun, aborted: false };
    this.running.set(itt, entry);
    unit.execute({ cdb, nexus: this.forwardNexus, dataOut, dataInBytesMax: edtl }).then(
      (r) => this.finishAsync(itt, edtl, entry, r),
      (e: unknown) => {
        this.options.logger.error("forwarded command failed with an exception (a bug)", { error: String(e) });
        this.finishAsync(itt, edtl, entry, senseForErrorCode("INTERNAL"));
      },
    );
  }

  /** The forwarding unit that serves `lun` now in place of `device`, if the LUN moved away from here. */
  private forwardedNow(lun: number, device: BlockDevice | undefined): ForwardedUnit | undefined {
    const t = this.target;
    return t === undefined || t.luns.get(lun) === device ? undefined : t.forwarded?.get(lun);
  }

  private finishAsync(itt: number, edtl: number, entry: { aborted: boolean }, result: ScsiResult): void {
    if (this.running.get(itt) === entry) this.running.delete(itt);
    if (this.running.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    if (entry.aborted || this.phase === "closed") return;
    this.answer(itt, edtl, result);
    this.scheduleFlush();
  }

  /**
   * Sends Data-In (if any) and status (RFC 7143 §11.4, §11.7). The status rides in the last
   * Data-In when there is no sense; residuals compare what the command wanted to move (its SCSI
   * transfer length, or the data it produced) with EDTL (§11.4.5.2).
   */
  private answer(itt: number, edtl: number, result: ScsiResult): void {
    const data = result.data;
    const produced = result.scsiBytes ?? data?.length ?? (result.status === Status.good ? 0 : edtl);
    let residualFlags = 0;
    let residual = 0;
    if (produced > edtl) {
      residualFlags = Flag.residualOverflow;
      residual = produced - edtl;
    } else if (produced < edtl) {
      residualFlags = Flag.residualUnderflow;
      residual = edtl - produced;
    }
    const sendBytes = data === undefined ? 0 : Math.min(data.length, edtl);
    const statusInData = sendBytes > 0 && result.sense === undefined;
    if (data !== undefined && sendBytes > 0) {
      const p = this.login.params;
      const segment = p.sendDataSegmentBytes;
      let dataSN = 0;
      for (let offset = 0; offset < sendBytes; ) {
        // A Data-In sequence ends at each MaxBurstLength boundary (F bit, RFC 7143 §11.7.1).
        const burstEnd = Math.min(sendBytes, (Math.floor(offset / p.maxBurstBytes) + 1) * p.maxBurstBytes);
        const length = Math.min(segment, burstEnd - offset);
        const last = offset + length === sendBytes;
        let flags = offset + length === burstEnd ? Flag.final : 0;
        if (last && statusInData) flags |= Flag.status | residualFlags;
        const h = this.beginPdu(Op.dataIn, flags);
        put32(h, Bhs.initiatorTaskTag, itt);
        put32(h, Bhs.targetTransferTag, reservedTag);
        this.sequenceFields(h, last && statusInData);
        if (last && statusInData) {
          h[Bhs.byte3] = result.status;
          put32(h, Bhs.residualCount, residual);
        }
        put32(h, Bhs.dataSN, dataSN++);
        put32(h, Bhs.bufferOffset, offset);
        this.sendPdu(data.subarray(offset, offset + length));
        offset += length;
      }
      if (statusInData) return;
    }
    let senseData: Uint8Array | null = null;
    if (result.sense !== undefined) {
      // RFC 7143 §11.4.7: SenseLength (2 bytes) then the sense data.
      senseData = new Uint8Array(2 + fixedSenseBytes);
      put16(senseData, 0, fixedSenseBytes);
      encodeFixedSense(result.sense, senseData, 2);
    }
    const h = this.beginPdu(Op.scsiResponse, Flag.final | residualFlags);
    h[Bhs.byte2] = 0; // Response: command completed at target
    h[Bhs.byte3] = result.status;
    put32(h, Bhs.initiatorTaskTag, itt);
    this.sequenceFields(h, true);
    put32(h, Bhs.residualCount, residual);
    this.sendPdu(senseData);
  }
}
