// A real antietcd Raft group of three in this process, each member behind its TLS gate on its own
// loopback address: it elects a leader and replicates; a member removed in place (setMembers)
// leaves a working group of two; a new, empty member added in its place catches up from the
// others and makes a quorum with one of them while the other is stopped.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { createClusterCa, newKeyPair, signNodeCertificate } from "../cluster/ca.ts";
import { startEmbeddedMeta, type EmbeddedMeta } from "./embedded.ts";
import { EtcdClient, type MetaTls } from "./etcd-client.ts";
import { startTlsGate, type TlsGate } from "./tls-gate.ts";

const ca = createClusterCa("group-test");
const root = mkdtempSync(join(tmpdir(), "qstora-group-"));
const base = `127.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
const port = 17_000 + Math.floor(Math.random() * 20_000);

interface Member {
  id: string;
  host: string;
  url: string;
  tls: MetaTls;
  store?: EmbeddedMeta | undefined;
  gate?: TlsGate | undefined;
}

function member(id: string, i: number): Member {
  const host = `${base}.${i}`;
  const keys = newKeyPair();
  const certPem = signNodeCertificate(ca, { nodeName: id, publicKeyPem: keys.publicKey.export({ type: "spki", format: "pem" }).toString(), altNames: [host] });
  return { id, host, url: `https://${host}:${port}`, tls: { caPem: ca.certPem, certPem, keyPem: keys.privateKeyPem } };
}

async function start(m: Member, group: Member[]): Promise<void> {
  const dir = join(root, m.id);
  const socketPath = join(dir, "s.sock");
  m.store = await startEmbeddedMeta({ dir, port: 0, socketPath, cluster: { nodeId: m.id, clusterKey: "k", members: Object.fromEntries(group.map((g) => [g.id, g.url])), peerTls: m.tls } });
  m.gate ??= startTlsGate({ host: m.host, port, certPem: m.tls.certPem, keyPem: m.tls.keyPem, caPem: ca.certPem, backend: { unix: socketPath } });
}

async function stop(m: Member): Promise<void> {
  m.gate?.stop();
  m.gate = undefined;
  await m.store?.stop();
  m.store = undefined;
}

function clientOf(ms: Member[]): EtcdClient {
  return new EtcdClient({ endpoints: ms.map((m) => m.url), tls: (ms[0] as Member).tls, flavor: "antietcd", requestTimeoutMs: 5_000 });
}

async function eventually<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await Bun.sleep(200);
    }
  }
}

const [a, b, c, d] = [member("a", 1), member("b", 2), member("c", 3), member("d", 4)] as [Member, Member, Member, Member];
const [e, f, g] = [member("e", 5), member("f", 6), member("g", 7)] as [Member, Member, Member];

afterAll(async () => {
  for (const m of [a, b, c, d, e, f, g]) await stop(m).catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
});

describe("an embedded Raft group behind TLS gates", () => {
  test("three members elect a leader and replicate; removing one in place leaves a working group of two", async () => {
    await Promise.all([a, b, c].map((m) => start(m, [a, b, c])));
    const client = clientOf([a, b, c]);
    await eventually(15_000, () => client.put("/qstora/g/one", "1"));
    const status = await client.endpointStatus(a.url);
    expect(["a", "b", "c"]).toContain(status?.leader as string);
    // Remove c: a and b change their group in place; c stops.
    a.store?.setMembers({ a: a.url, b: b.url });
    b.store?.setMembers({ a: a.url, b: b.url });
    await stop(c);
    const two = clientOf([a, b]);
    await eventually(15_000, () => two.put("/qstora/g/two", "2"));
    expect((await two.get("/qstora/g/one"))?.value).toBe("1");
    await client.close();
    await two.close();
  }, 60_000);

  test("a new, empty member added in its place catches up and makes a quorum while an old one is down", async () => {
    // One member at a time: {a, b} -> {a, b, d}; d starts empty (term 0).
    a.store?.setMembers({ a: a.url, b: b.url, d: d.url });
    b.store?.setMembers({ a: a.url, b: b.url, d: d.url });
    await start(d, [a, b, d]);
    const three = clientOf([a, b, d]);
    await eventually(15_000, () => three.put("/qstora/g/three", "3"));
    // d's own data file holds what was written before it joined.
    await eventually(10_000, async () => {
      const stored = gunzipSync(readFileSync(join(root, "d", "antietcd.json.gz"))).toString("utf8");
      expect(stored).toContain("one");
      expect(stored).toContain("two");
    });
    // With b stopped, a and d are a majority of {a, b, d}.
    await stop(b);
    const ad = clientOf([a, d]);
    await eventually(20_000, () => ad.put("/qstora/g/four", "4"));
    expect((await ad.list("/qstora/g/")).map((kv) => kv.key).sort()).toEqual(["/qstora/g/four", "/qstora/g/one", "/qstora/g/three", "/qstora/g/two"]);
    await three.close();
    await ad.close();
  }, 90_000);

  test("a follower that answers a new leader's dump request with 'leader/term mismatch' does not leave the group without a quorum", async () => {
    // What a follower answers when the leader's dump outruns the leader's first message to it
    // (seen under SIGKILL cycles on a loaded host): here each follower's first dump of the group.
    const proto = (require("antietcd/anticluster.js") as { prototype: Record<string, unknown> }).prototype;
    const handleDump = proto["_handleDumpMsg"] as (this: { cfg: { node_id: string } }, client: { socket: { send(s: string): void } }, msg: { request_id: number }) => void;
    const refused = new Set<string>();
    proto["_handleDumpMsg"] = function (this: { cfg: { node_id: string } }, client: { socket: { send(s: string): void } }, msg: { request_id: number }) {
      const id = this.cfg.node_id;
      if (["e", "f", "g"].includes(id) && !refused.has(id)) {
        refused.add(id);
        client.socket.send(JSON.stringify({ request_id: msg.request_id, reply: { error: "raft leader/term mismatch" } }));
        return;
      }
      handleDump.call(this, client, msg);
    };
    try {
      await Promise.all([e, f, g].map((m) => start(m, [e, f, g])));
      const client = clientOf([e, f, g]);
      await eventually(20_000, () => client.put("/qstora/g/after-mismatch", "1"));
      expect(refused.size).toBeGreaterThan(0);
      await client.close();
    } finally {
      proto["_handleDumpMsg"] = handleDump;
    }
  }, 60_000);
});
