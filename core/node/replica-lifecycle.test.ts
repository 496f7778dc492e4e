import { describe, expect, test } from "bun:test";
import { archivesInPool, orphanVolumes, vanishedSegments } from "./replica-lifecycle.ts";

describe("archivesInPool()", () => {
  const archives = [
    { id: "a1", media: "ssd", kind: "file" },
    { id: "a2", media: "hdd", kind: "block" },
    { id: "a3", kind: "file" }, // recorded before media were: file
    { id: "a4", kind: "block" }, // likewise: hdd
  ] as const;
  test("the default pool (no media) holds every archive", () => {
    expect(archivesInPool(archives, { name: "default", media: [] }).map((a) => a.id)).toEqual(["a1", "a2", "a3", "a4"]);
  });
  test("a pool holds the archives of its media, old records by their kind", () => {
    expect(archivesInPool(archives, { name: "fast", media: ["ssd", "nvme"] }).map((a) => a.id)).toEqual(["a1"]);
    expect(archivesInPool(archives, { name: "slow", media: ["hdd"] }).map((a) => a.id)).toEqual(["a2", "a4"]);
    expect(archivesInPool(archives, { name: "files", media: ["file"] }).map((a) => a.id)).toEqual(["a3"]);
  });
});

describe("vanishedSegments()", () => {
  const known = [
    { segment: "L1/0", volumeId: "L1" },
    { segment: "L1/1", volumeId: "L1" },
    { segment: "L2/0", volumeId: "L2" },
  ];
  test("a segment no longer listed whose LUN record is gone is dropped", () => {
    expect(vanishedSegments(known, new Set(["L2/0"]), new Set(["L1"]))).toEqual(["L1/0", "L1/1"]);
  });
  test("never while the LUN record exists (a listing read before the segment was placed)", () => {
    expect(vanishedSegments(known, new Set(["L1/0"]), new Set())).toEqual([]);
  });
  test("never a segment still listed", () => {
    expect(vanishedSegments(known, new Set(["L1/0", "L1/1", "L2/0"]), new Set(["L1", "L2"]))).toEqual([]);
  });
});

describe("orphanVolumes()", () => {
  test("units of a tombstoned volume with neither a LUN record nor a placement are orphans; single-copy and replicated LUNs' units are not", () => {
    expect(orphanVolumes(["gone", "single", "repl", "gone"], new Set(["gone"]), new Set(["single", "repl"]), new Set(["repl"]))).toEqual(["gone"]);
    // Records missing (a store that lags, a crash before the tombstone): never without the tombstone.
    expect(orphanVolumes(["unknown"], new Set(), new Set(), new Set())).toEqual([]);
    // A replicated LUN whose LUN record went first, placements not yet: not an orphan.
    expect(orphanVolumes(["half"], new Set(["half"]), new Set(), new Set(["half"]))).toEqual([]);
  });
});
