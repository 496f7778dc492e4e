// The member's side of `qstora join`: judges the token, refuses a duplicate node name, decides
// what the new node becomes in the metadata store (core/cluster/metadata-members.ts), reserves its
// record and signs its certificate with the cluster CA. Runs on a node that holds the CA key (the
// one that made the cluster). Ordering: the token is judged, the name checked and the metadata
// placement decided before anything is written; the node record, the new membership document
// and (for the first group) the group's shared key are written in one transaction, conditional
// on the membership not having changed since it was read, before the certificate is returned.
import { readFileSync } from "node:fs";
import type { MetaStore, Op } from "../meta/store.ts";
import type { JoinRequest, JoinResponse } from "../cluster/join.ts";
import { caFingerprint, signNodeCertificate } from "../cluster/ca.ts";
import { judgeToken, parseToken, type TokenRecord } from "../cluster/token.ts";
import { externalMembers, placeJoiner, singleMembers, type MetadataMember } from "../cluster/metadata-members.ts";
import { QstoraError } from "../util/errors.ts";
import type { Logger } from "../util/log.ts";
import { checkKeyName } from "../meta/schema.ts";
import { checkGroupName } from "../cluster/membership.ts";
import type { DataDirPaths } from "./paths.ts";
import { keys, type NodeRecord } from "./records.ts";
import { readMembers } from "./metadata-role.ts";
import { metadataUrl, newClusterKey } from "./group-file.ts";

const refusals = {
  "wrong-ca": "the token was made for another cluster",
  unknown: "the token is not known here (revoked, or never made)",
  "wrong-secret": "the token's secret is wrong",
  expired: "the token has expired",
} as const;

export interface JoinMemberContext {
  meta: MetaStore;
  paths: DataDirPaths;
  clusterId: string;
  /** This node, as a metadata member (when the store is embedded) or null (external etcd). */
  self: MetadataMember | null;
  /** The external etcd's endpoints, when that is the store. */
  externalEndpoints: string[];
  logger: Logger;
}

export async function answerJoin(options: JoinMemberContext, request: JoinRequest): Promise<JoinResponse> {
  const { meta, paths } = options;
  let caKeyPem: string;
  try {
    caKeyPem = readFileSync(paths.caKey, "utf8");
  } catch {
    throw new QstoraError("PERMISSION_DENIED", "this node does not hold the cluster CA's key", "Join through the node that created the cluster.");
  }
  const caPem = readFileSync(paths.caCert, "utf8");
  const parsed = parseToken(request.token);
  const recordKv = await meta.get(keys.token(parsed.id));
  const verdict = judgeToken(parsed, recordKv === undefined ? undefined : (JSON.parse(recordKv.value) as TokenRecord), caFingerprint(caPem), new Date());
  if (!verdict.ok) {
    options.logger.warn("join refused", { name: request.name, reason: verdict.reason });
    throw new QstoraError("UNAUTHENTICATED", refusals[verdict.reason], "Make a new token with `qstora token create` on a cluster node.");
  }
  const name = checkKeyName(request.name, "node name");
  const group = request.group === undefined ? name : checkGroupName(request.group);
  const existing = (await meta.list(keys.nodes)).map((kv) => JSON.parse(kv.value) as NodeRecord);
  if (existing.some((n) => n.name === name)) throw new QstoraError("ALREADY_EXISTS", `a node named ${name} is already in the cluster`, "Pick another --name; the existing node keeps its name and record.");
  const nodeId = crypto.randomUUID();

  const read = await readMembers(meta);
  const doc = read?.doc ?? (options.self === null ? externalMembers(options.externalEndpoints) : singleMembers(options.self));
  const joiner: MetadataMember = { id: nodeId, name, url: metadataUrl(request.address) };
  const placement = placeJoiner(doc, joiner, new Date());
  if (placement.role === "busy") throw new QstoraError("IN_USE", `the cluster cannot take a new node just now: ${placement.reason}`, "Try again in a few seconds.");

  const rec: NodeRecord = { id: nodeId, name, portal: "", api: "", version: "", startedAt: "", address: request.address, group };
  const success: Op[] = [{ put: { key: keys.node(nodeId), value: JSON.stringify(rec) } }];
  const compare: Parameters<MetaStore["txn"]>[0]["compare"][number][] = [{ key: keys.node(nodeId), target: "VERSION", result: "EQUAL", value: 0 }];
  compare.push(read === undefined ? { key: keys.metadataMembers, target: "VERSION", result: "EQUAL", value: 0 } : { key: keys.metadataMembers, target: "MOD", result: "EQUAL", value: read.modRevision });
  let clusterKey = "";
  if (placement.role === "member") {
    success.push({ put: { key: keys.metadataMembers, value: JSON.stringify(placement.next) } });
    const keyKv = await meta.get(keys.metadataClusterKey);
    if (keyKv === undefined) {
      clusterKey = newClusterKey();
      compare.push({ key: keys.metadataClusterKey, target: "VERSION", result: "EQUAL", value: 0 });
      success.push({ put: { key: keys.metadataClusterKey, value: clusterKey } });
    } else {
      clusterKey = keyKv.value;
    }
  } else if (read === undefined) {
    success.push({ put: { key: keys.metadataMembers, value: JSON.stringify(doc) } });
  }
  const created = await meta.txn({ compare, success });
  if (!created.succeeded) throw new QstoraError("IN_USE", "the cluster's membership changed while this node was joining", "Try again.");
  const certPem = signNodeCertificate({ certPem: caPem, keyPem: caKeyPem }, { nodeName: name, publicKeyPem: request.publicKeyPem, altNames: [request.address] });
  options.logger.info("node joined", { name, nodeId, address: request.address, metadata: placement.role });
  if (placement.role === "member") {
    return { clusterId: options.clusterId, nodeId, caPem, certPem, metadataEndpoints: placement.group.map((m) => m.url), metadata: { role: "member", group: [...placement.group], clusterKey } };
  }
  return { clusterId: options.clusterId, nodeId, caPem, certPem, metadataEndpoints: [...placement.endpoints], metadata: { role: options.self === null ? "external" : "client" } };
}
