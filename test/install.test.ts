// Issue 7's acceptance: release zips served from a local HTTP server, installed with
// `curl -fsSL URL/install.sh | sh` by a fresh user with no Bun or Node on PATH; the installed
// qstora brings up a node whose LUN iscsi-inq sees; a corrupted zip installs nothing; running
// again changes nothing; uninstall removes it. Also the "green" check: as a normal user, qstora
// writes only inside its install dir and its data dir.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomLoopback, repoRoot, run } from "./helpers/node.ts";

const user = "qstoratest";
const tools = ["sh", "dash", "bash", "env", "curl", "sha256sum", "unzip", "mktemp", "rm", "mkdir", "cp", "mv", "chmod", "grep", "sed", "sort", "tail", "head", "cut", "uname", "id", "cat", "tr", "ls", "sleep"];

/** A PATH with the basic tools an installer needs and no bun, node or npm. */
function barePath(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const t of tools) {
    const where = Bun.which(t);
    if (where !== null && !existsSync(join(dir, t))) symlinkSync(where, join(dir, t));
  }
  return dir;
}

/**
 * Serves `dir` over HTTP on 127.0.0.1 from a child process (the tests block in spawnSync, so the
 * server cannot live in this process). With `corrupt`, serves a copy whose zips have one byte
 * flipped while sha256sums.txt stays as built.
 */
function serveDir(dir: string, corrupt = false): { url: string; stop(): void } {
  let root = dir;
  if (corrupt) {
    root = mkdtempSync(join(tmpdir(), "qstora-corrupt-"));
    cpSync(dir, root, { recursive: true, filter: (src) => !src.includes("/stage") && !src.includes("/.cache") && !src.endsWith("/qstora") });
    for (const f of Bun.spawnSync(["sh", "-c", `ls ${root}/*.zip`]).stdout.toString().split("\n").filter((l) => l !== "")) {
      const bytes = readFileSync(f);
      bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0xff;
      writeFileSync(f, bytes);
    }
  }
  const port = 20000 + Math.floor(Math.random() * 20000);
  const script = `Bun.serve({ hostname: "127.0.0.1", port: ${port}, async fetch(req) { const n = new URL(req.url).pathname.slice(1); if (n.includes("/") || n.includes("..")) return new Response("no", { status: 404 }); const f = Bun.file(${JSON.stringify(root)} + "/" + n); return (await f.exists()) ? new Response(f) : new Response("not found", { status: 404 }); } }); console.log("up");`;
  const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (run(["curl", "-fsS", "-o", "/dev/null", `http://127.0.0.1:${port}/sha256sums.txt`]).code === 0) break;
    Bun.sleepSync(50);
  }
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => {
      child.kill(9);
      if (corrupt) rmSync(root, { recursive: true, force: true });
    },
  };
}

/** A throwaway unprivileged user (the installer as root would write to /usr/local/bin). */
function ensureUser(): void {
  if (process.getuid?.() !== 0) throw new Error("the install tests create a user: run them as root (CI does)");
  if (run(["id", user]).code !== 0) expect(run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", user]).code).toBe(0);
}

/** A fresh home directory owned by the test user. */
function freshHome(prefix: string): string {
  const home = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(home, 0o755);
  run(["chown", `${user}:`, home]);
  return home;
}

/** Runs a shell script as the test user with HOME and PATH set as given. */
function asUser(script: string, home: string, path: string) {
  return run(["runuser", "-u", user, "--", "env", "-i", `HOME=${home}`, `PATH=${path}`, "sh", "-c", script], { timeoutMs: 300_000, cwd: home });
}

describe("curl | sh install", () => {
  const work = mkdtempSync(join(tmpdir(), "qstora-install-"));
  chmodSync(work, 0o755);
  const bin = barePath(join(work, "bin"));
  let home = "";
  let server: { url: string; stop(): void };
  const sh = (script: string) => asUser(script, home, bin);

  beforeAll(() => {
    ensureUser();
    home = freshHome("qstora-home-");
    const p = run([process.execPath, "pkg/package.ts", "--only", "x64"], { timeoutMs: 300_000 });
    if (p.code !== 0) throw new Error(`packaging failed: ${p.stderr}${p.stdout}`);
    server = serveDir(join(repoRoot, "dist"));
  });
  afterAll(() => {
    server?.stop();
    sh(`${join(home, ".local/bin/qstora")} stop`);
    rmSync(work, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });

  test("the PATH of this test has no bun, node or npm", () => {
    expect(sh("command -v node || command -v bun || command -v npm || echo none").stdout.trim()).toBe("none");
  });

  test("a corrupted zip stops with a checksum error and installs nothing", () => {
    const bad = serveDir(join(repoRoot, "dist"), true);
    try {
      const r = sh(`curl -fsSL ${bad.url}/install.sh | QSTORA_BASE_URL=${bad.url} sh`);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("checksum mismatch");
      expect(existsSync(join(home, ".local/bin/qstora"))).toBe(false);
    } finally {
      bad.stop();
    }
  });

  test("installs, serves a LUN iscsi-inq sees, re-runs as a no-op, uninstalls", () => {
    let r = sh(`curl -fsSL ${server.url}/install.sh | QSTORA_BASE_URL=${server.url} sh`);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("installed in");
    expect(r.stdout).toContain("is not on your PATH");
    const q = join(home, ".local/bin/qstora");
    expect(existsSync(q)).toBe(true);
    expect(sh(`${q} --version`).stdout).toMatch(/^qstora \d+\.\d+\.\d+ /);

    const addr = randomLoopback();
    const dd = join(home, ".qstora");
    // An unprivileged user can't bind port 3260: the portal takes a high port.
    r = sh(`${q} init --archive ${dd}/a1.img:1G --address ${addr} --portal ${addr}:13260 && ${q} target create iqn.2026-11.org.qstora:inst && ${q} lun create --target iqn.2026-11.org.qstora:inst --size 256M`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const inq = run(["iscsi-inq", `iscsi://${addr}:13260/iqn.2026-11.org.qstora:inst/0`]);
    expect(inq.code).toBe(0);
    expect(inq.stdout).toContain("Vendor:QSTORA");
    expect(sh(`${q} stop`).code).toBe(0);

    const before = readFileSync(q);
    r = sh(`curl -fsSL ${server.url}/install.sh | QSTORA_BASE_URL=${server.url} sh`);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("already installed");
    expect(readFileSync(q).equals(before)).toBe(true);

    r = sh(`${join(home, ".local/bin/qstora-uninstall.sh")}`);
    expect(r.code).toBe(0);
    expect(existsSync(q)).toBe(false);
    expect(existsSync(join(home, ".local/bin/qstora-uninstall.sh"))).toBe(false);
    expect(existsSync(dd)).toBe(true); // data stays without --purge
    r = sh(`curl -fsSL ${server.url}/install.sh | sh -s -- --base-url ${server.url} && ${join(home, ".local/bin/qstora-uninstall.sh")} --purge`);
    expect(r.code).toBe(0);
    expect(existsSync(dd)).toBe(false);
  }, 300_000);

  test("--help explains the settings; an unknown flag is refused", () => {
    const r = sh(`sh ${join(repoRoot, "install.sh")} --help`);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("QSTORA_BASE_URL");
    expect(sh(`sh ${join(repoRoot, "install.sh")} --frobnicate`).code).not.toBe(0);
  });
});

describe("green: as a normal user, qstora writes only in its install dir and data dir", () => {
  test("every file the user owns afterwards is inside the install dir or the data dir", () => {
    ensureUser();
    const home = freshHome("qstora-green-");
    const install = join(home, ".local/bin");
    const data = join(home, ".qstora");
    const server = serveDir(join(repoRoot, "dist"));
    const addr = randomLoopback();
    const iqn = "iqn.2026-11.org.qstora:green";
    const user$ = (script: string) => asUser(script, home, "/usr/bin:/bin");
    // Only what this run changed counts (another run may have left a user-owned directory).
    const marker = join(tmpdir(), `qstora-green-marker-${process.pid}`);
    writeFileSync(marker, "");
    try {
      const steps = [
        `curl -fsSL ${server.url}/install.sh | QSTORA_BASE_URL=${server.url} sh`,
        // Unprivileged users cannot bind port 3260: the portal takes a high port.
        `${install}/qstora init --archive ${data}/a1.img:1G --address ${addr} --portal ${addr}:13260`,
        `${install}/qstora target create ${iqn}`,
        `${install}/qstora lun create --target ${iqn} --size 128M`,
      ];
      for (const s of steps) {
        const r = user$(s);
        expect(`${s} -> ${r.code} ${r.stderr}`).toBe(`${s} -> 0 ${r.stderr}`);
      }
      const io = run(["qemu-io", "-f", "raw", "-c", "write -P 0x3c 0 4M", "-c", "read -P 0x3c 0 4M", `iscsi://${addr}:13260/${iqn}/0`]);
      expect(io.code).toBe(0);
      expect(user$(`${install}/qstora stop`).code).toBe(0);
      // A normal user can write only what it owns, plus world-writable places: list both.
      const owned = [...new Set(run(["find", "/", "/tmp", "/var/tmp", "/dev/shm", "-xdev", "-user", user, "-newer", marker]).stdout.split("\n").filter((l) => l !== ""))];
      const inside = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);
      const outside = owned.filter((p) => !inside(p, install) && !inside(p, data) && p !== home && p !== join(home, ".local"));
      expect(outside).toEqual([]);
      expect(owned.some((p) => p.startsWith(data))).toBe(true);
    } finally {
      server.stop();
      user$(`${install}/qstora stop`);
      rmSync(marker, { force: true });
      rmSync(home, { recursive: true, force: true });
    }
  }, 300_000);
});
