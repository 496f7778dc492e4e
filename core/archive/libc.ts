// The few libc calls node:fs lacks, through bun:ffi: fallocate(2) to punch holes (thin
// provisioning, UNMAP, freed units). Loaded on first use; a failure is returned, never thrown.
import { dlopen, FFIType } from "bun:ffi";

const FALLOC_FL_KEEP_SIZE = 0x01; // linux/falloc.h
const FALLOC_FL_PUNCH_HOLE = 0x02; // linux/falloc.h

let libc: { symbols: { fallocate: (fd: number, mode: number, offset: number, len: number) => number } } | null | undefined;

function load(): typeof libc {
  if (libc !== undefined) return libc;
  try {
    libc = dlopen("libc.so.6", { fallocate: { args: [FFIType.i32, FFIType.i32, FFIType.i64, FFIType.i64], returns: FFIType.i32 } });
  } catch {
    libc = null;
  }
  return libc;
}

/** Deallocates [offset, offset+length) so it reads as zeros; false if the file system can't. */
export function punchHole(fd: number, offsetBytes: number, lengthBytes: number): boolean {
  if (lengthBytes <= 0) return true;
  const lib = load();
  if (lib === null || lib === undefined) return false;
  return lib.symbols.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offsetBytes, lengthBytes) === 0;
}
