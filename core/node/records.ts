// The documents qstora keeps in the metadata store (their keys are built by core/meta/schema.ts).
// Values are JSON text. Nothing per I/O is ever stored there: configuration and membership only.
import type { VolumeLayout } from "../volume/layout.ts";
import type { Media } from "../archive/media.ts";
import type { Policy } from "../replica/types.ts";
export { metaKeys as keys } from "../meta/schema.ts";

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
  /** The node's peer listener, host:port (absent in records written before it existed). */
  peer?: string;
  version: string;
  startedAt: string;
  /** The address its listeners use (node.address). */
  address?: string;
  /** Fault domain: copies of a segment go to different groups. Absent in old records: the name. */
  group?: string;
  labels?: Record<string, string>;
  /** Set by `qstora node drain`: placement puts nothing new on the node. */
  draining?: boolean;
  /** The node's metadata gate (https://ADDRESS:7327), where it would serve as a metadata member. */
  metadataUrl?: string;
}

/** A storage pool: the archives of the given media (all archives when the list is empty). */
export interface PoolRecord {
  name: string;
  media: Media[];
  createdAt: string;
}


export interface ArchiveRecord {
  id: string;
  nodeId: string;
  path: string;
  kind: "file" | "block";
  /** Detected when added (or given with --media); absent in old records: file, or hdd for a device. */
  media?: Media;
  sizeBytes: number;
  addedAt: string;
}

export interface ChapRecord {
  user: string;
  secret: string;
  mutualUser?: string;
  mutualSecret?: string;
}

export interface TargetRecord {
  iqn: string;
  alias?: string;
  /** CHAP secrets; the initiators must authenticate when set (never shown by the CLI or API). */
  chap?: ChapRecord;
  /** Initiator names allowed to see and log in to the target; absent: every initiator. */
  acl?: string[];
  createdAt: string;
}

export interface LunRecord {
  uuid: string;
  /** The node whose archives hold the LUN's data and whose portal serves it (until replication). */
  nodeId?: string;
  target: string;
  lun: number;
  name: string;
  sizeBytes: number;
  blockBytes: number;
  layout: VolumeLayout;
  /** "none": one copy on this node's archives (LocalUnits); a policy: core/replica across the cluster. */
  redundancy: "none" | Policy;
  /** The storage pool whose archives take its units (`lun create --pool`); absent: default, every archive. */
  pool?: string;
  writeCache: boolean;
  createdAt: string;
}

/** An archive's media as recorded, or as old records (before media were recorded) imply. */
export function mediaOfRecord(a: Pick<ArchiveRecord, "media" | "kind">): Media {
  return a.media ?? (a.kind === "file" ? "file" : "hdd");
}
