// The control API's wire shapes, shared by the daemon (server.ts) and the CLI (client.ts).
// REST over HTTP on the node's api.listen address; every request carries
// `Authorization: Bearer <secret from control.secret>`. Errors come back as
// `{ "error": { "code", "message", "hint"? } }` with the HTTP status of the error table.

import type { ArchiveInfo } from "../archive/archive.ts";
import type { HealthReport } from "../cluster/health.ts";

/** An archive as status shows it: its own numbers (zeros while it can't be opened) and a state. */
export type ArchiveView = Omit<ArchiveInfo, "clusterId"> & {
  state: "online" | "missing" | "error";
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
  writeCache: boolean;
  writtenBytes: number;
  url: string;
}

export interface NodeView {
  id: string;
  name: string;
  portal: string;
  /** "up" while the node's heartbeat lease lives in the metadata store. */
  state: "up" | "down";
}

export interface StatusView {
  health: HealthReport;
  nodes: NodeView[];
  node: { id: string; name: string; clusterId: string; version: string; pid: number; uptimeSeconds: number };
  daemon: "running";
  portal: string;
  api: string;
  metadata: {
    backend: string;
    endpoints: string[];
    /** embedded-single | embedded-raft | external (from /qstora/v1/metadata/members). */
    mode?: string;
    members?: Array<{ id: string; name: string; url: string; reachable: boolean; leader: boolean; revision: number }>;
    /** The store's leader (a node id in the embedded group, etcd's member id otherwise). */
    leader?: string | null;
  };
  /** The node running the cluster manager role, null while there is none. */
  manager?: { nodeId: string; name: string; since: string } | null;
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
}
