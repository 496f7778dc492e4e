// Starting, stopping and initialising a node from the CLI's side: spawning the daemon in the
// background, waiting until it answers, and creating a data directory. The daemon itself is in
// daemon.ts; this file runs in the short-lived CLI process.
import { spawn } from "node:child_process";
import { missingAllocatorEnv } from "./allocator.ts";
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createClusterCa, newKeyPair, signNodeCertificate } from "../cluster/ca.ts";
import { fetchPinnedCa, requestJoin } from "../cluster/join.ts";
import { parseToken } from "../cluster/token.ts";
import { setCrc32cScratchDir } from "../util/crc32c.ts";
import { ControlClient } from "../control/client.ts";
import type { StatusView } from "../control/protocol.ts";
import { Archive } from "../archive/archive.ts";
import { QstoraError, isErrorCode } from "../util/errors.ts";
import { defaultConfig, parseHostPort, portDefaults, renderConfig, type NodeConfig } from "./config.ts";
import { readConfigFile, type Bootstrap } from "./data-dir.ts";
import { createSecret, newId, readSecret, writeIdentity, type NodeIdentity } from "./identity.ts";
import { isDataDirLocked, readPid } from "./lock.ts";
import { dataDirPaths, type DataDirPaths } from "./paths.ts";
import { checkKeyName } from "../meta/schema.ts";
import { checkGroupName } from "../cluster/membership.ts";
import { writeGroupFile } from "./group-file.ts";

export const startTimeoutMs = 30_000;
export const stopTimeoutMs = 60_000;
const pollIntervalMs = 100;

export function controlClient(paths: DataDirPaths): ControlClient {
  const config = readConfigFile(paths);
  const hp = parseHostPort(config.api.listen);
  if (hp === null) throw new QstoraError("CONFIG_INVALID", `"api.listen" in ${paths.config} is not ADDRESS:PORT`);
  const host = hp.host === "0.0.0.0" ? "127.0.0.1" : hp.host === "::" ? "[::1]" : hp.host.includes(":") ? `[${hp.host}]` : hp.host;
  return new ControlClient(`http://${host}:${hp.port}`, readSecret(paths.secret));
}

/** The command line that runs this same program: the compiled executable, or bun + script. */
export function selfCommand(): string[] {
  const main = Bun.main;
  return main.startsWith("/$bunfs/") ? [process.execPath] : [process.execPath, main];
}

function lastStartFailure(paths: DataDirPaths, sinceBytes: number): QstoraError | null {
  let text = "";
  try {
    text = readFileSync(paths.log, "utf8").slice(sinceBytes);
  } catch {
    return null;
  }
  const lines = text.split("\n").filter((l) => l.includes(" start failed ") || l.includes("uncaught"));
  const line = lines[lines.length - 1];
  if (line === undefined) return null;
  const code = /code=(\w+)/.exec(line)?.[1];
  const error = /error=("(?:[^"\\]|\\.)*"|\S+)/.exec(line)?.[1];
  const hint = /hint=("(?:[^"\\]|\\.)*"|\S+)/.exec(line)?.[1];
  const unquote = (s: string | undefined): string | undefined => (s === undefined ? undefined : s.startsWith('"') ? (JSON.parse(s) as string) : s);
  return new QstoraError(isErrorCode(code) ? code : "INTERNAL", `the daemon did not start: ${unquote(error) ?? line}`, unquote(hint) ?? `See ${paths.log}.`);
}

/** Starts the daemon in the background and waits until its control API answers. */
export async function startBackground(paths: DataDirPaths): Promise<StatusView> {
  if (isDataDirLocked(paths.lock)) {
    throw new QstoraError("ALREADY_EXISTS", `the daemon is already running on ${paths.root} (pid ${readPid(paths.pid) ?? "?"})`, "See `qstora status`.");
  }
  const client = controlClient(paths);
  const logBytes = existsSync(paths.log) ? statSync(paths.log).size : 0;
  const out = openSync(paths.log, "a", 0o600);
  // The daemon's scratch files (Bun's cc headers among them) stay in its data directory.
  mkdirSync(paths.scratch, { recursive: true, mode: 0o700 });
  const [cmd, ...args] = selfCommand();
  const child = spawn(cmd as string, [...args, "serve", "--data-dir", paths.root], { detached: true, stdio: ["ignore", out, out], env: { ...process.env, ...missingAllocatorEnv(process.env), QSTORA_BACKGROUND: "1", TMPDIR: paths.scratch } });
  let exited: number | null = null;
  child.on("exit", (code) => {
    exited = code ?? 1;
  });
  child.unref();
  const deadline = Date.now() + startTimeoutMs;
  while (Date.now() < deadline) {
    await Bun.sleep(pollIntervalMs);
    if (exited !== null) {
      throw lastStartFailure(paths, logBytes) ?? new QstoraError("INTERNAL", `the daemon exited with status ${exited} while starting`, `See ${paths.log}.`);
    }
    try {
      const view = await client.call<StatusView>("GET", "/v1/status", undefined, { timeoutMs: 2000 });
      if (view.daemon === "running") return view;
    } catch (e) {
      if (e instanceof QstoraError && (e.code === "DAEMON_UNAVAILABLE" || e.code === "TIMEOUT")) continue;
      throw e;
    }
  }
  throw new QstoraError("TIMEOUT", `the daemon did not answer within ${startTimeoutMs / 1000} s`, `See ${paths.log}.`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Asks the daemon to stop (SIGTERM semantics) and waits for it to exit. */
export async function stopDaemon(paths: DataDirPaths): Promise<{ wasRunning: boolean }> {
  if (!isDataDirLocked(paths.lock)) return { wasRunning: false };
  const pid = readPid(paths.pid);
  if (pid !== null && processAlive(pid)) process.kill(pid, "SIGTERM");
  else await controlClient(paths).call("POST", "/v1/shutdown");
  const deadline = Date.now() + stopTimeoutMs;
  while (Date.now() < deadline) {
    if (!isDataDirLocked(paths.lock)) return { wasRunning: true };
    await Bun.sleep(pollIntervalMs);
  }
  throw new QstoraError("TIMEOUT", `the daemon (pid ${pid ?? "?"}) did not stop within ${stopTimeoutMs / 1000} s`, pid === null ? `See ${paths.log}.` : `Look at ${paths.log}; as a last resort: kill -9 ${pid} (acknowledged writes survive it).`);
}

/**
 * A data directory that holds a node (its identity, or a config left by one) is never reused:
 * the node belongs to its cluster. The message names that cluster when the identity says it.
 */
function refuseUsedDataDir(paths: DataDirPaths, hint: string): void {
  if (!existsSync(paths.identity) && !existsSync(paths.config)) return;
  let owner = "";
  try {
    const id = JSON.parse(readFileSync(paths.identity, "utf8")) as Partial<NodeIdentity>;
    if (typeof id.name === "string" && typeof id.clusterId === "string") owner = `: node ${id.name} of cluster ${id.clusterId}`;
  } catch {
    // No readable identity: the plain message below.
  }
  throw new QstoraError("ALREADY_INITIALIZED", `${paths.root} already holds a qstora node${owner}`, hint);
}

export interface InitOptions {
  dataDir: string;
  archives: Array<{ path: string; sizeBytes?: number }>;
  name: string;
  /** Fault domain (default: the node's name). */
  group?: string;
  address?: string;
  portal?: string;
  /** More portals of the portal group (portal.extra). */
  extraPortals?: string[];
  etcd?: string[];
}

/** --extra-portal (repeatable) into portal.extra: each ADDRESS:PORT, none the same as another or as portal.listen. */
function setExtraPortals(config: NodeConfig, extra: readonly string[] | undefined): void {
  if (extra === undefined || extra.length === 0) return;
  const seen = new Set([config.portal.listen]);
  for (const a of extra) {
    if (parseHostPort(a) === null) throw new QstoraError("INVALID_ARGUMENT", `--extra-portal "${a}" is not ADDRESS:PORT`, "For example --extra-portal 10.0.1.5:3260.");
    if (seen.has(a)) throw new QstoraError("INVALID_ARGUMENT", `portal ${a} is given twice`);
    seen.add(a);
  }
  config.portal.extra = [...extra];
}

/** Creates a node's data directory and formats its archives; leaves nothing behind on failure. */
export function initDataDir(options: InitOptions): { paths: DataDirPaths; identity: NodeIdentity; config: NodeConfig } {
  const paths = dataDirPaths(options.dataDir);
  refuseUsedDataDir(paths, "Use `qstora start`, or choose another --data-dir.");
  checkKeyName(options.name, "node name");
  if (options.group !== undefined) checkGroupName(options.group);
  if (options.archives.length === 0) throw new QstoraError("USAGE", "init needs at least one --archive PATH[:SIZE]");
  const config = defaultConfig({ name: options.name, ...(options.address === undefined ? {} : { address: options.address }) });
  if (options.portal !== undefined) {
    if (parseHostPort(options.portal) === null) throw new QstoraError("INVALID_ARGUMENT", `--portal "${options.portal}" is not ADDRESS:PORT`, "For example --portal 127.0.0.1:3260.");
    config.portal.listen = options.portal;
  }
  setExtraPortals(config, options.extraPortals);
  if (options.etcd !== undefined) {
    const bad = options.etcd.find((u) => !/^https?:\/\/[^/\s]+\/?$/.test(u));
    if (bad !== undefined || options.etcd.length === 0) throw new QstoraError("INVALID_ARGUMENT", `--etcd "${bad ?? ""}" is not a URL`, "For example --etcd http://10.0.0.1:2379,http://10.0.0.2:2379.");
    config.metadata = { ...config.metadata, backend: "etcd", endpoints: options.etcd };
  }
  const identity: NodeIdentity = { clusterId: newId(), nodeId: newId(), name: options.name, createdAt: new Date().toISOString() };
  const ca = createClusterCa(identity.clusterId);
  const nodeKeys = newKeyPair();
  const nodeCert = signNodeCertificate(ca, { nodeName: options.name, publicKeyPem: nodeKeys.publicKey.export({ type: "spki", format: "pem" }).toString(), altNames: [config.node.address] });
  writeDataDir(paths, { identity, config, archives: options.archives, ...(options.group === undefined ? {} : { group: options.group }), caCertPem: ca.certPem, caKeyPem: ca.keyPem, nodeKeyPem: nodeKeys.privateKeyPem, nodeCertPem: nodeCert });
  return { paths, identity, config };
}

/**
 * Writes a node's data directory and formats its archives (init and join). On any failure it
 * removes what it created and wipes the superblocks it wrote on files that existed before (they
 * keep their size but are not left claimed by a cluster that never came to be). The identity
 * file is written last: its presence means "initialised".
 */
function writeDataDir(
  paths: DataDirPaths,
  d: { identity: NodeIdentity; config: NodeConfig; archives: Array<{ path: string; sizeBytes?: number }>; group?: string; caCertPem: string; caKeyPem?: string; nodeKeyPem: string; nodeCertPem: string },
): void {
  const createdDir = !existsSync(paths.root);
  const createdFiles: string[] = [];
  const formattedExisting: string[] = [];
  const opened: Archive[] = [];
  const writeNew = (path: string, text: string, mode: number): void => {
    writeFileSync(path, text, { mode, flag: "wx" });
    createdFiles.push(path);
  };
  try {
    mkdirSync(paths.root, { recursive: true, mode: 0o700 });
    chmodSync(paths.root, 0o700);
    setCrc32cScratchDir(paths.scratch);
    for (const spec of d.archives) {
      const existed = existsSync(spec.path);
      opened.push(Archive.create({ path: spec.path, clusterId: d.identity.clusterId, ...(spec.sizeBytes === undefined ? {} : { sizeBytes: spec.sizeBytes }) }));
      (existed ? formattedExisting : createdFiles).push(spec.path);
    }
    writeNew(paths.config, renderConfig(d.config), 0o644);
    createSecret(paths.secret);
    createdFiles.push(paths.secret);
    writeNew(paths.caCert, d.caCertPem, 0o644);
    if (d.caKeyPem !== undefined) writeNew(paths.caKey, d.caKeyPem, 0o600);
    writeNew(paths.nodeKey, d.nodeKeyPem, 0o600);
    writeNew(paths.nodeCert, d.nodeCertPem, 0o644);
    writeNew(paths.bootstrap, JSON.stringify({ archives: d.archives.map((a) => a.path), ...(d.group === undefined ? {} : { group: d.group }) } satisfies Bootstrap), 0o600);
    writeIdentity(paths.identity, d.identity);
  } catch (e) {
    for (const a of opened) a.close();
    for (const f of createdFiles) rmSync(f, { force: true });
    for (const f of formattedExisting) Archive.wipe(f, { clusterId: d.identity.clusterId });
    if (createdDir) rmSync(paths.root, { recursive: true, force: true });
    throw e;
  }
  for (const a of opened) a.close();
}

export interface JoinOptions {
  dataDir: string;
  /** A member's cluster listener, ADDRESS[:PORT] (port 7326 by default). */
  member: string;
  token: string;
  archives: Array<{ path: string; sizeBytes?: number }>;
  name: string;
  group?: string;
  address?: string;
  portal?: string;
  /** More portals of the portal group (portal.extra). */
  extraPortals?: string[];
}

/**
 * Joins a cluster: checks the member's CA against the token before sending anything secret,
 * gets this node's certificate and ids, then writes the data directory and formats the archives.
 * Nothing is written locally before the member accepts, and on a local failure afterwards what
 * was written is removed again.
 */
export async function joinDataDir(options: JoinOptions): Promise<{ paths: DataDirPaths; identity: NodeIdentity; config: NodeConfig }> {
  const paths = dataDirPaths(options.dataDir);
  refuseUsedDataDir(paths, "A node belongs to one cluster: to move it, `qstora node remove` it there and use a new --data-dir.");
  checkKeyName(options.name, "node name");
  if (options.group !== undefined) checkGroupName(options.group);
  if (options.archives.length === 0) throw new QstoraError("USAGE", "join needs at least one --archive PATH[:SIZE]");
  for (const a of options.archives) {
    const owner = Archive.probe(a.path);
    if (owner !== null) throw new QstoraError("ARCHIVE_INVALID", `${a.path} is already archive ${owner.archiveId} of cluster ${owner.clusterId}`);
  }
  const token = parseToken(options.token);
  const member = parseHostPort(options.member) ?? parseHostPort(`${options.member}:${portDefaults.cluster}`);
  if (member === null) throw new QstoraError("INVALID_ARGUMENT", `"${options.member}" is not ADDRESS[:PORT]`);
  const memberUrl = `https://${member.host}:${member.port}`;
  const caPem = await fetchPinnedCa(memberUrl, token);
  const config = defaultConfig({ name: options.name, ...(options.address === undefined ? {} : { address: options.address }) });
  if (options.portal !== undefined) {
    if (parseHostPort(options.portal) === null) throw new QstoraError("INVALID_ARGUMENT", `--portal "${options.portal}" is not ADDRESS:PORT`);
    config.portal.listen = options.portal;
  }
  setExtraPortals(config, options.extraPortals);
  const nodeKeys = newKeyPair();
  const answer = await requestJoin(memberUrl, caPem, { token: options.token, name: options.name, ...(options.group === undefined ? {} : { group: options.group }), address: config.node.address, publicKeyPem: nodeKeys.publicKey.export({ type: "spki", format: "pem" }).toString() });
  // A member of the embedded group runs its own store (meta/group.json names the group); a client
  // reaches the members; with an external etcd, every node uses that etcd.
  const md = answer.metadata;
  if (md.role === "member") config.metadata = { ...config.metadata, backend: "embedded", endpoints: [] };
  else config.metadata = { ...config.metadata, backend: md.role === "external" ? "etcd" : "cluster", endpoints: answer.metadataEndpoints };
  const identity: NodeIdentity = { clusterId: answer.clusterId, nodeId: answer.nodeId, name: options.name, createdAt: new Date().toISOString() };
  writeDataDir(paths, { identity, config, archives: options.archives, ...(options.group === undefined ? {} : { group: options.group }), caCertPem: answer.caPem, nodeKeyPem: nodeKeys.privateKeyPem, nodeCertPem: answer.certPem });
  if (md.role === "member") writeGroupFile(paths, { clusterKey: md.clusterKey, members: md.group });
  return { paths, identity, config };
}
