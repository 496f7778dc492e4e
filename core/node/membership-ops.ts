// The management side of membership, answered by any node's control API: `qstora node remove |
// drain | label` and `qstora pool create`. Each change is one compare-and-swap transaction on
// the records it reads, so a concurrent change makes it fail cleanly instead of half-applying.
// Decisions come from core/cluster/membership.ts (and, for a metadata member leaving its group,
// metadata-role.ts planMemberLeave); this file only reads and writes the store.
import type { MetaStore, Op } from "../meta/store.ts";
import { updateJson } from "../meta/documents.ts";
import { QstoraError } from "../util/errors.ts";
import type { Logger } from "../util/log.ts";
import { applyLabels, checkPoolName, defaultPoolName, judgeRemoval, parseLabelArgs } from "../cluster/membership.ts";
import { checkMedia, type Media } from "../archive/media.ts";
import type { NodeView } from "../control/protocol.ts";
import { readClusterFacts } from "./cluster-view.ts";
import { planMemberLeave } from "./metadata-role.ts";
import { keys, type NodeRecord, type PoolRecord } from "./records.ts";

/** Operations per transaction: below etcd's default --max-txn-ops (128). */
const txnOpsMax = 100;

export class MembershipOps {
  constructor(
    private readonly meta: MetaStore,
    private readonly selfId: string,
    /** The current node views (liveness included), as status computes them. */
    private readonly nodes: () => Promise<NodeView[]>,
    private readonly logger: Logger,
  ) {}

  private async find(nameOrId: string): Promise<NodeRecord> {
    const facts = await readClusterFacts(this.meta);
    const n = facts.nodes.find((x) => x.name === nameOrId) ?? facts.nodes.find((x) => x.id === nameOrId);
    if (n === undefined) throw new QstoraError("NOT_FOUND", `no node ${nameOrId} in the cluster`, "List them with `qstora node list`.");
    return n;
  }

  private async change(nameOrId: string, edit: (rec: NodeRecord) => NodeRecord): Promise<NodeRecord> {
    const target = await this.find(nameOrId);
    const r = await updateJson(this.meta, keys.node(target.id), (j) => j as NodeRecord, (cur) => (cur === undefined ? { kind: "keep" } : { kind: "put", value: edit(cur) }));
    if (r.outcome === "written") return r.value;
    if (r.outcome === "kept") throw new QstoraError("NOT_FOUND", `node ${nameOrId} was removed meanwhile`);
    throw new QstoraError("METADATA_UNAVAILABLE", `node ${nameOrId}'s record kept changing; try again`);
  }

  async drain(nameOrId: string, draining: boolean): Promise<NodeRecord> {
    const rec = await this.change(nameOrId, (cur) => {
      const { draining: _, ...rest } = cur;
      return draining ? { ...rest, draining: true } : rest;
    });
    this.logger.info(draining ? "node draining" : "node drain undone", { node: rec.name });
    return rec;
  }

  async label(nameOrId: string, args: string[]): Promise<NodeRecord> {
    const edits = parseLabelArgs(args);
    const rec = await this.change(nameOrId, (cur) => ({ ...cur, labels: applyLabels(cur.labels ?? {}, edits) }));
    this.logger.info("node labels changed", { node: rec.name, labels: JSON.stringify(rec.labels ?? {}) });
    return rec;
  }

  async remove(nameOrId: string, force: boolean): Promise<{ removed: string; loses: string[] }> {
    const facts = await readClusterFacts(this.meta);
    const node = facts.nodes.find((x) => x.name === nameOrId) ?? facts.nodes.find((x) => x.id === nameOrId);
    if (node === undefined) throw new QstoraError("NOT_FOUND", `no node ${nameOrId} in the cluster`, "List them with `qstora node list`.");
    const view = (await this.nodes()).find((v) => v.id === node.id);
    // A replicated LUN has copies on other nodes: only single-copy LUNs are lost with the node.
    const luns = facts.luns.filter((l) => l.nodeId === node.id && l.redundancy === "none");
    const archives = facts.archives.filter((a) => a.nodeId === node.id);
    const verdict = judgeRemoval(
      { name: node.name, state: view?.state ?? "down", luns: luns.map((l) => `${l.target}:${l.lun}`), archiveCount: archives.length, isSelf: node.id === this.selfId },
      force,
    );
    if (!verdict.ok) throw verdict.error;
    // A metadata member leaves its group in the transaction that deletes its record, below
    // (refused here, changing nothing, for the last member or without a live majority): were the
    // two apart, the manager could see it out of the group and still a live node, and promote it
    // back (it did, once in some full test runs).
    const leave = await planMemberLeave(this.meta, node.id);
    const nodeKv = await this.meta.get(keys.node(node.id));
    if (nodeKv === undefined) throw new QstoraError("NOT_FOUND", `node ${nameOrId} was removed meanwhile`);
    // Every step is guarded by the node record's revision, so a change to the node (a restart
    // rewriting it, a drain) stops the removal. The records around the node go first, in
    // transactions of at most txnOpsMax operations (etcd's default limit is 128), the node's own
    // record last: an interrupted removal leaves a node that can be removed again.
    const guard = [{ key: keys.node(node.id), target: "MOD", result: "EQUAL", value: nodeKv.modRevision }] as const;
    const around: Op[] = [
      ...luns.flatMap((l) => [{ delete: { key: keys.lun(l.uuid) } }, { delete: { key: keys.reservation(l.uuid) } }]),
      ...archives.map((a) => ({ delete: { key: keys.archive(a.id) } })),
    ];
    const steps: Op[][] = [];
    for (let i = 0; i < around.length; i += txnOpsMax) steps.push(around.slice(i, i + txnOpsMax));
    for (const ops of steps) {
      const r = await this.meta.txn({ compare: guard, success: ops });
      if (!r.succeeded) throw changedMeanwhile(node.name, false);
    }
    const last = await this.meta.txn({
      compare: [...guard, ...(leave?.compare ?? [])],
      success: [{ delete: { key: keys.aliveNode(node.id) } }, { delete: { key: keys.node(node.id) } }, ...(leave?.success ?? [])],
    });
    if (!last.succeeded) throw changedMeanwhile(node.name, leave !== null);
    if (leave !== null) this.logger.warn("node left the metadata group", { node: node.name, members: leave.members.map((m) => m.name).join(",") });
    this.logger.warn("node removed", { node: node.name, id: node.id, force, loses: verdict.loses.join("; ") });
    return { removed: node.name, loses: verdict.loses };
  }

  async createPool(name: string, mediaTexts: string[]): Promise<PoolRecord> {
    checkPoolName(name);
    const media: Media[] = [...new Set(mediaTexts.map(checkMedia))];
    if (name === defaultPoolName) throw new QstoraError("ALREADY_EXISTS", `pool ${name} exists already (it holds every archive)`);
    const rec: PoolRecord = { name, media, createdAt: new Date().toISOString() };
    const r = await this.meta.txn({ compare: [{ key: keys.pool(name), target: "VERSION", result: "EQUAL", value: 0 }], success: [{ put: { key: keys.pool(name), value: JSON.stringify(rec) } }] });
    if (!r.succeeded) throw new QstoraError("ALREADY_EXISTS", `pool ${name} exists already`, "List them with `qstora pool list`.");
    this.logger.info("pool created", { pool: name, media: media.join(",") || "any" });
    return rec;
  }
}

/** A removal stopped by a guard: what changed, and that running it again finishes it (the node's own record goes last). */
function changedMeanwhile(name: string, orGroup: boolean): QstoraError {
  const what = orGroup ? `node ${name}'s record or the metadata group` : `node ${name}'s record`;
  return new QstoraError("IN_USE", `${what} changed while node ${name} was being removed; the removal stopped before its own record was deleted`, `Look at \`qstora node list\`, then run \`qstora node remove ${name}\` again to finish it.`);
}
