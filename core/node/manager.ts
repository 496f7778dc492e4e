// The driver of the cluster manager's election (core/cluster/manager-election.ts): feeds it the
// clock, the store's answers and the watch on /qstora/v1/manager/, and carries out its effects.
// Ordering contract: one request to the store at a time (the state machine asks for one); the
// role's start and stop callbacks run in the order the state machine emits them, and stop always
// runs before this node could have lost the key in the store. It must never start the role on
// its own judgement: only on the state machine's role-start.
import { initialElection, step, type ElectionEffect, type ElectionInput, type ElectionState } from "../cluster/manager-election.ts";
import type { MetaStore } from "../meta/store.ts";
import { metaKeys } from "../meta/schema.ts";
import type { Logger } from "../util/log.ts";
import { promoteMetadataMember } from "./metadata-role.ts";
import type { NodeRecord } from "./records.ts";

/** The state machine's clock resolution. */
export const tickIntervalMs = 200;

export interface ManagerRecord {
  nodeId: string;
  name: string;
  since: string;
}

export interface ManagerElection {
  isManager(): boolean;
  stop(): Promise<void>;
}

export function startManagerElection(options: { meta: MetaStore; nodeId: string; name: string; logger: Logger; onStart?: () => void; onStop?: () => void }): ManagerElection {
  const { meta, logger } = options;
  let state: ElectionState = initialElection(options.nodeId);
  let running = false;
  let stopped = false;

  const feed = (input: ElectionInput): void => {
    const r = step(state, input, Date.now());
    state = r.state;
    for (const e of r.effects) carryOut(e);
  };

  // The machine sends one request at a time, but drops its lease (and with it the request out)
  // when the watch shows the key gone: the answer to that superseded request, arriving later,
  // must not be fed (it would answer a request the state no longer has, or a newer one).
  let requestGen = 0;
  const current = (gen: number): boolean => gen === requestGen && state.busy && !stopped;
  const answer = (gen: number, input: ElectionInput): void => {
    if (current(gen)) feed(input);
  };

  const carryOut = (effect: ElectionEffect): void => {
    const gen = effect.type === "grant-lease" || effect.type === "campaign" || effect.type === "renew" ? ++requestGen : requestGen;
    switch (effect.type) {
      case "grant-lease":
        meta.leaseGrant(effect.ttlSeconds).then(
          (leaseId) => (current(gen) ? feed({ type: "lease-granted", leaseId, ttlSeconds: effect.ttlSeconds }) : void meta.leaseRevoke(leaseId).catch(() => undefined)),
          () => answer(gen, { type: "request-failed" }),
        );
        return;
      case "campaign": {
        const record: ManagerRecord = { nodeId: options.nodeId, name: options.name, since: new Date().toISOString() };
        meta
          .txn({
            compare: [{ key: metaKeys.managerLeader, target: "VERSION", result: "EQUAL", value: 0 }],
            success: [{ put: { key: metaKeys.managerLeader, value: JSON.stringify(record), lease: effect.leaseId } }],
            failure: [{ range: { key: metaKeys.managerLeader } }],
          })
          .then(
            (r) => {
              if (r.succeeded) return answer(gen, { type: "campaign-done", won: true, holder: options.nodeId });
              const got = r.responses[0];
              const kv = got !== undefined && got.kind === "range" ? got.kvs[0] : undefined;
              const holder = kv === undefined ? null : (JSON.parse(kv.value) as ManagerRecord).nodeId;
              // The key is ours already (a renewal lapsed the role but not the lease).
              answer(gen, { type: "campaign-done", won: holder === options.nodeId && kv?.lease === effect.leaseId, holder });
            },
            () => answer(gen, { type: "request-failed" }),
          );
        return;
      }
      case "renew":
        meta.leaseKeepAlive(effect.leaseId).then(
          (ttlSeconds) => answer(gen, { type: "renew-done", ttlSeconds }),
          () => answer(gen, { type: "request-failed" }),
        );
        return;
      case "revoke":
        void meta.leaseRevoke(effect.leaseId).catch(() => undefined);
        return;
      case "role-start":
        running = true;
        logger.info("this node is now the cluster manager");
        options.onStart?.();
        return;
      case "role-stop":
        running = false;
        logger.info("this node is no longer the cluster manager");
        options.onStop?.();
        return;
    }
  };

  const timer = setInterval(() => feed({ type: "tick" }), tickIntervalMs);
  let watch: { cancel(): void } | undefined;
  const watchLeader = (): void => {
    watch?.cancel();
    watch = meta.watch(metaKeys.manager, { onCompacted: () => watchLeader() }, (events) => {
      const last = events.filter((e) => e.key === metaKeys.managerLeader).at(-1);
      if (last === undefined || stopped) return;
      feed({ type: "holder-changed", holder: last.type === "DELETE" ? null : (JSON.parse(last.value) as ManagerRecord).nodeId });
    });
  };
  watchLeader();
  feed({ type: "tick" });

  return {
    isManager: () => running,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      watch?.cancel();
      const leaseId = state.leaseId;
      feed({ type: "stop" });
      // Hand over at once instead of making the others wait for the lease to lapse.
      if (leaseId !== undefined) await meta.leaseRevoke(leaseId).catch(() => undefined);
    },
  };
}

/** How often the manager looks for work. */
export const dutyIntervalMs = 5_000;

/**
 * What the manager does while it holds the role. For now: keep the embedded metadata group at
 * three members (promote a live client after a member was removed). Placement, failover,
 * rebuild and rebalance scheduling join here.
 */
export function startManagerDuties(meta: MetaStore, logger: Logger): { stop(): void } {
  let busy = false;
  const round = async (): Promise<void> => {
    const [nodes, alive] = await Promise.all([meta.list(metaKeys.nodes), meta.list(metaKeys.alive)]);
    const up = new Set(alive.map((kv) => kv.key.slice(metaKeys.alive.length)));
    const candidates = nodes
      .map((kv) => ({ kv, n: JSON.parse(kv.value) as NodeRecord }))
      .filter(({ n }) => up.has(n.id) && n.metadataUrl !== undefined)
      .map(({ kv, n }) => ({ member: { id: n.id, name: n.name, url: n.metadataUrl as string }, recordKey: kv.key, recordRevision: kv.modRevision }));
    if (await promoteMetadataMember(meta, candidates)) logger.info("a node was made a metadata member to bring the group back to three");
  };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    round()
      .catch((e: unknown) => logger.debug("manager round failed", { error: e instanceof Error ? e.message : String(e) }))
      .finally(() => (busy = false));
  }, dutyIntervalMs);
  return { stop: () => clearInterval(timer) };
}

/** The manager as `status` shows it: the key's holder, or null while there is none. */
export async function readManager(meta: MetaStore): Promise<ManagerRecord | null> {
  const kv = await meta.get(metaKeys.managerLeader);
  return kv === undefined ? null : (JSON.parse(kv.value) as ManagerRecord);
}
