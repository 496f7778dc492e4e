// Where a node keeps its files: the data directory and the names inside it.
// Pure apart from reading the environment and home directory; creates nothing.
import { homedir } from "node:os";
import { join, resolve } from "node:path";

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? 1000): string {
  const fromEnv = env["QSTORA_DATA_DIR"];
  if (fromEnv !== undefined && fromEnv !== "") return resolve(fromEnv);
  return uid === 0 ? "/var/lib/qstora" : join(env["HOME"] ?? homedir(), ".qstora");
}

export interface DataDirPaths {
  readonly root: string;
  readonly config: string;
  readonly identity: string;
  readonly secret: string;
  readonly pid: string;
  readonly lock: string;
  readonly log: string;
  readonly meta: string;
  readonly bootstrap: string;
  /** The cluster CA certificate (PEM) and, on the node that made it, its key (mode 0600). */
  readonly caCert: string;
  readonly caKey: string;
  /** This node's key and its certificate signed by the cluster CA (node-to-node TLS). */
  readonly nodeKey: string;
  readonly nodeCert: string;
  /** Scratch files of this node's processes (removed after use). */
  readonly scratch: string;
}

export function dataDirPaths(root: string): DataDirPaths {
  const dir = resolve(root);
  return {
    root: dir,
    config: join(dir, "qstora.toml"),
    identity: join(dir, "identity.json"),
    secret: join(dir, "control.secret"),
    pid: join(dir, "qstora.pid"),
    lock: join(dir, "qstora.lock"),
    log: join(dir, "qstora.log"),
    meta: join(dir, "meta"),
    bootstrap: join(dir, "bootstrap.json"),
    caCert: join(dir, "ca.pem"),
    caKey: join(dir, "ca.key"),
    nodeKey: join(dir, "node.key"),
    nodeCert: join(dir, "node.pem"),
    scratch: join(dir, "tmp"),
  };
}
