// The node's management logic: archives, targets and LUNs, kept in the metadata store and
// mirrored in memory for the data path. The control API calls it; the iSCSI server reads
// targets and LUNs through it (TargetRegistry). One mutation at a time (a promise chain), and
// every create is a compare-and-swap on the key's absence, so two requests can't both win.
//
// Ordering contract: a record is written to the metadata store before the object serves I/O,
// and a LUN's data is deleted only after its record is gone (a crash in between leaves orphan
// units, never a LUN pointing at missing data).
import { existsSync, realpathSync, statSync } from "node:fs";
import type { MetaStore } from "../meta/store.ts";
import { Archive } from "../archive/archive.ts";
import type { BlockDevice } from "../volume/block-device.ts";
import { createLayout, growLayout, segmentUnitBytes } from "../volume/layout.ts";
import { Volume, newIoCounters, type IoCounters } from "../volume/volume.ts";
import type { ArchiveView, LunCreateRequest, LunView, TargetView } from "../control/protocol.ts";
import { QstoraError } from "../util/errors.ts";
import { formatSize } from "../util/size.ts";
import type { Logger } from "../util/log.ts";
import { LocalUnits } from "./local-units.ts";
import { checkIscsiName, checkLunName, checkLunNumber } from "./names.ts";
import { keys, mediaOfRecord, type ArchiveRecord, type ChapRecord, type LunRecord, type NodeRecord, type TargetRecord } from "./records.ts";
import { detectMedia, type Media } from "../archive/media.ts";
import type { NodeIdentity } from "./identity.ts";
import { newToken, type TokenRecord } from "../cluster/token.ts";
import type { Policy } from "../replica/types.ts";
import type { UnitProvider } from "../volume/volume.ts";
import type { ReplicaHost } from "./replica-host.ts";
import { subPageProvider } from "../replica/sub-page.ts";
import { checkLayoutSizes, chooseRedundancy, layoutDefaults } from "./lun-options.ts";
import { archivesInPool, deleteReplicaRecords, readPool } from "./replica-lifecycle.ts";
import { defaultPoolName, type PoolDef } from "../cluster/membership.ts";
import type { ForwardedUnit } from "../iscsi/connection.ts";
import type { LocalLuns, LunForwarder } from "./lun-forwarder.ts";
import { readPortIds } from "./port-ids.ts";

export const lunDefaults = { blockBytes: 512, ...layoutDefaults } as const;
const targetsPerNodeMax = 4096;
const lunsPerTargetMax = 1024;

export interface TargetEntry {
  iqn: string;
  alias?: string;
  luns: Map<number, BlockDevice>;
  /** LUNs whose coordinator is another node: this portal forwards their commands there. */
  forwarded: Map<number, ForwardedUnit>;
  chap?: ChapRecord;
}

function now(): string {
  return new Date().toISOString();
}

function parseRecord<T>(text: string): T {
  return JSON.parse(text) as T;
}

export class NodeService implements LocalLuns {
  readonly units = new LocalUnits();
  private readonly archiveRecords = new Map<string, ArchiveRecord>();
  private readonly archiveErrors = new Map<string, string>();
  private readonly targets = new Map<string, TargetRecord>();
  private readonly luns = new Map<string, LunRecord>();
  private readonly volumes = new Map<string, Volume>();
  /** LUNs coordinated by other nodes (their records, mirrored by refreshRecords), and their forwarding units. */
  private readonly forwardedLuns = new Map<string, LunRecord>();
  private readonly forwardedUnits = new Map<string, ForwardedUnit>();
  private readonly nodeNames = new Map<string, string>();
  private readonly targetCache = new Map<string, TargetEntry>();
  private mutations: Promise<unknown> = Promise.resolve();
  private readonly retiredCounters: IoCounters = newIoCounters();

  constructor(
    private readonly meta: MetaStore,
    readonly identity: NodeIdentity,
    private readonly portal: string,
    private readonly logger: Logger,
  ) {}

  /** Replicated LUNs' units (set by the daemon before load); absent: only single-copy LUNs. */
  replicas: ReplicaHost | undefined;
  /** Serves other nodes' LUNs through this portal (set by the daemon before load); absent: only this node's LUNs. */
  forwarder: LunForwarder | undefined;

  /** Whether this node runs the LUN's logical unit (records without a node are everyone's, as before replication). */
  private coordinatedHere(rec: LunRecord): boolean {
    return rec.nodeId === undefined || rec.nodeId === this.identity.nodeId;
  }

  /** Loads the node's state from the metadata store and opens its archives. */
  /** Reads this node's state from the store; may be called again after a failed read (the daemon retries it while the store elects). */
  async load(): Promise<void> {
    for (const kv of await this.meta.list(keys.archives)) {
      const rec = parseRecord<ArchiveRecord>(kv.value);
      if (rec.nodeId !== this.identity.nodeId) continue;
      this.archiveRecords.set(rec.id, rec);
      // Opened by an earlier call that failed further on.
      if (this.units.list().some((a) => a.id === rec.id)) continue;
      this.openArchive(rec);
    }
    for (const kv of await this.meta.list(keys.targets)) {
      const rec = parseRecord<TargetRecord>(kv.value);
      this.targets.set(rec.iqn, rec);
    }
    for (const kv of await this.meta.list(keys.luns)) {
      const rec = parseRecord<LunRecord>(kv.value);
      // The LUN's logical unit runs on its coordinator only; other nodes' portals forward to it.
      if (!this.coordinatedHere(rec)) {
        if (this.forwarder !== undefined) this.forwardedLuns.set(rec.uuid, rec);
        continue;
      }
      this.luns.set(rec.uuid, rec);
      this.volumes.set(rec.uuid, this.newVolume(rec, await readPool(this.meta, rec.pool)));
    }
    this.rebuildTargetCache();
    this.logger.info("state loaded", { archives: this.archiveRecords.size, targets: this.targets.size, luns: this.luns.size });
  }

  private openArchive(rec: ArchiveRecord): void {
    try {
      const archive = Archive.open(rec.path, { clusterId: this.identity.clusterId });
      if (archive.id !== rec.id) {
        archive.close();
        throw new QstoraError("ARCHIVE_INVALID", `${rec.path} now holds archive ${archive.id}, not ${rec.id}`);
      }
      this.units.addArchive(archive);
      this.archiveErrors.delete(rec.id);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      this.archiveErrors.set(rec.id, message);
      this.logger.error("archive not available", { id: rec.id, path: rec.path, error: message });
    }
  }

  private newVolume(rec: LunRecord, pool: PoolDef): Volume {
    const units = rec.redundancy === "none" ? this.localUnits(pool) : this.replicatedUnits(rec.redundancy, pool);
    return new Volume(this.volumeSpec(rec), units, async (writeCache) => {
      try {
        await this.setLun(rec.target, rec.lun, { writeCache });
        return { ok: true, value: undefined };
      } catch (e) {
        this.logger.error("saving the write cache setting failed", { lun: rec.uuid, error: e instanceof Error ? e.message : String(e) });
        return { ok: false, code: "METADATA_UNAVAILABLE", message: "the setting could not be saved" };
      }
    });
  }

  private replicatedUnits(policy: Policy, pool: PoolDef): UnitProvider {
    const host = this.replicas;
    if (host === undefined) throw new QstoraError("INTERNAL", "replicated LUN without replication");
    // Replicated units take whole 4 KiB pages: 512-byte blocks go through a read-modify-write.
    return subPageProvider(host.provider(policy, pool));
  }

  /** A single-copy LUN's units: this node's archives, those of its pool only. */
  private localUnits(pool: PoolDef): UnitProvider {
    if (pool.media.length === 0) return this.units;
    const units = this.units;
    const inPool = (a: Archive): boolean => {
      const rec = this.archiveRecords.get(a.id);
      return rec !== undefined && archivesInPool([rec], pool).length === 1;
    };
    return { find: (v, i) => units.find(v, i), allocate: (v, i, bytes) => units.allocate(v, i, bytes, inPool), flush: (v) => units.flush(v) };
  }

  /** Told when a device stops being served here while its LUN number stays (taken over by another node). */
  onDeviceGone: (device: BlockDevice) => void = () => {};

  /** Told when a target's LUN inventory changes (REPORTED LUNS DATA HAS CHANGED), with the device removed if any. */
  onLunsChanged: (iqn: string, removed?: BlockDevice) => void = () => {};

  private volumeSpec(rec: LunRecord): ConstructorParameters<typeof Volume>[0] {
    return { uuid: rec.uuid, name: rec.name, sizeBytes: rec.sizeBytes, blockBytes: rec.blockBytes, layout: rec.layout, writeCache: rec.writeCache, movable: rec.redundancy !== "none" };
  }

  /**
   * Rebuilds each target's LUN maps. A target's entry stays the same object, refilled: sessions
   * hold it, so a LUN that moved (taken over: local here now, or forwarded from now on), appeared
   * or went is seen by the sessions already logged in at their next command.
   */
  private rebuildTargetCache(): void {
    const before = new Map(this.targetCache);
    this.targetCache.clear();
    for (const t of this.targets.values()) {
      const entry: TargetEntry = before.get(t.iqn) ?? { iqn: t.iqn, luns: new Map(), forwarded: new Map() };
      entry.luns.clear();
      entry.forwarded.clear();
      if (t.alias === undefined) delete entry.alias;
      else entry.alias = t.alias;
      if (t.chap === undefined) delete entry.chap;
      else entry.chap = t.chap;
      this.targetCache.set(t.iqn, entry);
    }
    for (const l of this.luns.values()) {
      const volume = this.volumes.get(l.uuid);
      const entry = this.targetCache.get(l.target);
      if (volume !== undefined && entry !== undefined) entry.luns.set(l.lun, volume);
    }
    for (const l of this.forwardedLuns.values()) {
      const entry = this.targetCache.get(l.target);
      // A LUN number held here wins over a duplicate made on another node at the same moment.
      if (entry === undefined || entry.luns.has(l.lun) || this.forwarder === undefined || l.nodeId === undefined) continue;
      let unit = this.forwardedUnits.get(l.uuid);
      if (unit === undefined) {
        // The coordinator as the records say at each command (sessions keep their unit while a record changes).
        const uuid = l.uuid;
        const last = { nodeId: l.nodeId };
        const coordinator = (): string => {
          const rec = this.forwardedLuns.get(uuid) ?? this.luns.get(uuid);
          if (rec?.nodeId !== undefined) last.nodeId = rec.nodeId;
          return last.nodeId;
        };
        unit = this.forwarder.unit({ uuid, coordinator, blockBytes: l.blockBytes });
        this.forwardedUnits.set(uuid, unit);
      }
      entry.forwarded.set(l.lun, unit);
    }
    for (const uuid of this.forwardedUnits.keys()) if (!this.forwardedLuns.has(uuid)) this.forwardedUnits.delete(uuid);
  }

  /**
   * Re-reads targets, LUNs, nodes and port numbers from the store (the daemon calls it every
   * 2 s): other nodes' targets, CHAP and access lists, and LUNs appear, change and go here
   * too. Only the mirror of other nodes' objects changes: this node's own LUNs change only by
   * this node's mutations (which run in the same queue, so a read never undoes one).
   */
  refreshRecords(): Promise<void> {
    return this.serial(async () => {
      const [targets, luns, nodes, ports] = await Promise.all([this.meta.list(keys.targets), this.meta.list(keys.luns), this.meta.list(keys.nodes), readPortIds(this.meta)]);
      const before = this.inventory();
      this.targets.clear();
      for (const kv of targets) {
        const rec = parseRecord<TargetRecord>(kv.value);
        this.targets.set(rec.iqn, rec);
      }
      this.forwardedLuns.clear();
      if (this.forwarder !== undefined) {
        for (const kv of luns) {
          const rec = parseRecord<LunRecord>(kv.value);
          if (!this.coordinatedHere(rec)) this.forwardedLuns.set(rec.uuid, rec);
          // A replicated LUN taken over by the manager (core/cluster/takeover.ts): to or from here.
          if (rec.redundancy === "none") continue;
          if (this.coordinatedHere(rec) && !this.luns.has(rec.uuid)) await this.adoptLun(rec);
          else if (!this.coordinatedHere(rec) && this.luns.has(rec.uuid)) this.releaseLun(rec);
        }
      }
      const nodeRecords = nodes.map((kv) => parseRecord<NodeRecord>(kv.value));
      this.nodeNames.clear();
      for (const n of nodeRecords) this.nodeNames.set(n.id, n.name);
      this.forwarder?.setDirectory(nodeRecords, ports);
      this.rebuildTargetCache();
      const after = this.inventory();
      for (const iqn of new Set([...before.keys(), ...after.keys()])) if (before.get(iqn) !== after.get(iqn)) this.onLunsChanged(iqn);
    });
  }

  /** Asked before a LUN taken over is run here (the daemon re-reads its stored persistent reservations). */
  beforeAdopt: (uuid: string) => Promise<void> = async () => {};

  /** Runs a replicated LUN's logical unit here from now on: the manager gave it to this node. */
  private async adoptLun(rec: LunRecord): Promise<void> {
    await this.beforeAdopt(rec.uuid);
    this.volumes.set(rec.uuid, this.newVolume(rec, await readPool(this.meta, rec.pool)));
    this.luns.set(rec.uuid, rec);
    this.logger.warn("LUN taken over: this node coordinates it now", { lun: rec.uuid, name: rec.name, target: rec.target });
  }

  /**
   * Stops running a replicated LUN's logical unit here: it was given to another node while this
   * one was silent. Its coordinators here act on no record naming the other node, so they could
   * not have acknowledged anything since; this portal forwards to the new node from now on.
   */
  private releaseLun(rec: LunRecord): void {
    const volume = this.volumes.get(rec.uuid);
    if (volume !== undefined) this.addRetired(volume.counters);
    this.volumes.delete(rec.uuid);
    this.luns.delete(rec.uuid);
    // The same LUN numbers (now forwarded): no REPORTED LUNS DATA HAS CHANGED, only its state here goes.
    if (volume !== undefined) this.onDeviceGone(volume);
    this.logger.warn("LUN given to another node while this one was silent: forwarded there now", { lun: rec.uuid, name: rec.name, to: rec.nodeId });
  }

  /** Each target's LUN numbers as one string (to see which inventories a refresh changed). */
  private inventory(): Map<string, string> {
    const out = new Map<string, string>();
    for (const t of this.targetCache.values()) out.set(t.iqn, [...t.luns.keys(), ...t.forwarded.keys()].sort((a, b) => a - b).join(","));
    return out;
  }

  /** Whether this node's portal forwards the LUN to another node now (its target's sessions send its commands there). */
  forwardsLun(uuid: string): boolean {
    return !this.luns.has(uuid) && this.forwardedUnits.has(uuid);
  }

  /** LocalLuns: a LUN this node coordinates, for commands forwarded from other nodes' portals. */
  localLun(uuid: string): ReturnType<LocalLuns["localLun"]> {
    const rec = this.luns.get(uuid);
    const device = this.volumes.get(uuid);
    if (rec === undefined || device === undefined) return undefined;
    const entry = this.targetCache.get(rec.target);
    return { device, targetName: rec.target, lunNumbers: () => [...(entry?.luns.keys() ?? []), ...(entry?.forwarded.keys() ?? [])].sort((a, b) => a - b) };
  }

  /** Runs mutations one at a time. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.mutations.then(fn, fn);
    this.mutations = next.catch(() => undefined);
    return next;
  }

  private async createRecord(key: string, value: unknown, what: string): Promise<void> {
    const r = await this.meta.txn({
      compare: [{ key, target: "VERSION", result: "EQUAL", value: 0 }],
      success: [{ put: { key, value: JSON.stringify(value) } }],
    });
    if (!r.succeeded) throw new QstoraError("ALREADY_EXISTS", `${what} exists already`);
  }

  // ---- TargetRegistry (read by the iSCSI server; must stay synchronous and cheap) ----

  private allowed(iqn: string, initiator: string | undefined): boolean {
    const acl = this.targets.get(iqn)?.acl;
    return acl === undefined || (initiator !== undefined && acl.includes(initiator.toLowerCase()));
  }

  listTargets(initiator?: string): Array<{ iqn: string; alias?: string }> {
    return [...this.targetCache.values()].filter((t) => this.allowed(t.iqn, initiator)).map((t) => (t.alias === undefined ? { iqn: t.iqn } : { iqn: t.iqn, alias: t.alias }));
  }

  lookupTarget(iqn: string, initiator?: string): TargetEntry | undefined {
    return this.allowed(iqn, initiator) ? this.targetCache.get(iqn) : undefined;
  }

  // ---- archives ----

  archiveViews(): ArchiveView[] {
    return [...this.archiveRecords.values()].map((rec) => {
      const archive = this.units.archive(rec.id);
      if (archive === undefined) {
        const error = this.archiveErrors.get(rec.id) ?? "not open";
        return { id: rec.id, path: rec.path, kind: rec.kind, media: mediaOfRecord(rec), sizeBytes: rec.sizeBytes, reservedBytes: 0, writtenBytes: 0, freeBytes: 0, unitCount: 0, state: existsSync(rec.path) ? "error" : "missing", error };
      }
      const { clusterId: _, ...info } = archive.info();
      return { ...info, path: rec.path, media: mediaOfRecord(rec), state: "online" };
    });
  }

  addArchive(spec: { path: string; sizeBytes?: number; media?: Media }): Promise<ArchiveView> {
    return this.serial(async () => {
      for (const rec of this.archiveRecords.values()) {
        if (rec.path === spec.path) throw new QstoraError("ALREADY_EXISTS", `${spec.path} is already archive ${rec.id} of this node`);
      }
      const archive = Archive.create({ path: spec.path, clusterId: this.identity.clusterId, ...(spec.sizeBytes === undefined ? {} : { sizeBytes: spec.sizeBytes }) });
      const info = archive.info();
      const rec: ArchiveRecord = { id: archive.id, nodeId: this.identity.nodeId, path: spec.path, kind: info.kind, media: spec.media ?? detectMedia(spec.path), sizeBytes: info.sizeBytes, addedAt: now() };
      try {
        await this.createRecord(keys.archive(rec.id), rec, `archive ${rec.id}`);
      } catch (e) {
        archive.close();
        throw e;
      }
      this.archiveRecords.set(rec.id, rec);
      this.units.addArchive(archive);
      this.logger.info("archive added", { id: rec.id, path: rec.path, size: info.sizeBytes });
      return this.archiveViews().find((a) => a.id === rec.id) as ArchiveView;
    });
  }

  /** Registers archives that init formatted before the metadata store was running. */
  async adoptArchive(path: string): Promise<void> {
    const archive = Archive.open(path, { clusterId: this.identity.clusterId });
    const info = archive.info();
    const rec: ArchiveRecord = { id: archive.id, nodeId: this.identity.nodeId, path, kind: info.kind, media: detectMedia(path), sizeBytes: info.sizeBytes, addedAt: now() };
    try {
      await this.meta.put(keys.archive(rec.id), JSON.stringify(rec));
    } catch (e) {
      archive.close(); // the caller may try again (a metadata store electing): nothing held open
      throw e;
    }
    if (this.units.archive(rec.id) === undefined) this.units.addArchive(archive);
    else archive.close();
    this.archiveRecords.set(rec.id, rec);
  }

  removeArchive(id: string): Promise<void> {
    return this.serial(async () => {
      const rec = this.archiveRecords.get(id) ?? [...this.archiveRecords.values()].find((r) => r.path === id);
      if (rec === undefined) throw new QstoraError("NOT_FOUND", `no archive ${id} on this node`, "List them with `qstora archive list`.");
      const archive = this.units.archive(rec.id);
      const unitCount = archive?.info().unitCount ?? 0;
      if (unitCount > 0) {
        throw new QstoraError("IN_USE", `archive ${rec.id} holds ${unitCount} segment unit(s) of LUN data`, "Delete the LUNs stored there first (moving data off an archive comes with rebalance).");
      }
      await this.meta.delete(keys.archive(rec.id));
      this.units.removeArchive(rec.id);
      this.archiveRecords.delete(rec.id);
      this.archiveErrors.delete(rec.id);
      this.logger.info("archive removed", { id: rec.id, path: rec.path });
    });
  }

  // ---- targets ----

  targetViews(sessionsOf: (iqn: string) => number = () => 0): TargetView[] {
    return [...this.targets.values()]
      .sort((a, b) => a.iqn.localeCompare(b.iqn))
      .map((t) => ({
        iqn: t.iqn,
        ...(t.alias === undefined ? {} : { alias: t.alias }),
        chap: t.chap === undefined ? "none" : t.chap.mutualUser === undefined ? "one-way" : "mutual",
        ...(t.acl === undefined ? {} : { acl: t.acl }),
        luns: [...this.luns.values(), ...this.forwardedLuns.values()].filter((l) => l.target === t.iqn).map((l) => l.lun).sort((a, b) => a - b),
        sessions: sessionsOf(t.iqn),
      }));
  }

  createTarget(spec: { iqn: string; alias?: string }): Promise<TargetView> {
    return this.serial(async () => {
      const iqn = checkIscsiName(spec.iqn);
      if (this.targets.has(iqn)) throw new QstoraError("ALREADY_EXISTS", `target ${iqn} exists already`);
      if (this.targets.size >= targetsPerNodeMax) throw new QstoraError("NO_SPACE", `a node serves at most ${targetsPerNodeMax} targets`);
      const rec: TargetRecord = { iqn, ...(spec.alias === undefined ? {} : { alias: spec.alias }), createdAt: now() };
      await this.createRecord(keys.target(iqn), rec, `target ${iqn}`);
      this.targets.set(iqn, rec);
      this.rebuildTargetCache();
      this.logger.info("target created", { iqn });
      return this.targetViews().find((t) => t.iqn === iqn) as TargetView;
    });
  }

  /** Sets (or with null, clears) a target's CHAP secrets; new logins must authenticate. */
  setChap(iqnText: string, chap: ChapRecord | null): Promise<TargetView> {
    return this.serial(async () => {
      const iqn = iqnText.trim().toLowerCase();
      const rec = this.targets.get(iqn);
      if (rec === undefined) throw new QstoraError("NOT_FOUND", `no target ${iqnText}`, "List them with `qstora target list`.");
      if (chap !== null) {
        // RFC 7143 §12.1.3: secrets of at least 12 bytes; 16 bytes keep MD5-based CHAP honest.
        for (const secret of [chap.secret, chap.mutualSecret]) {
          if (secret !== undefined && (secret.length < 12 || secret.length > 255)) throw new QstoraError("INVALID_ARGUMENT", "a CHAP secret must be 12 to 255 characters");
        }
        if (chap.mutualSecret !== undefined && chap.mutualSecret === chap.secret) throw new QstoraError("INVALID_ARGUMENT", "the mutual secret must differ from the initiator's secret");
      }
      const { chap: _old, ...rest } = rec;
      const next: TargetRecord = chap === null ? rest : { ...rest, chap };
      await this.meta.put(keys.target(iqn), JSON.stringify(next));
      this.targets.set(iqn, next);
      this.rebuildTargetCache();
      this.logger.info(chap === null ? "CHAP cleared" : "CHAP set", { iqn, mutual: chap?.mutualUser !== undefined });
      return this.targetViews().find((t) => t.iqn === iqn) as TargetView;
    });
  }

  /** Adds or removes an initiator on a target's access list (an empty list is removed: all allowed). */
  changeAcl(iqnText: string, initiatorText: string, change: "add" | "remove"): Promise<TargetView> {
    return this.serial(async () => {
      const iqn = iqnText.trim().toLowerCase();
      const rec = this.targets.get(iqn);
      if (rec === undefined) throw new QstoraError("NOT_FOUND", `no target ${iqnText}`, "List them with `qstora target list`.");
      const initiator = checkIscsiName(initiatorText, "initiator name");
      const current = rec.acl ?? [];
      if (change === "add" && current.includes(initiator)) throw new QstoraError("ALREADY_EXISTS", `${initiator} is already allowed on ${iqn}`);
      if (change === "remove" && !current.includes(initiator)) throw new QstoraError("NOT_FOUND", `${initiator} is not on ${iqn}'s access list`);
      const acl = change === "add" ? [...current, initiator] : current.filter((i) => i !== initiator);
      const { acl: _old, ...rest } = rec;
      const next: TargetRecord = acl.length === 0 ? rest : { ...rest, acl };
      await this.meta.put(keys.target(iqn), JSON.stringify(next));
      this.targets.set(iqn, next);
      this.logger.info(`initiator ${change === "add" ? "allowed" : "removed"}`, { iqn, initiator });
      return this.targetViews().find((t) => t.iqn === iqn) as TargetView;
    });
  }

  deleteTarget(iqnText: string, options: { force: boolean }): Promise<{ deletedLuns: number }> {
    return this.serial(async () => {
      const iqn = iqnText.trim().toLowerCase();
      if (!this.targets.has(iqn)) throw new QstoraError("NOT_FOUND", `no target ${iqnText}`, "List them with `qstora target list`.");
      const luns = [...this.luns.values()].filter((l) => l.target === iqn);
      const elsewhere = [...this.forwardedLuns.values()].filter((l) => l.target === iqn);
      if (elsewhere.length > 0) {
        throw new QstoraError("IN_USE", `target ${iqn} has ${elsewhere.length} LUN(s) coordinated by other nodes (${[...new Set(elsewhere.map((l) => this.nodeName(l.nodeId)))].join(", ")})`, "Delete those LUNs on their nodes first.");
      }
      if (luns.length > 0 && !options.force) {
        throw new QstoraError("IN_USE", `target ${iqn} has ${luns.length} LUN(s)`, "Delete them first, or add --force to delete the target with its LUNs and their data.");
      }
      for (const l of luns) await this.dropLun(l);
      await this.meta.delete(keys.target(iqn));
      this.targets.delete(iqn);
      this.rebuildTargetCache();
      this.logger.info("target deleted", { iqn, luns: luns.length });
      return { deletedLuns: luns.length };
    });
  }

  // ---- LUNs ----

  private lunView(rec: LunRecord): LunView {
    return {
      uuid: rec.uuid,
      target: rec.target,
      lun: rec.lun,
      name: rec.name,
      sizeBytes: rec.sizeBytes,
      blockBytes: rec.blockBytes,
      stripeBytes: rec.layout.stripeBytes,
      segmentBytes: rec.layout.segmentBytes,
      redundancy: rec.redundancy,
      pool: rec.pool ?? defaultPoolName,
      ...(rec.nodeId === undefined ? {} : { coordinator: this.nodeNames.get(rec.nodeId) ?? rec.nodeId }),
      ...(rec.redundancy === "none" ? {} : { segments: this.segmentViews(rec.uuid) }),
      writeCache: rec.writeCache,
      writtenBytes: this.units.writtenBytesOf(rec.uuid),
      url: `iscsi://${this.portal}/${rec.target}/${rec.lun}`,
    };
  }

  private segmentViews(uuid: string): NonNullable<LunView["segments"]> {
    const host = this.replicas;
    if (host === undefined) return [];
    return host.segmentsOf(uuid).map((p) => {
      const st = host.segmentStatus(p.segment);
      return { index: p.index, units: p.units.map((u) => `${u.role}:${u.unitId}@${u.node}`), state: st.state, epoch: st.epoch, primary: st.primary, inactive: [...st.inactive], reason: st.reason === null ? null : JSON.stringify(st.reason) };
    });
  }

  lunViews(): LunView[] {
    return [...this.luns.values(), ...this.forwardedLuns.values()].sort((a, b) => a.target.localeCompare(b.target) || a.lun - b.lun).map((l) => this.lunView(l));
  }

  private findLun(target: string, lunText: string | number): LunRecord {
    const iqn = target.trim().toLowerCase();
    const lun = checkLunNumber(lunText);
    const rec = [...this.luns.values()].find((l) => l.target === iqn && l.lun === lun);
    if (rec === undefined) {
      const elsewhere = [...this.forwardedLuns.values()].find((l) => l.target === iqn && l.lun === lun);
      if (elsewhere !== undefined) {
        const name = this.nodeName(elsewhere.nodeId);
        throw new QstoraError("IN_USE", `LUN ${lun} of ${iqn} is coordinated by node ${name}: it is changed there`, `Run the command against node ${name} (its --api address, or on its host).`);
      }
      throw new QstoraError("NOT_FOUND", `target ${iqn} has no LUN ${lun}`, "List them with `qstora lun list`.");
    }
    return rec;
  }

  private nodeName(nodeId: string | undefined): string {
    return nodeId === undefined ? "(none)" : (this.nodeNames.get(nodeId) ?? nodeId);
  }

  private freeBytes(): number {
    return this.archiveViews().reduce((sum, a) => sum + a.freeBytes, 0);
  }

  private checkSizeShape(sizeBytes: number, blockBytes: number): void {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) throw new QstoraError("INVALID_ARGUMENT", `LUN size must be positive (got ${sizeBytes})`);
    if (sizeBytes % blockBytes !== 0) throw new QstoraError("INVALID_ARGUMENT", `LUN size must be a multiple of the block size ${blockBytes}`);
  }

  /** A single-copy LUN's size against this node's free space (thin, but never promised beyond it). */
  private checkSize(sizeBytes: number, blockBytes: number): void {
    this.checkSizeShape(sizeBytes, blockBytes);
    const free = this.freeBytes();
    if (sizeBytes > free) {
      throw new QstoraError("NO_SPACE", `LUN size ${formatSize(sizeBytes)} is more than the ${formatSize(free)} free in this node's archives`, "Add an archive with `qstora archive add PATH:SIZE`, or choose a smaller size.");
    }
  }

  createLun(req: LunCreateRequest): Promise<LunView & { redundancyReason: string }> {
    return this.serial(async () => {
      const target = req.target.trim().toLowerCase();
      if (!this.targets.has(target)) throw new QstoraError("NOT_FOUND", `no target ${req.target}`, "Create it with `qstora target create IQN`.");
      const blockBytes = req.blockBytes ?? lunDefaults.blockBytes;
      if (blockBytes !== 512 && blockBytes !== 4096) throw new QstoraError("INVALID_ARGUMENT", "block size must be 512 or 4096");
      const { stripeBytes, segmentBytes } = checkLayoutSizes(req);
      this.checkSizeShape(req.sizeBytes, blockBytes);
      const layout = createLayout({ sizeBytes: req.sizeBytes, stripeBytes, segmentBytes });
      const pool = await readPool(this.meta, req.pool);
      const host = this.replicas;
      if (host === undefined && req.redundancy !== undefined && req.redundancy !== "none") throw new QstoraError("INVALID_ARGUMENT", "replication is not running on this node");
      const domains = host === undefined ? 1 : await host.placementDomains(pool, segmentUnitBytes(layout, 0));
      const choice = chooseRedundancy(req.redundancy, domains, pool.name);
      const redundancy = choice.redundancy;
      if (redundancy === "none") {
        this.checkSize(req.sizeBytes, blockBytes);
        if (pool.media.length > 0 && archivesInPool([...this.archiveRecords.values()], pool).length === 0) {
          throw new QstoraError("INVALID_ARGUMENT", `this node has no archive in pool ${pool.name} for a single-copy LUN`, "Add one with `qstora archive add PATH:SIZE --media M`, or choose another pool.");
        }
      }
      await this.refuseIfDraining();
      // Numbers taken on other nodes too: a target's LUN numbers are one namespace across the cluster.
      const taken = [...this.luns.values(), ...this.forwardedLuns.values()].filter((l) => l.target === target);
      if (taken.length >= lunsPerTargetMax) throw new QstoraError("NO_SPACE", `a target has at most ${lunsPerTargetMax} LUNs`);
      let lun: number;
      if (req.lun === undefined) {
        lun = 0;
        while (taken.some((l) => l.lun === lun)) lun++;
      } else {
        lun = checkLunNumber(req.lun);
        if (taken.some((l) => l.lun === lun)) throw new QstoraError("ALREADY_EXISTS", `target ${target} already has LUN ${lun}`, "Pick another --lun, or leave it out to take the next free number.");
      }
      const uuid = crypto.randomUUID();
      const rec: LunRecord = {
        uuid,
        nodeId: this.identity.nodeId,
        target,
        lun,
        name: checkLunName(req.name ?? `lun${lun}`),
        sizeBytes: req.sizeBytes,
        blockBytes,
        layout,
        redundancy,
        ...(pool.name === defaultPoolName ? {} : { pool: pool.name }),
        writeCache: true,
        createdAt: now(),
      };
      await this.createRecord(keys.lun(uuid), rec, `LUN ${uuid}`);
      this.luns.set(uuid, rec);
      this.volumes.set(uuid, this.newVolume(rec, pool));
      this.rebuildTargetCache();
      this.onLunsChanged(target);
      this.logger.info("LUN created", { target, lun, uuid, size: rec.sizeBytes, redundancy, pool: pool.name, why: choice.reason });
      return { ...this.lunView(rec), redundancyReason: choice.reason };
    });
  }

  /** `qstora node drain` set the flag on this node's record: new LUNs (new placements) go elsewhere. */
  private async refuseIfDraining(): Promise<void> {
    const kv = await this.meta.get(keys.node(this.identity.nodeId));
    if (kv !== undefined && (JSON.parse(kv.value) as NodeRecord).draining === true) {
      throw new QstoraError("IN_USE", `node ${this.identity.name} is draining: nothing new is placed on it`, `Create the LUN on another node, or undo with \`qstora node drain ${this.identity.name} --undo\`.`);
    }
  }

  private async dropLun(rec: LunRecord): Promise<void> {
    // A replicated LUN's record goes with its segments' placement and membership records, in one
    // transaction: every node then drops its units of them.
    if (rec.redundancy === "none") await this.meta.delete(keys.lun(rec.uuid));
    else await deleteReplicaRecords(this.meta, rec.uuid, new Date());
    this.luns.delete(rec.uuid);
    const volume = this.volumes.get(rec.uuid);
    if (volume !== undefined) this.addRetired(volume.counters);
    this.volumes.delete(rec.uuid);
    this.rebuildTargetCache();
    this.onLunsChanged(rec.target, volume);
    // A replicated LUN's units here belong to the unit driver: ReplicaHost drops them.
    if (rec.redundancy === "none") this.units.dropVolume(rec.uuid);
  }

  private addRetired(c: IoCounters): void {
    for (const k of Object.keys(c) as Array<keyof IoCounters>) this.retiredCounters[k] += c[k];
  }

  deleteLun(target: string, lun: string | number): Promise<void> {
    return this.serial(async () => {
      const rec = this.findLun(target, lun);
      await this.dropLun(rec);
      this.logger.info("LUN deleted", { target: rec.target, lun: rec.lun, uuid: rec.uuid });
    });
  }

  resizeLun(target: string, lun: string | number, sizeBytes: number): Promise<LunView> {
    return this.serial(async () => {
      const rec = this.findLun(target, lun);
      if (sizeBytes < rec.sizeBytes) {
        throw new QstoraError("INVALID_ARGUMENT", `shrinking LUN ${rec.lun} from ${formatSize(rec.sizeBytes)} to ${formatSize(sizeBytes)} would discard data`, "qstora only grows LUNs; create a smaller LUN and copy the data instead.");
      }
      if (sizeBytes === rec.sizeBytes) return this.lunView(rec);
      this.checkSizeShape(sizeBytes, rec.blockBytes);
      // A replicated LUN grows thin across the cluster: its new segments are placed on first write.
      if (rec.redundancy === "none") this.checkSize(sizeBytes - rec.sizeBytes, rec.blockBytes);
      const next: LunRecord = { ...rec, sizeBytes, layout: growLayout(rec.layout, sizeBytes) };
      await this.meta.put(keys.lun(rec.uuid), JSON.stringify(next));
      this.luns.set(rec.uuid, next);
      this.volumes.get(rec.uuid)?.update(this.volumeSpec(next));
      this.logger.info("LUN resized", { target: rec.target, lun: rec.lun, size: sizeBytes });
      return this.lunView(next);
    });
  }

  /** Changes a LUN's settings (write cache); takes effect on the next command. */
  setLun(target: string, lun: string | number, settings: { writeCache?: boolean }): Promise<LunView> {
    return this.serial(async () => {
      const rec = this.findLun(target, lun);
      const next: LunRecord = { ...rec, ...(settings.writeCache === undefined ? {} : { writeCache: settings.writeCache }) };
      await this.meta.put(keys.lun(rec.uuid), JSON.stringify(next));
      this.luns.set(rec.uuid, next);
      this.volumes.get(rec.uuid)?.update(this.volumeSpec(next));
      this.logger.info("LUN settings changed", { target: rec.target, lun: rec.lun, writeCache: next.writeCache });
      return this.lunView(next);
    });
  }

  // ---- join tokens ----

  async createToken(options: { caFingerprint: string; ttlSeconds?: number; description?: string }): Promise<{ token: string; record: TokenRecord }> {
    const made = newToken(options.caFingerprint, { now: new Date(), ...(options.ttlSeconds === undefined ? {} : { ttlSeconds: options.ttlSeconds }), ...(options.description === undefined ? {} : { description: options.description }) });
    await this.createRecord(keys.token(made.record.id), made.record, `token ${made.record.id}`);
    this.logger.info("join token created", { id: made.record.id, expires: made.record.expiresAt ?? "never" });
    return made;
  }

  async listTokens(): Promise<TokenRecord[]> {
    return (await this.meta.list(keys.tokens)).map((kv) => parseRecord<TokenRecord>(kv.value)).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async revokeToken(id: string): Promise<void> {
    const { deleted } = await this.meta.delete(keys.token(id));
    if (deleted === 0) throw new QstoraError("NOT_FOUND", `no join token ${id}`, "List them with `qstora token list`.");
    this.logger.info("join token revoked", { id });
  }

  ioTotals(): IoCounters {
    const total = { ...this.retiredCounters };
    for (const v of this.volumes.values()) for (const k of Object.keys(total) as Array<keyof IoCounters>) total[k] += v.counters[k];
    return total;
  }

  /** Flushes every archive and closes them. */
  close(): void {
    const r = this.units.flushAll();
    if (!r.ok) this.logger.error("flush at shutdown failed", { error: r.message });
    this.units.closeAll();
  }
}

/** Resolves an archive argument PATH[:SIZE] relative to the caller's directory. */
export function parseArchiveSpec(text: string, parseSize: (t: string) => number, cwd: string): { path: string; sizeBytes?: number } {
  const m = /^(.*):([0-9.]+[bBkKmMgGtTpP]?(?:i?[bB])?)$/.exec(text);
  const rawPath = m ? (m[1] as string) : text;
  if (rawPath === "") throw new QstoraError("INVALID_ARGUMENT", `archive "${text}" has no path`, "Write PATH or PATH:SIZE, e.g. /srv/qstora/a1.img:20G.");
  const path = rawPath.startsWith("/") ? rawPath : `${cwd}/${rawPath}`;
  let resolved = path;
  if (existsSync(path)) resolved = realpathSync(path);
  if (!m) {
    if (!existsSync(resolved)) throw new QstoraError("INVALID_ARGUMENT", `archive ${path} does not exist`, "To create a file archive, give its size: PATH:SIZE, e.g. a1.img:20G.");
    return { path: resolved };
  }
  const sizeBytes = parseSize(m[2] as string);
  if (existsSync(resolved) && statSync(resolved).isBlockDevice()) throw new QstoraError("INVALID_ARGUMENT", `${path} is a block device: its size is the device's`, "Leave out :SIZE.");
  return { path: resolved, sizeBytes };
}
