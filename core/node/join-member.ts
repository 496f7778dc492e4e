// The member's side of `qstora join`: judges the token, refuses a duplicate node name, reserves
// the new node's record, and signs its certificate with the cluster CA. Runs on a node that holds
// the CA key (the one that made the cluster). Ordering: the token is judged and the name checked
// before anything is written; the node record is created (compare-and-swap on its absence)
// before the certificate is returned.
import { readFileSync } from "node:fs";
import type { MetaStore } from "../meta/store.ts";
import type { JoinRequest, JoinResponse } from "../cluster/join.ts";
import { caFingerprint, signNodeCertificate } from "../cluster/ca.ts";
import { judgeToken, parseToken, type TokenRecord } from "../cluster/token.ts";
import { QstoraError } from "../util/errors.ts";
import type { Logger } from "../util/log.ts";
import { checkKeyName } from "../meta/schema.ts";
import { checkGroupName } from "../cluster/membership.ts";
import type { DataDirPaths } from "./paths.ts";
import { keys, type NodeRecord } from "./records.ts";

const refusals = {
  "wrong-ca": "the token was made for another cluster",
  unknown: "the token is not known here (revoked, or never made)",
  "wrong-secret": "the token's secret is wrong",
  expired: "the token has expired",
} as const;

export async function answerJoin(options: { meta: MetaStore; paths: DataDirPaths; clusterId: string; metadataEndpoints: string[]; logger: Logger }, request: JoinRequest): Promise<JoinResponse> {
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
  const rec: NodeRecord = { id: nodeId, name, portal: "", api: "", version: "", startedAt: "", address: request.address, group };
  const created = await meta.txn({ compare: [{ key: keys.node(nodeId), target: "VERSION", result: "EQUAL", value: 0 }], success: [{ put: { key: keys.node(nodeId), value: JSON.stringify(rec) } }] });
  if (!created.succeeded) throw new QstoraError("INTERNAL", "node id collision; try again");
  const certPem = signNodeCertificate({ certPem: caPem, keyPem: caKeyPem }, { nodeName: name, publicKeyPem: request.publicKeyPem, altNames: [request.address] });
  options.logger.info("node joined", { name, nodeId, address: request.address });
  return { clusterId: options.clusterId, nodeId, caPem, certPem, metadataEndpoints: options.metadataEndpoints };
}
