import { describe, expect, test } from "bun:test";
import { capacityOf, createLayout, growLayout, mapExtent, segmentCount } from "./layout.ts";

const MiB = 1 << 20;

describe("layout", () => {
  test("mapExtent() puts a 5 MiB write at offset 0 on five segments", () => {
    const layout = createLayout({ sizeBytes: 64 * MiB, stripeBytes: MiB, segmentBytes: 8 * MiB });
    const pieces = mapExtent(layout, 0, 5 * MiB);
    expect(pieces.map((p) => p.segment)).toEqual([0, 1, 2, 3, 4]);
    expect(pieces.every((p) => p.segmentOffsetBytes === 0 && p.lengthBytes === MiB)).toBe(true);
  });
  test("mapExtent() merges runs that stay in one segment", () => {
    const layout = createLayout({ sizeBytes: 4 * MiB, stripeBytes: MiB, segmentBytes: 8 * MiB });
    expect(segmentCount(layout)).toBe(1);
    expect(mapExtent(layout, 512, 3 * MiB)).toEqual([{ segment: 0, segmentOffsetBytes: 512, lengthBytes: 3 * MiB, bufferOffsetBytes: 0 }]);
  });
  test("mapExtent() maps every byte exactly once and no two bytes to one place", () => {
    const layout = growLayout(createLayout({ sizeBytes: 10 * MiB + 4096, stripeBytes: 64 * 1024, segmentBytes: MiB }), 23 * MiB);
    const seen = new Set<string>();
    const unit = 4096;
    for (let off = 0; off < capacityOf(layout); off += unit) {
      const [p, ...rest] = mapExtent(layout, off, unit);
      expect(rest.length).toBe(0);
      const key = `${p!.segment}:${p!.segmentOffsetBytes}`;
      expect(seen.has(key)).toBe(false);
      seen.add(key);
    }
  });
  test("growLayout() leaves existing bytes where they were", () => {
    const a = createLayout({ sizeBytes: 6 * MiB, stripeBytes: MiB, segmentBytes: 2 * MiB });
    const b = growLayout(a, 20 * MiB);
    for (let off = 0; off < 6 * MiB; off += 512 * 1024) expect(mapExtent(b, off, 4096)).toEqual(mapExtent(a, off, 4096));
    expect(capacityOf(b)).toBeGreaterThanOrEqual(20 * MiB);
  });
  test("mapExtent() splits a range crossing a group boundary", () => {
    const b = growLayout(createLayout({ sizeBytes: 2 * MiB, stripeBytes: MiB, segmentBytes: 2 * MiB }), 4 * MiB);
    const pieces = mapExtent(b, 2 * MiB - 4096, 8192);
    expect(pieces.length).toBe(2);
    expect(pieces[1]!.bufferOffsetBytes).toBe(4096);
  });
});
