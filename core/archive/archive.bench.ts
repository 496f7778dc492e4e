// Benchmark: 4 KiB random writes and reads through a SegmentUnit (checksums, page metadata)
// against raw fs.writeSync/readSync at the same offsets of the same file, inline and synchronous
// (page cache), and the page checksum kernels. Prints figures and ratios; asserts nothing.
// Run: bun core/archive/archive.bench.ts [ops]
import { closeSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Archive } from "./archive.ts";
import { crc32c, crc32cImplementation, crc32cPortable } from "../util/crc32c.ts";

const ops = Number(process.argv[2] ?? 200_000);
const MiB = 1 << 20;
const unitBytes = 256 * MiB;
const pages = unitBytes / 4096;
const clusterId = "11111111-2222-4333-8444-555555555555";
const volumeId = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

function offsets(seed: number): Float64Array {
  const out = new Float64Array(ops);
  let x = seed >>> 0;
  for (let i = 0; i < ops; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = (x % pages) * 4096;
  }
  return out;
}

function rate(label: string, ns: number): number {
  const iops = ops / (ns / 1e9);
  console.log(`${label.padEnd(34)} ${(iops / 1000).toFixed(0).padStart(6)} k IOPS  ${((ns / ops) / 1000).toFixed(2).padStart(6)} µs/op`);
  return iops;
}

function checksumBench(): void {
  const page = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
  const n = 200_000;
  const run = (label: string, f: (p: Uint8Array) => number, count: number) => {
    let acc = 0;
    const t0 = Bun.nanoseconds();
    for (let i = 0; i < count; i++) acc ^= f(page);
    const us = (Bun.nanoseconds() - t0) / 1000 / count;
    console.log(`${label.padEnd(34)} ${us.toFixed(3)} µs/page  ${(4096 / us / 1000).toFixed(1)} GB/s  (${acc & 1})`);
  };
  run(`crc32c (${crc32cImplementation()})`, (p) => crc32c(p), n);
  run("crc32c portable (slicing-by-8)", (p) => crc32cPortable(p), n / 10);
  run("Bun.hash.crc32", (p) => Bun.hash.crc32(p), n);
}

const path = join(tmpdir(), `qstora-bench-${process.pid}.img`);
try {
  checksumBench();
  const archive = Archive.create({ path, sizeBytes: 512 * MiB, clusterId });
  const created = archive.createUnit({ volumeId, segmentIndex: 0, sizeBytes: unitBytes });
  if (!created.ok) throw new Error(created.message);
  const unit = created.value;
  const page = new Uint8Array(4096).fill(0x5a);
  const fill = new Uint8Array(MiB).fill(0x33);
  for (let off = 0; off < unitBytes; off += MiB) unit.write(off, fill); // every page written: reads verify
  const into = new Uint8Array(4096);
  const w = offsets(1);
  const r = offsets(2);
  // Warm-up, then measure.
  for (let i = 0; i < 10_000; i++) unit.write(w[i] as number, page);
  let t0 = Bun.nanoseconds();
  for (let i = 0; i < ops; i++) {
    page[0] = i & 0xff;
    const res = unit.write(w[i] as number, page);
    if (!res.ok) throw new Error(res.message);
  }
  const unitWrite = rate("SegmentUnit 4 KiB random write", Bun.nanoseconds() - t0);
  t0 = Bun.nanoseconds();
  for (let i = 0; i < ops; i++) {
    const res = unit.read(r[i] as number, 4096, into);
    if (!res.ok) throw new Error(res.message);
  }
  const unitRead = rate("SegmentUnit 4 KiB random read", Bun.nanoseconds() - t0);
  const dataStart = unit.info.extentOffset + unitBytes / 4096 * 32;
  archive.close();
  const fd = openSync(path, "r+");
  t0 = Bun.nanoseconds();
  for (let i = 0; i < ops; i++) {
    page[0] = i & 0xff;
    writeSync(fd, page, 0, 4096, dataStart + (w[i] as number));
  }
  const rawWrite = rate("raw fs.writeSync 4 KiB random", Bun.nanoseconds() - t0);
  t0 = Bun.nanoseconds();
  for (let i = 0; i < ops; i++) readSync(fd, into, 0, 4096, dataStart + (r[i] as number));
  const rawRead = rate("raw fs.readSync 4 KiB random", Bun.nanoseconds() - t0);
  closeSync(fd);
  console.log(`ratio SegmentUnit/raw: write ${(unitWrite / rawWrite).toFixed(2)}, read ${(unitRead / rawRead).toFixed(2)}`);
} finally {
  rmSync(path, { force: true });
}
