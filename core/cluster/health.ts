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
  state: "online" | "missing" | "error";
  sizeBytes: number;
  freeBytes: number;
  error?: string;
}

export interface NodeFacts {
  archives: ArchiveFact[];
  ioErrors: number;
  metadataReachable: boolean;
  /** Names of cluster nodes whose heartbeat has lapsed. */
  nodesDown?: string[];
}

/** Free space below which an archive is "nearly full" (warn) and "full" (error), as fractions. */
export const archiveNearFullFraction = 0.15;
export const archiveFullFraction = 0.03;

export function judgeHealth(facts: NodeFacts): HealthReport {
  const checks: HealthCheck[] = [];
  const down = facts.archives.filter((a) => a.state !== "online");
  if (down.length > 0) {
    checks.push({
      code: "ARCHIVE_UNAVAILABLE",
      severity: "HEALTH_ERR",
      summary: `${down.length} archive(s) not available: the LUN data they hold can't be read`,
      detail: down.map((a) => `archive ${a.id} at ${a.path} is ${a.state}${a.error === undefined ? "" : `: ${a.error}`}`),
    });
  }
  const online = facts.archives.filter((a) => a.state === "online" && a.sizeBytes > 0);
  const full = online.filter((a) => a.freeBytes / a.sizeBytes < archiveFullFraction);
  const nearFull = online.filter((a) => !full.includes(a) && a.freeBytes / a.sizeBytes < archiveNearFullFraction);
  const pct = (a: ArchiveFact) => `${((100 * a.freeBytes) / a.sizeBytes).toFixed(1)}% free`;
  if (full.length > 0) checks.push({ code: "ARCHIVE_FULL", severity: "HEALTH_ERR", summary: `${full.length} archive(s) full: new segments can't be placed`, detail: full.map((a) => `archive ${a.id} at ${a.path}: ${pct(a)}`) });
  if (nearFull.length > 0) checks.push({ code: "ARCHIVE_NEARFULL", severity: "HEALTH_WARN", summary: `${nearFull.length} archive(s) nearly full`, detail: nearFull.map((a) => `archive ${a.id} at ${a.path}: ${pct(a)}`) });
  if (facts.archives.length === 0) checks.push({ code: "NO_ARCHIVES", severity: "HEALTH_WARN", summary: "the node has no archive: LUNs can't store data", detail: ["add one with `qstora archive add PATH:SIZE`"] });
  if ((facts.nodesDown ?? []).length > 0) checks.push({ code: "NODE_DOWN", severity: "HEALTH_WARN", summary: `${facts.nodesDown?.length} node(s) down`, detail: (facts.nodesDown ?? []).map((n) => `node ${n} has no heartbeat`) });
  if (!facts.metadataReachable) checks.push({ code: "METADATA_UNREACHABLE", severity: "HEALTH_ERR", summary: "the metadata store does not answer: management commands wait", detail: [] });
  if (facts.ioErrors > 0) checks.push({ code: "IO_ERRORS", severity: "HEALTH_WARN", summary: `${facts.ioErrors} I/O error(s) since the daemon started`, detail: ["see qstora.log in the data directory"] });
  const status: Severity = checks.some((c) => c.severity === "HEALTH_ERR") ? "HEALTH_ERR" : checks.length > 0 ? "HEALTH_WARN" : "HEALTH_OK";
  return { status, checks };
}
