// What the cluster manager tells every node about replicated segments that do not serve well:
// the manager alone knows why a segment is unavailable (its FailoverDriver probed the units), so
// it publishes the segments that are not plainly serving in one small record, written only when
// it changes; every node's `qstora status` reads it (SEGMENT_UNAVAILABLE / SEGMENT_DEGRADED in
// health.ts). Never per I/O, and never an input to any decision: status only.
import type { SegmentFact } from "../cluster/health.ts";

/** The record's directory (watched by every node) and the record: written by the manager node's ReplicaHost. */
export const segmentHealthPrefix = "/qstora/v1/replica-status/";
export const segmentHealthKey = `${segmentHealthPrefix}manager`;

/** At most this many segments are published (a record stays far below the store's value limit). */
export const publishedSegmentsMax = 2000;

export type SegmentState = Omit<SegmentFact, "lun"> & { epoch: number };

export interface PublishedSegments {
  /** The manager node that wrote it: a record of a previous manager is not trusted. */
  manager: string;
  segments: SegmentState[];
}

/** The segments worth publishing: not serving, or with inactive units; by segment id, bounded. */
export function toPublish(all: readonly SegmentState[]): SegmentState[] {
  return all
    .filter((s) => s.state === "unavailable" || s.state === "failing-over" || s.inactive.length > 0)
    .sort((a, b) => a.segment.localeCompare(b.segment))
    .slice(0, publishedSegmentsMax);
}

/** Parses the record; null when absent or malformed (status falls back to the recorded memberships). */
export function parsePublished(text: string | undefined): PublishedSegments | null {
  if (text === undefined) return null;
  try {
    const v = JSON.parse(text) as PublishedSegments;
    return typeof v.manager === "string" && Array.isArray(v.segments) ? v : null;
  } catch {
    return null;
  }
}
