// Joining (issue 4, first part): nodes on their own loopback addresses join the first node with
// a token that pins its CA; every node's status lists every node; a node that dies is shown down
// within the heartbeat lease; and every bad join is refused with nothing written.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { TestNode, qstoraBin, randomLoopback, run, waitFor, type RunResult } from "./helpers/node.ts";

interface Status {
  node: { name: string; clusterId: string };
  nodes: Array<{ name: string; state: string }>;
  health: { status: string; checks: Array<{ code: string }> };
}

function joinCmd(node: TestNode, member: TestNode, token: string, name: string): RunResult {
  return run([qstoraBin, "join", member.address, "--token", token, "--archive", `${node.dir}/a1.img:1G`, "--address", node.address, "--name", name, "--data-dir", node.dataDir]);
}

describe("a cluster formed with init and join", () => {
  const a = new TestNode("qstora-cluster-a-");
  const b = new TestNode("qstora-cluster-b-");
  const c = new TestNode("qstora-cluster-c-");
  let token = "";
  beforeAll(() => {
    expect(a.init([`${a.dir}/a1.img:1G`], [], "node-a").code).toBe(0);
    token = a.ok("token", "create", "--ttl", "1h").stdout.trim();
  });
  afterAll(() => {
    for (const n of [c, b, a]) n.cleanup();
  });

  test("two nodes join; every node's status lists all three, up", async () => {
    for (const [n, name] of [[b, "node-b"], [c, "node-c"]] as const) {
      const r = joinCmd(n, a, token, name);
      expect(`${r.code} ${r.stderr}`).toBe("0 ");
    }
    const clusterIds = new Set<string>();
    const all = JSON.stringify(["node-a:up", "node-b:up", "node-c:up"]);
    for (const n of [a, b, c]) {
      const s = await waitFor(`${n.address} sees all three up`, () => n.qJson<Status>("status"), (v) => JSON.stringify(v.nodes.map((x) => `${x.name}:${x.state}`).sort()) === all);
      clusterIds.add(s.node.clusterId);
    }
    expect(clusterIds.size).toBe(1);
    expect(c.qJson<Array<{ name: string }>>("node", "list").map((n) => n.name).sort()).toEqual(["node-a", "node-b", "node-c"]);
    // The second join waits for the metadata group of two to form (a few seconds).
  }, 60_000);

  test("a joined node serves its own LUNs", () => {
    const iqn = "iqn.2026-11.org.qstora:on-b";
    b.ok("target", "create", iqn);
    b.ok("lun", "create", "--target", iqn, "--size", "64M");
    const io = run(["qemu-io", "-f", "raw", "-c", "write -P 0x42 0 1M", "-c", "read -P 0x42 0 1M", b.url(iqn)]);
    expect(io.code).toBe(0);
    expect(io.stdout).not.toContain("Pattern verification failed");
  });

  test("a node killed is shown down (NODE_DOWN) within the lease, and up again after a restart", async () => {
    c.kill9();
    const stateOfC = (s: Status) => s.nodes.find((x) => x.name === "node-c")?.state;
    const s = await waitFor("node-c down", () => a.qJson<Status>("status"), (v) => stateOfC(v) === "down");
    expect(stateOfC(s)).toBe("down");
    expect(s.health.checks.map((x) => x.code)).toContain("NODE_DOWN");
    c.ok("start");
    await waitFor("node-c up", () => a.qJson<Status>("status"), (v) => stateOfC(v) === "up");
  }, 60_000);

  test("all nodes stopped and started again: the same cluster, nodes and LUNs", async () => {
    for (const n of [c, b, a]) n.ok("stop");
    // Together, as after a power cut: a metadata member waits for a quorum of its group.
    const starts = [a, b, c].map((n) => Bun.spawn([qstoraBin, "start", "--data-dir", n.dataDir], { stdout: "ignore", stderr: "ignore" }));
    expect(await Promise.all(starts.map((p) => p.exited))).toEqual([0, 0, 0]);
    const states = (): string[] => b.qJson<Status>("status").nodes.map((x) => `${x.name}:${x.state}`).sort();
    const all = ["node-a:up", "node-b:up", "node-c:up"];
    await waitFor("all three up", states, (v) => JSON.stringify(v) === JSON.stringify(all));
    expect(b.qJson<Array<{ target: string }>>("lun", "list").map((l) => l.target)).toEqual(["iqn.2026-11.org.qstora:on-b"]);
    const io = run(["qemu-io", "-f", "raw", "-c", "read -P 0x42 0 1M", b.url("iqn.2026-11.org.qstora:on-b")]);
    expect(io.code).toBe(0);
    expect(io.stdout).not.toContain("Pattern verification failed");
  }, 60_000);

  test("bad joins are refused and write nothing", async () => {
    const bad = new TestNode("qstora-cluster-bad-");
    try {
      const [prefix, rest] = token.split("::") as [string, string];
      const refused = (t: string, why: RegExp, exit: number) => {
        const r = joinCmd(bad, a, t, "node-x");
        expect(r.code).toBe(exit);
        expect(r.stderr + r.stdout).toMatch(why);
        expect(existsSync(bad.dataDir)).toBe(false);
        expect(existsSync(join(bad.dir, "a1.img"))).toBe(false);
      };
      refused(`${prefix}::${rest.slice(0, -4)}AAAA`, /secret is wrong/, 14);
      refused(`QS1${"0".repeat(64)}::${rest}`, /hash does not match/, 14);
      refused("not-a-token", /not a qstora join token/, 2);
      const shortLived = a.ok("token", "create", "--ttl", "1s").stdout.trim();
      await Bun.sleep(1500);
      refused(shortLived, /expired/, 14);
      const revoked = a.ok("token", "create").stdout.trim();
      a.ok("token", "revoke", revoked.split("::")[1]!.split(".")[0]!);
      refused(revoked, /not known here/, 14);
      const dup = joinCmd(bad, a, token, "node-b");
      expect(dup.code).toBe(4);
      expect(dup.stderr).toContain("already in the cluster");
      // A data directory that already holds a node can't join again.
      const again = joinCmd(b, a, token, "node-b2");
      expect(again.code).toBe(8);
    } finally {
      bad.cleanup();
    }
    expect(a.qJson<Status>("status").nodes.length).toBe(3);
  }, 60_000);

  test("two more join: five nodes, and every node's status agrees", async () => {
    const more = [new TestNode("qstora-cluster-d-"), new TestNode("qstora-cluster-e-")];
    try {
      more.forEach((n, i) => {
        const r = joinCmd(n, a, token, `node-${"de"[i]}`);
        expect(`${r.code} ${r.stderr}`).toBe("0 ");
      });
      const five = JSON.stringify(["node-a:up", "node-b:up", "node-c:up", "node-d:up", "node-e:up"]);
      const readViews = () => [a, b, c, ...more].map((n) => JSON.stringify(n.qJson<Status>("status").nodes.map((x) => `${x.name}:${x.state}`).sort()));
      await waitFor("five agreeing views", readViews, (v) => v.every((x) => x === five));
    } finally {
      for (const n of more) n.cleanup();
    }
  }, 60_000);
});

test("randomLoopback gives distinct addresses", () => {
  expect(randomLoopback()).not.toBe(randomLoopback());
});
