// Seeded simulation of one replicated segment: three unit nodes, the manager, one coordinator
// and the metadata store, driven by a discrete-event loop with a simulated clock. Faults: node
// crashes and restarts (a crash loses everything a unit had not persisted), partitions (also
// between a node and the metadata store), lost, delayed, duplicated and reordered messages,
// clock offsets and rate drift, lease expiry; optionally coordinator takeovers (the LUN moves
// between the two coordinators, as when the manager gives it away from a silent node). After
// every event the checker asserts:
// - no acknowledged write is lost: the recorded membership's primary (and, by policy, its
//   active secondaries) persistently hold the latest acknowledged value of every page;
// - no two units accept or acknowledge writes in one epoch;
// - every read is linearizable per page: never older than a write acknowledged before it
//   began, nor than a value an earlier completed read returned, and never a value not written;
// - every answered flush has the writes acknowledged before it durable on every active copy;
// - with takeovers, a primary orders a coordinator's write only in an epoch whose record names
//   that coordinator (a write ordered earlier may be acknowledged later, under a newer epoch);
// and at the end, after healing every fault, that the segment serves again and every page reads
// back its latest acknowledged value.
// Test support only: never imported by the daemon. Same seed, same run (no Math.random, no clock).

import { seededRng } from "../util/rng.ts";
import { defaultManagerConfig, initManager, segmentStatus, stepManager, type ManagerConfig, type ManagerEffect, type ManagerInput, type ManagerState } from "../cluster/failover.ts";
import type { AckRule } from "./policy.ts";
import type { Address, LogMark, Membership, Message, Policy, UnitEffect, UnitId, UnitInput, UnitMeta } from "./types.ts";
import { ackRuleOf } from "./policy.ts";
import { defaultUnitConfig, initUnit, stepUnit, type UnitConfig, type UnitState } from "./unit.ts";

export interface SimOptions {
  readonly seed: number;
  readonly policy: Policy;
  /** Simulated time with faults; then every fault heals and the run must settle. */
  readonly durationMs?: number;
  readonly pages?: number;
  /** Replace the acknowledgement rule (to prove the checker catches a wrong one). */
  readonly ackRuleForTest?: (policy: Policy) => AckRule;
  /**
   * "random": crashes and partitions drawn from the seed. "primary-cut-off": no crashes; at 3 s
   * the primary's node is cut off from the other nodes, the manager and the store for 8 s while
   * both coordinators still reach it (the issue's fault test 4). "split-brain" (replica:2, the
   * issue's fault test 2): the secondary's node stops at 3 s, the primary's at 8 s, the old
   * secondary's starts at 9 s, the primary's at 16 s.
   */
  readonly faults?: "random" | "primary-cut-off" | "split-brain";
  /**
   * Coordinator takeovers among the random faults: now and then the LUN moves from one
   * coordinator to the other ("c" and "d"). The manager gets the "move" input, as from
   * ReplicaHost; the old coordinator's commands fail (MOVED) and are sent again through the new
   * one; each coordinator sends only under a record naming it (ReplicatedSegment's `standing`).
   */
  readonly takeovers?: boolean;
  /** Tests only: coordinators that send under any record, naming them or not (to prove the checker sees it). */
  readonly ignoreStandingForTest?: boolean;
  /** Tests only: unit settings to break on purpose (a lease that outlives its voters' promises). */
  readonly unitConfigForTest?: Partial<UnitConfig>;
  /** Keep the last events for the failure report. */
  readonly traceMax?: number;
}

export interface SimStats {
  /** Distinct reasons the manager gave for a segment it would not bring back. */
  unavailableReasons: string[];
  /** The longest time without a write acknowledged, before the faults heal (a failover's pause). */
  longestAckGapMs: number;
  events: number;
  writesAcked: number;
  readsDone: number;
  flushesDone: number;
  crashes: number;
  partitions: number;
  failovers: number;
  /** Takeovers: the LUN given to the other coordinator. */
  takeovers: number;
  /** Records that name another coordinator than the record before them (a takeover done). */
  moves: number;
  maxEpoch: number;
}

export type SimResult = { readonly ok: true; readonly stats: SimStats; readonly trace: readonly string[] } | { readonly ok: false; readonly seed: number; readonly policy: Policy; readonly error: string; readonly atMs: number; readonly trace: readonly string[]; readonly stats: SimStats };

const pageBytes = 4; // a page's contents: the id of the write that put it there (uint32)
const settleMs = 30_000;

interface Stored {
  readonly data: Uint8Array;
  readonly seq: number;
}

interface Disk {
  meta: UnitMeta | null;
  mark: LogMark;
  pages: Map<number, Stored>;
  durable: Map<number, Stored>;
}

type DiskOp = Extract<UnitEffect, { kind: "persist" | "read" | "flush" }>;

interface SimUnit {
  readonly id: UnitId;
  readonly node: string;
  state: UnitState | null;
  readonly disk: Disk;
  queue: DiskOp[];
  diskBusy: boolean;
}

interface SimNode {
  readonly id: string;
  up: boolean;
  incarnation: number;
  readonly offset: number;
  readonly rate: number;
}

interface WriteRec {
  readonly id: number;
  readonly page: number;
  readonly index: number;
  readonly issuedAt: number;
  ackedAt: number | null;
}

type ClientName = "c" | "d";
const otherClient = (name: ClientName): ClientName => (name === "c" ? "d" : "c");

/** A coordinator. "c" refreshes its membership often; "d" only when turned away or unanswered,
 * so it keeps talking to an old primary for as long as that one answers (a second portal). */
interface Client {
  readonly name: ClientName;
  readonly eager: boolean;
  membership: Membership | null;
}

interface Op {
  readonly client: Client;
  readonly kind: "write" | "read" | "flush";
  readonly reqId: number;
  readonly page: number;
  readonly pages: number;
  /** One record per page written (a write of several pages puts a distinct id in each). */
  readonly writes: readonly WriteRec[];
  readonly startedAt: number;
  sentAt: number;
  attempts: number;
}

class Violation extends Error {}

interface Event {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
}

/** A binary min-heap of events by (time, insertion order): deterministic ties. */
class EventQueue {
  private readonly heap: Event[] = [];
  private seq = 0;
  push(at: number, run: () => void): void {
    const e = { at, seq: this.seq++, run };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(e, h[p] as Event)) break;
      h[i] = h[p] as Event;
      i = p;
    }
    h[i] = e;
  }
  pop(): Event | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && less(h[r] as Event, h[l] as Event) ? r : l;
      if (!less(h[c] as Event, last)) break;
      h[i] = h[c] as Event;
      i = c;
    }
    h[i] = last;
    return top;
  }
  get size(): number {
    return this.heap.length;
  }
}

function less(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

const encode = (id: number) => {
  const b = new Uint8Array(pageBytes);
  new DataView(b.buffer).setUint32(0, id);
  return b;
};
const decode = (b: Uint8Array) => (b.length === 0 ? 0 : new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0));

export function runSimulation(opts: SimOptions): SimResult {
  const sim = new Simulation(opts);
  return sim.run();
}

class Simulation {
  private readonly rand: () => number;
  private readonly q = new EventQueue();
  private now = 0;
  private readonly durationMs: number;
  private readonly pages: number;
  private readonly policy: Policy;
  private readonly segment = "lun0/seg0";
  private readonly nodes = new Map<string, SimNode>();
  private readonly units: SimUnit[] = [];
  private readonly unitCfg: UnitConfig;
  private readonly managerCfg: ManagerConfig = defaultManagerConfig;
  private manager: ManagerState | null = null;
  private meta: Membership;
  private readonly cuts = new Set<string>();
  private healed = false;
  private readonly trace: string[] = [];
  private readonly traceMax: number;
  private readonly stats: SimStats = { unavailableReasons: [], longestAckGapMs: 0, events: 0, writesAcked: 0, readsDone: 0, flushesDone: 0, crashes: 0, partitions: 0, failovers: 0, takeovers: 0, moves: 0, maxEpoch: 1 };
  // the coordinator
  private readonly clients: Client[] = [
    { name: "c", eager: true, membership: null },
    { name: "d", eager: false, membership: null },
  ];
  /** The coordinator its LUN record names (takeovers move it). */
  private lunCoordinator: ClientName = "c";
  /** The last "move" input fed to this manager (undefined: none yet). */
  private moveFed: string | null | undefined = undefined;
  /** The coordinator each recorded epoch names (absent from a record: "c", which placed it). */
  private readonly coordinatorOfEpoch = new Map<number, string>([[1, "c"]]);
  /** The coordinator whose write the unit being fed now handles (null: not a coordinator's write). */
  private writeFrom: string | null = null;
  private nextReqId = 1;
  private nextWriteId = 1;
  private readonly ops = new Map<number, Op>();
  private readonly history: WriteRec[][] = [];
  private readonly writesById = new Map<number, WriteRec>();
  private readonly pageBusy = new Set<number>();
  /** Per page: completed reads in completion order, with a running maximum of the index seen. */
  private readonly readsDone: { at: number; maxIndex: number }[][] = [];
  private readonly acceptors = new Map<number, UnitId>();
  private readonly latestAcked: number[] = [];
  private dirty = false;
  private lastAckAt = 0;
  private readonly faultIntensity: number;
  private clientStopped = false;
  private finalReads = 0;
  private readonly finalReqIds = new Set<number>();

  constructor(private readonly opts: SimOptions) {
    this.rand = (() => {
      const next = seededRng(opts.seed * 2654435761 + 1);
      return () => next() / 2 ** 32;
    })();
    this.durationMs = opts.durationMs ?? 20_000;
    this.pages = opts.pages ?? 8;
    this.policy = opts.policy;
    this.traceMax = opts.traceMax ?? 0;
    this.faultIntensity = 0.3 + this.rand() * 1.7;
    const base = { ...defaultUnitConfig, ...opts.unitConfigForTest };
    this.unitCfg = opts.ackRuleForTest === undefined ? base : { ...base, ackRuleForTest: opts.ackRuleForTest };
    for (let p = 0; p < this.pages; p++) {
      this.history.push([]);
      this.latestAcked.push(0);
      this.readsDone.push([]);
    }
    for (const id of ["n0", "n1", "n2", "m", "c", "d", "meta"]) {
      // Clocks: any offset, rates within ±0.2% (the lease margin covers 10% of a lease).
      this.nodes.set(id, { id, up: true, incarnation: 0, offset: Math.floor(this.rand() * 1e9), rate: 1 + (this.rand() - 0.5) * 0.004 });
    }
    const ids = ["u0", "u1", "u2"];
    this.meta = {
      segment: this.segment,
      epoch: 1,
      policy: this.policy,
      primary: "u0",
      secondaries: this.policy === "replica:2" ? ["u1"] : ["u1", "u2"],
      inactive: [],
      arbiter: this.policy === "replica:2" ? "u2" : null,
    };
    ids.forEach((id, i) => {
      this.units.push({
        id,
        node: `n${i}`,
        state: null,
        // A new segment: the units learn their first membership from the store, as after creation.
        disk: { meta: null, mark: { lastLsn: 0, commitKnown: 0, consistent: true }, pages: new Map(), durable: new Map() },
        queue: [],
        diskBusy: false,
      });
    });
  }

  private log(s: string): void {
    if (this.traceMax === 0) return;
    this.trace.push(`${this.now.toFixed(1)} ${s}`);
    if (this.trace.length > this.traceMax) this.trace.shift();
  }

  private localNow(node: string): number {
    const n = this.nodes.get(node);
    if (n === undefined) throw new Error(`node ${node}`);
    return n.offset + this.now * n.rate;
  }

  private at(delayMs: number, run: () => void): void {
    this.q.push(this.now + delayMs, run);
  }

  run(): SimResult {
    try {
      for (const u of this.units) this.startUnit(u);
      this.startManager();
      this.at(0, () => this.clientTick());
      const faults = this.opts.faults ?? "random";
      if (faults === "random") this.at(50, () => this.faultTick());
      else if (faults === "primary-cut-off") this.at(3000, () => this.cutOffPrimary(8000));
      else this.splitBrain();
      this.at(this.durationMs, () => this.heal());
      const end = this.durationMs + settleMs;
      for (;;) {
        const e = this.q.pop();
        if (e === undefined) break;
        if (e.at > end) {
          throw new Violation(`liveness: the segment did not settle within ${settleMs} ms after every fault healed (${this.ops.size} requests unanswered: ${[...this.ops.values()].map((o) => `${o.kind}#${o.reqId} p${o.page}`).join(" ")})`);
        }
        this.now = e.at;
        this.stats.events++;
        e.run();
        // The invariant can change only when a page lands, the record changes or a write is
        // acknowledged; checking on those events is checking after every step.
        if (this.dirty) {
          this.dirty = false;
          this.checkAckedHeld();
        }
        if (this.healed && this.clientStopped && this.ops.size === 0 && this.finalReads === this.pages) break;
      }
      return { ok: true, stats: this.stats, trace: this.trace };
    } catch (err) {
      const msg = err instanceof Error ? `${err instanceof Violation ? "" : "crash: "}${err.message}${err instanceof Violation ? "" : `\n${err.stack ?? ""}`}` : String(err);
      return { ok: false, seed: this.opts.seed, policy: this.policy, error: msg, atMs: this.now, trace: this.trace, stats: this.stats };
    }
  }

  // ---- units ----

  private unitOf(id: UnitId): SimUnit {
    const u = this.units.find((x) => x.id === id);
    if (u === undefined) throw new Error(`unit ${id}`);
    return u;
  }

  private startUnit(u: SimUnit): void {
    const node = this.nodes.get(u.node);
    if (node === undefined) throw new Error("node");
    const pageSeqs = new Map<number, number>();
    for (const [p, s] of u.disk.pages) pageSeqs.set(p, s.seq);
    const r = initUnit({ self: u.id, segment: this.segment, cfg: this.unitCfg }, { meta: u.disk.meta, log: u.disk.mark, pageSeqs }, this.localNow(u.node));
    u.state = r.state;
    u.queue = [];
    u.diskBusy = false;
    this.log(`${u.id} starts (epoch ${u.disk.meta?.membership?.epoch}, lsn ${u.disk.mark.lastLsn})`);
    this.unitEffects(u, r.effects);
    const inc = node.incarnation;
    const tick = () => {
      if (!node.up || node.incarnation !== inc) return;
      this.feedUnit(u, { kind: "tick" });
      this.at(15 + this.rand() * 10, tick);
    };
    this.at(this.rand() * 20, tick);
  }

  private feedUnit(u: SimUnit, input: UnitInput): void {
    const st = u.state;
    if (st === null) return;
    const r = stepUnit(st, input, this.localNow(u.node));
    u.state = r.state;
    this.unitEffects(u, r.effects);
  }

  private unitEffects(u: SimUnit, effects: UnitEffect[]): void {
    const node = this.nodes.get(u.node);
    if (node === undefined) throw new Error("node");
    const inc = node.incarnation;
    const st = u.state;
    for (const e of effects) {
      switch (e.kind) {
        case "send":
          this.checkSend(u, e.msg);
          this.send(u.node, e.to, u.id, e.msg);
          break;
        case "persist-meta":
          u.disk.meta = e.meta;
          break;
        case "persist":
          if (st?.pri !== null && st?.pri !== undefined && e.write !== null && e.log !== null) {
            const epoch = st.meta.membership?.epoch ?? 0;
            this.noteAccept(u, epoch, "accepts a write");
            if (this.writeFrom !== null) this.checkStanding(u, epoch, this.writeFrom);
          }
          u.queue.push(e);
          break;
        case "read":
        case "flush":
          u.queue.push(e);
          break;
        case "record":
          this.record(u.node, e.membership, e.expectEpoch, (outcome) => {
            if (node.up && node.incarnation === inc) this.feedUnit(u, { kind: "record-done", token: e.token, ...outcome });
          });
          break;
        case "fetch-membership":
          this.fetch(u.node, (m) => {
            if (node.up && node.incarnation === inc) this.feedUnit(u, { kind: "membership-loaded", membership: m });
          });
          break;
        default:
          throw new Error("effect");
      }
    }
    this.pumpDisk(u);
  }

  private pumpDisk(u: SimUnit): void {
    if (u.diskBusy) return;
    const op = u.queue.shift();
    if (op === undefined) return;
    u.diskBusy = true;
    const node = this.nodes.get(u.node);
    if (node === undefined) throw new Error("node");
    const inc = node.incarnation;
    const cost = op.kind === "flush" ? 1 + this.rand() * 8 : 0.05 + this.rand() * (this.rand() < 0.02 ? 30 : 1);
    this.at(cost, () => {
      if (!node.up || node.incarnation !== inc) return;
      u.diskBusy = false;
      switch (op.kind) {
        case "persist":
          if (op.write !== null) {
            for (let i = 0; i < op.write.pages; i++) u.disk.pages.set(op.write.page + i, { data: op.write.data.subarray(i * pageBytes, (i + 1) * pageBytes), seq: op.write.seq });
            this.dirty = true;
          }
          if (op.log !== null) u.disk.mark = op.log;
          this.feedUnit(u, { kind: "persisted", token: op.token });
          break;
        case "read":
          {
            const data = new Uint8Array(op.pages * pageBytes);
            for (let i = 0; i < op.pages; i++) {
              const stored = u.disk.pages.get(op.page + i);
              if (stored !== undefined) data.set(stored.data, i * pageBytes);
            }
            this.feedUnit(u, { kind: "read-done", token: op.token, data });
          }
          break;
        case "flush":
          u.disk.durable = new Map(u.disk.pages);
          this.feedUnit(u, { kind: "flushed", token: op.token });
          break;
      }
      this.pumpDisk(u);
    });
  }

  // ---- the manager ----

  private startManager(): void {
    const node = this.nodes.get("m");
    if (node === undefined) throw new Error("node");
    const r = initManager([this.segment], this.localNow("m"), this.managerCfg);
    this.manager = r.state;
    this.moveFed = undefined;
    this.managerEffects(r.effects);
    const inc = node.incarnation;
    const tick = () => {
      if (!node.up || node.incarnation !== inc) return;
      this.feedMove();
      this.feedManager({ kind: "tick" });
      this.at(40 + this.rand() * 20, tick);
    };
    this.at(this.rand() * 50, tick);
  }

  /** As ReplicaHost.moveOf through the FailoverDriver: the LUN's coordinator while the record names another, fed when it changes. */
  private feedMove(): void {
    const to = this.lunCoordinator !== coordinatorOf(this.meta) ? this.lunCoordinator : null;
    if (to === this.moveFed) return;
    this.moveFed = to;
    this.feedManager({ kind: "move", segment: this.segment, to });
  }

  private feedManager(input: ManagerInput): void {
    const st = this.manager;
    if (st === null) return;
    const r = stepManager(st, input, this.localNow("m"));
    this.manager = r.state;
    const why = segmentStatus(r.state, this.segment).reason;
    if (why !== null && !this.stats.unavailableReasons.includes(why.message)) this.stats.unavailableReasons.push(why.message);
    this.managerEffects(r.effects);
  }

  private managerEffects(effects: ManagerEffect[]): void {
    const node = this.nodes.get("m");
    if (node === undefined) throw new Error("node");
    const inc = node.incarnation;
    for (const e of effects) {
      switch (e.kind) {
        case "send":
          this.send("m", e.to, "manager", e.msg);
          break;
        case "record":
          this.record("m", e.membership, e.expectEpoch, (outcome) => {
            if (node.up && node.incarnation === inc) this.feedManager({ kind: "record-done", token: e.token, ...outcome });
          });
          break;
        case "fetch-membership":
          this.fetch("m", (m) => {
            if (node.up && node.incarnation === inc) this.feedManager({ kind: "membership-loaded", membership: m });
          });
          break;
      }
    }
  }

  // ---- the metadata store: a linearizable compare-and-swap register ----

  private record(from: string, m: Membership, expectEpoch: number, done: (o: { outcome: "applied" } | { outcome: "conflict"; current: Membership } | { outcome: "unknown" }) => void): void {
    const timeoutMs = 300;
    if (this.cut(from, "meta") || this.lossy()) {
      this.at(timeoutMs, () => done({ outcome: "unknown" }));
      return;
    }
    this.at(this.delay(), () => {
      let result: { outcome: "applied" } | { outcome: "conflict"; current: Membership };
      if (this.meta.epoch === expectEpoch) {
        if (m.epoch <= this.meta.epoch) throw new Violation(`record of epoch ${m.epoch} over ${this.meta.epoch}`);
        this.log(`META records epoch ${m.epoch}: primary ${m.primary} active [${m.secondaries}] inactive [${m.inactive}] coordinator ${coordinatorOf(m)} (from ${from})`);
        if (from === "m") this.stats.failovers++;
        if (coordinatorOf(m) !== coordinatorOf(this.meta)) this.stats.moves++;
        this.coordinatorOfEpoch.set(m.epoch, coordinatorOf(m));
        this.meta = m;
        this.dirty = true;
        this.stats.maxEpoch = Math.max(this.stats.maxEpoch, m.epoch);
        result = { outcome: "applied" };
      } else result = { outcome: "conflict", current: this.meta };
      if (this.cut(from, "meta") || this.lossy()) this.at(timeoutMs, () => done({ outcome: "unknown" }));
      else this.at(this.delay(), () => done(result));
    });
  }

  private fetch(from: string, done: (m: Membership) => void): void {
    if (this.cut(from, "meta") || this.lossy()) return;
    this.at(this.delay(), () => {
      const m = this.meta;
      if (!this.cut(from, "meta")) this.at(this.delay(), () => done(m));
    });
  }

  // ---- the network ----

  private nodeOf(a: Address): string {
    if (a === "manager") return "m";
    if (a === "client:d") return "d";
    if (a.startsWith("client:")) return "c";
    return this.unitOf(a).node;
  }

  private cut(a: string, b: string): boolean {
    return this.cuts.has(`${a}>${b}`);
  }

  private lossy(): boolean {
    return !this.healed && this.rand() < 0.03;
  }

  private delay(): number {
    const r = this.rand();
    if (!this.healed && r < 0.01) return 100 + this.rand() * 900; // a long stall: reordering far apart
    return 0.2 + this.rand() * 4;
  }

  private send(fromNode: string, to: Address, from: Address, msg: Message): void {
    const toNode = this.nodeOf(to);
    const copies = !this.healed && this.rand() < 0.02 ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (this.cut(fromNode, toNode) || this.lossy()) continue;
      this.at(this.delay(), () => this.deliver(toNode, to, from, msg));
    }
  }

  private deliver(toNode: string, to: Address, from: Address, msg: Message): void {
    const n = this.nodes.get(toNode);
    if (n === undefined || !n.up) return;
    if (toNode === "m") this.feedManager({ kind: "message", from, msg });
    else if (toNode === "c" || toNode === "d") this.clientReceive(this.client(toNode), msg);
    else {
      if (this.traceMax > 0) this.log(`${from} -> ${to} ${describe(msg)}`);
      this.writeFrom = msg.type === "write" && from.startsWith("client:") ? from.slice("client:".length) : null;
      this.feedUnit(this.unitOf(to), { kind: "message", from, msg });
      this.writeFrom = null;
    }
  }

  // ---- faults ----

  private faultTick(): void {
    if (this.healed) return;
    const r = this.rand();
    const hosts = ["n0", "n1", "n2", "m"];
    // Fault intensity varies per run: calm runs let long partitions play out, busy ones pile faults up.
    const k = this.faultIntensity;
    if (r < 0.02 * k) {
      const down = ["n0", "n1", "n2"].filter((n) => !this.nodes.get(n)?.up).length;
      // Half the faults hit the recorded primary's node: those are the ones failover is about.
      const victim = this.rand() < 0.5 ? this.unitOf(this.meta.primary).node : (hosts[Math.floor(this.rand() * hosts.length)] as string);
      const n = this.nodes.get(victim);
      if (n !== undefined && n.up && (victim === "m" || down < 2)) this.crash(victim, 100 + this.rand() * 4000);
    } else if (r < 0.05 * k) {
      const all = ["n0", "n1", "n2", "m", "c", "d", "meta"];
      const a = this.rand() < 0.5 ? this.unitOf(this.meta.primary).node : (all[Math.floor(this.rand() * all.length)] as string);
      const kind = this.rand();
      const pairs: string[] = [];
      if (kind < 0.25) {
        // isolate a node from everything
        for (const b of all) if (b !== a) pairs.push(`${a}>${b}`, `${b}>${a}`);
      } else if (kind < 0.45) {
        // cut a node off from the cluster while the coordinators still reach it
        for (const b of all) if (b !== a && b !== "c" && b !== "d") pairs.push(`${a}>${b}`, `${b}>${a}`);
      } else {
        const b = all.filter((x) => x !== a)[Math.floor(this.rand() * (all.length - 1))] as string;
        pairs.push(`${a}>${b}`);
        if (kind < 0.8) pairs.push(`${b}>${a}`); // else one way only
      }
      this.stats.partitions++;
      for (const p of pairs) this.cuts.add(p);
      this.log(`PARTITION ${pairs.join(" ")}`);
      // Some outlast a failover (silence limit, probe, the new primary's lease wait).
      const lastsMs = this.rand() < 0.3 ? 3000 + this.rand() * 6000 : 200 + this.rand() * 3000;
      this.at(lastsMs, () => {
        for (const p of pairs) this.cuts.delete(p);
        this.log(`HEAL ${pairs.join(" ")}`);
      });
    }
    if (this.opts.takeovers === true && this.rand() < 0.01 * k) this.takeOver();
    this.at(100, () => this.faultTick());
  }

  /**
   * The LUN moves to the other coordinator (its LUN record changes). The portals forward to the
   * new one from now on, and the old one's commands fail with MOVED: the initiator sends them
   * again, through the new coordinator. Whatever the old one sent is still on the wire.
   */
  private takeOver(): void {
    const from = this.client(this.lunCoordinator);
    this.lunCoordinator = otherClient(this.lunCoordinator);
    const to = this.client(this.lunCoordinator);
    this.stats.takeovers++;
    this.log(`TAKEOVER the LUN moves from ${from.name} to ${to.name}`);
    this.handOver(from, to);
  }

  /** `from`'s commands fail with MOVED and the initiator sends them again, through `to`. */
  private handOver(from: Client, to: Client): void {
    for (const op of [...this.ops.values()]) {
      if (op.client !== from) continue;
      this.ops.delete(op.reqId);
      const again: Op = { ...op, client: to, reqId: this.nextReqId++, sentAt: -Infinity, attempts: 0 };
      this.ops.set(again.reqId, again);
      if (this.finalReqIds.delete(op.reqId)) this.finalReqIds.add(again.reqId);
      this.sendOp(again);
    }
  }

  private splitBrain(): void {
    let secondary = "";
    let primary = "";
    this.at(3000, () => {
      primary = this.unitOf(this.meta.primary).node;
      const s = this.meta.secondaries[0] ?? this.meta.inactive[0];
      if (s === undefined) throw new Error("split-brain needs a secondary");
      secondary = this.unitOf(s).node;
      this.crash(secondary, 6000);
    });
    this.at(8000, () => this.crash(primary, 8000));
  }

  private cutOffPrimary(forMs: number): void {
    const a = this.unitOf(this.meta.primary).node;
    const pairs: string[] = [];
    for (const b of ["n0", "n1", "n2", "m", "meta"]) if (b !== a) pairs.push(`${a}>${b}`, `${b}>${a}`);
    for (const p of pairs) this.cuts.add(p);
    this.stats.partitions++;
    this.log(`PARTITION ${pairs.join(" ")} (the primary's node, coordinators still reach it)`);
    this.at(forMs, () => {
      for (const p of pairs) this.cuts.delete(p);
      this.log(`HEAL ${pairs.join(" ")}`);
    });
  }

  private crash(id: string, downMs: number): void {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error("node");
    n.up = false;
    n.incarnation++;
    this.stats.crashes++;
    this.log(`CRASH ${id} for ${downMs.toFixed(0)} ms`);
    if (id === "m") this.manager = null;
    for (const u of this.units) {
      if (u.node !== id) continue;
      u.state = null;
      u.queue = []; // lost: never persisted
      u.diskBusy = false;
    }
    this.at(downMs, () => this.restart(id));
  }

  private restart(id: string): void {
    const n = this.nodes.get(id);
    if (n === undefined || n.up) return;
    n.up = true;
    this.log(`RESTART ${id}`);
    if (id === "m") this.startManager();
    for (const u of this.units) if (u.node === id) this.startUnit(u);
  }

  private heal(): void {
    this.healed = true;
    this.cuts.clear();
    this.log("HEAL ALL");
    for (const n of this.nodes.values()) if (!n.up) this.restart(n.id);
    this.clientStopped = true;
    // Once the last requests are answered, read every page back.
    const check = () => {
      if (this.ops.size > 0) return this.at(50, check);
      for (let p = 0; p < this.pages; p++) this.finalReqIds.add(this.issue("read", p, 1));
    };
    this.at(0, check);
  }

  // ---- the coordinator ----

  private clientTick(): void {
    for (const c of this.clients) {
      if (c.membership === null || (c.eager && this.rand() < 0.05)) this.fetch(c.name, (m) => this.clientLearn(c, m));
    }
    for (const op of this.ops.values()) {
      if (this.now - op.sentAt < 200) continue;
      if (++op.attempts % 3 === 0) this.fetch(op.client.name, (m) => this.clientLearn(op.client, m));
      this.sendOp(op);
    }
    if (!this.clientStopped && this.ops.size < 4) {
      const r = this.rand();
      const page = Math.floor(this.rand() * this.pages);
      // Mostly one page; sometimes a few, as a stripe's piece spans several.
      const pages = Math.min(this.pages - page, this.rand() < 0.7 ? 1 : 2 + Math.floor(this.rand() * 3));
      const drawn = this.rand() < 0.7 ? this.clients[0] : this.clients[1];
      // With takeovers the portals forward every command to the LUN's coordinator; some still
      // reach the old one, through a portal that has not seen the move yet (its own, cut off
      // from the store), and it sends them while its record names it.
      const client = this.opts.takeovers !== true ? drawn : this.rand() < 0.8 ? this.client(this.lunCoordinator) : this.client(otherClient(this.lunCoordinator));
      if (client === undefined) throw new Error("client");
      let free = true;
      for (let p = page; p < page + pages; p++) if (this.pageBusy.has(p)) free = false;
      if (r < 0.5 && free) this.issue("write", page, pages, client);
      else if (r < 0.93) this.issue("read", page, pages, client);
      else this.issue("flush", 0, 1, client);
    }
    this.at(5 + this.rand() * 10, () => this.clientTick());
  }

  private client(name: ClientName): Client {
    const c = this.clients.find((x) => x.name === name);
    if (c === undefined) throw new Error(`client ${name}`);
    return c;
  }

  private clientLearn(c: Client, m: Membership): void {
    if (c.membership === null || m.epoch > c.membership.epoch) c.membership = m;
    // A record naming the other coordinator: this one no longer runs the LUN (MOVED).
    if (this.opts.takeovers === true && coordinatorOf(c.membership) !== c.name && c.name !== this.lunCoordinator) this.handOver(c, this.client(this.lunCoordinator));
  }

  private issue(kind: Op["kind"], page: number, pages: number, client: Client = this.client(this.lunCoordinator)): number {
    const reqId = this.nextReqId++;
    const writes: WriteRec[] = [];
    if (kind === "write") {
      for (let p = page; p < page + pages; p++) {
        const h = this.history[p];
        if (h === undefined) throw new Error("page");
        const w = { id: this.nextWriteId++, page: p, index: h.length + 1, issuedAt: this.now, ackedAt: null };
        h.push(w);
        writes.push(w);
        this.writesById.set(w.id, w);
        this.pageBusy.add(p);
      }
    }
    const op: Op = { client, kind, reqId, page, pages, writes, startedAt: this.now, sentAt: -Infinity, attempts: 0 };
    this.ops.set(reqId, op);
    this.sendOp(op);
    return reqId;
  }

  private sendOp(op: Op): void {
    const m = op.client.membership;
    op.sentAt = this.now;
    if (m === null) return;
    // A coordinator never sends under a record naming another (it waits for a newer record).
    if (this.opts.takeovers === true && this.opts.ignoreStandingForTest !== true && coordinatorOf(m) !== op.client.name) return;
    let completeBelow = this.nextReqId;
    for (const o of this.ops.values()) if (o.client === op.client) completeBelow = Math.min(completeBelow, o.reqId);
    const base = { epoch: m.epoch, reqId: op.reqId, completeBelow };
    const data = new Uint8Array(op.writes.length * pageBytes);
    op.writes.forEach((w, i) => data.set(encode(w.id), i * pageBytes));
    const msg: Message =
      op.kind === "write" ? { type: "write", ...base, page: op.page, pages: op.pages, data } : op.kind === "read" ? { type: "read", ...base, page: op.page, pages: op.pages } : { type: "flush", ...base };
    this.send(op.client.name, m.primary, `client:${op.client.name}`, msg);
  }

  private clientReceive(c: Client, msg: Message): void {
    switch (msg.type) {
      case "rejected": {
        if (msg.membership !== null) this.clientLearn(c, msg.membership);
        if (msg.reason === "not-primary" || msg.reason === "stale-epoch") this.fetch(c.name, (m) => this.clientLearn(c, m));
        const op = this.ops.get(msg.reqId);
        if (op !== undefined) op.sentAt = Math.min(op.sentAt, this.now - 150); // retry soon
        return;
      }
      case "write-done": {
        const op = this.ops.get(msg.reqId);
        if (op === undefined || op.kind !== "write") return;
        if (!this.healed) this.stats.longestAckGapMs = Math.max(this.stats.longestAckGapMs, this.now - this.lastAckAt);
        this.lastAckAt = this.now;
        this.dirty = true;
        for (const w of op.writes) {
          w.ackedAt = this.now;
          this.latestAcked[w.page] = Math.max(this.latestAcked[w.page] ?? 0, w.index);
          this.pageBusy.delete(w.page);
        }
        this.ops.delete(msg.reqId);
        this.stats.writesAcked++;
        this.log(`CLIENT write #${op.writes.map((w) => w.id).join(",")} p${op.page}+${op.pages} acked (epoch ${msg.epoch})`);
        return;
      }
      case "read-done": {
        const op = this.ops.get(msg.reqId);
        if (op === undefined || op.kind !== "read") return;
        this.ops.delete(msg.reqId);
        if (msg.data.length !== op.pages * pageBytes) throw new Violation(`read of ${op.pages} pages returned ${msg.data.length} bytes`);
        for (let i = 0; i < op.pages; i++) this.checkRead(op, op.page + i, decode(msg.data.subarray(i * pageBytes, (i + 1) * pageBytes)));
        this.stats.readsDone++;
        if (this.finalReqIds.has(msg.reqId)) this.finalReads++;
        return;
      }
      case "flush-done": {
        const op = this.ops.get(msg.reqId);
        if (op === undefined || op.kind !== "flush") return;
        this.ops.delete(msg.reqId);
        this.stats.flushesDone++;
        return;
      }
      default:
        return;
    }
  }

  // ---- the checker ----

  /** Index of the latest write to `page` acknowledged before `t` (0: none). */
  private ackedIndexBefore(page: number, t: number): number {
    const h = this.history[page] ?? [];
    let k = 0;
    for (const w of h) if (w.ackedAt !== null && w.ackedAt < t) k = Math.max(k, w.index);
    return k;
  }

  private indexOf(page: number, data: Uint8Array | undefined): number {
    if (data === undefined) return 0;
    const id = decode(data);
    if (id === 0) return 0;
    const w = this.writesById.get(id);
    if (w === undefined || w.page !== page) throw new Violation(`page ${page} holds write #${id}, never written there`);
    return w.index;
  }

  private checkRead(op: Op, page: number, id: number): void {
    let j = 0;
    if (id !== 0) {
      const w = this.writesById.get(id);
      if (w === undefined || w.page !== page) throw new Violation(`read of page ${page} returned write #${id}, never written there`);
      j = w.index;
    }
    const k = this.ackedIndexBefore(page, op.startedAt);
    if (j < k) throw new Violation(`stale read: page ${page} read (begun at ${op.startedAt.toFixed(1)}) returned write index ${j}, but index ${k} was acknowledged before it began`);
    const done = this.readsDone[page] ?? [];
    let seen = 0;
    for (let i = done.length - 1; i >= 0; i--) {
      const d = done[i];
      if (d !== undefined && d.at < op.startedAt) {
        seen = d.maxIndex;
        break;
      }
    }
    if (j < seen) throw new Violation(`non-linearizable read: page ${page} returned index ${j} after an earlier read (done before this one began) returned ${seen}`);
    const prevMax = done[done.length - 1]?.maxIndex ?? 0;
    done.push({ at: this.now, maxIndex: Math.max(prevMax, j) });
    if (this.finalReqIds.has(op.reqId)) {
      const last = this.ackedIndexBefore(page, Infinity);
      if (j < last) throw new Violation(`after healing, page ${page} reads index ${j}, latest acknowledged is ${last}`);
    }
  }

  private noteAccept(u: SimUnit, epoch: number, what: string): void {
    const other = this.acceptors.get(epoch);
    if (other !== undefined && other !== u.id) throw new Violation(`two primaries in epoch ${epoch}: ${other} and ${u.id} (${what})`);
    this.acceptors.set(epoch, u.id);
  }

  /** A primary orders a coordinator's write only in an epoch whose record names that coordinator. */
  private checkStanding(u: SimUnit, epoch: number, client: string): void {
    if (this.opts.takeovers !== true) return;
    const named = this.coordinatorOfEpoch.get(epoch);
    if (named !== client) throw new Violation(`${u.id} ordered a write of coordinator ${client} in epoch ${epoch}, whose record names ${named ?? "(not recorded)"}`);
  }

  private checkSend(u: SimUnit, msg: Message): void {
    if (msg.type === "write-done") this.noteAccept(u, msg.epoch, "acknowledges a write");
    if (msg.type === "read-done" && msg.epoch < this.meta.epoch) this.log(`${u.id} answers a read in epoch ${msg.epoch} < recorded ${this.meta.epoch}`);
    if (msg.type !== "flush-done") return;
    const op = this.ops.get(msg.reqId);
    const m = u.state?.meta.membership;
    if (op === undefined || op.kind !== "flush" || m === null || m === undefined) return;
    for (const holder of [m.primary, ...m.secondaries]) {
      const disk = this.unitOf(holder).disk;
      for (let p = 0; p < this.pages; p++) {
        const k = this.ackedIndexBefore(p, op.startedAt);
        const have = this.indexOf(p, disk.durable.get(p)?.data);
        if (have < k) throw new Violation(`flush answered by ${u.id} (epoch ${m.epoch}) but ${holder} has page ${p} durable at index ${have} < acknowledged ${k}`);
      }
    }
  }

  /** Every acknowledged write is persisted where the recorded membership says it is. */
  private checkAckedHeld(): void {
    const m = this.meta;
    const rule = ackRuleOf(m.policy);
    for (let p = 0; p < this.pages; p++) {
      const k = this.latestAcked[p] ?? 0;
      if (k === 0) continue;
      const held = (u: UnitId) => this.indexOf(p, this.unitOf(u).disk.pages.get(p)?.data) >= k;
      if (!held(m.primary)) throw new Violation(`acknowledged write lost: page ${p} index ${k} is not on the recorded primary ${m.primary} (epoch ${m.epoch})`);
      if (rule.allSecondaries) {
        for (const s of m.secondaries) if (!held(s)) throw new Violation(`acknowledged write lost: page ${p} index ${k} is not on active secondary ${s} (epoch ${m.epoch}, ${m.policy})`);
      } else if (m.secondaries.length > 0 && !m.secondaries.some(held)) {
        throw new Violation(`acknowledged write lost: page ${p} index ${k} is on no active secondary of epoch ${m.epoch} (${m.policy})`);
      }
    }
  }
}

/** The coordinator a record names; a record without one names "c", the placing coordinator. */
function coordinatorOf(m: Membership): string {
  return m.coordinator ?? "c";
}

function describe(msg: Message): string {
  switch (msg.type) {
    case "forward":
      return `forward e${msg.epoch} lsn ${msg.lsn} p${msg.page} #${decode(msg.data)} commit ${msg.commitLsn}`;
    case "forward-ack":
      return `ack e${msg.epoch} lsn ${msg.lsn}`;
    case "membership":
      return `membership e${msg.epoch} primary ${msg.membership.primary} [${msg.membership.secondaries}] inactive [${msg.membership.inactive}]`;
    case "write":
      return `write e${msg.epoch} #${msg.reqId} p${msg.page} #${decode(msg.data)}`;
    case "read":
      return `read e${msg.epoch} #${msg.reqId} p${msg.page}`;
    case "probe":
      return `probe fence ${msg.fence}`;
    case "catchup-start":
      return `catchup-start e${msg.epoch} s${msg.session} from ${msg.fromLsn} pages ${msg.pageCount}`;
    case "catchup-page":
      return `catchup-page s${msg.session} p${msg.page} seq ${msg.seq} #${decode(msg.data)}`;
    default:
      return `${msg.type} e${msg.epoch}`;
  }
}
