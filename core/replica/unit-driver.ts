// Runs the replication state machines (unit.ts) of the segment units this node hosts on real
// I/O: feeds each unit the messages the router (transport.ts) brings, the completions of its
// disk operations and record requests, and a tick every `tickMs` with the node's monotonic clock
// (read here and nowhere in the logic); carries out the effects each step returns against the
// unit's archive SegmentUnit (pages with their sequence numbers), two small files of its own
// (the unit's meta and its log marker), the membership store and the router.
//
// Ordering contract (docs/REPLICATION.md, "Driver contract"), kept per unit:
// - the effects of one step are carried out in the order given; the inputs they cause (disk
//   completions) are fed only after the whole list has been carried out;
// - "persist-meta" is durable (written to a new file, fdatasync, rename, fsync of the directory)
//   before the next effect of the same list is looked at;
// - "persist", "read", "flush" run synchronously, one after the other, in the order emitted, so a
//   read sees every persist emitted before it; each is answered by exactly one input. A persist
//   writes the pages (with their seq) before the log marker; both reach the page cache, which
//   survives the death of the process; "flush" fdatasyncs the archive and the marker. The marker
//   of a batch of inputs is written once, the newest, when the batch is done (before a flush
//   when one comes first): nothing a step sends leaves the process before then (the sends are
//   held to the batch's end, replies to coordinators resolve promises), so no other process can
//   learn of a persist whose marker is not written, and a crash inside the batch is the same
//   as one between a page write and its marker, which recovery handles. One exception: a
//   primary's forwards, which claim nothing about its own persists, may leave before their
//   step's persist when no marker is due (`carry`);
// - "record" and "fetch-membership" go to the store asynchronously; "unknown" is reported when the
//   store fails (the unit retries); a unit steps one input at a time, never re-entrantly.
// It never decides anything a state machine decides, and never acknowledges on a unit's behalf.
// A disk operation that fails stops that unit (as a crash would): the contract has no failure
// input, and carrying on could acknowledge what is not on the disk.
import { closeSync, existsSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Archive, SegmentUnit } from "../archive/archive.ts";
import { pageBytes } from "../archive/format.ts";
import { assert, unreachable } from "../util/assert.ts";
import type { Logger } from "../util/log.ts";
import type { MembershipStore } from "./record-store.ts";
import type { ReplicaRouter } from "./transport.ts";
import type { LogMark, Message, Recovered, UnitEffect, UnitId, UnitInput, UnitMeta, UnitReport } from "./types.ts";
import { defaultUnitConfig, initUnit, reportOf, stepUnit, type UnitConfig, type UnitState } from "./unit.ts";
import { isMembership } from "./wire.ts";
import { parseJson } from "../util/json.ts";

type ForwardAck = Extract<Message, { type: "forward-ack" }>;
const isForward = (e: UnitEffect): e is Extract<UnitEffect, { kind: "send" }> => e.kind === "send" && e.msg.type === "forward";

/** How often units are ticked (the contract asks for ~20 ms). */
export const tickMsDefault = 20;
/** Inputs queued for one unit; beyond it, incoming messages are dropped (the sender retransmits). */
export const unitInboxMax = 8192;

/** What the driver needs of the router (a fake in tests of the contract). */
export type UnitRouter = Pick<ReplicaRouter, "attach" | "detach" | "send" | "flushNow">;

export interface HostedUnitSpec {
  readonly unitId: UnitId;
  readonly segment: string;
  /** The archive unit holding the pages; null for an arbiter (it stores no data). */
  readonly store: { readonly archive: Archive; readonly unit: SegmentUnit } | null;
}

const markMagic = 0x51534c4d; // "QSLM"
const markBytes = 24;

interface Hosted {
  readonly spec: HostedUnitSpec;
  state: UnitState;
  readonly inbox: UnitInput[];
  stepping: boolean;
  alive: boolean;
  readonly metaPath: string;
  readonly markFd: number;
  readonly markBuf: Uint8Array;
  /** The newest marker persisted in this batch and not yet written. */
  markDue: LogMark | null;
  /** A pump is queued (messages arrived). */
  pumpDue: boolean;
  /** The newest forward-ack of this batch per primary, sent when the batch is done. */
  readonly acksDue: Map<string, ForwardAck>;
  readonly sendsDue: Array<Extract<UnitEffect, { kind: "send" }>>;
}

/** Whether every byte is zero; stops at the first that is not, so data costs almost nothing. */
export function isAllZero(data: Uint8Array): boolean {
  const words = data.byteOffset % 4 === 0 && data.length % 4 === 0 ? new Uint32Array(data.buffer, data.byteOffset, data.length / 4) : null;
  if (words !== null) {
    for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}

function fileStem(unitId: UnitId): string {
  return encodeURIComponent(unitId);
}

function encodeMark(buf: Uint8Array, mark: LogMark): void {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  dv.setUint32(0, markMagic);
  dv.setUint32(4, mark.consistent ? 1 : 0);
  dv.setFloat64(8, mark.lastLsn);
  dv.setFloat64(16, mark.commitKnown);
}

function decodeMark(buf: Uint8Array): LogMark | null {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (dv.getUint32(0) !== markMagic) return null;
  return { consistent: dv.getUint32(4) === 1, lastLsn: dv.getFloat64(8), commitKnown: dv.getFloat64(16) };
}

function decodeMeta(text: string): UnitMeta | null {
  const raw = parseJson(text);
  if (typeof raw !== "object" || raw === null) return null;
  const r = raw as Record<string, unknown>;
  if (typeof r.fence !== "number" || typeof r.proposed !== "number") return null;
  if (r.membership !== null && !isMembership(r.membership)) return null;
  return { membership: r.membership, fence: r.fence, proposed: r.proposed };
}

/** Writes a small file so that it is whole and durable when this returns, old or new, never torn. */
function writeDurable(dir: string, path: string, text: string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    const bytes = new TextEncoder().encode(text);
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, done);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dir, "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

export class UnitDriver {
  private readonly units = new Map<UnitId, Hosted>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private stopped = false;
  private readonly cfg: UnitConfig;

  constructor(
    private readonly options: {
      router: UnitRouter;
      store: MembershipStore;
      /** Where each unit's meta and log marker files live (the node's data directory). */
      stateDir: string;
      logger: Logger;
      cfg?: UnitConfig;
      tickMs?: number;
    },
  ) {
    this.cfg = options.cfg ?? defaultUnitConfig;
    mkdirSync(options.stateDir, { recursive: true });
    this.timer = setInterval(() => this.tickAll(), options.tickMs ?? tickMsDefault);
  }

  private now(): number {
    return performance.now();
  }

  /** Starts hosting a unit: recovers what it persisted and attaches it to the router. */
  host(spec: HostedUnitSpec): void {
    assert(!this.stopped, "driver used after stop");
    assert(!this.units.has(spec.unitId), `unit ${spec.unitId} hosted twice`);
    const stem = fileStem(spec.unitId);
    const metaPath = join(this.options.stateDir, `${stem}.meta`);
    const markPath = join(this.options.stateDir, `${stem}.mark`);
    const meta = existsSync(metaPath) ? decodeMeta(readFileSync(metaPath, "utf8")) : null;
    const markFd = openSync(markPath, existsSync(markPath) ? "r+" : "w+", 0o600);
    const markBuf = new Uint8Array(markBytes);
    const got = readSync(markFd, markBuf, 0, markBytes, 0);
    const log = (got === markBytes ? decodeMark(markBuf) : null) ?? { lastLsn: 0, commitKnown: 0, consistent: true };
    const pageSeqs = new Map<number, number>();
    if (spec.store !== null) {
      const u = spec.store.unit;
      const pages = u.info.sizeBytes / pageBytes;
      for (let p = 0; p < pages; p++) {
        if (u.pageState(p) === "unwritten") continue;
        const seq = u.pageSeq(p);
        if (seq > 0) pageSeqs.set(p, seq);
      }
    }
    const recovered: Recovered = { meta, log, pageSeqs };
    const init = initUnit({ self: spec.unitId, segment: spec.segment, cfg: this.cfg }, recovered, this.now());
    const h: Hosted = { spec, state: init.state, inbox: [], stepping: true, alive: true, metaPath, markFd, markBuf, markDue: null, pumpDue: false, acksDue: new Map(), sendsDue: [] };
    this.units.set(spec.unitId, h);
    this.options.router.attach(spec.unitId, (from, msg) => this.deliver(h, from, msg));
    this.carry(h, init.effects);
    this.writeMark(h);
    this.sendHeld(h);
    h.stepping = false;
    this.pump(h);
  }

  /** Stops hosting a unit without flushing (as the death of the process would). */
  drop(unitId: UnitId): void {
    const h = this.units.get(unitId);
    if (h === undefined) return;
    h.alive = false;
    h.inbox.length = 0;
    this.options.router.detach(unitId);
    closeSync(h.markFd);
    this.units.delete(unitId);
  }

  /** Stops every unit and the tick, as a killed process would: nothing more is persisted or sent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    for (const id of [...this.units.keys()]) this.drop(id);
  }

  report(unitId: UnitId): UnitReport | undefined {
    const h = this.units.get(unitId);
    return h === undefined ? undefined : reportOf(h.state, this.now());
  }

  /** The state machine of a hosted unit, for tests and status (read only). */
  stateOf(unitId: UnitId): Readonly<UnitState> | undefined {
    return this.units.get(unitId)?.state;
  }

  // ---- feeding ----

  /**
   * Messages are stepped on a microtask, so that all those of one frame (a batch of forwards,
   * of acks) are stepped together and their log marker written once.
   */
  private deliver(h: Hosted, from: string, msg: Message): void {
    if (!h.alive) return;
    if (h.inbox.length >= unitInboxMax) return;
    h.inbox.push({ kind: "message", from, msg });
    if (h.pumpDue) return;
    h.pumpDue = true;
    queueMicrotask(() => {
      h.pumpDue = false;
      this.pump(h);
    });
  }

  private enqueue(h: Hosted, input: UnitInput): void {
    if (!h.alive) return;
    h.inbox.push(input);
    this.pump(h);
  }

  private tickAll(): void {
    for (const h of this.units.values()) this.enqueue(h, { kind: "tick" });
  }

  private pump(h: Hosted): void {
    if (h.stepping) return;
    h.stepping = true;
    try {
      while (h.alive && h.inbox.length > 0) {
        const input = h.inbox.shift() as UnitInput;
        const r = stepUnit(h.state, input, this.now());
        h.state = r.state;
        this.carry(h, r.effects);
      }
      this.writeMark(h);
      this.sendHeld(h);
    } finally {
      h.stepping = false;
    }
  }

  /**
   * Sends what the batch held back, after its marker: every send but a primary's forwards, in
   * the order emitted, then the acks. A secondary acknowledges every forward it persisted,
   * cumulatively (`lsn`: all up to it): of a batch of forwards only the last ack says anything,
   * so only that one is sent. For the protocol the others were lost, which it is built to bear.
   */
  private sendHeld(h: Hosted): void {
    if (!h.alive) return;
    for (const e of h.sendsDue) this.options.router.send(h.spec.unitId, e.to, e.msg);
    h.sendsDue.length = 0;
    for (const [to, msg] of h.acksDue) this.options.router.send(h.spec.unitId, to, msg);
    h.acksDue.clear();
  }

  /** Keeps the newest ack per primary for sendHeld; one of another epoch than the held one is held to go first, as it was. */
  private holdAck(h: Hosted, to: string, ack: ForwardAck): void {
    const held = h.acksDue.get(to);
    if (held !== undefined && held.epoch !== ack.epoch) h.sendsDue.push({ kind: "send", to, msg: held });
    else if (held !== undefined && held.lsn > ack.lsn) return;
    h.acksDue.set(to, ack);
  }

  /** Writes the marker persisted last in this batch, if any (see the ordering contract). */
  private writeMark(h: Hosted): void {
    const mark = h.markDue;
    if (mark === null || !h.alive) return;
    h.markDue = null;
    encodeMark(h.markBuf, mark);
    try {
      writeSync(h.markFd, h.markBuf, 0, markBytes, 0);
    } catch (err) {
      this.fail(h, `log marker: ${String(err)}`);
    }
  }

  // ---- carrying out ----

  private fail(h: Hosted, what: string): void {
    this.options.logger.error("segment unit stopped after a failed disk operation", { unit: h.spec.unitId, segment: h.spec.segment, what });
    this.drop(h.spec.unitId);
  }

  /**
   * A primary's step that persists a write and forwards it, as the last input of its batch and
   * with no marker due, writes the forwards to the sockets before the persist: the secondaries
   * persist while the primary does (QD1 p50 lower in three pairs of three, PERFORMANCE.md).
   * Nothing a forward says depends on its own write's persist (the write is acknowledged only
   * once the primary has persisted it, whenever that is; the simulation has always let
   * forwards overtake their persist). With no marker due, its commitLsn rests only on persists
   * whose marker is written; a step with any other effect (a meta to make durable) is not
   * early. Otherwise the step's effects go in order, and the sends at the batch's end.
   */
  private carry(h: Hosted, effects: readonly UnitEffect[]): void {
    // Only persists and sends in the step: nothing (a new epoch's meta) must be durable first.
    const early = h.markDue === null && h.inbox.length === 0 && effects.some((e) => e.kind === "persist") && effects.some(isForward) && effects.every((e) => e.kind === "persist" || e.kind === "send");
    if (early) {
      for (const e of effects) if (isForward(e)) this.options.router.send(h.spec.unitId, e.to, e.msg);
      this.options.router.flushNow();
    }
    for (const e of effects) {
      if (!h.alive) return;
      if (!(early && isForward(e))) this.carryOne(h, e);
    }
  }

  private carryOne(h: Hosted, e: UnitEffect): void {
    switch (e.kind) {
      case "send":
        if (e.msg.type === "forward-ack") this.holdAck(h, e.to, e.msg);
        else if (e.msg.type === "forward") this.options.router.send(h.spec.unitId, e.to, e.msg);
        else h.sendsDue.push(e);
        return;
      case "persist-meta":
        try {
          writeDurable(this.options.stateDir, h.metaPath, JSON.stringify(e.meta));
        } catch (err) {
          this.fail(h, `persist-meta: ${String(err)}`);
        }
        return;
      case "persist": {
        if (e.write !== null) {
          const s = h.spec.store;
          assert(s !== null, "a data persist on a unit without data (arbiter)");
          assert(e.write.data.length === e.write.pages * pageBytes, "persist of partial pages");
          // Zeros (an UNMAP or WRITE SAME of zeros, which the coordinator sends as a write) are
          // deallocated instead: they read back the same, keep the write's seq for catch-up, and
          // give the space back on every copy, each of which decides this for itself.
          const w = isAllZero(e.write.data) ? s.unit.unmap(e.write.page * pageBytes, e.write.data.length, e.write.seq) : s.unit.write(e.write.page * pageBytes, e.write.data, e.write.seq);
          if (!w.ok) return this.fail(h, `persist: ${w.message}`);
        }
        if (e.log !== null) h.markDue = e.log;
        h.inbox.push({ kind: "persisted", token: e.token });
        return;
      }
      case "read": {
        const s = h.spec.store;
        assert(s !== null, "a read on a unit without data (arbiter)");
        const r = s.unit.read(e.page * pageBytes, e.pages * pageBytes);
        if (!r.ok) return this.fail(h, `read: ${r.message}`);
        h.inbox.push({ kind: "read-done", token: e.token, data: r.value });
        return;
      }
      case "flush": {
        this.writeMark(h);
        if (!h.alive) return;
        if (h.spec.store !== null) {
          const f = h.spec.store.archive.flush();
          if (!f.ok) return this.fail(h, `flush: ${f.message}`);
        }
        try {
          fdatasyncSync(h.markFd);
        } catch (err) {
          return this.fail(h, `flush of the log marker: ${String(err)}`);
        }
        h.inbox.push({ kind: "flushed", token: e.token });
        return;
      }
      case "record": {
        const token = e.token;
        this.options.store.cas(e.expectEpoch, e.membership).then(
          (o) => this.enqueue(h, { kind: "record-done", token, ...o }),
          () => this.enqueue(h, { kind: "record-done", token, outcome: "unknown" }),
        );
        return;
      }
      case "fetch-membership":
        this.options.store.load(e.segment).then(
          (m) => {
            if (m !== null) this.enqueue(h, { kind: "membership-loaded", membership: m });
          },
          // The unit asks again on its own schedule (fetchEveryMs).
          () => undefined,
        );
        return;
      default:
        unreachable(e);
    }
  }
}
