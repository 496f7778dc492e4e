// Compares the copies of replicated segments where they are stored: opens the archives of
// stopped nodes (core/archive, the daemon's own reader: it recovers what the daemon would on
// start) and reads every data unit of one LUN whole. Unlike the other helpers this imports the
// daemon's code, to read its on-disk format; it must only ever run on archives no daemon has
// open.
import { Archive } from "../../core/archive/archive.ts";

export interface CopiesReport {
  /** Segments with two or more data copies found. */
  segments: number;
  /** Copies per segment, by segment index. */
  copies: Map<number, number>;
  /** "segment N: unit X differs from unit Y at page P" for every segment whose copies differ. */
  differences: string[];
}

/** Reads every unit of `volumeId` on `archivePaths` and compares the copies of each segment. */
export function compareCopies(archivePaths: string[], volumeId: string): CopiesReport {
  const bySegment = new Map<number, Array<{ name: string; data: Uint8Array }>>();
  for (const path of archivePaths) {
    const archive = Archive.open(path);
    try {
      for (const info of archive.listUnits().filter((u) => u.volumeId === volumeId)) {
        const unit = archive.openUnit(info.unitId);
        if (unit === undefined) throw new Error(`${path}: unit ${info.unitId} listed but not opened`);
        const r = unit.read(0, info.sizeBytes);
        if (!r.ok) throw new Error(`${path}: unit ${info.unitId} unreadable: ${r.message}`);
        const list = bySegment.get(info.segmentIndex) ?? [];
        list.push({ name: `${path}#${info.unitId}`, data: r.value });
        bySegment.set(info.segmentIndex, list);
      }
    } finally {
      archive.close();
    }
  }
  const differences: string[] = [];
  const copies = new Map<number, number>();
  for (const [index, list] of bySegment) {
    copies.set(index, list.length);
    const [first, ...rest] = list;
    if (first === undefined) continue;
    for (const other of rest) {
      const page = firstDifferentPage(first.data, other.data);
      if (page !== null) differences.push(`segment ${index}: ${other.name} differs from ${first.name} from page ${page}`);
    }
  }
  return { segments: [...copies.values()].filter((n) => n >= 2).length, copies, differences };
}

function firstDifferentPage(x: Uint8Array, y: Uint8Array): number | null {
  if (x.length !== y.length) return 0;
  const pageBytes = 4096;
  for (let at = 0; at < x.length; at += pageBytes) {
    if (Buffer.compare(x.subarray(at, at + pageBytes), y.subarray(at, at + pageBytes)) !== 0) return at / pageBytes;
  }
  return null;
}
