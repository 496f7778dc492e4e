import { expect, test } from "bun:test";
import { judgeHealth, type ArchiveFact } from "./health.ts";

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
