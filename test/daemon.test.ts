// The daemon's lifecycle as an operator meets it: files and their modes in the data directory,
// one daemon per data directory, configuration errors that name the key, restart after a crash,
// and a clean stop under load that loses no acknowledged write.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestNode, iscsiLoadBin, qstoraBin, run, spawnLoad } from "./helpers/node.ts";

const iqn = "iqn.2026-11.org.qstora:daemon";

describe("daemon lifecycle", () => {
  const node = new TestNode("qstora-daemon-");
  let url = "";
  beforeAll(() => {
    url = node.initWithLun("256M", iqn);
  });
  afterAll(() => node.cleanup());

  test("the data directory holds the secret (0600), pid, log and config", () => {
    expect(statSync(join(node.dataDir, "control.secret")).mode & 0o777).toBe(0o600);
    expect(statSync(node.dataDir).mode & 0o077).toBe(0);
    expect(node.pid()).toBeGreaterThan(0);
    expect(readFileSync(join(node.dataDir, "qstora.log"), "utf8")).toContain(" ready ");
    expect(readFileSync(join(node.dataDir, "qstora.toml"), "utf8")).toContain(`listen = "${node.address}:3260"`);
  });

  test("status reports the erasure-coding kernel chosen at start", () => {
    const s = node.qJson<{ ec: { kernel: string; available: string[] } }>("status");
    expect(s.ec.available.length).toBeGreaterThan(0);
    expect(s.ec.kernel).toBe(s.ec.available[0]!);
    expect(["isal", "wasm-relaxed-simd", "wasm-simd", "typescript"]).toContain(s.ec.kernel);
  });

  test("a second daemon on the same data directory is refused", () => {
    const r = run([qstoraBin, "serve", "--data-dir", node.dataDir]);
    expect(r.code).toBe(13);
    expect(r.stderr + r.stdout).toContain("another qstora daemon is running");
    expect(node.q("start").code).toBe(4);
  });

  test("the control API refuses a request without the secret", async () => {
    const res = await fetch(`http://${node.address}:7325/v1/status`);
    expect(res.status).toBe(401);
  });

  test("SIGTERM under load finishes in-flight I/O: every acknowledged write is there after", async () => {
    const history = join(node.dir, "term-history.bin");
    // The daemon stops (SIGTERM) 3 s into the load; the load ends when its connection does and
    // saves its history (which writes were acknowledged); then the daemon starts again.
    const load = spawnLoad(["-m", "randwrite", "-V", "-t", "30", "-R", "64M", "-s", "11", "-S", history, url], join(node.dir, "term-load.json"));
    await Bun.sleep(3000);
    node.ok("stop");
    await load.finished();
    node.ok("start");
    const r = run([iscsiLoadBin, "-m", "verify", "-L", history, "-C", "acked", "-R", "64M", "-s", "11", url], { timeoutMs: 120_000 });
    const res = JSON.parse(r.stdout.trim().split("\n").pop() as string) as { verify_failures: number; checked: number };
    console.log(`verify after SIGTERM: ${r.stdout.trim()}`);
    expect(res.verify_failures).toBe(0);
    expect(res.checked).toBeGreaterThan(0);
  }, 120_000);

  test("health is OK, and names a missing archive when its file is gone", () => {
    expect(node.qJson<{ status: string }>("health").status).toBe("HEALTH_OK");
    node.ok("stop");
    const archive = join(node.dir, "a1.img");
    renameSync(archive, `${archive}.away`);
    node.ok("start");
    const h = node.qJson<{ status: string; checks: Array<{ code: string; detail: string[] }> }>("health", "detail");
    expect(h.status).toBe("HEALTH_ERR");
    expect(h.checks[0]?.code).toBe("ARCHIVE_UNAVAILABLE");
    expect(h.checks[0]?.detail[0]).toContain("a1.img");
    expect(node.q("status").stdout).toContain("ARCHIVE_UNAVAILABLE");
    node.ok("stop");
    renameSync(`${archive}.away`, archive);
    node.ok("start");
    expect(node.qJson<{ status: string }>("health").status).toBe("HEALTH_OK");
  });

  test("lun set --write-cache off/on changes the LUN's cache mode, kept in its record", () => {
    const off = node.qJson<{ writeCache: boolean }>("lun", "set", "--target", iqn, "--lun", "0", "--write-cache", "off");
    expect(off.writeCache).toBe(false);
    expect(node.qJson<Array<{ writeCache: boolean }>>("lun", "list")[0]?.writeCache).toBe(false);
    expect(run(["qemu-io", "-f", "raw", "-c", "write -P 0x11 0 64k", "-c", "read -P 0x11 0 64k", url]).code).toBe(0);
    expect(node.qJson<{ writeCache: boolean }>("lun", "set", "--target", iqn, "--lun", "0", "--write-cache", "on").writeCache).toBe(true);
    expect(node.q("lun", "set", "--target", iqn, "--lun", "0", "--write-cache", "maybe").code).toBe(2);
  });

  test("target chap set: initiators must authenticate; secrets come from files and are never shown", () => {
    const secretFile = join(node.dir, "chap-secret");
    writeFileSync(secretFile, "s3cret-of-16-chars\n", { mode: 0o600 });
    const t = node.qJson<{ chap: string }>("target", "chap", "set", iqn, "--user", "alice", "--secret-file", secretFile);
    expect(t.chap).toBe("one-way");
    expect(JSON.stringify(node.qJson<unknown>("target", "list"))).not.toContain("s3cret");
    expect(run(["iscsi-inq", url]).code).not.toBe(0);
    expect(run(["iscsi-inq", url.replace("iscsi://", "iscsi://alice%wrong-secret-1234@")]).code).not.toBe(0);
    const ok = run(["iscsi-inq", url.replace("iscsi://", "iscsi://alice%s3cret-of-16-chars@")]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("QSTORA");
    writeFileSync(secretFile, "short\n");
    expect(node.q("target", "chap", "set", iqn, "--user", "alice", "--secret-file", secretFile).code).toBe(2);
    expect(node.qJson<{ chap: string }>("target", "chap", "clear", iqn).chap).toBe("none");
    expect(run(["iscsi-inq", url]).code).toBe(0);
  });

  test("target acl: once a target has a list, other initiators neither log in nor see it", () => {
    const allowed = "iqn.2026-11.org.qstora:allowed-host";
    const other = "iqn.2026-11.org.qstora:other-host";
    expect(node.qJson<{ acl?: string[] }>("target", "acl", "add", iqn, allowed).acl).toEqual([allowed]);
    expect(run(["iscsi-inq", "-i", other, url]).code).not.toBe(0);
    expect(run(["iscsi-inq", "-i", allowed, url]).code).toBe(0);
    expect(run(["iscsi-ls", "-i", other, `iscsi://${node.portal}`]).stdout).not.toContain(iqn);
    expect(run(["iscsi-ls", "-i", allowed, `iscsi://${node.portal}`]).stdout).toContain(iqn);
    expect(node.q("target", "acl", "add", iqn, allowed).code).toBe(4);
    expect(node.q("target", "acl", "add", iqn, "not-an-iqn").code).toBe(2);
    expect(node.qJson<{ acl?: string[] }>("target", "acl", "remove", iqn, allowed).acl).toBeUndefined();
    expect(run(["iscsi-inq", "-i", other, url]).code).toBe(0);
  });

  test("a bad qstora.toml stops the start with an error naming the key", () => {
    node.ok("stop");
    const path = join(node.dataDir, "qstora.toml");
    const good = readFileSync(path, "utf8");
    writeFileSync(path, good.replace('level = "info"', 'level = "chatty"'));
    const r = node.q("start");
    expect(r.code).toBe(11);
    expect(r.stderr + r.stdout).toContain('"log.level"');
    writeFileSync(path, good);
    node.ok("start");
  });
});

describe("join tokens", () => {
  const node = new TestNode("qstora-tokens-");
  let initToken = "";
  beforeAll(() => {
    const r = node.init([`${node.dir}/a1.img:1G`], ["--json"]);
    if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
    initToken = (JSON.parse(r.stdout) as { joinToken: string }).joinToken;
  });
  afterAll(() => node.cleanup());

  test("init makes a CA and a token that pins it; token create prints one token alone", () => {
    const ca = new X509Certificate(readFileSync(join(node.dataDir, "ca.pem")));
    expect(ca.ca).toBe(true);
    expect(statSync(join(node.dataDir, "ca.key")).mode & 0o777).toBe(0o600);
    const fingerprint = createHash("sha256").update(ca.raw).digest("hex");
    expect(initToken.startsWith(`QS1${fingerprint}::`)).toBe(true);
    const out = node.ok("token", "create", "--ttl", "1h", "--description", "for node 2").stdout;
    expect(out.trim().split("\n").length).toBe(1);
    expect(out.trim()).toMatch(new RegExp(`^QS1${fingerprint}::[a-z0-9]{6}\\.[A-Za-z0-9_-]{32}$`));
  });

  test("token list shows ids and expiry, never secrets; revoke removes one", () => {
    const list = node.qJson<Array<{ id: string; expiresAt?: string; description?: string }>>("token", "list");
    expect(list.length).toBe(2);
    const listed = JSON.stringify(list);
    expect(listed).not.toContain(initToken.split(".")[1]!);
    expect(listed).not.toContain("secretSha256");
    const id = list.find((t) => t.description === "for node 2")!.id;
    node.ok("token", "revoke", id);
    expect(node.qJson<unknown[]>("token", "list").length).toBe(1);
    expect(node.q("token", "revoke", id).code).toBe(3);
    expect(node.q("token", "create", "--ttl", "soon").code).toBe(2);
  });
});
