// The node's metadata role: opens the store the configuration names, and on the nodes that hold
// the embedded group, runs antietcd (on a Unix socket in the data directory) behind the TLS gate
// on the node's address, and keeps the group in step with /qstora/v1/metadata/members.
//
// Roles: "embedded" (a member: alone, or one of the Raft group listed in meta/group.json),
// "cluster" (a client of the embedded group: every member is an endpoint), "etcd" (an external
// etcd: nothing runs here). The membership decisions are core/cluster/metadata-members.ts's; this
// driver carries them out. Ordering contract:
// - group.json is written before antietcd starts with its member list, so a restart comes back
//   with the group it last joined; the document in the store is the intent, group.json follows.
// - The single member switches to a group of two only after the pending member's store answers
//   and names this node in its group, and records the group of two in its own store first.
// - A node promoted to member starts with an empty store (any old data file is moved aside), so
//   its stored term (0) never outranks the members that hold the data.
// - A member that the document no longer lists stops its antietcd and becomes a client.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EtcdClient, type MetaTls } from "../meta/etcd-client.ts";
import { dataFileName, socketPathBytesMax, startEmbeddedMeta, type EmbeddedMeta } from "../meta/embedded.ts";
import { startTlsGate, type GateBackend, type TlsGate } from "../meta/tls-gate.ts";
import type { Compare, MetaStore, Op } from "../meta/store.ts";
import { metaKeys } from "../meta/schema.ts";
import {
  planMemberRemoval,
  planPromotion,
  checkMembers,
  clientEndpoints,
  completePending,

  sameGroup,
  singleMembers,
  type MetadataMember,
  type MetadataMembers,
} from "../cluster/metadata-members.ts";
import { assert } from "../util/assert.ts";
import { QstoraError, isQstoraError } from "../util/errors.ts";
import type { Logger } from "../util/log.ts";
import { parseHostPort, renderConfig, type NodeConfig } from "./config.ts";
import { groupFilePath, metadataUrl, readGroupFile, writeGroupFile, newClusterKey, type GroupFile } from "./group-file.ts";
import type { NodeIdentity } from "./identity.ts";
import type { DataDirPaths } from "./paths.ts";
import type { MetadataView } from "../control/protocol.ts";

/** How often the role re-reads the membership document (the watch makes it faster). */
export const reconcileIntervalMs = 2_000;
/** A daemon waits this long at start for its metadata store (a group needs a quorum to answer). */
export const metadataStartWaitMs = 25_000;
/** Time allowed to a pending member's status answer. */
export const probeTimeoutMs = 2_000;
/**
 * Time allowed to each member's status answer for `qstora status`: a member cut off must not
 * hold status up for the client's whole request timeout (liveness is judged within seconds).
 */
export const statusProbeTimeoutMs = 1_000;

export function nodeTls(paths: DataDirPaths): MetaTls {
  return { caPem: readFileSync(paths.caCert, "utf8"), certPem: readFileSync(paths.nodeCert, "utf8"), keyPem: readFileSync(paths.nodeKey, "utf8") };
}

export interface NodeMeta extends MetaStore {
  readonly client: EtcdClient;
  /** Current role of this node in the store. */
  role(): "member" | "client" | "external";
  view(): Promise<MetadataView>;
  /** Starts following the membership document (after the daemon's first reads). */
  follow(): void;
  /**
   * A member of a group waits until the membership document lists it (a second member: until
   * the first switched to the group of two), so that a started daemon is part of its group.
   */
  awaitMembership(deadlineMs: number): Promise<void>;
  shutdown(): Promise<void>;
}

export async function readMembers(store: MetaStore): Promise<{ doc: MetadataMembers; modRevision: number } | undefined> {
  const kv = await store.get(metaKeys.metadataMembers);
  if (kv === undefined) return undefined;
  return { doc: checkMembers(JSON.parse(kv.value) as MetadataMembers), modRevision: kv.modRevision };
}

/** Opens the store and, on a member, starts antietcd and the gate. */
export async function openNodeMeta(options: { config: NodeConfig; paths: DataDirPaths; identity: NodeIdentity; logger: Logger }): Promise<NodeMeta> {
  const { config, paths, identity, logger } = options;
  if (config.metadata.backend === "etcd") {
    const client = new EtcdClient({ endpoints: config.metadata.endpoints, logger });
    return Object.assign(client, {
      client,
      role: () => "external" as const,
      view: () => externalView(client, config),
      follow: () => undefined,
      awaitMembership: async () => undefined,
      shutdown: () => client.close(),
    });
  }
  const role = new MetadataRole(config, paths, identity, logger);
  await role.open();
  const client = role.client;
  return Object.assign(client, {
    client,
    role: () => role.role(),
    view: () => role.view(),
    follow: () => role.follow(),
    awaitMembership: (deadlineMs: number) => role.awaitMembership(deadlineMs),
    shutdown: () => role.shutdown(),
  });
}

async function externalView(client: EtcdClient, config: NodeConfig): Promise<MetadataView> {
  const statuses = await Promise.all(client.endpoints.map((e) => client.endpointStatus(e, statusProbeTimeoutMs)));
  const leader = statuses.find((s) => s !== undefined && s.leader !== "")?.leader ?? null;
  return {
    backend: config.metadata.backend,
    mode: "external",
    endpoints: [...client.endpoints],
    members: client.endpoints.map((url, i) => ({ id: statuses[i]?.memberId ?? "", name: url, url, reachable: statuses[i] !== undefined, leader: leader !== null && statuses[i]?.memberId === leader, revision: statuses[i]?.revision ?? 0 })),
    leader,
  };
}

class MetadataRole {
  client!: EtcdClient;
  private readonly tls: MetaTls;
  private readonly self: MetadataMember;
  private embedded: EmbeddedMeta | undefined;
  private gate: TlsGate | undefined;
  /** The group antietcd runs with; undefined when alone or not a member. */
  private group: GroupFile | undefined;
  private member: boolean;
  /** The running antietcd was started with a group (not alone). */
  private runsGroup = false;
  private queue: Promise<void> = Promise.resolve();
  private timer: ReturnType<typeof setInterval> | undefined;
  private watch: { cancel(): void } | undefined;
  private closed = false;

  constructor(
    private config: NodeConfig,
    private readonly paths: DataDirPaths,
    private readonly identity: NodeIdentity,
    private readonly logger: Logger,
  ) {
    this.tls = nodeTls(paths);
    const listen = parseHostPort(config.metadata.listen);
    if (listen === null) throw new QstoraError("CONFIG_INVALID", `"metadata.listen" is not ADDRESS:PORT`);
    this.self = { id: identity.nodeId, name: identity.name, url: metadataUrl(listen.host, listen.port) };
    this.member = config.metadata.backend === "embedded";
  }

  role(): "member" | "client" {
    return this.member ? "member" : "client";
  }

  async open(): Promise<void> {
    if (this.member) {
      this.group = readGroupFile(this.paths);
      await this.startStore();
      this.client = new EtcdClient({ endpoints: this.memberEndpoints(), tls: this.tls, flavor: "antietcd", logger: this.logger });
    } else {
      this.client = new EtcdClient({ endpoints: this.config.metadata.endpoints, tls: this.tls, flavor: "antietcd", logger: this.logger });
    }
  }

  /** Own gate first: a member answers its own requests without a network hop when it can. */
  private memberEndpoints(): string[] {
    const others = (this.group?.members ?? []).filter((m) => m.id !== this.self.id).map((m) => m.url);
    return [this.self.url, ...others];
  }

  private backend(): { socketPath?: string; backend: GateBackend } {
    const socketPath = join(this.paths.meta, "antietcd.sock");
    return socketPath.length <= socketPathBytesMax ? { socketPath, backend: { unix: socketPath } } : { backend: { host: "127.0.0.1", port: 0 } };
  }

  private async startStore(options: { minStoredTerm?: number } = {}): Promise<void> {
    assert(this.embedded === undefined, "the store runs already");
    const b = this.backend();
    if (b.socketPath === undefined) {
      // A loopback backend gets a new port each start: the gate follows it.
      this.gate?.stop();
      this.gate = undefined;
    }
    const group = this.group !== undefined && this.group.members.length > 0 ? this.group : undefined;
    const cluster =
      group === undefined
        ? undefined
        : {
            nodeId: this.self.id,
            clusterKey: group.clusterKey,
            members: Object.fromEntries(group.members.map((m) => [m.id, m.url])),
            peerTls: this.tls,
            ...(options.minStoredTerm === undefined ? {} : { minStoredTerm: options.minStoredTerm }),
          };
    this.embedded = await startEmbeddedMeta({
      dir: this.paths.meta,
      port: 0,
      ...(b.socketPath === undefined ? {} : { socketPath: b.socketPath }),
      ...(cluster === undefined ? {} : { cluster }),
      logger: this.logger,
    });
    if (this.gate === undefined) {
      const listen = parseHostPort(this.config.metadata.listen);
      assert(listen !== null);
      const backend: GateBackend = b.socketPath === undefined ? { host: "127.0.0.1", port: this.embedded.port } : b.backend;
      this.gate = startTlsGate({ host: listen.host, port: listen.port, certPem: this.tls.certPem, keyPem: this.tls.keyPem, caPem: this.tls.caPem, backend, logger: this.logger });
    }
    this.runsGroup = cluster !== undefined;
    this.logger.info("metadata member started", { group: group === undefined ? "alone" : group.members.map((m) => m.name).join(","), url: this.self.url });
  }

  private async stopStore(): Promise<void> {
    const e = this.embedded;
    this.embedded = undefined;
    await e?.stop();
  }

  async awaitMembership(deadlineMs: number): Promise<void> {
    if (!this.member || this.group === undefined) return;
    for (;;) {
      // Listed, and its own store answers as part of the group (not the old single store).
      const own = new EtcdClient({ endpoints: [this.self.url], tls: this.tls, flavor: "antietcd" });
      const read = await readMembers(own).catch(() => undefined);
      await own.close();
      if (read !== undefined && read.doc.members.some((m) => m.id === this.self.id)) return;
      if (Date.now() > deadlineMs) {
        throw new QstoraError("METADATA_UNAVAILABLE", "the metadata group this node was to join did not take it in", "Check that the node it joined through is running, then `qstora start` again.");
      }
      await Bun.sleep(300);
    }
  }

  follow(): void {
    if (this.closed || this.timer !== undefined) return;
    this.timer = setInterval(() => this.schedule(), reconcileIntervalMs);
    this.timer.unref();
    this.watchMembers();
    this.schedule();
  }

  private watchMembers(): void {
    this.watch?.cancel();
    this.watch = this.client.watch(metaKeys.metadata, { onCompacted: () => this.watchMembers() }, () => this.schedule());
  }

  /** Runs one reconciliation after those already queued (never two at once). */
  private schedule(): void {
    if (this.closed) return;
    this.queue = this.queue.then(
      () => this.reconcile(),
      () => this.reconcile(),
    ).catch((e: unknown) => {
      if (!(isQstoraError(e) && e.code === "METADATA_UNAVAILABLE")) this.logger.warn("metadata membership step failed", { error: e instanceof Error ? e.message : String(e) });
    });
  }

  private async reconcile(): Promise<void> {
    if (this.closed) return;
    const read = await readMembers(this.client);
    if (read === undefined) {
      if (this.member && this.group === undefined) {
        // The first start of the first node: record that it is the store, alone.
        await this.client.txn({ compare: [{ key: metaKeys.metadataMembers, target: "VERSION", result: "EQUAL", value: 0 }], success: [{ put: { key: metaKeys.metadataMembers, value: JSON.stringify(singleMembers(this.self)) } }] });
      }
      return;
    }
    const { doc, modRevision } = read;
    if (this.closed) return;
    const listed = doc.members.some((m) => m.id === this.self.id);
    if (this.member && doc.mode === "embedded-single" && listed && doc.pending !== undefined && this.group === undefined) {
      await this.completePending(doc, modRevision);
      return;
    }
    if (doc.mode !== "embedded-raft") return;
    if (listed) {
      if (!this.member || this.group === undefined || !sameGroup(this.group.members, doc.members)) await this.joinGroup(doc);
    } else if (this.member && this.group !== undefined) {
      await this.leaveGroup(doc);
    } else if (!this.member) {
      this.setClientEndpoints(clientEndpoints(doc));
    }
  }

  /** The single member: once the pending member answers, switch to the group of two. */
  private async completePending(doc: MetadataMembers, modRevision: number): Promise<void> {
    const pending = doc.pending;
    assert(pending !== undefined);
    const status = await this.probe(pending.url);
    if (status === undefined || !status.includes(this.self.id)) return;
    const next = completePending(doc);
    const key = await this.clusterKey();
    const written = await this.client.txn({ compare: [{ key: metaKeys.metadataMembers, target: "MOD", result: "EQUAL", value: modRevision }], success: [{ put: { key: metaKeys.metadataMembers, value: JSON.stringify(next) } }] });
    if (!written.succeeded) return;
    this.logger.info("metadata group of two forming", { with: pending.name });
    this.group = { clusterKey: key, members: next.members };
    writeGroupFile(this.paths, this.group);
    await this.stopStore();
    await this.startStore({ minStoredTerm: 1 });
    this.client.setEndpoints(this.memberEndpoints());
  }

  private async clusterKey(): Promise<string> {
    const kv = await this.client.get(metaKeys.metadataClusterKey);
    if (kv !== undefined) return kv.value;
    const key = newClusterKey();
    const r = await this.client.txn({
      compare: [{ key: metaKeys.metadataClusterKey, target: "VERSION", result: "EQUAL", value: 0 }],
      success: [{ put: { key: metaKeys.metadataClusterKey, value: key } }],
      failure: [{ range: { key: metaKeys.metadataClusterKey } }],
    });
    if (r.succeeded) return key;
    const got = r.responses[0];
    assert(got !== undefined && got.kind === "range" && got.kvs[0] !== undefined, "the cluster key vanished");
    return got.kvs[0].value;
  }

  /** Asks a member's gate for its status; returns its group's member ids, or undefined. */
  private async probe(url: string): Promise<string[] | undefined> {
    try {
      const res = await fetch(`${url}/v3/maintenance/status`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
        tls: { ca: this.tls.caPem, cert: this.tls.certPem, key: this.tls.keyPem },
        signal: AbortSignal.timeout(probeTimeoutMs),
      });
      if (!res.ok) return undefined;
      const body = (await res.json()) as { cluster?: Record<string, string> };
      return Object.keys(body.cluster ?? {});
    } catch {
      return undefined;
    }
  }

  /** This node is (now) listed: run antietcd with the document's group. */
  private async joinGroup(doc: MetadataMembers): Promise<void> {
    const key = this.group?.clusterKey ?? (await this.clusterKey());
    const wasMember = this.member;
    this.group = { clusterKey: key, members: doc.members };
    if (!wasMember) {
      // Promoted: start empty, so that this node's term 0 never outranks the data's holders.
      const dataFile = join(this.paths.meta, dataFileName);
      if (existsSync(dataFile)) renameSync(dataFile, `${dataFile}.before-${Date.now()}`);
    }
    writeGroupFile(this.paths, this.group);
    this.logger.info("metadata group changed", { members: doc.members.map((m) => m.name).join(",") });
    if (wasMember && this.embedded !== undefined && this.runsGroup) {
      // Already in a Raft group: change its members in place, keeping leases and watches.
      this.embedded.setMembers(Object.fromEntries(doc.members.map((m) => [m.id, m.url])));
    } else {
      await this.stopStore();
      await this.startStore();
    }
    if (!wasMember) {
      this.member = true;
      this.config = { ...this.config, metadata: { ...this.config.metadata, backend: "embedded", endpoints: [] } };
      this.saveConfig();
    }
    this.client.setEndpoints(this.memberEndpoints());
  }

  /** This node was removed from the group: stop antietcd and use the members as a client. */
  private async leaveGroup(doc: MetadataMembers): Promise<void> {
    this.logger.info("metadata member removed; continuing as a client", { members: doc.members.map((m) => m.name).join(",") });
    const endpoints = clientEndpoints(doc);
    this.client.setEndpoints(endpoints);
    this.member = false;
    this.group = undefined;
    this.config = { ...this.config, metadata: { ...this.config.metadata, backend: "cluster", endpoints } };
    this.saveConfig();
    rmSync(groupFilePath(this.paths), { force: true });
    await this.stopStore();
    this.gate?.stop();
    this.gate = undefined;
  }

  private setClientEndpoints(endpoints: string[]): void {
    if (endpoints.length === 0 || JSON.stringify(endpoints) === JSON.stringify(this.config.metadata.endpoints)) return;
    this.client.setEndpoints(endpoints);
    this.config = { ...this.config, metadata: { ...this.config.metadata, endpoints } };
    this.saveConfig();
  }

  /** Keeps qstora.toml's metadata keys in step, so that a restart comes back in the same role. */
  private saveConfig(): void {
    writeFileSync(`${this.paths.config}.tmp`, renderConfig(this.config), { mode: 0o600 });
    renameSync(`${this.paths.config}.tmp`, this.paths.config);
  }

  async view(): Promise<MetadataView> {
    const read = await readMembers(this.client).catch(() => undefined);
    const doc = read?.doc;
    const members = doc?.members ?? [];
    const statuses = await Promise.all(members.map((m) => this.client.endpointStatus(m.url, statusProbeTimeoutMs)));
    const leader = statuses.find((s) => s !== undefined && s.leader !== "")?.leader ?? (doc?.mode === "embedded-single" ? (members[0]?.id ?? null) : null);
    return {
      backend: this.config.metadata.backend,
      mode: doc?.mode ?? "unknown",
      endpoints: [...this.client.endpoints],
      members: members.map((m, i) => ({ id: m.id, name: m.name, url: m.url, reachable: statuses[i] !== undefined, leader: m.id === leader, revision: statuses[i]?.revision ?? 0 })),
      leader,
    };
  }

  async shutdown(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.watch?.cancel();
    await this.queue.catch(() => undefined);
    await this.client.close();
    this.gate?.stop();
    this.gate = undefined;
    await this.stopStore();
  }
}



/**
 * Node `nodeId`'s leaving the metadata group, for `qstora node remove` (and replace: the manager
 * then promotes a client to bring the group back to three), as the parts of a transaction: the
 * caller runs them in the same transaction that deletes the node's record, so that no one (the
 * manager looking for a member to promote) ever sees the node out of the group and still in the
 * cluster. Refuses, with IN_USE and nothing changed, to remove the last member or to leave a
 * group without a majority of live members. Null when the node is not a member: nothing to do.
 * The removed node's daemon, if it runs, stops its antietcd and carries on as a client when it
 * sees the new document (or stops, its record gone).
 */
export async function planMemberLeave(meta: MetaStore, nodeId: string): Promise<{ compare: Compare[]; success: Op[]; members: MetadataMember[] } | null> {
  const read = await readMembers(meta);
  if (read === undefined || read.doc.mode === "external") return null;
  const alive = await meta.list(metaKeys.alive);
  const up = new Set(alive.map((kv) => kv.key.slice(metaKeys.alive.length)));
  const plan = planMemberRemoval(read.doc, nodeId, up);
  if (!plan.ok) {
    throw new QstoraError(
      "IN_USE",
      `node ${nodeId} cannot leave the metadata store: ${plan.message}`,
      plan.reason === "last-member" ? "Add nodes first (qstora join); the group grows to three members by itself." : "Bring the metadata members that are down back up first.",
    );
  }
  if (!plan.changed) return null;
  return {
    compare: [{ key: metaKeys.metadataMembers, target: "MOD", result: "EQUAL", value: read.modRevision }],
    success: [{ put: { key: metaKeys.metadataMembers, value: JSON.stringify(plan.next) } }],
    members: [...plan.next.members],
  };
}

/** A live client node the manager may make a member, with its record's revision when seen. */
export interface PromotionCandidate {
  readonly member: MetadataMember;
  readonly recordKey: string;
  readonly recordRevision: number;
}

/**
 * The manager's duty for the metadata store: a group with fewer than three members (one was
 * removed) gets a live client node as a new member, one at a time. Returns true when it did.
 */
export async function promoteMetadataMember(meta: MetaStore, candidates: readonly PromotionCandidate[]): Promise<boolean> {
  const read = await readMembers(meta);
  if (read === undefined) return false;
  const plan = planPromotion(read.doc, candidates.map((c) => c.member));
  if (plan === null) return false;
  const { next } = plan;
  const chosen = candidates[plan.chosen] as PromotionCandidate;
  // The candidate's record unchanged since it was seen: a node being removed (its record deleted
  // in the transaction that takes it out of the group) is never made a member again.
  const r = await meta.txn({
    compare: [
      { key: metaKeys.metadataMembers, target: "MOD", result: "EQUAL", value: read.modRevision },
      { key: chosen.recordKey, target: "MOD", result: "EQUAL", value: chosen.recordRevision },
    ],
    success: [{ put: { key: metaKeys.metadataMembers, value: JSON.stringify(next) } }],
  });
  return r.succeeded;
}
