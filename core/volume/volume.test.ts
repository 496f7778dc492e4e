// Volume.mappingAt(): segments never written read as deallocated, written ones as mapped, and a
// run stops where that changes (GET LBA STATUS builds its descriptors from it).
import { describe, expect, test } from "bun:test";
import type { IoResult } from "./block-device.ts";
import { createLayout } from "./layout.ts";
import { Volume, type SegmentStore, type UnitProvider } from "./volume.ts";

function memoryUnits(): UnitProvider {
  const units = new Map<string, Uint8Array>();
  const store = (bytes: Uint8Array): SegmentStore => ({
    read: (offset, length, into): IoResult<Uint8Array> => {
      into.set(bytes.subarray(offset, offset + length));
      return { ok: true, value: into };
    },
    write: (offset, data) => {
      bytes.set(data, offset);
      return { ok: true, value: undefined };
    },
    unmap: (offset, length) => {
      bytes.fill(0, offset, offset + length);
      return { ok: true, value: undefined };
    },
  });
  return {
    find: (volumeId, segment) => {
      const b = units.get(`${volumeId}/${segment}`);
      return b === undefined ? undefined : store(b);
    },
    allocate: (volumeId, segment, sizeBytes) => {
      const b = new Uint8Array(sizeBytes);
      units.set(`${volumeId}/${segment}`, b);
      return { ok: true, value: store(b) };
    },
    flush: () => ({ ok: true, value: undefined }),
  };
}

describe("Volume.mappingAt()", () => {
  test("reports unwritten segments deallocated and written ones mapped, one run at a time", async () => {
    const sizeBytes = 8 << 20;
    const layout = createLayout({ sizeBytes, stripeBytes: 1 << 20, segmentBytes: 2 << 20 });
    const v = new Volume({ uuid: "u", name: "v", sizeBytes, blockBytes: 512, layout, writeCache: true }, memoryUnits());
    const first = v.mappingAt(0, sizeBytes);
    expect(first.ok && first.value).toEqual({ mapped: false, lengthBytes: sizeBytes });
    expect((await v.write(0, new Uint8Array(512).fill(1), { fua: false })).ok).toBe(true);
    const after = v.mappingAt(0, sizeBytes);
    expect(after.ok && after.value.mapped).toBe(true);
    expect(after.ok && after.value.lengthBytes).toBeGreaterThan(0);
    expect(after.ok && after.value.lengthBytes).toBeLessThan(sizeBytes);
    const rest = after.ok ? v.mappingAt(after.value.lengthBytes, sizeBytes - after.value.lengthBytes) : null;
    expect(rest?.ok && rest.value.mapped).toBe(false);
  });
});

test("setWriteCache() takes effect at once and hands the change to be saved", async () => {
  const saved: boolean[] = [];
  const v = new Volume(
    { uuid: "00000000-0000-4000-8000-000000000001", name: "v", sizeBytes: 1 << 20, blockBytes: 512, layout: createLayout({ sizeBytes: 1 << 20, stripeBytes: 65536, segmentBytes: 1 << 20 }), writeCache: true },
    memoryUnits(),
    async (enabled) => {
      saved.push(enabled);
      return { ok: true, value: undefined };
    },
  );
  const r = await v.setWriteCache(false);
  expect(r.ok).toBe(true);
  expect(v.info().writeCache).toBe(false);
  expect(saved).toEqual([false]);
});
