// Cluster membership rules, pure: names of fault domains (groups), pools and labels; label
// edits; which archives a pool holds and its capacity; whether a node may be removed. The
// callers read and write the metadata store; nothing here does.
import { assert } from "../util/assert.ts";
import { QstoraError } from "../util/errors.ts";
import type { Media } from "../archive/media.ts";
import type { NodeState } from "./liveness.ts";

/** Groups, pools and label keys: short names that read well in tables and fit in a key. */
const shortNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const labelValuePattern = /^[A-Za-z0-9._-]{0,63}$/;
export const labelsPerNodeMax = 64;
export const defaultPoolName = "default";

function checkShortName(name: string, what: string): string {
  if (!shortNamePattern.test(name)) {
    throw new QstoraError("INVALID_ARGUMENT", `${what} "${name.slice(0, 64)}" is not valid`, "Use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit.");
  }
  return name;
}

export const checkGroupName = (name: string): string => checkShortName(name, "group name");
export const checkPoolName = (name: string): string => checkShortName(name, "pool name");

export type LabelEdit = { key: string; value: string } | { key: string; remove: true };

/** Parses `k=v` (set) and `k-` (remove) arguments, as kubectl label does. */
export function parseLabelArgs(args: readonly string[]): LabelEdit[] {
  if (args.length === 0) throw new QstoraError("USAGE", "label needs at least one KEY=VALUE or KEY-", "For example: qstora node label node-b rack=r12 zone-");
  const edits = args.map((arg): LabelEdit => {
    const eq = arg.indexOf("=");
    if (eq >= 0) {
      const key = checkShortName(arg.slice(0, eq), "label key");
      const value = arg.slice(eq + 1);
      if (!labelValuePattern.test(value)) throw new QstoraError("INVALID_ARGUMENT", `label value "${value.slice(0, 64)}" of ${key} is not valid`, "Use up to 63 letters, digits, '.', '_' or '-'.");
      return { key, value };
    }
    if (arg.endsWith("-")) return { key: checkShortName(arg.slice(0, -1), "label key"), remove: true };
    throw new QstoraError("INVALID_ARGUMENT", `"${arg.slice(0, 64)}" is neither KEY=VALUE nor KEY-`);
  });
  const keys = edits.map((e) => e.key);
  if (new Set(keys).size !== keys.length) throw new QstoraError("INVALID_ARGUMENT", "a label key is given twice");
  return edits;
}

export function applyLabels(labels: Readonly<Record<string, string>>, edits: readonly LabelEdit[]): Record<string, string> {
  const next: Record<string, string> = { ...labels };
  for (const e of edits) {
    if ("remove" in e) delete next[e.key];
    else next[e.key] = e.value;
  }
  if (Object.keys(next).length > labelsPerNodeMax) throw new QstoraError("INVALID_ARGUMENT", `a node has at most ${labelsPerNodeMax} labels`);
  return next;
}

// ---- pools ----

export interface PoolDef {
  name: string;
  /** Media the pool takes; empty: every archive. */
  media: Media[];
}

export interface PoolArchiveFact {
  id: string;
  nodeId: string;
  media: Media;
  sizeBytes: number;
  /** Unknown (null) while the owning node's heartbeat is missing. */
  writtenBytes: number | null;
  freeBytes: number | null;
}

export interface PoolSummary {
  name: string;
  media: Media[];
  capacityBytes: number;
  writtenBytes: number;
  freeBytes: number;
  archives: number;
  nodes: number;
}

export function poolHolds(pool: PoolDef, media: Media): boolean {
  return pool.media.length === 0 || pool.media.includes(media);
}

/** A pool's numbers: archives are chosen by media, so one archive may count in several pools. */
export function summarisePool(pool: PoolDef, archives: readonly PoolArchiveFact[]): PoolSummary {
  const held = archives.filter((a) => poolHolds(pool, a.media));
  const sum = (f: (a: PoolArchiveFact) => number): number => held.reduce((n, a) => n + f(a), 0);
  const summary: PoolSummary = {
    name: pool.name,
    media: pool.media,
    capacityBytes: sum((a) => a.sizeBytes),
    writtenBytes: sum((a) => a.writtenBytes ?? 0),
    freeBytes: sum((a) => a.freeBytes ?? 0),
    archives: held.length,
    nodes: new Set(held.map((a) => a.nodeId)).size,
  };
  assert(summary.writtenBytes <= summary.capacityBytes);
  return summary;
}

// ---- removing a node ----

export interface RemovalFacts {
  name: string;
  state: NodeState;
  /** LUNs (target:lun) whose only copy is on the node. */
  luns: string[];
  /** Segment units its archives hold (as its last heartbeat said), LUNs or not. */
  archiveCount: number;
  /** The node answering the request is the one to remove. */
  isSelf: boolean;
}

export type RemovalVerdict = { ok: true; loses: string[] } | { ok: false; error: QstoraError };

/**
 * Whether `qstora node remove` may go ahead, as far as the node's own state goes: never the node
 * answering; without --force the node must be down and hold no LUN; with --force allowed, and
 * `loses` says, one line each, what is lost. Whether a metadata member may leave its group (not
 * the last one, not without a live majority) is planMemberRemoval's (metadata-members.ts).
 */
export function judgeRemoval(f: RemovalFacts, force: boolean): RemovalVerdict {
  if (f.isSelf) return { ok: false, error: new QstoraError("IN_USE", `node ${f.name} is the node answering this command`, "Run `qstora node remove` on another node of the cluster.") };
  const loses: string[] = [];
  if (f.state !== "down") loses.push(`node ${f.name} is ${f.state}: its daemon stops at its next heartbeat, ending the sessions of its initiators`);
  if (f.luns.length > 0) loses.push(`LUN(s) ${f.luns.join(", ")} have their only copy on ${f.name}: their records are deleted and their data is lost`);
  if (f.archiveCount > 0) loses.push(`the records of its ${f.archiveCount} archive(s) are deleted (the archives stay on disk, claimed by this cluster)`);
  if (force) return { ok: true, loses };
  if (f.state !== "down") {
    return { ok: false, error: new QstoraError("IN_USE", `node ${f.name} is ${f.state}`, `Stop its daemon first (\`qstora stop\` on ${f.name}), or pass --force to remove it anyway: ${loses.join("; ")}.`) };
  }
  if (f.luns.length > 0) {
    return { ok: false, error: new QstoraError("IN_USE", `node ${f.name} holds the only copy of LUN(s) ${f.luns.join(", ")}`, "Delete those LUNs first, or pass --force to remove the node and lose them.") };
  }
  return { ok: true, loses };
}
