// Argument fragments and output helpers shared by every command (nuxt/cli's _shared.ts idea).
// Commands stay thin: parse, call core/, print.
import { consola } from "consola";
import type { ArgsDef } from "citty";
import { defaultDataDir } from "../../core/node/paths.ts";
import { dataDirPaths, type DataDirPaths } from "../../core/node/paths.ts";
import { controlClient } from "../../core/node/lifecycle.ts";
import type { ControlClient } from "../../core/control/client.ts";
import type { NodeView, PoolView } from "../../core/control/protocol.ts";
import { formatSize } from "../../core/util/size.ts";

export const dataDirArg = {
  "data-dir": {
    type: "string",
    description: "Data directory of the node (default: $QSTORA_DATA_DIR, else ~/.qstora, or /var/lib/qstora for root)",
    valueHint: "DIR",
  },
} as const satisfies ArgsDef;

export const jsonArg = {
  json: { type: "boolean", description: "Print machine-readable JSON", default: false },
} as const satisfies ArgsDef;

export const commonArgs = { ...dataDirArg, ...jsonArg } as const;

export function pathsFrom(args: { "data-dir"?: string | undefined }): DataDirPaths {
  return dataDirPaths(args["data-dir"] ?? defaultDataDir());
}

export function clientFrom(args: { "data-dir"?: string | undefined }): ControlClient {
  return controlClient(pathsFrom(args));
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints rows as an aligned table with a header; prints `empty` when there are none. */
export function printTable(headers: string[], rows: string[][], empty: string): void {
  if (rows.length === 0) {
    consola.log(empty);
    return;
  }
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd();
  process.stdout.write(`${line(headers)}\n${rows.map(line).join("\n")}\n`);
}

/** All values of a repeatable --flag from the raw arguments (citty keeps only one). */
export function repeated(rawArgs: string[], flag: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i] as string;
    if (a === `--${flag}`) {
      const v = rawArgs[i + 1];
      if (v !== undefined) out.push(v);
      i++;
    } else if (a.startsWith(`--${flag}=`)) out.push(a.slice(flag.length + 3));
  }
  return out;
}

let longRunning = false;
/** Called by commands that leave a daemon running in this process (serve, init --foreground). */
export function markLongRunning(): void {
  longRunning = true;
}
export function isLongRunning(): boolean {
  return longRunning;
}

/** A flag given more than once arrives from citty as an array: the last one wins, as in most CLIs. */
export function last(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[value.length - 1] : value;
}

/** The nodes table, as `status` and `node list` print it. */
export function printNodes(nodes: readonly NodeView[]): void {
  // PEER: the node-to-node transport from the answering node (a ping's round trip).
  const peer = (t: NodeView["transport"]): string => (t === undefined ? "-" : t.reachable ? `${t.rttMs.toFixed(2)} ms` : "unreachable");
  const flags = (n: NodeView): string => [n.draining ? "draining" : "", n.metadataMember ? "metadata" : ""].filter((f) => f !== "").join(",") || "-";
  const labels = (n: NodeView): string => Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(",") || "-";
  printTable(
    ["NODE", "STATE", "GROUP", "ADDRESS", "ARCHIVES", "FLAGS", "LABELS", "HEARTBEAT", "PEER"],
    nodes.map((n) => [n.name, n.state, n.group, n.address || "-", String(n.archives), flags(n), labels(n), n.heartbeatAgeMs === null ? "none" : `${(n.heartbeatAgeMs / 1000).toFixed(1)}s ago`, peer(n.transport)]),
    "no nodes",
  );
}

/** The pools table, as `status` and `pool list` print it. */
export function printPools(pools: readonly PoolView[]): void {
  printTable(
    ["POOL", "MEDIA", "CAPACITY", "WRITTEN", "FREE", "ARCHIVES", "NODES"],
    pools.map((p) => [p.name, p.media.join(",") || "any", formatSize(p.capacityBytes), formatSize(p.writtenBytes), formatSize(p.freeBytes), String(p.archives), String(p.nodes)]),
    "no pools",
  );
}
