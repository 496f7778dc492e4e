// HTTP/1.1 requests over TLS with a client certificate, on connections kept open between
// requests: what the metadata client (etcd-client.ts) uses for https endpoints. Bun 1.3's fetch
// opens a new connection for every request that carries its own `tls` options (it pools only
// connections without them), and each new connection to the metadata gate costs a TLS
// handshake on both ends, the gate's certificate checks and its connection to antietcd: at the
// ~17 metadata requests per second an idle node makes, that was a tenth of a core per node
// (docs/PERFORMANCE.md, "Idle cost").
//
// What it does: POST with a body, an answer with Content-Length or chunked; one request at a
// time per connection, up to `idleMax` connections kept per endpoint. The server's certificate
// must be signed by the given CA (checked here, as the gate checks clients: Bun's own
// verification is not relied on). A connection idle for `idleMsMax` is not reused (closed):
// Bun's server (antietcd) was seen keeping idle connections past 12 s, Go's (etcd) has no idle
// limit by default, so a request is not sent on a connection the server is closing; if one is,
// it fails like any lost connection (a transaction's outcome is then unknown, as with fetch).
// An error carries `code` "ConnectionRefused" (as fetch's do) or "ConnectTimeout" when the
// request cannot have been sent: the connection or its handshake failed or took too long.
import { X509Certificate } from "node:crypto";
import type { Socket } from "bun";
import { assert } from "../util/assert.ts";
import { concatBytes } from "../util/bytes.ts";
import { certificateSignedBy } from "./tls-gate.ts";

export interface ClientTls {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

/** Connections kept open per endpoint between requests. */
export const idleMax = 8;
/** A connection idle longer than this is closed rather than reused. */
export const idleMsMax = 10_000;
/** Header bytes of one answer beyond which it is refused. */
const headerBytesMax = 16 << 10;

class RequestError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

interface Exchange {
  resolve(a: HttpAnswer): void;
  reject(e: Error): void;
}

/** The state of one answer being read. Pure: bytes in, an answer (or a refusal) out. */
export class AnswerParser {
  private head: Uint8Array = new Uint8Array(0);
  private status = 0;
  private keepAlive = true;
  private length: number | null = null;
  private chunked = false;
  private readonly body: Uint8Array[] = [];
  private bodyBytes = 0;
  private buffered: Uint8Array = new Uint8Array(0);
  private done = false;

  constructor(private readonly bodyBytesMax: number) {}

  /** Feeds bytes; returns the answer once whole, a string for a malformed one, null for more. */
  push(chunk: Uint8Array): { answer: HttpAnswer; keepAlive: boolean } | string | null {
    assert(!this.done, "bytes after a whole answer");
    if (this.status === 0) {
      this.head = concatBytes([this.head, chunk]);
      const end = indexOfCrlfCrlf(this.head);
      if (end < 0) return this.head.length > headerBytesMax ? "answer headers too long" : null;
      const bad = this.parseHead(new TextDecoder().decode(this.head.subarray(0, end)));
      if (bad !== null) return bad;
      chunk = this.head.subarray(end + 4);
      this.head = new Uint8Array(0);
    }
    return this.chunked ? this.pushChunked(chunk) : this.pushPlain(chunk);
  }

  private parseHead(text: string): string | null {
    const lines = text.split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
    if (m === null) return `not an HTTP answer: ${(lines[0] ?? "").slice(0, 80)}`;
    this.status = Number(m[1]);
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim().toLowerCase();
      if (name === "content-length") {
        if (!/^\d+$/.test(value)) return `bad content-length ${value}`;
        this.length = Number(value);
        if (this.length > this.bodyBytesMax) return `an answer of ${this.length} bytes is over ${this.bodyBytesMax}`;
      } else if (name === "transfer-encoding") this.chunked = value.split(",").some((v) => v.trim() === "chunked");
      else if (name === "connection") this.keepAlive = !value.split(",").some((v) => v.trim() === "close");
    }
    if (!this.chunked && this.length === null) this.keepAlive = false; // read to the end of the connection
    return null;
  }

  private take(bytes: Uint8Array): string | null {
    this.bodyBytes += bytes.length;
    if (this.bodyBytes > this.bodyBytesMax) return `an answer is over ${this.bodyBytesMax} bytes`;
    if (bytes.length > 0) this.body.push(bytes.slice());
    return null;
  }

  private finish(): { answer: HttpAnswer; keepAlive: boolean } {
    this.done = true;
    const all = concatBytes(this.body);
    return { answer: { status: this.status, body: new TextDecoder().decode(all) }, keepAlive: this.keepAlive };
  }

  private pushPlain(chunk: Uint8Array): { answer: HttpAnswer; keepAlive: boolean } | string | null {
    if (this.length === null) {
      const bad = this.take(chunk);
      return bad; // complete only at the end of the connection: end()
    }
    const want = this.length - this.bodyBytes;
    if (chunk.length > want) return "bytes after the answer";
    const bad = this.take(chunk);
    if (bad !== null) return bad;
    return this.bodyBytes === this.length ? this.finish() : null;
  }

  private pushChunked(chunk: Uint8Array): { answer: HttpAnswer; keepAlive: boolean } | string | null {
    this.buffered = concatBytes([this.buffered, chunk]);
    for (;;) {
      const lineEnd = indexOfCrlf(this.buffered);
      if (lineEnd < 0) return this.buffered.length > 64 ? "bad chunk size line" : null;
      const sizeText = new TextDecoder().decode(this.buffered.subarray(0, lineEnd)).split(";")[0]?.trim() ?? "";
      if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) return `bad chunk size ${sizeText.slice(0, 20)}`;
      const size = parseInt(sizeText, 16);
      if (size === 0) {
        // The last chunk, then (no trailers from the servers we talk to) an empty line.
        if (this.buffered.length < lineEnd + 4) return null;
        return this.finish();
      }
      if (this.buffered.length < lineEnd + 2 + size + 2) return null;
      const bad = this.take(this.buffered.subarray(lineEnd + 2, lineEnd + 2 + size));
      if (bad !== null) return bad;
      this.buffered = this.buffered.slice(lineEnd + 2 + size + 2);
    }
  }

  /** The connection ended: the answer if it was read to the end of the connection. */
  end(): { answer: HttpAnswer; keepAlive: boolean } | null {
    if (this.status !== 0 && !this.chunked && this.length === null && !this.done) return this.finish();
    return null;
  }
}

function indexOfCrlf(b: Uint8Array): number {
  for (let i = 0; i + 1 < b.length; i++) if (b[i] === 13 && b[i + 1] === 10) return i;
  return -1;
}

function indexOfCrlfCrlf(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  return -1;
}

interface Conn {
  readonly socket: Socket<ConnData>;
  idleSince: number;
}

interface ConnData {
  exchange: Exchange | null;
  parser: AnswerParser | null;
  closed: boolean;
  /** Called once the TLS handshake and the certificate check are done (or failed). */
  ready: ((ok: boolean, why: string) => void) | null;
  /** The rest of a request the socket did not take yet. */
  unsent: Uint8Array | null;
}

export class HttpsClient {
  private readonly idle = new Map<string, Conn[]>();
  private readonly ca: X509Certificate;
  private closed = false;

  constructor(private readonly tls: ClientTls) {
    this.ca = new X509Certificate(tls.caPem);
  }

  /** POSTs `body` to `url` (https://host:port/path) and reads the whole answer, within `timeoutMs`. */
  async post(url: string, body: string, options: { timeoutMs: number; contentType: string; bodyBytesMax: number }): Promise<HttpAnswer> {
    assert(!this.closed, "request on a closed HTTPS client");
    const u = new URL(url);
    assert(u.protocol === "https:", "HttpsClient speaks https only");
    const port = Number(u.port || 443);
    const hostname = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
    const key = `${hostname}:${port}`;
    const deadline = performance.now() + options.timeoutMs;
    const conn = this.takeIdle(key) ?? (await this.connect(hostname, port, Math.max(1, deadline - performance.now())));
    const payload = Buffer.from(body);
    const head = `POST ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: ${options.contentType}\r\nContent-Length: ${payload.length}\r\nConnection: keep-alive\r\n\r\n`;
    const data = conn.socket.data;
    return await new Promise<HttpAnswer>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(conn.socket, new RequestError(`no answer within ${options.timeoutMs} ms`, "TimeoutError")), Math.max(1, deadline - performance.now()));
      data.parser = new AnswerParser(options.bodyBytesMax);
      data.exchange = {
        resolve: (a) => {
          clearTimeout(timer);
          resolve(a);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const bytes = Buffer.concat([Buffer.from(head), payload]);
      const n = Math.max(0, conn.socket.write(bytes));
      // What the socket did not take goes out as it drains (a large value under back-pressure).
      data.unsent = n < bytes.length ? bytes.subarray(n) : null;
    }).finally(() => {
      if (!data.closed && data.exchange === null && data.parser === null) this.putIdle(key, conn);
    });
  }

  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const c of list) c.socket.end();
    this.idle.clear();
  }

  private takeIdle(key: string): Conn | undefined {
    const list = this.idle.get(key);
    const now = performance.now();
    while (list !== undefined && list.length > 0) {
      const c = list.pop() as Conn;
      if (!c.socket.data.closed && now - c.idleSince < idleMsMax) return c;
      c.socket.end();
    }
    return undefined;
  }

  private putIdle(key: string, conn: Conn): void {
    if (this.closed) return void conn.socket.end();
    const list = this.idle.get(key) ?? [];
    if (list.length >= idleMax) return void conn.socket.end();
    conn.idleSince = performance.now();
    list.push(conn);
    this.idle.set(key, list);
  }

  private fail(socket: Socket<ConnData>, e: Error): void {
    const d = socket.data;
    const ex = d.exchange;
    d.exchange = null;
    d.parser = null;
    d.unsent = null;
    d.closed = true;
    socket.end();
    ex?.reject(e);
  }

  private onData(socket: Socket<ConnData>, chunk: Uint8Array): void {
    const d = socket.data;
    if (d.exchange === null || d.parser === null) return void socket.end(); // bytes nobody asked for
    const out = d.parser.push(chunk);
    if (out === null) return;
    if (typeof out === "string") return this.fail(socket, new RequestError(out, "BadAnswer"));
    const ex = d.exchange;
    d.exchange = null;
    d.parser = null;
    if (!out.keepAlive) {
      d.closed = true;
      socket.end();
    }
    ex.resolve(out.answer);
  }

  private onClose(socket: Socket<ConnData>): void {
    const d = socket.data;
    d.closed = true;
    d.ready?.(false, "connection closed during the TLS handshake");
    d.ready = null;
    const ex = d.exchange;
    if (ex === null) return;
    const whole = d.parser?.end() ?? null;
    d.exchange = null;
    d.parser = null;
    if (whole !== null) ex.resolve(whole.answer);
    else ex.reject(new RequestError("the connection closed before the whole answer", "ECONNRESET"));
  }

  private async connect(hostname: string, port: number, timeoutMs: number): Promise<Conn> {
    const data: ConnData = { exchange: null, parser: null, closed: false, ready: null, unsent: null };
    const ca = this.ca;
    const ready = new Promise<{ ok: boolean; why: string }>((resolve) => {
      data.ready = (ok, why) => resolve({ ok, why });
    });
    // One deadline for the connection and its TLS handshake together. A peer that drops the SYN
    // (a cut link) would otherwise hold the request for the kernel's minutes.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), timeoutMs);
    });
    let socket: Socket<ConnData>;
    let gaveUp = false;
    try {
      const connecting = Bun.connect<ConnData>({
        hostname,
        port,
        data,
        tls: { ca: this.tls.caPem, cert: this.tls.certPem, key: this.tls.keyPem, rejectUnauthorized: false },
        socket: {
          handshake(s, success) {
            const peer = s.getPeerCertificate() as { raw?: Uint8Array } | undefined;
            const ok = success && peer?.raw !== undefined && certificateSignedBy(peer.raw, ca);
            s.data.ready?.(ok, ok ? "" : "the server's certificate is not of this cluster");
            s.data.ready = null;
          },
          data: (s, chunk) => this.onData(s, chunk),
          drain: (s) => {
            const rest = s.data.unsent;
            if (rest === null) return;
            const n = Math.max(0, s.write(rest));
            s.data.unsent = n < rest.length ? rest.subarray(n) : null;
          },
          close: (s) => this.onClose(s),
          error: (s) => this.onClose(s),
        },
      });
      connecting.then((s) => (gaveUp ? s.end() : undefined)).catch(() => undefined);
      const first = await Promise.race([connecting, late]);
      if (first === "late") {
        gaveUp = true;
        throw new RequestError(`no connection to ${hostname}:${port} within ${timeoutMs} ms`, "ConnectTimeout");
      }
      socket = first;
    } catch (e) {
      clearTimeout(timer);
      if (e instanceof RequestError) throw e;
      const code = (e as { code?: string } | null)?.code ?? "ConnectionRefused";
      throw new RequestError(`cannot connect to ${hostname}:${port}: ${e instanceof Error ? e.message : String(e)}`, code === "ECONNREFUSED" ? "ConnectionRefused" : code);
    }
    const r = await Promise.race([ready, late.then(() => ({ ok: false, why: `no TLS handshake within ${timeoutMs} ms of starting to connect` }))]);
    clearTimeout(timer);
    if (!r.ok) {
      socket.end();
      // Nothing of the request was sent: safe to try elsewhere.
      throw new RequestError(`${hostname}:${port}: ${r.why}`, "ConnectionRefused");
    }
    return { socket, idleSince: performance.now() };
  }
}
