// How a LUN's address space maps onto segments (pure; no I/O).
//
// A LUN is a list of stripe groups. A group covers a contiguous range of the LUN and stripes it
// over `width` segments, `stripeBytes` at a time: stripe k of the group goes to segment
// firstSegment + (k mod width), at offset floor(k / width) * stripeBytes inside it. So a 5 MiB
// write at offset 0 with 1 MiB stripes lands on five segments (ZettaStor's rule) and large
// sequential I/O uses every segment. Growing a LUN appends a group and never moves data that is
// already placed; the mapping of existing bytes depends only on their own group.
import { assert } from "../util/assert.ts";

export interface StripeGroup {
  /** First LUN byte of the group. */
  readonly startBytes: number;
  /** Bytes the group can hold: width * segmentUnitBytes. */
  readonly capacityBytes: number;
  readonly width: number;
  readonly firstSegment: number;
  /** Size of each of the group's segments (a multiple of stripeBytes, at most the LUN's segmentBytes). */
  readonly segmentUnitBytes: number;
}

export interface VolumeLayout {
  readonly stripeBytes: number;
  readonly segmentBytes: number;
  readonly groups: readonly StripeGroup[];
}

export interface Piece {
  readonly segment: number;
  readonly segmentOffsetBytes: number;
  readonly lengthBytes: number;
  /** Offset of this piece inside the caller's buffer. */
  readonly bufferOffsetBytes: number;
}

export const pageBytes = 4096;

export function capacityOf(layout: VolumeLayout): number {
  const last = layout.groups[layout.groups.length - 1];
  return last === undefined ? 0 : last.startBytes + last.capacityBytes;
}

export function segmentCount(layout: VolumeLayout): number {
  const last = layout.groups[layout.groups.length - 1];
  return last === undefined ? 0 : last.firstSegment + last.width;
}

function newGroup(startBytes: number, lengthBytes: number, firstSegment: number, stripeBytes: number, segmentBytes: number): StripeGroup {
  assert(lengthBytes > 0);
  const width = Math.max(1, Math.ceil(lengthBytes / segmentBytes));
  const segmentUnitBytes = Math.ceil(lengthBytes / width / stripeBytes) * stripeBytes;
  assert(segmentUnitBytes <= segmentBytes, "segment unit larger than the segment size");
  return { startBytes, capacityBytes: width * segmentUnitBytes, width, firstSegment, segmentUnitBytes };
}

export function createLayout(options: { sizeBytes: number; stripeBytes: number; segmentBytes: number }): VolumeLayout {
  const { sizeBytes, stripeBytes, segmentBytes } = options;
  assert(sizeBytes > 0);
  assert(stripeBytes > 0 && stripeBytes % pageBytes === 0, "stripe must be a multiple of the page");
  assert(segmentBytes >= stripeBytes && segmentBytes % stripeBytes === 0, "segment must be a multiple of the stripe");
  return { stripeBytes, segmentBytes, groups: [newGroup(0, sizeBytes, 0, stripeBytes, segmentBytes)] };
}

/** The layout for a LUN grown to `sizeBytes`: existing groups unchanged, one group appended if needed. */
export function growLayout(layout: VolumeLayout, sizeBytes: number): VolumeLayout {
  const capacity = capacityOf(layout);
  if (sizeBytes <= capacity) return layout;
  const group = newGroup(capacity, sizeBytes - capacity, segmentCount(layout), layout.stripeBytes, layout.segmentBytes);
  return { ...layout, groups: [...layout.groups, group] };
}

function groupIndexAt(layout: VolumeLayout, offsetBytes: number): number {
  // Groups are few (one per resize), so a linear scan from the end is cheap and simple.
  for (let i = layout.groups.length - 1; i >= 0; i--) {
    if ((layout.groups[i] as StripeGroup).startBytes <= offsetBytes) return i;
  }
  return -1;
}

/**
 * Splits [offsetBytes, offsetBytes + lengthBytes) into pieces, one per contiguous run inside one
 * segment, in LUN order. The range must lie inside the layout's capacity.
 */
export function mapExtent(layout: VolumeLayout, offsetBytes: number, lengthBytes: number): Piece[] {
  assert(offsetBytes >= 0 && lengthBytes >= 0);
  assert(offsetBytes + lengthBytes <= capacityOf(layout), "extent beyond the layout");
  const pieces: Piece[] = [];
  const stripe = layout.stripeBytes;
  let pos = offsetBytes;
  const end = offsetBytes + lengthBytes;
  let gi = groupIndexAt(layout, pos);
  while (pos < end) {
    const group = layout.groups[gi] as StripeGroup;
    const groupEnd = group.startBytes + group.capacityBytes;
    if (pos >= groupEnd) {
      gi++;
      continue;
    }
    const inGroup = pos - group.startBytes;
    const stripeIndex = Math.floor(inGroup / stripe);
    const inStripe = inGroup - stripeIndex * stripe;
    const length = Math.min(stripe - inStripe, end - pos, groupEnd - pos);
    const segment = group.firstSegment + (stripeIndex % group.width);
    const segmentOffsetBytes = Math.floor(stripeIndex / group.width) * stripe + inStripe;
    const prev = pieces[pieces.length - 1];
    if (prev !== undefined && prev.segment === segment && prev.segmentOffsetBytes + prev.lengthBytes === segmentOffsetBytes) {
      pieces[pieces.length - 1] = { ...prev, lengthBytes: prev.lengthBytes + length };
    } else {
      pieces.push({ segment, segmentOffsetBytes, lengthBytes: length, bufferOffsetBytes: pos - offsetBytes });
    }
    pos += length;
  }
  return pieces;
}

/** The size of segment `segment`'s units. */
export function segmentUnitBytes(layout: VolumeLayout, segment: number): number {
  for (const g of layout.groups) {
    if (segment >= g.firstSegment && segment < g.firstSegment + g.width) return g.segmentUnitBytes;
  }
  assert(false, `segment ${segment} not in layout`);
}
