// The node-to-node transport between real daemons (issue 4): a node that joins is reachable
// from the first over the authenticated peer listener and the other way round, `status` shows
// each node's round trip, and a node killed is shown unreachable. Three nodes, so that the
// embedded metadata group (a Raft group of three) keeps its quorum while one of them is killed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestNode, qstoraBin, run } from "./helpers/node.ts";

interface Status {
  nodes: Array<{ name: string; state: string; transport?: { reachable: boolean; rttMs?: number; error?: string } }>;
}

describe("three daemons on the peer transport", () => {
  const a = new TestNode("qstora-peer-a-");
  const b = new TestNode("qstora-peer-b-");
  const c = new TestNode("qstora-peer-c-");
  beforeAll(() => {
    expect(a.init([`${a.dir}/a1.img:256M`], [], "peer-a").code).toBe(0);
    const token = a.ok("token", "create", "--ttl", "1h").stdout.trim();
    for (const [n, name] of [[b, "peer-b"], [c, "peer-c"]] as const) {
      const r = run([qstoraBin, "join", a.address, "--token", token, "--archive", `${n.dir}/a1.img:256M`, "--address", n.address, "--name", name, "--data-dir", n.dataDir]);
      expect(`${r.code} ${r.stderr}`).toBe("0 ");
    }
  });
  afterAll(() => {
    for (const n of [c, b, a]) n.cleanup();
  });

  test("each node reaches the other (and itself) over the authenticated transport, with a round-trip time", () => {
    for (const n of [a, b, c]) {
      const s = n.qJson<Status>("status");
      const view = Object.fromEntries(s.nodes.map((x) => [x.name, x.transport]));
      for (const name of ["peer-a", "peer-b", "peer-c"]) {
        expect(view[name]?.reachable).toBe(true);
        expect(view[name]?.rttMs).toBeGreaterThan(0);
        expect(view[name]?.rttMs).toBeLessThan(1000);
      }
    }
    // The listener is on the node's own address and the standard port.
    const log = run(["sh", "-c", `grep -h "peer listener started" ${a.dataDir}/qstora.log ${b.dataDir}/qstora.log`]).stdout;
    expect(log).toContain(`${a.address}:7328`);
    expect(log).toContain(`${b.address}:7328`);
    expect(log).toContain("transport=gmac-aes256");
    expect(a.ok("node", "list").stdout).toMatch(/PEER[\s\S]*\d+\.\d\d ms/);
  });

  test("a node killed is shown unreachable by the other; restarted, reachable again", async () => {
    b.kill9();
    await Bun.sleep(300);
    let s = a.qJson<Status>("status");
    const peerB = () => s.nodes.find((x) => x.name === "peer-b")?.transport;
    // If peer-b led the metadata group, a reads no node records until a and c elect another
    // leader (a few seconds); the transport's answer is what this test is about.
    for (let i = 0; i < 60 && peerB() === undefined; i++) {
      await Bun.sleep(250);
      s = a.qJson<Status>("status");
    }
    expect(peerB()?.reachable).toBe(false);
    expect(peerB()?.error).toBeString();
    b.ok("start");
    for (let i = 0; i < 40 && peerB()?.reachable !== true; i++) {
      await Bun.sleep(250);
      s = a.qJson<Status>("status");
    }
    expect(peerB()?.reachable).toBe(true);
  }, 60_000);

  test("a stranger without a cluster certificate gets nothing from the peer port", async () => {
    let bytes = 0;
    const sock = await Bun.connect({ hostname: a.address, port: 7328, socket: { data: (_s, d) => void (bytes += d.byteLength), open: (s) => void s.write(new Uint8Array(64).fill(0x41)) } });
    await Bun.sleep(300);
    sock.end();
    expect(bytes).toBe(0);
    expect(run(["sh", "-c", `grep -c "peer refused" ${a.dataDir}/qstora.log`]).stdout.trim()).not.toBe("0");
  });
});
