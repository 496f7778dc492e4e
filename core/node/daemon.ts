// `qstora serve`: the daemon. Wires the metadata store, the archives (through NodeService), the
// iSCSI portal and the control API together, and owns the process's lifetime.
//
// Ordering contract:
// - start: lock the data dir, then metadata, then archives and state, then the portal, then the
//   control API (the CLI takes a control answer to mean "ready to serve I/O").
// - SIGTERM/SIGINT: stop the control API, close the portal (finishing in-flight commands), flush
//   and close the archives, stop metadata, release the lock; exit 0.
// - SIGKILL at any moment: the archives' own crash consistency and the lock's release by the
//   kernel make the next start clean.
import { appendFileSync, existsSync, readFileSync, unlinkSync } from "node:fs";
import { hostname } from "node:os";
import { QstoraError, isQstoraError } from "../util/errors.ts";
import { createLogger, type Logger } from "../util/log.ts";
import { buildCommit, version } from "../version.ts";
import { startControlServer } from "../control/server.ts";
import type { StatusView } from "../control/protocol.ts";
import { startIscsiServer, type IscsiServer } from "../iscsi/server.ts";
import type { MetaStore } from "../meta/store.ts";
import { openMetaStore } from "./meta-open.ts";
import { parseHostPort } from "./config.ts";
import { readIdentity, readSecret } from "./identity.ts";
import { tryLockDataDir } from "./lock.ts";
import { dataDirPaths } from "./paths.ts";
import { keys, type ClusterRecord, type NodeRecord } from "./records.ts";
import { NodeService } from "./service.ts";
import { controlRoutes } from "./routes.ts";
import { readConfigFile, type Bootstrap } from "./data-dir.ts";
import { judgeHealth } from "../cluster/health.ts";
import { caFingerprint } from "../cluster/ca.ts";
import { availableEcKernels } from "../ec/engine.ts";
import { setCrc32cScratchDir } from "../util/crc32c.ts";
import { caPath, joinPath, type JoinRequest } from "../cluster/join.ts";
import { keepLeaseAlive } from "../meta/documents.ts";
import { answerJoin } from "./join-member.ts";
import { loadReservations, reservationPersistence } from "./reservations.ts";
import { LunStateTable } from "../scsi/lun-state.ts";

/** A node whose heartbeat lease lapses for this long is shown down. */
const heartbeatTtlSeconds = 10;

/** How often the daemon checks that the metadata store answers (for health). */
const metaProbeIntervalMs = 5000;

function listenAddress(text: string, key: string): { host: string; port: number } {
  const hp = parseHostPort(text);
  if (hp === null) throw new QstoraError("CONFIG_INVALID", `"${key}" is not ADDRESS:PORT`);
  return hp;
}

function bindError(e: unknown, what: string, address: string): QstoraError {
  const code = (e as { code?: string } | null)?.code;
  if (code === "EADDRINUSE") return new QstoraError("IN_USE", `the ${what} address ${address} is in use by another program`, `Stop that program or change the address in qstora.toml.`);
  if (code === "EADDRNOTAVAIL") return new QstoraError("CONFIG_INVALID", `the ${what} address ${address} is not an address of this host`);
  if (code === "EACCES") return new QstoraError("PERMISSION_DENIED", `not allowed to listen on ${address} (ports below 1024 need privileges)`);
  return isQstoraError(e) ? e : new QstoraError("IO_ERROR", `cannot listen on ${address} for the ${what}: ${e instanceof Error ? e.message : String(e)}`);
}

export async function runDaemon(options: { dataDir: string; foreground: boolean }): Promise<void> {
  const paths = dataDirPaths(options.dataDir);
  const identity = readIdentity(paths.identity);
  const config = readConfigFile(paths);
  const secret = readSecret(paths.secret);
  const portalAddr = listenAddress(config.portal.listen, "portal.listen");
  const apiAddr = listenAddress(config.api.listen, "api.listen");

  // qstora writes only in its own directories: scratch files (the crc32c kernel's) go here.
  setCrc32cScratchDir(paths.scratch);
  const lock = tryLockDataDir(paths.lock, paths.pid);
  if (lock === null) throw new QstoraError("LOCKED", `another qstora daemon is running on ${paths.root}`, "Use `qstora status`, or `qstora stop` first.");

  const sinks: Array<(line: string) => void> = [(line) => appendFileSync(paths.log, `${line}\n`)];
  if (options.foreground) sinks.push((line) => process.stderr.write(`${line}\n`));
  const logger: Logger = createLogger({ sinks, level: config.log.level, component: "qstora" });
  const startedAt = Date.now();
  logger.info("starting", { version, commit: buildCommit, pid: process.pid, node: identity.name, dataDir: paths.root });

  let meta: (MetaStore & { shutdown(): Promise<void> }) | undefined;
  let service: NodeService | undefined;
  let iscsi: IscsiServer | undefined;
  let control: { stop(): void } | undefined;
  let clusterApi: { stop(): void } | undefined;
  let heartbeat: { stop(): void } | undefined;
  let stopping = false;

  const shutdown = async (reason: string, exitCode = 0): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info("stopping", { reason });
    control?.stop();
    clusterApi?.stop();
    heartbeat?.stop();
    try {
      await iscsi?.close();
    } catch (e) {
      logger.error("portal close failed", { error: String(e) });
    }
    service?.close();
    try {
      await meta?.shutdown();
    } catch (e) {
      logger.error("metadata close failed", { error: String(e) });
    }
    logger.info("stopped");
    lock.release();
    process.exit(exitCode);
  };

  try {
    meta = await openMetaStore({ config, dir: paths.meta, logger: logger.child("meta") });
    const cluster = await meta.get(keys.cluster);
    if (cluster === undefined) {
      const rec: ClusterRecord = { clusterId: identity.clusterId, createdAt: new Date().toISOString(), formatVersion: 1 };
      await meta.put(keys.cluster, JSON.stringify(rec));
    } else if ((JSON.parse(cluster.value) as ClusterRecord).clusterId !== identity.clusterId) {
      throw new QstoraError("CONFIG_INVALID", "the metadata store belongs to another cluster", "Check metadata.endpoints in qstora.toml.");
    }
    service = new NodeService(meta, identity, config.portal.listen, logger.child("node"));
    await service.load();
    if (existsSync(paths.bootstrap)) {
      const boot = JSON.parse(readFileSync(paths.bootstrap, "utf8")) as Bootstrap;
      for (const path of boot.archives) await service.adoptArchive(path);
      unlinkSync(paths.bootstrap);
      logger.info("bootstrap done", { archives: boot.archives.length });
    }
    const nodeRec: NodeRecord = { id: identity.nodeId, name: identity.name, portal: config.portal.listen, api: config.api.listen, version, startedAt: new Date(startedAt).toISOString() };
    await meta.put(keys.node(identity.nodeId), JSON.stringify(nodeRec));

    // Persistent reservations with APTPL come back from the metadata store.
    const reservations = await loadReservations(meta, logger);
    const lunStates = new LunStateTable(reservationPersistence(meta, reservations, logger.child("reservations")));
    try {
      const ping = { idleMs: config.portal.nop_interval_s * 1000, timeoutMs: config.portal.nop_timeout_s * 1000 };
      iscsi = await startIscsiServer({ host: portalAddr.host, port: portalAddr.port, registry: service, logger: logger.child("iscsi"), lunStates, ping });
    } catch (e) {
      throw bindError(e, "iSCSI portal", config.portal.listen);
    }
    const svc = service;
    const portal = iscsi;
    svc.onLunsChanged = (iqn, removed) => {
      if (removed !== undefined) portal.lunStates.delete(removed);
      portal.lunStates.lunInventoryChanged(iqn);
    };
    let metadataReachable = true;
    const probe = setInterval(() => {
      meta
        ?.get(keys.cluster)
        .then(() => (metadataReachable = true))
        .catch(() => (metadataReachable = false));
    }, metaProbeIntervalMs);
    probe.unref();
    // Chosen once at start (a probe of each kernel; erasure-coded LUNs will load the winner).
    const ecKernels = availableEcKernels();
    const metaStore = meta;
    const nodesView = async (): Promise<StatusView["nodes"]> => {
      try {
        const [nodes, alive] = await Promise.all([metaStore.list(keys.nodes), metaStore.list(keys.alive)]);
        const up = new Set(alive.map((kv) => kv.key.slice(keys.alive.length)));
        return nodes.map((kv) => JSON.parse(kv.value) as NodeRecord).map((n) => ({ id: n.id, name: n.name, portal: n.portal, state: up.has(n.id) ? "up" : "down" }));
      } catch {
        return [{ id: identity.nodeId, name: identity.name, portal: config.portal.listen, state: "up" }];
      }
    };
    const status = async (): Promise<StatusView> => {
      const nodes = await nodesView();
      return {
      health: judgeHealth({ archives: svc.archiveViews(), ioErrors: svc.ioTotals().errors, metadataReachable, nodesDown: nodes.filter((n) => n.state === "down").map((n) => n.name) }),
      nodes,
      node: { id: identity.nodeId, name: identity.name, clusterId: identity.clusterId, version: `${version} (${buildCommit})`, pid: process.pid, uptimeSeconds: Math.round((Date.now() - startedAt) / 1000) },
      daemon: "running",
      portal: config.portal.listen,
      api: config.api.listen,
      metadata: { backend: config.metadata.backend, endpoints: config.metadata.backend === "embedded" ? [config.metadata.listen] : config.metadata.endpoints },
      archives: svc.archiveViews(),
      targets: svc.targetViews((iqn) => portal.sessionCount(iqn)),
      luns: svc.lunViews(),
      ec: { kernel: ecKernels[0] ?? "none", available: ecKernels },
      io: svc.ioTotals(),
      };
    };
    try {
      control = startControlServer({ host: apiAddr.host, port: apiAddr.port, secret, routes: controlRoutes(svc, status, () => void shutdown("stop requested"), () => caFingerprint(readFileSync(paths.caCert, "utf8"))), logger: logger.child("api") });
    } catch (e) {
      throw bindError(e, "control API", config.api.listen);
    }
    // The cluster listener (HTTPS with this node's CA-signed certificate): answers joins.
    const clusterAddr = listenAddress(config.cluster.listen, "cluster.listen");
    const metadataEndpoints = config.metadata.backend === "embedded" ? [`http://${config.metadata.listen}`] : config.metadata.endpoints;
    const caPem = readFileSync(paths.caCert, "utf8");
    try {
      clusterApi = startControlServer({
        host: clusterAddr.host,
        port: clusterAddr.port,
        secret: null,
        tls: { cert: `${readFileSync(paths.nodeCert, "utf8")}${caPem}`, key: readFileSync(paths.nodeKey, "utf8") },
        routes: [
          { method: "GET", pattern: caPath, handler: () => ({ caPem }) },
          { method: "POST", pattern: joinPath, handler: ({ body }) => answerJoin({ meta: meta as MetaStore, paths, clusterId: identity.clusterId, metadataEndpoints, logger: logger.child("join") }, body as JoinRequest) },
        ],
        logger: logger.child("cluster"),
      });
    } catch (e) {
      throw bindError(e, "cluster listener", config.cluster.listen);
    }
    // Liveness: a key under a lease that this daemon keeps alive; it vanishes when the node dies.
    const store = meta;
    const lease = await store.leaseGrant(heartbeatTtlSeconds);
    await store.put(keys.aliveNode(identity.nodeId), JSON.stringify({ since: new Date().toISOString() }), { lease });
    heartbeat = keepLeaseAlive(store, { id: lease, ttlSeconds: heartbeatTtlSeconds }, (reason) => logger.warn("heartbeat lease lost", { reason }));
  } catch (e) {
    const err = isQstoraError(e) ? e : new QstoraError("INTERNAL", e instanceof Error ? e.message : String(e));
    logger.error("start failed", { code: err.code, error: err.message, hint: err.hint, stack: isQstoraError(e) ? undefined : e instanceof Error ? e.stack : undefined });
    stopping = true;
    control?.stop();
    clusterApi?.stop();
    heartbeat?.stop();
    await iscsi?.close().catch(() => undefined);
    service?.close();
    await meta?.shutdown().catch(() => undefined);
    lock.release();
    throw err;
  }

  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGHUP", () => logger.info("SIGHUP ignored: use `qstora restart` to reload qstora.toml"));
  logger.info("ready", { portal: config.portal.listen, api: config.api.listen, hostname: hostname() });
}
