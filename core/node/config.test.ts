import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { configKeys, defaultConfig, parseConfig, renderConfig } from "./config.ts";
import { QstoraError } from "../util/errors.ts";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof QstoraError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return undefined;
}

describe("config", () => {
  test("renderConfig() output parses back to the same config", () => {
    const c = defaultConfig({ name: "n1", address: "127.0.0.5" });
    expect(parseConfig(renderConfig(c))).toEqual(c);
  });
  test("parseConfig() names an unknown key", () => {
    expect(codeOf(() => parseConfig('[portal]\nlisten = "127.0.0.1:3260"\nlsten = 1\n'))).toContain('unknown key "portal.lsten"');
  });
  test("parseConfig() names a key with a bad value", () => {
    expect(codeOf(() => parseConfig('[portal]\nlisten = "nope"\n'))).toContain('"portal.listen" must be');
    expect(codeOf(() => parseConfig('[log]\nlevel = "loud"\n'))).toContain('"log.level" must be one of');
  });
  test("parseConfig() rejects text that is not TOML", () => {
    expect(codeOf(() => parseConfig("[[["))).toContain("CONFIG_INVALID");
  });
  test("portal.extra: absent in older files (none), a list of ADDRESS:PORT, anything else refused", () => {
    expect(parseConfig('[portal]\nlisten = "127.0.0.1:3260"\n').portal.extra).toEqual([]);
    expect(parseConfig('[portal]\nextra = ["127.0.0.2:3260", "[fd00::5]:3261"]\n').portal.extra).toEqual(["127.0.0.2:3260", "[fd00::5]:3261"]);
    expect(codeOf(() => parseConfig('[portal]\nextra = "127.0.0.2:3260"\n'))).toContain('"portal.extra" must be a list');
    expect(codeOf(() => parseConfig('[portal]\nextra = ["127.0.0.2"]\n'))).toContain('"portal.extra" must be a list');
    const many = Array.from({ length: 64 }, (_, i) => `"127.0.1.${i + 1}:3260"`).join(", ");
    expect(codeOf(() => parseConfig(`[portal]\nextra = [${many}]\n`))).toContain("at most 63");
  });
  test("parseConfig() derives listeners from node.address", () => {
    const c = parseConfig('[node]\nname = "a"\naddress = "127.0.0.9"\n');
    expect(c.portal.listen).toBe("127.0.0.9:3260");
    expect(c.api.listen).toBe("127.0.0.9:7325");
  });
  test("parseConfig() takes health limits and refuses them out of order", () => {
    expect(parseConfig("[health]\nsuspect_after_ms = 2000\ndown_after_ms = 5000\n").health.down_after_ms).toBe(5000);
    expect(codeOf(() => parseConfig("[health]\nsuspect_after_ms = 20000\n"))).toContain("suspect_after_ms < health.down_after_ms");
    expect(codeOf(() => parseConfig("[health]\ndown_after_ms = 5\n"))).toContain('"health.down_after_ms" must be');
    expect(codeOf(() => parseConfig("[health]\narchive_full_ratio = 0.5\n"))).toContain("nearfull_ratio must be below");
  });
  test("docs/CONFIG.md documents every key", () => {
    const doc = readFileSync(new URL("../../docs/CONFIG.md", import.meta.url), "utf8");
    for (const key of configKeys) expect(doc).toContain(`\`${key.path}\``);
  });
});
