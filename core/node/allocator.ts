// The memory allocator's settings for a daemon, which must be in the environment before the
// process starts: Bun's allocator (mimalloc) reads its options once, at process start, and
// exports no call to change them later. So a daemon started without them replaces itself
// (execve, same pid, same open files) with the same command and the settings added, before it
// opens anything; `qstora start` and `init` pass them to the daemon they spawn directly.
//
// Why: mimalloc gives freed memory back to the kernel 10 ms after it is freed (purge_delay). A
// replicated 1 MiB write allocates 1 MiB buffers on every node (the iSCSI command's Data-Out,
// the frames a secondary gathers), and the collector frees them in batches, so nearly every new
// buffer was memory the kernel had just taken back: each page faulted and was zeroed again on
// first touch. `perf record -a` during 1 MiB writes put ≈20% of node a's CPU in page faults and
// zeroing; keeping freed memory took a replica:3 LUN's 1 MiB writes from ≈15.5 to ≈11 ms of CPU
// per MiB across the three nodes, and from ≈105 to ≈140 IOPS (docs/PERFORMANCE.md). The price:
// memory freed and not reused within the delay goes back only after it (a higher peak RSS
// under large writes).
//
// A setting the operator put in the environment wins: MIMALLOC_PURGE_DELAY=10 restores the
// allocator's default.
import { dlopen, FFIType, ptr } from "bun:ffi";

/** The settings a daemon runs with (mimalloc option names, as environment variables). */
export const daemonAllocatorEnv: Readonly<Record<string, string>> = {
  /** Milliseconds before freed memory goes back to the kernel (mimalloc's default: 10). */
  MIMALLOC_PURGE_DELAY: "5000",
};

/** The environment `env` lacks for a daemon (empty when every setting is there). */
export function missingAllocatorEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(daemonAllocatorEnv)) if (env[k] === undefined) out[k] = v;
  return out;
}

function cString(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

/** A NULL-terminated array of C strings; `keep` holds the strings for as long as it is used. */
function cStringArray(items: readonly string[], keep: Buffer[]): BigUint64Array {
  const out = new BigUint64Array(items.length + 1);
  items.forEach((s, i) => {
    const b = cString(s);
    keep.push(b);
    out[i] = BigInt(ptr(b));
  });
  return out;
}

/**
 * Replaces this process with `command` under `env` plus the allocator's settings, if `env` lacks
 * any of them. Returns null if nothing was missing, or the warning to print when execve(2)
 * failed: the caller runs on with the allocator's defaults (slower at large writes, as correct).
 */
export function execWithAllocatorEnv(command: readonly string[], env: Record<string, string | undefined>): string | null {
  const missing = missingAllocatorEnv(env);
  if (Object.keys(missing).length === 0 || command.length === 0) return null;
  const full = { ...env, ...missing };
  const keep: Buffer[] = [];
  const path = cString(command[0] as string);
  const argv = cStringArray(command, keep);
  const envp = cStringArray(
    Object.entries(full).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`])),
    keep,
  );
  try {
    const libc = dlopen("libc.so.6", { execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 } });
    const rc = libc.symbols.execve(path, argv, envp); // returns only on failure
    return notRestarted(`execve returned ${rc}`);
  } catch (e) {
    return notRestarted(e instanceof Error ? e.message : String(e));
  }
}

function notRestarted(why: string): string {
  return `running with the allocator's default settings (could not restart with them: ${why})`;
}
