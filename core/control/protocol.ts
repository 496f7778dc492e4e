// The control API's wire shapes, shared by the daemon (server.ts) and the CLI (client.ts).
// REST over HTTP on the node's api.listen address; every request carries
// `Authorization: Bearer <secret from control.secret>`. Errors come back as
// `{ "error": { "code", "message", "hint"? } }` with the HTTP status of the error table.

import type { ArchiveInfo } from "../archive/archive.ts";
import type { HealthReport } from "../cluster/health.ts";
import type { PoolSummary } from "../cluster/membership.ts";
import type { Media } from "../archive/media.ts";

/** An archive as status shows it: its own numbers (zeros while it can't be opened) and a state. */
export type ArchiveView = Omit<ArchiveInfo, "clusterId"> & {
  state: "online" | "missing" | "error";
  media: Media;
  error?: string;
};

export interface TargetView {
  iqn: string;
  alias?: string;
  chap: "none" | "one-way" | "mutual";
  /** Allowed initiators; absent when every initiator is allowed. */
  acl?: string[];
  luns: number[];
  sessions: number;
}

export interface LunView {
  uuid: string;
  target: string;
  lun: number;
  name: string;
  sizeBytes: number;
  blockBytes: number;
  stripeBytes: number;
  segmentBytes: number;
  redundancy: string;
  /** The storage pool its units are placed in ("default": every archive). */
  pool: string;
  /** The node that runs its logical unit (every other portal forwards there): where it was created, or the node that took it over. */
  coordinator?: string;
  /** Replicated LUNs: each placed segment, as the manager sees it when this node is the manager. */
  segments?: Array<{ index: number; units: string[]; state: string; epoch: number; primary: string | null; inactive: string[]; reason: string | null }>;
  writeCache: boolean;
  writtenBytes: number;
  url: string;
}

export interface NodeView {
  id: string;
  name: string;
  portal: string;
  /** From the age of its heartbeat (health.suspect_after_ms, health.down_after_ms). */
  state: "up" | "suspect" | "down";
  /** Fault domain (--group; default the node's name). */
  group: string;
  address: string;
  /** Number of archives registered on the node. */
  archives: number;
  labels: Record<string, string>;
  draining: boolean;
  /** Milliseconds since its heartbeat last changed, on the answering node's clock; null: none. */
  heartbeatAgeMs: number | null;
  metadataMember: boolean;
  /** The node-to-node transport from the answering node to this one: a ping's round trip. */
  transport?: { reachable: true; rttMs: number } | { reachable: false; error: string };
}

/** One member of the metadata store, as /qstora/v1/metadata/members lists it and as it answers. */
export interface MetadataMemberView {
  /** The qstora node id in the embedded group; etcd's member id for an external etcd. */
  id: string;
  /** The node's name (an external etcd member: its URL). */
  name: string;
  /** The member's gate (embedded) or client URL (etcd). */
  url: string;
  reachable: boolean;
  leader: boolean;
  /** The member's store revision (equal on every member once they caught up). */
  revision: number;
}

/** What `status` shows of the metadata store (core/node/metadata-role.ts builds it). */
export interface MetadataView {
  backend: string;
  /** embedded-single | embedded-raft | external (from /qstora/v1/metadata/members); unknown before it is written. */
  mode: string;
  endpoints: string[];
  members: MetadataMemberView[];
  /** The leader's member id as the store names it (a node id for the embedded group); null: none. */
  leader: string | null;
}

export type PoolView = PoolSummary;

export interface PoolCreateRequest {
  name: string;
  media: Media[];
}

export interface StatusView {
  health: HealthReport;
  nodes: NodeView[];
  node: { id: string; name: string; clusterId: string; version: string; pid: number; uptimeSeconds: number };
  /** "starting" until the node's first heartbeat is in the store and its manager election runs. */
  daemon: "starting" | "running";
  /** portal.listen: the first portal (what discovery is pointed at). */
  portal: string;
  /** Every portal of this node's portal group: portal.listen, then portal.extra. */
  portals?: string[];
  api: string;
  metadata: MetadataView;
  /** Capacity per storage pool (the implicit "default" pool holds every archive). */
  pools: PoolView[];
  /** The node running the cluster manager role (meta4's election), null while there is none. */
  manager: { nodeId: string; name: string; since: string } | null;
  /** Commands worth running next, given the state. */
  hints: string[];
  archives: ArchiveView[];
  targets: TargetView[];
  luns: LunView[];
  /** Erasure-coding kernels this host can run, fastest first; the first is the one used. */
  ec: { kernel: string; available: string[] };
  io: { readOps: number; writeOps: number; readBytes: number; writeBytes: number; flushes: number; errors: number };
}

export interface LunCreateRequest {
  target: string;
  sizeBytes: number;
  lun?: number;
  name?: string;
  blockBytes?: number;
  stripeBytes?: number;
  segmentBytes?: number;
  /** "none" or replica:2|replica:3|replica:3-ha; absent: the most the cluster's fault domains allow (lun-options.ts). */
  redundancy?: string;
  /** A storage pool (`qstora pool create`); absent: default, every archive. */
  pool?: string;
}
