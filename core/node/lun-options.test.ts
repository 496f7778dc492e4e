import { describe, expect, test } from "bun:test";
import { QstoraError } from "../util/errors.ts";
import { checkLayoutSizes, chooseRedundancy, layoutDefaults, segmentBytesMax } from "./lun-options.ts";

const KiB = 1024;
const MiB = 1 << 20;

function refusal(fn: () => unknown): QstoraError {
  try {
    fn();
  } catch (e) {
    if (e instanceof QstoraError) return e;
    throw e;
  }
  throw new Error("not refused");
}

describe("checkLayoutSizes()", () => {
  test("defaults to a 1 GiB segment and a 1 MiB stripe", () => {
    expect(checkLayoutSizes({})).toEqual({ stripeBytes: MiB, segmentBytes: 1 << 30 });
    expect(layoutDefaults).toEqual({ stripeBytes: MiB, segmentBytes: 1 << 30 });
  });
  test("accepts 4 KiB multiples where the stripe divides the segment", () => {
    expect(checkLayoutSizes({ stripeBytes: 64 * KiB, segmentBytes: 8 * MiB })).toEqual({ stripeBytes: 64 * KiB, segmentBytes: 8 * MiB });
    expect(checkLayoutSizes({ stripeBytes: 4 * KiB, segmentBytes: 4 * KiB })).toEqual({ stripeBytes: 4 * KiB, segmentBytes: 4 * KiB });
  });
  test("refuses a stripe that is not a positive multiple of 4 KiB, with a hint", () => {
    for (const stripeBytes of [0, -4096, 512, 6 * KiB, 4096.5]) {
      const e = refusal(() => checkLayoutSizes({ stripeBytes, segmentBytes: 8 * MiB }));
      expect(e.code).toBe("INVALID_ARGUMENT");
      expect(e.message).toContain("stripe size");
      expect(e.hint).toContain("4 KiB");
    }
  });
  test("refuses a segment that is not a 4 KiB multiple, holds no whole number of stripes, or is too large", () => {
    expect(refusal(() => checkLayoutSizes({ stripeBytes: 4 * KiB, segmentBytes: 10 * KiB + 512 })).message).toContain("not a positive multiple of 4 KiB");
    expect(refusal(() => checkLayoutSizes({ stripeBytes: MiB, segmentBytes: 512 * KiB })).message).toBe("segment size 512 KiB is not a whole number of 1 MiB stripes");
    expect(refusal(() => checkLayoutSizes({ stripeBytes: 3 * MiB, segmentBytes: 8 * MiB })).message).toBe("segment size 8 MiB is not a whole number of 3 MiB stripes");
    expect(refusal(() => checkLayoutSizes({ segmentBytes: segmentBytesMax * 2 })).message).toContain("more than the 64 GiB");
  });
});

describe("chooseRedundancy()", () => {
  test("the default is replica:3 from three fault domains, and says so", () => {
    for (const d of [3, 4, 7]) {
      const c = chooseRedundancy(undefined, d, "default");
      expect(c.redundancy).toBe("replica:3");
      expect(c.reason).toContain(`default: replica:3 on ${d} fault domain(s) in pool default`);
    }
  });
  test("two fault domains: replica:2, saying what losing the arbiter's domain means", () => {
    const c = chooseRedundancy(undefined, 2, "default");
    expect(c.redundancy).toBe("replica:2");
    expect(c.reason).toContain("only 2 fault domains");
    expect(c.reason).toContain("arbiter");
  });
  test("one fault domain (a single node with one archive) or none usable: one copy, no redundancy", () => {
    for (const d of [0, 1]) {
      const c = chooseRedundancy(undefined, d, "default");
      expect(c.redundancy).toBe("none");
      expect(c.reason).toContain("no redundancy");
    }
  });
  test("an explicit policy is checked against the fault domains of the pool", () => {
    expect(chooseRedundancy("replica:3", 3, "fast").redundancy).toBe("replica:3");
    expect(chooseRedundancy("replica:2", 2, "fast").redundancy).toBe("replica:2");
    expect(chooseRedundancy("none", 5, "default")).toEqual({ redundancy: "none", reason: "asked for: one copy on this node's archives, no redundancy" });
    const e = refusal(() => chooseRedundancy("replica:3-ha", 2, "fast"));
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(e.message).toBe("replica:3-ha needs 3 fault domains (node groups, or archives on a one-node cluster); the cluster has 2 that can take a unit (pool fast)");
    expect(e.hint).toContain("leave --redundancy out");
  });
  test("an unknown policy is refused, naming the ones there are", () => {
    const e = refusal(() => chooseRedundancy("replica:7", 3, "default"));
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(e.message).toBe("redundancy must be none, replica:2, replica:3, replica:3-ha (got replica:7)");
  });
});
