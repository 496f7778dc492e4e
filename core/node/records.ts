// The documents qstora keeps in the metadata store, and their keys. Values are JSON text; keys
// are laid out as directories ending in '/' because antietcd lists only such prefixes.
//
//   /qstora/v1/cluster/info            ClusterRecord
//   /qstora/v1/nodes/<node-id>         NodeRecord
//   /qstora/v1/archives/<archive-id>   ArchiveRecord
//   /qstora/v1/targets/<iqn>           TargetRecord
//   /qstora/v1/luns/<uuid>             LunRecord
//
// Nothing per I/O is ever stored here: configuration and membership only.
import type { VolumeLayout } from "../volume/layout.ts";

export const keyRoot = "/qstora/v1/";

export const keys = {
  cluster: `${keyRoot}cluster/info`,
  nodes: `${keyRoot}nodes/`,
  node: (id: string) => `${keyRoot}nodes/${id}`,
  archives: `${keyRoot}archives/`,
  archive: (id: string) => `${keyRoot}archives/${id}`,
  targets: `${keyRoot}targets/`,
  target: (iqn: string) => `${keyRoot}targets/${iqn}`,
  luns: `${keyRoot}luns/`,
  lun: (uuid: string) => `${keyRoot}luns/${uuid}`,
} as const;

export interface ClusterRecord {
  clusterId: string;
  createdAt: string;
  formatVersion: 1;
}

export interface NodeRecord {
  id: string;
  name: string;
  portal: string;
  api: string;
  version: string;
  startedAt: string;
}

export interface ArchiveRecord {
  id: string;
  nodeId: string;
  path: string;
  kind: "file" | "block";
  sizeBytes: number;
  addedAt: string;
}

export interface TargetRecord {
  iqn: string;
  alias?: string;
  createdAt: string;
}

export interface LunRecord {
  uuid: string;
  target: string;
  lun: number;
  name: string;
  sizeBytes: number;
  blockBytes: number;
  layout: VolumeLayout;
  redundancy: "none";
  writeCache: boolean;
  createdAt: string;
}
