import { expect, test } from "bun:test";
import { applyLabels, checkGroupName, checkPoolName, judgeRemoval, parseLabelArgs, summarisePool, type PoolArchiveFact, type RemovalFacts } from "./membership.ts";
import { mediaOf } from "../archive/media.ts";

test("checkGroupName() and checkPoolName() refuse empty, long and odd names", () => {
  expect(checkGroupName("rack-1.a_b")).toBe("rack-1.a_b");
  for (const bad of ["", "-x", "a/b", "a b", "x".repeat(64), "ü"]) {
    expect(() => checkGroupName(bad)).toThrow(/group name/);
    expect(() => checkPoolName(bad)).toThrow(/pool name/);
  }
});

test("parseLabelArgs() takes k=v and k-, and refuses the rest", () => {
  expect(parseLabelArgs(["rack=r1", "zone-", "empty="])).toEqual([{ key: "rack", value: "r1" }, { key: "zone", remove: true }, { key: "empty", value: "" }]);
  expect(() => parseLabelArgs([])).toThrow(/at least one/);
  expect(() => parseLabelArgs(["rack"])).toThrow(/neither/);
  expect(() => parseLabelArgs(["ra/ck=1"])).toThrow(/label key/);
  expect(() => parseLabelArgs(["rack=a b"])).toThrow(/label value/);
  expect(() => parseLabelArgs(["rack=1", "rack-"])).toThrow(/twice/);
});

test("applyLabels() sets, replaces and removes", () => {
  expect(applyLabels({ rack: "r1", zone: "z" }, parseLabelArgs(["rack=r2", "zone-", "ssd=yes"]))).toEqual({ rack: "r2", ssd: "yes" });
});

test("mediaOf() tells files, nvme, ssd and hdd apart, hdd when unsure", () => {
  expect(mediaOf({ regularFile: true })).toBe("file");
  expect(mediaOf({ regularFile: false, diskName: "nvme0n1", rotational: false })).toBe("nvme");
  expect(mediaOf({ regularFile: false, diskName: "sda", rotational: false })).toBe("ssd");
  expect(mediaOf({ regularFile: false, diskName: "sdb", rotational: true })).toBe("hdd");
  expect(mediaOf({ regularFile: false })).toBe("hdd");
});

test("summarisePool() counts the archives of its media, and every archive for an empty list", () => {
  const a = (id: string, nodeId: string, media: PoolArchiveFact["media"], written: number | null): PoolArchiveFact => ({ id, nodeId, media, sizeBytes: 100, writtenBytes: written, freeBytes: written === null ? null : 100 - written });
  const archives = [a("1", "n1", "ssd", 10), a("2", "n2", "nvme", 20), a("3", "n2", "hdd", null)];
  expect(summarisePool({ name: "fast", media: ["ssd", "nvme"] }, archives)).toEqual({ name: "fast", media: ["ssd", "nvme"], capacityBytes: 200, writtenBytes: 30, freeBytes: 170, archives: 2, nodes: 2 });
  expect(summarisePool({ name: "default", media: [] }, archives).archives).toBe(3);
});

const facts = (f: Partial<RemovalFacts>): RemovalFacts => ({ name: "n2", state: "down", luns: [], archiveCount: 1, isSelf: false, ...f });

test("judgeRemoval() allows a down node without LUNs", () => {
  expect(judgeRemoval(facts({}), false).ok).toBe(true);
});

test("judgeRemoval() refuses an up node or one with LUNs unless forced, and says what force loses", () => {
  const up = judgeRemoval(facts({ state: "up" }), false);
  expect(up.ok ? "" : up.error.message).toContain("is up");
  expect(up.ok ? "" : (up.error.hint ?? "")).toContain("--force");
  const luns = judgeRemoval(facts({ luns: ["iqn.x:1"] }), false);
  expect(luns.ok ? "" : luns.error.message).toContain("only copy of LUN(s) iqn.x:1");
  const forced = judgeRemoval(facts({ state: "suspect", luns: ["iqn.x:1"] }), true);
  expect(forced.ok && forced.loses.join("\n")).toMatch(/suspect[\s\S]*data is lost/);
});

test("judgeRemoval() never removes the node answering, even forced", () => {
  expect(judgeRemoval(facts({ isSelf: true }), true).ok).toBe(false);
});
