// One iSCSI connection's state machine (RFC 7143): login, then the full feature phase with SCSI
// commands, R2T/Data-Out, Data-In, NOP, text (SendTargets), task management and logout.
// No sockets here: bytes come in through `receive`, bytes go out through the `send` callback, one
// call per batch (the server writes each batch with one socket.write). Device calls that answer
// synchronously are answered in the same turn, without a promise hop (the design's fast path).
import type { BlockDevice, IoResult } from "../volume/block-device.ts";
import type { Logger } from "../util/log.ts";
import { Op, PduDecoder, RejectReason, bhsBytes, encodedBytes, finishPdu, put16, put24, put32, put32le, reservedTag, u32, type Pdu } from "./pdu.ts";
import { crc32c } from "../util/crc32c.ts";
import { defaultParams, encodeKeys, negotiate, parseKeys, targetLimits, type NegotiationState, type SessionParams } from "./login.ts";
import { Status, checkRw, decodeRw, encodeSense, execute, ioFailureResult, type LunContext, type ScsiResult } from "../scsi/commands.ts";

export interface TargetView {
  iqn: string;
  alias?: string;
  luns: Map<number, BlockDevice>;
}
export interface TargetRegistry {
  listTargets(): Array<{ iqn: string; alias?: string }>;
  lookupTarget(iqn: string): TargetView | undefined;
}

export const cmdWindow = 128; // commands the initiator may have outstanding (MaxCmdSN - ExpCmdSN + 1)
const loginDataBytesMax = 65536;
const pendingCommandsMax = 256;
const textResponseBytesMax = 1 << 20;
/** Data segments at least this large are sent by reference instead of copied (see flush). */
const directDataBytesMin = 65536;
let nextTsih = 1;

interface PendingWrite {
  itt: number;
  lun: number;
  cdb: Uint8Array; // copied
  edtl: number;
  buffer: Uint8Array;
  received: number;
  /** Offset up to which R2Ts have been sent (or unsolicited data allowed). */
  requested: number;
  outstandingR2T: number;
  r2tsn: number;
  ttt: number;
}

const serialLess = (a: number, b: number): boolean => a !== b && ((a < b && b - a < 2 ** 31) || (a > b && a - b > 2 ** 31));

export class IscsiConnection {
  private phase: "login" | "ffp" | "closing" = "login";
  private readonly decoder = new PduDecoder(loginDataBytesMax);
  private params: SessionParams = defaultParams();
  private readonly negotiation: NegotiationState = { params: this.params, declared: new Map() };
  private discovery = false;
  private target: TargetView | undefined;
  private isid = new Uint8Array(6);
  private tsih = 0;
  private statSN = 0;
  private expCmdSN = 0;
  private firstLogin = true;
  private readonly pending = new Map<number, PendingWrite>();
  private nextTtt = 1;
  private textContinuation: { ttt: number; rest: Uint8Array } | null = null;
  private out: Array<{ header: Uint8Array; data: Uint8Array | null; headerDigest: boolean; dataDigest: boolean }> = [];
  private inflightAsync = 0;
  initiatorName = "";

  constructor(
    private readonly registry: TargetRegistry,
    private readonly portal: { address: string; tpgt: number },
    private readonly send: (bytes: Uint8Array) => void,
    private readonly close: () => void,
    private readonly logger: Logger,
  ) {}

  get targetName(): string | undefined {
    return this.target?.iqn;
  }

  get busy(): boolean {
    return this.inflightAsync > 0;
  }

  receive(chunk: Uint8Array): void {
    this.decoder.push(
      chunk,
      (pdu) => this.onPdu(pdu),
      (e) => {
        if (e.kind === "data-digest") {
          this.reject(e.header, RejectReason.dataDigestError);
          return;
        }
        this.logger.warn("protocol error, closing connection", { error: e.kind, initiator: this.initiatorName });
        this.flush();
        this.phase = "closing";
        this.close();
      },
    );
    this.flush();
  }

  /**
   * Sends every queued PDU: headers and small data are copied into one buffer per run; large
   * data segments (reads of 64 KiB and more, 4-byte aligned, no data digest) go to the socket as
   * the views they are, saving a copy of every large read. Queued data are views, valid until
   * this flush, which runs before the chunk that produced them is released.
   */
  private flush(): void {
    if (this.out.length === 0) return;
    const isDirect = (q: (typeof this.out)[number]): boolean => q.data !== null && q.data.length >= directDataBytesMin && (q.data.length & 3) === 0 && !q.dataDigest;
    let size = 0;
    for (const q of this.out) size += isDirect(q) ? encodedBytes(0, q.headerDigest, false) : encodedBytes(q.data?.length ?? 0, q.headerDigest, q.dataDigest);
    let run = new Uint8Array(size);
    let at = 0;
    for (const q of this.out) {
      const direct = isDirect(q);
      run.set(q.header, at);
      if (!direct) {
        at += finishPdu(run, at, q.data, q.headerDigest, q.dataDigest);
        continue;
      }
      const data = q.data as Uint8Array;
      // Header (and its digest) now, then the data by reference.
      const headerBytes = finishPdu(run, at, null, q.headerDigest, false);
      put24(run, at + 5, data.length);
      if (q.headerDigest) put32le(run, at + bhsBytes, crc32c(run.subarray(at, at + bhsBytes)));
      at += headerBytes;
      this.send(run.subarray(0, at));
      this.send(data);
      run = run.subarray(at);
      at = 0;
    }
    this.out = [];
    if (at > 0) this.send(run.subarray(0, at));
  }

  /** Queues a target PDU with `data`; `fill` sets the header fields after the first two bytes. */
  private emit(opcode: number, flags: number, data: Uint8Array | null, fill: (h: Uint8Array) => void): void {
    const header = new Uint8Array(bhsBytes);
    header[0] = opcode;
    header[1] = flags;
    fill(header);
    const ffp = this.phase === "ffp";
    const headerDigest = this.params.headerDigest && ffp;
    const dataDigest = this.params.dataDigest && ffp;
    this.out.push({ header, data, headerDigest, dataDigest });
  }

  private maxCmdSN(): number {
    return (this.expCmdSN + cmdWindow - 1) >>> 0;
  }

  private seqFields(h: Uint8Array, statSN: number): void {
    put32(h, 24, statSN);
    put32(h, 28, this.expCmdSN);
    put32(h, 32, this.maxCmdSN());
  }

  private reject(header: Uint8Array, reason: number): void {
    this.emit(Op.reject, 0x80, header.slice(0, bhsBytes), (h) => {
      h[2] = reason;
      put32(h, 16, reservedTag);
      this.seqFields(h, this.statSN++);
    });
  }

  private onPdu(pdu: Pdu): void {
    if (this.phase === "closing") return;
    if (this.phase === "login") {
      if (pdu.opcode !== Op.loginRequest) {
        this.logger.warn("non-login PDU before login completed", { opcode: pdu.opcode });
        this.phase = "closing";
        this.close();
        return;
      }
      this.onLogin(pdu);
      return;
    }
    const h = pdu.header;
    // Advance the command window for non-immediate commands (RFC 7143 §4.2.2.1).
    if (!pdu.immediate && pdu.opcode !== Op.dataOut && pdu.opcode !== Op.snackRequest) {
      const cmdSN = u32(h, 24);
      if (cmdSN === this.expCmdSN || serialLess(this.expCmdSN, cmdSN)) this.expCmdSN = (cmdSN + 1) >>> 0;
    }
    switch (pdu.opcode) {
      case Op.scsiCommand:
        this.onCommand(pdu);
        break;
      case Op.dataOut:
        this.onDataOut(pdu);
        break;
      case Op.nopOut:
        this.onNop(pdu);
        break;
      case Op.textRequest:
        this.onText(pdu);
        break;
      case Op.logoutRequest:
        this.onLogout(pdu);
        break;
      case Op.taskMgmtRequest:
        this.onTaskMgmt(pdu);
        break;
      default:
        this.reject(h, RejectReason.commandNotSupported);
    }
  }

  // ---- login ----

  private loginResponse(req: Uint8Array, flags: number, statusClass: number, statusDetail: number, data: Uint8Array | null): void {
    this.emit(Op.loginResponse, flags, data, (h) => {
      h[2] = 0; // version max
      h[3] = 0; // version active
      h.set(req.subarray(8, 14), 8); // ISID
      put16(h, 14, this.tsih);
      put32(h, 16, u32(req, 16)); // ITT
      this.seqFields(h, this.statSN);
      h[36] = statusClass;
      h[37] = statusDetail;
    });
    if (statusClass === 0) this.statSN = (this.statSN + 1) >>> 0;
  }

  private loginFail(req: Uint8Array, statusClass: number, statusDetail: number, why: string): void {
    this.logger.warn("login refused", { reason: why, initiator: this.initiatorName });
    this.loginResponse(req, 0, statusClass, statusDetail, null);
    this.phase = "closing";
    this.flush();
    this.close();
  }

  private onLogin(pdu: Pdu): void {
    const h = pdu.header;
    const transit = ((h[1] as number) & 0x80) !== 0;
    const csg = ((h[1] as number) >>> 2) & 3;
    const nsg = (h[1] as number) & 3;
    if (this.firstLogin) {
      this.firstLogin = false;
      this.isid = h.slice(8, 14);
      this.expCmdSN = u32(h, 24);
      this.statSN = u32(h, 28); // any value works; following the initiator's guess is friendliest
      if ((h[3] as number) > 0) return this.loginFail(h, 2, 5, "unsupported version"); // version-min above 0
    }
    if (csg === 2 || (transit && nsg === 2) || (transit && nsg <= csg)) return this.loginFail(h, 2, 0, "bad stage transition");
    const keys = parseKeys(pdu.data);
    const result = negotiate(this.negotiation, keys, csg === 0 ? "security" : "operational", this.negotiation.declared.get("SessionType") === "Discovery" || keys.some(([k, v]) => k === "SessionType" && v === "Discovery"));
    if (result.error !== undefined) return this.loginFail(h, 2, 7, result.error); // missing or bad parameter
    const declared = this.negotiation.declared;
    this.initiatorName = declared.get("InitiatorName") ?? "";
    if (this.initiatorName === "") return this.loginFail(h, 2, 7, "no InitiatorName");
    this.discovery = declared.get("SessionType") === "Discovery";
    const reply = result.reply;
    if (!this.discovery && this.target === undefined) {
      const name = (declared.get("TargetName") ?? "").toLowerCase();
      if (name === "") return this.loginFail(h, 2, 7, "no TargetName");
      this.target = this.registry.lookupTarget(name);
      if (this.target === undefined) return this.loginFail(h, 2, 3, `no target ${name}`);
      reply.push(["TargetPortalGroupTag", String(this.portal.tpgt)]);
      if (this.target.alias !== undefined) reply.push(["TargetAlias", this.target.alias]);
    }
    if (csg === 1 || (transit && nsg === 3)) {
      if (!keys.some(([k]) => k === "MaxRecvDataSegmentLength") || csg === 1) reply.push(["MaxRecvDataSegmentLength", String(targetLimits.maxRecvDataSegmentLength)]);
    }
    let flags = (csg << 2) | (transit ? 0x80 | nsg : 0);
    if (transit && nsg === 3) {
      this.tsih = nextTsih++ & 0xffff || nextTsih++;
      flags = 0x80 | (csg << 2) | 3;
    }
    // A reply key may appear once: keep the last of each.
    const seen = new Map<string, string>();
    for (const [k, v] of reply) seen.set(k, v);
    this.loginResponse(h, flags, 0, 0, encodeKeys([...seen.entries()]));
    if (transit && nsg === 3) {
      this.phase = "ffp";
      this.params.recvDataBytesMax = targetLimits.maxRecvDataSegmentLength;
      this.decoder.dataBytesMax = targetLimits.maxRecvDataSegmentLength;
      // Digests start with the first PDU after the final login response (RFC 7143 §13.1).
      this.flush();
      this.decoder.headerDigest = this.params.headerDigest;
      this.decoder.dataDigest = this.params.dataDigest;
      this.logger.info("session logged in", { initiator: this.initiatorName, target: this.target?.iqn ?? "(discovery)", tsih: this.tsih });
    }
  }

  // ---- text ----

  private sendTargetsText(): Uint8Array {
    const pairs: Array<[string, string]> = [];
    for (const t of this.registry.listTargets()) {
      pairs.push(["TargetName", t.iqn]);
      pairs.push(["TargetAddress", `${this.portal.address},${this.portal.tpgt}`]);
    }
    return encodeKeys(pairs);
  }

  private onText(pdu: Pdu): void {
    const h = pdu.header;
    const itt = u32(h, 16);
    const ttt = u32(h, 20);
    let body: Uint8Array;
    if (ttt !== reservedTag && this.textContinuation !== null && this.textContinuation.ttt === ttt) {
      body = this.textContinuation.rest;
    } else {
      const keys = parseKeys(pdu.data);
      const reply: Array<[string, string]> = [];
      let targets: Uint8Array | null = null;
      for (const [k, v] of keys) {
        if (k === "SendTargets") {
          // RFC 7143 §12.3: "All" lists every target; a name lists that one; empty means the
          // session's own target (normal sessions only).
          if (v === "All") targets = this.sendTargetsText();
          else {
            const one = this.registry.lookupTarget(v === "" ? (this.target?.iqn ?? "") : v.toLowerCase());
            targets = one === undefined ? new Uint8Array(0) : encodeKeys([["TargetName", one.iqn], ["TargetAddress", `${this.portal.address},${this.portal.tpgt}`]]);
          }
        } else reply.push([k, "NotUnderstood"]);
      }
      const tail = encodeKeys(reply);
      body = new Uint8Array((targets?.length ?? 0) + tail.length);
      if (targets !== null) body.set(targets);
      body.set(tail, targets?.length ?? 0);
      if (body.length > textResponseBytesMax) body = body.subarray(0, textResponseBytesMax);
    }
    const max = this.params.sendDataBytesMax;
    const more = body.length > max;
    const chunk = more ? body.subarray(0, max) : body;
    const nextTtt = more ? this.nextTtt++ : reservedTag;
    this.textContinuation = more ? { ttt: nextTtt, rest: body.slice(max) } : null;
    this.emit(Op.textResponse, more ? 0x40 : 0x80, chunk, (r) => {
      r.set(h.subarray(8, 16), 8);
      put32(r, 16, itt);
      put32(r, 20, nextTtt);
      this.seqFields(r, this.statSN++);
    });
  }

  // ---- NOP, logout, task management ----

  private onNop(pdu: Pdu): void {
    const h = pdu.header;
    const itt = u32(h, 16);
    if (itt === reservedTag) return; // an answer to our own NOP-In
    this.emit(Op.nopIn, 0x80, pdu.data.length > 0 ? pdu.data : null, (r) => {
      r.set(h.subarray(8, 16), 8);
      put32(r, 16, itt);
      put32(r, 20, reservedTag);
      this.seqFields(r, this.statSN++);
    });
  }

  private onLogout(pdu: Pdu): void {
    const h = pdu.header;
    this.pending.clear();
    this.emit(Op.logoutResponse, 0x80, null, (r) => {
      r[2] = 0; // connection or session closed successfully
      put32(r, 16, u32(h, 16));
      this.seqFields(r, this.statSN++);
      put16(r, 40, 0); // Time2Wait
      put16(r, 42, 0); // Time2Retain
    });
    this.logger.info("session logged out", { initiator: this.initiatorName, target: this.target?.iqn ?? "(discovery)" });
    this.flush();
    this.phase = "closing";
    this.close();
  }

  private onTaskMgmt(pdu: Pdu): void {
    const h = pdu.header;
    const fn = (h[1] as number) & 0x7f;
    const lun = lunNumber(h);
    let response = 0; // function complete
    switch (fn) {
      case 1: {
        // ABORT TASK
        const rtt = u32(h, 20);
        if (!this.pending.delete(rtt)) response = 1; // task does not exist (it already completed)
        break;
      }
      case 2: // ABORT TASK SET
      case 4: // CLEAR TASK SET
      case 5: // LOGICAL UNIT RESET
        for (const [itt, p] of this.pending) if (p.lun === lun) this.pending.delete(itt);
        if (fn === 5 && this.target?.luns.get(lun) === undefined) response = 2; // LUN does not exist
        break;
      case 6: // TARGET WARM RESET
      case 7: // TARGET COLD RESET
        this.pending.clear();
        break;
      default:
        response = 5; // function not supported
    }
    this.emit(Op.taskMgmtResponse, 0x80, null, (r) => {
      r[2] = response;
      put32(r, 16, u32(h, 16));
      this.seqFields(r, this.statSN++);
    });
  }

  // ---- SCSI commands ----

  private lunContext(lun: number): LunContext {
    const luns = this.target?.luns ?? new Map<number, BlockDevice>();
    return { device: luns.get(lun), targetName: this.target?.iqn ?? "", lunNumbers: [...luns.keys()].sort((a, b) => a - b), relativePortId: this.portal.tpgt };
  }

  private onCommand(pdu: Pdu): void {
    const h = pdu.header;
    const itt = u32(h, 16);
    const flags = h[1] as number;
    const edtl = u32(h, 20);
    const lun = lunNumber(h);
    const cdb = h.subarray(32, 48);
    if (this.discovery) return this.respond(itt, edtl, { status: Status.checkCondition, sense: { key: 0x05, asc: 0x25, ascq: 0 } }, lun);
    const ctx = this.lunContext(lun);
    const writeFlag = (flags & 0x20) !== 0;
    if (writeFlag && edtl > pdu.data.length) {
      // More Data-Out to come: collect it (R2Ts), then run.
      if (this.pending.size >= pendingCommandsMax) return this.respond(itt, edtl, { status: Status.taskSetFull }, lun);
      const buffer = new Uint8Array(edtl);
      buffer.set(pdu.data.subarray(0, Math.min(pdu.data.length, edtl)));
      const unsolicited = this.params.initialR2T ? pdu.data.length : Math.min(this.params.firstBurstLength, edtl);
      const p: PendingWrite = { itt, lun, cdb: cdb.slice(), edtl, buffer, received: pdu.data.length, requested: Math.max(unsolicited, pdu.data.length), outstandingR2T: 0, r2tsn: 0, ttt: 0 };
      this.pending.set(itt, p);
      this.sendR2Ts(p);
      return;
    }
    this.run(itt, lun, cdb, edtl, writeFlag ? pdu.data.subarray(0, Math.min(pdu.data.length, edtl)) : null, ctx);
  }

  private sendR2Ts(p: PendingWrite): void {
    while (p.requested < p.edtl && p.outstandingR2T < this.params.maxOutstandingR2T) {
      const offset = p.requested;
      const length = Math.min(this.params.maxBurstLength, p.edtl - offset);
      p.requested += length;
      p.outstandingR2T++;
      const ttt = this.nextTtt++ >>> 0;
      if (this.nextTtt >= 0xffffffff) this.nextTtt = 1;
      p.ttt = ttt;
      const r2tsn = p.r2tsn++;
      this.emit(Op.r2t, 0x80, null, (r) => {
        put32(r, 8, 0);
        r[9] = p.lun & 0xff;
        put32(r, 16, p.itt);
        put32(r, 20, ttt);
        this.seqFields(r, this.statSN); // R2T carries StatSN without advancing it
        put32(r, 36, r2tsn);
        put32(r, 40, offset);
        put32(r, 44, length);
      });
    }
  }

  private onDataOut(pdu: Pdu): void {
    const h = pdu.header;
    const itt = u32(h, 16);
    const p = this.pending.get(itt);
    if (p === undefined) return; // aborted or unknown: drop (ERL 0)
    const offset = u32(h, 40);
    const len = pdu.data.length;
    if (offset + len > p.edtl) {
      this.reject(h, RejectReason.protocolError);
      return;
    }
    p.buffer.set(pdu.data, offset);
    p.received += len;
    const final = ((h[1] as number) & 0x80) !== 0;
    if (final && u32(h, 20) !== reservedTag) {
      p.outstandingR2T--;
      this.sendR2Ts(p);
    }
    if (p.received >= p.edtl) {
      this.pending.delete(itt);
      this.run(itt, p.lun, p.cdb, p.edtl, p.buffer, this.lunContext(p.lun));
    }
  }

  /** Runs a command whose Data-Out (if any) is complete. */
  private run(itt: number, lun: number, cdb: Uint8Array, edtl: number, dataOut: Uint8Array | null, ctx: LunContext): void {
    const rw = decodeRw(cdb);
    const device = ctx.device;
    if (rw !== null && device !== undefined) {
      const bad = checkRw(rw, device);
      if (bad !== null) return this.respond(itt, edtl, bad, lun);
      const bs = device.info().blockBytes;
      const needed = rw.blocks * bs;
      if (rw.write) {
        const writeBytes = Math.min(needed, Math.floor(Math.min(edtl, dataOut?.length ?? 0) / bs) * bs);
        if (writeBytes === 0) return this.respondRw(itt, edtl, needed, { status: Status.good }, lun);
        const r = device.write(rw.lba * bs, (dataOut as Uint8Array).subarray(0, writeBytes), { fua: rw.fua });
        if (r instanceof Promise) {
          this.inflightAsync++;
          r.then((x) => {
            this.inflightAsync--;
            this.respondRw(itt, edtl, needed, x.ok ? { status: Status.good } : ioFailureResult(x, bs), lun);
            this.flush();
          });
          return;
        }
        return this.respondRw(itt, edtl, needed, r.ok ? { status: Status.good } : ioFailureResult(r, bs), lun);
      }
      const readBytes = Math.min(needed, Math.ceil(edtl / bs) * bs);
      if (readBytes === 0) return this.respondRw(itt, edtl, needed, { status: Status.good }, lun);
      const r = device.read(rw.lba * bs, readBytes);
      const finish = (x: IoResult<Uint8Array>): void => {
        if (!x.ok) return this.respond(itt, edtl, ioFailureResult(x, bs), lun);
        this.respondRw(itt, edtl, needed, { status: Status.good, data: x.value.subarray(0, Math.min(edtl, needed)) }, lun);
      };
      if (r instanceof Promise) {
        this.inflightAsync++;
        r.then((x) => {
          this.inflightAsync--;
          finish(x);
          this.flush();
        });
        return;
      }
      return finish(r);
    }
    const result = execute(cdb, ctx, dataOut);
    if (result instanceof Promise) {
      this.inflightAsync++;
      result.then((x) => {
        this.inflightAsync--;
        this.respond(itt, edtl, x, lun);
        this.flush();
      });
      return;
    }
    this.respond(itt, edtl, result, lun);
  }

  /** A read or write's answer, with residuals computed against the SCSI transfer length. */
  private respondRw(itt: number, edtl: number, needed: number, result: ScsiResult, lun: number): void {
    this.respond(itt, edtl, result, lun, needed);
  }

  /**
   * Sends Data-In (if any) and status. Residuals (RFC 7143 §11.4.5): against `scsiBytes` when
   * the command had a SCSI transfer length, else against the data the command produced.
   */
  private respond(itt: number, edtl: number, result: ScsiResult, lun: number, scsiBytes?: number): void {
    const data = result.status === Status.good ? result.data : undefined;
    const produced = scsiBytes ?? data?.length ?? 0;
    const sent = data === undefined ? 0 : Math.min(data.length, edtl);
    let residualFlags = 0;
    let residual = 0;
    if (result.status === Status.good || scsiBytes !== undefined) {
      if (produced > edtl) {
        residualFlags = 0x04; // O: overflow
        residual = produced - edtl;
      } else if (produced < edtl) {
        residualFlags = 0x02; // U: underflow
        residual = edtl - produced;
      }
    }
    if (data !== undefined && sent > 0) {
      const max = Math.min(this.params.sendDataBytesMax, targetLimits.maxRecvDataSegmentLength * 4);
      let dataSN = 0;
      for (let off = 0; off < sent; off += max) {
        const len = Math.min(max, sent - off);
        const last = off + len >= sent;
        this.emit(Op.dataIn, last ? 0x80 | 0x01 | residualFlags : 0, data.subarray(off, off + len), (r) => {
          put32(r, 16, itt);
          put32(r, 20, reservedTag);
          if (last) this.seqFields(r, this.statSN++);
          else {
            put32(r, 28, this.expCmdSN);
            put32(r, 32, this.maxCmdSN());
          }
          r[3] = last ? result.status : 0;
          put32(r, 36, dataSN++);
          put32(r, 40, off);
          if (last) put32(r, 44, residual);
        });
      }
      return;
    }
    let senseData: Uint8Array | null = null;
    if (result.sense !== undefined) {
      const s = encodeSense(result.sense);
      senseData = new Uint8Array(2 + s.length);
      put16(senseData, 0, s.length);
      senseData.set(s, 2);
    }
    this.emit(Op.scsiResponse, 0x80 | residualFlags, senseData, (r) => {
      r[2] = 0; // command completed at target
      r[3] = result.status;
      put32(r, 16, itt);
      this.seqFields(r, this.statSN++);
      put32(r, 44, residual);
    });
    void lun;
  }
}

/** The LUN number from the 8-byte LUN field (SAM-5 peripheral or flat space addressing). */
export function lunNumber(h: Uint8Array): number {
  const method = (h[8] as number) >>> 6;
  if (method === 0) return h[9] as number;
  if (method === 1) return (((h[8] as number) & 0x3f) << 8) | (h[9] as number);
  return -1;
}
