// A LUN as a BlockDevice over segment units (single copy per segment for now; replication comes
// with core/replica). Maps each I/O onto segments with layout.ts and asks a UnitProvider for the
// unit that stores each segment, creating units on first write (thin provisioning).
//
// A segment store may answer at once (a local unit) or with a Promise (a replicated segment, whose
// coordinator waits for the network): the pieces of one request are then in flight together, and
// the request answers when the last one did, with the first failure if any.
//
// Ordering contract: a write returns only after every piece is in its unit (page cache at least);
// with FUA, or when the LUN's write cache is off, only after the units' archives are flushed.
// flush() returns only when every write acknowledged before it is durable.
// Never returns data that failed its checksum: such a read fails with MEDIUM_ERROR.
import type { BlockDevice, BlockDeviceInfo, IoResult, IoFailure, MaybePromise } from "./block-device.ts";
import { capacityOf, mapExtent, segmentUnitBytes, type VolumeLayout } from "./layout.ts";
import { assert } from "../util/assert.ts";

/** What a volume needs from the storage below: units by segment, created on demand. */
export interface SegmentStore {
  read(offsetBytes: number, lengthBytes: number, into: Uint8Array): MaybePromise<IoResult<Uint8Array>>;
  /** `data` is valid only during the call: a store that answers later copies it. */
  write(offsetBytes: number, data: Uint8Array): MaybePromise<IoResult<void>>;
  unmap(offsetBytes: number, lengthBytes: number): MaybePromise<IoResult<void>>;
}
export interface UnitProvider {
  /** The unit holding `segment` of `volumeId`, or undefined if it was never written. */
  find(volumeId: string, segment: number): SegmentStore | undefined;
  /** Creates the unit for a segment at its first write. */
  allocate(volumeId: string, segment: number, sizeBytes: number): IoResult<SegmentStore>;
  /** Makes every write so far durable on the units of `volumeId`. */
  flush(volumeId: string): MaybePromise<IoResult<void>>;
}

export interface VolumeSpec {
  readonly uuid: string;
  readonly name: string;
  readonly sizeBytes: number;
  readonly blockBytes: number;
  readonly layout: VolumeLayout;
  readonly writeCache: boolean;
  /** A replicated LUN (BlockDevice.movable). */
  readonly movable?: boolean;
}

export interface IoCounters {
  readOps: number;
  writeOps: number;
  readBytes: number;
  writeBytes: number;
  flushes: number;
  errors: number;
}

export function newIoCounters(): IoCounters {
  return { readOps: 0, writeOps: 0, readBytes: 0, writeBytes: 0, flushes: 0, errors: 0 };
}

const OK_VOID: IoResult<void> = { ok: true, value: undefined };

/**
 * The answer of a request whose pieces went to several segment stores: `done()` at once when every
 * store answered synchronously (`pending` null: the local path takes no promise), else when the
 * last answered, with the first failure if any.
 */
function settle<T>(pending: Array<Promise<IoFailure | null>> | null, done: () => MaybePromise<IoResult<T>>): MaybePromise<IoResult<T>> {
  if (pending === null) return done();
  return Promise.all(pending).then((fs) => fs.find((f) => f !== null) ?? done());
}

export class Volume implements BlockDevice {
  private spec: VolumeSpec;
  readonly counters: IoCounters = newIoCounters();

  constructor(
    spec: VolumeSpec,
    private readonly units: UnitProvider,
    /** Keeps a write-cache change (MODE SELECT) in the LUN's record; answers when it is stored. */
    private readonly saveWriteCache?: (enabled: boolean) => Promise<IoResult<void>>,
  ) {
    assert(capacityOf(spec.layout) >= spec.sizeBytes, "layout smaller than the volume");
    this.spec = spec;
    this.movable = spec.movable === true;
  }

  readonly movable: boolean;

  /** MODE SELECT's WCE: takes effect at once, and is kept per LUN across restarts. */
  setWriteCache(enabled: boolean): MaybePromise<IoResult<void>> {
    this.spec = { ...this.spec, writeCache: enabled };
    return this.saveWriteCache === undefined ? OK_VOID : this.saveWriteCache(enabled);
  }

  /** Swaps in a new spec (resize, write cache); the layout may only have grown. */
  update(spec: VolumeSpec): void {
    assert(spec.uuid === this.spec.uuid);
    assert(capacityOf(spec.layout) >= spec.sizeBytes);
    this.spec = spec;
  }

  info(): BlockDeviceInfo {
    return {
      uuid: this.spec.uuid,
      name: this.spec.name,
      sizeBytes: this.spec.sizeBytes,
      blockBytes: this.spec.blockBytes,
      physicalBlockBytes: 4096,
      writeCache: this.spec.writeCache,
      thin: true,
    };
  }

  private checkRange(offsetBytes: number, lengthBytes: number): void {
    assert(offsetBytes >= 0 && lengthBytes >= 0);
    assert(offsetBytes % this.spec.blockBytes === 0 && lengthBytes % this.spec.blockBytes === 0, "unaligned I/O");
    assert(offsetBytes + lengthBytes <= this.spec.sizeBytes, "I/O beyond the end of the volume");
  }

  private fail(f: IoFailure, pieceLunOffset: number): IoFailure {
    this.counters.errors++;
    return f.offsetBytes === undefined ? f : { ...f, offsetBytes: pieceLunOffset + f.offsetBytes };
  }

  read(offsetBytes: number, lengthBytes: number): MaybePromise<IoResult<Uint8Array>> {
    this.checkRange(offsetBytes, lengthBytes);
    const out = new Uint8Array(lengthBytes);
    let pending: Array<Promise<IoFailure | null>> | null = null;
    for (const p of mapExtent(this.spec.layout, offsetBytes, lengthBytes)) {
      const unit = this.units.find(this.spec.uuid, p.segment);
      if (unit === undefined) continue; // never written: zeros
      const r = unit.read(p.segmentOffsetBytes, p.lengthBytes, out.subarray(p.bufferOffsetBytes, p.bufferOffsetBytes + p.lengthBytes));
      if (r instanceof Promise) {
        const { segmentOffsetBytes, bufferOffsetBytes } = p;
        (pending ??= []).push(r.then((x) => (x.ok ? null : this.failRead(x, segmentOffsetBytes, offsetBytes + bufferOffsetBytes))));
      } else if (!r.ok) return this.failRead(r, p.segmentOffsetBytes, offsetBytes + p.bufferOffsetBytes);
    }
    const done = (): IoResult<Uint8Array> => {
      this.counters.readOps++;
      this.counters.readBytes += lengthBytes;
      return { ok: true, value: out };
    };
    return settle(pending, done);
  }

  /** A unit's read failure: it reports offsets inside the segment; convert to the LUN offset of the piece. */
  private failRead(f: IoFailure, segmentOffsetBytes: number, pieceLunOffset: number): IoFailure {
    return this.fail(f.offsetBytes === undefined ? f : { ...f, offsetBytes: f.offsetBytes - segmentOffsetBytes }, pieceLunOffset);
  }

  write(offsetBytes: number, data: Uint8Array, options: { fua: boolean }): MaybePromise<IoResult<void>> {
    this.checkRange(offsetBytes, data.length);
    let pending: Array<Promise<IoFailure | null>> | null = null;
    for (const p of mapExtent(this.spec.layout, offsetBytes, data.length)) {
      let unit = this.units.find(this.spec.uuid, p.segment);
      if (unit === undefined) {
        const created = this.units.allocate(this.spec.uuid, p.segment, segmentUnitBytes(this.spec.layout, p.segment));
        if (!created.ok) return this.fail(created, offsetBytes);
        unit = created.value;
      }
      const w = unit.write(p.segmentOffsetBytes, data.subarray(p.bufferOffsetBytes, p.bufferOffsetBytes + p.lengthBytes));
      if (w instanceof Promise) (pending ??= []).push(w.then((x) => (x.ok ? null : this.fail(x, offsetBytes))));
      else if (!w.ok) return this.fail(w, offsetBytes);
    }
    const done = (): MaybePromise<IoResult<void>> => {
      this.counters.writeOps++;
      this.counters.writeBytes += data.length;
      if (options.fua || !this.spec.writeCache) return this.flush();
      return OK_VOID;
    };
    return settle(pending, done);
  }

  flush(): MaybePromise<IoResult<void>> {
    this.counters.flushes++;
    const r = this.units.flush(this.spec.uuid);
    const counted = (x: IoResult<void>): IoResult<void> => {
      if (!x.ok) this.counters.errors++;
      return x;
    };
    return r instanceof Promise ? r.then(counted) : counted(r);
  }

  unmap(offsetBytes: number, lengthBytes: number): MaybePromise<IoResult<void>> {
    this.checkRange(offsetBytes, lengthBytes);
    let pending: Array<Promise<IoFailure | null>> | null = null;
    for (const p of mapExtent(this.spec.layout, offsetBytes, lengthBytes)) {
      const unit = this.units.find(this.spec.uuid, p.segment);
      if (unit === undefined) continue;
      const r = unit.unmap(p.segmentOffsetBytes, p.lengthBytes);
      if (r instanceof Promise) (pending ??= []).push(r.then((x) => (x.ok ? null : this.fail(x, offsetBytes))));
      else if (!r.ok) return this.fail(r, offsetBytes);
    }
    return settle(pending, () => OK_VOID);
  }

  /**
   * GET LBA STATUS: the run from `offsetBytes` that is all mapped or all deallocated. At segment
   * granularity: a segment never written has no unit and is deallocated; a segment with a unit
   * reads as mapped (holes punched inside a unit are not seen here yet: that needs the archive's
   * page map through SegmentStore).
   */
  mappingAt(offsetBytes: number, lengthBytes: number): IoResult<{ mapped: boolean; lengthBytes: number }> {
    this.checkRange(offsetBytes, lengthBytes);
    assert(lengthBytes > 0, "empty mapping query");
    let mapped: boolean | undefined;
    let runBytes = 0;
    for (const p of mapExtent(this.spec.layout, offsetBytes, lengthBytes)) {
      const here = this.units.find(this.spec.uuid, p.segment) !== undefined;
      if (mapped === undefined) mapped = here;
      else if (here !== mapped) break;
      runBytes += p.lengthBytes;
    }
    assert(mapped !== undefined && runBytes > 0);
    return { ok: true, value: { mapped, lengthBytes: runBytes } };
  }
}
