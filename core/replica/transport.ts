// Carries replication messages (types.ts) between the units, coordinators and the manager of a
// cluster over core/net, and between those hosted by the same node without the network. Two
// exchanges on the node-to-node transport, both carrying envelopes {from, to, msg} in the byte
// layout of envelope.ts (fixed layouts for data messages, CBOR for the rest):
// - `replica` (one-way, posted: no answer frame): a batch of envelopes, each after its u32
//   length (big-endian), all the messages for one node that one turn of the event loop
//   produced; the protocol's own replies travel as messages of their own. A lost or refused
//   batch is dropped: the state machines retransmit.
// - `replicaClient` (request/response): a coordinator's write/read/flush to a unit; the answer is
//   the unit's reply to that request id (write-done, read-done, flush-done, rejected), or `busy`
//   when the unit said nothing within `clientWaitMs`.
// It never decides anything about replication and never blocks: sends are fire-and-forget, every
// wait has a deadline, waiting answers are bounded by `clientWaitersMax`. It must never hand a
// unit a message that parseMessage() refused.
import { assert } from "../util/assert.ts";
import type { Logger } from "../util/log.ts";
import type { Frame, FrameHead } from "../net/frame.ts";
import { buildFrame, frameFlags, payloadBytesMaxDefault } from "../net/frame.ts";
import { errorFrame, messageType } from "../net/messages.ts";
import type { PeerNode, Peers } from "../net/peers.ts";
import { decodeEnvelope, envelopeOf, type Envelope } from "./envelope.ts";
import type { Address, ClientReply, ClientRequest, Message } from "./types.ts";

/** How long a node holds a coordinator's request open waiting for its unit's reply. */
export const clientWaitMsDefault = 3_000;
/** Coordinator requests held open at once on a node; more are answered busy at once. */
export const clientWaitersMax = 4096;
/** How long a batch posted while the first connection to its node is being made waits for it. */
const postWaitMs = 2_000;
/** Bytes of messages waiting for one node; beyond it new ones are dropped (a peer that is gone). */
export const outboxBytesMax = 64 << 20;
/** A batch's payload: under the transport's payload limit, with room for the largest single message. */
const batchBytesMax = payloadBytesMaxDefault - 1024;
/** Bytes before each envelope of a batch: its length. */
const lengthBytes = 4;

interface Outbox {
  node: PeerNode;
  readonly queue: Envelope[];
  queuedBytes: number;
  scheduled: boolean;
}

export type Receiver = (from: Address, msg: Message) => void;

export type ClientOutcome = { readonly ok: true; readonly reply: ClientReply } | { readonly ok: false; readonly reason: string };

interface Waiter {
  readonly resolve: (reply: ClientReply | null) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

function isClientAddress(a: Address): boolean {
  return a.startsWith("client:");
}

function isClientReply(m: Message): m is ClientReply {
  return m.type === "write-done" || m.type === "read-done" || m.type === "flush-done" || m.type === "rejected";
}

function isClientRequest(m: Message): m is ClientRequest {
  return m.type === "write" || m.type === "read" || m.type === "flush";
}

/** A frame whose payload is one envelope, written straight into it (one copy of any data). */
function envelopeFrame(head: FrameHead, e: Envelope, tagBytes: number): Uint8Array {
  return buildFrame(head, { payloadBytes: e.bytes, fill: (p) => e.write(p, 0), tagBytes, filledTailBytes: e.bytes });
}

export class ReplicaRouter {
  private readonly receivers = new Map<Address, Receiver>();
  /** Coordinator requests waiting for their unit's reply, by `${client} ${reqId}`. */
  private readonly waiters = new Map<string, Waiter[]>();
  private waiterCount = 0;
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
    options.peers.handle(messageType.replicaClient, (frame, { tagBytes }) => this.onClientFrame(frame, tagBytes));
  }

  /** Messages to `address` are handed to `receiver` (a unit, the manager, a coordinator) on this node. */
  attach(address: Address, receiver: Receiver): void {
    assert(!this.receivers.has(address), `${address} is attached already`);
    this.receivers.set(address, receiver);
  }

  detach(address: Address): void {
    this.receivers.delete(address);
  }

  /** Fire-and-forget. A reply to a coordinator's request goes back on that request's response. */
  send(from: Address, to: Address, msg: Message): void {
    if (this.closed) return;
    if (isClientAddress(to) && isClientReply(msg) && this.answer(to, msg)) return;
    const node = this.options.directory(to);
    if (node === undefined || node.id === this.options.selfNodeId) {
      const r = this.receivers.get(to);
      // Delivered on a later turn: a step's effects are carried out before the receiver steps.
      if (r !== undefined) queueMicrotask(() => r(from, msg));
      return;
    }
    const envelope = envelopeOf(from, to, msg);
    let box = this.outboxes.get(node.id);
    if (box === undefined) {
      box = { node, queue: [], queuedBytes: 0, scheduled: false };
      this.outboxes.set(node.id, box);
    }
    box.node = node;
    // Full: drop (the state machines retransmit); growing would only hide a peer that is gone.
    if (box.queuedBytes + envelope.bytes > outboxBytesMax) return;
    box.queue.push(envelope);
    box.queuedBytes += envelope.bytes;
    if (!box.scheduled) {
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
   * the state machines, so nothing here waits or grows.
   */
  private drain(box: Outbox): void {
    while (!this.closed && box.queue.length > 0) {
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
      this.options.peers.post(box.node, (tagBytes) => buildFrame({ type: messageType.replica, flags: frameFlags.oneWay, requestId: 0 }, { payloadBytes: bytes, fill, tagBytes, filledTailBytes: bytes }), postWaitMs);
    }
  }

  /** A coordinator's request to the unit `to`, answered by the unit's reply or a failure. */
  async request(from: Address, to: Address, msg: ClientRequest, timeoutMs: number): Promise<ClientOutcome> {
    assert(isClientAddress(from), "a client request comes from a client address");
    if (this.closed) return { ok: false, reason: "closed" };
    const node = this.options.directory(to);
    if (node === undefined) return { ok: false, reason: `no node known for ${to}` };
    if (node.id === this.options.selfNodeId) {
      const reply = await this.waitLocal(from, to, msg, Math.min(timeoutMs, this.clientWaitMs));
      return reply === null ? { ok: false, reason: "no reply in time" } : { ok: true, reply };
    }
    const envelope = envelopeOf(from, to, msg);
    let out: Awaited<ReturnType<Peers["request"]>>;
    try {
      out = await this.options.peers.request<ClientReply>(node, {
        build: (requestId, tagBytes) => envelopeFrame({ type: messageType.replicaClient, flags: 0, requestId }, envelope, tagBytes),
        decode: (f) => {
          const d = decodeEnvelope(f.payload);
          if (typeof d === "string") return { ok: false, reason: d };
          if (!isClientReply(d.msg)) return { ok: false, reason: `a ${d.msg.type} is no answer to a client request` };
          return { ok: true, value: d.msg };
        },
        responseType: messageType.replicaClient,
        timeoutMs,
      });
    } catch (e) {
      return { ok: false, reason: e instanceof Error ? e.message : String(e) };
    }
    if (out.ok) return { ok: true, reply: out.value as ClientReply };
    return { ok: false, reason: out.reason === "remote-error" ? `${out.code}: ${out.message}` : `${out.reason}: ${out.message}` };
  }

  close(): void {
    this.closed = true;
    for (const list of this.waiters.values()) for (const w of list) w.resolve(null);
    this.waiters.clear();
    this.waiterCount = 0;
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
      const r = this.receivers.get(e.to);
      if (r !== undefined && !this.closed) r(e.from, e.msg);
    }
  }

  private async onClientFrame(frame: Frame, tagBytes: number): Promise<Uint8Array> {
    const requestId = frame.requestId;
    const e = decodeEnvelope(frame.payload);
    if (typeof e === "string") return errorFrame(requestId, { code: "bad-message", message: e }, tagBytes);
    if (!isClientAddress(e.from) || !isClientRequest(e.msg)) return errorFrame(requestId, { code: "bad-message", message: "not a client request" }, tagBytes);
    const reply = await this.waitLocal(e.from, e.to, e.msg, this.clientWaitMs);
    if (reply === null) return errorFrame(requestId, { code: "busy", message: `${e.to} gave no answer in ${this.clientWaitMs} ms` }, tagBytes);
    return envelopeFrame({ type: messageType.replicaClient, flags: frameFlags.response, requestId }, envelopeOf(e.to, e.from, reply), tagBytes);
  }

  /** Hands a client request to a unit here and waits for its reply to that request id. */
  private waitLocal(from: Address, to: Address, msg: ClientRequest, waitMs: number): Promise<ClientReply | null> {
    const r = this.receivers.get(to);
    if (r === undefined || this.closed) return Promise.resolve(null);
    if (this.waiterCount >= clientWaitersMax) return Promise.resolve(null);
    const key = `${from} ${msg.reqId}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const list = this.waiters.get(key);
        if (list === undefined) return;
        const i = list.findIndex((w) => w.timer === timer);
        if (i >= 0) {
          list.splice(i, 1);
          this.waiterCount--;
        }
        if (list.length === 0) this.waiters.delete(key);
        resolve(null);
      }, waitMs);
      const list = this.waiters.get(key) ?? [];
      list.push({ resolve, timer });
      this.waiters.set(key, list);
      this.waiterCount++;
      r(from, msg);
    });
  }

  /** A unit's reply to a waiting client request: true if one was waiting for it. */
  private answer(to: Address, msg: ClientReply): boolean {
    const key = `${to} ${msg.reqId}`;
    const list = this.waiters.get(key);
    if (list === undefined) return false;
    this.waiters.delete(key);
    for (const w of list) {
      clearTimeout(w.timer);
      this.waiterCount--;
      w.resolve(msg);
    }
    assert(this.waiterCount >= 0);
    return true;
  }
}
