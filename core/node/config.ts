// The node's configuration file, <data-dir>/qstora.toml: its keys, defaults, validation and
// rendering. Every key is declared once in `configKeys` (docs/CONFIG.md documents each; a test
// checks that). Pure: parsing and rendering text, no file access.
import { parse, stringify } from "smol-toml";
import { QstoraError } from "../util/errors.ts";

/**
 * A replicated LUN's coordinator node silent this long is replaced (core/cluster/takeover.ts):
 * longer than a daemon's restart, so a restart or an upgrade keeps its LUNs.
 */
export const takeoverAfterMsDefault = 5_000;

export type LogLevelName = "debug" | "info" | "warn" | "error";

export interface NodeConfig {
  node: { name: string; address: string };
  /** nop_interval_s / nop_timeout_s: the target's NOP-In pings (core/iscsi/connection.ts, PingSettings). */
  /** extra: more portals of the same portal group (other NICs), ADDRESS:PORT each. */
  portal: { listen: string; extra: string[]; nop_interval_s: number; nop_timeout_s: number };
  api: { listen: string };
  metadata: { backend: "embedded" | "etcd" | "cluster"; endpoints: string[]; listen: string };
  cluster: { listen: string };
  peer: { listen: string };
  log: { level: LogLevelName };
  health: { heartbeat_interval_ms: number; suspect_after_ms: number; down_after_ms: number; takeover_after_ms: number; archive_nearfull_ratio: number; archive_full_ratio: number };
}

export const portDefaults = { portal: 3260, api: 7325, cluster: 7326, metadata: 7327, peer: 7328 } as const;

export interface ConfigKey {
  readonly path: string;
  readonly description: string;
  readonly check: (value: unknown) => string | null;
}

const isString = (v: unknown): string | null => (typeof v === "string" && v.length > 0 ? null : "must be a non-empty string");
const isHostPort = (v: unknown): string | null => (typeof v === "string" && parseHostPort(v) !== null ? null : 'must be "ADDRESS:PORT", e.g. "127.0.0.1:3260"');
/** portal.extra's longest list: with portal.listen, core/iscsi/server.ts's portalsMax (64). */
const portalExtraMax = 63;
const isHostPortList = (v: unknown): string | null =>
  Array.isArray(v) && v.length <= portalExtraMax && v.every((a) => typeof a === "string" && parseHostPort(a) !== null) ? null : `must be a list of at most ${portalExtraMax} "ADDRESS:PORT", e.g. ["10.0.1.5:3260"]`;
const isAddress = (v: unknown): string | null => (typeof v === "string" && /^[0-9a-zA-Z.:-]+$/.test(v) ? null : "must be an IP address or host name");
const oneOf = (...allowed: string[]) => (v: unknown): string | null => (typeof v === "string" && allowed.includes(v) ? null : `must be one of ${allowed.map((a) => `"${a}"`).join(", ")}`);
const isMs = (v: unknown): string | null => (typeof v === "number" && Number.isInteger(v) && v >= 100 && v <= 3_600_000 ? null : "must be a whole number of milliseconds from 100 to 3600000");
const isRatio = (v: unknown): string | null => (typeof v === "number" && v > 0 && v < 1 ? null : "must be a number between 0 and 1, e.g. 0.85");
const isSeconds = (min: number, max: number) => (v: unknown): string | null =>
  typeof v === "number" && Number.isInteger(v) && v >= min && v <= max ? null : `must be a whole number of seconds from ${min} to ${max}`;
const isUrlList = (v: unknown): string | null =>
  Array.isArray(v) && v.every((u) => typeof u === "string" && /^https?:\/\/[^/\s]+\/?$/.test(u)) ? null : 'must be a list of URLs like ["http://10.0.0.1:2379"]';

export const configKeys: readonly ConfigKey[] = [
  { path: "node.name", description: "The node's name, shown by status; defaults to the host name.", check: isString },
  { path: "node.address", description: "The address every listener of this node uses unless its own key says otherwise.", check: isAddress },
  { path: "portal.listen", description: "The iSCSI portal, ADDRESS:PORT (default: node.address:3260).", check: isHostPort },
  { path: "portal.extra", description: "More iSCSI portals of the same portal group (a node with several NICs), a list of ADDRESS:PORT (default: none).", check: isHostPortList },
  { path: "portal.nop_interval_s", description: "Seconds an iSCSI connection may be silent before the target pings it with a NOP-In (0: no pings).", check: isSeconds(0, 3600) },
  { path: "portal.nop_timeout_s", description: "Seconds a NOP-In ping may go unanswered before the target drops the session and ends its commands.", check: isSeconds(1, 3600) },
  { path: "api.listen", description: "The control API (REST, token-authenticated) used by the CLI, ADDRESS:PORT (default: node.address:7325).", check: isHostPort },
  { path: "metadata.backend", description: '"embedded" (this node holds the embedded antietcd, alone or as one of its Raft group; see meta/group.json), "etcd" (an external etcd cluster) or "cluster" (a client of the embedded group of other nodes).', check: oneOf("embedded", "etcd", "cluster") },
  { path: "metadata.endpoints", description: "For the etcd and cluster backends: the client URLs of the metadata store.", check: isUrlList },
  { path: "metadata.listen", description: "For the embedded backend: the metadata gate, ADDRESS:PORT (TLS; only clients with a certificate of the cluster CA get through; default: node.address:7327).", check: isHostPort },
  { path: "cluster.listen", description: "The node-to-node listener (HTTPS with the cluster CA; joins are answered there), ADDRESS:PORT (default: node.address:7326).", check: isHostPort },
  { path: "peer.listen", description: "The node-to-node transport (replication traffic; frames authenticated with the cluster CA's certificates), ADDRESS:PORT (default: node.address:7328).", check: isHostPort },
  { path: "health.heartbeat_interval_ms", description: "How often this node writes its heartbeat to the metadata store.", check: isMs },
  { path: "health.suspect_after_ms", description: "A node whose heartbeat has not changed for this long is shown suspect (NODE_SUSPECT).", check: isMs },
  { path: "health.down_after_ms", description: "A node whose heartbeat has not changed for this long is shown down (NODE_DOWN); also sets this node's heartbeat lease.", check: isMs },
  { path: "health.takeover_after_ms", description: "On the manager: a replicated LUN whose coordinator node's heartbeat has not changed for this long is given to another node (0: never).", check: (v) => (v === 0 ? null : isMs(v)) },
  { path: "health.archive_nearfull_ratio", description: "Used fraction of an archive above which ARCHIVE_NEARFULL warns.", check: isRatio },
  { path: "health.archive_full_ratio", description: "Used fraction of an archive above which ARCHIVE_FULL is an error.", check: isRatio },
  { path: "log.level", description: 'Least severity written to qstora.log: "debug", "info", "warn" or "error".', check: oneOf("debug", "info", "warn", "error") },
];

export function parseHostPort(text: string): { host: string; port: number } | null {
  const m = /^\[?([0-9a-zA-Z.:-]+?)\]?:(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1] as string, port };
}

export function defaultConfig(options: { name: string; address?: string }): NodeConfig {
  const address = options.address ?? "127.0.0.1";
  return {
    node: { name: options.name, address },
    portal: { listen: `${address}:${portDefaults.portal}`, extra: [], nop_interval_s: 5, nop_timeout_s: 20 },
    api: { listen: `${address}:${portDefaults.api}` },
    // The metadata gate: TLS with client certificates of the cluster CA, in front of antietcd on
    // a Unix socket (core/meta/tls-gate.ts).
    metadata: { backend: "embedded", endpoints: [], listen: `${address}:${portDefaults.metadata}` },
    cluster: { listen: `${address}:${portDefaults.cluster}` },
    peer: { listen: `${address}:${portDefaults.peer}` },
    log: { level: "info" },
    health: { heartbeat_interval_ms: 1000, suspect_after_ms: 3000, down_after_ms: 10_000, takeover_after_ms: takeoverAfterMsDefault, archive_nearfull_ratio: 0.85, archive_full_ratio: 0.97 },
  };
}

function lookup(doc: Record<string, unknown>, path: string): unknown {
  let node: unknown = doc;
  for (const part of path.split(".")) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** Parses and validates qstora.toml text. Unknown keys and bad values throw CONFIG_INVALID naming the key. */
export function parseConfig(text: string, file = "qstora.toml"): NodeConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    const reason = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new QstoraError("CONFIG_INVALID", `${file} is not valid TOML: ${reason}`, "Fix the file, or move it away and run `qstora init` again.");
  }
  const known = new Set(configKeys.map((k) => k.path));
  const walk = (obj: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(obj)) {
      const path = prefix === "" ? k : `${prefix}.${k}`;
      if (typeof v === "object" && v !== null && !Array.isArray(v) && !known.has(path)) walk(v as Record<string, unknown>, path);
      else if (!known.has(path)) throw new QstoraError("CONFIG_INVALID", `${file}: unknown key "${path}"`, "See docs/CONFIG.md for the keys qstora knows.");
    }
  };
  walk(doc, "");
  const name = lookup(doc, "node.name");
  const address = lookup(doc, "node.address");
  const base = defaultConfig({
    name: typeof name === "string" ? name : "node",
    ...(typeof address === "string" ? { address } : {}),
  });
  for (const key of configKeys) {
    const value = lookup(doc, key.path);
    if (value === undefined) continue;
    const problem = key.check(value);
    if (problem !== null) throw new QstoraError("CONFIG_INVALID", `${file}: "${key.path}" ${problem} (found ${JSON.stringify(value)})`);
    const [section, field] = key.path.split(".") as [keyof NodeConfig, string];
    (base[section] as Record<string, unknown>)[field] = value;
  }
  if (base.metadata.backend !== "embedded" && base.metadata.endpoints.length === 0) {
    throw new QstoraError("CONFIG_INVALID", `${file}: "metadata.endpoints" must list at least one URL when metadata.backend is "${base.metadata.backend}"`);
  }
  const h = base.health;
  if (!(h.heartbeat_interval_ms < h.suspect_after_ms && h.suspect_after_ms < h.down_after_ms)) {
    throw new QstoraError("CONFIG_INVALID", `${file}: health.heartbeat_interval_ms < health.suspect_after_ms < health.down_after_ms must hold (found ${h.heartbeat_interval_ms}, ${h.suspect_after_ms}, ${h.down_after_ms})`);
  }
  if (!(h.archive_nearfull_ratio < h.archive_full_ratio)) throw new QstoraError("CONFIG_INVALID", `${file}: health.archive_nearfull_ratio must be below health.archive_full_ratio`);
  return base;
}

export function renderConfig(config: NodeConfig): string {
  const header = "# qstora node configuration. Every key is described in docs/CONFIG.md.\n# Changes take effect at the next `qstora restart`.\n\n";
  return header + stringify(config) + "\n";
}
