// The data directory lock: one daemon per data directory. flock(2) on <data-dir>/qstora.lock,
// taken through bun:ffi, so the kernel drops it when the process dies, even by SIGKILL: a stale
// lock after a crash needs no cleanup. The pid file beside it is informational (for `stop` and
// `status`); it is never trusted for mutual exclusion.
import { dlopen, FFIType } from "bun:ffi";
import { closeSync, openSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";

const LOCK_EX = 2; // flock(2): exclusive lock
const LOCK_NB = 4; // flock(2): fail with EWOULDBLOCK instead of waiting

let libc: { symbols: { flock: (fd: number, op: number) => number } } | undefined;
function flock(fd: number, op: number): number {
  libc ??= dlopen("libc.so.6", { flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 } });
  return libc.symbols.flock(fd, op);
}

export interface DataDirLock {
  release(): void;
}

/** Takes the lock or returns null when another live process holds it. */
export function tryLockDataDir(lockPath: string, pidPath: string): DataDirLock | null {
  const fd = openSync(lockPath, "a", 0o600);
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    closeSync(fd);
    return null;
  }
  writeFileSync(pidPath, `${process.pid}\n`, { mode: 0o644 });
  return {
    release() {
      try {
        unlinkSync(pidPath);
      } catch {
        // Already gone: nothing to clean.
      }
      closeSync(fd); // closing the last descriptor releases the flock
    },
  };
}

/** True while some process holds the lock (probing takes and drops it when free). */
export function isDataDirLocked(lockPath: string): boolean {
  let fd: number;
  try {
    fd = openSync(lockPath, "r");
  } catch {
    return false;
  }
  try {
    return flock(fd, LOCK_EX | LOCK_NB) !== 0;
  } finally {
    closeSync(fd);
  }
}

export function readPid(pidPath: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(pidPath, "utf8").trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}
