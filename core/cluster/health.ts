// Cluster health: named checks, each with a severity and the items it concerns, rolled up into
// HEALTH_OK / HEALTH_WARN / HEALTH_ERR (Ceph's vocabulary, which operators know). Pure: the
// caller gathers the facts; this file only judges them.

export type Severity = "HEALTH_OK" | "HEALTH_WARN" | "HEALTH_ERR";

export interface HealthCheck {
  /** Stable name, e.g. ARCHIVE_MISSING; scripts match on it. */
  code: string;
  severity: Exclude<Severity, "HEALTH_OK">;
  summary: string;
  /** What the check concerns (archive ids, LUN urls...), one line each. */
  detail: string[];
}

export interface HealthReport {
  status: Severity;
  checks: HealthCheck[];
}

export interface ArchiveFact {
  id: string;
  path: string;
  /** The node holding it, in cluster-wide checks. */
  node?: string;
  state: "online" | "missing" | "error";
  sizeBytes: number;
  freeBytes: number;
  error?: string;
}

/** A replicated segment as the manager (or, elsewhere, the recorded membership) sees it. */
export interface SegmentFact {
  /** <lun uuid>/<index> */
  segment: string;
  /** The LUN as an operator names it (target:lun), when known. */
  lun?: string;
  /** core/cluster/failover.ts segmentStatus(); "recorded": only the membership record is known here. */
  state: "serving" | "failing-over" | "unavailable" | "recorded" | "unknown";
  primary: string | null;
  /** Units recorded inactive: they missed writes and must catch up. */
  inactive: string[];
  /** Why it does not serve (failover.ts Unavailable), when the manager knows. */
  reason: { code: string; message: string; waitingFor: readonly string[] } | null;
  /** The node (by name) of each unit, for the detail lines. */
  unitNodes?: Record<string, string>;
}

export interface NodeFacts {
  archives: ArchiveFact[];
  ioErrors: number;
  metadataReachable: boolean;
  /** Every cluster node with its liveness (core/cluster/liveness.ts) and drain flag. */
  nodes?: Array<{ name: string; state: "up" | "suspect" | "down"; draining?: boolean; heartbeatAgeMs?: number | null }>;
  /** The metadata store's members and how many answer (with a leader, for a Raft group). */
  metadataMembers?: { total: number; answering: number; unreachable: string[] };
  /** Used fractions above which an archive is nearly full (warn) and full (error). */
  limits?: { archiveNearFullRatio: number; archiveFullRatio: number };
  /** Every placed replicated segment. */
  segments?: SegmentFact[];
}

function segmentName(s: SegmentFact): string {
  return `segment ${s.segment}${s.lun === undefined ? "" : ` of LUN ${s.lun}`}`;
}

/** The manager's message without its leading "segment <id>: " (the detail line names the segment). */
function withoutSegment(s: SegmentFact, message: string): string {
  const lead = `segment ${s.segment}: `;
  return message.startsWith(lead) ? message.slice(lead.length) : message;
}

/** A unit as the detail names it: its id within the segment, and its node when known ("u1 on node-c"). */
function unitName(s: SegmentFact, unit: string): string {
  const short = unit.startsWith(`${s.segment}/`) ? unit.slice(s.segment.length + 1) : unit;
  const node = s.unitNodes?.[unit];
  return node === undefined ? short : `${short} on ${node}`;
}

/**
 * SEGMENT_UNAVAILABLE: the manager found no unit that holds every acknowledged write among those
 * that answer, so the segment stays unavailable (never served from a copy that may lack a write),
 * or it keeps the primary on its LUN's coordinator node while that node is down (COORDINATOR_DOWN).
 * SEGMENT_DEGRADED: units recorded inactive (they missed writes), or a failover in progress.
 */
export function segmentChecks(segments: readonly SegmentFact[]): HealthCheck[] {
  const checks: HealthCheck[] = [];
  const unavailable = segments.filter((s) => s.state === "unavailable");
  if (unavailable.length > 0) {
    checks.push({
      code: "SEGMENT_UNAVAILABLE",
      severity: "HEALTH_ERR",
      summary: `${unavailable.length} replicated segment(s) unavailable: their I/O waits for a unit that holds every acknowledged write, or for their LUN's coordinator node`,
      detail: unavailable.map((s) => `${segmentName(s)}: ${withoutSegment(s, s.reason?.message ?? "no complete copy answers")}${s.reason === null || s.reason.waitingFor.length === 0 ? "" : ` (waiting for ${s.reason.waitingFor.map((u) => unitName(s, u)).join(", ")})`}`),
    });
  }
  const degraded = segments.filter((s) => s.state !== "unavailable" && (s.inactive.length > 0 || s.state === "failing-over"));
  if (degraded.length > 0) {
    checks.push({
      code: "SEGMENT_DEGRADED",
      severity: "HEALTH_WARN",
      summary: `${degraded.length} replicated segment(s) degraded: fewer copies than their policy until they catch up`,
      detail: degraded.map((s) => {
        const why = [s.state === "failing-over" ? "failing over (a new primary is being chosen)" : "", s.inactive.length > 0 ? `${s.inactive.map((u) => unitName(s, u)).join(", ")} inactive (missed writes; catching up, or waiting for their node)` : ""].filter((x) => x !== "");
        return `${segmentName(s)}: ${why.join("; ")}`;
      }),
    });
  }
  return checks;
}

export const defaultArchiveNearFullRatio = 0.85;
export const defaultArchiveFullRatio = 0.97;

function where(a: ArchiveFact): string {
  return `archive ${a.id} at ${a.path}${a.node === undefined ? "" : ` on ${a.node}`}`;
}

function age(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? "no heartbeat" : `last heartbeat ${(ms / 1000).toFixed(1)} s ago`;
}

export function judgeHealth(facts: NodeFacts): HealthReport {
  const checks: HealthCheck[] = [];
  const nearFullRatio = facts.limits?.archiveNearFullRatio ?? defaultArchiveNearFullRatio;
  const fullRatio = facts.limits?.archiveFullRatio ?? defaultArchiveFullRatio;
  const missing = facts.archives.filter((a) => a.state === "missing");
  if (missing.length > 0) {
    checks.push({ code: "ARCHIVE_UNAVAILABLE", severity: "HEALTH_ERR", summary: `${missing.length} archive(s) not available: the LUN data they hold can't be read`, detail: missing.map((a) => `${where(a)} is missing${a.error === undefined ? "" : `: ${a.error}`}`) });
  }
  const failed = facts.archives.filter((a) => a.state === "error");
  if (failed.length > 0) {
    checks.push({ code: "ARCHIVE_ERROR", severity: "HEALTH_ERR", summary: `${failed.length} archive(s) in error: the LUN data they hold can't be read`, detail: failed.map((a) => `${where(a)}: ${a.error ?? "error"}`) });
  }
  const online = facts.archives.filter((a) => a.state === "online" && a.sizeBytes > 0);
  const used = (a: ArchiveFact): number => 1 - a.freeBytes / a.sizeBytes;
  const full = online.filter((a) => used(a) > fullRatio);
  const nearFull = online.filter((a) => !full.includes(a) && used(a) > nearFullRatio);
  const pct = (a: ArchiveFact) => `${((100 * a.freeBytes) / a.sizeBytes).toFixed(1)}% free`;
  if (full.length > 0) checks.push({ code: "ARCHIVE_FULL", severity: "HEALTH_ERR", summary: `${full.length} archive(s) full (over ${Math.round(fullRatio * 100)}% used): new segments can't be placed`, detail: full.map((a) => `${where(a)}: ${pct(a)}`) });
  if (nearFull.length > 0) checks.push({ code: "ARCHIVE_NEARFULL", severity: "HEALTH_WARN", summary: `${nearFull.length} archive(s) nearly full (over ${Math.round(nearFullRatio * 100)}% used)`, detail: nearFull.map((a) => `${where(a)}: ${pct(a)}`) });
  if (facts.archives.length === 0) checks.push({ code: "NO_ARCHIVES", severity: "HEALTH_WARN", summary: "the node has no archive: LUNs can't store data", detail: ["add one with `qstora archive add PATH:SIZE`"] });
  const nodes = facts.nodes ?? [];
  const down = nodes.filter((n) => n.state === "down");
  const suspect = nodes.filter((n) => n.state === "suspect");
  const draining = nodes.filter((n) => n.draining === true);
  if (down.length > 0) checks.push({ code: "NODE_DOWN", severity: "HEALTH_WARN", summary: `${down.length} node(s) down`, detail: down.map((n) => `node ${n.name} is down (${age(n.heartbeatAgeMs)})`) });
  if (suspect.length > 0) checks.push({ code: "NODE_SUSPECT", severity: "HEALTH_WARN", summary: `${suspect.length} node(s) suspect: heartbeats late`, detail: suspect.map((n) => `node ${n.name}: ${age(n.heartbeatAgeMs)}`) });
  if (draining.length > 0) checks.push({ code: "NODE_DRAINING", severity: "HEALTH_WARN", summary: `${draining.length} node(s) draining: nothing new is placed on them`, detail: draining.map((n) => `node ${n.name} is draining; undo with \`qstora node drain ${n.name} --undo\``) });
  if (!facts.metadataReachable) checks.push({ code: "METADATA_UNREACHABLE", severity: "HEALTH_ERR", summary: "the metadata store does not answer: management commands wait", detail: [] });
  const m = facts.metadataMembers;
  if (m !== undefined && m.total > 0 && m.answering < Math.floor(m.total / 2) + 1) {
    checks.push({ code: "METADATA_NO_QUORUM", severity: "HEALTH_ERR", summary: `${m.answering} of ${m.total} metadata member(s) answer: no quorum, management and failover wait`, detail: m.unreachable.map((u) => `metadata member ${u} does not answer`) });
  }
  checks.push(...segmentChecks(facts.segments ?? []));
  if (facts.ioErrors > 0) checks.push({ code: "IO_ERRORS", severity: "HEALTH_WARN", summary: `${facts.ioErrors} I/O error(s) since the daemon started`, detail: ["see qstora.log in the data directory"] });
  const status: Severity = checks.some((c) => c.severity === "HEALTH_ERR") ? "HEALTH_ERR" : checks.length > 0 ? "HEALTH_WARN" : "HEALTH_OK";
  return { status, checks };
}
