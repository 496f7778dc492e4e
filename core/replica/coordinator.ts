// The coordinator's side of one replicated segment: what a LUN's Volume talks to instead of a
// local unit. Sends each piece of a write (at most writePagesMax pages) to the segment's primary
// as the current membership names it, reads from the primary alone, and answers a flush only
// when the primary says everything in its log is durable on every active copy.
//
// A request turned away (stale epoch, not the primary) is retried at once with the membership
// the unit sent or, without one, the record in the store; "no-lease" and "busy", a timeout or a
// lost connection are retried after a short pause, the same request id each time (the primary
// deduplicates), until the operation's deadline. It never acknowledges a write the primary did
// not acknowledge, keeps at most `inflightMax` requests out and `waitersMax` queued behind them
// (more fail at once), and never waits without a deadline. It never sends under a membership
// that names another coordinator node (its LUN moved, Membership.coordinator): it waits for one
// naming its own while its LUN is coordinated here (a takeover under way), and fails with MOVED
// (retryable: NOT READY, ASYMMETRIC ACCESS STATE TRANSITION) once it is not, or out of time.
// Page-aligned I/O only: the segment units replicate whole 4 KiB pages (a Volume of 4096-byte
// blocks sends nothing else).
import { assert } from "../util/assert.ts";
import { isHandedOver } from "../util/handover.ts";
import type { IoFailure, IoResult } from "../volume/block-device.ts";
import { pageBytes } from "../volume/layout.ts";
import type { MembershipStore } from "./record-store.ts";
import type { ReplicaRouter } from "./transport.ts";
import type { Address, ClientReply, ClientRequest, Membership } from "./types.ts";
import { writePagesMax } from "./unit.ts";

export interface CoordinatorLimits {
  /** Requests to the primary at once (a QD32 initiator keeps 32 out). */
  readonly inflightMax: number;
  /** Requests queued behind those; more fail at once (push back). */
  readonly waitersMax: number;
  /** One request's wait for the primary's answer. */
  readonly requestTimeoutMs: number;
  /** One operation's wait in all, retries included; then it fails. */
  readonly opTimeoutMs: number;
  /** Pause before retrying after no-lease, busy, a timeout or a lost connection. */
  readonly retryMs: number;
}

export const coordinatorLimitsDefault: CoordinatorLimits = {
  inflightMax: 64,
  waitersMax: 1024,
  requestTimeoutMs: 2_000,
  opTimeoutMs: 30_000,
  retryMs: 25,
};

/** While the membership names another coordinator: the pause between looks, and between store reads. */
const movedPollMs = 100;
const movedReadMs = 500;

const OK_VOID: IoResult<void> = { ok: true, value: undefined };

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

type Build = (epoch: number, reqId: number, completeBelow: number) => ClientRequest;

/**
 * The first request id of a coordinator started now. A primary drops, as a late duplicate, any
 * request whose id is below the floor its client last declared (`completeBelow`), and it knows a
 * coordinator only by its address, which a restarted coordinator keeps: ids that started again
 * at 1 were all dropped, silently, until the primary's unit restarted. Starting at the clock in
 * microseconds puts a new incarnation above every id of the last one as long as that one issued
 * fewer than a thousand requests per millisecond of its life (a segment's coordinator does ~100)
 * and the clock did not step back across the restart. A float64 on the wire: exact to 2^53.
 */
export function firstRequestId(nowMs: number): number {
  return Math.floor(nowMs) * 1000;
}

export class ReplicatedSegment {
  private membership: Membership | null = null;
  private nextReqId: number;
  private readonly outstanding = new Set<number>();
  private inflight = 0;
  private readonly queue: Array<() => void> = [];
  private readonly limits: CoordinatorLimits;
  /** Requests retried, by reason, for tests and status. */
  readonly retries = { redirected: 0, paused: 0 };

  constructor(
    private readonly options: {
      router: ReplicaRouter;
      store: MembershipStore;
      segment: string;
      /** This coordinator's address: "client:<node>/<lun>"; unique in the cluster. */
      client: Address;
      limits?: Partial<CoordinatorLimits>;
      /** Its first request id (firstRequestId of its start time by default). */
      firstReqId?: number;
      /**
       * What a membership lets this coordinator do: "send" (it names this node), "wait" (it names
       * another, while the LUN is given to this one) or "moved" (the LUN is coordinated elsewhere:
       * fail at once). Absent: "send" for every one.
       */
      standing?: (m: Membership) => "send" | "wait" | "moved";
    },
  ) {
    assert(options.client.startsWith("client:"), "a coordinator's address starts with client:");
    this.limits = { ...coordinatorLimitsDefault, ...options.limits };
    this.nextReqId = options.firstReqId ?? firstRequestId(Date.now());
    assert(Number.isSafeInteger(this.nextReqId) && this.nextReqId > 0);
  }

  /** The membership this coordinator last acted on (null until it read one). */
  current(): Membership | null {
    return this.membership;
  }

  /**
   * A newer membership seen elsewhere (the store's watch): requests waiting on the old primary
   * go to the new one now instead of after their request timeout (after a failover, the old
   * primary is fenced: it acknowledges nothing more of its epoch).
   */
  learn(m: Membership): void {
    const old = this.membership;
    if (old !== null && m.epoch <= old.epoch) return;
    this.membership = m;
    if (old !== null && old.primary !== m.primary) this.options.router.failWaiting(this.options.client, old.primary, `epoch ${m.epoch} has another primary`);
  }

  async write(offsetBytes: number, data: Uint8Array): Promise<IoResult<void>> {
    const bad = this.checkAligned(offsetBytes, data.length);
    if (bad !== null) return bad;
    const pieceBytes = writePagesMax * pageBytes;
    const owned = isHandedOver(data);
    const parts: Array<Promise<IoResult<ClientReply>>> = [];
    for (let at = 0; at < data.length; at += pieceBytes) {
      // Kept until the primary answers, and sent again by a retry after a refusal or a failover.
      // A borrowed `data` is good only until this call's first await (an iSCSI PDU's immediate
      // data lives in the receive buffer, which the next PDU overwrites): copied, or a retry
      // sends other bytes (coordinator.test.ts; sending the view cost 44 verify failures in the
      // SIGKILL fault test). A handed-over one (gathered Data-Out) is never written again.
      const end = Math.min(data.length, at + pieceBytes);
      const piece = owned ? data.subarray(at, end) : data.slice(at, end);
      const page = (offsetBytes + at) / pageBytes;
      parts.push(this.run((epoch, reqId, completeBelow) => ({ type: "write", epoch, reqId, completeBelow, page, pages: piece.length / pageBytes, data: piece })));
    }
    for (const r of await Promise.all(parts)) if (!r.ok) return r;
    return OK_VOID;
  }

  async read(offsetBytes: number, lengthBytes: number, into?: Uint8Array): Promise<IoResult<Uint8Array>> {
    const bad = this.checkAligned(offsetBytes, lengthBytes);
    if (bad !== null) return bad;
    const out = into ?? new Uint8Array(lengthBytes);
    assert(out.length === lengthBytes, "read buffer of the wrong size");
    const pieceBytes = writePagesMax * pageBytes;
    const parts: Array<Promise<IoFailure | null>> = [];
    for (let at = 0; at < lengthBytes; at += pieceBytes) {
      const len = Math.min(lengthBytes, at + pieceBytes) - at;
      const page = (offsetBytes + at) / pageBytes;
      parts.push(
        this.run((epoch, reqId, completeBelow) => ({ type: "read", epoch, reqId, completeBelow, page, pages: len / pageBytes })).then((r) => {
          if (!r.ok) return r;
          if (r.value.type !== "read-done" || r.value.data.length !== len) return { ok: false, code: "IO_ERROR", message: `segment ${this.options.segment}: the primary answered a read of ${len} bytes wrongly` } as const;
          out.set(r.value.data, at);
          return null;
        }),
      );
    }
    for (const f of await Promise.all(parts)) if (f !== null) return f;
    return { ok: true, value: out };
  }

  /** Answers when every write acknowledged before it is durable on every active copy. */
  async flush(): Promise<IoResult<void>> {
    const r = await this.run((epoch, reqId, completeBelow) => ({ type: "flush", epoch, reqId, completeBelow }));
    return r.ok ? OK_VOID : r;
  }

  /** Deallocation is not replicated yet: the pages are written with zeros (they read back as zeros). */
  unmap(offsetBytes: number, lengthBytes: number): Promise<IoResult<void>> {
    return this.write(offsetBytes, new Uint8Array(lengthBytes));
  }

  // ---- one request, retried until answered or out of time ----

  private checkAligned(offsetBytes: number, lengthBytes: number): IoFailure | null {
    if (offsetBytes % pageBytes === 0 && lengthBytes % pageBytes === 0) return null;
    return { ok: false, code: "INVALID_ARGUMENT", message: `segment ${this.options.segment}: replicated I/O must be in whole 4 KiB pages (offset ${offsetBytes}, length ${lengthBytes})` };
  }

  /** The lowest request id still out: the first in the set, as ids are added in increasing order. */
  private completeBelow(): number {
    for (const id of this.outstanding) return id;
    return this.nextReqId;
  }

  private async acquire(): Promise<boolean> {
    if (this.inflight < this.limits.inflightMax) {
      this.inflight++;
      return true;
    }
    if (this.queue.length >= this.limits.waitersMax) return false;
    await new Promise<void>((r) => this.queue.push(r));
    return true; // the releaser handed its slot over
  }

  private release(): void {
    const next = this.queue.shift();
    if (next !== undefined) next();
    else this.inflight--;
    assert(this.inflight >= 0);
  }

  private lastReadAt = -Infinity;

  /** A store read at most every movedReadMs (many requests may wait for a move at once). */
  private async refreshSometimes(): Promise<void> {
    if (performance.now() - this.lastReadAt < movedReadMs) return;
    this.lastReadAt = performance.now();
    await this.refresh();
  }

  private async refresh(): Promise<void> {
    try {
      const m = await this.options.store.load(this.options.segment);
      if (m !== null && (this.membership === null || m.epoch > this.membership.epoch)) this.membership = m;
    } catch {
      // The store is unreachable: keep the membership we have; the primary will tell us more.
    }
  }

  private async run(build: Build): Promise<IoResult<ClientReply>> {
    if (!(await this.acquire())) return { ok: false, code: "IO_ERROR", message: `segment ${this.options.segment}: more than ${this.limits.waitersMax} requests queued; retry later` };
    const reqId = this.nextReqId++;
    this.outstanding.add(reqId);
    const deadline = performance.now() + this.limits.opTimeoutMs;
    let lastProblem = "no membership recorded";
    let moved = false;
    const standing = this.options.standing ?? (() => "send");
    try {
      while (performance.now() < deadline) {
        if (this.membership === null) await this.refresh();
        const m = this.membership;
        if (m === null) {
          await sleep(this.limits.retryMs);
          continue;
        }
        const may = standing(m);
        if (may !== "send") {
          // The LUN moved: to this node (the manager is recording an epoch naming it) or away.
          moved = true;
          lastProblem = `epoch ${m.epoch} is coordinated by node ${m.coordinator ?? "(placement)"}`;
          if (may === "moved") break;
          await sleep(movedPollMs);
          await this.refreshSometimes();
          continue;
        }
        moved = false;
        const out = await this.options.router.request(this.options.client, m.primary, build(m.epoch, reqId, this.completeBelow()), this.limits.requestTimeoutMs);
        if (out.ok && out.reply.type !== "rejected") return { ok: true, value: out.reply };
        if (out.ok && out.reply.type === "rejected") {
          const r = out.reply;
          lastProblem = `${m.primary} answered ${r.reason}`;
          if (r.membership !== null && r.membership.epoch > m.epoch) {
            this.membership = r.membership;
            this.retries.redirected++;
            continue;
          }
          if (r.reason === "stale-epoch" || r.reason === "not-primary") await this.refresh();
          if (this.membership !== m) {
            this.retries.redirected++;
            continue;
          }
        } else if (!out.ok) {
          lastProblem = `${m.primary}: ${out.reason}`;
          // The primary may be gone: a failover would be in the store.
          await this.refresh();
          if (this.membership !== m) {
            this.retries.redirected++;
            continue;
          }
        }
        this.retries.paused++;
        await sleep(this.limits.retryMs);
      }
      if (moved) return { ok: false, code: "MOVED", message: `segment ${this.options.segment}: not sent from this node (${lastProblem})` };
      return { ok: false, code: "IO_ERROR", message: `segment ${this.options.segment}: no answer within ${this.limits.opTimeoutMs} ms (last: ${lastProblem})` };
    } finally {
      this.outstanding.delete(reqId);
      this.release();
    }
  }
}
