// Carries replication messages (types.ts) between the units, coordinators and the manager of a
// cluster over core/net, and between those hosted by the same node without the network. One
// exchange on the node-to-node transport, `replica`, one-way (posted: nothing answers a frame):
// a batch of envelopes {from, to, msg} in the byte layout of envelope.ts (fixed layouts for data
// messages, CBOR for the rest), each after its u32 length (big-endian): all the messages for one
// node that one turn of the event loop produced. So 32 writes of one turn travel as one frame
// to the primary's node, their 64 forwards as one frame per secondary, and so on back.
// A lost or refused batch is dropped: the state machines retransmit.
// A coordinator's write/read/flush is a message like the others; `request()` waits (at most its
// timeout) for the unit's reply to that request id (write-done, read-done, flush-done, rejected),
// which comes back as a message to the coordinator's address and is handed to the waiter.
// It never decides anything about replication and never blocks: sends are fire-and-forget, every
// wait has a deadline, waiting requests are bounded by `clientWaitersMax`. It must never hand a
// unit a message that envelope.ts (and so parseMessage()) refused.
import { assert } from "../util/assert.ts";
import type { Logger } from "../util/log.ts";
import type { Frame } from "../net/frame.ts";
import { buildFrame, frameFlags, payloadBytesMaxDefault } from "../net/frame.ts";
import { messageType } from "../net/messages.ts";
import type { PeerNode, Peers } from "../net/peers.ts";
import { decodeEnvelope, envelopeOf, type Envelope } from "./envelope.ts";
import type { Address, ClientReply, ClientRequest, Message } from "./types.ts";

/** The longest a coordinator's request waits for its unit's reply (its own timeout may be shorter). */
export const clientWaitMsDefault = 3_000;
/** Coordinator requests waiting at once on a node; more fail at once. */
export const clientWaitersMax = 4096;
/** How long a batch posted while the first connection to its node is being made waits for it. */
const postWaitMs = 2_000;
/** Bytes of messages waiting for one node; beyond it new ones are dropped (a peer that is gone). */
export const outboxBytesMax = 64 << 20;
/** A batch's payload: under the transport's payload limit, with room for the largest single message. */
const batchBytesMax = payloadBytesMaxDefault - 1024;
/** Bytes before each envelope of a batch: its length. */
const lengthBytes = 4;
/**
 * Unsent bytes on a node's connection beyond which batches wait in the outbox (drained again
 * after `sendAheadRetryMs`) instead of being posted: a slow peer then delays messages rather
 * than losing them to core/net's postQueuedBytesMax, which would cost a retransmission each.
 */
export const sendAheadBytesMax = 8 << 20;
const sendAheadRetryMs = 1;

interface Outbox {
  node: PeerNode;
  readonly queue: Envelope[];
  queuedBytes: number;
  scheduled: boolean;
  /** A drain is due after a pause: the connection had sendAheadBytesMax unsent. */
  waiting: boolean;
}

export type Receiver = (from: Address, msg: Message) => void;

export type ClientOutcome = { readonly ok: true; readonly reply: ClientReply } | { readonly ok: false; readonly reason: string };

interface Waiter {
  readonly resolve: (outcome: ClientOutcome) => void;
  /** performance.now() past which it fails ("no reply"), found by the sweep. */
  readonly deadline: number;
  readonly to: Address;
  readonly waitMs: number;
}

/**
 * How often waiting requests are checked against their deadlines: a request fails at most this
 * long after its timeout. One sweep for all instead of a timer per request (a QD32 initiator
 * made 32 timers and as many extra promises per batch).
 */
const sweepMs = 20;

function isClientAddress(a: Address): boolean {
  return a.startsWith("client:");
}

function isClientReply(m: Message): m is ClientReply {
  return m.type === "write-done" || m.type === "read-done" || m.type === "flush-done" || m.type === "rejected";
}

export class ReplicaRouter {
  private readonly receivers = new Map<Address, Receiver>();
  /** Coordinator requests waiting for their unit's reply, by `${client} ${reqId}`. */
  private readonly waiters = new Map<string, Waiter[]>();
  private waiterCount = 0;
  private sweeper: ReturnType<typeof setInterval> | null = null;
  private readonly outboxes = new Map<string, Outbox>();
  private closed = false;
  private readonly clientWaitMs: number;

  constructor(
    private readonly options: {
      peers: Peers;
      /** The node an address (unit id or "manager") lives on, as the placement records say. */
      directory: (to: Address) => PeerNode | undefined;
      /** This node's id: an address the directory puts here is delivered without the network. */
      selfNodeId: string;
      logger: Logger;
      clientWaitMs?: number;
    },
  ) {
    this.clientWaitMs = options.clientWaitMs ?? clientWaitMsDefault;
    options.peers.handlePost(messageType.replica, (frame) => this.onPost(frame));
  }

  /** Messages to `address` are handed to `receiver` (a unit, the manager, a coordinator) on this node. */
  attach(address: Address, receiver: Receiver): void {
    assert(!this.receivers.has(address), `${address} is attached already`);
    this.receivers.set(address, receiver);
  }

  detach(address: Address): void {
    this.receivers.delete(address);
  }

  /** Fire-and-forget. A reply to a coordinator's request goes to that request's waiter. */
  send(from: Address, to: Address, msg: Message): void {
    if (this.closed) return;
    if (isClientAddress(to) && isClientReply(msg) && this.answer(to, msg)) return;
    const node = this.options.directory(to);
    if (node === undefined || node.id === this.options.selfNodeId) {
      // Delivered on a later turn: a step's effects are carried out before the receiver steps.
      queueMicrotask(() => this.deliver(from, to, msg));
      return;
    }
    const envelope = envelopeOf(from, to, msg);
    let box = this.outboxes.get(node.id);
    if (box === undefined) {
      box = { node, queue: [], queuedBytes: 0, scheduled: false, waiting: false };
      this.outboxes.set(node.id, box);
    }
    box.node = node;
    // Full: drop (the state machines retransmit); growing would only hide a peer that is gone.
    if (box.queuedBytes + envelope.bytes > outboxBytesMax) return;
    box.queue.push(envelope);
    box.queuedBytes += envelope.bytes;
    if (!box.scheduled && !box.waiting) {
      box.scheduled = true;
      queueMicrotask(() => {
        box.scheduled = false;
        this.drain(box);
      });
    }
  }

  /**
   * Posts what a node's outbox holds, as many envelopes per frame as fit. Nothing answers a
   * batch (the protocol's replies are messages of their own); one the connection refuses (not
   * open, or a peer not keeping up: core/net postQueuedBytesMax) is lost and retransmitted by
   * the state machines. While the connection has more than sendAheadBytesMax unsent, batches
   * wait in the outbox (bounded by outboxBytesMax), so a slow peer is pushed back on first.
   */
  private drain(box: Outbox): void {
    while (!this.closed && box.queue.length > 0) {
      if (this.unsentBytes(box.node) > sendAheadBytesMax) {
        box.waiting = true;
        setTimeout(() => {
          box.waiting = false;
          this.drain(box);
        }, sendAheadRetryMs);
        return;
      }
      const batch: Envelope[] = [];
      let bytes = 0;
      let taken = 0;
      for (const next of box.queue) {
        if (batch.length > 0 && bytes + lengthBytes + next.bytes > batchBytesMax) break;
        batch.push(next);
        bytes += lengthBytes + next.bytes;
        taken++;
      }
      box.queue.splice(0, taken);
      box.queuedBytes -= bytes - lengthBytes * taken;
      const fill = (p: Uint8Array) => {
        const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
        let at = 0;
        for (const e of batch) {
          dv.setUint32(at, e.bytes);
          e.write(p, at + lengthBytes);
          at += lengthBytes + e.bytes;
        }
      };
      try {
        this.options.peers.post(box.node, (tagBytes) => buildFrame({ type: messageType.replica, flags: frameFlags.oneWay, requestId: 0 }, { payloadBytes: bytes, fill, tagBytes, filledTailBytes: bytes }), postWaitMs);
      } catch {
        // Peers closed under us (shutdown) or full of clients: the batch is lost like any other.
      }
    }
  }

  /**
   * Posts what every outbox holds and writes it to the sockets now, instead of at the end of
   * this turn (an outbox waiting for its peer to drain stays waiting).
   */
  flushNow(): void {
    for (const box of this.outboxes.values()) {
      if (box.queue.length === 0 || box.waiting) continue;
      this.drain(box);
      try {
        this.options.peers.client(box.node).connection?.flushNow();
      } catch {
        // Closed Peers: nothing to write.
      }
    }
  }

  /** Bytes waiting for the socket on the connection to a node (0 when there is none). */
  private unsentBytes(node: PeerNode): number {
    try {
      return this.options.peers.client(node).connection?.queued ?? 0;
    } catch {
      return 0; // closed Peers: the post below fails the same way and is dropped
    }
  }

  /**
   * A coordinator's request to the unit `to`, answered by the unit's reply to its request id,
   * or a failure when none came within `timeoutMs` (at most clientWaitMs).
   */
  request(from: Address, to: Address, msg: ClientRequest, timeoutMs: number): Promise<ClientOutcome> {
    assert(isClientAddress(from), "a client request comes from a client address");
    if (this.closed) return Promise.resolve({ ok: false, reason: "closed" });
    if (this.options.directory(to) === undefined && !this.receivers.has(to)) return Promise.resolve({ ok: false, reason: `no node known for ${to}` });
    if (this.waiterCount >= clientWaitersMax) return Promise.resolve({ ok: false, reason: `${clientWaitersMax} requests already waiting` });
    const waitMs = Math.min(timeoutMs, this.clientWaitMs);
    const key = `${from} ${msg.reqId}`;
    const reply = new Promise<ClientOutcome>((resolve) => {
      const waiter: Waiter = { resolve, deadline: performance.now() + waitMs, to, waitMs };
      const list = this.waiters.get(key);
      if (list === undefined) this.waiters.set(key, [waiter]);
      else list.push(waiter);
      this.waiterCount++;
    });
    this.sweeper ??= setInterval(() => this.sweep(), sweepMs);
    this.send(from, to, msg);
    return reply;
  }

  /** Fails the requests past their deadline; stops when none waits. */
  private sweep(): void {
    const now = performance.now();
    this.failWaiters(() => true, (w) => w.deadline <= now, (w) => `no reply from ${w.to} within ${w.waitMs} ms`);
    if (this.waiterCount === 0) this.stopSweeper();
  }

  /**
   * Fails at once the requests of the coordinator `from` that wait on `to` (its membership
   * moved on: the coordinator asks the new primary instead of waiting out the timeout).
   */
  failWaiting(from: Address, to: Address, reason: string): void {
    const prefix = `${from} `;
    this.failWaiters((key) => key.startsWith(prefix), (w) => w.to === to, () => reason);
  }

  private failWaiters(keyMatches: (key: string) => boolean, fails: (w: Waiter) => boolean, reason: (w: Waiter) => string): void {
    for (const [key, list] of this.waiters) {
      if (!keyMatches(key) || !list.some(fails)) continue;
      const failed = list.filter(fails);
      if (failed.length === list.length) this.waiters.delete(key);
      else this.waiters.set(key, list.filter((w) => !fails(w)));
      this.waiterCount -= failed.length;
      for (const w of failed) w.resolve({ ok: false, reason: reason(w) });
    }
  }

  private stopSweeper(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  close(): void {
    this.closed = true;
    for (const list of this.waiters.values()) for (const w of list) w.resolve({ ok: false, reason: "closed" });
    this.waiters.clear();
    this.waiterCount = 0;
    this.stopSweeper();
    this.receivers.clear();
    this.outboxes.clear();
  }

  // ---- receiving ----

  private onPost(frame: Frame): void {
    const p = frame.payload;
    const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
    let at = 0;
    while (at < p.length) {
      if (at + lengthBytes > p.length) return this.options.logger.warn("replication batch cut inside a length, rest dropped", { bytes: p.length });
      const len = dv.getUint32(at);
      if (at + lengthBytes + len > p.length) return this.options.logger.warn("replication batch cut inside a message, rest dropped", { bytes: p.length });
      const e = decodeEnvelope(p.subarray(at + lengthBytes, at + lengthBytes + len));
      at += lengthBytes + len;
      // One malformed message does not cost the others of the batch.
      if (typeof e === "string") {
        this.options.logger.debug("malformed replication message dropped", { reason: e });
        continue;
      }
      this.deliver(e.from, e.to, e.msg);
    }
  }

  /** A message for an address of this node: a coordinator's reply to its waiter, the rest to its receiver. */
  private deliver(from: Address, to: Address, msg: Message): void {
    if (this.closed) return;
    // A reply nobody waits for any more (it came after its timeout) is dropped.
    if (isClientAddress(to) && isClientReply(msg)) return void this.answer(to, msg);
    this.receivers.get(to)?.(from, msg);
  }

  /** A unit's reply to a waiting client request: true if one was waiting for it. */
  private answer(to: Address, msg: ClientReply): boolean {
    const key = `${to} ${msg.reqId}`;
    const list = this.waiters.get(key);
    if (list === undefined) return false;
    this.waiters.delete(key);
    this.waiterCount -= list.length;
    for (const w of list) w.resolve({ ok: true, reply: msg });
    assert(this.waiterCount >= 0);
    return true;
  }
}
