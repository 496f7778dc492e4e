// One node-to-node connection once it is authenticated, over any byte pipe: frames in and out,
// requests this node sent (correlated by request id, bounded, each with a timeout), requests
// the peer sent (dispatched to handlers by message type, bounded), and the unsent-bytes queue.
// It never opens or authenticates a socket (peer.ts does) and never interprets a payload
// (handlers and decoders do).
//
// Ordering contract:
// - frames leave in the order send() is called (small ones gathered within one turn of the
//   event loop and written together); what Bun's socket.write did not take is queued and
//   written on drain, before anything newer;
// - a request is registered before its frame is sent, so that even an instant answer finds it;
// - when the connection ends, every request in flight is failed with "disconnected" before
//   close() returns, and late answers are dropped.
import { assert } from "../util/assert.ts";
import type { Logger } from "../util/log.ts";
import { FrameDecoder, describeFrameError, frameFlags, releaseFrame, type Frame } from "./frame.ts";
import { forwardFramePayloadBytesMax } from "./scsi-forward.ts";
import { decodeErrorBody, errorFrame, messageType, type Decoded, type WireErrorCode } from "./messages.ts";
import { RequestTable, inflightRequestsMaxDefault } from "./requests.ts";

/** Frames shorter than this are gathered and written together; longer ones go out alone (no copy). */
const coalesceFrameBytesMax = 16 << 10;
/** Gathered bytes are written once they reach this, without waiting for the end of the turn. */
const coalesceBytesMax = 256 << 10;

/** What a connection needs from its socket. */
export interface Wire {
  /**
   * Writes what it can, returns the number of bytes taken (Bun's socket.write). It keeps no
   * reference to `bytes`: a large frame taken whole is reused for the next one (releaseFrame).
   */
  write(bytes: Uint8Array): number;
  /** Closes the socket; the driver then calls closed(). */
  end(): void;
}

/**
 * Frame authentication done by this layer rather than by the transport (the HMAC variant;
 * TLS needs none). seal() fills the tag space at the end of an outgoing frame; verify() checks
 * an incoming one. Both count frames, so they must see every frame in wire order.
 */
export interface FrameAuth {
  readonly tagBytes: number;
  seal(frame: Uint8Array): void;
  verify(frame: Frame): boolean;
}

export interface ConnectionLimits {
  /** Requests this node may have in flight on the connection; more are refused as busy. */
  inflightRequestsMax: number;
  /** Peer requests handled at once; more are answered busy. */
  handlingMax: number;
  /** Unsent bytes queued; beyond this the peer is not reading and the connection is closed. */
  queuedBytesMax: number;
  /** The timeout of a request that names none. */
  requestTimeoutMs: number;
  /** Longest frame payload accepted. */
  payloadBytesMax: number;
}

export const connectionLimitsDefault: ConnectionLimits = {
  inflightRequestsMax: inflightRequestsMaxDefault,
  handlingMax: 64,
  // 64 requests and 64 answers of 1 MiB each can be queued without reading's being stuck.
  queuedBytesMax: 160 << 20,
  requestTimeoutMs: 5_000,
  // A forwarded SCSI command (scsi-forward.ts) carries up to 16 MiB of Data-Out or Data-In;
  // replication's own frames stay within payloadBytesMaxDefault. The decoder's buffer grows only
  // to the frames that come, so the higher ceiling costs nothing until such a frame arrives.
  payloadBytesMax: forwardFramePayloadBytesMax,
};

/** Who is at the other end, as its certificate says. */
export interface PeerInfo {
  /** The node name (the certificate's subject CN). */
  name: string;
  /** host:port of the remote end. */
  address: string;
}

/**
 * Answers one request. It must read `frame` before its first await (the payload is a view
 * of a buffer that is reused), and returns the whole response frame, built with
 * `frame.requestId`, `frameFlags.response` and `tagBytes` of room for the tag.
 */
export type Handler = (frame: Frame, context: { peer: PeerInfo; tagBytes: number }) => Uint8Array | Promise<Uint8Array>;
export type Handlers = ReadonlyMap<number, Handler>;
/**
 * Takes one one-way frame (a post). Like a Handler it must read `frame` before it returns (the
 * payload is a view of a buffer that is reused); nothing is sent back, whatever happens.
 */
export type PostHandler = (frame: Frame, context: { peer: PeerInfo }) => void;
export type PostHandlers = ReadonlyMap<number, PostHandler>;

/**
 * Unsent bytes beyond which a post is refused (returns false): a peer that does not keep up
 * loses one-way messages, which their senders retransmit, instead of filling memory until the
 * connection is cut at queuedBytesMax.
 */
export const postQueuedBytesMax = 32 << 20;

export type RequestFailure =
  | { ok: false; reason: "busy" | "timeout" | "disconnected" | "bad-response"; message: string }
  | { ok: false; reason: "remote-error"; code: WireErrorCode; message: string };
export type RequestOutcome<T> = { ok: true; value: T } | RequestFailure;

export interface RequestSpec<T> {
  /** Builds the request frame for a request id, with tagBytes of room at its end. */
  build(requestId: number, tagBytes: number): Uint8Array;
  /** Reads the response (synchronously, while its payload view is valid). */
  decode(frame: Frame): Decoded<T>;
  /** The message type the response must carry (besides `error`). */
  responseType: number;
  timeoutMs?: number;
}

interface Pending {
  finish(outcome: RequestOutcome<unknown> | { frame: Frame }): void;
}

export class PeerConnection {
  readonly peer: PeerInfo;
  private readonly wire: Wire;
  private readonly limits: ConnectionLimits;
  private readonly handlers: Handlers;
  private readonly postHandlers: PostHandlers;
  private readonly auth: FrameAuth | null;
  private readonly logger: Logger;
  private readonly decoder: FrameDecoder;
  private readonly table: RequestTable<Pending>;
  private readonly queue: Uint8Array[] = [];
  private queuedBytes = 0;
  /** Small frames gathered in this turn of the event loop, written together at its end. */
  private corked: Uint8Array[] = [];
  private corkedBytes = 0;
  private flushScheduled = false;
  private handling = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAtMs = Infinity;
  private ended = false;
  private readonly onEnd: (reason: string) => void;

  constructor(options: { wire: Wire; peer: PeerInfo; handlers: Handlers; postHandlers?: PostHandlers; logger: Logger; limits?: ConnectionLimits; auth?: FrameAuth | null; onEnd?: (reason: string) => void }) {
    this.wire = options.wire;
    this.peer = options.peer;
    this.handlers = options.handlers;
    this.postHandlers = options.postHandlers ?? new Map();
    this.logger = options.logger;
    this.limits = options.limits ?? connectionLimitsDefault;
    this.auth = options.auth ?? null;
    this.onEnd = options.onEnd ?? (() => undefined);
    this.decoder = new FrameDecoder({ payloadBytesMax: this.limits.payloadBytesMax, tagBytes: this.auth?.tagBytes ?? 0 });
    this.table = new RequestTable<Pending>(this.limits.inflightRequestsMax);
  }

  get tagBytes(): number {
    return this.auth?.tagBytes ?? 0;
  }

  get isOpen(): boolean {
    return !this.ended;
  }

  /** Requests in flight (this node's). */
  get inflight(): number {
    return this.table.size;
  }

  /** Unsent bytes: waiting for drain, or gathered for the end of this turn. */
  get queued(): number {
    return this.queuedBytes + this.corkedBytes;
  }

  /** Sends a request; resolves with its decoded response or why there is none. Never throws for the network. */
  request<T>(spec: RequestSpec<T>): Promise<RequestOutcome<T>> {
    if (this.ended) return Promise.resolve({ ok: false, reason: "disconnected", message: `the connection to ${this.peer.name} is closed` });
    return new Promise<RequestOutcome<T>>((resolve) => {
      const pending: Pending = {
        finish: (o) => {
          if (!("frame" in o)) return resolve(o as RequestOutcome<T>);
          const f = o.frame;
          if (f.type === messageType.error) {
            const e = decodeErrorBody(f.payload);
            return resolve(e.ok ? { ok: false, reason: "remote-error", code: e.value.code, message: e.value.message } : { ok: false, reason: "bad-response", message: e.reason });
          }
          if (f.type !== spec.responseType) return resolve({ ok: false, reason: "bad-response", message: `response of type ${f.type} to a request expecting ${spec.responseType}` });
          const d = spec.decode(f);
          resolve(d.ok ? d : { ok: false, reason: "bad-response", message: d.reason });
        },
      };
      const timeoutMs = spec.timeoutMs ?? this.limits.requestTimeoutMs;
      const begun = this.table.begin(pending, Date.now(), timeoutMs);
      if (!begun.ok) return resolve({ ok: false, reason: "busy", message: `${this.limits.inflightRequestsMax} requests already in flight to ${this.peer.name}` });
      const frame = spec.build(begun.requestId, this.tagBytes);
      this.send(frame);
      this.armTimer(begun.deadlineMs);
    });
  }

  /**
   * Sends a one-way frame, built with requestId 0 and `frameFlags.oneWay`, that nothing answers.
   * False when it was not sent: the connection is closed or more than `postQueuedBytesMax` bytes
   * wait for the socket. Ordered with requests and answers (one queue).
   */
  post(build: (tagBytes: number) => Uint8Array): boolean {
    if (this.ended || this.queued > postQueuedBytesMax) return false;
    this.send(build(this.tagBytes));
    return !this.ended;
  }

  /** Bytes from the socket. */
  receive(chunk: Uint8Array): void {
    if (this.ended) return;
    const error = this.decoder.push(chunk, (f) => this.onFrame(f));
    if (error !== null) this.close(`protocol error: ${describeFrameError(error)}`);
  }

  /** The socket can take more: write what is queued, oldest first. */
  drained(): void {
    while (!this.ended && this.queue.length > 0) {
      const head = this.queue[0] as Uint8Array;
      const n = Math.max(0, this.wire.write(head));
      this.queuedBytes -= n;
      if (n < head.byteLength) {
        this.queue[0] = head.subarray(n);
        break;
      }
      this.queue.shift();
      // The last piece of a frame written in parts: the socket has taken every byte of it.
      releaseFrame(head.byteOffset === 0 ? head : new Uint8Array(head.buffer, 0, head.byteOffset + head.byteLength));
    }
    assert(this.queuedBytes >= 0);
  }

  /** The socket has closed (or this side gave up on it). Idempotent. */
  closed(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.corked = [];
    this.corkedBytes = 0;
    for (const p of this.table.drain()) p.finish({ ok: false, reason: "disconnected", message: `the connection to ${this.peer.name} closed: ${reason}` });
    assert(this.table.size === 0);
    this.onEnd(reason);
  }

  /** Closes the connection: pending requests fail now, the socket ends. */
  close(reason: string): void {
    if (this.ended) return;
    this.logger.debug("peer connection closing", { peer: this.peer.name, reason });
    this.closed(reason);
    this.wire.end();
  }

  /** Sends a frame as it is, unsealed: only the hello, before any sealed frame. */
  sendUnsealed(frame: Uint8Array): void {
    this.enqueue(frame);
  }

  private send(frame: Uint8Array): void {
    if (this.ended) return;
    this.auth?.seal(frame);
    this.enqueue(frame);
  }

  private enqueue(frame: Uint8Array): void {
    if (this.ended) return;
    if (this.queue.length > 0) {
      // Waiting for drain: behind what is already queued.
      this.queue.push(frame);
      this.queuedBytes += frame.byteLength;
    } else if (frame.byteLength >= coalesceFrameBytesMax) {
      this.flushCorked();
      this.writeOrQueue(frame);
    } else {
      // Small frames sent in one turn of the event loop leave in one write (one system call
      // instead of one each: at 32 requests in flight this doubles the rate on plain TCP).
      this.corked.push(frame);
      this.corkedBytes += frame.byteLength;
      if (this.corkedBytes >= coalesceBytesMax) this.flushCorked();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => {
          this.flushScheduled = false;
          this.flushCorked();
        });
      }
    }
    if (this.queued > this.limits.queuedBytesMax) this.close(`the peer is not reading: over ${this.limits.queuedBytesMax} bytes queued`);
  }

  /** Writes the small frames sent in this turn now instead of at the end of it. */
  flushNow(): void {
    this.flushCorked();
  }

  private flushCorked(): void {
    if (this.ended || this.corked.length === 0) return;
    let bytes: Uint8Array;
    if (this.corked.length === 1) bytes = this.corked[0] as Uint8Array;
    else {
      bytes = new Uint8Array(this.corkedBytes);
      let at = 0;
      for (const f of this.corked) {
        bytes.set(f, at);
        at += f.byteLength;
      }
    }
    this.corked = [];
    this.corkedBytes = 0;
    if (this.queue.length > 0) {
      this.queue.push(bytes);
      this.queuedBytes += bytes.byteLength;
    } else this.writeOrQueue(bytes);
  }

  private writeOrQueue(bytes: Uint8Array): void {
    assert(this.queue.length === 0);
    const n = Math.max(0, this.wire.write(bytes));
    if (n === bytes.byteLength) return releaseFrame(bytes);
    // The rest is a view of bytes this connection built and no one else holds: no copy.
    this.queue.push(bytes.subarray(n));
    this.queuedBytes += bytes.byteLength - n;
  }

  private onFrame(f: Frame): void {
    if (this.ended) return;
    if (this.auth !== null && !this.auth.verify(f)) return this.close("a frame failed its authentication tag");
    if ((f.flags & frameFlags.oneWay) !== 0) {
      // Nothing is ever sent back for a post, not even for an unknown type or a failure: the
      // sender does not wait, and its state machine retransmits what mattered.
      const post = this.postHandlers.get(f.type);
      if (post === undefined) return this.logger.debug("one-way frame of a type without a handler, dropped", { peer: this.peer.name, type: f.type });
      try {
        post(f, { peer: this.peer });
      } catch (e) {
        this.logger.warn("peer one-way handler failed", { peer: this.peer.name, type: f.type, error: e instanceof Error ? e.message : String(e) });
      }
      return;
    }
    if ((f.flags & frameFlags.response) !== 0) {
      // An id not in flight is an answer that came after its timeout: dropped.
      this.table.settle(f.requestId)?.finish({ frame: f });
      return;
    }
    const handler = this.handlers.get(f.type);
    if (handler === undefined) return this.send(errorFrame(f.requestId, { code: "unknown-type", message: `no handler for message type ${f.type}` }, this.tagBytes));
    if (this.handling >= this.limits.handlingMax) return this.send(errorFrame(f.requestId, { code: "busy", message: `${this.limits.handlingMax} requests already being handled` }, this.tagBytes));
    const requestId = f.requestId;
    const failed = (e: unknown): void => {
      this.logger.warn("peer request handler failed", { peer: this.peer.name, type: f.type, error: e instanceof Error ? e.message : String(e) });
      this.send(errorFrame(requestId, { code: "handler-failed", message: e instanceof Error ? e.message : String(e) }, this.tagBytes));
    };
    this.handling++;
    let answer: Uint8Array | Promise<Uint8Array>;
    try {
      answer = handler(f, { peer: this.peer, tagBytes: this.tagBytes });
    } catch (e) {
      this.handling--;
      return failed(e);
    }
    if (answer instanceof Uint8Array) {
      this.handling--;
      return this.send(answer);
    }
    answer.then(
      (bytes) => {
        this.handling--;
        this.send(bytes);
      },
      (e: unknown) => {
        this.handling--;
        failed(e);
      },
    );
  }

  /** One timer for the earliest deadline; requests past theirs are failed with "timeout". */
  private armTimer(deadlineMs: number): void {
    if (deadlineMs >= this.timerAtMs) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAtMs = deadlineMs;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, deadlineMs - Date.now()));
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAtMs = Infinity;
    if (this.ended) return;
    for (const p of this.table.expire(Date.now())) p.finish({ ok: false, reason: "timeout", message: `${this.peer.name} did not answer in time` });
    const next = this.table.nextDeadlineMs();
    if (next !== undefined) this.armTimer(next);
  }
}
