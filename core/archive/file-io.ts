// Synchronous positional I/O on a kept-open descriptor, and the size of a block device. The data
// path calls these inline (design: "the data path on Bun"); they throw the node:fs error on
// failure, and callers turn it into a returned IoFailure. Never retries a failed call.
import { readFileSync, readSync, writeSync, type Stats } from "node:fs";

/** Reads buf.length bytes at `position`; bytes past the end of a file read as zeros. */
export function preadFull(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  if (done < buf.length) buf.fill(0, done);
}

/** Writes all of buf at `position` (a short write is continued, not treated as success). */
export function pwriteFull(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, position + done);
}

/** Bytes of a block device, from /sys/dev/block/MAJ:MIN/size (512-byte sectors, whatever its block size). */
export function blockDeviceBytes(st: Stats): number {
  // Linux dev_t encoding (include/linux/kdev_t.h new_decode_dev): minor in bits 0-7 and 20-31.
  const major = (st.rdev >>> 8) & 0xfff;
  const minor = (st.rdev & 0xff) | ((st.rdev >>> 12) & 0xfff00);
  const sectors = Number(readFileSync(`/sys/dev/block/${major}:${minor}/size`, "utf8").trim());
  return sectors * 512;
}

export function errnoText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
