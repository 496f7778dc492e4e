import { describe, expect, test } from "bun:test";
import { judgeHealth, segmentChecks, type ArchiveFact, type SegmentFact } from "./health.ts";

const GiB = 2 ** 30;
const archive = (id: string, freeBytes: number, state: ArchiveFact["state"] = "online"): ArchiveFact => ({ id, path: `/a/${id}`, state, sizeBytes: 100 * GiB, freeBytes });

test("judgeHealth() is HEALTH_OK with healthy archives and metadata", () => {
  expect(judgeHealth({ archives: [archive("a", 50 * GiB)], ioErrors: 0, metadataReachable: true })).toEqual({ status: "HEALTH_OK", checks: [] });
});

test("judgeHealth() warns of nearly full archives and errs on full or missing ones", () => {
  const r = judgeHealth({ archives: [archive("a", 10 * GiB), archive("b", 1 * GiB), archive("c", 0, "missing")], ioErrors: 0, metadataReachable: true });
  expect(r.status).toBe("HEALTH_ERR");
  expect(r.checks.map((c) => c.code).sort()).toEqual(["ARCHIVE_FULL", "ARCHIVE_NEARFULL", "ARCHIVE_UNAVAILABLE"]);
  expect(r.checks.find((c) => c.code === "ARCHIVE_NEARFULL")?.detail[0]).toContain("archive a");
});

test("judgeHealth() errs when the metadata store is unreachable, warns on I/O errors", () => {
  expect(judgeHealth({ archives: [archive("a", 50 * GiB)], ioErrors: 3, metadataReachable: true }).status).toBe("HEALTH_WARN");
  expect(judgeHealth({ archives: [archive("a", 50 * GiB)], ioErrors: 0, metadataReachable: false }).checks[0]?.code).toBe("METADATA_UNREACHABLE");
});

test("judgeHealth() names suspect, down and draining nodes, and an archive in error", () => {
  const r = judgeHealth({
    archives: [archive("a", 50 * GiB), { ...archive("b", 0, "error"), node: "n2", error: "EIO" }],
    ioErrors: 0,
    metadataReachable: true,
    nodes: [{ name: "n1", state: "up" }, { name: "n2", state: "suspect", heartbeatAgeMs: 4200 }, { name: "n3", state: "down", heartbeatAgeMs: null, draining: true }],
  });
  expect(r.checks.map((c) => c.code)).toEqual(["ARCHIVE_ERROR", "NODE_DOWN", "NODE_SUSPECT", "NODE_DRAINING"]);
  expect(r.checks[0]?.detail[0]).toBe("archive b at /a/b on n2: EIO");
  expect(r.checks[2]?.detail[0]).toBe("node n2: last heartbeat 4.2 s ago");
  expect(r.checks[1]?.detail[0]).toContain("no heartbeat");
});

test("judgeHealth() errs without a metadata quorum, and takes its archive thresholds", () => {
  expect(judgeHealth({ archives: [archive("a", 50 * GiB)], ioErrors: 0, metadataReachable: true, metadataMembers: { total: 3, answering: 2, unreachable: ["x"] } }).status).toBe("HEALTH_OK");
  const r = judgeHealth({ archives: [archive("a", 50 * GiB)], ioErrors: 0, metadataReachable: true, metadataMembers: { total: 3, answering: 1, unreachable: ["x", "y"] } });
  expect(r.checks[0]?.code).toBe("METADATA_NO_QUORUM");
  expect(r.checks[0]?.detail).toEqual(["metadata member x does not answer", "metadata member y does not answer"]);
  const tight = judgeHealth({ archives: [archive("a", 50 * GiB)], ioErrors: 0, metadataReachable: true, limits: { archiveNearFullRatio: 0.4, archiveFullRatio: 0.6 } });
  expect(tight.checks.map((c) => c.code)).toEqual(["ARCHIVE_NEARFULL"]);
});

describe("replicated segments", () => {
  const base = { archives: [], ioErrors: 0, metadataReachable: true };
  const serving: SegmentFact = { segment: "L/0", lun: "iqn.x:0", state: "serving", primary: "L/0/u0", inactive: [], reason: null };
  test("segments that serve with every copy active raise nothing", () => {
    expect(segmentChecks([serving, { ...serving, segment: "L/1", state: "recorded" }])).toEqual([]);
  });
  test("SEGMENT_UNAVAILABLE (HEALTH_ERR) names each segment and the manager's reason", () => {
    const r = judgeHealth({
      ...base,
      archives: [{ id: "a", path: "/a", state: "online", sizeBytes: 100, freeBytes: 90 }],
      segments: [serving, { segment: "L/3", lun: "iqn.x:0", state: "unavailable", primary: "L/3/u0", inactive: ["L/3/u1"], reason: { code: "NO_COMPLETE_COPY", message: "segment L/3: only the primary L/3/u0 holds every acknowledged write and it does not answer; bring its node back", waitingFor: ["L/3/u0"] }, unitNodes: { "L/3/u0": "node-b" } }],
    });
    expect(r.status).toBe("HEALTH_ERR");
    expect(r.checks).toEqual([
      {
        code: "SEGMENT_UNAVAILABLE",
        severity: "HEALTH_ERR",
        summary: "1 replicated segment(s) unavailable: their I/O waits for a unit that holds every acknowledged write, or for their LUN's coordinator node",
        detail: ["segment L/3 of LUN iqn.x:0: only the primary L/3/u0 holds every acknowledged write and it does not answer; bring its node back (waiting for u0 on node-b)"],
      },
    ]);
  });
  test("SEGMENT_DEGRADED (HEALTH_WARN) names inactive units and failovers in progress", () => {
    const checks = segmentChecks([{ ...serving, segment: "L/1", inactive: ["L/1/u2"] }, { segment: "L/2", state: "failing-over", primary: null, inactive: [], reason: null }]);
    expect(checks.map((c) => [c.code, c.severity])).toEqual([["SEGMENT_DEGRADED", "HEALTH_WARN"]]);
    expect(checks[0]?.detail).toEqual(["segment L/1 of LUN iqn.x:0: u2 inactive (missed writes; catching up, or waiting for their node)", "segment L/2: failing over (a new primary is being chosen)"]);
  });
});
