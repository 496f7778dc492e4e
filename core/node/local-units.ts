// The node's archives as a UnitProvider for volumes: finds the segment unit of (volume, segment)
// in an index built from the archives' own unit tables, creates units on first write on the
// archive with the most free space, and flushes the archives that took writes.
//
// Ordering contract: flush() fdatasyncs every archive written since its last flush before it
// returns, so a completed SYNCHRONIZE CACHE covers every write acknowledged before it.
import type { IoResult } from "../volume/block-device.ts";
import type { SegmentStore, UnitProvider } from "../volume/volume.ts";
import { Archive, type SegmentUnit } from "../archive/archive.ts";
import { assert } from "../util/assert.ts";

interface IndexedUnit {
  archive: Archive;
  unit: SegmentUnit;
  store: SegmentStore;
}

const OK_VOID: IoResult<void> = { ok: true, value: undefined };

export class LocalUnits implements UnitProvider {
  private readonly archives = new Map<string, Archive>();
  private readonly index = new Map<string, Map<number, IndexedUnit>>();
  private readonly dirty = new Set<Archive>();

  addArchive(archive: Archive): void {
    assert(!this.archives.has(archive.id), "archive added twice");
    this.archives.set(archive.id, archive);
    for (const info of archive.listUnits()) {
      const unit = archive.openUnit(info.unitId);
      assert(unit !== undefined, "unit listed but not openable");
      this.remember(archive, info.volumeId, info.segmentIndex, unit);
    }
  }

  /** Closes and forgets an archive that holds no units. */
  removeArchive(id: string): void {
    const archive = this.archives.get(id);
    if (archive === undefined) return;
    assert(archive.listUnits().length === 0, "removing an archive that holds units");
    this.dirty.delete(archive);
    archive.close();
    this.archives.delete(id);
  }

  archive(id: string): Archive | undefined {
    return this.archives.get(id);
  }

  list(): Archive[] {
    return [...this.archives.values()];
  }

  private remember(archive: Archive, volumeId: string, segment: number, unit: SegmentUnit): IndexedUnit {
    const dirty = this.dirty;
    const entry: IndexedUnit = {
      archive,
      unit,
      store: {
        read: (offsetBytes, lengthBytes, into) => unit.read(offsetBytes, lengthBytes, into),
        write: (offsetBytes, data) => {
          dirty.add(archive);
          return unit.write(offsetBytes, data);
        },
        unmap: (offsetBytes, lengthBytes) => {
          dirty.add(archive);
          return unit.unmap(offsetBytes, lengthBytes);
        },
      },
    };
    let segments = this.index.get(volumeId);
    if (segments === undefined) {
      segments = new Map();
      this.index.set(volumeId, segments);
    }
    segments.set(segment, entry);
    return entry;
  }

  find(volumeId: string, segment: number): SegmentStore | undefined {
    return this.index.get(volumeId)?.get(segment)?.store;
  }

  /** `only`: the archives allowed (a LUN's pool); absent, every archive. */
  allocate(volumeId: string, segment: number, sizeBytes: number, only?: (archive: Archive) => boolean): IoResult<SegmentStore> {
    assert(this.find(volumeId, segment) === undefined, "segment allocated twice");
    const candidates = [...this.archives.values()].filter((a) => only === undefined || only(a)).sort((a, b) => b.info().freeBytes - a.info().freeBytes);
    let lastFailure: IoResult<SegmentStore> = { ok: false, code: "NO_SPACE", message: only === undefined ? "no archive is online" : "no archive of the LUN's pool is online" };
    for (const archive of candidates) {
      const created = archive.createUnit({ volumeId, segmentIndex: segment, sizeBytes });
      if (created.ok) return { ok: true, value: this.remember(archive, volumeId, segment, created.value).store };
      lastFailure = created;
    }
    return lastFailure;
  }

  flush(_volumeId: string): IoResult<void> {
    // Flushing every dirty archive is simple and, with few archives per node, as cheap as
    // tracking which volume dirtied which archive.
    for (const archive of [...this.dirty]) {
      this.dirty.delete(archive);
      const r = archive.flush();
      if (!r.ok) {
        this.dirty.add(archive);
        return r;
      }
    }
    return OK_VOID;
  }

  /** Units of a volume, e.g. to delete them with the LUN. */
  unitsOf(volumeId: string): Array<{ archive: Archive; unit: SegmentUnit }> {
    return [...(this.index.get(volumeId)?.values() ?? [])].map(({ archive, unit }) => ({ archive, unit }));
  }

  dropVolume(volumeId: string): void {
    for (const { archive, unit } of this.unitsOf(volumeId)) archive.removeUnit(unit.info.unitId);
    this.index.delete(volumeId);
  }

  /** Bytes written by a volume (pages that hold data), for status. */
  writtenBytesOf(volumeId: string): number {
    let total = 0;
    for (const { unit } of this.unitsOf(volumeId)) total += unit.info.writtenBytes ?? 0;
    return total;
  }

  flushAll(): IoResult<void> {
    for (const a of this.archives.values()) this.dirty.add(a);
    return this.flush("");
  }

  closeAll(): void {
    for (const a of this.archives.values()) a.close();
    this.archives.clear();
    this.index.clear();
    this.dirty.clear();
  }
}
