// The heartbeat driver: every interval, writes this node's heartbeat (/qstora/v1/alive/<node>,
// attached to a lease it renews) and reads every node's, handing them to the caller's liveness
// state (core/cluster/liveness.ts decides up/suspect/down; this file only does the I/O).
//
// Ordering contract:
// - A beat is written only while the node's record exists (one transaction checks it), so a node
//   removed with `qstora node remove --force` stops showing up instead of reappearing; the
//   driver then stops and reports it.
// - A lost lease (expired while the store was unreachable, e.g. a network partition) is granted
//   again at the next beat: a node that comes back shows up again without a restart.
// - stop() revokes the lease, so a node stopped cleanly is down at once, not after the limit.
import { assert } from "../util/assert.ts";
import type { MetaStore } from "../meta/store.ts";
import type { Logger } from "../util/log.ts";
import type { ArchiveBeat, HeartbeatRecord } from "../cluster/liveness.ts";
import { keys } from "./records.ts";

export interface HeartbeatOptions {
  store: MetaStore;
  nodeId: string;
  intervalMs: number;
  leaseTtlSeconds: number;
  startedAt: string;
  archives: () => ArchiveBeat[];
  /** Every node's heartbeat as read after this node's own was written, with the time read. */
  onBeats: (beats: HeartbeatRecord[], nowMs: number) => void;
  /** The node's record is gone: it was removed from the cluster. */
  onRemoved: () => void;
  logger: Logger;
}

export function heartbeatLeaseSeconds(downAfterMs: number, intervalMs: number): number {
  return Math.ceil(downAfterMs / 1000) + Math.ceil(intervalMs / 1000);
}

/** The heartbeats of a listing of /qstora/v1/alive/, leaving out any that don't parse. */
export function parseBeats(kvs: ReadonlyArray<{ value: string }>): HeartbeatRecord[] {
  return kvs.map((kv) => parseBeat(kv.value)).filter((b): b is HeartbeatRecord => b !== null);
}

function parseBeat(text: string): HeartbeatRecord | null {
  try {
    const v = JSON.parse(text) as Partial<HeartbeatRecord>;
    if (typeof v.nodeId !== "string" || typeof v.seq !== "number" || typeof v.sentAt !== "string") return null;
    return { nodeId: v.nodeId, seq: v.seq, sentAt: v.sentAt, intervalMs: Number(v.intervalMs ?? 0), startedAt: String(v.startedAt ?? ""), archives: Array.isArray(v.archives) ? v.archives : [] };
  } catch {
    // A heartbeat from an older daemon ({ since }) or damaged: judged as no heartbeat.
    return null;
  }
}

export function startHeartbeat(o: HeartbeatOptions): { stop(): Promise<void>; beatNow(): Promise<void> } {
  assert(o.intervalMs > 0);
  assert(o.leaseTtlSeconds * 1000 > o.intervalMs);
  let lease: string | undefined;
  let seq = 0;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failing = false;
  let running: Promise<void> = Promise.resolve();
  let renewedAtMs = 0;

  const beat = async (): Promise<void> => {
    if (lease !== undefined && Date.now() - renewedAtMs >= (o.leaseTtlSeconds * 1000) / 3) {
      const ttl = await o.store.leaseKeepAlive(lease);
      if (ttl <= 0) {
        o.logger.warn("heartbeat lease lost; granting a new one", { lease });
        lease = undefined;
      } else renewedAtMs = Date.now();
    }
    if (lease === undefined) {
      lease = await o.store.leaseGrant(o.leaseTtlSeconds);
      renewedAtMs = Date.now();
    }
    seq++;
    const record: HeartbeatRecord = { nodeId: o.nodeId, seq, sentAt: new Date().toISOString(), intervalMs: o.intervalMs, startedAt: o.startedAt, archives: o.archives() };
    const nodeKey = keys.node(o.nodeId);
    const r = await o.store.txn({
      compare: [{ key: nodeKey, target: "VERSION", result: "EQUAL", value: 0 }],
      success: [{ delete: { key: keys.aliveNode(o.nodeId) } }],
      failure: [{ put: { key: keys.aliveNode(o.nodeId), value: JSON.stringify(record), lease } }],
    });
    if (r.succeeded) {
      o.logger.error("this node's record is gone: it was removed from the cluster; heartbeats stop");
      stopped = true;
      o.onRemoved();
      return;
    }
    o.onBeats(parseBeats(await o.store.list(keys.alive)), Date.now());
  };

  const tick = (): void => {
    if (stopped) return;
    running = beat().then(
      () => {
        if (failing) o.logger.info("heartbeats written again");
        failing = false;
      },
      (e: unknown) => {
        if (!failing) o.logger.warn("heartbeat failed", { error: e instanceof Error ? e.message : String(e) });
        failing = true;
        // The lease may have lapsed meanwhile (the store unreachable longer than its TTL, or a
        // new leader that does not know it): the next beat asks, and grants a new one if so.
        renewedAtMs = 0;
      },
    );
    void running.then(() => {
      if (!stopped) timer = setTimeout(tick, o.intervalMs);
    });
  };

  return {
    /** Writes the first beat now (the daemon's start waits for it), then every interval. */
    beatNow: async () => {
      await beat();
      timer = setTimeout(tick, o.intervalMs);
    },
    stop: async () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await running;
      if (lease !== undefined) await o.store.leaseRevoke(lease).catch(() => undefined);
    },
  };
}
