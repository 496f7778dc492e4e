// The cluster as `qstora status` shows it from this node: every node with its liveness, group and
// archives; the metadata store's members and leader; capacity per pool; the health checks over
// all of it; hints for the next command. Reads the metadata store and asks each metadata member
// for its status; decides nothing itself (liveness.ts, health.ts and membership.ts do). Never
// writes. ClusterState, at the end, is the daemon's holder of all this.
import type { MetaStore } from "../meta/store.ts";
import type { ArchiveView, MetadataMemberView, MetadataView, NodeView, PoolView } from "../control/protocol.ts";
import { judgeHealth, type ArchiveFact, type HealthReport } from "../cluster/health.ts";
import { heartbeatAgeMs, judgeNode, observeHeartbeats, type HeartbeatRecord, type LivenessLimits, type LivenessState } from "../cluster/liveness.ts";
import { parseBeats } from "./heartbeat.ts";
import { defaultPoolName, summarisePool, type PoolArchiveFact } from "../cluster/membership.ts";
import type { Media } from "../archive/media.ts";
import type { NodeConfig } from "./config.ts";
import type { NodeIdentity } from "./identity.ts";
import { keys, mediaOfRecord, type ArchiveRecord, type LunRecord, type MetadataMembersRecord, type NodeRecord, type PoolRecord } from "./records.ts";

/** Time allowed to each metadata member to answer its status. */
const memberProbeTimeoutMs = 1_000;

export interface ClusterFacts {
  nodes: NodeRecord[];
  archives: ArchiveRecord[];
  pools: PoolRecord[];
  luns: LunRecord[];
  members: MetadataMembersRecord | undefined;
}

export async function readClusterFacts(meta: MetaStore): Promise<ClusterFacts> {
  const [nodes, archives, pools, luns, members] = await Promise.all([meta.list(keys.nodes), meta.list(keys.archives), meta.list(keys.pools), meta.list(keys.luns), meta.get(keys.metadataMembers)]);
  const parse = <T>(kvs: Array<{ value: string }>): T[] => kvs.map((kv) => JSON.parse(kv.value) as T);
  return { nodes: parse<NodeRecord>(nodes), archives: parse<ArchiveRecord>(archives), pools: parse<PoolRecord>(pools), luns: parse<LunRecord>(luns), members: members === undefined ? undefined : (JSON.parse(members.value) as MetadataMembersRecord) };
}

export function isMetadataMember(node: NodeRecord, members: MetadataMembersRecord | undefined): boolean {
  return members === undefined ? node.metadataStore !== undefined : members.members.some((m) => m.nodeId === node.id);
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

interface MemberStatus {
  answering: boolean;
  memberId?: string;
  leaderId?: string;
}

async function probeMember(clientUrl: string): Promise<MemberStatus> {
  try {
    const res = await fetch(`${clientUrl.replace(/\/$/, "")}/v3/maintenance/status`, { method: "POST", body: "{}", headers: { "content-type": "application/json" }, signal: AbortSignal.timeout(memberProbeTimeoutMs) });
    if (!res.ok) return { answering: false };
    const body = (await res.json()) as { header?: { member_id?: unknown }; leader?: unknown };
    const id = body.header?.member_id;
    return { answering: true, ...(id === undefined || id === null ? {} : { memberId: String(id) }), ...(body.leader === undefined || body.leader === null ? {} : { leaderId: String(body.leader) }) };
  } catch {
    return { answering: false };
  }
}

export async function metadataView(facts: ClusterFacts, config: NodeConfig): Promise<MetadataView> {
  // `endpoints` keeps the form status always had (the embedded store's listen address).
  const endpoints = config.metadata.backend === "embedded" ? [config.metadata.listen] : config.metadata.endpoints;
  const urls = config.metadata.backend === "embedded" ? [`http://${config.metadata.listen}`] : config.metadata.endpoints;
  const names = new Map(facts.nodes.map((n) => [n.id, n.name]));
  let mode: string;
  let listed: Array<{ nodeId: string | null; clientUrl: string }>;
  if (facts.members !== undefined) {
    mode = facts.members.mode;
    listed = facts.members.members.map((m) => ({ nodeId: m.nodeId, clientUrl: m.clientUrl }));
  } else if (config.metadata.backend === "etcd") {
    mode = "external";
    listed = urls.map((u) => ({ nodeId: null, clientUrl: u }));
  } else {
    mode = "single";
    const host = facts.nodes.find((n) => n.metadataStore !== undefined);
    listed = [{ nodeId: host?.id ?? null, clientUrl: host?.metadataStore?.clientUrl ?? urls[0] ?? "" }];
  }
  const statuses = await Promise.all(listed.map((m) => probeMember(m.clientUrl)));
  const leaderId = statuses.find((s) => s.leaderId !== undefined)?.leaderId;
  const members: MetadataMemberView[] = listed.map((m, i) => {
    const st = statuses[i] as MemberStatus;
    // A store without Raft (one antietcd) names no leader: the one member that answers leads.
    const leader = st.answering && (leaderId === undefined ? listed.length === 1 : st.memberId === leaderId);
    return { nodeId: m.nodeId, name: m.nodeId === null ? null : (names.get(m.nodeId) ?? null), clientUrl: m.clientUrl, answering: st.answering, leader };
  });
  const lead = members.find((m) => m.leader);
  return { backend: config.metadata.backend, endpoints, mode, members, leader: lead === undefined ? null : (lead.name ?? lead.clientUrl) };
}

export function managerView(facts: ClusterFacts): { nodeId: string; name: string | null } | undefined {
  const m = facts.members?.manager;
  if (m === undefined) return undefined;
  const nodeId = typeof m === "string" ? m : m.nodeId;
  return { nodeId, name: facts.nodes.find((n) => n.id === nodeId)?.name ?? null };
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
}): HealthReport {
  const down = new Set(o.nodes.filter((n) => n.state === "down").map((n) => n.id));
  // A down node's archives are covered by NODE_DOWN: their last numbers would only mislead.
  const archives = archiveNumbers(o.facts, o.liveness, o.self)
    .filter(({ rec }) => !down.has(rec.nodeId) || rec.nodeId === o.self.nodeId)
    .map(({ fact }) => fact)
    .filter((f): f is ArchiveFact => f !== null);
  const unreachable = o.metadata.members.filter((m) => !m.answering).map((m) => m.name ?? m.clientUrl);
  return judgeHealth({
    archives,
    ioErrors: o.ioErrors,
    metadataReachable: o.metadataReachable,
    nodes: o.nodes.map((n) => ({ name: n.name, state: n.state, draining: n.draining, heartbeatAgeMs: n.heartbeatAgeMs })),
    metadataMembers: { total: o.metadata.members.length, answering: o.metadata.members.length - unreachable.length, unreachable },
    limits: { archiveNearFullRatio: o.config.health.archive_nearfull_ratio, archiveFullRatio: o.config.health.archive_full_ratio },
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
  async view(o: { ioErrors: number; metadataReachable: boolean; targets: number; luns: number }): Promise<{ health: HealthReport; nodes: NodeView[]; pools: PoolView[]; metadata: MetadataView; manager?: { nodeId: string; name: string | null }; hints: string[] }> {
    const [f] = await Promise.all([this.facts(), this.refresh()]);
    const nodes = await this.nodes(f);
    const metadata = await metadataView(f, this.config);
    const self = this.self;
    const health = clusterHealth({ facts: f, nodes, metadata, liveness: this.liveness, self, ioErrors: o.ioErrors, metadataReachable: o.metadataReachable && !this.readFailed, config: this.config });
    const manager = managerView(f);
    return { health, nodes, pools: poolViews(f, this.liveness, self), metadata, ...(manager === undefined ? {} : { manager }), hints: hintsFor({ health, nodes, targets: o.targets, luns: o.luns }) };
  }
}
