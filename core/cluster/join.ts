// The join exchange between a new node and a member, over the member's cluster listener (HTTPS
// with the cluster CA's certificates). Shapes and the joiner's side of the CA check; the member's
// side lives in core/node/service.ts. Order matters: the joiner fetches the CA certificate
// without trusting it, compares its SHA-256 with the hash in the token, and only then sends the
// token's secret, over a TLS connection that must chain to that very CA.
import { X509Certificate } from "node:crypto";
import { QstoraError } from "../util/errors.ts";
import { caFingerprint } from "./ca.ts";
import type { ParsedToken } from "./token.ts";
import type { MetadataMember } from "./metadata-members.ts";

export const joinPath = "/cluster/v1/join";
export const caPath = "/cluster/v1/ca";
export const joinTimeoutMs = 15_000;

export interface JoinRequest {
  token: string;
  name: string;
  /** Fault domain (--group); the member records it in the node's record. Absent: the name. */
  group?: string;
  /** The address the joining node's listeners use (goes into its certificate). */
  address: string;
  publicKeyPem: string;
}

export interface JoinResponse {
  clusterId: string;
  nodeId: string;
  caPem: string;
  certPem: string;
  /** Where the joining node reaches the metadata store. */
  metadataEndpoints: string[];
  /**
   * What the joining node becomes in the metadata store: a member of the embedded group (with the
   * group's members and shared key), a client of it, or a client of an external etcd.
   */
  metadata: { role: "member"; group: MetadataMember[]; clusterKey: string } | { role: "client" | "external" };
}

/** Fetches the member's CA certificate (untrusted) and checks it against the token's hash. */
export async function fetchPinnedCa(memberUrl: string, token: ParsedToken): Promise<string> {
  let caPem: string;
  try {
    const res = await fetch(`${memberUrl}${caPath}`, { tls: { rejectUnauthorized: false }, signal: AbortSignal.timeout(joinTimeoutMs) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    caPem = ((await res.json()) as { caPem?: string }).caPem ?? "";
    new X509Certificate(caPem); // a certificate at all
  } catch (e) {
    throw new QstoraError("DAEMON_UNAVAILABLE", `cannot reach the cluster at ${memberUrl}: ${e instanceof Error ? e.message : String(e)}`, "Check the address and that port 7326 of that node is reachable.");
  }
  if (caFingerprint(caPem) !== token.caFingerprint) {
    throw new QstoraError("PERMISSION_DENIED", `the cluster at ${memberUrl} shows a CA whose hash does not match the token`, "Check that the token is for this cluster; someone may be in the middle of the connection.");
  }
  return caPem;
}

/** Sends the join request over TLS pinned to `caPem`; turns refusals into clear errors. */
export async function requestJoin(memberUrl: string, caPem: string, request: JoinRequest): Promise<JoinResponse> {
  let res: Response;
  try {
    res = await fetch(`${memberUrl}${joinPath}`, {
      method: "POST",
      body: JSON.stringify(request),
      headers: { "content-type": "application/json" },
      tls: { ca: caPem, checkServerIdentity: () => undefined },
      signal: AbortSignal.timeout(joinTimeoutMs),
    });
  } catch (e) {
    throw new QstoraError("DAEMON_UNAVAILABLE", `the join request to ${memberUrl} failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string; hint?: string } } & Partial<JoinResponse>;
  if (!res.ok) {
    const code = body.error?.code === "ALREADY_EXISTS" ? "ALREADY_EXISTS" : res.status === 401 || res.status === 403 ? "PERMISSION_DENIED" : "INTERNAL";
    throw new QstoraError(code, `the cluster refused the join: ${body.error?.message ?? `HTTP ${res.status}`}`, body.error?.hint);
  }
  return body as JoinResponse;
}
