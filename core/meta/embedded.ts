// The embedded metadata store: antietcd (npm `antietcd` 1.3.1, a Raft-replicated etcd
// replacement) running inside this process and answering the etcd v3 JSON API, persistent in a
// directory (`<data-dir>/meta/antietcd.json.gz`).
//
// Durability, read from antipersistence.js and measured (see the conformance suite): with
// persist_interval 0 (antietcd's default, set explicitly here) every change dumps the whole
// database as gzipped JSON to `<file>.tmp`, fsyncs it and renames it over the file BEFORE the
// request is answered; the in-memory tree changes first, so a concurrent reader may see a write
// that a crash then loses, but an acknowledged write survives SIGKILL. antietcd does not fsync
// the directory after the rename, so a power cut could bring back the previous file; this module
// adds that fsync, and lets concurrent writes share one dump (group commit). Keys attached to leases and the leases themselves are never persisted. A
// failed persist makes antietcd call process.exit(1) (it cannot answer truthfully any more).
// Cost: one full dump per change, so keep the store small (configuration, never per-I/O state).
//
// It must never listen beyond loopback or a Unix socket: antietcd authenticates nobody itself.
// What the network sees is the gate (tls-gate.ts) in front of it, which demands a client
// certificate of the cluster CA. In a Raft group (`cluster`), antietcd dials its peers' gates
// with this node's certificate (`peerTls`) and presents the shared cluster key to them.
import { open } from "node:fs/promises";
import { mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { gunzipSync, gzipSync } from "node:zlib";
import { createServer } from "node:net";
import { isIP } from "node:net";
import { dirname, join } from "node:path";
import { assert } from "../util/assert.ts";
import { QstoraError } from "../util/errors.ts";
import { silentLogger, type Logger } from "../util/log.ts";
import type { PeerTls } from "../net/peer.ts";
import { AntiEtcd, givePeerTls, type AntiEtcdServer } from "./antietcd-patches.ts";

export interface EmbeddedClusterOptions {
  /** This node's id in the Raft group; a key of `members`. */
  readonly nodeId: string;
  /** Shared secret that peers present to each other. */
  readonly clusterKey: string;
  /** Every member's id and client URL, this node included (three nodes form the group). */
  readonly members: Readonly<Record<string, string>>;
  /** This node's certificate for dialling the peers' gates. */
  readonly peerTls: PeerTls;
  /**
   * Raises the term stored in the data file to at least this before starting. The member whose
   * data seeds a new group sets 1, so that its state (term 1) wins the first resync over the
   * empty joiners (term 0) whichever node leads (see core/cluster/metadata-members.ts).
   */
  readonly minStoredTerm?: number;
}

/**
 * Raft timing. Shorter than antietcd's defaults (5 s election, 1 s heartbeat) so that a dead
 * leader is replaced within about 3 s, which the manager's 10 s take-over depends on.
 */
export const raftElectionTimeoutMs = 2_000;
export const raftHeartbeatTimeoutMs = 500;
/** How long a request waits for a quorum before antietcd answers 503 (below the client's timeout). */
export const raftWaitQuorumTimeoutMs = 2_500;

export interface EmbeddedMetaOptions {
  /** Directory of the persistent state, created if missing (`<data-dir>/meta`). */
  readonly dir: string;
  /** Listen address, loopback only. Default 127.0.0.1. */
  readonly host?: string;
  /** Listen on this Unix socket instead of host and port (removed first if left by a crash). */
  readonly socketPath?: string;
  /** Listen port; 0 picks a free one. */
  readonly port: number;
  readonly cluster?: EmbeddedClusterOptions;
  /** How many revisions of deletions antietcd remembers for resuming watches. */
  readonly compactRevisions?: number;
  readonly logger?: Logger;
}

export interface EmbeddedMeta {
  /** Client URL, e.g. http://127.0.0.1:7327. */
  readonly url: string;
  readonly port: number;
  readonly dataFile: string;
  /**
   * Changes the Raft group's members without a restart (leases and watches stay): TinyRaft takes
   * the new node list, new peers are dialled, a removed peer's connection is closed and not
   * dialled again. Only for a store started with `cluster`.
   */
  setMembers(members: Readonly<Record<string, string>>): void;
  /** Waits for requests in flight, persists, closes every connection. Idempotent. */
  stop(): Promise<void>;
}

export const dataFileName = "antietcd.json.gz";
/** antietcd's default; a watch resuming from further back than this is told it is compacted. */
export const compactRevisionsDefault = 1000;
/** Time allowed to bind the listening socket. */
export const listenTimeoutMs = 5_000;
/** Time allowed to release the listening socket on stop. */
export const closeTimeoutMs = 2_000;
/** Free-port picking can race with another process: try a few ports before giving up. */
export const portPickAttemptsMax = 8;

export function isLoopbackHost(host: string): boolean {
  if (host === "localhost" || host === "::1") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

export async function startEmbeddedMeta(options: EmbeddedMetaOptions): Promise<EmbeddedMeta> {
  const host = options.host ?? "127.0.0.1";
  const logger = options.logger ?? silentLogger;
  assert(Number.isInteger(options.port) && options.port >= 0 && options.port <= 65535, `port ${options.port} out of range`);
  if (!isLoopbackHost(host)) {
    throw new QstoraError(
      "CONFIG_INVALID",
      `the embedded metadata store would listen on ${host}, which is not a loopback address`,
      "Set metadata.listen to 127.0.0.1:PORT; the network reaches the store only through its TLS gate.",
    );
  }
  if (options.cluster !== undefined) assert(options.cluster.members[options.cluster.nodeId] !== undefined, "this node must be a member of its metadata group");
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const dataFile = join(options.dir, dataFileName);
  if (options.cluster?.minStoredTerm !== undefined) await raiseStoredTerm(dataFile, options.cluster.minStoredTerm);
  if (options.socketPath !== undefined) {
    assert(options.socketPath.length <= socketPathBytesMax, `socket path longer than ${socketPathBytesMax} bytes`);
    rmSync(options.socketPath, { force: true });
    const server = await startOn({ host, port: options.socketPath, dataFile, options });
    logger.info("embedded metadata store started", { socket: options.socketPath, dataFile });
    return { url: `unix:${options.socketPath}`, port: 0, dataFile, setMembers: memberSetter(server, options), stop: stopper(server, logger) };
  }

  let lastError: QstoraError | undefined;
  const attempts = options.port === 0 ? portPickAttemptsMax : 1;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = options.port === 0 ? await pickFreePort(host) : options.port;
    await checkPortFree(host, port);
    try {
      const server = await startOn({ host, port, dataFile, options });
      const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
      logger.info("embedded metadata store started", { url, dataFile });
      return { url, port, dataFile, setMembers: memberSetter(server, options), stop: stopper(server, logger) };
    } catch (e) {
      if (!(e instanceof QstoraError) || e.code !== "IN_USE") throw e;
      lastError = e;
    }
  }
  assert(lastError !== undefined);
  throw lastError;
}

/** sun_path holds 108 bytes with its terminating zero. */
export const socketPathBytesMax = 100;

async function raiseStoredTerm(dataFile: string, term: number): Promise<void> {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(gunzipSync(readFileSync(dataFile)).toString("utf8")) as Record<string, unknown>;
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") doc = {};
    else throw new QstoraError("IO_ERROR", `the embedded metadata store could not read ${dataFile}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const stored = typeof doc["term"] === "number" ? doc["term"] : 0;
  if (stored >= term) return;
  doc["term"] = term;
  const tmp = `${dataFile}.tmp`;
  const handle = await open(tmp, "w", 0o600);
  try {
    await handle.writeFile(gzipSync(JSON.stringify(doc)));
    await handle.sync();
  } finally {
    await handle.close();
  }
  renameSync(tmp, dataFile);
  const dir = await open(dirname(dataFile), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

async function startOn(args: { host: string; port: number | string; dataFile: string; options: EmbeddedMetaOptions }): Promise<AntiEtcdServer> {
  const { host, port, dataFile, options } = args;
  const cfg: Record<string, unknown> = {
    ip: host,
    port,
    data: dataFile,
    // 0: persist and fsync on every change before answering (see the header).
    persist_interval: 0,
    // Identity filter: with one set, antietcd skips the dump for changes to leased keys (which
    // it never persists anyway), so heartbeats don't rewrite the database every second.
    persist_filter: (_key: string, value: unknown) => value,
    compact_revisions: options.compactRevisions ?? compactRevisionsDefault,
    use_base64: 1,
    // Strict serializable reads once there is a group; alone it changes nothing.
    stale_read: 0,
  };
  if (options.cluster !== undefined) {
    cfg["node_id"] = options.cluster.nodeId;
    cfg["cluster_key"] = options.cluster.clusterKey;
    cfg["cluster"] = { ...options.cluster.members };
    cfg["election_timeout"] = raftElectionTimeoutMs;
    cfg["heartbeat_timeout"] = raftHeartbeatTimeoutMs;
    cfg["wait_quorum_timeout"] = raftWaitQuorumTimeoutMs;
  }
  const srv = new AntiEtcd(cfg);
  if (options.cluster !== undefined) givePeerTls(srv, options.cluster.peerTls);
  try {
    await srv.start();
  } catch (e) {
    throw new QstoraError("IO_ERROR", `the embedded metadata store could not load ${dataFile}: ${e instanceof Error ? e.message : String(e)}`, "Restore the file from a backup, or move it away to start with an empty store.");
  }
  addGroupCommit(srv, options.dir);
  const server = srv.server;
  assert(server !== undefined, "antietcd started without an HTTP server");
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new QstoraError("TIMEOUT", `the embedded metadata store did not listen on ${host}:${port} within ${listenTimeoutMs} ms`)), listenTimeoutMs);
    const done = (e?: Error): void => {
      clearTimeout(timer);
      if (e === undefined) resolve();
      else reject(listenError(host, typeof port === "number" ? port : 0, e));
    };
    if (server.listening) done();
    else {
      server.once("listening", () => done());
      server.once("error", (e: Error) => done(e));
    }
  }).catch(async (e: unknown) => {
    await closeServer(srv);
    throw e;
  });
  return srv;
}

/**
 * Wraps antietcd's persist() twice. Durability: antietcd renames its new file into place without
 * syncing the directory, so sync it. Group commit: antietcd dumps the whole database once per
 * change, one after another, so N concurrent writes cost N full dumps; here a write that arrives
 * while a dump runs waits for the next dump, which one caller starts for all of them. That is
 * safe because antietcd changes its in-memory tree before it asks to persist, so any dump that
 * starts after the request includes the change.
 */
function addGroupCommit(srv: AntiEtcdServer, dir: string): void {
  const persistence = srv.persistence;
  assert(persistence !== null, "antietcd started without persistence");
  const persistOnce = persistence.persist.bind(persistence);
  const dumpAndSync = async (): Promise<void> => {
    await persistOnce();
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  };
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  const start = (): Promise<void> => {
    const p = dumpAndSync().finally(() => {
      if (running === p) running = undefined;
    });
    running = p;
    return p;
  };
  persistence.persist = () => {
    if (next !== undefined) return next;
    if (running === undefined) return start();
    next = running.then(
      () => {
        next = undefined;
        return start();
      },
      () => {
        next = undefined;
        return start();
      },
    );
    return next;
  };
}

function memberSetter(srv: AntiEtcdServer, options: EmbeddedMetaOptions): (members: Readonly<Record<string, string>>) => void {
  return (members) => {
    const cluster = srv.cluster;
    const self = options.cluster?.nodeId;
    assert(cluster !== null && self !== undefined, "only a Raft group changes members");
    assert(members[self] !== undefined, "this node must stay a member of its group");
    const before = { ...(srv.cfg["cluster"] as Record<string, string>) };
    srv.cfg["cluster"] = { ...members };
    cluster.raft.setNodes(Object.keys(members));
    for (const id of Object.keys(before)) {
      if (members[id] !== undefined || id === self) continue;
      const clientId = cluster.cluster_connections[id];
      if (clientId !== undefined) srv.clients[String(clientId)]?.socket.terminate();
    }
    for (const id of Object.keys(members)) if (before[id] === undefined) cluster.connectToNode(id);
  };
}

function stopper(srv: AntiEtcdServer, logger: Logger): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () => {
    stopping ??= (async () => {
      await srv.stop();
      srv.cluster?.raft.stop();
      await closeServer(srv);
      logger.info("embedded metadata store stopped");
    })();
    return stopping;
  };
}

/**
 * antietcd's stop() persists but leaves its sockets and lease timers: close them. Its websocket
 * clients are closed through its own table (under Bun, the ws server does not track them), and
 * Bun's http server never calls close()'s callback once a connection was upgraded, so this waits
 * for the listening socket to go instead, bounded.
 */
async function closeServer(srv: AntiEtcdServer): Promise<void> {
  for (const client of Object.values(srv.clients)) client.socket.terminate();
  srv.wss?.close();
  const server = srv.server;
  if (server !== undefined && server.listening) {
    server.close();
    server.closeAllConnections();
    const deadline = Date.now() + closeTimeoutMs;
    while (server.listening && Date.now() < deadline) await Bun.sleep(5);
    if (server.listening) throw new QstoraError("TIMEOUT", `the embedded metadata store did not stop listening within ${closeTimeoutMs} ms`);
  }
  srv.etctree.destroy();
}

function listenError(host: string, port: number, e: Error): QstoraError {
  const code = (e as Error & { code?: unknown }).code;
  if (code === "EADDRINUSE") {
    return new QstoraError("IN_USE", `the metadata address ${host}:${port} is in use by another program`, "Stop that program or change metadata.listen in qstora.toml.");
  }
  return new QstoraError("CONFIG_INVALID", `cannot listen on ${host}:${port} for metadata: ${e.message}`, "Check metadata.listen in qstora.toml.");
}

/** antietcd treats port 0 as "default 2379": ask the kernel for a free port instead. */
function pickFreePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", (e: Error) => reject(listenError(host, 0, e)));
    probe.listen(0, host, () => {
      const addr = probe.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      probe.close(() => (port > 0 ? resolve(port) : reject(new QstoraError("INTERNAL", "the kernel gave no port"))));
    });
  });
}

/** Fails with IN_USE before antietcd tries: it would only log the error and never answer. */
function checkPortFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", (e: Error) => reject(listenError(host, port, e)));
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}
