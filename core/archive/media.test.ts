// detectMedia() on real things: a regular file, a loop device whose rotational flag the test
// sets both ways (sysfs lets root write it), and this host's disks as sysfs describes them.
import { expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { detectMedia } from "./media.ts";
import { loopDeviceTarget, sparseFileTarget } from "./test-targets.ts";

test("detectMedia() says file for a regular file", () => {
  const t = sparseFileTarget(1 << 20);
  writeFileSync(t.path, "x");
  try {
    expect(detectMedia(t.path)).toBe("file");
  } finally {
    t.cleanup();
  }
});

test("detectMedia() reads a block device's rotational flag: hdd when 1, ssd when 0", () => {
  const t = loopDeviceTarget(8 << 20);
  try {
    const flag = `/sys/block/${t.path.slice("/dev/".length)}/queue/rotational`;
    const before = readFileSync(flag, "utf8").trim();
    try {
      writeFileSync(flag, "1");
      expect(detectMedia(t.path)).toBe("hdd");
      writeFileSync(flag, "0");
      expect(detectMedia(t.path)).toBe("ssd");
    } finally {
      writeFileSync(flag, before);
    }
  } finally {
    t.cleanup();
  }
});

test("detectMedia() agrees with sysfs for this host's disks", () => {
  const disks = readdirSync("/sys/block").filter((d) => existsSync(`/dev/${d}`) && !d.startsWith("loop") && !d.startsWith("zram"));
  for (const d of disks) {
    const rotational = readFileSync(`/sys/block/${d}/queue/rotational`, "utf8").trim() === "1";
    expect(`${d}: ${detectMedia(`/dev/${d}`)}`).toBe(`${d}: ${d.startsWith("nvme") ? "nvme" : rotational ? "hdd" : "ssd"}`);
  }
});
