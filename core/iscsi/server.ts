// The iSCSI portals: the only file of the target that touches sockets (Bun.listen). One server
// listens on one or more addresses (a node with two NICs serves both), all in one target portal
// group: one session table (a session begun through one portal is reinstated through another),
// one portal group tag, so SCSI sees one target port whichever address a connection used. Each
// connection's bytes go to its IscsiConnection inline in the data handler, and what it answers
// is written with one socket.write per batch. Bun's socket.write may take only part of a buffer
// and does not queue the rest, so each connection keeps its own bounded queue (copies of the
// unwritten bytes), resumes on drain, and stops reading while the queue is over
// `queuedBytesPauseAt` (back-pressure instead of memory growth). Every wait has a time limit;
// one portal-wide timer hands each connection the clock for its NOP-In pings (connection.ts).
// It never reads a PDU itself, and never binds only some of its portals: a portal that cannot
// listen closes the others and fails the start.
import type { Socket, SocketHandler, TCPSocketListener } from "bun";
import { assert } from "../util/assert.ts";
import type { Logger } from "../util/log.ts";
import { IscsiConnection, pingDefaults, type PingSettings, type TargetRegistry } from "./connection.ts";
import { defaultTargetLimits, type TargetLimits } from "./login.ts";
import { SessionTable } from "./session.ts";
import { LunStateTable } from "../scsi/lun-state.ts";
import type { TargetPortGroups } from "../scsi/commands/reports.ts";

export type { TargetRegistry } from "./connection.ts";

/** Stop reading from a connection whose unsent answers exceed this; resume below half. */
const queuedBytesPauseAt = 8 << 20;
/** Connections at once; more are closed on accept. */
const connectionsMax = 1024;
/** A connection must finish login within this (RFC 7143 leaves the limit to the target). */
const loginTimeoutMs = 15_000;
/** How long close() waits for device calls under way, and for queued answers to drain. */
const closeGraceMs = 10_000;
/** How long a closing connection may take to flush its last answers, and its peer to close, before it is cut. */
const endGraceMs = 2_000;
/** TCP keepalive so that a vanished initiator frees its session (NOP-In pings find it sooner). */
const keepAliveDelayMs = 30_000;
/** How often connections are given the clock for their NOP-In pings (their resolution). */
const pingTickMsMax = 1_000;

interface SocketState {
  conn: IscsiConnection;
  queue: Uint8Array[];
  queuedBytes: number;
  paused: boolean;
  closed: boolean;
  endWhenDrained: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export interface IscsiServer {
  /** The first portal's port (the one `host`/`port` named). */
  readonly port: number;
  /** Every portal's port, in the order given: `port` first, then `extraPortals`. */
  readonly ports: readonly number[];
  /** The logical unit state table the sessions share. */
  readonly lunStates: LunStateTable;
  /** Sessions in full feature phase, for one target or all (discovery sessions excluded). */
  sessionCount(iqn?: string): number;
  /** Stop accepting, finish in-flight commands, close connections. */
  close(): Promise<void>;
}

export interface IscsiServerOptions {
  host: string;
  port: number;
  /** More portals of the same portal group (other addresses of this node). */
  extraPortals?: readonly { readonly host: string; readonly port: number }[];
  registry: TargetRegistry;
  logger: Logger;
  portalGroupTag?: number;
  limits?: TargetLimits;
  /**
   * Logical unit state shared by every session (reservations, unit attentions, mode pages). The
   * daemon passes one built with its persistence (APTPL) and calls lunInventoryChanged(iqn) when
   * a target gains or loses a LUN; without one the server makes a memory-only table.
   */
  lunStates?: LunStateTable;
  /** Target NOP-In pings (RFC 7143 §11.19) that find dead initiators; pingDefaults when absent. */
  ping?: PingSettings;
  /** The cluster's target port groups (REPORT TARGET PORT GROUPS); absent: this portal group alone. */
  portGroups?: () => TargetPortGroups;
  /** Other nodes' portals ("address:port,tag"), listed by SendTargets after this node's: every node serves every target. */
  otherPortals?: () => readonly string[];
}

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Portals at once; more is a configuration mistake, not a node with many NICs. */
export const portalsMax = 64;

const wildcardHosts = new Set(["0.0.0.0", "::", "[::]", ""]);

/**
 * The TargetAddress values (RFC 7143 §13.8, "address:port,tag") a connection that arrived on
 * `local` is told in SendTargets: every portal of the group, its own first (initiators that take
 * only one try the first). A wildcard listener is announced by the address the connection used,
 * the one address of it this initiator is known to reach.
 */
export function targetAddresses(portals: readonly { readonly host: string; readonly port: number }[], arrivedOn: { readonly host: string; readonly port: number }, portalGroupTag: number): string[] {
  const out: string[] = [];
  const add = (host: string, port: number): void => {
    const a = `${hostPort(host, port)},${portalGroupTag}`;
    if (!out.includes(a)) out.push(a);
  };
  add(arrivedOn.host, arrivedOn.port);
  for (const p of portals) add(wildcardHosts.has(p.host) ? arrivedOn.host : p.host, p.port);
  return out;
}

export async function startIscsiServer(options: IscsiServerOptions): Promise<IscsiServer> {
  const portalGroupTag = options.portalGroupTag ?? 1;
  assert(Number.isInteger(portalGroupTag) && portalGroupTag >= 1 && portalGroupTag <= 0xffff, "portal group tag out of range");
  const limits = options.limits ?? defaultTargetLimits;
  const logger = options.logger;
  const sessions = new SessionTable();
  const lunStates = options.lunStates ?? new LunStateTable();
  const sockets = new Set<Socket<SocketState>>();
  const ping = options.ping ?? pingDefaults;
  // One timer for the portal, not one per connection: each tick hands every connection the time.
  const tickMs = Math.max(10, Math.min(pingTickMsMax, ping.idleMs > 0 ? ping.idleMs / 4 : pingTickMsMax, ping.timeoutMs / 4));
  const ticker = setInterval(() => {
    const now = performance.now();
    for (const s of sockets) s.data?.conn.tick(now);
  }, tickMs);

  const flushQueue = (s: Socket<SocketState>): void => {
    const st = s.data;
    while (st.queue.length > 0) {
      const head = st.queue[0] as Uint8Array;
      const n = Math.max(0, s.write(head));
      st.queuedBytes -= n;
      if (n < head.length) {
        st.queue[0] = head.subarray(n);
        return;
      }
      st.queue.shift();
    }
    if (st.paused && st.queuedBytes < queuedBytesPauseAt / 2) {
      st.paused = false;
      s.resume();
    }
    if (st.endWhenDrained) s.end();
  };

  const send = (s: Socket<SocketState>, bytes: Uint8Array): void => {
    const st = s.data;
    if (st.closed) return;
    let rest = bytes;
    if (st.queue.length === 0) {
      const n = Math.max(0, s.write(bytes));
      if (n === bytes.length) return;
      rest = bytes.subarray(n);
    }
    // The connection reuses `bytes`: keep a copy of what did not go out.
    st.queue.push(rest.slice());
    st.queuedBytes += rest.length;
    if (!st.paused && st.queuedBytes > queuedBytesPauseAt) {
      st.paused = true;
      s.pause();
    }
  };

  const end = (s: Socket<SocketState>): void => {
    const st = s.data;
    if (st.closed) return;
    if (st.queue.length === 0) s.end();
    else {
      st.endWhenDrained = true;
      if (st.paused) s.resume();
    }
    // end() only half-closes: a peer that never closes its side (a frozen initiator dropped for
    // an unanswered ping) would hold the socket, its descriptor and a connection slot for good.
    clearTimeout(st.timer);
    st.timer = setTimeout(() => s.terminate(), endGraceMs);
  };

  const forget = (s: Socket<SocketState>): void => {
    const st = s.data as SocketState | undefined;
    sockets.delete(s);
    if (st === undefined || st.closed) return;
    st.closed = true;
    clearTimeout(st.timer);
    st.queue = [];
    st.queuedBytes = 0;
    st.conn.closedByTransport();
  };

  const wanted = [{ host: options.host, port: options.port }, ...(options.extraPortals ?? [])];
  assert(wanted.length <= portalsMax, "too many portals");
  /** The portals as bound (port 0 asks for any free port: the bound one is announced). */
  const bound: { host: string; port: number }[] = [];
  /** The socket handlers of the `index`th portal. */
  const handlers = (index: number): SocketHandler<SocketState> => ({
    open(s) {
      if (sockets.size >= connectionsMax) {
        logger.warn("too many connections, refusing one", { from: s.remoteAddress });
        s.terminate();
        return;
      }
      sockets.add(s);
      s.setNoDelay(true);
      s.setKeepAlive(true, keepAliveDelayMs);
      // SendTargets names every portal, first the address this connection came in on.
      const localPort = bound[index]?.port ?? options.port;
      const local = s.localAddress !== "" && s.localAddress !== undefined ? s.localAddress : options.host;
      const conn = new IscsiConnection({
        registry: options.registry,
        sessions,
        portal: { address: hostPort(local, localPort), portalGroupTag, targetAddresses: () => [...targetAddresses(bound, { host: local, port: localPort }, portalGroupTag), ...(options.otherPortals?.() ?? [])], ...(options.portGroups === undefined ? {} : { portGroups: options.portGroups }) },
        limits,
        transport: { send: (bytes) => send(s, bytes), close: () => end(s) },
        logger,
        lunStates,
        ping,
      });
      s.data = { conn, queue: [], queuedBytes: 0, paused: false, closed: false, endWhenDrained: false, timer: undefined };
      s.data.timer = setTimeout(() => {
        if (!conn.fullFeature && !conn.closed) conn.shutdown("login timed out");
      }, loginTimeoutMs);
    },
    data(s, chunk) {
      const st = s.data;
      if (st.closed) return;
      st.conn.receive(chunk);
      if (st.timer !== undefined && st.conn.fullFeature && !st.endWhenDrained) {
        clearTimeout(st.timer);
        st.timer = undefined;
      }
    },
    drain(s) {
      const before = s.data.queuedBytes;
      flushQueue(s);
      if (s.data.queuedBytes < before) s.data.conn.peerReading();
    },
    close(s) {
      forget(s);
    },
    error(s, e) {
      logger.warn("connection error", { error: e.message });
      forget(s);
    },
  });
  const listeners: TCPSocketListener<SocketState>[] = [];
  for (const [i, p] of wanted.entries()) {
    try {
      listeners.push(Bun.listen<SocketState>({ hostname: p.host, port: p.port, socket: handlers(i) }));
    } catch (e) {
      // The ones already open are closed; the error says which address failed (the daemon's message).
      for (const l of listeners) l.stop(true);
      clearInterval(ticker);
      throw Object.assign(e instanceof Error ? e : new Error(String(e)), { address: hostPort(p.host, p.port) });
    }
    const l = listeners[listeners.length - 1] as TCPSocketListener<SocketState>;
    bound.push({ host: p.host, port: l.port });
    logger.info("iSCSI portal listening", { address: hostPort(p.host, l.port), portalGroupTag });
  }

  return {
    port: (bound[0] as { port: number }).port,
    ports: bound.map((b) => b.port),
    lunStates,
    sessionCount: (iqn?: string) => sessions.count(iqn),
    async close(): Promise<void> {
      for (const l of listeners) l.stop(false);
      clearInterval(ticker);
      const deadline = Date.now() + closeGraceMs;
      const waits = [...sockets].map((s) => s.data?.conn.idle());
      await Promise.race([Promise.all(waits), Bun.sleep(closeGraceMs)]);
      for (const s of sockets) s.data?.conn.shutdown("server closing");
      while (sockets.size > 0 && Date.now() < deadline) await Bun.sleep(10);
      for (const s of sockets) s.terminate();
      for (const l of listeners) l.stop(true);
    },
  };
}
