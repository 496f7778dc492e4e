// The cluster as `qstora status` shows it from this node: every node with its liveness, group and
// archives; the metadata store's members and leader; capacity per pool; the health checks over
// all of it; hints for the next command. Reads the metadata store; the metadata members' own
// answers (mode, reachable, leader) and the manager come from the metadata role's view and the
// manager election (metadata-role.ts, manager.ts), not from here. Decides nothing itself
// (liveness.ts, health.ts and membership.ts do). Never writes. ClusterState, at the end, is the
// daemon's holder of all this.
import type { MetaStore } from "../meta/store.ts";
import type { ArchiveView, MetadataView, NodeView, PoolView, StatusView } from "../control/protocol.ts";
import type { MetadataMembers } from "../cluster/metadata-members.ts";
import { judgeHealth, type ArchiveFact, type HealthReport, type SegmentFact } from "../cluster/health.ts";
import { heartbeatAgeMs, judgeNode, observeHeartbeats, type HeartbeatRecord, type LivenessLimits, type LivenessState } from "../cluster/liveness.ts";
import { parseBeats } from "./heartbeat.ts";
import { defaultPoolName, summarisePool, type PoolArchiveFact } from "../cluster/membership.ts";
import type { Media } from "../archive/media.ts";
import type { NodeConfig } from "./config.ts";
import type { NodeIdentity } from "./identity.ts";
import { keys, mediaOfRecord, type ArchiveRecord, type LunRecord, type NodeRecord, type PoolRecord } from "./records.ts";

export interface ClusterFacts {
  nodes: NodeRecord[];
  archives: ArchiveRecord[];
  pools: PoolRecord[];
  luns: LunRecord[];
  /** /qstora/v1/metadata/members (meta4's record), absent until the first daemon wrote it. */
  members: MetadataMembers | undefined;
}

export async function readClusterFacts(meta: MetaStore): Promise<ClusterFacts> {
  const [nodes, archives, pools, luns, members] = await Promise.all([meta.list(keys.nodes), meta.list(keys.archives), meta.list(keys.pools), meta.list(keys.luns), meta.get(keys.metadataMembers)]);
  const parse = <T>(kvs: Array<{ value: string }>): T[] => kvs.map((kv) => JSON.parse(kv.value) as T);
  return { nodes: parse<NodeRecord>(nodes), archives: parse<ArchiveRecord>(archives), pools: parse<PoolRecord>(pools), luns: parse<LunRecord>(luns), members: members === undefined ? undefined : (JSON.parse(members.value) as MetadataMembers) };
}

export function isMetadataMember(node: NodeRecord, members: MetadataMembers | undefined): boolean {
  return members !== undefined && members.mode !== "external" && members.members.some((m) => m.id === node.id);
}

export function nodeViews(facts: ClusterFacts, liveness: LivenessState, nowMs: number, limits: LivenessLimits): NodeView[] {
  return facts.nodes
    .map((n) => ({
      id: n.id,
      name: n.name,
      portal: n.portal,
      state: judgeNode(liveness, n.id, nowMs, limits),
      group: n.group ?? n.name,
      address: n.address ?? "",
      archives: facts.archives.filter((a) => a.nodeId === n.id).length,
      labels: n.labels ?? {},
      draining: n.draining === true,
      heartbeatAgeMs: heartbeatAgeMs(liveness, n.id, nowMs),
      metadataMember: isMetadataMember(n, facts.members),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Every archive of the cluster with the numbers its node last reported (this node's: live). */
function archiveNumbers(facts: ClusterFacts, liveness: LivenessState, self: { nodeId: string; archives: ArchiveView[] }): Array<{ rec: ArchiveRecord; fact: ArchiveFact | null }> {
  const names = new Map(facts.nodes.map((n) => [n.id, n.name]));
  return facts.archives.map((rec) => {
    const node = names.get(rec.nodeId) ?? rec.nodeId;
    if (rec.nodeId === self.nodeId) {
      const v = self.archives.find((a) => a.id === rec.id);
      return { rec, fact: v === undefined ? null : { id: v.id, path: v.path, node, state: v.state, sizeBytes: v.sizeBytes, freeBytes: v.freeBytes, ...(v.error === undefined ? {} : { error: v.error }) } };
    }
    const beat = liveness.get(rec.nodeId)?.beat.archives.find((a) => a.id === rec.id);
    return { rec, fact: beat === undefined ? null : { id: rec.id, path: rec.path, node, state: beat.state, sizeBytes: beat.sizeBytes, freeBytes: beat.freeBytes, ...(beat.error === undefined ? {} : { error: beat.error }) } };
  });
}

export function poolViews(facts: ClusterFacts, liveness: LivenessState, self: { nodeId: string; archives: ArchiveView[] }): PoolView[] {
  const numbers = archiveNumbers(facts, liveness, self);
  const written = (rec: ArchiveRecord): number | null => {
    if (rec.nodeId === self.nodeId) return self.archives.find((a) => a.id === rec.id)?.writtenBytes ?? null;
    return liveness.get(rec.nodeId)?.beat.archives.find((a) => a.id === rec.id)?.writtenBytes ?? null;
  };
  const archives: PoolArchiveFact[] = numbers.map(({ rec, fact }) => ({ id: rec.id, nodeId: rec.nodeId, media: mediaOfRecord(rec), sizeBytes: rec.sizeBytes, writtenBytes: written(rec), freeBytes: fact?.freeBytes ?? null }));
  const defs = [{ name: defaultPoolName, media: [] as Media[] }, ...facts.pools.filter((p) => p.name !== defaultPoolName).sort((a, b) => a.name.localeCompare(b.name))];
  return defs.map((p) => summarisePool({ name: p.name, media: p.media }, archives));
}

export function clusterHealth(o: {
  facts: ClusterFacts;
  nodes: NodeView[];
  metadata: MetadataView;
  liveness: LivenessState;
  self: { nodeId: string; archives: ArchiveView[] };
  ioErrors: number;
  metadataReachable: boolean;
  config: NodeConfig;
  /** Replicated segments (ReplicaHost.segmentStates()), each with its LUN's uuid. */
  segments?: ReadonlyArray<Omit<SegmentFact, "lun"> & { volumeId: string }>;
}): HealthReport {
  const down = new Set(o.nodes.filter((n) => n.state === "down").map((n) => n.id));
  // A down node's archives are covered by NODE_DOWN: their last numbers would only mislead.
  const archives = archiveNumbers(o.facts, o.liveness, o.self)
    .filter(({ rec }) => !down.has(rec.nodeId) || rec.nodeId === o.self.nodeId)
    .map(({ fact }) => fact)
    .filter((f): f is ArchiveFact => f !== null);
  const unreachable = o.metadata.members.filter((m) => !m.reachable).map((m) => m.name);
  return judgeHealth({
    archives,
    ioErrors: o.ioErrors,
    metadataReachable: o.metadataReachable,
    nodes: o.nodes.map((n) => ({ name: n.name, state: n.state, draining: n.draining, heartbeatAgeMs: n.heartbeatAgeMs })),
    metadataMembers: { total: o.metadata.members.length, answering: o.metadata.members.length - unreachable.length, unreachable },
    limits: { archiveNearFullRatio: o.config.health.archive_nearfull_ratio, archiveFullRatio: o.config.health.archive_full_ratio },
    segments: labelSegments(o.segments ?? [], o.facts.luns),
  });
}

/** Names each segment's LUN as operators do (target:lun) from the LUN records. */
export function labelSegments(segments: ReadonlyArray<Omit<SegmentFact, "lun"> & { volumeId: string }>, luns: readonly LunRecord[]): SegmentFact[] {
  const names = new Map(luns.map((l) => [l.uuid, `${l.target}:${l.lun}`]));
  return segments.map(({ volumeId, ...s }) => {
    const lun = names.get(volumeId);
    return lun === undefined ? s : { ...s, lun };
  });
}

/** Commands to run next; the CLI adds its --data-dir to each `qstora ...` before any `#`. */
export function hintsFor(o: { health: HealthReport; nodes: NodeView[]; targets: number; luns: number }): string[] {
  const hints: string[] = [];
  if (o.health.status !== "HEALTH_OK") hints.push("qstora health detail   # what each check concerns");
  for (const n of o.nodes.filter((x) => x.state === "down")) hints.push(`qstora node remove ${n.name}   # if ${n.name} is gone for good; else \`qstora start\` on it`);
  if (o.nodes.length <= 1) hints.push(`qstora token create   # then on another server: qstora join ADDRESS --token TOKEN --archive PATH:SIZE`);
  if (o.targets === 0) hints.push("qstora target create iqn.2026-11.org.qstora:disk1");
  else if (o.luns === 0) hints.push("qstora lun create --target IQN --size 10G");
  return hints;
}

/**
 * The cluster view's state in the daemon: the liveness folded from heartbeats (by the driver each
 * interval, and afresh for each request), and the reads that build the view. I/O only; the
 * decisions are the functions above.
 */
export class ClusterState {
  private liveness: LivenessState = new Map();
  /** The last read of the cluster's records failed (the store did not answer). */
  private readFailed = false;

  constructor(
    private readonly meta: MetaStore,
    private readonly identity: NodeIdentity,
    private readonly config: NodeConfig,
    private readonly localArchives: () => ArchiveView[],
    /** The metadata role's view of the store (NodeMeta.view()) and the elected manager (readManager). */
    private readonly metadata: () => Promise<MetadataView>,
    private readonly manager: () => Promise<StatusView["manager"]>,
    /** The node-to-node transport's view of a node (a ping), when the daemon has a transport. */
    private readonly transport?: (node: NodeRecord) => Promise<NodeView["transport"]>,
  ) {}

  private get limits(): LivenessLimits {
    return { suspectAfterMs: this.config.health.suspect_after_ms, downAfterMs: this.config.health.down_after_ms };
  }

  private get self(): { nodeId: string; archives: ArchiveView[] } {
    return { nodeId: this.identity.nodeId, archives: this.localArchives() };
  }

  /** Folds one reading of every heartbeat (the driver's). */
  observe(beats: readonly HeartbeatRecord[], nowMs: number): void {
    this.liveness = observeHeartbeats(this.liveness, beats, nowMs);
  }

  /** How long `nodeId`'s heartbeat has not changed, as last read (null: never seen). */
  silentMs(nodeId: string, nowMs: number): number | null {
    return heartbeatAgeMs(this.liveness, nodeId, nowMs);
  }

  /** Reads the heartbeats now, so that an answer is not an interval old. */
  async refresh(): Promise<void> {
    try {
      this.observe(parseBeats(await this.meta.list(keys.alive)), Date.now());
    } catch {
      // The store does not answer: the ages keep growing, which is the truth from here.
    }
  }

  async facts(): Promise<ClusterFacts> {
    try {
      const f = await readClusterFacts(this.meta);
      this.readFailed = false;
      return f;
    } catch {
      this.readFailed = true;
      return { nodes: [], archives: [], pools: [], luns: [], members: undefined };
    }
  }

  async nodes(given?: ClusterFacts): Promise<NodeView[]> {
    if (given === undefined) await this.refresh();
    const f = given ?? (await this.facts());
    const views = nodeViews(f, this.liveness, Date.now(), this.limits);
    if (views.length > 0) return await this.withTransport(views, f.nodes);
    // No records readable: this node alone, as it knows itself.
    const me: NodeRecord = { id: this.identity.nodeId, name: this.identity.name, portal: this.config.portal.listen, api: this.config.api.listen, version: "", startedAt: "", address: this.config.node.address };
    return nodeViews({ ...f, nodes: [me] }, this.liveness, Date.now(), this.limits);
  }

  private async withTransport(views: NodeView[], records: readonly NodeRecord[]): Promise<NodeView[]> {
    const probe = this.transport;
    if (probe === undefined) return views;
    const byId = new Map(records.map((r) => [r.id, r]));
    return await Promise.all(
      views.map(async (v) => {
        const rec = byId.get(v.id);
        const transport = rec === undefined ? undefined : await probe(rec);
        return transport === undefined ? v : { ...v, transport };
      }),
    );
  }

  async pools(): Promise<PoolView[]> {
    return poolViews(await this.facts(), this.liveness, this.self);
  }

  /** The cluster part of `qstora status`. */
  async view(o: { ioErrors: number; metadataReachable: boolean; targets: number; luns: number; segments?: ReadonlyArray<Omit<SegmentFact, "lun"> & { volumeId: string }> }): Promise<Pick<StatusView, "health" | "nodes" | "pools" | "metadata" | "manager" | "hints">> {
    // The metadata members' probes and the nodes' pings run side by side: each waits at most
    // about a second for a node that is cut off, and status should not add the two up.
    const read = Promise.all([this.facts(), this.refresh()]).then(([f]) => f);
    const [f, nodes, metadata, manager] = await Promise.all([read, read.then((x) => this.nodes(x)), this.metadata(), this.manager().catch(() => null)]);
    const self = this.self;
    const health = clusterHealth({ facts: f, nodes, metadata, liveness: this.liveness, self, ioErrors: o.ioErrors, metadataReachable: o.metadataReachable && !this.readFailed, config: this.config, ...(o.segments === undefined ? {} : { segments: o.segments }) });
    return { health, nodes, pools: poolViews(f, this.liveness, self), metadata, manager, hints: hintsFor({ health, nodes, targets: o.targets, luns: o.luns }) };
  }
}
