// Bad input from an operator: each case gets a clear one- or two-line error with the exit status
// of the error table, no stack trace, and leaves the node exactly as it was.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { openSync, writeSync, closeSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestNode, run, qstoraBin, type RunResult } from "./helpers/node.ts";

const iqn = "iqn.2026-11.org.qstora:errors";
// Exit statuses from core/util/errors.ts (asserted by number on purpose: they are an interface).
const exit = { USAGE: 2, NOT_FOUND: 3, ALREADY_EXISTS: 4, IN_USE: 5, DAEMON_UNAVAILABLE: 6, ALREADY_INITIALIZED: 8, NO_SPACE: 9, ARCHIVE_INVALID: 12 } as const;

function expectCleanError(r: RunResult, code: number, mentions: RegExp): void {
  const text = r.stdout + r.stderr;
  expect(r.code).toBe(code);
  expect(text).toMatch(mentions);
  expect(text).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)/); // no stack trace
  expect(text.trim().split("\n").length).toBeLessThanOrEqual(4);
}

describe("bad input is refused cleanly and changes nothing", () => {
  const node = new TestNode("qstora-errors-");
  let before = "";
  const state = () => JSON.stringify({ t: node.qJson<unknown[]>("target", "list"), l: node.qJson<Array<{ uuid: string; sizeBytes: number }>>("lun", "list").map((l) => [l.uuid, l.sizeBytes]) });

  beforeAll(() => {
    node.initWithLun("64M", iqn);
    before = state();
  });
  afterAll(() => node.cleanup());

  test("LUN sizes 0, negative, unparsable or over the archive's space", () => {
    expectCleanError(node.q("lun", "create", "--target", iqn, "--size", "0"), exit.USAGE, /more than 0/);
    expectCleanError(node.q("lun", "create", "--target", iqn, "--size=-5G"), exit.USAGE, /negative/);
    expectCleanError(node.q("lun", "create", "--target", iqn, "--size", "lots"), exit.USAGE, /not a size/);
    expectCleanError(node.q("lun", "create", "--target", iqn, "--size", "500T"), exit.NO_SPACE, /free/);
    expect(state()).toBe(before);
  });

  test("a malformed or duplicate IQN", () => {
    expectCleanError(node.q("target", "create", "not-an-iqn"), exit.USAGE, /not a valid iSCSI/);
    expectCleanError(node.q("target", "create", iqn), exit.ALREADY_EXISTS, /exists already/);
    expect(state()).toBe(before);
  });

  test("a LUN on a missing target, and a duplicate LUN number", () => {
    expectCleanError(node.q("lun", "create", "--target", "iqn.2026-11.org.qstora:nope", "--size", "1M"), exit.NOT_FOUND, /no target/);
    expectCleanError(node.q("lun", "create", "--target", iqn, "--size", "1M", "--lun", "0"), exit.ALREADY_EXISTS, /already has LUN 0/);
    expect(state()).toBe(before);
  });

  test("an archive path that is not writable", () => {
    expectCleanError(node.q("archive", "add", "/proc/qstora-test.img:1G"), 12, /\/proc\/qstora-test.img/);
    expect(node.qJson<unknown[]>("archive", "list").length).toBe(1);
  });

  test("an archive that already belongs to another cluster", () => {
    const other = new TestNode("qstora-errors-other-");
    try {
      const archive = join(node.dir, "a1.img");
      const r = other.init([archive]);
      expectCleanError(r, exit.ARCHIVE_INVALID, /another cluster|belongs/);
      expect(other.q("status").code).not.toBe(0);
    } finally {
      other.cleanup();
    }
    expect(state()).toBe(before);
  });

  test("a file with a corrupted superblock", () => {
    const bad = join(node.dir, "corrupt.img");
    const donor = new TestNode("qstora-errors-donor-");
    try {
      // A real archive of another cluster whose superblock we then damage.
      expect(donor.init([`${bad}:64M`]).code).toBe(0);
      donor.ok("stop");
    } finally {
      // Keep the file: cleanup removes only the donor's own directory.
      donor.cleanup();
    }
    const fd = openSync(bad, "r+");
    writeSync(fd, Buffer.from("garbage!garbage!"), 0, 16, 24);
    closeSync(fd);
    expectCleanError(node.q("archive", "add", bad), exit.ARCHIVE_INVALID, /superblock|corrupt|damaged/i);
    expect(node.qJson<unknown[]>("archive", "list").length).toBe(1);
  });

  test("a failed init leaves no superblock on an existing file it had formatted", () => {
    const other = new TestNode("qstora-errors-rollback-");
    try {
      const plain = join(other.dir, "plain.img");
      writeFileSync(plain, new Uint8Array(64 << 20));
      expectCleanError(other.init([plain, "/proc/qstora-nope.img:1G"]), 12, /\/proc\/qstora-nope.img/);
      expect(readFileSync(plain).subarray(0, 8192).every((b) => b === 0)).toBe(true);
      expect(other.init([plain]).code).toBe(0); // usable by the next init
    } finally {
      other.cleanup();
    }
  });

  test("a second init on an initialised data directory", () => {
    expectCleanError(node.init([join(node.dir, "a2.img:1G")]), exit.ALREADY_INITIALIZED, /already holds a qstora node/);
    expect(state()).toBe(before);
  });

  test("deleting a target with LUNs needs --force; removing an archive with data is refused", () => {
    expectCleanError(node.q("target", "delete", iqn), exit.IN_USE, /--force/);
    const archives = node.qJson<Array<{ id: string; unitCount: number }>>("archive", "list");
    // Write one block so the archive holds a segment unit.
    const w = run(["qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 4k", node.url(iqn)]);
    expect(w.code).toBe(0);
    expectCleanError(node.q("archive", "remove", archives[0]!.id), exit.IN_USE, /segment unit/);
    expect(state()).toBe(before);
  });

  test("commands without a daemon say so", () => {
    const lonely = new TestNode("qstora-errors-lonely-");
    try {
      expectCleanError(lonely.q("status"), 7, /no qstora node/);
    } finally {
      lonely.cleanup();
    }
    writeFileSync(join(node.dir, "x"), "");
    expectCleanError(run([qstoraBin, "frobnicate"]), exit.USAGE, /Unknown command/);
  });
});
