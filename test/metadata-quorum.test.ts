// The metadata quorum and the cluster manager (issue 4), with real daemons on loopback addresses:
// the embedded antietcd group forms as nodes join (1 -> 2 -> 3, later nodes clients); SIGKILL of
// a metadata member leaves LUN and target commands working and the member catches up after a
// restart; SIGKILL of the manager's node gives a new manager within 10 s; the whole cluster
// stopped and started again is the same cluster. The same acceptance runs against a 3-member
// real etcd started here (`--etcd` at init: every joined node uses it too).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { TestNode, qstoraBin, run, waitFor } from "./helpers/node.ts";
import { startEtcdCluster, type EtcdClusterFixture } from "./etcd-fixture.ts";

interface Status {
  node: { id: string; name: string; clusterId: string };
  nodes: Array<{ name: string; state: string }>;
  metadata: { backend: string; mode?: string; endpoints: string[]; leader?: string | null; members?: Array<{ id: string; name: string; reachable: boolean; leader: boolean; revision: number }> };
  manager?: { nodeId: string; name: string } | null;
}

/** A manager must take over within this (the limit). */
const takeoverMsMax = 10_000;

function joinCmd(node: TestNode, member: TestNode, token: string, name: string): void {
  const r = run([qstoraBin, "join", member.address, "--token", token, "--archive", `${node.dir}/a1.img:1G`, "--address", node.address, "--name", name, "--data-dir", node.dataDir]);
  if (r.code !== 0) throw new Error(`join of ${name} failed (${r.code}): ${r.stderr}${r.stdout}`);
}

/** `qstora start` on every node at once, as after a power cut (a member waits for a quorum). */
async function startAll(nodes: TestNode[]): Promise<void> {
  const procs = nodes.map((n) => Bun.spawn([qstoraBin, "start", "--data-dir", n.dataDir], { stdout: "pipe", stderr: "pipe" }));
  const codes = await Promise.all(procs.map((p) => p.exited));
  for (let i = 0; i < procs.length; i++) {
    if (codes[i] !== 0) throw new Error(`start of ${nodes[i]?.dataDir} failed: ${await new Response(procs[i]?.stderr).text()}`);
  }
}

async function stopAll(nodes: TestNode[]): Promise<void> {
  const procs = nodes.map((n) => Bun.spawn([qstoraBin, "stop", "--data-dir", n.dataDir], { stdout: "ignore", stderr: "ignore" }));
  await Promise.all(procs.map((p) => p.exited));
}

/** The keys in a member's own antietcd data file (what it has on disk, not what it is told). */
function storedKeys(node: TestNode): string {
  return gunzipSync(readFileSync(join(node.dataDir, "meta", "antietcd.json.gz"))).toString("utf8");
}

/** Retries `fn` until it returns without throwing; returns the ms it took. */
async function within(ms: number, fn: () => void): Promise<number> {
  const start = Date.now();
  for (;;) {
    try {
      fn();
      return Date.now() - start;
    } catch (e) {
      if (Date.now() - start > ms) throw e;
      await Bun.sleep(200);
    }
  }
}

function acceptance(backend: "embedded" | "etcd"): void {
  describe(`metadata quorum and manager on ${backend === "etcd" ? "a 3-member etcd" : "the embedded group"}`, () => {
    const names = ["na", "nb", "nc", "nd"];
    const nodes = names.map((n) => new TestNode(`qstora-mq-${n}-`));
    const [a, b, c, d] = nodes as [TestNode, TestNode, TestNode, TestNode];
    const byName = (name: string): TestNode => nodes[names.indexOf(name)] as TestNode;
    let etcd: EtcdClusterFixture | undefined;
    const iqn = (s: string) => `iqn.2026-11.org.qstora:mq-${s}`;

    beforeAll(async () => {
      if (backend === "etcd") etcd = await startEtcdCluster({ size: 3 });
      const extra = etcd === undefined ? [] : ["--etcd", etcd.urls.join(",")];
      const r = a.init([`${a.dir}/a1.img:1G`], extra, "na");
      if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
      const token = a.ok("token", "create", "--ttl", "1h").stdout.trim();
      joinCmd(b, a, token, "nb");
      joinCmd(c, a, token, "nc");
      joinCmd(d, a, token, "nd");
    }, 120_000);
    afterAll(async () => {
      for (const n of nodes) n.cleanup();
      await etcd?.stop();
    });

    test("the store forms (three members and a client, or every node on the etcd); every node sees the same members and one manager", async () => {
      const upAll = JSON.stringify(["na:up", "nb:up", "nc:up", "nd:up"]);
      const agree = (vs: Status[]) => vs.every((s) => JSON.stringify(s.nodes.map((x) => `${x.name}:${x.state}`).sort()) === upAll && s.manager?.name === vs[0]?.manager?.name);
      const views = await waitFor("four nodes up and one manager in every view", () => nodes.map((n) => n.qJson<Status>("status")), agree);
      for (const s of views) {
        expect(s.nodes.map((x) => `${x.name}:${x.state}`).sort()).toEqual(["na:up", "nb:up", "nc:up", "nd:up"]);
        expect(s.manager?.name).toBe(views[0]?.manager?.name as string);
      }
      expect(names).toContain(views[0]?.manager?.name as string);
      if (backend === "embedded") {
        expect(views.map((s) => s.metadata.backend)).toEqual(["embedded", "embedded", "embedded", "cluster"]);
        for (const s of views) {
          expect(s.metadata.mode).toBe("embedded-raft");
          expect((s.metadata.members ?? []).map((m) => m.name).sort()).toEqual(["na", "nb", "nc"]);
          expect((s.metadata.members ?? []).filter((m) => m.leader).length).toBe(1);
        }
        // The client reaches every member.
        expect(views[3]?.metadata.endpoints.length).toBe(3);
      } else {
        for (const s of views) {
          expect(s.metadata.backend).toBe("etcd");
          expect(s.metadata.endpoints.sort()).toEqual([...(etcd as EtcdClusterFixture).urls].sort());
          expect(s.metadata.leader).toBeTruthy();
        }
      }
      a.ok("target", "create", iqn("one"));
      // One copy (the default on these nodes would be replica:3): this test is about the metadata store.
      a.ok("lun", "create", "--target", iqn("one"), "--size", "64M", "--redundancy", "none");
    }, 60_000);

    test("SIGKILL of one metadata member: target and LUN commands still work; restarted, it catches up", async () => {
      let victim: TestNode;
      if (backend === "embedded") {
        // The Raft leader: the hardest member to lose.
        const leader = a.qJson<Status>("status").metadata.members?.find((m) => m.leader)?.name as string;
        victim = byName(leader);
        victim.kill9();
      } else {
        victim = a;
        await (etcd as EtcdClusterFixture).kill(0);
      }
      const survivor = nodes.find((n) => n !== victim && n !== d) as TestNode;
      const ms = await within(15_000, () => survivor.ok("target", "create", iqn("two")));
      console.log(`${backend}: first target command after losing a metadata member answered after ${ms} ms`);
      survivor.ok("lun", "create", "--target", iqn("two"), "--size", "64M", "--redundancy", "none");
      d.ok("target", "create", iqn("three"));
      expect(d.qJson<Array<{ iqn: string }>>("target", "list").map((t) => t.iqn)).toContain(iqn("three"));
      if (backend === "embedded") {
        victim.ok("start");
        // Caught up: its own data file holds the targets made while it was down, and every
        // member reports the same revision.
        await within(10_000, () => {
          const stored = storedKeys(victim);
          expect(stored).toContain("mq-two");
          expect(stored).toContain("mq-three");
          const members = victim.qJson<Status>("status").metadata.members ?? [];
          expect(members.every((m) => m.reachable)).toBe(true);
          expect(new Set(members.map((m) => m.revision)).size).toBe(1);
        });
      } else {
        await (etcd as EtcdClusterFixture).start(0);
        // The restarted etcd member answers with the targets made while it was down.
        const res = await fetch(`${(etcd as EtcdClusterFixture).urls[0]}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: btoa("/qstora/v1/targets/"), range_end: btoa("/qstora/v1/targets0"), serializable: true }) });
        const body = (await res.json()) as { kvs?: Array<{ key: string }> };
        expect((body.kvs ?? []).map((kv) => atob(kv.key)).sort()).toEqual([iqn("one"), iqn("three"), iqn("two")].map((i) => `/qstora/v1/targets/${i}`));
      }
    }, 90_000);

    test(`SIGKILL of the manager's node: another node is manager within ${takeoverMsMax / 1000} s`, async () => {
      const before = d.qJson<Status>("status").manager?.name as string;
      const victim = byName(before);
      const watcher = nodes.find((n) => n !== victim) as TestNode;
      const killedAt = Date.now();
      victim.kill9();
      let after = "";
      while (Date.now() - killedAt < takeoverMsMax + 5_000) {
        const r = watcher.q("status", "--json");
        if (r.code === 0) {
          after = (JSON.parse(r.stdout) as Status).manager?.name ?? "";
          if (after !== "" && after !== before) break;
        }
        await Bun.sleep(100);
      }
      const takeoverMs = Date.now() - killedAt;
      console.log(`${backend}: manager ${before} killed; ${after} took over after ${takeoverMs} ms`);
      expect(after).not.toBe(before);
      expect(after).not.toBe("");
      expect(takeoverMs).toBeLessThan(takeoverMsMax);
      victim.ok("start");
    }, 60_000);

    test("all nodes stopped and started again: the same cluster, targets and LUNs", async () => {
      const clusterId = a.qJson<Status>("status").node.clusterId;
      await stopAll(nodes);
      await startAll(nodes);
      for (const n of nodes) {
        const s = n.qJson<Status>("status");
        expect(s.node.clusterId).toBe(clusterId);
        expect(s.nodes.map((x) => `${x.name}:${x.state}`).sort()).toEqual(["na:up", "nb:up", "nc:up", "nd:up"]);
      }
      // Each node loads every target from the store at start.
      for (const n of nodes) expect(n.qJson<Array<{ iqn: string }>>("target", "list").map((t) => t.iqn).sort()).toEqual([iqn("one"), iqn("three"), iqn("two")]);
      const luns = new Set(nodes.flatMap((n) => n.qJson<Array<{ target: string }>>("lun", "list").map((l) => l.target)));
      expect([...luns].sort()).toEqual([iqn("one"), iqn("two")]);
      const io = run(["qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 1M", "-c", "read -P 0x5a 0 1M", a.url(iqn("one"))]);
      expect(io.code).toBe(0);
      expect(io.stdout).not.toContain("Pattern verification failed");
      await within(10_000, () => expect(b.qJson<Status>("status").manager?.name).toBeTruthy());
    }, 120_000);
  });
}

acceptance("embedded");
acceptance("etcd");
