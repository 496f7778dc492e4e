// A node with two iSCSI portals (portal.listen and portal.extra, two loopback addresses) serves
// the same LUN through both, as one portal group: login through each, SendTargets through each
// lists both, the same VPD 83h (one target port), and a write through one is read back through
// the other. A second portal whose address is taken fails the start, naming that address.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TestNode, randomLoopback, run } from "./helpers/node.ts";

const iqn = "iqn.2026-11.org.qstora:two-portals";

function otherLoopback(than: string): string {
  let a = randomLoopback();
  while (a === than) a = randomLoopback();
  return a;
}

describe("a node with two portals", () => {
  const node = new TestNode("qstora-portals-");
  const second = otherLoopback(node.address);
  const urlA = node.url(iqn);
  const urlB = `iscsi://${second}:3260/${iqn}/0`;
  beforeAll(() => {
    const r = node.init(undefined, ["--extra-portal", `${second}:3260`]);
    if (r.code !== 0) throw new Error(`init failed: ${r.stderr}${r.stdout}`);
    node.ok("target", "create", iqn);
    node.ok("lun", "create", "--target", iqn, "--size", "64M");
  });
  afterAll(() => node.cleanup());

  test("init writes portal.extra to qstora.toml; status names both portals", () => {
    expect(readFileSync(join(node.dataDir, "qstora.toml"), "utf8")).toContain(`extra = [ "${second}:3260" ]`);
    const s = node.qJson<{ portal: string; portals: string[] }>("status");
    expect(s.portal).toBe(node.portal);
    expect(s.portals).toEqual([node.portal, `${second}:3260`]);
    expect(node.ok("status").stdout).toContain(`portal:   ${node.portal}, ${second}:3260`);
  });

  test("login through each portal; both report the same device identification (one target port)", () => {
    const vpd = [urlA, urlB].map((u) => {
      const r = run(["iscsi-inq", "-e", "1", "-c", "131", u]);
      expect(r.code).toBe(0);
      return r.stdout;
    });
    expect(vpd[0]).toContain(`Designator:[${iqn},t,0x0001]`);
    expect(vpd[0]).toContain("RELATIVE_TARGET_PORT");
    expect(vpd[1]).toBe(vpd[0] as string);
  });

  test("SendTargets through either portal lists both with the portal group tag", () => {
    for (const portal of [node.portal, `${second}:3260`]) {
      const r = run(["iscsi-ls", `iscsi://${portal}`]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Target:${iqn} Portal:${node.portal},1`);
      expect(r.stdout).toContain(`Target:${iqn} Portal:${second}:3260,1`);
    }
  });

  test("a write through one portal is read back through the other", () => {
    expect(run(["qemu-io", "-f", "raw", "-c", "write -P 0x6b 64k 128k", urlA]).code).toBe(0);
    const r = run(["qemu-io", "-f", "raw", "-c", "read -P 0x6b 64k 128k", urlB]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("Pattern verification failed");
    expect(run(["qemu-io", "-f", "raw", "-c", "write -P 0x2c 1M 4k", urlB]).code).toBe(0);
    expect(run(["qemu-io", "-f", "raw", "-c", "read -P 0x2c 1M 4k", urlA]).stdout).not.toContain("Pattern verification failed");
  });
});

describe("a second portal whose address is taken", () => {
  const node = new TestNode("qstora-portals-busy-");
  const second = otherLoopback(node.address);
  afterAll(() => node.cleanup());

  test("the start fails and says which address", () => {
    const squatter = Bun.listen({ hostname: second, port: 3260, socket: { data() {} } });
    try {
      const r = node.init(undefined, ["--extra-portal", `${second}:3260`]);
      expect(r.code).not.toBe(0);
      expect(r.stderr + r.stdout).toContain(`${second}:3260`);
    } finally {
      squatter.stop(true);
    }
  });

  test("init refuses a portal given twice, and one that is not ADDRESS:PORT", () => {
    const again = new TestNode("qstora-portals-twice-");
    try {
      expect(again.init(undefined, ["--extra-portal", again.portal]).stderr).toContain("given twice");
      expect(again.init(undefined, ["--extra-portal", "nonsense"]).stderr).toContain("is not ADDRESS:PORT");
    } finally {
      again.cleanup();
    }
  });
});
