// The node's identity (<data-dir>/identity.json: cluster id, node id, name) and the control
// secret (<data-dir>/control.secret, mode 0600). Written once by init, read at every start.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { QstoraError } from "../util/errors.ts";

export interface NodeIdentity {
  clusterId: string;
  nodeId: string;
  name: string;
  createdAt: string;
}

export function newId(): string {
  return crypto.randomUUID();
}

export function writeIdentity(path: string, identity: NodeIdentity): void {
  writeFileSync(path, `${JSON.stringify(identity, null, 2)}\n`, { mode: 0o644, flag: "wx" });
}

export function readIdentity(path: string): NodeIdentity {
  if (!existsSync(path)) {
    throw new QstoraError("NOT_INITIALIZED", `no qstora node in ${path.replace(/\/identity\.json$/, "")}`, "Run `qstora init --archive PATH:SIZE` first, or pass --data-dir.");
  }
  try {
    const v = JSON.parse(readFileSync(path, "utf8")) as Partial<NodeIdentity>;
    if (typeof v.clusterId === "string" && typeof v.nodeId === "string" && typeof v.name === "string") {
      return { clusterId: v.clusterId, nodeId: v.nodeId, name: v.name, createdAt: String(v.createdAt ?? "") };
    }
  } catch {
    // Fall through to the error below.
  }
  throw new QstoraError("CONFIG_INVALID", `${path} is damaged`, "Restore it from a backup; it holds the node's cluster and node ids.");
}

export function createSecret(path: string): string {
  const secret = randomBytes(32).toString("base64url");
  writeFileSync(path, `${secret}\n`, { mode: 0o600, flag: "wx" });
  return secret;
}

export function readSecret(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new QstoraError("PERMISSION_DENIED", `cannot read the control secret ${path}`, "Run the command as the user that owns the data directory.");
  }
  if ((statSync(path).mode & 0o077) !== 0) {
    throw new QstoraError("PERMISSION_DENIED", `${path} is readable by other users`, `Run: chmod 600 ${path}`);
  }
  return text.trim();
}
