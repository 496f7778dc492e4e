// Replicated LUNs in the daemon: wires core/replica's drivers to the node. One ReplicaHost per
// daemon holds the ReplicaRouter (its directory built from the placement records, the node
// records and the manager key), the UnitDriver hosting every unit the placement records put on
// this node's archives, the FailoverDriver while this node is the cluster manager, and the
// UnitProvider of replicated LUNs (coordinators, one per segment, created on the segment's first
// write: placed by placeSegment, recorded in the metadata store, then written).
//
// Ordering contract: a segment's placement record and its first membership record are in the
// store before its coordinator sends anything; a unit is hosted only from a placement record
// naming this node. The directory is a cache refreshed whenever a watched directory of the store
// changes (placements, memberships, nodes, the manager key) and every `refreshMs` as a safety net
// for a broken watch: a unit not yet known
// is unreachable for that long (the coordinator retries). It must never decide membership: only
// the units, the manager (FailoverDriver) and the records do.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Archive, SegmentUnit } from "../archive/archive.ts";
import { FailoverDriver } from "../cluster/failover-driver.ts";
import { defaultManagerConfig } from "../cluster/failover.ts";
import { placeSegment, usableDomains, type PlacementCluster, type UnitPlacementRole } from "../cluster/placement.ts";
import { chooseCoordinator, takeoverDue, type TakeoverCandidate } from "../cluster/takeover.ts";
import type { PoolDef } from "../cluster/membership.ts";
import type { MetaStore } from "../meta/store.ts";
import { metaKeys } from "../meta/schema.ts";
import type { PeerNode, Peers } from "../net/peers.ts";
import { ReplicatedSegment } from "../replica/coordinator.ts";
import { MetaMembershipStore } from "../replica/record-store.ts";
import { ReplicaRouter } from "../replica/transport.ts";
import { managerAddress, type Address, type Membership, type Policy } from "../replica/types.ts";
import { UnitDriver } from "../replica/unit-driver.ts";
import { createEpoch } from "../replica/unit.ts";
import type { IoResult } from "../volume/block-device.ts";
import type { SegmentStore, UnitProvider } from "../volume/volume.ts";
import { coalescing } from "../util/coalesce.ts";
import { isHandedOver } from "../util/handover.ts";
import type { Logger } from "../util/log.ts";
import { takeoverAfterMsDefault } from "./config.ts";
import { readManager } from "./manager.ts";
import { keys, type ArchiveRecord, type LunRecord, type NodeRecord } from "./records.ts";
import { archivesInPool, deletedLunsPrefix, membershipPrefix, orphanVolumes, vanishedSegments } from "./replica-lifecycle.ts";
import { watchPrefixes, type PrefixWatch } from "./record-watch.ts";
import { parsePublished, segmentHealthKey, segmentHealthPrefix, toPublish, type PublishedSegments, type SegmentState } from "./segment-health.ts";

/** How often the directory (placements, nodes, manager) is re-read without a watch event: the safety net. */
export const refreshMs = 5_000;

/** How often the manager node compares its segments' states with what it published (no store read). */
export const publishMs = 1_000;

export const policies: readonly Policy[] = ["replica:2", "replica:3", "replica:3-ha"];

export function isPolicy(s: string): s is Policy {
  return (policies as readonly string[]).includes(s);
}

/** Where the units of one replicated segment are: /qstora/v1/segments/<lun>/<index>. */
export interface PlacementRecord {
  segment: string;
  volumeId: string;
  index: number;
  sizeBytes: number;
  policy: Policy;
  units: Array<{ unitId: string; node: string; archive: string; role: UnitPlacementRole }>;
  /** The node that placed it: its LUN's coordinator (records before 2026-12-01 lack it). */
  coordinator?: string;
}

/**
 * Why the failover of a segment's silent primary is held (FailoverDriver's `holdReason`), or
 * null: held while the primary's node is the segment's coordinator's and that node has not
 * heartbeated for `holdAfterMs` (`silentMs` Infinity: no heartbeat at all; null: not a member).
 * Pure.
 */
export function coordinatorHold(o: { segment: string; coordinator: string | undefined; primaryNode: string | undefined; coordinatorName: string; silentMs: number | null; holdAfterMs: number }): string | null {
  const c = o.coordinator;
  if (c === undefined || o.primaryNode !== c || o.silentMs === null || o.silentMs < o.holdAfterMs) return null;
  const since = Number.isFinite(o.silentMs) ? `has not heartbeated for ${Math.round(o.silentMs / 100) / 10} s` : "has no live heartbeat";
  return `segment ${o.segment}: its LUN's coordinator node ${o.coordinatorName}, which holds the primary, ${since}; the primary waits there for its return, or for the LUN to be taken over by another node`;
}

const notStarted: IoResult<never> = { ok: false, code: "METADATA_UNAVAILABLE", message: "replication is starting" };
const notYet: SegmentStore = { read: () => notStarted, write: () => notStarted, unmap: () => notStarted };

/**
 * The manager role lapsed and came back within this long (a lease renewal went unanswered while
 * the metadata group elected a new leader): the failover machine resumes with what it heard
 * instead of starting over, which would wait its failover delay again (FailoverDriver.pause).
 */
export const failoverResumeWithinMs = 10_000;

/** See coordinatorHold: 1.5 heartbeat intervals of the default, under the manager's 3 s failover delay. */
export const holdAfterMsDefault = 1_500;

export function segmentIdOf(volumeId: string, index: number): string {
  return `${volumeId}/${index}`;
}

export class ReplicaHost {
  readonly store: MetaMembershipStore;
  private router: ReplicaRouter | null = null;
  private driver: UnitDriver | null = null;
  private failover: FailoverDriver | null = null;
  private failoverSegments = "";
  private managerRole = false;
  private readonly placements = new Map<string, PlacementRecord>();
  private readonly unitNode = new Map<string, string>();
  private readonly nodes = new Map<string, NodeRecord>();
  /** The replicated LUNs' records as last read, with their revisions (the takeover's compare-and-swap). */
  private readonly luns = new Map<string, { rec: LunRecord; modRevision: number }>();
  private readonly startedAt = performance.now();
  private managerNode: string | null = null;
  private readonly hosted = new Set<string>();
  /** The membership records as last read (for status; the drivers read the store themselves). */
  private readonly recorded = new Map<string, Membership>();
  private readonly coordinators = new Map<string, ReplicatedSegment>();
  private readonly pending = new Map<string, Promise<IoResult<ReplicatedSegment>>>();
  /** Placements run one at a time, so each sees the primaries and space the last one took. */
  private placing: Promise<unknown> = Promise.resolve();
  private timer: ReturnType<typeof setInterval> | undefined;
  private watches: PrefixWatch | null = null;
  private publishTimer: ReturnType<typeof setInterval> | undefined;
  /** The manager's record of segments that do not serve well (segment-health.ts), as last read. */
  private published: PublishedSegments | null = null;
  /** What this node last wrote there while it was the manager. */
  private publishedText = "";
  private publishing = false;

  constructor(
    private readonly options: {
      meta: MetaStore;
      nodeId: string;
      /** <data-dir>/units: the units' meta and log marker files. */
      stateDir: string;
      /** This node's archives (open). */
      archives: () => Archive[];
      logger: Logger;
      /** How long a node's heartbeat has not changed, as this node saw it (null: never seen). */
      nodeSilentMs?: (nodeId: string) => number | null;
      /** A coordinator's node silent this long holds its primaries' failover (coordinatorHold). */
      holdAfterMs?: number;
      /** A replicated LUN's coordinator node silent this long is replaced by another (the manager does it; Infinity: never). */
      takeoverAfterMs?: number;
      /**
       * Whether this node's portal forwards the LUN elsewhere now (it was taken over): its
       * coordinators here then fail at once, and the sessions send the command on
       * (core/iscsi/connection.ts). Absent: as the LUN records read here say.
       */
      lunForwarded?: (volumeId: string) => boolean;
    },
  ) {
    this.store = new MetaMembershipStore(options.meta);
  }

  /** Starts the router and unit driver on the node's transport; hosts this node's units. */
  async start(peers: Peers): Promise<void> {
    mkdirSync(this.options.stateDir, { recursive: true });
    this.router = new ReplicaRouter({ peers, directory: (to) => this.nodeOf(to), selfNodeId: this.options.nodeId, logger: this.options.logger.child("router") });
    this.driver = new UnitDriver({ router: this.router, store: this.store, stateDir: this.options.stateDir, logger: this.options.logger.child("units") });
    await this.refresh().catch((e: unknown) => this.options.logger.warn("replica directory not read", { error: String(e) }));
    await this.sweepOrphans().catch((e: unknown) => this.options.logger.warn("orphan units not swept", { error: String(e) }));
    this.watches = watchPrefixes(this.options.meta, [metaKeys.segments, membershipPrefix, metaKeys.nodes, metaKeys.luns, metaKeys.manager, segmentHealthPrefix], () => this.kick());
    this.timer = setInterval(() => this.kick(), refreshMs);
    this.publishTimer = setInterval(() => {
      if (this.failover !== null) this.publish().catch((e: unknown) => this.options.logger.debug("segment states not published", { error: String(e) }));
      if (this.managerRole) this.takeOver();
    }, publishMs);
  }

  /** Refreshes now, or right after the refresh under way (one at a time, changes coalesced). */
  private readonly kick = coalescing(
    () => this.refresh(),
    (e) => this.options.logger.debug("replica directory refresh failed", { error: String(e) }),
  );

  stop(): void {
    clearInterval(this.timer);
    clearInterval(this.publishTimer);
    this.watches?.cancel();
    this.watches = null;
    this.failover?.stop();
    this.failover = null;
    this.driver?.stop();
    this.router?.close();
  }

  /** The cluster manager role started or stopped on this node. */
  setManager(on: boolean): void {
    this.managerRole = on;
    this.syncFailover();
  }

  private peerOf(nodeId: string): PeerNode | undefined {
    const n = this.nodes.get(nodeId);
    return n === undefined || n.peer === undefined || n.peer === "" ? undefined : { id: n.id, name: n.name, address: n.peer };
  }

  private nodeOf(to: Address): PeerNode | undefined {
    if (to === managerAddress) return this.managerNode === null ? undefined : this.peerOf(this.managerNode);
    // A coordinator's address is client:<node id>/<segment>.
    if (to.startsWith("client:")) return this.peerOf(to.slice("client:".length).split("/")[0] ?? "");
    const node = this.unitNode.get(to);
    return node === undefined ? undefined : this.peerOf(node);
  }

  private async refresh(): Promise<void> {
    const { meta } = this.options;
    const [nodes, segs, mgr, records, published, luns] = await Promise.all([meta.list(metaKeys.nodes), meta.list(metaKeys.segments), readManager(meta), meta.list(membershipPrefix), meta.get(segmentHealthKey), meta.list(metaKeys.luns)]);
    this.published = parsePublished(published?.value);
    this.luns.clear();
    for (const kv of luns) {
      const rec = JSON.parse(kv.value) as LunRecord;
      if (rec.redundancy !== "none") this.luns.set(rec.uuid, { rec, modRevision: kv.modRevision });
    }
    for (const kv of records) {
      const m = JSON.parse(kv.value) as Membership;
      this.recorded.set(m.segment, m);
      // A failover recorded: this node's coordinator asks the new primary now, not after a timeout.
      this.coordinators.get(m.segment)?.learn(m);
    }
    // Rebuilt: a removed node's record is gone (nothing is held for it, coordinatorHold).
    this.nodes.clear();
    for (const kv of nodes) {
      const n = JSON.parse(kv.value) as NodeRecord;
      this.nodes.set(n.id, n);
    }
    this.managerNode = mgr?.nodeId ?? null;
    const listed = segs.map((kv) => JSON.parse(kv.value) as PlacementRecord);
    for (const p of listed) this.learn(p);
    await this.reap(new Set(listed.map((p) => p.segment)));
    this.syncFailover();
    await this.publish();
  }

  /** On the manager node: writes the segments that do not serve well, when that changed. */
  private async publish(): Promise<void> {
    if (this.failover === null || !this.managerRole) {
      this.publishedText = "";
      return;
    }
    // One put at a time, so an older text never lands after a newer one.
    if (this.publishing) return;
    const rec: PublishedSegments = { manager: this.options.nodeId, segments: toPublish(this.segmentStates()) };
    const text = JSON.stringify(rec);
    if (text === this.publishedText) return;
    this.publishing = true;
    try {
      await this.options.meta.put(segmentHealthKey, text);
      this.publishedText = text;
      this.published = rec;
    } finally {
      this.publishing = false;
    }
  }

  /** Every placed segment's state, for health (SEGMENT_UNAVAILABLE, SEGMENT_DEGRADED). */
  segmentStates(): Array<SegmentState & { volumeId: string }> {
    return [...this.placements.values()]
      .sort((a, b) => a.segment.localeCompare(b.segment))
      .map((p) => {
        const st = this.segmentStatus(p.segment);
        const unitNodes = Object.fromEntries(p.units.map((u) => [u.unitId, this.nodes.get(u.node)?.name ?? u.node]));
        return { segment: p.segment, volumeId: p.volumeId, state: st.state, epoch: st.epoch, primary: st.primary, inactive: [...st.inactive], reason: st.reason, unitNodes };
      });
  }

  /**
   * Drops what this node holds of segments whose placement record disappeared (their LUN was
   * deleted): the units (driver, archive space, state files), coordinators and records known.
   * Only once a fresh read finds the LUN's tombstone and neither its LUN record nor a placement
   * (replica-lifecycle.ts).
   */
  private async reap(listed: ReadonlySet<string>): Promise<void> {
    const missing = [...this.placements.values()].filter((p) => !listed.has(p.segment));
    if (missing.length === 0) return;
    const { meta } = this.options;
    const gone = new Set<string>();
    for (const volumeId of new Set(missing.map((p) => p.volumeId))) {
      const [tomb, lun, placed] = await Promise.all([meta.get(`${deletedLunsPrefix}${volumeId}`), meta.get(keys.lun(volumeId)), meta.list(keys.lunSegments(volumeId))]);
      if (tomb !== undefined && lun === undefined && placed.length === 0) gone.add(volumeId);
    }
    for (const segment of vanishedSegments(missing, listed, gone)) this.forget(segment);
  }

  private forget(segment: string): void {
    const p = this.placements.get(segment);
    if (p === undefined) return;
    for (const u of p.units) {
      this.unitNode.delete(u.unitId);
      if (!this.hosted.has(u.unitId)) continue;
      this.driver?.drop(u.unitId);
      this.hosted.delete(u.unitId);
      this.removeUnitFiles(u.unitId);
      const archive = this.options.archives().find((a) => a.id === u.archive);
      const info = archive?.listUnits().find((i) => i.volumeId === p.volumeId && i.segmentIndex === p.index);
      if (archive !== undefined && info !== undefined) archive.removeUnit(info.unitId);
    }
    this.placements.delete(segment);
    this.recorded.delete(segment);
    this.coordinators.delete(segment);
    this.pending.delete(segment);
    this.options.logger.info("replicated segment deleted: its units here are dropped", { segment });
  }

  /** The unit driver's files of a unit (its meta and log marker; unit-driver.ts names them). */
  private removeUnitFiles(unitId: string): void {
    const stem = encodeURIComponent(unitId);
    for (const ext of [".meta", ".meta.tmp", ".mark"]) rmSync(join(this.options.stateDir, `${stem}${ext}`), { force: true });
  }

  /**
   * At start: archive units of replicated LUNs deleted while this node was down (a tombstone, no
   * LUN record, no placement record). The archives' units are read before the records, so a unit
   * created after that read is not looked at.
   */
  private async sweepOrphans(): Promise<void> {
    const { meta } = this.options;
    const units = this.options.archives().flatMap((a) => a.listUnits().map((info) => ({ archive: a, info })));
    if (units.length === 0) return;
    const [deleted, luns, segs] = await Promise.all([meta.list(deletedLunsPrefix), meta.list(keys.luns), meta.list(metaKeys.segments)]);
    if (deleted.length === 0) return;
    const tombstones = new Set(deleted.map((kv) => kv.key.slice(deletedLunsPrefix.length)));
    const lunUuids = new Set(luns.map((kv) => (JSON.parse(kv.value) as LunRecord).uuid));
    const placed = new Set(segs.map((kv) => (JSON.parse(kv.value) as PlacementRecord).volumeId));
    const orphans = new Set(orphanVolumes(units.map((u) => u.info.volumeId), tombstones, lunUuids, placed));
    for (const { archive, info } of units) {
      if (!orphans.has(info.volumeId)) continue;
      archive.removeUnit(info.unitId);
      this.options.logger.info("orphan segment unit removed (its LUN was deleted)", { archive: archive.id, volume: info.volumeId, segment: info.segmentIndex });
    }
  }

  private learn(p: PlacementRecord): void {
    this.placements.set(p.segment, p);
    for (const u of p.units) this.unitNode.set(u.unitId, u.node);
    for (const u of p.units) if (u.node === this.options.nodeId) this.host(p, u);
  }

  private host(p: PlacementRecord, u: PlacementRecord["units"][number]): void {
    if (this.hosted.has(u.unitId) || this.driver === null) return;
    let store: { archive: Archive; unit: SegmentUnit } | null = null;
    if (u.role !== "arbiter") {
      const archive = this.options.archives().find((a) => a.id === u.archive);
      if (archive === undefined) {
        this.options.logger.warn("a replicated unit's archive is not open here", { unit: u.unitId, archive: u.archive });
        return;
      }
      const info = archive.listUnits().find((i) => i.volumeId === p.volumeId && i.segmentIndex === p.index);
      let unit = info === undefined ? undefined : archive.openUnit(info.unitId);
      if (unit === undefined) {
        const created = archive.createUnit({ volumeId: p.volumeId, segmentIndex: p.index, sizeBytes: p.sizeBytes });
        if (!created.ok) {
          this.options.logger.error("replicated unit not created", { unit: u.unitId, error: created.message });
          return;
        }
        unit = created.value;
      }
      store = { archive, unit };
    }
    this.driver.host({ unitId: u.unitId, segment: p.segment, store });
    this.hosted.add(u.unitId);
    this.options.logger.info("hosting replicated unit", { unit: u.unitId, role: u.role });
  }

  /** The manager watches every replicated segment: restarted when the list grows. */
  private syncFailover(): void {
    const segments = [...this.placements.keys()].sort();
    const key = segments.join(",");
    // A role that lapsed keeps its machine paused (what it heard, deciding nothing) for a quick return.
    const keep = this.failover !== null && key === this.failoverSegments && (this.failover.pausedForMs() ?? 0) <= failoverResumeWithinMs;
    if (this.router === null || segments.length === 0 || (!this.managerRole && !keep)) {
      this.failover?.stop();
      this.failover = null;
      this.failoverSegments = "";
      return;
    }
    if (keep) {
      if (this.managerRole) this.failover?.resume();
      else this.failover?.pause();
      return;
    }
    this.failover?.stop();
    this.failover = new FailoverDriver({ router: this.router, store: this.store, segments, holdReason: (segment) => this.holdReason(segment), primaryNodeDown: (segment) => this.primaryNodeDown(segment), coordinatorOf: (segment) => this.moveOf(segment) });
    this.failoverSegments = key;
  }

  /** The recorded primary of `segment` when its node's heartbeat has not changed for the failover delay (null: not known so). */
  private primaryNodeDown(segment: string): string | null {
    const m = this.recorded.get(segment);
    const node = m === undefined ? undefined : this.unitNode.get(m.primary);
    const silent = node === undefined ? null : this.silentFor(node);
    return m !== undefined && silent !== null && silent >= defaultManagerConfig.failoverAfterMs ? m.primary : null;
  }

  /**
   * How long `nodeId` has not heartbeated: no heartbeat at all (its lease ran out, after
   * down_after_ms) is as silent as can be while the node is still a member; null for a removed
   * node (nothing is held for it, nothing waits for it) or without a liveness view.
   */
  private silentFor(nodeId: string): number | null {
    const silentMs = this.options.nodeSilentMs;
    if (silentMs === undefined) return null;
    return silentMs(nodeId) ?? (this.nodes.has(nodeId) ? Infinity : null);
  }

  /** The node coordinating the segment's LUN now (its LUN record), else the one that placed it. */
  private lunCoordinator(p: PlacementRecord): string | undefined {
    return this.luns.get(p.volumeId)?.rec.nodeId ?? p.coordinator;
  }

  /** The node a membership lets send to the segment: its own field, else the placing node (older records). */
  private recordCoordinator(segment: string, m: Membership): string | undefined {
    return m.coordinator ?? this.placements.get(segment)?.coordinator;
  }

  private holdReason(segment: string): string | null {
    const p = this.placements.get(segment);
    const m = this.recorded.get(segment);
    const c = p === undefined ? undefined : this.lunCoordinator(p);
    if (c === undefined || m === undefined) return null;
    return coordinatorHold({ segment, coordinator: c, primaryNode: this.unitNode.get(m.primary), coordinatorName: this.nodes.get(c)?.name ?? c, silentMs: this.silentFor(c), holdAfterMs: this.options.holdAfterMs ?? holdAfterMsDefault });
  }

  /** The LUN's coordinator node when the segment's record names another one (the failover machine's "move"), else null. */
  private moveOf(segment: string): string | null {
    const p = this.placements.get(segment);
    const m = this.recorded.get(segment);
    if (p === undefined || m === undefined) return null;
    const lun = this.luns.get(p.volumeId)?.rec.nodeId;
    return lun !== undefined && lun !== this.recordCoordinator(segment, m) ? lun : null;
  }

  /**
   * On the manager: gives each replicated LUN whose coordinator node has been silent for
   * `takeoverAfterMs` to another node (chooseCoordinator), by a compare-and-swap of its LUN
   * record. Every node's records mirror then moves the LUN's logical unit there, and the failover
   * machine fences the old coordinator segment by segment ("move"). Never risks a write: the old
   * coordinator can acknowledge nothing once its segments' epochs moved on.
   */
  // One pass at a time (coalesced): a pass awaits its compare-and-swaps.
  private readonly takeOver = coalescing(
    () => this.takeOverNow(),
    (e) => this.options.logger.warn("LUN takeover failed", { error: String(e) }),
  );

  private async takeOverNow(): Promise<void> {
    const afterMs = this.options.takeoverAfterMs ?? takeoverAfterMsDefault;
    // The daemon's liveness view has watched every node since its start, manager or not: a node
    // taking over the role from a killed manager acts at once, a whole cluster starting again
    // gives every node the delay.
    const watchedMs = performance.now() - this.startedAt;
    const coordinated = new Map<string, number>();
    for (const { rec } of this.luns.values()) if (rec.nodeId !== undefined) coordinated.set(rec.nodeId, (coordinated.get(rec.nodeId) ?? 0) + 1);
    for (const { rec, modRevision } of [...this.luns.values()]) {
      const from = rec.nodeId;
      if (from === undefined || from === this.options.nodeId || !takeoverDue({ silentMs: this.silentFor(from), watchedMs, afterMs })) continue;
      const to = chooseCoordinator(this.takeoverCandidates(rec.uuid, from, coordinated, afterMs));
      if (to === null) {
        this.options.logger.debug("LUN takeover due, but no live node can take it", { lun: rec.uuid, from });
        continue;
      }
      const key = metaKeys.lun(rec.uuid);
      const moved: LunRecord = { ...rec, nodeId: to };
      const r = await this.options.meta.txn({ compare: [{ key, target: "MOD", result: "EQUAL", value: modRevision }], success: [{ put: { key, value: JSON.stringify(moved) } }], failure: [] });
      if (!r.succeeded) continue; // changed meanwhile: the next refresh sees it
      this.luns.set(rec.uuid, { rec: moved, modRevision: r.revision });
      coordinated.set(to, (coordinated.get(to) ?? 0) + 1);
      this.options.logger.warn("LUN taken over: its coordinator node is silent", { lun: rec.uuid, name: rec.name, from: this.nodes.get(from)?.name ?? from, to: this.nodes.get(to)?.name ?? to });
    }
  }

  /** Every node but `from` as a candidate to take the LUN over (chooseCoordinator). */
  private takeoverCandidates(volumeId: string, from: string, coordinated: ReadonlyMap<string, number>, afterMs: number): TakeoverCandidate[] {
    const units = new Map<string, number>();
    for (const p of this.segmentsOf(volumeId)) for (const u of p.units) if (u.role !== "arbiter") units.set(u.node, (units.get(u.node) ?? 0) + 1);
    return [...this.nodes.values()]
      .filter((n) => n.id !== from)
      .map((n) => {
        // Live: heard within half the delay (this node's own reads of the heartbeats may lag
        // while a metadata endpoint times out); this node is live, it is running this.
        const silent = this.silentFor(n.id);
        const live = n.id === this.options.nodeId || (silent !== null && silent < afterMs / 2);
        return { id: n.id, live, draining: n.draining === true, reachable: this.peerOf(n.id) !== undefined, lunUnits: units.get(n.id) ?? 0, coordinated: coordinated.get(n.id) ?? 0 };
      });
  }

  /**
   * A segment as status shows it: the manager's view (serving, failing-over, unavailable and
   * why) on the manager node; elsewhere what the current manager published of it when it does
   * not serve well, else the recorded membership ("recorded", no reason known).
   */
  segmentStatus(segment: string): Omit<SegmentState, "segment"> {
    // A paused machine (the role lapsed) speaks for the cluster only while no other node took the role.
    const mine = this.managerRole || this.managerNode === null || this.managerNode === this.options.nodeId;
    const st = mine ? this.failover?.status(segment) : undefined;
    const m = this.recorded.get(segment);
    const inactive = m?.inactive ?? [];
    if (st !== undefined && st.state !== "unknown") return { state: st.state, epoch: st.epoch, primary: st.primary, inactive: m !== undefined && m.epoch === st.epoch ? [...inactive] : [], reason: st.reason };
    const pub = this.published !== null && this.published.manager === this.managerNode ? this.published.segments.find((x) => x.segment === segment) : undefined;
    if (pub !== undefined && (m === undefined || pub.epoch >= m.epoch)) return { state: pub.state, epoch: pub.epoch, primary: pub.primary, inactive: pub.inactive, reason: pub.reason };
    return m === undefined ? { state: "unknown", epoch: 0, primary: null, inactive: [], reason: null } : { state: "recorded", epoch: m.epoch, primary: m.primary, inactive: [...inactive], reason: null };
  }

  segmentsOf(volumeId: string): PlacementRecord[] {
    return [...this.placements.values()].filter((p) => p.volumeId === volumeId).sort((a, b) => a.index - b.index);
  }

  private coordinator(p: PlacementRecord): ReplicatedSegment {
    let c = this.coordinators.get(p.segment);
    if (c === undefined) {
      if (this.router === null) throw new Error("replication not started");
      const segment = p.segment;
      // A record naming another coordinator node (the LUN moved) is not acted on here.
      const self = this.options.nodeId;
      const volumeId = p.volumeId;
      const standing = (m: Membership): "send" | "wait" | "moved" => {
        const c = this.recordCoordinator(segment, m);
        if (c === undefined || c === self) return "send";
        const forwarded = this.options.lunForwarded?.(volumeId) ?? (this.luns.get(volumeId)?.rec.nodeId ?? self) !== self;
        return forwarded ? "moved" : "wait";
      };
      c = new ReplicatedSegment({ router: this.router, store: this.store, segment, client: `client:${self}/${segment}`, standing });
      this.coordinators.set(p.segment, c);
    }
    return c;
  }

  /** Fault domains of `pool` that could take a unit of `unitBytes` now (for the default redundancy). */
  async placementDomains(pool: PoolDef, unitBytes: number): Promise<number> {
    return usableDomains(await this.placementCluster(pool), unitBytes).length;
  }

  private async placementCluster(pool: PoolDef): Promise<PlacementCluster> {
    const { meta } = this.options;
    const [nodes, archives, alive] = await Promise.all([meta.list(metaKeys.nodes), meta.list(metaKeys.archives), meta.list(metaKeys.alive)]);
    const up = new Set(alive.map((kv) => kv.key.slice(metaKeys.alive.length)));
    const used = new Map<string, number>();
    const primaries = new Map<string, number>();
    for (const p of this.placements.values()) {
      for (const u of p.units) {
        used.set(u.archive, (used.get(u.archive) ?? 0) + p.sizeBytes);
        if (u.role === "primary") primaries.set(u.node, (primaries.get(u.node) ?? 0) + 1);
      }
    }
    return {
      nodes: nodes.map((kv) => JSON.parse(kv.value) as NodeRecord).map((n) => ({ id: n.id, faultDomain: n.group ?? null, draining: n.draining === true, primaries: primaries.get(n.id) ?? 0 })),
      archives: archivesInPool(
        archives.map((kv) => JSON.parse(kv.value) as ArchiveRecord),
        pool,
      ).map((a) => ({ id: a.id, node: a.nodeId, sizeBytes: a.sizeBytes, usedBytes: used.get(a.id) ?? 0, online: up.has(a.nodeId) })),
    };
  }

  /** Places a new segment and records it (placement, then its first membership). */
  private async place(volumeId: string, index: number, sizeBytes: number, policy: Policy, pool: PoolDef): Promise<IoResult<ReplicatedSegment>> {
    const { meta } = this.options;
    const key = metaKeys.segment(volumeId, index);
    const segment = segmentIdOf(volumeId, index);
    const placed = placeSegment(await this.placementCluster(pool), { redundancy: policy, unitBytes: sizeBytes, primaryOn: this.options.nodeId });
    if (!placed.ok) return { ok: false, code: "NO_SPACE", message: placed.reason };
    let data = 0;
    const units = placed.units.map((u) => ({ unitId: u.role === "arbiter" ? `${segment}/arb` : `${segment}/u${data++}`, node: u.node, archive: u.archive, role: u.role }));
    const rec: PlacementRecord = { segment, volumeId, index, sizeBytes, policy, units, coordinator: this.options.nodeId };
    const r = await meta.txn({ compare: [{ key, target: "VERSION", result: "EQUAL", value: 0 }], success: [{ put: { key, value: JSON.stringify(rec) } }], failure: [{ range: { key } }] });
    let chosen = rec;
    if (!r.succeeded) {
      const got = r.responses[0];
      const kv = got !== undefined && got.kind === "range" ? got.kvs[0] : undefined;
      if (kv === undefined) return { ok: false, code: "METADATA_UNAVAILABLE", message: "segment placement not recorded" };
      chosen = JSON.parse(kv.value) as PlacementRecord;
    }
    const m: Membership = {
      segment,
      epoch: createEpoch,
      policy: chosen.policy,
      primary: chosen.units.find((u) => u.role === "primary")?.unitId ?? "",
      secondaries: chosen.units.filter((u) => u.role === "secondary").map((u) => u.unitId),
      inactive: [],
      arbiter: chosen.units.find((u) => u.role === "arbiter")?.unitId ?? null,
      coordinator: chosen.coordinator ?? this.options.nodeId,
    };
    const existing = await this.store.load(segment);
    if (existing === null) {
      const out = await this.store.cas(0, m);
      if (out.outcome === "unknown") return { ok: false, code: "METADATA_UNAVAILABLE", message: "segment membership not recorded (the store did not answer)" };
    }
    this.learn(chosen);
    this.options.logger.info("replicated segment placed", { segment, units: chosen.units.map((u) => `${u.role}@${this.nodes.get(u.node)?.name ?? u.node}`).join(" ") });
    return { ok: true, value: this.coordinator(chosen) };
  }

  /** The UnitProvider of one replicated LUN. */
  // (notYet below: a store that fails every I/O while replication has not started.)
  provider(policy: Policy, pool: PoolDef): UnitProvider {
    const later = (volumeId: string, index: number, sizeBytes: number): SegmentStore => {
      const segment = segmentIdOf(volumeId, index);
      let ready = this.pending.get(segment);
      if (ready === undefined) {
        const run = this.placing.then(() => this.place(volumeId, index, sizeBytes, policy, pool));
        this.placing = run.catch(() => undefined);
        ready = run.catch((e: unknown): IoResult<ReplicatedSegment> => ({ ok: false, code: "METADATA_UNAVAILABLE", message: e instanceof Error ? e.message : String(e) }));
        this.pending.set(segment, ready);
        // A failed placement is tried again at the next write.
        void ready.then((r) => {
          if (!r.ok) this.pending.delete(segment);
        });
      }
      const p = ready;
      return {
        read: async (o, l, into) => {
          const c = await p;
          return c.ok ? c.value.read(o, l, into) : c;
        },
        write: async (o, d) => {
          // Borrowed bytes are good only until the first await (a handed-over buffer is kept as it is).
          const copy = isHandedOver(d) ? d : d.slice();
          const c = await p;
          return c.ok ? c.value.write(o, copy) : c;
        },
        unmap: async (o, l) => {
          const c = await p;
          return c.ok ? c.value.unmap(o, l) : c;
        },
      };
    };
    return {
      find: (volumeId, index) => {
        // Before start the placements are not read: never answer "never written" (zeros) then.
        if (this.router === null) return notYet;
        const segment = segmentIdOf(volumeId, index);
        const known = this.coordinators.get(segment);
        if (known !== undefined) return known;
        const p = this.placements.get(segment);
        if (p !== undefined && this.router !== null) return this.coordinator(p);
        return this.pending.has(segment) ? later(volumeId, index, 0) : undefined;
      },
      allocate: (volumeId, index, sizeBytes) => ({ ok: true, value: later(volumeId, index, sizeBytes) }),
      flush: async (volumeId) => {
        const rs = await Promise.all([...this.coordinators.entries()].filter(([s]) => s.startsWith(`${volumeId}/`)).map(([, c]) => c.flush()));
        return rs.find((r) => !r.ok) ?? { ok: true, value: undefined };
      },
    };
  }
}
