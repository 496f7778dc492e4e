// The node-to-node transport's sockets: a listener and a client that keeps one connection to a
// peer, reconnecting with jittered exponential backoff. The only file of core/net that touches
// sockets (Bun.listen, Bun.connect); everything after authentication is PeerConnection's.
//
// Two transports, both mutually authenticated with the cluster CA (docs/ARCHITECTURE.md says
// which one nodes use and why; the benchmark core/net/transport.bench.ts measures both):
// - "mac": plain TCP; one hello frame each way carries the node certificates and nonces, the
//   keys derived from them (frame-auth.ts) seal every later frame with a 16-byte tag.
// - "tls": TLS with the node certificates, a client certificate required.
// Either way both ends present their node certificate (node.pem, signed by the cluster CA) and
// trust only the cluster CA (ca.pem). The client also checks that the server's certificate is
// for the address it dialled (its subjectAltName) and, when it knows it, the node name (the
// subject CN). The server learns the client's node name from its certificate.
//
// Bun 1.3's TLS does not refuse a certificate that fails verification, even with
// rejectUnauthorized: its handshake callback reports success with the error beside it, and a
// server may see the client's first bytes before that callback. So each end judges the peer's
// certificate itself (judgePeerCertificate), a TLS server holds early bytes unread until then,
// and a client sends nothing but a ping until the server has answered it.
//
// Ordering contract: no frame is handled before the peer's certificate has been judged good;
// a connection that fails is cut without a word; a client reports "open" only after the
// server has answered its first ping (which, on "mac", proves the server holds its key).
import type { Socket, TCPSocketListener } from "bun";
import { createPrivateKey, randomBytes, X509Certificate, type KeyObject } from "node:crypto";
import { assert } from "../util/assert.ts";
import type { Logger } from "../util/log.ts";
import { backoffDelayMs, peerBackoffDefault, type BackoffPolicy } from "./backoff.ts";
import { seededRandom01 } from "../util/rng.ts";
import { pingRequest } from "./ping.ts";
import { PeerConnection, connectionLimitsDefault, type ConnectionLimits, type FrameAuth, type Handlers, type PeerInfo, type PostHandlers, type RequestOutcome, type RequestSpec } from "./connection.ts";
import { FrameDecoder, frameFlags } from "./frame.ts";
import { decodeHello, deriveSessionKeys, helloNonceBytes, helloPayloadBytesMax, macAlgorithmDefault, macFrameAuth, type Hello, type MacAlgorithm } from "./frame-auth.ts";
import { controlFrame, messageType } from "./messages.ts";

/** The node's credentials, as PEM text from its data directory. */
export interface PeerTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export type PeerTransport = { kind: "mac"; mac: MacAlgorithm } | { kind: "tls" };
export const peerTransportDefault: PeerTransport = { kind: "mac", mac: macAlgorithmDefault };

/** The hello exchange or TLS handshake (and identity check) must finish within this. */
export const handshakeTimeoutMs = 5_000;
/** Connections a peer listener accepts at once; more are cut at accept. */
export const peerConnectionsMax = 256;
/** TCP keepalive, so that a vanished peer is noticed even without requests. */
const keepAliveDelayMs = 15_000;

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Whether `cert` is a node certificate of the cluster whose CA is `ca`: issued and signed by
 * it, valid at `nowMs`, not itself a CA, naming a node. Returns the node name or the problem.
 * (Possession of the certificate's key is proven by the TLS handshake itself.)
 */
export function judgePeerCertificate(cert: X509Certificate | undefined, ca: X509Certificate, nowMs: number): { ok: true; name: string } | { ok: false; problem: string } {
  if (cert === undefined) return { ok: false, problem: "the peer presented no certificate" };
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return { ok: false, problem: "the peer's certificate is not signed by this cluster's CA" };
  if (nowMs < Date.parse(cert.validFrom) || nowMs > Date.parse(cert.validTo)) return { ok: false, problem: `the peer's certificate is valid only from ${cert.validFrom} to ${cert.validTo}` };
  if (cert.ca) return { ok: false, problem: "the peer presented a CA certificate, not a node certificate" };
  const name = certificateNodeName(cert);
  if (name === null) return { ok: false, problem: "the peer's certificate names no node" };
  return { ok: true, name };
}

/** The node name a certificate is for (its subject CN), or null when it has none. */
export function certificateNodeName(cert: X509Certificate | undefined): string | null {
  if (cert === undefined) return null;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject);
  return cn === null ? null : (cn[1] as string);
}

interface SocketState {
  conn: PeerConnection | null;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** TLS: bytes that arrived before the handshake callback (server side). */
  early: Uint8Array[];
  earlyBytes: number;
  /** MAC: the decoder of the hello frame, until it has come. */
  hello: FrameDecoder | null;
}

const newSocketState = (transport: PeerTransport): SocketState => ({ conn: null, timer: undefined, early: [], earlyBytes: 0, hello: transport.kind === "mac" ? new FrameDecoder({ payloadBytesMax: helloPayloadBytesMax }) : null });

/**
 * Reads the one hello frame a MAC connection starts with (a request from a client, a response
 * from a server). Returns undefined while it is incomplete, the hello, or why the bytes are not
 * one hello and nothing else (a peer that sends more before the answer breaks the protocol).
 */
function readHello(decoder: FrameDecoder, chunk: Uint8Array, response: boolean): { hello: Hello; requestId: number } | { problem: string } | undefined {
  const got: Array<{ hello: Hello; requestId: number } | { problem: string }> = [];
  const error = decoder.push(chunk, (f) => {
    if (f.type !== messageType.hello || ((f.flags & frameFlags.response) !== 0) !== response) return void got.push({ problem: `expected a hello, got message type ${f.type}` });
    const h = decodeHello(f.payload);
    got.push(h.ok ? { hello: h.value, requestId: f.requestId } : { problem: h.reason });
  });
  if (error !== null) return { problem: `not a hello: ${error.reason}` };
  if (got.length === 0) return undefined;
  if (got.length > 1 || decoder.bufferedBytes > 0) return { problem: "bytes after the hello, before its answer" };
  return got[0];
}

function parseCertificate(pem: string): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

/** Bytes a server holds for a connection whose handshake callback has not come yet. */
const earlyBytesMax = 64 << 10;

const wireOf = (s: Socket<SocketState>) => ({ write: (b: Uint8Array) => s.write(b), end: () => s.end() });

export interface PeerServer {
  readonly port: number;
  readonly address: string;
  /** Authenticated connections now open. */
  connectionCount(): number;
  /** Stops listening and closes every connection (their requests fail as disconnected). */
  close(): void;
}

export interface PeerServerOptions {
  host: string;
  port: number;
  tls: PeerTls;
  handlers: Handlers;
  /** One-way frames peers may post here, by message type. */
  postHandlers?: PostHandlers;
  logger: Logger;
  limits?: ConnectionLimits;
  transport?: PeerTransport;
  /** A node (by its certificate's name) opened an authenticated connection to this server. */
  onPeerConnected?: (name: string) => void;
}

export function startPeerServer(options: PeerServerOptions): PeerServer {
  const { logger } = options;
  const transport = options.transport ?? peerTransportDefault;
  const caCert = new X509Certificate(options.tls.caPem);
  const ownKey: KeyObject = createPrivateKey(options.tls.keyPem);
  const sockets = new Set<Socket<SocketState>>();

  const refuse = (s: Socket<SocketState>, problem: string): void => {
    logger.warn("peer refused", { from: s.remoteAddress, reason: problem });
    s.data.early = [];
    s.terminate();
  };
  const accept = (s: Socket<SocketState>, name: string, auth: FrameAuth | null): PeerConnection => {
    clearTimeout(s.data.timer);
    s.setNoDelay(true);
    s.setKeepAlive(true, keepAliveDelayMs);
    const peer: PeerInfo = { name, address: hostPort(s.remoteAddress, s.remotePort) };
    const conn = new PeerConnection({ wire: wireOf(s), peer, handlers: options.handlers, ...(options.postHandlers === undefined ? {} : { postHandlers: options.postHandlers }), logger, limits: options.limits ?? connectionLimitsDefault, auth });
    s.data.conn = conn;
    logger.debug("peer connected", { peer: name, from: peer.address });
    options.onPeerConnected?.(name);
    return conn;
  };
  // MAC: the client's hello names its certificate; answer with ours and switch to sealed frames.
  const onHello = (s: Socket<SocketState>, decoder: FrameDecoder, chunk: Uint8Array): void => {
    const got = readHello(decoder, chunk, false);
    if (got === undefined) return;
    if ("problem" in got) return refuse(s, got.problem);
    const peerCert = parseCertificate(got.hello.cert);
    const verdict = judgePeerCertificate(peerCert, caCert, Date.now());
    if (!verdict.ok || peerCert === undefined) return refuse(s, verdict.ok ? "unreadable certificate" : verdict.problem);
    assert(transport.kind === "mac");
    if (got.hello.mac !== transport.mac) return refuse(s, `the peer proposes MAC ${got.hello.mac}, this node uses ${transport.mac}`);
    const answer: Hello = { cert: options.tls.certPem, nonce: randomBytes(helloNonceBytes), mac: transport.mac };
    const keys = deriveSessionKeys({ ownKey, peerCert, client: got.hello, server: answer });
    s.data.hello = null;
    const conn = accept(s, verdict.name, macFrameAuth(transport.mac, { sendKey: keys.serverToClient, receiveKey: keys.clientToServer }));
    conn.sendUnsealed(controlFrame({ type: messageType.hello, flags: frameFlags.response, requestId: got.requestId }, answer));
  };

  const listener: TCPSocketListener<SocketState> = Bun.listen<SocketState>({
    hostname: options.host,
    port: options.port,
    ...(transport.kind === "tls" ? { tls: { cert: options.tls.certPem, key: options.tls.keyPem, ca: options.tls.caPem, requestCert: true, rejectUnauthorized: true } } : {}),
    socket: {
      open(s) {
        s.data = newSocketState(transport);
        if (sockets.size >= peerConnectionsMax) {
          logger.warn("too many peer connections, refusing one", { from: s.remoteAddress });
          s.terminate();
          return;
        }
        sockets.add(s);
        s.data.timer = setTimeout(() => {
          if (s.data.conn === null) s.terminate();
        }, handshakeTimeoutMs);
      },
      handshake(s, success, error) {
        if (transport.kind !== "tls") return;
        const verdict = success && error === null ? judgePeerCertificate(s.getPeerX509Certificate(), caCert, Date.now()) : { ok: false as const, problem: `TLS: ${error?.message ?? "handshake failed"}` };
        if (!verdict.ok) return refuse(s, verdict.problem);
        const conn = accept(s, verdict.name, null);
        for (const chunk of s.data.early.splice(0)) conn.receive(chunk);
        s.data.earlyBytes = 0;
      },
      data(s, chunk) {
        if (s.data.conn !== null) return s.data.conn.receive(chunk);
        if (s.data.hello !== null) return onHello(s, s.data.hello, chunk);
        // TLS: Bun may deliver the client's first bytes before it calls handshake(): hold
        // them (copied, bounded) until the certificate has been judged.
        s.data.early.push(chunk.slice());
        s.data.earlyBytes += chunk.byteLength;
        if (s.data.earlyBytes > earlyBytesMax) s.terminate();
      },
      drain(s) {
        s.data.conn?.drained();
      },
      close(s) {
        sockets.delete(s);
        clearTimeout(s.data?.timer);
        s.data?.conn?.closed("the peer closed the connection");
      },
      error(_s, e) {
        logger.debug("peer connection error", { error: e.message });
      },
    },
  });
  const address = hostPort(options.host, listener.port);
  logger.info("peer listener started", { address, transport: transport.kind === "mac" ? transport.mac : "tls" });
  return {
    port: listener.port,
    address,
    connectionCount: () => [...sockets].filter((s) => s.data.conn?.isOpen === true).length,
    close() {
      listener.stop(true);
      for (const s of sockets) {
        s.data.conn?.close("the listener is closing");
        s.terminate();
      }
      sockets.clear();
    },
  };
}

export type PeerClientState = "connecting" | "open" | "waiting" | "closed";

export interface PeerClientOptions {
  host: string;
  port: number;
  tls: PeerTls;
  /** The node name the server's certificate must carry, when known. */
  expectName?: string;
  /** This node's id, sent in the first ping. */
  self?: string;
  /** Requests the server may send this node (usually none). */
  handlers?: Handlers;
  /** One-way frames the server may post to this node. */
  postHandlers?: PostHandlers;
  logger: Logger;
  limits?: ConnectionLimits;
  backoff?: BackoffPolicy;
  /** Jitter source in [0, 1); default: a generator seeded from the address (deterministic per peer). */
  random01?: () => number;
  /** Called on every state change (for tests and logs). */
  onState?: (state: PeerClientState) => void;
  transport?: PeerTransport;
}

/**
 * One peer as seen from this node: keeps a connection to it open, reconnecting after a loss
 * with jittered exponential backoff until close(). A request made while connecting waits for
 * the connection (within its own timeout); one made while waiting to retry fails at once as
 * "disconnected", so that a caller never queues behind a dead peer.
 */
export class PeerClient {
  readonly address: string;
  private readonly options: PeerClientOptions;
  private readonly limits: ConnectionLimits;
  private readonly backoff: BackoffPolicy;
  private readonly random01: () => number;
  private conn: PeerConnection | null = null;
  private socket: Socket<SocketState> | null = null;
  private stateNow: PeerClientState = "connecting";
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private openWaiters = new Set<() => void>();
  private lastErrorText = "";
  private readonly transport: PeerTransport;
  private readonly ownKey: KeyObject;

  constructor(options: PeerClientOptions) {
    this.options = options;
    this.transport = options.transport ?? peerTransportDefault;
    this.ownKey = createPrivateKey(options.tls.keyPem);
    this.address = hostPort(options.host, options.port);
    this.limits = options.limits ?? connectionLimitsDefault;
    this.backoff = options.backoff ?? peerBackoffDefault;
    this.random01 = options.random01 ?? seededRandom01(Array.from(this.address).reduce((h, c) => (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0, 7));
    this.connect();
  }

  get state(): PeerClientState {
    return this.stateNow;
  }

  /** Why the last connection attempt failed (for status and errors). */
  get lastError(): string {
    return this.lastErrorText;
  }

  /** The connection's own numbers, when one is open. */
  get connection(): PeerConnection | null {
    return this.conn;
  }

  async request<T>(spec: RequestSpec<T>): Promise<RequestOutcome<T>> {
    const timeoutMs = spec.timeoutMs ?? this.limits.requestTimeoutMs;
    if (this.stateNow === "connecting") {
      // Bounded: as many waiters as requests could be in flight.
      if (this.openWaiters.size >= this.limits.inflightRequestsMax) return { ok: false, reason: "busy", message: `${this.limits.inflightRequestsMax} requests already waiting for ${this.address}` };
      const started = Date.now();
      const opened = await new Promise<boolean>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.openWaiters.delete(done);
          resolve(this.stateNow === "open");
        };
        const timer = setTimeout(done, timeoutMs);
        this.openWaiters.add(done);
      });
      if (!opened) {
        const reason = this.stateNow === "connecting" ? "timeout" : "disconnected";
        return { ok: false, reason, message: `no connection to ${this.address}${this.lastErrorText === "" ? "" : `: ${this.lastErrorText}`}` };
      }
      return this.send(spec, Math.max(1, timeoutMs - (Date.now() - started)));
    }
    return this.send(spec, timeoutMs);
  }

  /**
   * Posts a one-way frame (PeerConnection.post). While the first connection is being made it
   * waits for it (bounded like requests, at most `timeoutMs`); while waiting to reconnect, or
   * when the connection refuses it, the frame is dropped: one-way senders retransmit.
   */
  post(build: (tagBytes: number) => Uint8Array, timeoutMs: number): void {
    if (this.stateNow === "open" && this.conn !== null) {
      this.conn.post(build);
      return;
    }
    if (this.stateNow !== "connecting" || this.openWaiters.size >= this.limits.inflightRequestsMax) return;
    const done = (): void => {
      clearTimeout(timer);
      this.openWaiters.delete(done);
      if (this.stateNow === "open") this.conn?.post(build);
    };
    const timer = setTimeout(done, timeoutMs);
    this.openWaiters.add(done);
  }

  private send<T>(spec: RequestSpec<T>, timeoutMs: number): Promise<RequestOutcome<T>> {
    const conn = this.conn;
    if (this.stateNow !== "open" || conn === null) return Promise.resolve({ ok: false, reason: "disconnected", message: `no connection to ${this.address}${this.lastErrorText === "" ? "" : `: ${this.lastErrorText}`}` });
    return conn.request({ ...spec, timeoutMs });
  }

  /**
   * The peer is known to be back (it just connected to us): a client waiting out its backoff
   * tries now, from the first step of the schedule. After a restart of some seconds the wait
   * had grown to seconds and held every message to the returned node (the manager's memberships
   * for its units among them) that long.
   */
  retryNow(): void {
    if (this.stateNow !== "waiting") return;
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    this.connect();
  }

  /** Stops reconnecting and closes the connection; requests in flight fail as disconnected. */
  close(): void {
    if (this.stateNow === "closed") return;
    this.setState("closed");
    clearTimeout(this.retryTimer);
    this.conn?.close("the client is closing");
    this.socket?.terminate();
    this.socket = null;
    this.conn = null;
  }

  private setState(state: PeerClientState): void {
    this.stateNow = state;
    if (state !== "connecting") for (const w of [...this.openWaiters]) w();
    this.options.onState?.(state);
  }

  private connect(): void {
    assert(this.stateNow !== "closed");
    this.setState("connecting");
    const { options } = this;
    let settled = false;
    // One attempt ends once: open, or failed (which schedules the next).
    const failed = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      this.lastErrorText = why;
      this.socket = null;
      this.conn = null;
      if (this.stateNow === "closed") return;
      const delay = backoffDelayMs(this.backoff, this.attempt, this.random01());
      this.attempt++;
      options.logger.debug("peer connection failed, retrying", { peer: this.address, reason: why, retryInMs: delay });
      this.setState("waiting");
      this.retryTimer = setTimeout(() => {
        if (this.stateNow === "waiting") this.connect();
      }, delay);
    };
    const guard = setTimeout(() => {
      this.socket?.terminate();
      failed(`no handshake within ${handshakeTimeoutMs} ms`);
    }, handshakeTimeoutMs);
    const client = this;
    const transport = this.transport;
    const caCert = new X509Certificate(options.tls.caPem);

    /** The server's certificate: the cluster's, for the address dialled, of the node expected. */
    const judgeServer = (cert: X509Certificate | undefined): { ok: true; name: string } | { ok: false; problem: string } => {
      const verdict = judgePeerCertificate(cert, caCert, Date.now());
      if (!verdict.ok) return verdict;
      if (cert?.checkIP(options.host) === undefined && cert?.checkHost(options.host) === undefined) return { ok: false, problem: `the peer's certificate is not for address ${options.host}` };
      if (options.expectName !== undefined && verdict.name !== options.expectName) return { ok: false, problem: `the peer at ${client.address} is node ${verdict.name}, not ${options.expectName}` };
      return verdict;
    };
    const refuse = (s: Socket<SocketState>, problem: string): void => {
      options.logger.warn("peer refused", { peer: client.address, reason: problem });
      failed(problem);
      s.terminate();
    };
    /** Authenticated: the first ping proves the server has accepted us (and, on MAC, holds its key). */
    const established = (s: Socket<SocketState>, name: string, auth: FrameAuth | null): void => {
      s.setNoDelay(true);
      s.setKeepAlive(true, keepAliveDelayMs);
      const conn = new PeerConnection({
        wire: wireOf(s),
        peer: { name, address: client.address },
        handlers: options.handlers ?? new Map(),
        ...(options.postHandlers === undefined ? {} : { postHandlers: options.postHandlers }),
        logger: options.logger,
        limits: client.limits,
        auth,
        onEnd: (reason) => (settled ? client.lost(conn, reason) : failed(reason)),
      });
      s.data.conn = conn;
      void conn.request(pingRequest(options.self ?? "", handshakeTimeoutMs)).then((r) => {
        if (settled) return;
        if (!r.ok && r.reason !== "remote-error") {
          failed(`the peer did not answer the first ping: ${r.message}`);
          conn.close("no answer to the first ping");
          return;
        }
        settled = true;
        clearTimeout(guard);
        client.conn = conn;
        client.attempt = 0;
        client.lastErrorText = "";
        client.setState("open");
      });
    };
    const ourHello: Hello | null = transport.kind === "mac" ? { cert: options.tls.certPem, nonce: randomBytes(helloNonceBytes), mac: transport.mac } : null;
    const onHello = (s: Socket<SocketState>, decoder: FrameDecoder, chunk: Uint8Array): void => {
      assert(ourHello !== null);
      const got = readHello(decoder, chunk, true);
      if (got === undefined) return;
      if ("problem" in got) return refuse(s, got.problem);
      const cert = parseCertificate(got.hello.cert);
      const verdict = judgeServer(cert);
      if (!verdict.ok || cert === undefined) return refuse(s, verdict.ok ? "unreadable certificate" : verdict.problem);
      if (got.hello.mac !== ourHello.mac) return refuse(s, `the peer answered with MAC ${got.hello.mac}, not ${ourHello.mac}`);
      const keys = deriveSessionKeys({ ownKey: client.ownKey, peerCert: cert, client: ourHello, server: got.hello });
      s.data.hello = null;
      established(s, verdict.name, macFrameAuth(ourHello.mac, { sendKey: keys.clientToServer, receiveKey: keys.serverToClient }));
    };

    // Bun.connect may also throw at once (a TLS key that does not match its certificate).
    const connecting = (): Promise<unknown> => Bun.connect<SocketState>({
      hostname: options.host,
      port: options.port,
      ...(transport.kind === "tls" ? { tls: { ca: options.tls.caPem, cert: options.tls.certPem, key: options.tls.keyPem, rejectUnauthorized: true } } : {}),
      socket: {
        open(s) {
          s.data = newSocketState(transport);
          client.socket = s;
          if (settled) return void s.terminate();
          if (ourHello !== null) {
            const hello = controlFrame({ type: messageType.hello, flags: 0, requestId: 1 }, ourHello);
            if (s.write(hello) !== hello.byteLength) refuse(s, "could not send the hello");
          }
        },
        handshake(s, success, error) {
          if (transport.kind !== "tls") return;
          if (settled) return void s.terminate();
          const verdict = success && error === null ? judgeServer(s.getPeerX509Certificate()) : { ok: false as const, problem: `the peer's certificate is not from this cluster's CA (TLS: ${error?.message ?? "handshake failed"})` };
          if (!verdict.ok) return refuse(s, verdict.problem);
          established(s, verdict.name, null);
        },
        data(s, chunk) {
          if (s.data.conn !== null) return s.data.conn.receive(chunk);
          if (s.data.hello !== null) onHello(s, s.data.hello, chunk);
        },
        drain(s) {
          s.data.conn?.drained();
        },
        close(s) {
          if (s.data?.conn !== null && s.data?.conn !== undefined) s.data.conn.closed("the peer closed the connection");
          else failed("the connection closed before the handshake finished");
        },
        connectError(_s, e) {
          failed(e.message);
        },
        error(_s, e) {
          options.logger.debug("peer socket error", { peer: client.address, error: e.message });
        },
      },
    });
    try {
      connecting().catch((e: unknown) => failed(e instanceof Error ? e.message : String(e)));
    } catch (e) {
      failed(e instanceof Error ? e.message : String(e));
    }
  }

  /** The open connection ended: reconnect after a backoff delay (short for the first retry). */
  private lost(conn: PeerConnection, reason: string): void {
    if (this.conn !== conn) return;
    this.conn = null;
    this.socket = null;
    this.lastErrorText = reason;
    if (this.stateNow === "closed") return;
    const delay = backoffDelayMs(this.backoff, this.attempt, this.random01());
    this.attempt++;
    this.options.logger.info("peer connection lost", { peer: this.address, reason, retryInMs: delay });
    this.setState("waiting");
    this.retryTimer = setTimeout(() => {
      if (this.stateNow === "waiting") this.connect();
    }, delay);
  }
}
