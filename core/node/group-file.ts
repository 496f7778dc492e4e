// meta/group.json, the embedded Raft group a member last joined, and the small helpers that the
// CLI's join shares with the daemon (without loading antietcd). Files only; no network.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { MetadataMember } from "../cluster/metadata-members.ts";
import { assert } from "../util/assert.ts";
import { portDefaults } from "./config.ts";
import type { DataDirPaths } from "./paths.ts";

/** meta/group.json: the embedded Raft group this member last joined. */
export interface GroupFile {
  readonly clusterKey: string;
  readonly members: readonly MetadataMember[];
}


export function groupFilePath(paths: DataDirPaths): string {
  return join(paths.meta, "group.json");
}

export function readGroupFile(paths: DataDirPaths): GroupFile | undefined {
  const path = groupFilePath(paths);
  if (!existsSync(path)) return undefined;
  const g = JSON.parse(readFileSync(path, "utf8")) as GroupFile;
  assert(typeof g.clusterKey === "string" && g.clusterKey.length > 0 && Array.isArray(g.members), `${path} is malformed`);
  return g;
}

export function writeGroupFile(paths: DataDirPaths, group: GroupFile): void {
  mkdirSync(paths.meta, { recursive: true, mode: 0o700 });
  const path = groupFilePath(paths);
  writeFileSync(`${path}.tmp`, JSON.stringify(group, null, 2), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

export function newClusterKey(): string {
  return randomBytes(32).toString("base64url");
}

/** The URL of a node's metadata gate, from the address its listeners use. */
export function metadataUrl(address: string, port: number = portDefaults.metadata): string {
  return `https://${address.includes(":") ? `[${address}]` : address}:${port}`;
}

