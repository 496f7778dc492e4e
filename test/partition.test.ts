// A node cut off by a network partition (issue 4): node B runs in a network namespace of its own
// (ip netns + a veth pair), nodes A, C and D on three addresses of the host end of the pair. The
// metadata store is the embedded Raft group of A, C and D; B, the fourth to join, is its client
// across the veth (the members' gates listen on their node addresses). Taking B's end of the
// link down must make A show B suspect, then down; B, cut off from the store, shows
// METADATA_UNREACHABLE; bringing the link up again, B takes a new heartbeat lease and is up
// again. (B is a client, not a member: a cut-off member can be the Raft leader, and then the
// others read nothing until they elect another, so "suspect" may pass unseen.) Namespaces and links are named members4-* / m4*, and removed whatever happens.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NetnsLink } from "./helpers/netns.ts";
import { TestNode } from "./helpers/node.ts";

interface Status {
  nodes: Array<{ name: string; state: string; heartbeatAgeMs: number | null }>;
  health: { status: string; checks: Array<{ code: string; detail: string[] }> };
  metadata: { mode: string; members: Array<{ name: string; reachable: boolean }> };
}

const link = new NetnsLink({ nsPrefix: "members4-part", linkPrefix: "m4", hostAddresses: 3 });
const [hostAddr = "", hostAddr2 = "", hostAddr3 = ""] = link.hostAddresses;

/** Sets the observer's liveness limits low, so that the test takes seconds, not tens of them. */
function setLimits(node: TestNode, limits: { suspect: number; down: number }): void {
  const file = join(node.dataDir, "qstora.toml");
  const text = readFileSync(file, "utf8").replace(/suspect_after_ms = \d+/, `suspect_after_ms = ${limits.suspect}`).replace(/down_after_ms = [\d_]+/, `down_after_ms = ${limits.down}`);
  writeFileSync(file, text);
}

describe("a node cut off by a network namespace", () => {
  const a = new TestNode("qstora-m4-part-a-", { address: hostAddr });
  const b = new TestNode("qstora-m4-part-b-", { address: link.nsAddress, wrap: link.wrap });
  const c = new TestNode("qstora-m4-part-c-", { address: hostAddr2 });
  const d = new TestNode("qstora-m4-part-d-", { address: hostAddr3 });

  beforeAll(() => link.setup(), 60_000);

  afterAll(async () => {
    try {
      b.cleanup();
      d.cleanup();
      c.cleanup();
      a.cleanup();
    } finally {
      link.teardown();
    }
  });

  test("suspect, then down, then up again when the link comes back", async () => {
    expect(a.init([`${a.dir}/a1.img:1G`], [], "node-a").code).toBe(0);
    const token = a.ok("token", "create", "--ttl", "1h").stdout.trim();
    // C second (the group of two), D third (the group of three), B fourth: a client.
    for (const [n, name] of [[c, "node-c"], [d, "node-d"], [b, "node-b"]] as const) {
      const joined = n.q("join", hostAddr, "--token", token, "--archive", `${n.dir}/a1.img:1G`, "--address", n.address, "--name", name);
      expect(`${joined.code} ${joined.stderr}`).toBe("0 ");
    }
    // Limits low on the observer; node B's lease (down limit + 1 s) low too, so it lapses while cut.
    for (const n of [a, b, c, d]) setLimits(n, { suspect: 2000, down: 4000 });
    for (const n of [a, b, c, d]) n.ok("restart");
    const stateOfB = () => a.qJson<Status>("status").nodes.find((n) => n.name === "node-b");
    const upAll = ["node-a:up", "node-b:up", "node-c:up", "node-d:up"];
    const members = a.qJson<Status>("status").metadata;
    expect(members.mode).toBe("embedded-raft");
    expect(members.members.map((m) => m.name).sort()).toEqual(["node-a", "node-c", "node-d"]);
    // Restarting the members one after another costs the group an election or two: wait
    // until A and B both see every node up (beats on time) before cutting.
    const viewOf = (n: TestNode) => n.qJson<Status>("status").nodes.map((x) => `${x.name}:${x.state}`).join();
    const settle = Date.now();
    while (viewOf(a) !== upAll.join() || viewOf(b) !== upAll.join()) {
      if (Date.now() - settle > 30_000) throw new Error(`not every node up after the restarts: ${viewOf(a)} / ${viewOf(b)}`);
      await Bun.sleep(250);
    }

    link.cut();
    const cutAt = Date.now();
    const seen: string[] = [];
    let suspectChecks: string[] = [];
    let keyGone = false;
    while (Date.now() - cutAt < 30_000) {
      const s = a.qJson<Status>("status");
      const nb = s.nodes.find((n) => n.name === "node-b");
      if (nb !== undefined && seen[seen.length - 1] !== nb.state) seen.push(nb.state);
      if (nb?.state === "suspect") suspectChecks = s.health.checks.map((c) => c.code);
      // Wait past B's lease as well (its key gone: age null), so that B must get a new lease back.
      if (nb?.state === "down" && nb.heartbeatAgeMs === null) {
        keyGone = true;
        expect(s.health.checks.map((c) => c.code)).toContain("NODE_DOWN");
        break;
      }
      await Bun.sleep(250);
    }
    const downAfterMs = Date.now() - cutAt;
    expect(seen).toEqual(["up", "suspect", "down"]);
    expect(suspectChecks).toContain("NODE_SUSPECT");
    expect(keyGone).toBe(true);
    // The cut-off side knows it: its store does not answer.
    const cutView = b.qJson<Status["health"]>("health");
    expect(cutView.status).toBe("HEALTH_ERR");
    expect(cutView.checks.map((c) => c.code)).toContain("METADATA_UNREACHABLE");

    link.heal();
    const upAt = Date.now();
    while (stateOfB()?.state !== "up") {
      if (Date.now() - upAt > 30_000) throw new Error("node-b did not come back up within 30 s of the link coming back");
      await Bun.sleep(250);
    }
    console.log(`partition: node-b down (lease gone) ${downAfterMs} ms after the cut; up ${Date.now() - upAt} ms after the link came back`);
    expect(a.qJson<Status>("status").health.status).toBe("HEALTH_OK");
    const back = Date.now();
    while (viewOf(b) !== upAll.join()) {
      if (Date.now() - back > 30_000) throw new Error("node-b's own view did not come back within 30 s");
      await Bun.sleep(250);
    }
  }, 180_000);
});
