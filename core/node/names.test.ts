import { expect, test } from "bun:test";
import { checkIscsiName, checkLunNumber } from "./names.ts";

test("checkIscsiName() accepts iqn, eui and naa names and lower-cases them", () => {
  expect(checkIscsiName("iqn.2026-11.org.qstora:Disk1")).toBe("iqn.2026-11.org.qstora:disk1");
  expect(checkIscsiName("eui.0123456789abcdef")).toBe("eui.0123456789abcdef");
  expect(checkIscsiName("naa.60014050123456789abcdef012345678")).toBe("naa.60014050123456789abcdef012345678");
});

test("checkIscsiName() rejects malformed names", () => {
  for (const bad of ["", "iqn", "iqn.2026-13.org.x", "iqn.26-11.org.x", "foo.2026-11.org.x", "iqn.2026-11.-bad", "iqn.2026-11.org.x:has space", `iqn.2026-11.org.x:${"a".repeat(220)}`]) {
    expect(() => checkIscsiName(bad)).toThrow();
  }
});

test("checkLunNumber() takes 0..16383 only", () => {
  expect(checkLunNumber("0")).toBe(0);
  expect(() => checkLunNumber("-1")).toThrow();
  expect(() => checkLunNumber("16384")).toThrow();
  expect(() => checkLunNumber("x")).toThrow();
});
