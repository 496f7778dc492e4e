// Runs the archive conformance suite on every backend, plus the checks that only make sense for
// one backend (files: sizes, paths, permissions).
import { describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Archive } from "./archive.ts";
import { archiveConformance, clusterId, volumeId } from "./archive.conformance.ts";
import { loopDeviceTarget, pattern, sparseFileTarget, tempPath, unwrap } from "./test-targets.ts";
import { QstoraError } from "../util/errors.ts";

archiveConformance("sparse file", sparseFileTarget);
archiveConformance("loop block device", loopDeviceTarget);

const MiB = 1 << 20;

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof QstoraError) return e.code;
    throw e;
  }
  return "no error";
}

describe("archive files", () => {
  test("create makes a sparse file of the size asked for, and pages take space only when written", () => {
    const path = tempPath("sparse.img");
    const a = Archive.create({ path, sizeBytes: 1024 * MiB, clusterId });
    const st = statSync(path);
    expect(st.size).toBe(1024 * MiB);
    expect(st.blocks * 512).toBeLessThan(4 * MiB);
    const u = unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: 512 * MiB }));
    unwrap(u.write(100 * MiB, pattern(MiB, 1)));
    unwrap(a.flush());
    expect(statSync(path).blocks * 512).toBeLessThan(6 * MiB);
    expect(a.info()).toMatchObject({ kind: "file", writtenBytes: MiB, unitCount: 1 });
    expect(a.info().reservedBytes).toBeGreaterThanOrEqual(512 * MiB);
    a.removeUnit(0);
    expect(statSync(path).blocks * 512).toBeLessThan(2 * MiB);
    a.close();
  });

  test("an existing file is used with its own size", () => {
    const path = tempPath("existing.img");
    writeFileSync(path, new Uint8Array(0));
    Bun.spawnSync(["truncate", "-s", `${40 * MiB + 12345}`, path]);
    const a = Archive.create({ path, clusterId });
    expect(a.info().sizeBytes).toBe(40 * MiB);
    a.close();
  });

  test("bad inputs are refused with a clear code and leave nothing behind", () => {
    const dir = tempPath("dir");
    mkdirSync(dir);
    expect(codeOf(() => Archive.create({ path: `${dir}/a.img`, sizeBytes: 64 * MiB, clusterId: "not-a-uuid" }))).toBe("INVALID_ARGUMENT");
    expect(codeOf(() => Archive.create({ path: `${dir}/a.img`, sizeBytes: 8 * MiB, clusterId }))).toBe("INVALID_ARGUMENT");
    expect(codeOf(() => Archive.create({ path: `${dir}/a.img`, sizeBytes: -1, clusterId }))).toBe("INVALID_ARGUMENT");
    expect(codeOf(() => Archive.create({ path: `${dir}/a.img`, clusterId }))).toBe("INVALID_ARGUMENT");
    expect(() => statSync(`${dir}/a.img`)).toThrow();
    expect(codeOf(() => Archive.create({ path: dir, sizeBytes: 64 * MiB, clusterId }))).toBe("ARCHIVE_INVALID");
    expect(codeOf(() => Archive.create({ path: `${dir}/no/such/dir/a.img`, sizeBytes: 64 * MiB, clusterId }))).toBe("ARCHIVE_INVALID");
    expect(codeOf(() => Archive.open(`${dir}/missing.img`, { clusterId }))).toBe("ARCHIVE_INVALID");
    // An ordinary file that is not an archive.
    writeFileSync(`${dir}/plain.img`, pattern(32 * MiB, 1));
    expect(codeOf(() => Archive.open(`${dir}/plain.img`, { clusterId }))).toBe("ARCHIVE_INVALID");
    expect(Archive.probe(`${dir}/plain.img`)).toBeNull();
    // A file larger than the size asked for.
    expect(codeOf(() => Archive.create({ path: `${dir}/plain.img`, sizeBytes: 16 * MiB, clusterId }))).toBe("INVALID_ARGUMENT");
  });

  test("a truncated archive file is refused", () => {
    const path = tempPath("truncated.img");
    Archive.create({ path, sizeBytes: 64 * MiB, clusterId }).close();
    Bun.spawnSync(["truncate", "-s", `${48 * MiB}`, path]);
    expect(codeOf(() => Archive.open(path, { clusterId }))).toBe("ARCHIVE_INVALID");
  });

  test("an unwritable path is refused", () => {
    // Root ignores file modes, so run the check as an unprivileged user when we are root.
    const parent = mkdtempSync(join(tmpdir(), "qstora-ro-"));
    chmodSync(parent, 0o755);
    const dir = join(parent, "ro");
    mkdirSync(dir);
    chmodSync(dir, 0o555);
    const script = `import { Archive } from ${JSON.stringify(`${import.meta.dir}/archive.ts`)};
try { Archive.create({ path: ${JSON.stringify(`${dir}/a.img`)}, sizeBytes: ${64 * MiB}, clusterId: ${JSON.stringify(clusterId)} }); console.log("created"); }
catch (e) { console.log(e.code); }`;
    const scriptPath = join(parent, "unwritable.ts");
    writeFileSync(scriptPath, script);
    chmodSync(scriptPath, 0o644);
    const asUser = process.getuid?.() === 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
    const r = Bun.spawnSync([...asUser, process.execPath, scriptPath], { env: { ...process.env, HOME: "/tmp" } });
    rmSync(parent, { recursive: true, force: true });
    expect(`${r.stdout.toString().trim()} ${r.stderr.toString()}`.trim()).toBe("ARCHIVE_INVALID");
  });
});

describe("Archive.wipe", () => {
  test("wipe clears every superblock copy, so the path can be formatted for another cluster", () => {
    const path = tempPath("wipe.img");
    Archive.create({ path, sizeBytes: 64 * MiB, clusterId }).close();
    expect(codeOf(() => Archive.wipe(path, { clusterId: "99999999-2222-4333-8444-555555555555" }))).toBe("ARCHIVE_INVALID");
    expect(Archive.probe(path)?.clusterId).toBe(clusterId);
    Archive.wipe(path, { clusterId });
    expect(Archive.probe(path)).toBeNull();
    Archive.create({ path, clusterId: "99999999-2222-4333-8444-555555555555" }).close();
  });
});
