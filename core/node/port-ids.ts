// Each node's target port number, unique in the cluster: its iSCSI portal group tag, relative
// target port identifier and target port group (SPC-4 §7.8.6.5-6), so that a LUN served by every
// node's portal shows one target port per node, and the initiator can tell its paths apart
// (VPD 83h, REPORT TARGET PORT GROUPS). A number is claimed once, by compare-and-swap on the
// key's absence, and kept: the first node of a cluster gets 1 (what a single node always said).
//
// It must never hand one number to two nodes: only the create that wins the transaction owns it.
import type { MetaStore } from "../meta/store.ts";
import { QstoraError } from "../util/errors.ts";
import { keys } from "./records.ts";

/** Ports numbered at most (a cluster this size is far beyond what qstora's records are built for). */
export const portIdsMax = 4096;

interface PortRecord {
  nodeId: string;
  claimedAt: string;
}

/** Every claimed number, by node id. */
export async function readPortIds(meta: MetaStore): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const kv of await meta.list(keys.ports)) {
    const id = Number(kv.key.slice(keys.ports.length));
    const rec = JSON.parse(kv.value) as PortRecord;
    if (Number.isInteger(id) && id >= 1 && !out.has(rec.nodeId)) out.set(rec.nodeId, id);
  }
  return out;
}

/** This node's number: the one it holds, else the smallest free one, claimed now. */
export async function claimPortId(meta: MetaStore, nodeId: string): Promise<number> {
  for (let attempt = 0; attempt < portIdsMax; attempt++) {
    const taken = await readPortIds(meta);
    const mine = taken.get(nodeId);
    if (mine !== undefined) return mine;
    const used = new Set(taken.values());
    let id = 1;
    while (used.has(id)) id++;
    if (id > portIdsMax) break;
    const key = keys.port(id);
    const rec: PortRecord = { nodeId, claimedAt: new Date().toISOString() };
    const r = await meta.txn({ compare: [{ key, target: "VERSION", result: "EQUAL", value: 0 }], success: [{ put: { key, value: JSON.stringify(rec) } }] });
    if (r.succeeded) return id;
    // Another node took it between the read and the claim: read again.
  }
  throw new QstoraError("NO_SPACE", `no free target port number (at most ${portIdsMax} nodes)`, "Remove nodes that left the cluster with `qstora node remove`.");
}
