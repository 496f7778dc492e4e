// A client of the etcd v3 JSON API (the grpc-gateway under /v3/) over HTTP, for both backends:
// a real etcd (3.4+) and antietcd (embedded, or another node's). It speaks base64 keys and values
// and int64 as strings or numbers, fails over between endpoints, and bounds every request with a
// timeout: when no endpoint answers, the caller gets METADATA_UNAVAILABLE.
// Watches differ by backend: etcd streams newline-delimited JSON over one long POST to /v3/watch;
// antietcd serves watches over a websocket at its root. Both reconnect and resume from the next
// revision not yet delivered; a compacted revision is reported to the caller, never skipped.
// It must never retry a write whose outcome is unknown (a timeout after sending): the caller gets
// METADATA_UNAVAILABLE and decides, because a replayed transaction could apply twice.
import { assert } from "../util/assert.ts";
import { QstoraError } from "../util/errors.ts";
import { silentLogger, type Logger } from "../util/log.ts";
import { HttpsClient, type ClientTls } from "./https-client.ts";
import {
  checkKey,
  checkPrefix,
  prefixRangeEnd,
  valueBytesMax,
  type Compare,
  type KeyValue,
  type MetaStore,
  type Op,
  type OpResponse,
  type TxnRequest,
  type TxnResponse,
  type Watch,
  type WatchEvent,
  type WatchOptions,
} from "./store.ts";

/** Which server answers: decides the watch transport and how VALUE compares are encoded. */
export type MetaFlavor = "etcd" | "antietcd";

export interface EtcdClientOptions {
  /** Client URLs, e.g. http://127.0.0.1:2379. Tried in order, starting from the last that answered. */
  readonly endpoints: readonly string[];
  /** Time limit of one HTTP request to one endpoint, in ms. */
  readonly requestTimeoutMs?: number;
  /** Skips detection (one /v3/maintenance/status request) when known. */
  readonly flavor?: MetaFlavor;
  /** For https:// endpoints (qstora's embedded group): the cluster CA and this node's client certificate. */
  readonly tls?: MetaTls;
  readonly logger?: Logger;
}

/** TLS material of a metadata client: the CA that signs the servers and our client certificate. */
/** The node's certificate and key, and the cluster CA that the store's certificate must be of. */
export type MetaTls = ClientTls;

export const requestTimeoutMsDefault = 3_000;
/** A metadata request answered in more than this is a sick store; beyond it, waiting helps nobody. */
export const requestTimeoutMsMax = 60_000;
export const endpointsMax = 16;
/** Bounds one response body (a listing of the whole layout stays far below this). */
export const responseBytesMax = 64 * 1024 * 1024;
/** Bounds one line of etcd's watch stream (one watch response). */
export const watchLineBytesMax = 16 * 1024 * 1024;
/** Concurrent watches per client; each holds a connection. */
export const watchesMax = 256;
/** A watch checks its connection this often (a dead peer sends no FIN). */
export const watchProbeIntervalMs = 5_000;
/** Reconnect back-off of a watch, doubled after each failure up to the maximum. */
export const watchRetryMsMin = 100;
export const watchRetryMsMax = 2_000;

const textEncoder = new TextEncoder();

export function encodeBase64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

export function decodeBase64(text: string): string {
  return Buffer.from(text, "base64").toString("utf8");
}

function asRecord(x: unknown, what: string): Record<string, unknown> {
  if (typeof x !== "object" || x === null || Array.isArray(x)) {
    throw new QstoraError("INTERNAL", `the metadata store sent a malformed ${what}`);
  }
  return x as Record<string, unknown>;
}

/** int64 fields arrive as strings from etcd and as numbers from antietcd; proto3 omits zeros. */
function asInt(x: unknown, what: string): number {
  if (x === undefined || x === null) return 0;
  const n = typeof x === "number" ? x : typeof x === "string" ? Number(x) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new QstoraError("INTERNAL", `the metadata store sent a malformed ${what}: ${String(x)}`);
  return n;
}

function asArray(x: unknown, what: string): unknown[] {
  if (x === undefined || x === null) return [];
  if (!Array.isArray(x)) throw new QstoraError("INTERNAL", `the metadata store sent a malformed ${what}`);
  return x;
}

function asString(x: unknown, what: string): string {
  if (x === undefined || x === null) return "";
  if (typeof x !== "string") throw new QstoraError("INTERNAL", `the metadata store sent a malformed ${what}`);
  return x;
}

/** etcd writes lease "0" or nothing for "no lease"; antietcd writes nothing or null. */
function leaseOf(x: unknown): string | undefined {
  if (x === undefined || x === null || x === "" || x === "0" || x === 0) return undefined;
  return String(x);
}

function revisionOf(body: Record<string, unknown>): number {
  return asInt(asRecord(body["header"] ?? {}, "header")["revision"], "revision");
}

/** Decodes the kvs of a range response, keeping only what the request named (see store.ts). */
export function decodeKvs(raw: unknown, match: { key: string; prefix: boolean }): KeyValue[] {
  const kvs: KeyValue[] = [];
  for (const item of asArray(raw, "kvs")) {
    const kv = asRecord(item, "kv");
    const key = decodeBase64(asString(kv["key"], "key"));
    if (match.prefix ? !key.startsWith(match.key) : key !== match.key) continue;
    const lease = leaseOf(kv["lease"]);
    const value = decodeBase64(asString(kv["value"], "value"));
    const modRevision = asInt(kv["mod_revision"], "mod_revision");
    kvs.push(lease === undefined ? { key, value, modRevision } : { key, value, modRevision, lease });
  }
  // etcd sorts by key bytes; antietcd returns its tree's insertion order. Keys are ASCII paths
  // (schema.ts), so UTF-16 order is byte order.
  kvs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return kvs;
}

/**
 * Decodes the events of one watch response, keeps those under `prefix` (antietcd's resume
 * snapshot covers the whole tree), and orders them by revision. A DELETE in antietcd's snapshot
 * carries no revision: it takes the snapshot's.
 */
export function decodeWatchEvents(raw: unknown, prefix: string, headerRevision: number): WatchEvent[] {
  const events: WatchEvent[] = [];
  for (const item of asArray(raw, "watch events")) {
    const ev = asRecord(item, "watch event");
    const kv = asRecord(ev["kv"] ?? {}, "watch event kv");
    const key = decodeBase64(asString(kv["key"], "key"));
    if (!key.startsWith(prefix)) continue;
    const modRevision = kv["mod_revision"] === undefined ? headerRevision : asInt(kv["mod_revision"], "mod_revision");
    // proto3 JSON omits the default enum value, PUT.
    const type = ev["type"] ?? "PUT";
    if (type === "DELETE") {
      events.push({ type: "DELETE", key, modRevision });
    } else {
      assert(type === "PUT", `unknown watch event type ${String(type)}`);
      const value = decodeBase64(asString(kv["value"], "value"));
      const lease = leaseOf(kv["lease"]);
      events.push(lease === undefined ? { type: "PUT", key, value, modRevision } : { type: "PUT", key, value, modRevision, lease });
    }
  }
  events.sort((a, b) => a.modRevision - b.modRevision);
  return events;
}

/** Splits a byte stream into lines (etcd's gateway ends each watch response with '\n'). */
export class LineSplitter {
  private pending = "";
  private readonly decoder = new TextDecoder();

  constructor(private readonly lineBytesMax: number) {
    assert(lineBytesMax > 0);
  }

  push(chunk: Uint8Array): string[] {
    this.pending += this.decoder.decode(chunk, { stream: true });
    const lines = this.pending.split("\n");
    this.pending = lines.pop() ?? "";
    if (this.pending.length > this.lineBytesMax) {
      throw new QstoraError("INTERNAL", `a watch response is longer than ${this.lineBytesMax} bytes`);
    }
    return lines.filter((l) => l.trim() !== "");
  }
}

function encodeOp(op: Op): Record<string, unknown> {
  if ("put" in op) {
    checkKey(op.put.key);
    assert(textEncoder.encode(op.put.value).length <= valueBytesMax, `metadata value of ${op.put.key} is over ${valueBytesMax} bytes`);
    const put: Record<string, unknown> = { key: encodeBase64(op.put.key), value: encodeBase64(op.put.value) };
    if (op.put.lease !== undefined) put["lease"] = op.put.lease;
    return { request_put: put };
  }
  if ("delete" in op) return { request_delete_range: encodeRange(op.delete.key, op.delete.prefix === true) };
  return { request_range: encodeRange(op.range.key, op.range.prefix === true) };
}

function encodeRange(key: string, prefix: boolean): Record<string, unknown> {
  if (prefix) return { key: encodeBase64(key), range_end: encodeBase64(prefixRangeEnd(key)) };
  checkKey(key);
  return { key: encodeBase64(key) };
}

function encodeCompare(c: Compare, flavor: MetaFlavor): Record<string, unknown> {
  checkKey(c.key);
  const key = encodeBase64(c.key);
  // etcd's default result is EQUAL; antietcd refuses an explicit "EQUAL" (it knows only LESS).
  const result = c.result === "LESS" ? { result: "LESS" } : flavor === "etcd" ? { result: "EQUAL" } : {};
  switch (c.target) {
    case "VERSION":
      return { key, target: "VERSION", version: c.value, ...result };
    case "MOD":
      // A deleted key keeps its deletion's revision in antietcd but has mod_revision 0 in etcd;
      // "MOD = 0" means "absent" in etcd, which is "VERSION = 0" in both.
      if (c.value === 0 && c.result === "EQUAL") return { key, target: "VERSION", version: 0, ...result };
      return { key, target: "MOD", mod_revision: c.value, ...result };
    case "CREATE":
      return { key, target: "CREATE", create_revision: c.value, ...result };
    case "VALUE":
      // antietcd decodes the key of a compare but not its value: it compares the raw text.
      return { key, target: "VALUE", value: flavor === "etcd" ? encodeBase64(c.value) : c.value, ...result };
    default:
      return assertNever(c);
  }
}

function assertNever(x: never): never {
  throw new QstoraError("INTERNAL", `unexpected compare ${JSON.stringify(x)}`);
}

function decodeOpResponse(raw: unknown, op: Op): OpResponse {
  const r = asRecord(raw, "transaction response");
  if ("put" in op) return { kind: "put" };
  if ("delete" in op) {
    const d = asRecord(r["response_delete_range"] ?? {}, "delete response");
    return { kind: "delete", deleted: asInt(d["deleted"], "deleted") };
  }
  const g = asRecord(r["response_range"] ?? {}, "range response");
  return { kind: "range", kvs: decodeKvs(g["kvs"], { key: op.range.key, prefix: op.range.prefix === true }) };
}

/** Why an attempt on one endpoint failed; decides whether another endpoint may be tried. */
type AttemptFailure = { kind: "unreachable"; detail: string } | { kind: "unknown-outcome"; detail: string };

class HttpStatusError {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {}
}

function errorDetail(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as Error & { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}

/** True when the request cannot have reached the server (safe to send again elsewhere). */
function neverSent(e: unknown): boolean {
  const code = e instanceof Error ? (e as Error & { code?: unknown }).code : undefined;
  return code === "ConnectionRefused" || code === "ECONNREFUSED" || code === "FailedToOpenSocket" || code === "EHOSTUNREACH" || code === "ConnectTimeout";
}

function checkEndpoints(endpoints: readonly string[], tls: MetaTls | undefined): string[] {
  assert(endpoints.length > 0, "the metadata client needs at least one endpoint");
  assert(endpoints.length <= endpointsMax, `more than ${endpointsMax} metadata endpoints`);
  return endpoints.map((e) => {
    const url = new URL(e);
    if (url.protocol !== "http:" && !(url.protocol === "https:" && tls !== undefined)) {
      throw new QstoraError("INVALID_ARGUMENT", `metadata endpoint "${e}" is not an http:// URL`, "Give etcd client URLs such as http://10.0.0.1:2379.");
    }
    return url.origin;
  });
}

export class EtcdClient implements MetaStore {
  endpoints: readonly string[];
  readonly tls: MetaTls | undefined;
  readonly requestTimeoutMs: number;
  private readonly logger: Logger;
  private preferred = 0;
  private flavorKnown: MetaFlavor | undefined;
  private flavorPending: Promise<MetaFlavor> | undefined;
  private readonly watches = new Set<WatchLoop>();
  private closed = false;
  /** Kept-open connections for https endpoints (fetch would open one per request). */
  private readonly https: HttpsClient | undefined;

  constructor(endpointsOrOptions: readonly string[] | EtcdClientOptions) {
    const options: EtcdClientOptions = isEndpointList(endpointsOrOptions) ? { endpoints: endpointsOrOptions } : endpointsOrOptions;
    this.tls = options.tls;
    this.https = options.tls === undefined ? undefined : new HttpsClient(options.tls);
    this.endpoints = checkEndpoints(options.endpoints, options.tls);
    this.requestTimeoutMs = options.requestTimeoutMs ?? requestTimeoutMsDefault;
    assert(this.requestTimeoutMs > 0 && this.requestTimeoutMs <= requestTimeoutMsMax, `request timeout ${this.requestTimeoutMs} ms is out of range`);
    this.flavorKnown = options.flavor;
    this.logger = options.logger ?? silentLogger;
  }

  // ---- KV ----

  async get(key: string): Promise<KeyValue | undefined> {
    checkKey(key);
    const body = await this.call("/v3/kv/range", { key: encodeBase64(key) }, { idempotent: true });
    const kvs = decodeKvs(body["kvs"], { key, prefix: false });
    assert(kvs.length <= 1, "a single-key range returned several keys");
    return kvs[0];
  }

  async list(prefix: string): Promise<KeyValue[]> {
    checkPrefix(prefix);
    const body = await this.call("/v3/kv/range", encodeRange(prefix, true), { idempotent: true });
    return decodeKvs(body["kvs"], { key: prefix, prefix: true });
  }

  async put(key: string, value: string, options: { lease?: string } = {}): Promise<{ revision: number }> {
    const request = encodeOp({ put: options.lease === undefined ? { key, value } : { key, value, lease: options.lease } })["request_put"];
    const body = await this.call("/v3/kv/put", asRecord(request, "put"), { idempotent: true });
    return { revision: revisionOf(body) };
  }

  async delete(key: string, options: { prefix?: boolean } = {}): Promise<{ deleted: number }> {
    const body = await this.call("/v3/kv/deleterange", encodeRange(key, options.prefix === true), { idempotent: true });
    return { deleted: asInt(body["deleted"], "deleted") };
  }

  async txn(request: TxnRequest): Promise<TxnResponse> {
    const needsFlavor = request.compare.some((c) => c.target === "VALUE" || c.result === "EQUAL");
    const flavor = needsFlavor ? await this.flavor() : "etcd";
    const failure = request.failure ?? [];
    const body = await this.call(
      "/v3/kv/txn",
      {
        compare: request.compare.map((c) => encodeCompare(c, flavor)),
        success: request.success.map(encodeOp),
        failure: failure.map(encodeOp),
      },
      { idempotent: false },
    );
    const succeeded = body["succeeded"] === true;
    const ops = succeeded ? request.success : failure;
    const raw = asArray(body["responses"], "transaction responses");
    if (raw.length !== ops.length) throw new QstoraError("INTERNAL", `a transaction ran ${ops.length} operations but got ${raw.length} responses`);
    return { succeeded, revision: revisionOf(body), responses: raw.map((r, i) => decodeOpResponse(r, ops[i] as Op)) };
  }

  // ---- leases ----

  async leaseGrant(ttlSeconds: number): Promise<string> {
    assert(Number.isSafeInteger(ttlSeconds) && ttlSeconds > 0, `lease TTL ${ttlSeconds} must be a whole number of seconds`);
    const body = await this.call("/v3/lease/grant", { TTL: ttlSeconds }, { idempotent: false });
    const id = leaseOf(body["ID"]);
    if (id === undefined) throw new QstoraError("INTERNAL", "the metadata store granted a lease without an id");
    return id;
  }

  async leaseKeepAlive(id: string): Promise<number> {
    try {
      // etcd's gateway treats this as a stream of one request; it answers once and ends.
      const body = await this.call("/v3/lease/keepalive", { ID: id }, { idempotent: true });
      return asInt(asRecord(body["result"] ?? {}, "keepalive result")["TTL"], "TTL");
    } catch (e) {
      if (e instanceof QstoraError && e.code === "NOT_FOUND") return 0;
      throw e;
    }
  }

  async leaseRevoke(id: string): Promise<void> {
    try {
      await this.call("/v3/lease/revoke", { ID: id }, { idempotent: true });
    } catch (e) {
      if (e instanceof QstoraError && e.code === "NOT_FOUND") return;
      throw e;
    }
  }

  // ---- watches ----

  watch(prefix: string, options: WatchOptions, onEvents: (events: readonly WatchEvent[]) => void): Watch {
    assert(!this.closed, "watch on a closed metadata client");
    checkPrefix(prefix);
    if (options.fromRevision !== undefined) assert(Number.isSafeInteger(options.fromRevision) && options.fromRevision > 0, "fromRevision must be positive");
    if (this.watches.size >= watchesMax) {
      throw new QstoraError("INTERNAL", `more than ${watchesMax} metadata watches on one client`, "A component leaks watches: cancel them.");
    }
    const loop = new WatchLoop(this, prefix, options, onEvents, () => this.watches.delete(loop));
    this.watches.add(loop);
    loop.start();
    return loop;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of [...this.watches]) w.cancel();
    this.https?.close();
  }

  /** The server's kind, asked once (a failed detection is asked again next time). */
  async flavor(): Promise<MetaFlavor> {
    if (this.flavorKnown !== undefined) return this.flavorKnown;
    this.flavorPending ??= this.call("/v3/maintenance/status", {}, { idempotent: true }).then(
      (body) => {
        const version = asString(body["version"], "version");
        this.flavorKnown = version.startsWith("antietcd") ? "antietcd" : "etcd";
        return this.flavorKnown;
      },
      (e: unknown) => {
        this.flavorPending = undefined;
        throw e;
      },
    );
    return this.flavorPending;
  }

  /**
   * Replaces the endpoint list (the embedded group gained or lost a member). Requests and watches
   * under way finish on the old endpoints; the next attempt uses the new list.
   */
  setEndpoints(endpoints: readonly string[]): void {
    this.endpoints = checkEndpoints(endpoints, this.tls);
    this.preferred = 0;
  }

  /**
   * One endpoint's /v3/maintenance/status, decoded to what status shows: the member's id, the
   * leader's id and the revision (antietcd answers with node ids, etcd with numeric member ids).
   */
  /** One endpoint's status, undefined when it does not answer within `timeoutMs`. */
  async endpointStatus(endpoint: string, timeoutMs = this.requestTimeoutMs): Promise<{ memberId: string; leader: string; revision: number; raftTerm: number } | undefined> {
    try {
      const body = asRecord(JSON.parse(await this.attempt(endpoint, "/v3/maintenance/status", "{}", timeoutMs)) as unknown, "status");
      const header = asRecord(body["header"] ?? {}, "header");
      const str = (x: unknown): string => (x === undefined || x === null ? "" : String(x));
      return { memberId: str(header["member_id"]), leader: str(body["leader"]), revision: asInt(header["revision"], "revision"), raftTerm: asInt(body["raftTerm"] ?? header["raft_term"], "raft term") };
    } catch {
      return undefined;
    }
  }

  /** Options for fetch and WebSocket when the endpoint is https (undefined for plain http). */
  tlsOptions(): { ca: string; cert: string; key: string } | undefined {
    return this.tls === undefined ? undefined : { ca: this.tls.caPem, cert: this.tls.certPem, key: this.tls.keyPem };
  }

  /** The endpoint to try first; rotates on failure. */
  endpointAt(offset: number): string {
    const ep = this.endpoints[(this.preferred + offset) % this.endpoints.length];
    assert(ep !== undefined);
    return ep;
  }

  /** Asks one endpoint for its status within the timeout (the watch's liveness probe). */
  async probe(endpoint: string): Promise<boolean> {
    try {
      await this.attempt(endpoint, "/v3/maintenance/status", "{}");
      return true;
    } catch {
      return false;
    }
  }

  log(message: string, fields: Record<string, string | number | undefined>): void {
    this.logger.debug(message, fields);
  }

  isClosed(): boolean {
    return this.closed;
  }

  // ---- transport ----

  /**
   * Sends one request, trying each endpoint once from the last that answered. Reads and
   * idempotent writes move on after any failure; a transaction moves on only when it cannot
   * have been sent (connection refused).
   */
  private async call(path: string, request: Record<string, unknown>, options: { idempotent: boolean }): Promise<Record<string, unknown>> {
    assert(!this.closed, `metadata request ${path} on a closed client`);
    const payload = JSON.stringify(request);
    const failures: string[] = [];
    for (let i = 0; i < this.endpoints.length; i++) {
      const endpoint = this.endpointAt(i);
      let failure: AttemptFailure;
      try {
        const text = await this.attempt(endpoint, path, payload);
        this.preferred = (this.preferred + i) % this.endpoints.length;
        return asRecord(JSON.parse(text) as unknown, `response to ${path}`);
      } catch (e) {
        if (e instanceof HttpStatusError) {
          // 502: antietcd is stopping; 503: no quorum or no leader. Another member may serve.
          if (e.status !== 502 && e.status !== 503) throw httpError(path, e);
          failure = { kind: "unreachable", detail: `HTTP ${e.status} ${e.body.trim().slice(0, 200)}` };
        } else if (e instanceof QstoraError) {
          throw e;
        } else {
          failure = options.idempotent || neverSent(e) ? { kind: "unreachable", detail: errorDetail(e) } : { kind: "unknown-outcome", detail: errorDetail(e) };
        }
      }
      failures.push(`${endpoint}: ${failure.detail}`);
      this.logger.debug("metadata endpoint failed", { endpoint, path, error: failure.detail });
      if (failure.kind === "unknown-outcome") {
        throw new QstoraError(
          "METADATA_UNAVAILABLE",
          `the metadata store did not answer ${path} within ${this.requestTimeoutMs} ms; the change may or may not have been applied (${failures.join("; ")})`,
          "Read the state back before trying again.",
        );
      }
    }
    throw new QstoraError(
      "METADATA_UNAVAILABLE",
      `no metadata endpoint answered ${path} within ${this.requestTimeoutMs} ms (${failures.join("; ")})`,
      "Check that the metadata store (embedded antietcd or the etcd cluster) is running and reachable.",
    );
  }

  private async attempt(endpoint: string, path: string, payload: string, timeoutMs = this.requestTimeoutMs): Promise<string> {
    if (this.https !== undefined && endpoint.startsWith("https:")) {
      const a = await this.https.post(`${endpoint}${path}`, payload, { timeoutMs, contentType: "application/json", bodyBytesMax: responseBytesMax });
      if (a.status !== 200) throw new HttpStatusError(a.status, a.body);
      return a.body;
    }
    const tls = this.tlsOptions();
    const res = await fetch(`${endpoint}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: payload,
      signal: AbortSignal.timeout(timeoutMs),
      ...(tls === undefined ? {} : { tls }),
    });
    const length = Number(res.headers.get("content-length") ?? "0");
    if (length > responseBytesMax) {
      await res.body?.cancel();
      throw new QstoraError("INTERNAL", `a metadata response of ${length} bytes is over ${responseBytesMax}`);
    }
    const text = await res.text();
    if (text.length > responseBytesMax) throw new QstoraError("INTERNAL", `a metadata response is over ${responseBytesMax} bytes`);
    if (res.status !== 200) throw new HttpStatusError(res.status, text);
    return text;
  }
}

function isEndpointList(x: readonly string[] | EtcdClientOptions): x is readonly string[] {
  return Array.isArray(x);
}

/** Maps a refusal by the store to the error table. "Lease not found" is NOT_FOUND on both. */
function httpError(path: string, e: HttpStatusError): QstoraError {
  let message = e.body.trim();
  let grpcCode: number | undefined;
  try {
    const body = JSON.parse(e.body) as unknown;
    if (typeof body === "object" && body !== null) {
      const rec = body as Record<string, unknown>;
      if (typeof rec["message"] === "string") message = rec["message"];
      if (typeof rec["code"] === "number") grpcCode = rec["code"];
    }
  } catch {
    // antietcd answers errors in plain text.
  }
  // gRPC code 5 is NOT_FOUND; antietcd says "unknown lease" with HTTP 400.
  if (grpcCode === 5 || /unknown lease|lease not found/.test(message)) {
    return new QstoraError("NOT_FOUND", `metadata store: ${message}`);
  }
  return new QstoraError("INTERNAL", `the metadata store refused ${path} (HTTP ${e.status}): ${message.slice(0, 500)}`);
}

type WatchOutcome = { kind: "disconnected"; detail: string } | { kind: "compacted"; compactRevision: number } | { kind: "cancelled" };

/**
 * One watch: connects, delivers, and on any failure reconnects (rotating endpoints, with
 * back-off) from the next revision it has not delivered.
 */
class WatchLoop implements Watch {
  nextRevision: number | undefined;
  private cancelled = false;
  private disconnect: (() => void) | undefined;
  private attempts = 0;

  constructor(
    private readonly client: EtcdClient,
    private readonly prefix: string,
    private readonly options: WatchOptions,
    private readonly onEvents: (events: readonly WatchEvent[]) => void,
    private readonly onDone: () => void,
  ) {
    this.nextRevision = options.fromRevision;
  }

  start(): void {
    void this.run();
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.disconnect?.();
    this.onDone();
  }

  private async run(): Promise<void> {
    let backoffMs = watchRetryMsMin;
    while (!this.cancelled && !this.client.isClosed()) {
      const endpoint = this.client.endpointAt(this.attempts++);
      let outcome: WatchOutcome;
      try {
        const flavor = await this.client.flavor();
        if (this.cancelled) return;
        outcome = flavor === "antietcd" ? await this.runWebsocket(endpoint) : await this.runStream(endpoint);
      } catch (e) {
        outcome = { kind: "disconnected", detail: errorDetail(e) };
      }
      this.disconnect = undefined;
      if (this.cancelled || outcome.kind === "cancelled") return;
      this.client.log("metadata watch reconnecting", { prefix: this.prefix, from: this.nextRevision, outcome: outcome.kind === "disconnected" ? outcome.detail : outcome.kind });
      if (outcome.kind === "compacted") {
        this.cancel();
        this.options.onCompacted(outcome.compactRevision);
        return;
      }
      if (this.connectedOnce) backoffMs = watchRetryMsMin;
      this.connectedOnce = false;
      await Bun.sleep(backoffMs);
      backoffMs = Math.min(backoffMs * 2, watchRetryMsMax);
    }
  }

  /** Set when the current connection was created; resets the back-off after a good connection. */
  private connectedOnce = false;

  private createRequest(): Record<string, unknown> {
    const req: Record<string, unknown> = { key: encodeBase64(this.prefix), range_end: encodeBase64(prefixRangeEnd(this.prefix)) };
    if (this.nextRevision !== undefined) req["start_revision"] = this.nextRevision;
    return { create_request: req };
  }

  /** Delivers events not delivered yet and advances the resume point past them. */
  private deliver(events: readonly WatchEvent[]): void {
    if (this.cancelled) return;
    const fresh = this.nextRevision === undefined ? events : events.filter((e) => e.modRevision >= (this.nextRevision as number));
    if (fresh.length === 0) return;
    const last = fresh[fresh.length - 1];
    assert(last !== undefined);
    this.nextRevision = last.modRevision + 1;
    this.onEvents(fresh);
  }

  /** The whole state up to `revision` has been delivered (a snapshot or an empty creation). */
  private advanceTo(revision: number): void {
    if (this.nextRevision === undefined || this.nextRevision <= revision) this.nextRevision = revision + 1;
  }

  /** Handles one decoded watch response; returns an outcome when the connection must end. */
  private handle(message: unknown, flavor: MetaFlavor): WatchOutcome | "created" | undefined {
    const msg = asRecord(message, "watch message");
    if (msg["error"] !== undefined) return { kind: "disconnected", detail: `watch error: ${JSON.stringify(msg["error"]).slice(0, 200)}` };
    if (msg["result"] === undefined) return undefined;
    const r = asRecord(msg["result"], "watch result");
    const header = asRecord(r["header"] ?? {}, "watch header");
    const headerRevision = asInt(header["revision"], "revision");
    if (r["canceled"] === true) {
      const compactRevision = asInt(r["compact_revision"], "compact_revision");
      if (compactRevision > 0) return { kind: "compacted", compactRevision };
      return { kind: "disconnected", detail: `watch canceled: ${asString(r["cancel_reason"], "cancel_reason")}` };
    }
    const events = decodeWatchEvents(r["events"], this.prefix, headerRevision);
    if (r["created"] === true) {
      // antietcd does not persist the revisions that lease grants and keepalives consume, so
      // after a restart its revision can be behind what this watch has seen: changes would then
      // reuse revisions it skips. Report that like a compaction: the caller re-reads.
      if (this.nextRevision !== undefined && headerRevision + 1 < this.nextRevision) return { kind: "compacted", compactRevision: headerRevision };
      this.connectedOnce = true;
      this.deliver(events);
      // etcd sends the history after the creation; antietcd sends its snapshot with it. Only the
      // latter, or a watch from "now", has delivered everything up to the header's revision.
      if (flavor === "antietcd" || this.nextRevision === undefined) this.advanceTo(headerRevision);
      return "created";
    }
    this.deliver(events);
    return undefined;
  }

  /** etcd: POST /v3/watch; the gateway streams one JSON watch response per line. */
  private async runStream(endpoint: string): Promise<WatchOutcome> {
    const abort = new AbortController();
    let cancelledHere = false;
    this.disconnect = () => {
      cancelledHere = true;
      abort.abort();
    };
    if (this.cancelled) return { kind: "cancelled" };
    let created = false;
    const createTimer = setTimeout(() => {
      if (!created) abort.abort();
    }, this.client.requestTimeoutMs);
    let probing = false;
    const probeTimer = setInterval(() => {
      if (probing) return;
      probing = true;
      void this.client.probe(endpoint).then((ok) => {
        probing = false;
        if (!ok) abort.abort();
      });
    }, watchProbeIntervalMs);
    try {
      const res = await fetch(`${endpoint}/v3/watch`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(this.createRequest()),
        signal: abort.signal,
      });
      if (res.status !== 200 || res.body === null) return { kind: "disconnected", detail: `HTTP ${res.status}` };
      const splitter = new LineSplitter(watchLineBytesMax);
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return { kind: "disconnected", detail: "watch stream ended" };
        for (const line of splitter.push(value)) {
          const out = this.handle(JSON.parse(line) as unknown, "etcd");
          if (out === "created") created = true;
          else if (out !== undefined) {
            abort.abort();
            return out;
          }
        }
      }
    } catch (e) {
      if (cancelledHere) return { kind: "cancelled" };
      if (e instanceof QstoraError && e.code === "INTERNAL" && !created) throw e;
      return { kind: "disconnected", detail: errorDetail(e) };
    } finally {
      clearTimeout(createTimer);
      clearInterval(probeTimer);
    }
  }

  /** antietcd: one websocket per watch (its merged event messages carry no watch id). */
  private runWebsocket(endpoint: string): Promise<WatchOutcome> {
    return new Promise<WatchOutcome>((resolve) => {
      if (this.cancelled) {
        resolve({ kind: "cancelled" });
        return;
      }
      const tls = this.client.tlsOptions();
      // Bun's WebSocket takes TLS options (the client certificate the metadata gate demands).
      const socket = tls === undefined ? new WebSocket(endpoint.replace(/^http/, "ws")) : new WebSocket(endpoint.replace(/^http/, "ws"), { tls } as unknown as string[]);
      let settled = false;
      let answered = true;
      const finish = (outcome: WatchOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(createTimer);
        clearInterval(probeTimer);
        try {
          socket.close();
        } catch {
          // Closing a socket that failed to open throws in some runtimes; it is gone either way.
        }
        resolve(outcome);
      };
      this.disconnect = () => finish({ kind: "cancelled" });
      const createTimer = setTimeout(() => finish({ kind: "disconnected", detail: "watch not created in time" }), this.client.requestTimeoutMs);
      // A progress request is answered with a bare header: proof the connection is alive.
      const probeTimer = setInterval(() => {
        if (!answered) {
          finish({ kind: "disconnected", detail: "no answer to a progress request" });
          return;
        }
        answered = false;
        socket.send(JSON.stringify({ progress_request: {} }));
      }, watchProbeIntervalMs);
      socket.onopen = () => socket.send(JSON.stringify(this.createRequest()));
      socket.onmessage = (m: MessageEvent) => {
        if (settled) return;
        answered = true;
        try {
          const text = typeof m.data === "string" ? m.data : Buffer.from(m.data as ArrayBuffer).toString("utf8");
          const out = this.handle(JSON.parse(text) as unknown, "antietcd");
          if (out === "created") clearTimeout(createTimer);
          else if (out !== undefined) finish(out);
        } catch (e) {
          finish({ kind: "disconnected", detail: errorDetail(e) });
        }
      };
      socket.onerror = () => finish({ kind: "disconnected", detail: "websocket error" });
      socket.onclose = () => finish({ kind: "disconnected", detail: "websocket closed" });
    });
  }
}
