// Issue 7's acceptance: dist/ served from a local HTTP server on 127.0.0.1; a fresh user with no
// Bun or Node on PATH runs `curl -fsSL URL/install.sh | QSTORA_BASE_URL=URL sh`; the installed
// qstora brings up a node whose LUN iscsi-inq sees; a corrupted zip stops with a checksum error and
// installs nothing; running again changes nothing; a new version replaces the executable and says
// to restart; uninstall removes it. Then root's path, in a private mount namespace so that the
// host's /usr/local/bin, /etc and /run stay untouched: the binary, the systemd unit (not started
// unless asked) and /etc/default/qstora with mode 0600.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import packageJson from "../package.json" with { type: "json" };
import { asTestUser, barePath, ensureTestUser, freshHome, run, testUser } from "../pkg/testing/unprivileged.ts";
import { zipArchive } from "../pkg/zip.ts";
import { type StaticServer, serveStatic } from "./helpers/http-static.ts";
import { randomLoopback, repoRoot } from "./helpers/node.ts";

const version = packageJson.version;
const dist = join(repoRoot, "dist");
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

/** A release directory whose x64 zip holds a stand-in qstora (a shell script) of `fakeVersion`. */
function fakeRelease(dir: string, fakeVersion: string): string {
  mkdirSync(dir, { recursive: true });
  const top = `qstora-${fakeVersion}-linux-x64`;
  const script = new TextEncoder().encode(`#!/bin/sh\necho "qstora ${fakeVersion} (fake)"\n`);
  const zip = zipArchive(
    [
      { name: `${top}/qstora`, data: script, mode: 0o755 },
      { name: `${top}/qstora.service`, data: readFileSync(join(repoRoot, "pkg/qstora.service")), mode: 0o644 },
    ],
    { mtimeSeconds: 1_790_000_000 },
  );
  writeFileSync(join(dir, `${top}.zip`), zip);
  writeFileSync(join(dir, "sha256sums.txt"), `${sha256(zip)}  ${top}.zip\n`);
  cpSync(join(repoRoot, "install.sh"), join(dir, "install.sh"));
  chmodSync(dir, 0o755);
  return dir;
}

/** A copy of dist/'s release files with one byte of every zip flipped; sha256sums.txt as built. */
function corruptRelease(dir: string): string {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  for (const f of readdirSync(dist)) {
    if (!(f.endsWith(".zip") || f === "sha256sums.txt" || f === "install.sh")) continue;
    const bytes = readFileSync(join(dist, f));
    if (f.endsWith(".zip")) bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0xff;
    writeFileSync(join(dir, f), bytes);
  }
  return dir;
}

/** name size mtime of every entry under dir: equal listings mean nothing was rewritten. */
function listing(dir: string): string {
  return run(["find", dir, "-printf", "%p %s %T@ %m\\n"]).stdout.split("\n").sort().join("\n");
}

describe("curl | sh install as a normal user", () => {
  const work = mkdtempSync(join(tmpdir(), "qstora-install-"));
  chmodSync(work, 0o755);
  let bin = "";
  let home = "";
  let server: StaticServer;
  const sh = (script: string, env: Record<string, string> = {}) => asTestUser(script, { home, path: bin, env });
  const q = () => join(home, ".local/bin/qstora");
  const userTmpEntries = () => run(["find", "/tmp", "-maxdepth", "1", "-user", testUser]).stdout;

  beforeAll(async () => {
    ensureTestUser();
    bin = barePath(join(work, "bin"));
    home = freshHome("qstora-home-");
    const p = run([process.execPath, "pkg/package.ts", "--only", "x64"], { cwd: repoRoot, timeoutMs: 600_000 });
    if (p.code !== 0) throw new Error(`packaging failed: ${p.stderr}${p.stdout}`);
    server = await serveStatic(dist);
  }, 600_000);

  afterAll(async () => {
    await server?.stop();
    if (home !== "") sh(`${q()} stop`);
    rmSync(work, { recursive: true, force: true });
    if (home !== "") rmSync(home, { recursive: true, force: true });
  });

  test("the PATH of these tests has no bun, node or npm", () => {
    expect(sh("command -v node || command -v bun || command -v npm || echo none").stdout.trim()).toBe("none");
  });

  test("a corrupted zip stops with a checksum error, installs nothing and leaves no temporary files", async () => {
    const bad = await serveStatic(corruptRelease(join(work, "corrupt")));
    const tmpBefore = userTmpEntries();
    try {
      const r = sh(`curl -fsSL ${bad.url}/install.sh | QSTORA_BASE_URL=${bad.url} sh`);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("checksum mismatch");
      expect(r.stderr).toContain("Nothing was installed");
      expect(existsSync(join(home, ".local/bin/qstora"))).toBe(false);
      expect(existsSync(join(home, ".local/bin/qstora-uninstall.sh"))).toBe(false);
      expect(userTmpEntries()).toBe(tmpBefore);
    } finally {
      await bad.stop();
    }
  });

  test("installs; the installed qstora brings up a node whose LUN iscsi-inq sees", () => {
    let r = sh(`curl -fsSL ${server.url}/install.sh | QSTORA_BASE_URL=${server.url} sh`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`qstora ${version} installed in ${home}/.local/bin`);
    expect(r.stdout).toContain("is not on your PATH");
    expect(r.stdout).toContain("Next steps:");
    expect(r.stdout).toContain(`${q()} init --archive`);
    expect(statSync(q()).mode & 0o777).toBe(0o755);
    expect(sh(`${q()} --version`).stdout).toMatch(new RegExp(`^qstora ${version.replace(/\./g, "\\.")} \\([0-9a-f]+(\\+dirty)?\\)\\n$`));

    const addr = randomLoopback();
    const iqn = "iqn.2026-11.org.qstora:install";
    r = sh(`${q()} init --archive $HOME/.qstora/a1.img:1G --address ${addr} && ${q()} target create ${iqn} && ${q()} lun create --target ${iqn} --size 256M`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const inq = run(["iscsi-inq", `iscsi://${addr}:3260/${iqn}/0`]);
    expect(inq.stderr).toBe("");
    expect(inq.code).toBe(0);
    expect(inq.stdout).toContain("Vendor:QSTORA");
    // The erasure-coding kernel is WebAssembly carried inside the executable: it must load there.
    const status = JSON.parse(sh(`${q()} status --json`).stdout) as { ec: { available: string[] } };
    expect(status.ec.available.some((k) => k.startsWith("wasm"))).toBe(true);
    expect(sh(`${q()} stop`).code).toBe(0);
  }, 300_000);

  test("running it again with the same version changes nothing and downloads no zip", () => {
    const before = listing(join(home, ".local/bin"));
    const seen = server.requests().length;
    const r = sh(`curl -fsSL ${server.url}/install.sh | QSTORA_BASE_URL=${server.url} sh`);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`qstora ${version} is already installed`);
    expect(listing(join(home, ".local/bin"))).toBe(before);
    expect(server.requests().slice(seen)).toEqual(["/install.sh", "/sha256sums.txt"]);
  });

  test("a new version replaces the executable and says to restart; the old one comes back on request", async () => {
    const next = await serveStatic(fakeRelease(join(work, "next"), "99.0.0"));
    try {
      let r = sh(`curl -fsSL ${next.url}/install.sh | QSTORA_BASE_URL=${next.url} sh`);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`qstora ${version} replaced by 99.0.0 in ${home}/.local/bin`);
      expect(r.stdout).toContain("qstora restart");
      expect(sh(`${q()} --version`).stdout).toBe("qstora 99.0.0 (fake)\n");
      r = sh(`curl -fsSL ${server.url}/install.sh | QSTORA_BASE_URL=${server.url} QSTORA_VERSION=${version} sh`);
      expect(r.code).toBe(0);
      expect(sh(`${q()} --version`).stdout).toStartWith(`qstora ${version} (`);
    } finally {
      await next.stop();
    }
  });

  test("qstora-uninstall.sh removes it and keeps the data; install.sh --uninstall --purge removes the data", () => {
    const data = join(home, ".qstora");
    expect(existsSync(data)).toBe(true);
    let r = sh(join(home, ".local/bin/qstora-uninstall.sh"));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("was kept");
    expect(readdirSync(join(home, ".local/bin"))).toEqual([]);
    expect(existsSync(join(data, "a1.img"))).toBe(true);

    r = sh(`curl -fsSL ${server.url}/install.sh | sh -s -- --base-url ${server.url} --install-dir $HOME/opt/bin`);
    expect(r.code).toBe(0);
    expect(existsSync(join(home, "opt/bin/qstora"))).toBe(true);
    r = sh(`curl -fsSL ${server.url}/install.sh | sh -s -- --uninstall --purge`, { QSTORA_INSTALL_DIR: join(home, "opt/bin") });
    expect(r.code).toBe(0);
    expect(readdirSync(join(home, "opt/bin"))).toEqual([]);
    expect(existsSync(data)).toBe(false);
  });

  test("wget alone is enough", () => {
    const wgetOnly = join(work, "bin-wget");
    barePath(wgetOnly, ["sh", "wget", "sha256sum", "unzip", "mktemp", "rm", "mkdir", "cp", "mv", "chmod", "grep", "sed", "awk", "sort", "tail", "cut", "uname", "id", "cat", "dirname"]);
    const r = asTestUser(`wget -qO- ${server.url}/install.sh | QSTORA_BASE_URL=${server.url} sh && $HOME/.local/bin/qstora-uninstall.sh`, { home, path: wgetOnly });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("installed in");
  });

  test("--help lists the settings; an unknown flag and an unknown CPU stop with a clear message", () => {
    let r = sh(`curl -fsSL ${server.url}/install.sh | sh -s -- --help`);
    expect(r.code).toBe(0);
    for (const s of ["QSTORA_VERSION", "QSTORA_BASE_URL", "QSTORA_INSTALL_DIR", "QSTORA_SKIP_SERVICE", "QSTORA_SKIP_START", "--uninstall", "--purge"]) expect(r.stdout).toContain(s);
    r = sh(`sh ${join(repoRoot, "install.sh")} --frobnicate`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("unknown option --frobnicate");

    const riscv = join(work, "bin-riscv");
    mkdirSync(riscv);
    for (const t of readdirSync(bin)) if (t !== "uname") symlinkSync(join(bin, t), join(riscv, t));
    writeFileSync(join(riscv, "uname"), '#!/bin/sh\ncase $1 in -m) echo riscv64 ;; *) echo Linux ;; esac\n', { mode: 0o755 });
    chmodSync(riscv, 0o755);
    r = asTestUser(`curl -fsSL ${server.url}/install.sh | QSTORA_BASE_URL=${server.url} sh`, { home, path: riscv });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("there is no qstora build for riscv64");
    expect(existsSync(join(home, ".local/bin/qstora"))).toBe(false);
  });
});

describe("install.sh as root (private mount namespace, stand-in systemctl)", () => {
  test("installs /usr/local/bin/qstora and a unit that is not started; --start starts it; uninstall removes all", async () => {
    if (process.getuid?.() !== 0) throw new Error("this test needs root (it uses unshare -m)");
    const p = run([process.execPath, "pkg/package.ts", "--only", "x64"], { cwd: repoRoot, timeoutMs: 600_000 });
    expect(p.code).toBe(0);
    const server = await serveStatic(dist);
    const work = mkdtempSync(join(tmpdir(), "qstora-root-install-"));
    try {
      const fake = join(work, "fakebin");
      mkdirSync(fake);
      // systemctl stand-in: logs its arguments; `is-active` says inactive.
      writeFileSync(join(fake, "systemctl"), `#!/bin/sh\necho "$*" >> ${work}/systemctl.log\n[ "$1" != is-active ]\n`, { mode: 0o755 });
      const out = join(work, "out");
      const url = server.url;
      const script = `
set -e
for d in /usr/local/bin /etc/systemd/system /etc/default /run; do mount -t tmpfs tmpfs "$d"; done
mkdir -p /run/systemd/system
export PATH=${fake}:/usr/bin:/bin QSTORA_DATA_DIR=${work}/data
step() { echo "== $1" >> ${out}/log; }
mkdir -p ${out}
step install; curl -fsSL ${url}/install.sh | QSTORA_BASE_URL=${url} sh >> ${out}/log 2>&1
stat -c '%a %n' /usr/local/bin/qstora /etc/default/qstora /etc/systemd/system/qstora.service > ${out}/modes
cp /etc/systemd/system/qstora.service ${out}/unit; cp /etc/default/qstora ${out}/defaults
cp ${work}/systemctl.log ${out}/calls-install
ls -A /usr/local/bin > ${out}/bin-after-install
step rerun; QSTORA_BASE_URL=${url} sh ${repoRoot}/install.sh >> ${out}/log 2>&1
step uninstall; /usr/local/bin/qstora-uninstall.sh >> ${out}/log 2>&1
ls -A /usr/local/bin /etc/systemd/system /etc/default > ${out}/after-uninstall
step start; QSTORA_BASE_URL=${url} sh ${repoRoot}/install.sh --start >> ${out}/log 2>&1
cp ${work}/systemctl.log ${out}/calls-all
step purge; sh ${repoRoot}/install.sh --uninstall >> ${out}/log 2>&1
`;
      const r = run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], { timeoutMs: 300_000 });
      const log = existsSync(join(out, "log")) ? readFileSync(join(out, "log"), "utf8") : "";
      expect(`${r.code} ${r.stderr}`).toBe("0 ");
      expect(readFileSync(join(out, "modes"), "utf8")).toBe("755 /usr/local/bin/qstora\n600 /etc/default/qstora\n644 /etc/systemd/system/qstora.service\n");
      const unit = readFileSync(join(out, "unit"), "utf8");
      expect(unit).toContain("ExecStart=/usr/local/bin/qstora serve\n");
      expect(unit).toContain("EnvironmentFile=-/etc/default/qstora\n");
      expect(unit).toContain("Restart=always\n");
      expect(readFileSync(join(out, "defaults"), "utf8")).toContain(`QSTORA_DATA_DIR=${work}/data\n`);
      // Installed, reloaded, neither enabled nor started.
      expect(readFileSync(join(out, "calls-install"), "utf8")).toBe("daemon-reload\n");
      expect(readFileSync(join(out, "bin-after-install"), "utf8")).toBe("qstora\nqstora-uninstall.sh\n");
      expect(log).toContain("systemd unit: /etc/systemd/system/qstora.service");
      expect(log).toContain("not started");
      expect(log).toContain(`qstora ${version} is already installed`);
      expect(readFileSync(join(out, "after-uninstall"), "utf8")).toBe("/etc/default:\n\n/etc/systemd/system:\n\n/usr/local/bin:\n");
      const calls = readFileSync(join(out, "calls-all"), "utf8").split("\n");
      expect(calls).toContain("disable --now qstora");
      expect(calls.slice(-4)).toEqual(["daemon-reload", "enable qstora", "restart qstora", ""]);
      expect(log).toContain("started the qstora service");
      // The host's own directories were never touched.
      expect(existsSync("/etc/systemd/system/qstora.service")).toBe(false);
      expect(existsSync("/etc/default/qstora")).toBe(false);
    } finally {
      await server.stop();
      rmSync(work, { recursive: true, force: true });
    }
  }, 600_000);
});
