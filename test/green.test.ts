// The "green" check of issue 7: qstora installed and run by a normal user writes only inside its
// install dir and its data dir. Two independent proofs over one scenario (install with curl | sh,
// init, a target and a LUN, 4 MiB of I/O from qemu-io, stop):
// - every file-system-changing system call of qstora's processes, traced with strace -f (this
//   sees temporary files that are removed again, and attempts that failed);
// - the files the user owns anywhere on the host, listed before and after.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { asTestUser, barePath, ensureTestUser, freshHome, run, testUser } from "../pkg/testing/unprivileged.ts";
import { type StaticServer, serveStatic } from "./helpers/http-static.ts";
import { randomLoopback, repoRoot } from "./helpers/node.ts";

// System calls that create, change or remove a file system entry (strace's names).
const changingCalls = [
  "open", "openat", "openat2", "creat", "mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir",
  "link", "linkat", "symlink", "symlinkat", "truncate", "chmod", "fchmodat", "chown", "fchownat", "lchown", "utimensat",
  "mknod", "mknodat", "bind",
];
// open flags that make an open a change (fcntl.h).
const writingOpenFlags = /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND/;
// Kernel pseudo file systems: nothing written there persists on the host's storage.
const pseudoFileSystems = ["/proc/", "/sys/", "/dev/"];
const scenarioTimeoutMs = 240_000;
const readyTimeoutMs = 120_000;

interface Change {
  readonly call: string;
  readonly path: string;
  readonly line: string;
}

/** The path arguments of one strace -y line, resolved against their directory descriptors. */
export function changesOf(line: string): Change[] {
  // "PID call(args) = result": strace -f -y -o prints the pid first.
  const m = /^\d+\s+(\w+)\((.*)\)\s+=\s+/.exec(line);
  if (m === null) return [];
  const call = m[1] as string;
  const args = m[2] as string;
  if (!changingCalls.includes(call)) return [];
  if ((call === "open" || call === "openat" || call === "openat2") && !writingOpenFlags.test(args)) return [];
  if (call === "bind") {
    const sun = /sun_path="([^"]*)"/.exec(args);
    return sun === null || (sun[1] as string).startsWith("@") || sun[1] === "" ? [] : [{ call, path: sun[1] as string, line }];
  }
  // Operands: an optional directory descriptor "N</dir>" or "AT_FDCWD</dir>", then a "path".
  const out: Change[] = [];
  const operand = /(?:(?:\d+|AT_FDCWD)<([^>]*)>,\s*)?"((?:[^"\\]|\\.)*)"/g;
  for (let o = operand.exec(args); o !== null; o = operand.exec(args)) {
    const dir = o[1];
    const path = o[2] as string;
    out.push({ call, path: path.startsWith("/") || dir === undefined ? path : resolve(dir, path), line });
  }
  // utimensat/fchmodat on a descriptor alone ("N</file>, NULL"): the descriptor is the file.
  if (out.length === 0) {
    const fd = /^(?:\d+)<([^>]*)>/.exec(args);
    if (fd !== null) out.push({ call, path: fd[1] as string, line });
  }
  return out;
}

const inside = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

describe("green: qstora run by a normal user writes only in its install dir and data dir", () => {
  let server: StaticServer;
  let home = "";
  let bin = "";

  beforeAll(async () => {
    ensureTestUser();
    if (Bun.which("strace") === null) throw new Error("the green test needs strace (Debian package strace: apt-get install strace)");
    const p = run([process.execPath, "pkg/package.ts", "--only", "x64"], { cwd: repoRoot, timeoutMs: 600_000 });
    if (p.code !== 0) throw new Error(`packaging failed: ${p.stderr}${p.stdout}`);
    server = await serveStatic(join(repoRoot, "dist"));
    home = freshHome("qstora-green-");
    bin = barePath(join(home, "..", `${home.split("/").pop()}-bin`));
  }, 600_000);

  afterAll(async () => {
    await server?.stop();
    if (home !== "") {
      asTestUser(`${home}/.local/bin/qstora stop`, { home, path: bin });
      rmSync(home, { recursive: true, force: true });
      rmSync(bin, { recursive: true, force: true });
    }
  });

  test("traced system calls and the user's files before and after both stay inside them", async () => {
    const install = join(home, ".local/bin");
    const data = join(home, ".qstora");
    const control = join(home, "test-control"); // this test's own ready/go files
    const trace = join(home, "strace.log");
    const addr = randomLoopback();
    const iqn = "iqn.2026-11.org.qstora:green";
    const owned = () =>
      new Set(run(["find", "/", "/tmp", "/var/tmp", "/dev/shm", "-xdev", "-user", testUser], { timeoutMs: 120_000 }).stdout.split("\n").filter((l) => l !== ""));
    const before = owned();

    const r = asTestUser(`curl -fsSL ${server.url}/install.sh | QSTORA_BASE_URL=${server.url} sh`, { home, path: bin });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);

    mkdirSync(control);
    run(["chown", `${testUser}:`, control]);
    const q = `${install}/qstora`;
    const scenario = [
      "set -e",
      `${q} init --archive ${data}/a1.img:1G --address ${addr}`,
      `${q} target create ${iqn}`,
      `${q} lun create --target ${iqn} --size 128M`,
      `touch ${control}/ready`,
      `while [ ! -e ${control}/go ]; do sleep 0.1; done`,
      `${q} stop`,
    ].join("\n");
    const traced = Bun.spawn(
      ["runuser", "-u", testUser, "--", "env", "-i", `HOME=${home}`, `PATH=${bin}`, Bun.which("strace") as string, "-f", "-y", "-qq", "-o", trace, "-e", `trace=${changingCalls.join(",")}`, "sh", "-c", scenario],
      { cwd: home, stdout: "pipe", stderr: "pipe" },
    );
    const guard = setTimeout(() => traced.kill(9), scenarioTimeoutMs);
    try {
      const deadline = Date.now() + readyTimeoutMs;
      while (!existsSync(join(control, "ready")) && Date.now() < deadline && traced.exitCode === null) await Bun.sleep(100);
      if (!existsSync(join(control, "ready"))) {
        traced.kill(9);
        throw new Error(`the scenario did not get ready: ${await new Response(traced.stdout).text()}${await new Response(traced.stderr).text()}`);
      }
      const io = run(["qemu-io", "-f", "raw", "-c", "write -P 0x3c 0 4M", "-c", "read -P 0x3c 0 4M", `iscsi://${addr}:3260/${iqn}/0`]);
      expect(io.stderr).toBe("");
      expect(io.code).toBe(0);
    } finally {
      run(["runuser", "-u", testUser, "--", "touch", join(control, "go")]);
      // strace ends when the last traced process does: the daemon, after `qstora stop`.
      await traced.exited;
      clearTimeout(guard);
    }
    expect(`${traced.exitCode} ${await new Response(traced.stderr).text()}`).toBe("0 ");
    // Nothing of the user's keeps running once qstora stop has answered.
    const leftDeadline = Date.now() + 10_000;
    while (run(["pgrep", "-u", testUser]).stdout !== "" && Date.now() < leftDeadline) await Bun.sleep(100);
    expect(run(["ps", "-o", "pid,etime,args", "--no-headers", "-u", testUser]).stdout).toBe("");

    const changes = readFileSync(trace, "utf8").split("\n").flatMap(changesOf);
    expect(changes.some((c) => inside(c.path, data))).toBe(true); // the trace did see qstora work
    const outside = changes.filter(
      (c) => !inside(c.path, data) && !inside(c.path, install) && !inside(c.path, control) && !pseudoFileSystems.some((p) => c.path.startsWith(p)),
    );
    expect(outside.map((c) => c.line)).toEqual([]);

    const after = owned();
    const added = [...after].filter((p) => !before.has(p) && p !== home && p !== join(home, ".local") && p !== trace && !inside(p, control));
    expect(added.filter((p) => !inside(p, install) && !inside(p, data))).toEqual([]);
    expect(added.some((p) => inside(p, data))).toBe(true);
  }, 600_000);
});

describe("changesOf()", () => {
  test("reads paths of writing opens, renames and unix binds, resolving directory descriptors", () => {
    expect(changesOf('12 openat(15</tmp/bun-cc>, "stddef.h", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = -1 EACCES (Permission denied)').map((c) => c.path)).toEqual(["/tmp/bun-cc/stddef.h"]);
    expect(changesOf('7 openat(AT_FDCWD</home/u>, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3</etc/passwd>')).toEqual([]);
    expect(changesOf('7 openat(AT_FDCWD</home/u>, "rel/f", O_RDWR) = 3</home/u/rel/f>').map((c) => c.path)).toEqual(["/home/u/rel/f"]);
    expect(changesOf('7 rename("/d/a.tmp", "/d/a") = 0').map((c) => c.path)).toEqual(["/d/a.tmp", "/d/a"]);
    expect(changesOf('7 renameat2(AT_FDCWD</x>, "a", 4</y>, "b", RENAME_NOREPLACE) = 0').map((c) => c.path)).toEqual(["/x/a", "/y/b"]);
    expect(changesOf('7 bind(5<socket:[1]>, {sa_family=AF_UNIX, sun_path="/run/q.sock"}, 110) = 0').map((c) => c.path)).toEqual(["/run/q.sock"]);
    expect(changesOf('7 bind(5<socket:[1]>, {sa_family=AF_INET, sin_port=htons(3260), sin_addr=inet_addr("127.0.0.1")}, 16) = 0')).toEqual([]);
    expect(changesOf('7 utimensat(0</home/u/ready>, NULL, NULL, 0) = 0').map((c) => c.path)).toEqual(["/home/u/ready"]);
    expect(changesOf("7 +++ exited with 0 +++")).toEqual([]);
  });
});
