import { describe, expect, test } from "bun:test";
import { checkKey, checkPrefix } from "./store.ts";
import { metaKeys } from "./schema.ts";

describe("metaKeys", () => {
  test("builds leaves under their directories, which end in '/'", () => {
    expect(metaKeys.node("n1")).toBe("/qstora/v1/nodes/n1");
    expect(metaKeys.target("iqn.2026-01.org.qstora:disk-1")).toBe("/qstora/v1/targets/iqn.2026-01.org.qstora:disk-1");
    expect(metaKeys.segment("0b1e", 7)).toBe("/qstora/v1/segments/0b1e/7");
    expect(metaKeys.lunSegments("0b1e")).toBe("/qstora/v1/segments/0b1e/");
    for (const dir of [metaKeys.nodes, metaKeys.archives, metaKeys.luns, metaKeys.targets, metaKeys.pools, metaKeys.segments, metaKeys.alive, metaKeys.settings]) {
      expect(() => checkPrefix(dir)).not.toThrow();
    }
    for (const key of [metaKeys.cluster, metaKeys.node("a"), metaKeys.lun("u"), metaKeys.reservation("u"), metaKeys.segment("u", 0)]) expect(() => checkKey(key)).not.toThrow();
  });

  test("refuses names that would break the layout with INVALID_ARGUMENT", () => {
    for (const bad of ["", "a/b", "..", ".hidden", "a b", "x\n", "é", "a".repeat(224)]) {
      expect(() => metaKeys.node(bad)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    }
    expect(() => metaKeys.segment("u", -1)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => metaKeys.segment("u", 1.5)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });

  test("no leaf name is also a directory name at the same level", () => {
    const dirs = Object.values(metaKeys as Record<string, unknown>).filter((v): v is string => typeof v === "string" && v.endsWith("/") && v !== metaKeys.root);
    const leaves = [metaKeys.cluster];
    for (const l of leaves) expect(dirs).not.toContain(`${l}/`);
    expect(new Set(dirs.map((d) => d.split("/")[3])).size).toBe(dirs.length);
  });
});
