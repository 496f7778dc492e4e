// Runs the cluster manager's failover state machine (failover.ts) on real I/O: feeds it the
// heartbeats and probe replies the router brings to the "manager" address, the outcomes of its
// record requests and membership loads, and a tick every `tickMs` with the node's monotonic clock
// (read only here); carries its sends over the router and its records to the membership store
// as compare-and-swaps.
//
// Ordering contract: effects of one step are carried out in order; a "record" is a CAS from the
// expected epoch whose answer comes back as one "record-done" input ("unknown" when the store
// failed; the machine retries); the membership of a new epoch is sent only when the machine
// says so, which it does only after the record applied. Inputs are stepped one at a time.
// It never chooses a primary or fences anyone itself, and it runs on one node of the cluster
// at a time (who runs it is the caller's business: the node holding the manager role).
import { assert, unreachable } from "../util/assert.ts";
import type { MembershipStore } from "../replica/record-store.ts";
import type { ReplicaRouter } from "../replica/transport.ts";
import { managerAddress } from "../replica/types.ts";
import { defaultManagerConfig, initManager, segmentStatus, stepManager, type ManagerConfig, type ManagerEffect, type ManagerInput, type ManagerState, type SegmentStatus } from "./failover.ts";

export const managerTickMsDefault = 20;
/** How often the holds are asked for (a primary is failed over after seconds of silence). */
export const holdCheckMs = 250;

/** Records `value` as the last fed for `segment`; whether it differs from the one before (absent: null). */
function changed(last: Map<string, string | null>, segment: string, value: string | null): boolean {
  if (value === (last.get(segment) ?? null)) return false;
  last.set(segment, value);
  return true;
}

export class FailoverDriver {
  private state: ManagerState;
  private readonly inbox: ManagerInput[] = [];
  private stepping = false;
  private stopped = false;
  private timer: ReturnType<typeof setInterval> | undefined;
  /** When pause() stopped the ticks (performance.now()); null while running. */
  private pausedAt: number | null = null;
  /** The hold reasons last fed, by segment. */
  private readonly holds = new Map<string, string | null>();
  /** The primaries on down nodes last fed, by segment. */
  private readonly downPrimaries = new Map<string, string | null>();
  /** The coordinator nodes last fed, by segment. */
  private readonly moves = new Map<string, string | null>();
  private holdsCheckedAt = -Infinity;

  constructor(
    private readonly options: {
      router: ReplicaRouter;
      store: MembershipStore;
      /** The segments this manager watches (all replicated segments of the cluster). */
      segments: readonly string[];
      cfg?: ManagerConfig;
      tickMs?: number;
      /** Whether a silent primary of a segment must not be replaced now, and why (the "hold" input); asked every `holdCheckMs`. */
      holdReason?: (segment: string) => string | null;
      /** The segment's primary when its node has not heartbeated for failoverAfterMs, else null (the "node-down" input); asked with the holds. */
      primaryNodeDown?: (segment: string) => string | null;
      /** The node now coordinating the segment's LUN when its record names another, else null (the "move" input); asked with the holds. */
      coordinatorOf?: (segment: string) => string | null;
    },
  ) {
    assert(options.segments.length > 0, "a manager watches at least one segment");
    const init = initManager(options.segments, performance.now(), options.cfg ?? defaultManagerConfig);
    this.state = init.state;
    options.router.attach(managerAddress, (from, msg) => this.enqueue({ kind: "message", from, msg }));
    this.stepping = true;
    this.carry(init.effects);
    this.stepping = false;
    this.startTicks();
  }

  private startTicks(): void {
    this.timer = setInterval(() => {
      this.checkHolds();
      this.enqueue({ kind: "tick" });
    }, this.options.tickMs ?? managerTickMsDefault);
  }

  /**
   * Stops the ticks, so the machine decides nothing (no probe, no record) until resume(), while
   * heartbeats, probe replies and store answers are still stepped: on resume, a unit's silence
   * counts from the last time it was really heard, not from the pause. For a manager role that
   * lapsed for a moment (its lease renewal went unanswered while the metadata group elected a
   * leader): a fresh machine would wait failoverAfterMs again before replacing any primary.
   * Resuming is safe after any pause: a machine whose ticks stalled is a slow manager, and its
   * records are compare-and-swaps from the epoch it knows.
   */
  pause(): void {
    if (this.stopped || this.pausedAt !== null) return;
    clearInterval(this.timer);
    this.pausedAt = performance.now();
  }

  resume(): void {
    if (this.stopped || this.pausedAt === null) return;
    this.pausedAt = null;
    this.startTicks();
  }

  /** How long the ticks have been paused, in ms; null while running. */
  pausedForMs(): number | null {
    return this.pausedAt === null ? null : performance.now() - this.pausedAt;
  }

  /** Asks for the holds, the primaries on down nodes and the moves every holdCheckMs; feeds what changed. */
  private checkHolds(): void {
    const { holdReason, primaryNodeDown, coordinatorOf } = this.options;
    const now = performance.now();
    if ((holdReason === undefined && primaryNodeDown === undefined && coordinatorOf === undefined) || now - this.holdsCheckedAt < holdCheckMs) return;
    this.holdsCheckedAt = now;
    for (const segment of this.options.segments) {
      const reason = holdReason?.(segment) ?? null;
      if (changed(this.holds, segment, reason)) this.enqueue({ kind: "hold", segment, reason });
      const primary = primaryNodeDown?.(segment) ?? null;
      if (changed(this.downPrimaries, segment, primary)) this.enqueue({ kind: "node-down", segment, primary });
      const to = coordinatorOf?.(segment) ?? null;
      if (changed(this.moves, segment, to)) this.enqueue({ kind: "move", segment, to });
    }
  }

  status(segment: string): SegmentStatus {
    return segmentStatus(this.state, segment);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.options.router.detach(managerAddress);
    this.inbox.length = 0;
  }

  private enqueue(input: ManagerInput): void {
    if (this.stopped) return;
    this.inbox.push(input);
    if (this.stepping) return;
    this.stepping = true;
    try {
      while (!this.stopped && this.inbox.length > 0) {
        const r = stepManager(this.state, this.inbox.shift() as ManagerInput, performance.now());
        this.state = r.state;
        this.carry(r.effects);
      }
    } finally {
      this.stepping = false;
    }
  }

  private carry(effects: readonly ManagerEffect[]): void {
    for (const e of effects) {
      switch (e.kind) {
        case "send":
          this.options.router.send(managerAddress, e.to, e.msg);
          break;
        case "record": {
          const token = e.token;
          this.options.store.cas(e.expectEpoch, e.membership).then(
            (o) => this.enqueue({ kind: "record-done", token, ...o }),
            () => this.enqueue({ kind: "record-done", token, outcome: "unknown" }),
          );
          break;
        }
        case "fetch-membership":
          this.options.store.load(e.segment).then(
            (m) => {
              if (m !== null) this.enqueue({ kind: "membership-loaded", membership: m });
            },
            () => undefined,
          );
          break;
        default:
          unreachable(e);
      }
    }
  }
}
