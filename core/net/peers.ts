// A node's end of the node-to-node transport: its peer listener, the message handlers other
// modules register on it, and one reconnecting client per peer node, made on first use. This
// is what the daemon starts and what replication will send through. It knows nodes only as
// { id, name, address }: where those come from (the metadata store) is the caller's business.
import { assert } from "../util/assert.ts";
import type { Logger } from "../util/log.ts";
import type { Handler, PostHandler, RequestOutcome, RequestSpec } from "./connection.ts";
import { messageType } from "./messages.ts";
import { PeerClient, startPeerServer, type PeerServer, type PeerTls, type PeerTransport } from "./peer.ts";
import { pingHandler, pingRequest } from "./ping.ts";

/** Peer clients kept at once (one per node of the cluster). */
export const peerClientsMax = 1024;

export interface PeerNode {
  id: string;
  name: string;
  /** host:port of the node's peer listener. */
  address: string;
}

export type PingResult = { ok: true; rttMs: number; name: string } | { ok: false; reason: string };

export interface Peers {
  /** This node's listener address (host:port). */
  readonly address: string;
  /** Registers the handler of a message type (one per type), for requests peers send here. */
  handle(type: number, handler: Handler): void;
  /** Registers the handler of a one-way message type (one per type), for frames peers post here. */
  handlePost(type: number, handler: PostHandler): void;
  /**
   * Posts a one-way frame to a node (PeerClient.post): nothing answers it, and it may be lost
   * (no connection, a peer that does not keep up); the caller's protocol retransmits.
   */
  post(node: PeerNode, build: (tagBytes: number) => Uint8Array, timeoutMs: number): void;
  /** Sends a request to a node, connecting first if needed. */
  request<T>(node: PeerNode, spec: RequestSpec<T>): Promise<RequestOutcome<T>>;
  /** Round trip to a node's listener and back. */
  ping(node: PeerNode, timeoutMs: number): Promise<PingResult>;
  /** The client of a node (made on first use; replaced if the node's address or name changed). */
  client(node: PeerNode): PeerClient;
  /** Closes and drops the client of a node that left the cluster (it would reconnect forever). */
  forget(nodeId: string): void;
  close(): void;
}

function splitHostPort(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  assert(m !== null, `not host:port: ${address}`);
  return { host: m[1] as string, port: Number(m[2]) };
}

export function startPeers(options: { host: string; port: number; tls: PeerTls; self: { nodeId: string; name: string }; logger: Logger; transport?: PeerTransport }): Peers {
  const handlers = new Map<number, Handler>([[messageType.ping, pingHandler(options.self)]]);
  const postHandlers = new Map<number, PostHandler>();
  const clients = new Map<string, { client: PeerClient; name: string }>();
  // A node that connects to us is up: our client to it stops waiting out its backoff.
  const onPeerConnected = (name: string): void => {
    for (const c of clients.values()) if (c.name === name) c.client.retryNow();
  };
  const server: PeerServer = startPeerServer({ host: options.host, port: options.port, tls: options.tls, handlers, postHandlers, logger: options.logger, onPeerConnected, ...(options.transport === undefined ? {} : { transport: options.transport }) });
  let closed = false;

  const client = (node: PeerNode): PeerClient => {
    assert(!closed, "peers used after close");
    const existing = clients.get(node.id);
    if (existing !== undefined && existing.client.address === node.address && existing.name === node.name) return existing.client;
    existing?.client.close();
    if (existing === undefined && clients.size >= peerClientsMax) throw new Error(`more than ${peerClientsMax} peer nodes`);
    const { host, port } = splitHostPort(node.address);
    const c = new PeerClient({ host, port, tls: options.tls, expectName: node.name, self: options.self.nodeId, handlers, postHandlers, logger: options.logger, ...(options.transport === undefined ? {} : { transport: options.transport }) });
    clients.set(node.id, { client: c, name: node.name });
    return c;
  };

  return {
    address: server.address,
    handle(type, handler) {
      assert(!handlers.has(type), `message type ${type} has a handler already`);
      handlers.set(type, handler);
    },
    handlePost(type, handler) {
      assert(!postHandlers.has(type), `one-way message type ${type} has a handler already`);
      postHandlers.set(type, handler);
    },
    post: (node, build, timeoutMs) => client(node).post(build, timeoutMs),
    request: (node, spec) => client(node).request(spec),
    async ping(node, timeoutMs) {
      const c = client(node);
      // A client that is not open yet: the first ping pays for the connection, so time a second.
      if (c.state !== "open") {
        const warm = await c.request(pingRequest(options.self.nodeId, timeoutMs));
        if (!warm.ok) return { ok: false, reason: warm.message };
      }
      const started = performance.now();
      const r = await c.request(pingRequest(options.self.nodeId, timeoutMs));
      if (!r.ok) return { ok: false, reason: r.message };
      if (r.value.nodeId !== node.id) return { ok: false, reason: `the listener at ${node.address} is node ${r.value.nodeId}, not ${node.id}` };
      return { ok: true, rttMs: performance.now() - started, name: r.value.name };
    },
    client,
    forget(nodeId) {
      clients.get(nodeId)?.client.close();
      clients.delete(nodeId);
    },
    close() {
      if (closed) return;
      closed = true;
      for (const c of clients.values()) c.client.close();
      clients.clear();
      server.close();
    },
  };
}
