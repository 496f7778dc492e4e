// `qstora serve`: the daemon. Wires the metadata store, the archives (through NodeService), the
// iSCSI portal and the control API together, and owns the process's lifetime.
//
// Ordering contract:
// - start: lock the data dir, then metadata, then archives and state, then the portal, then the
//   control API (the CLI takes a control answer to mean "ready to serve I/O"), then the cluster
//   and peer listeners.
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
import type { NodeView, StatusView } from "../control/protocol.ts";
import { startIscsiServer, type IscsiServer } from "../iscsi/server.ts";
import type { MetaStore } from "../meta/store.ts";
import { openNodeMeta, metadataStartWaitMs, type NodeMeta } from "./metadata-role.ts";
import { metadataUrl } from "./group-file.ts";
import { readManager, startManagerDuties, startManagerElection, type ManagerElection } from "./manager.ts";
import { parseHostPort } from "./config.ts";
import { readIdentity, readSecret } from "./identity.ts";
import { tryLockDataDir } from "./lock.ts";
import { dataDirPaths } from "./paths.ts";
import { keys, type ClusterRecord, type NodeRecord } from "./records.ts";
import { NodeService } from "./service.ts";
import { controlRoutes } from "./routes.ts";
import { readConfigFile, type Bootstrap } from "./data-dir.ts";
import { updateJson } from "../meta/documents.ts";
import { ClusterState } from "./cluster-view.ts";
import { heartbeatLeaseSeconds, startHeartbeat } from "./heartbeat.ts";
import { MembershipOps } from "./membership-ops.ts";
import { membershipRoutes } from "./membership-routes.ts";
import { caFingerprint } from "../cluster/ca.ts";
import { availableEcKernels } from "../ec/engine.ts";
import { setCrc32cScratchDir } from "../util/crc32c.ts";
import { caPath, joinPath, type JoinRequest } from "../cluster/join.ts";
import { answerJoin } from "./join-member.ts";
import { loadReservations, reloadReservation, reservationPersistence } from "./reservations.ts";
import { LunStateTable, type CopyTargetResolver } from "../scsi/lun-state.ts";
import type { BlockDevice } from "../volume/block-device.ts";
import { startPeers, type Peers } from "../net/peers.ts";
import { join } from "node:path";
import { holdAfterMsDefault, ReplicaHost } from "./replica-host.ts";
import { LunForwarder } from "./lun-forwarder.ts";
import { watchPrefixes, type PrefixWatch } from "./record-watch.ts";
import { coalescing } from "../util/coalesce.ts";
import { claimPortId } from "./port-ids.ts";

/** Longest the stop waits for the heartbeat lease's revocation. */
const heartbeatStopWaitMs = 1_000;

/** How long status waits for each node's transport ping. */
const statusPingTimeoutMs = 1000;

/**
 * The mirror of targets, LUNs, nodes and port numbers (other nodes' objects served by this
 * portal) is re-read when a watch on them sees a change; this poll only backs the watches up
 * (four range reads per node each time, on a store replication and heartbeats keep busy).
 */
const recordsPollMs = 10_000;

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

/**
 * Reads the cluster record, waiting for the store to answer: a member of a Raft group needs a
 * quorum, which forms only once enough members run (they start together after a power cut).
 */
async function waitForMetadata(meta: MetaStore, logger: Logger): Promise<Awaited<ReturnType<MetaStore["get"]>>> {
  const deadline = Date.now() + metadataStartWaitMs;
  for (;;) {
    try {
      return await meta.get(keys.cluster);
    } catch (e) {
      if (!(isQstoraError(e) && e.code === "METADATA_UNAVAILABLE") || Date.now() > deadline) throw e;
      logger.info("waiting for the metadata store", { error: e.message });
      await Bun.sleep(500);
    }
  }
}

/** Runs `fn` again while the store answers METADATA_UNAVAILABLE (a Raft group electing), for metadataStartWaitMs at most. */
async function whileElecting<T>(fn: () => Promise<T>, logger: Logger): Promise<T> {
  const deadline = Date.now() + metadataStartWaitMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (!(isQstoraError(e) && e.code === "METADATA_UNAVAILABLE") || Date.now() > deadline) throw e;
      logger.info("waiting for the metadata store", { error: e.message });
      await Bun.sleep(500);
    }
  }
}

export async function runDaemon(options: { dataDir: string; foreground: boolean }): Promise<void> {
  const paths = dataDirPaths(options.dataDir);
  const identity = readIdentity(paths.identity);
  const config = readConfigFile(paths);
  const secret = readSecret(paths.secret);
  const portalAddr = listenAddress(config.portal.listen, "portal.listen");
  const extraPortals = config.portal.extra.map((a) => listenAddress(a, "portal.extra"));
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

  let meta: NodeMeta | undefined;
  let manager: ManagerElection | undefined;
  let service: NodeService | undefined;
  let iscsi: IscsiServer | undefined;
  let control: { stop(): void } | undefined;
  let clusterApi: { stop(): void } | undefined;
  let heartbeat: { stop(): Promise<void> } | undefined;
  /** The node-to-node transport (core/net): replication will send through it. */
  let peers: Peers | undefined;
  /** Replicated LUNs: router, unit driver, failover (on the manager), coordinators. */
  let replicas: ReplicaHost | undefined;
  /** Heartbeat ages as the cluster view (made once the store is open) last folded them. */
  const livenessView: { silentMs: (nodeId: string) => number | null } = { silentMs: () => null };
  let recordsTimer: ReturnType<typeof setInterval> | undefined;
  let recordsWatch: PrefixWatch | undefined;
  let stopping = false;

  const shutdown = async (reason: string, exitCode = 0): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info("stopping", { reason });
    control?.stop();
    clusterApi?.stop();
    clearInterval(recordsTimer);
    recordsWatch?.cancel();
    // Revoking the lease shows this node down at once; a store that does not answer can't hold up the stop.
    await Promise.race([heartbeat?.stop().catch(() => undefined), Bun.sleep(heartbeatStopWaitMs)]);
    await manager?.stop();
    replicas?.stop();
    peers?.close();
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
    meta = await openNodeMeta({ config, paths, identity, logger: logger.child("meta") });
    const cluster = await waitForMetadata(meta, logger);
    await meta.awaitMembership(Date.now() + metadataStartWaitMs);
    if (cluster === undefined) {
      const rec: ClusterRecord = { clusterId: identity.clusterId, createdAt: new Date().toISOString(), formatVersion: 1 };
      await meta.put(keys.cluster, JSON.stringify(rec));
    } else if ((JSON.parse(cluster.value) as ClusterRecord).clusterId !== identity.clusterId) {
      throw new QstoraError("CONFIG_INVALID", "the metadata store belongs to another cluster", "Check metadata.endpoints in qstora.toml.");
    }
    service = new NodeService(meta, identity, config.portal.listen, logger.child("node"));
    const units = service.units;
    replicas = new ReplicaHost({
      meta,
      nodeId: identity.nodeId,
      stateDir: join(paths.root, "units"),
      archives: () => units.list(),
      logger: logger.child("replica"),
      // The cluster view (made below) folds every node's heartbeats each interval.
      nodeSilentMs: (nodeId) => livenessView.silentMs(nodeId),
      holdAfterMs: Math.max(holdAfterMsDefault, Math.round(1.5 * config.health.heartbeat_interval_ms)),
      takeoverAfterMs: config.health.takeover_after_ms === 0 ? Infinity : config.health.takeover_after_ms,
      lunForwarded: (uuid) => service?.forwardsLun(uuid) ?? false,
    });
    service.replicas = replicas;
    // This node's target port number (portal group tag), unique in the cluster: other nodes'
    // LUNs are served here too, through it, forwarded to their coordinators.
    const store = meta;
    const portId = await whileElecting(() => claimPortId(store, identity.nodeId), logger);
    const forwarder = new LunForwarder({ nodeId: identity.nodeId, portId, logger: logger.child("forward") });
    service.forwarder = forwarder;
    const svc = service;
    await whileElecting(() => svc.load(), logger);
    let boot: Bootstrap | undefined;
    if (existsSync(paths.bootstrap)) {
      boot = JSON.parse(readFileSync(paths.bootstrap, "utf8")) as Bootstrap;
      for (const path of boot.archives) await whileElecting(() => svc.adoptArchive(path), logger);
    }
    // The record keeps what others set on it (group, labels, drain flag); the rest is this start's.
    // metadataUrl: where this node's gate would serve as a metadata member (the manager promotes
    // live nodes that have one).
    const metaListen = listenAddress(config.metadata.listen, "metadata.listen");
    const started: Omit<NodeRecord, "group" | "labels" | "draining"> = { id: identity.nodeId, name: identity.name, portal: config.portal.listen, api: config.api.listen, peer: config.peer.listen, version, startedAt: new Date(startedAt).toISOString(), address: config.node.address, metadataUrl: metadataUrl(metaListen.host, metaListen.port) };
    const metaNow = meta;
    const bootNow = boot;
    // Retried while the store elects: the same record is written again (an update of the current one).
    const written = await whileElecting(
      () =>
        updateJson(metaNow, keys.node(identity.nodeId), (j) => j as NodeRecord, (cur) => {
          // No record after the first start: `qstora node remove` took the node out; it stays out.
          if (cur === undefined && bootNow === undefined) return { kind: "keep" };
          const kept = cur ?? { id: identity.nodeId, name: identity.name, portal: "", api: "", version: "", startedAt: "" };
          return { kind: "put", value: { ...kept, ...started, group: cur?.group ?? bootNow?.group ?? identity.name } };
        }),
      logger,
    );
    if (written.outcome === "kept") throw new QstoraError("NOT_FOUND", `node ${identity.name} was removed from the cluster (its record is gone)`, "Remove this data directory; to bring the server back, `qstora join` it with a new --data-dir.");
    if (written.outcome !== "written") throw new QstoraError("METADATA_UNAVAILABLE", "could not write this node's record (it kept changing)");
    if (boot !== undefined) {
      unlinkSync(paths.bootstrap);
      logger.info("bootstrap done", { archives: boot.archives.length });
    }
    // From here the node follows /qstora/v1/metadata/members (and records it on first start).
    meta.follow();

    // Persistent reservations with APTPL come back from the metadata store.
    const reservations = await whileElecting(() => loadReservations(metaNow, logger), logger);
    // EXTENDED COPY may reach the LUNs of the target the command came through, and those of any
    // other target this initiator could log in to without a secret (its ACL admits it, no CHAP):
    // never a LUN the initiator could not reach itself.
    const registry = service;
    const copyTargets: CopyTargetResolver = ({ targetName, initiatorName }) => {
      const out: BlockDevice[] = [];
      for (const t of registry.listTargets(initiatorName)) {
        const entry = registry.lookupTarget(t.iqn, initiatorName);
        if (entry === undefined || (entry.chap !== undefined && entry.iqn !== targetName)) continue;
        out.push(...entry.luns.values());
      }
      return out;
    };
    const lunStates = new LunStateTable(reservationPersistence(meta, reservations, logger.child("reservations")), { copyTargets });
    service.beforeAdopt = (uuid) => reloadReservation(metaNow, reservations, uuid, logger.child("reservations"));
    try {
      const ping = { idleMs: config.portal.nop_interval_s * 1000, timeoutMs: config.portal.nop_timeout_s * 1000 };
      iscsi = await startIscsiServer({ host: portalAddr.host, port: portalAddr.port, extraPortals, registry: service, logger: logger.child("iscsi"), lunStates, ping, portalGroupTag: portId, portGroups: () => forwarder.portGroups(), otherPortals: () => forwarder.otherPortals() });
    } catch (e) {
      throw bindError(e, "iSCSI portal", (e as { address?: string } | null)?.address ?? config.portal.listen);
    }
    const portal = iscsi;
    svc.onDeviceGone = (device) => portal.lunStates.delete(device);
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
    const transportView = async (n: NodeRecord): Promise<NodeView["transport"]> => {
      if (n.peer === undefined || n.peer === "" || peers === undefined) return undefined;
      const r = await peers.ping({ id: n.id, name: n.name, address: n.peer }, statusPingTimeoutMs);
      return r.ok ? { reachable: true, rttMs: Math.round(r.rttMs * 1000) / 1000 } : { reachable: false, error: r.reason };
    };
    // The cluster view: liveness of every node (from the heartbeats) and the records around it.
    const clusterState = new ClusterState(metaStore, identity, config, () => svc.archiveViews(), () => metaStore.view(), () => readManager(metaStore), transportView);
    livenessView.silentMs = (nodeId) => clusterState.silentMs(nodeId, Date.now());
    // `qstora start` waits for "running": then the other nodes can see this one.
    let ready = false;
    const status = async (): Promise<StatusView> => {
      const targets = svc.targetViews((iqn) => portal.sessionCount(iqn));
      const luns = svc.lunViews();
      const view = await clusterState.view({ ioErrors: svc.ioTotals().errors, metadataReachable, targets: targets.length, luns: luns.length, segments: replicas?.segmentStates() ?? [] });
      return {
      ...view,
      node: { id: identity.nodeId, name: identity.name, clusterId: identity.clusterId, version: `${version} (${buildCommit})`, pid: process.pid, uptimeSeconds: Math.round((Date.now() - startedAt) / 1000) },
      daemon: ready ? "running" : "starting",
      portal: config.portal.listen,
      portals: [config.portal.listen, ...config.portal.extra],
      api: config.api.listen,
      archives: svc.archiveViews(),
      targets,
      luns,
      ec: { kernel: ecKernels[0] ?? "none", available: ecKernels },
      io: svc.ioTotals(),
      };
    };
    try {
      const ops = new MembershipOps(metaStore, identity.nodeId, () => clusterState.nodes(), logger.child("membership"));
      const routes = [...controlRoutes(svc, status, () => void shutdown("stop requested"), () => caFingerprint(readFileSync(paths.caCert, "utf8"))), ...membershipRoutes(ops, clusterState)];
      control = startControlServer({ host: apiAddr.host, port: apiAddr.port, secret, routes, logger: logger.child("api") });
    } catch (e) {
      throw bindError(e, "control API", config.api.listen);
    }
    // The cluster listener (HTTPS with this node's CA-signed certificate): answers joins.
    const clusterAddr = listenAddress(config.cluster.listen, "cluster.listen");
    const joinSelf = config.metadata.backend === "etcd" ? null : { id: identity.nodeId, name: identity.name, url: metadataUrl(metaListen.host, metaListen.port) };
    const caPem = readFileSync(paths.caCert, "utf8");
    try {
      clusterApi = startControlServer({
        host: clusterAddr.host,
        port: clusterAddr.port,
        secret: null,
        tls: { cert: `${readFileSync(paths.nodeCert, "utf8")}${caPem}`, key: readFileSync(paths.nodeKey, "utf8") },
        routes: [
          { method: "GET", pattern: caPath, handler: () => ({ caPem }) },
          { method: "POST", pattern: joinPath, handler: ({ body }) => answerJoin({ meta: meta as MetaStore, paths, clusterId: identity.clusterId, self: joinSelf, externalEndpoints: config.metadata.endpoints, logger: logger.child("join") }, body as JoinRequest) },
        ],
        logger: logger.child("cluster"),
      });
    } catch (e) {
      throw bindError(e, "cluster listener", config.cluster.listen);
    }
    // The node-to-node transport, on the node's own certificate (see core/net/peer.ts).
    const peerAddr = listenAddress(config.peer.listen, "peer.listen");
    try {
      peers = startPeers({ host: peerAddr.host, port: peerAddr.port, tls: { caPem, certPem: readFileSync(paths.nodeCert, "utf8"), keyPem: readFileSync(paths.nodeKey, "utf8") }, self: { nodeId: identity.nodeId, name: identity.name }, logger: logger.child("peer") });
    } catch (e) {
      throw bindError(e, "peer listener", config.peer.listen);
    }
    await replicas.start(peers);
    forwarder.start(peers, lunStates, svc);
    // Re-read when a watched record changes, and every recordsPollMs in case a watch missed it.
    // Not awaited: the start order and its timing (heartbeat, manager) stay what they were; the
    // first refresh lands within a moment, and load() already read every record.
    const refreshRecords = coalescing(
      () => svc.refreshRecords(),
      (e) => logger.debug("records refresh failed", { error: String(e) }),
    );
    refreshRecords();
    recordsTimer = setInterval(refreshRecords, recordsPollMs);
    recordsWatch = watchPrefixes(metaStore, [keys.targets, keys.luns, keys.nodes, keys.ports], refreshRecords);
    // Liveness: a heartbeat each interval under a lease; every node's are read back and judged.
    const beats = startHeartbeat({
      store: metaStore,
      nodeId: identity.nodeId,
      intervalMs: config.health.heartbeat_interval_ms,
      leaseTtlSeconds: heartbeatLeaseSeconds(config.health.down_after_ms, config.health.heartbeat_interval_ms),
      startedAt: new Date(startedAt).toISOString(),
      archives: () => svc.archiveViews().map((a) => ({ id: a.id, state: a.state, sizeBytes: a.sizeBytes, writtenBytes: a.writtenBytes, freeBytes: a.freeBytes, ...(a.error === undefined ? {} : { error: a.error }) })),
      onBeats: (read, nowMs) => {
        clusterState.observe(read, nowMs);
        metadataReachable = true;
      },
      // Removed (node remove --force while up): its records are gone, so it must not serve on.
      onRemoved: () => void shutdown("removed from the cluster (its record is gone); remove this data directory", 0),
      logger: logger.child("heartbeat"),
    });
    heartbeat = beats;
    // The first beat is a transaction like any other: a node that has just joined the embedded
    // group may start while the group takes it in (no quorum for a moment), so it waits as the
    // reads above do instead of failing the start.
    await whileElecting(() => beats.beatNow(), logger);
    // Exactly one node runs the cluster manager role (core/cluster/manager-election.ts).
    const managerLog = logger.child("manager");
    let duties: { stop(): void } | undefined;
    manager = startManagerElection({
      meta: metaStore,
      nodeId: identity.nodeId,
      name: identity.name,
      logger: managerLog,
      onStart: () => {
        duties = startManagerDuties(metaStore, managerLog);
        replicas?.setManager(true);
      },
      onStop: () => {
        replicas?.setManager(false);
        duties?.stop();
        duties = undefined;
      },
    });
    ready = true;
  } catch (e) {
    const err = isQstoraError(e) ? e : new QstoraError("INTERNAL", e instanceof Error ? e.message : String(e));
    logger.error("start failed", { code: err.code, error: err.message, hint: err.hint, stack: isQstoraError(e) ? undefined : e instanceof Error ? e.stack : undefined });
    stopping = true;
    control?.stop();
    clusterApi?.stop();
    clearInterval(recordsTimer);
    recordsWatch?.cancel();
    await heartbeat?.stop().catch(() => undefined);
    await manager?.stop();
    replicas?.stop();
    peers?.close();
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
