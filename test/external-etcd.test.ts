// A node whose metadata lives in an external etcd (`init --etcd URL`, Debian's etcd-server started
// by the test): targets and LUNs are kept there, survive a restart of the daemon, and the data
// path serves real I/O.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestNode, randomLoopback, run } from "./helpers/node.ts";
import { startEtcd, type EtcdFixture } from "./etcd-fixture.ts";

const iqn = "iqn.2026-11.org.qstora:etcd";

describe("init --etcd: metadata in a real etcd", () => {
  const node = new TestNode("qstora-etcd-");
  let etcd: EtcdFixture;
  beforeAll(async () => {
    etcd = await startEtcd({ host: randomLoopback() });
    const r = node.init([`${node.dir}/a1.img:1G`], ["--etcd", etcd.url]);
    if (r.code !== 0) throw new Error(`init --etcd failed: ${r.stderr}${r.stdout}`);
    node.ok("target", "create", iqn);
    node.ok("lun", "create", "--target", iqn, "--size", "128M");
  });
  afterAll(async () => {
    node.cleanup();
    await etcd?.stop();
  });

  test("status names the etcd backend, and the records are in etcd", async () => {
    const s = node.qJson<{ metadata: { backend: string; endpoints: string[] } }>("status");
    expect(s.metadata.backend).toBe("etcd");
    expect(s.metadata.endpoints).toEqual([etcd.url]);
    const key = Buffer.from("/qstora/v1/targets/").toString("base64");
    const end = Buffer.from("/qstora/v1/targets0").toString("base64");
    const res = (await (await fetch(`${etcd.url}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key, range_end: end }) })).json()) as { kvs?: Array<{ key: string }> };
    expect((res.kvs ?? []).map((kv) => Buffer.from(kv.key, "base64").toString())).toEqual([`/qstora/v1/targets/${iqn}`]);
  });

  test("data written before a restart reads back after it", () => {
    const url = node.url(iqn);
    expect(run(["qemu-io", "-f", "raw", "-c", "write -P 0x7e 1M 1M", url]).code).toBe(0);
    node.ok("restart");
    const r = run(["qemu-io", "-f", "raw", "-c", "read -P 0x7e 1M 1M", url]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("Pattern verification failed");
    expect(node.qJson<Array<{ target: string }>>("lun", "list").map((l) => l.target)).toEqual([iqn]);
  });
});
