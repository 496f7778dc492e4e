// The extent allocator: first fit over the gaps between the extents in use. Pure: its state is
// the list of used extents, derived from the segment-unit table at open, so there is no allocator
// state on disk to keep consistent. Never returns an extent that overlaps one in use or leaves
// [startBytes, endBytes).
import { assert } from "../util/assert.ts";

export interface Extent {
  offsetBytes: number;
  lengthBytes: number;
}

/** The lowest offset in [startBytes, endBytes) where `lengthBytes` fits between `used` extents. */
export function findExtent(used: readonly Extent[], lengthBytes: number, bounds: { startBytes: number; endBytes: number; alignBytes: number }): number | null {
  assert(lengthBytes > 0 && lengthBytes % bounds.alignBytes === 0, "extent length must be whole alignment units");
  assert(bounds.startBytes % bounds.alignBytes === 0, "extent space must start aligned");
  const sorted = [...used].sort((a, b) => a.offsetBytes - b.offsetBytes);
  let cursor = bounds.startBytes;
  for (const e of sorted) {
    assert(e.offsetBytes >= bounds.startBytes && e.offsetBytes + e.lengthBytes <= bounds.endBytes, "used extent outside the extent space");
    if (e.offsetBytes - cursor >= lengthBytes) return cursor;
    cursor = Math.max(cursor, e.offsetBytes + e.lengthBytes);
  }
  return bounds.endBytes - cursor >= lengthBytes ? cursor : null;
}

/** The first pair of overlapping extents, if any: a unit table that claims the same bytes twice. */
export function findOverlap(used: readonly Extent[]): [Extent, Extent] | null {
  const sorted = [...used].sort((a, b) => a.offsetBytes - b.offsetBytes);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1] as Extent;
    const next = sorted[i] as Extent;
    if (prev.offsetBytes + prev.lengthBytes > next.offsetBytes) return [prev, next];
  }
  return null;
}
