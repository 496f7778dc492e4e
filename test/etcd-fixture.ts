// Starts a real etcd (Debian's etcd-server, /usr/bin/etcd) for tests: a temporary data directory,
// loopback ports picked by the kernel, ready once /health says so; SIGKILL-and-restart on the
// same data; removed at the end. If etcd is missing and we are root it installs etcd-server;
// otherwise it fails saying what to install. It must never touch a port or directory it did not
// choose, nor leave an etcd running after stop().
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

export interface EtcdFixture {
  /** Client URL, e.g. http://127.0.0.1:40123. */
  readonly url: string;
  readonly dataDir: string;
  /** SIGKILL, then start again on the same data directory and ports. */
  restart(): Promise<void>;
  /** Forgets every revision below the current one (etcd's compaction API). */
  compact(): Promise<number>;
  stop(): Promise<void>;
}

/** etcd on a 2-core machine answers /health within a second or two of starting. */
export const etcdReadyTimeoutMs = 20_000;

export function etcdBinary(): string {
  const found = ["/usr/bin/etcd", Bun.which("etcd")].find((p): p is string => typeof p === "string" && existsSync(p));
  if (found !== undefined) return found;
  if (process.getuid?.() === 0) {
    const r = Bun.spawnSync(["apt-get", "install", "-y", "etcd-server"], { stdout: "inherit", stderr: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    if (r.exitCode === 0 && existsSync("/usr/bin/etcd")) return "/usr/bin/etcd";
  }
  throw new Error("etcd is not installed and could not be installed here: run `apt-get install -y etcd-server` as root (the metadata tests run against a real etcd)");
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, host, () => {
      const addr = probe.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

async function waitHealthy(url: string, proc: Subprocess): Promise<void> {
  const deadline = Date.now() + etcdReadyTimeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`etcd exited with status ${proc.exitCode} while starting`);
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) });
      const body = (await res.json()) as { health?: unknown };
      if (res.ok && body.health === "true") return;
    } catch {
      // not listening yet
    }
    await Bun.sleep(100);
  }
  throw new Error(`etcd at ${url} was not healthy within ${etcdReadyTimeoutMs} ms`);
}

export async function startEtcd(options: { host?: string } = {}): Promise<EtcdFixture> {
  const bin = etcdBinary();
  const host = options.host ?? "127.0.0.1";
  const dataDir = mkdtempSync(join(tmpdir(), "qstora-etcd-"));
  const clientPort = await freePort(host);
  const peerPort = await freePort(host);
  const url = `http://${host}:${clientPort}`;
  const peerUrl = `http://${host}:${peerPort}`;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("ETCD") && v !== undefined) env[k] = v;
  const spawn = (): Subprocess =>
    Bun.spawn(
      [
        bin,
        "--name=qstora-test",
        `--data-dir=${join(dataDir, "data")}`,
        `--listen-client-urls=${url}`,
        `--advertise-client-urls=${url}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=qstora-test=${peerUrl}`,
        "--logger=zap",
        "--log-level=error",
      ],
      { env, stdout: "ignore", stderr: "ignore" },
    );
  let proc = spawn();
  await waitHealthy(url, proc);
  let stopped = false;
  return {
    url,
    dataDir,
    async restart() {
      proc.kill("SIGKILL");
      await proc.exited;
      proc = spawn();
      await waitHealthy(url, proc);
    },
    async compact() {
      const status = (await (await fetch(`${url}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: Buffer.from("/").toString("base64"), keys_only: true }) })).json()) as { header: { revision: string } };
      const revision = Number(status.header.revision);
      const res = await fetch(`${url}/v3/kv/compaction`, { method: "POST", body: JSON.stringify({ revision: String(revision), physical: true }) });
      if (!res.ok) throw new Error(`etcd compaction failed: HTTP ${res.status} ${await res.text()}`);
      return revision;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      proc.kill("SIGKILL");
      await proc.exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface EtcdClusterFixture {
  /** Client URLs, one per member. */
  readonly urls: readonly string[];
  /** SIGKILL member i (its data stays). */
  kill(i: number): Promise<void>;
  /** Starts member i again on its data and ports, and waits until it is healthy. */
  start(i: number): Promise<void>;
  stop(): Promise<void>;
}

/** A real etcd cluster of `size` members on loopback, for the cluster acceptance with --etcd. */
export async function startEtcdCluster(options: { size?: number; host?: string } = {}): Promise<EtcdClusterFixture> {
  const bin = etcdBinary();
  const size = options.size ?? 3;
  const host = options.host ?? "127.0.0.1";
  const dataDir = mkdtempSync(join(tmpdir(), "qstora-etcd-cluster-"));
  const members: Array<{ name: string; url: string; peerUrl: string }> = [];
  for (let i = 0; i < size; i++) members.push({ name: `m${i}`, url: `http://${host}:${await freePort(host)}`, peerUrl: `http://${host}:${await freePort(host)}` });
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("ETCD") && v !== undefined) env[k] = v;
  const spawnMember = (i: number): Subprocess => {
    const m = members[i] as { name: string; url: string; peerUrl: string };
    return Bun.spawn(
      [
        bin,
        `--name=${m.name}`,
        `--data-dir=${join(dataDir, m.name)}`,
        `--listen-client-urls=${m.url}`,
        `--advertise-client-urls=${m.url}`,
        `--listen-peer-urls=${m.peerUrl}`,
        `--initial-advertise-peer-urls=${m.peerUrl}`,
        `--initial-cluster=${initialCluster}`,
        "--initial-cluster-state=new",
        "--initial-cluster-token=qstora-test",
        "--heartbeat-interval=100",
        "--election-timeout=1000",
        "--logger=zap",
        "--log-level=error",
      ],
      { env, stdout: "ignore", stderr: "ignore" },
    );
  };
  const procs: Array<Subprocess | undefined> = members.map((_, i) => spawnMember(i));
  await Promise.all(members.map((m, i) => waitHealthy(m.url, procs[i] as Subprocess)));
  let stopped = false;
  return {
    urls: members.map((m) => m.url),
    async kill(i) {
      const p = procs[i];
      procs[i] = undefined;
      p?.kill("SIGKILL");
      await p?.exited;
    },
    async start(i) {
      if (procs[i] !== undefined) return;
      const p = spawnMember(i);
      procs[i] = p;
      await waitHealthy((members[i] as { url: string }).url, p);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const p of procs) p?.kill("SIGKILL");
      await Promise.all(procs.map((p) => p?.exited));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
