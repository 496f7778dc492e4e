// The metadata gate: a TLS listener on the node's address in front of the embedded antietcd, which
// itself listens only on a Unix socket in the data directory (or, when that path is too long, on
// a loopback port). Every connection must present a client certificate signed by the cluster CA;
// the gate checks that itself and then copies bytes both ways, so HTTP requests and the watch and
// peer websockets pass through unchanged.
//
// Why a gate rather than antietcd's own TLS: under Bun 1.3, node:https accepts a client
// certificate from any CA (it only checks that one is sent), and antietcd's request handler then
// crashes on the missing getPeerCertificate(); Bun.listen's TLS also reports `authorized` for a
// certificate of another CA. So the chain is checked here, with node's X509Certificate, against
// the one CA this cluster trusts: the signature, the issuer and the validity dates.
//
// It must never forward a byte from a connection whose certificate was not checked, and it never
// buffers more than `pendingBytesMax` per direction (a peer that does not read is cut off).
import { X509Certificate } from "node:crypto";
import type { Socket, TCPSocketListener } from "bun";
import { assert } from "../util/assert.ts";
import { QstoraError } from "../util/errors.ts";
import { silentLogger, type Logger } from "../util/log.ts";

/** Metadata answers are small; a side that lets this much pile up is not reading. */
export const pendingBytesMax = 64 * 1024 * 1024;
/** Connections at once (members, their watches, clients' requests). */
export const connectionsMax = 1024;
/** Time allowed to reach the backend. */
export const backendConnectTimeoutMs = 3_000;

export type GateBackend = { readonly unix: string } | { readonly host: string; readonly port: number };

export interface TlsGateOptions {
  readonly host: string;
  readonly port: number;
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
  readonly backend: GateBackend;
  readonly logger?: Logger;
}

export interface TlsGate {
  readonly url: string;
  stop(): void;
}

/** True when `raw` (DER) is a certificate that `ca` signed and that is valid at `now`. */
export function certificateSignedBy(raw: Uint8Array, ca: X509Certificate, now = new Date()): boolean {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(raw);
  } catch {
    return false;
  }
  if (!cert.checkIssued(ca)) return false;
  if (!cert.verify(ca.publicKey)) return false;
  return new Date(cert.validFrom) <= now && now <= new Date(cert.validTo);
}

/** One direction's bytes that the socket did not take yet. */
class Pending {
  private chunks: Uint8Array[] = [];
  bytes = 0;

  /** Writes what the socket takes, keeps the rest; false when over the limit. */
  write(socket: Socket<unknown>, data: Uint8Array): boolean {
    if (this.bytes > 0) return this.keep(data);
    const n = socket.write(data);
    return n >= data.length ? true : this.keep(data.subarray(Math.max(n, 0)));
  }

  flush(socket: Socket<unknown>): void {
    while (this.chunks.length > 0) {
      const head = this.chunks[0] as Uint8Array;
      const n = socket.write(head);
      if (n < head.length) {
        this.chunks[0] = head.subarray(Math.max(n, 0));
        this.bytes -= Math.max(n, 0);
        return;
      }
      this.chunks.shift();
      this.bytes -= head.length;
    }
  }

  /** Keeps bytes for later (the other side is not connected yet); false when over the limit. */
  hold(data: Uint8Array): boolean {
    return this.keep(data);
  }

  private keep(data: Uint8Array): boolean {
    // The chunk is a view of the runtime's receive buffer: copy what is kept.
    this.chunks.push(data.slice());
    this.bytes += data.length;
    return this.bytes <= pendingBytesMax;
  }
}

interface Link {
  front: Socket<Link>;
  back: Socket<Link> | undefined;
  checked: boolean;
  toBack: Pending;
  toFront: Pending;
  closed: boolean;
}

export function startTlsGate(options: TlsGateOptions): TlsGate {
  const logger = options.logger ?? silentLogger;
  const ca = new X509Certificate(options.caPem);
  assert(ca.ca, "the gate's CA certificate is not a CA");
  let open = 0;

  const close = (link: Link): void => {
    if (link.closed) return;
    link.closed = true;
    open--;
    link.front.end();
    link.back?.end();
  };

  const connectBack = (link: Link): void => {
    const handlers = {
      open(back: Socket<Link>) {
        if (link.closed) {
          back.end();
          return;
        }
        link.back = back;
        // Bytes that arrived before the backend connected.
        link.toBack.flush(back);
      },
      data(_back: Socket<Link>, chunk: Uint8Array) {
        if (!link.toFront.write(link.front, chunk)) close(link);
      },
      drain() {
        if (link.back !== undefined) link.toBack.flush(link.back);
      },
      close() {
        close(link);
      },
      error() {
        close(link);
      },
      connectError() {
        logger.warn("metadata backend unreachable");
        close(link);
      },
    };
    const target = options.backend;
    const p = "unix" in target ? Bun.connect<Link>({ unix: target.unix, data: link, socket: handlers }) : Bun.connect<Link>({ hostname: target.host, port: target.port, data: link, socket: handlers });
    const timer = setTimeout(() => {
      if (link.back === undefined) close(link);
    }, backendConnectTimeoutMs);
    p.then(
      () => clearTimeout(timer),
      () => {
        clearTimeout(timer);
        close(link);
      },
    );
  };

  let listener: TCPSocketListener<Link>;
  try {
    listener = Bun.listen<Link>({
      hostname: options.host,
      port: options.port,
      tls: { cert: options.certPem, key: options.keyPem, ca: options.caPem, requestCert: true, rejectUnauthorized: true },
      socket: {
        open(front) {
          open++;
          front.data = { front, back: undefined, checked: false, toBack: new Pending(), toFront: new Pending(), closed: false };
          if (open > connectionsMax) close(front.data);
        },
        handshake(front, success) {
          const link = front.data;
          const peer = front.getPeerCertificate() as { raw?: Uint8Array } | undefined;
          if (!success || peer?.raw === undefined || !certificateSignedBy(peer.raw, ca)) {
            logger.warn("metadata connection refused: no client certificate of this cluster", { from: front.remoteAddress });
            close(link);
            return;
          }
          link.checked = true;
          connectBack(link);
        },
        data(front, chunk) {
          const link = front.data;
          if (link.closed) return;
          // Bun may deliver the first bytes before the handshake callback: hold them until the
          // certificate is checked and the backend connected.
          const ok = !link.checked || link.back === undefined ? link.toBack.hold(chunk) : link.toBack.write(link.back, chunk);
          if (!ok) close(link);
        },
        drain(front) {
          front.data.toFront.flush(front);
        },
        close(front) {
          close(front.data);
        },
        error(front) {
          close(front.data);
        },
      },
    });
  } catch (e) {
    const code = (e as { code?: string } | null)?.code;
    const address = `${options.host}:${options.port}`;
    if (code === "EADDRINUSE") throw new QstoraError("IN_USE", `the metadata address ${address} is in use by another program`, "Stop that program or change metadata.listen in qstora.toml.");
    throw new QstoraError("CONFIG_INVALID", `cannot listen on ${address} for metadata: ${e instanceof Error ? e.message : String(e)}`, "Check metadata.listen in qstora.toml.");
  }
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: `https://${host}:${listener.port}`,
    stop: () => listener.stop(true),
  };
}
