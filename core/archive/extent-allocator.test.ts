import { expect, test } from "bun:test";
import { findExtent, findOverlap } from "./extent-allocator.ts";

const M = 1 << 20;
const bounds = { startBytes: 2 * M, endBytes: 20 * M, alignBytes: M };

test("findExtent() takes the first gap that fits, then the space after the last extent", () => {
  expect(findExtent([], 4 * M, bounds)).toBe(2 * M);
  const used = [
    { offsetBytes: 2 * M, lengthBytes: 2 * M },
    { offsetBytes: 6 * M, lengthBytes: 2 * M },
  ];
  expect(findExtent(used, 2 * M, bounds)).toBe(4 * M);
  expect(findExtent(used, 3 * M, bounds)).toBe(8 * M);
});

test("findExtent() returns null when no gap fits, and never crosses the end", () => {
  expect(findExtent([{ offsetBytes: 2 * M, lengthBytes: 17 * M }], 2 * M, bounds)).toBeNull();
  expect(findExtent([], 19 * M, bounds)).toBeNull();
  expect(findExtent([], 18 * M, bounds)).toBe(2 * M);
});

test("findOverlap() finds extents that claim the same bytes", () => {
  expect(findOverlap([{ offsetBytes: 0, lengthBytes: M }, { offsetBytes: M, lengthBytes: M }])).toBeNull();
  expect(findOverlap([{ offsetBytes: M, lengthBytes: 2 * M }, { offsetBytes: 0, lengthBytes: 2 * M }])).not.toBeNull();
});
