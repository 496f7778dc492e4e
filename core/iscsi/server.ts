// The iSCSI portal: the only file of the target that touches sockets (Bun.listen). Feeds each
// connection's bytes to its IscsiConnection inline in the data handler, and writes what it
// answers with one socket.write per batch. Bun's socket.write may take only part of a buffer and
// does not queue the rest, so each connection keeps its own queue, resumes on drain, and stops
// reading while the queue is over `pendingWriteBytesMax` (back-pressure, not memory growth).
import type { Socket, TCPSocketListener } from "bun";
import type { Logger } from "../util/log.ts";
import { IscsiConnection, type TargetRegistry } from "./connection.ts";

export type { TargetRegistry } from "./connection.ts";

const pendingWriteBytesMax = 8 << 20;
const connectionsMax = 1024;
const closeGraceMs = 10_000;

interface SocketState {
  conn: IscsiConnection;
  queue: Uint8Array[];
  queuedBytes: number;
  paused: boolean;
  closed: boolean;
}

export interface IscsiServer {
  readonly port: number;
  /** Sessions in full feature phase, for one target or all. */
  sessionCount(iqn?: string): number;
  close(): Promise<void>;
}

export async function startIscsiServer(options: { host: string; port: number; registry: TargetRegistry; logger: Logger; portalGroupTag?: number }): Promise<IscsiServer> {
  const tpgt = options.portalGroupTag ?? 1;
  const sockets = new Set<Socket<SocketState>>();

  const drain = (s: Socket<SocketState>): void => {
    const st = s.data;
    while (st.queue.length > 0) {
      const head = st.queue[0] as Uint8Array;
      const n = s.write(head);
      if (n < 0) return;
      st.queuedBytes -= n;
      if (n < head.length) {
        st.queue[0] = head.subarray(n);
        return;
      }
      st.queue.shift();
    }
    if (st.paused && st.queuedBytes < pendingWriteBytesMax / 2) {
      st.paused = false;
      s.resume();
    }
  };

  const listener: TCPSocketListener<SocketState> = Bun.listen<SocketState>({
    hostname: options.host,
    port: options.port,
    socket: {
      open(s) {
        if (sockets.size >= connectionsMax) {
          s.end();
          return;
        }
        sockets.add(s);
        s.setNoDelay(true);
        const address = `${options.host.includes(":") ? `[${options.host}]` : options.host}:${listener.port}`;
        const conn = new IscsiConnection(
          options.registry,
          { address, tpgt },
          (bytes) => {
            const st = s.data;
            if (st.closed) return;
            if (st.queue.length === 0) {
              const n = s.write(bytes);
              if (n === bytes.length) return;
              bytes = bytes.subarray(Math.max(n, 0));
            }
            st.queue.push(bytes);
            st.queuedBytes += bytes.length;
            if (!st.paused && st.queuedBytes > pendingWriteBytesMax) {
              st.paused = true;
              s.pause();
            }
          },
          () => {
            const st = s.data;
            if (st.closed) return;
            // Let queued responses (e.g. a logout answer) go out first.
            if (st.queue.length === 0) s.end();
            else setTimeout(() => s.end(), 50);
          },
          options.logger,
        );
        s.data = { conn, queue: [], queuedBytes: 0, paused: false, closed: false };
      },
      data(s, chunk) {
        s.data.conn.receive(chunk);
      },
      drain(s) {
        drain(s);
      },
      close(s) {
        s.data.closed = true;
        sockets.delete(s);
      },
      error(s, e) {
        options.logger.warn("connection error", { error: e.message });
        s.data.closed = true;
        sockets.delete(s);
      },
    },
  });
  options.logger.info("iSCSI portal listening", { address: `${options.host}:${listener.port}` });

  return {
    port: listener.port,
    sessionCount(iqn?: string): number {
      let n = 0;
      for (const s of sockets) if (s.data?.conn.targetName !== undefined && (iqn === undefined || s.data.conn.targetName === iqn)) n++;
      return n;
    },
    async close(): Promise<void> {
      listener.stop(false);
      // Finish commands that wait on the device, then close every connection.
      const deadline = Date.now() + closeGraceMs;
      while ([...sockets].some((s) => s.data?.conn.busy) && Date.now() < deadline) await Bun.sleep(10);
      for (const s of sockets) s.end();
      listener.stop(true);
    },
  };
}
