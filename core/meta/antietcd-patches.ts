// antietcd 1.3.1 as qstora runs it: the module loaded once (a static require, so that
// `bun build --compile` bundles it), the parts of its objects that embedded.ts touches, and the
// fixes to its defects and to its meeting with Bun's `ws`, each applied to its prototypes when
// this module loads, each with what it mends and how it was found. Nothing here starts a server.
import type { Server } from "node:http";
import type { PeerTls } from "../net/peer.ts";

/** The parts of antietcd's server object this module touches (it ships no usable types). */
export interface AntiEtcdServer {
  start(): Promise<void>;
  stop(): Promise<void>;
  server?: Server;
  wss?: { close(): void };
  clients: Record<string, { socket: { terminate(): void } }>;
  etctree: { destroy(): void };
  persistence: { persist(): Promise<void> } | null;
  stopped: boolean;
  cfg: Record<string, unknown>;
  cluster: {
    raft: { stop(): void; setNodes(nodes: string[]): void; state: string; leader: string | null };
    cluster_connections: Record<string, number>;
    connectToNode(nodeId: string): void;
  } | null;
}

type AntiEtcdConstructor = new (cfg: Record<string, unknown>) => AntiEtcdServer;

// A static require so that `bun build --compile` bundles antietcd and its dependencies.
export const AntiEtcd = require("antietcd") as AntiEtcdConstructor;

interface AntiClusterInstance {
  tls: Record<string, unknown>;
  antietcd: { qstoraPeerTls?: PeerTls; stopped: boolean };
}
const AntiCluster = require("antietcd/anticluster.js") as { prototype: { connectToNode(this: AntiClusterInstance, nodeId: string): void } };

/**
 * antietcd hands its peer websockets node-style TLS options ({cert, key, ca} at the top level, and
 * its own certificate as the CA). Bun's `ws` takes them under `tls`, and the peers' gates are
 * signed by the cluster CA: give each peer connection this node's certificate and that CA.
 */
const connectToNode = AntiCluster.prototype.connectToNode;
AntiCluster.prototype.connectToNode = function (this: AntiClusterInstance, nodeId: string): void {
  // A stopped server's closed peer sockets would otherwise dial again forever.
  if (this.antietcd.stopped) return;
  const peer = this.antietcd.qstoraPeerTls;
  if (peer !== undefined) this.tls = { tls: { cert: peer.certPem, key: peer.keyPem, ca: peer.caPem } };
  connectToNode.call(this, nodeId);
};

/** The credentials a server's peer websockets dial with (read by the patch above). */
export function givePeerTls(srv: AntiEtcdServer, tls: PeerTls): void {
  (srv as unknown as { qstoraPeerTls: PeerTls }).qstoraPeerTls = tls;
}

/**
 * antietcd reads `socket._socket.remoteAddress` when a peer websocket opens (a node `ws` field);
 * Bun's `ws` before 1.4 has no `_socket`, and the TypeError would end the process. Give its sockets
 * one that says where they lead: antietcd only uses it for its log lines. Since 1.4 each socket
 * sets its own in its constructor, which the setter lets it keep (a getter alone would throw).
 */
const wsModule = require("ws") as { WebSocket: { prototype: object } };
if (!("_socket" in wsModule.WebSocket.prototype)) {
  Object.defineProperty(wsModule.WebSocket.prototype, "_socket", {
    get(this: { url?: string }) {
      const url = new URL(this.url ?? "ws://unknown:0");
      return { remoteAddress: url.hostname, remotePort: Number(url.port) };
    },
    set(this: object, value: unknown) {
      Object.defineProperty(this, "_socket", { value, writable: true, configurable: true, enumerable: false });
    },
  });
}

/**
 * While a peer is down antietcd dials it again every second, and each failure prints a multi-line
 * error event to stderr (which is qstora.log): megabytes a day for one stopped member. The
 * failures of outbound peer sockets (the ones with a reconnect) are expected and go unprinted;
 * `status` shows an unreachable member instead.
 */
type WsLike = { on(event: string, handler: (...args: unknown[]) => void): unknown };
const AntiEtcdProto = AntiEtcd.prototype as unknown as { _startWebsocket(this: unknown, socket: WsLike, reconnect: unknown): number };
const startWebsocket = AntiEtcdProto._startWebsocket;
AntiEtcdProto._startWebsocket = function (this: unknown, socket: WsLike, reconnect: unknown): number {
  if (typeof reconnect === "function") {
    const on = socket.on.bind(socket);
    socket.on = (event: string, handler: (...args: unknown[]) => void) =>
      on(event, event !== "error" ? handler : (...args: unknown[]) => {
        const print = console.error;
        console.error = () => undefined;
        try {
          handler(...args);
        } finally {
          console.error = print;
        }
      });
  }
  return startWebsocket.call(this, socket, reconnect);
};

/**
 * A member that joined (or reloaded the leader's state) while transactions were in flight gets
 * the leader's "unlock" for a revision it never locked, and antietcd 1.3.1 throws from its
 * message handler, which ends the process. Unlocking a revision means "everything up to it is
 * committed": with no lock of its own to drop, the follower still releases the readers waiting
 * for it, which is what the original does after dropping the lock.
 */
const AntiLocker = require("antietcd/antilocker.js") as { prototype: { txn_locks: Record<number, unknown[]>; unlock_txn(this: { txn_locks: Record<number, unknown[]> }, revision: number): void } };
const unlockTxn = AntiLocker.prototype.unlock_txn;
AntiLocker.prototype.unlock_txn = function (this: { txn_locks: Record<number, unknown[]> }, revision: number): void {
  if (this.txn_locks[revision] === undefined) this.txn_locks[revision] = [];
  unlockTxn.call(this, revision);
};

/**
 * A new leader asks each follower for a dump of its state before it serves (its resync). A
 * follower that has not yet heard the new leader's first message answers "raft leader/term
 * mismatch" (so does a dump that times out), and antietcd 1.3.1 then waits for that dump forever:
 * the leader never becomes synced and the group answers "Quorum not available" until the next
 * election, which a healthy group never holds. Seen under SIGKILL cycles of members on a loaded
 * host (the replica fault tests). The dump is asked again while this node still leads in that
 * term; after `dumpRetryMs` it starts an election instead, as antietcd does when a replication fails.
 */
export const dumpRetryMs = { every: 250, giveUpAfter: 5_000 } as const;
type PeerClient = { raft_node_id?: string };
interface AntiClusterRaftInstance {
  antietcd: { stopped: boolean };
  raft: { state: string; term: number; start(): void };
  _getPeer(nodeId: string): PeerClient | undefined;
  _log(text: string): void;
}
type PeerRequest = (this: AntiClusterRaftInstance, client: PeerClient, request: Record<string, unknown>, timeoutMs: number) => Promise<{ error?: string } | undefined>;
const AntiClusterProto = AntiCluster.prototype as unknown as { _peerRequest: PeerRequest };
const peerRequest = AntiClusterProto._peerRequest;
AntiClusterProto._peerRequest = async function (this: AntiClusterRaftInstance, client, request, timeoutMs) {
  let res = await peerRequest.call(this, client, request, timeoutMs);
  if (!("dump" in request)) return res;
  const giveUpAt = Date.now() + dumpRetryMs.giveUpAfter;
  const stillLeading = () => !this.antietcd.stopped && this.raft.state === "leader" && this.raft.term === request["term"];
  while (res?.error !== undefined && stillLeading() && Date.now() < giveUpAt) {
    await Bun.sleep(dumpRetryMs.every);
    if (!stillLeading()) break;
    const peer = (client.raft_node_id === undefined ? undefined : this._getPeer(client.raft_node_id)) ?? client;
    res = await peerRequest.call(this, peer, request, timeoutMs);
  }
  if (res?.error !== undefined && stillLeading()) {
    this._log(`dump from ${client.raft_node_id ?? "?"} failed (${res.error}) for ${dumpRetryMs.giveUpAfter} ms - restarting election`);
    this.raft.start();
  }
  return res;
};
