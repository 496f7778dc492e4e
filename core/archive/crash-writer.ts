// The child of the crash test (archive-crash.test.ts): opens an archive, then writes, unmaps and
// flushes random ranges of unit 0 forever, logging each operation's intent to a log file before
// doing it, until the parent SIGKILLs it. Test code only; never imported by the daemon.
// Usage: bun crash-writer.ts ARCHIVE LOG SEED OP_BASE PAGES
import { openSync, writeSync } from "node:fs";
import { Archive } from "./archive.ts";
import { pattern, seededRandom } from "./test-targets.ts";

const [archivePath, logPath, seedText, opBaseText, pagesText] = process.argv.slice(2);
if (archivePath === undefined || logPath === undefined || seedText === undefined || opBaseText === undefined || pagesText === undefined) {
  console.error("usage: crash-writer.ts ARCHIVE LOG SEED OP_BASE PAGES");
  process.exit(2);
}
const rnd = seededRandom(Number(seedText));
const spanBytes = Number(pagesText) * 4096;
const log = openSync(logPath, "a");
const archive = Archive.open(archivePath, {});
const unit = archive.openUnit(0);
if (unit === undefined) throw new Error("unit 0 missing");
writeSync(log, `open ${archive.openReport.resolvedPages}\n`);

for (let op = Number(opBaseText); ; op++) {
  const r = rnd();
  const sectors = spanBytes / 512;
  let off: number;
  let len: number;
  if (r < 0.55) {
    off = Math.floor(rnd() * (spanBytes / 4096)) * 4096; // one whole page
    len = 4096;
  } else if (r < 0.75) {
    off = Math.floor(rnd() * sectors) * 512; // one sector: read-modify-write
    len = 512;
  } else if (r < 0.82) {
    off = Math.floor(rnd() * sectors) * 512; // several pages, any sector alignment
    len = Math.min(spanBytes - off, (1 + Math.floor(rnd() * 64)) * 512);
  } else {
    // Larger than one data pwrite (64 KiB, segment-unit.ts): a kill between its pieces.
    off = Math.floor(rnd() * sectors) * 512;
    len = Math.min(spanBytes - off, (129 + Math.floor(rnd() * 512)) * 512);
  }
  const kind = r < 0.9 ? "w" : r < 0.95 ? "u" : "f";
  writeSync(log, `${kind} ${off} ${len} ${op}\n`);
  const result = kind === "w" ? unit.write(off, pattern(len, op)) : kind === "u" ? unit.unmap(off, len) : archive.flush();
  if (!result.ok) {
    writeSync(log, `error ${result.code} ${result.message}\n`);
    process.exit(3);
  }
}
