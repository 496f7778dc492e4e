// CRC-32C (Castagnoli, polynomial 0x1EDC6F41 reflected 0x82F63B78): page checksums and iSCSI
// digests (RFC 7143 §13.1). The fast path runs the SSE4.2 crc32 instruction through bun:ffi's
// `cc` (TinyCC at start-up; the C source is written to a temporary file first so this also
// works inside a `bun build --compile` executable; TinyCC has no mnemonic for crc32, so the
// instruction bytes are emitted with .byte). Measured here (Bun 1.4.5, a call from TypeScript):
// 62 µs per MiB and 0.37 µs per 4 KiB page with three interleaved streams, against 181 and 0.71
// for one dependent chain and ≈4.4 µs per page for the TypeScript slicing-by-8 fallback, which
// stays as the test oracle.
// Never returns a wrong value: if the fast path fails its self-test, the fallback is used.
// The kernel is compiled on first use, in a scratch directory the program names
// (`setCrc32cScratchDir`: the daemon and init use <data-dir>/tmp), so that qstora writes nothing
// outside its own directories; the scratch files are removed right after.
import { cc } from "bun:ffi";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const POLY = 0x82f63b78;

const tables: Uint32Array[] = (() => {
  const t: Uint32Array[] = [];
  for (let k = 0; k < 8; k++) t.push(new Uint32Array(256));
  const t0 = t[0] as Uint32Array;
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let j = 0; j < 8; j++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    let c = t0[i] as number;
    for (let k = 1; k < 8; k++) {
      c = (t0[c & 0xff] as number) ^ (c >>> 8);
      (t[k] as Uint32Array)[i] = c >>> 0;
    }
  }
  return t;
})();

/** Plain TypeScript CRC-32C (slicing-by-8). `seed` continues a previous CRC. */
export function crc32cPortable(data: Uint8Array, seed = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = tables as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  let crc = ~seed >>> 0;
  let i = 0;
  const n = data.length;
  while (n - i >= 8) {
    const lo = (crc ^ ((data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24))) >>> 0;
    crc =
      (t7[lo & 0xff] as number) ^
      (t6[(lo >>> 8) & 0xff] as number) ^
      (t5[(lo >>> 16) & 0xff] as number) ^
      (t4[lo >>> 24] as number) ^
      (t3[data[i + 4] as number] as number) ^
      (t2[data[i + 5] as number] as number) ^
      (t1[data[i + 6] as number] as number) ^
      (t0[data[i + 7] as number] as number);
    i += 8;
  }
  while (i < n) crc = (t0[(crc ^ (data[i++] as number)) & 0xff] as number) ^ (crc >>> 8);
  return ~crc >>> 0;
}

// The C kernel. `crc32q reg, [rsi + disp32]` is F2 REX.W 0F 38 F1 /r (Intel SDM "CRC32") with
// ModRM mod=10, rm=110; emitted as bytes, since TinyCC has no mnemonic for it.
const crc32qRegisters = { rax: 0, rcx: 1, rdx: 2 } as const;
function crc32qAt(register: keyof typeof crc32qRegisters, disp: number): string {
  const modrm = 0x80 | (crc32qRegisters[register] << 3) | 6;
  const bytes = [0xf2, 0x48, 0x0f, 0x38, 0xf1, modrm, disp & 0xff, (disp >>> 8) & 0xff, (disp >>> 16) & 0xff, disp >>> 24];
  return `".byte ${bytes.map((b) => `0x${b.toString(16)}`).join(", ")}\\n"`;
}
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * Bytes of each of the three streams in one round of the interleaved loop (a multiple of 64, so
 * that a 4 KiB page is one round and 64 bytes). crc32 takes three cycles but issues one per
 * cycle: one dependent chain runs at a third of the instruction's rate, three chains at all of
 * it. The three CRCs are joined by shifting with tables (a CRC register is linear in its input:
 * the register after A‖B is the register after A moved over |B| zero bytes, xor B's own).
 */
export const crc32cStreamBytes = 1344;

const kernelSource = String.raw`
#include <stdint.h>
#include <stddef.h>
#define S ${crc32cStreamBytes}
static uint32_t shiftTable[4][256];
static int shiftReady;

/* The register after n zero bytes, bit by bit (only to build the table). */
static uint32_t zeroBytes(uint32_t r, size_t n) {
  for (size_t i = 0; i < n * 8; i++) r = (r & 1) ? (r >> 1) ^ 0x82f63b78u : r >> 1;
  return r;
}

static void buildShiftTable(void) {
  uint32_t basis[32];
  for (int b = 0; b < 32; b++) basis[b] = zeroBytes(1u << b, S);
  for (int k = 0; k < 4; k++)
    for (int i = 0; i < 256; i++) {
      uint32_t v = 0;
      for (int b = 0; b < 8; b++) if (i & (1 << b)) v ^= basis[8 * k + b];
      shiftTable[k][i] = v;
    }
  shiftReady = 1;
}

static uint32_t shift(uint32_t r) {
  return shiftTable[0][r & 0xff] ^ shiftTable[1][(r >> 8) & 0xff] ^ shiftTable[2][(r >> 16) & 0xff] ^ shiftTable[3][r >> 24];
}

uint32_t qs_crc32c(uint32_t crc, const uint8_t *p, uint32_t n32) {
  size_t n = n32;
  uint64_t c = (uint32_t)~crc;
  const uint8_t *q = p;
  if (n >= 3 * S && !shiftReady) buildShiftTable();
  while (n >= 3 * S) {
    uint64_t c1 = 0, c2 = 0;
    for (int i = 0; i < S / 64; i++) {
      __asm__ __volatile__(
${range(8)
  .map((k) => `        ${crc32qAt("rax", k * 8)} ${crc32qAt("rcx", crc32cStreamBytes + k * 8)} ${crc32qAt("rdx", 2 * crc32cStreamBytes + k * 8)}`)
  .join("\n")}
        : "+a"(c), "+c"(c1), "+d"(c2) : "S"(q) : "memory");
      q += 64;
    }
    c = shift(shift((uint32_t)c) ^ (uint32_t)c1) ^ (uint32_t)c2;
    q += 2 * S;
    n -= 3 * S;
  }
  while (n >= 64) {
    __asm__ __volatile__(
${range(8)
  .map((k) => `      ${crc32qAt("rax", k * 8)}`)
  .join("\n")}
      : "+a"(c) : "S"(q) : "memory");
    q += 64; n -= 64;
  }
  while (n >= 8) {
    __asm__ __volatile__(${crc32qAt("rax", 0)} : "+a"(c) : "S"(q) : "memory");
    q += 8; n -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (n > 0) {
    __asm__ __volatile__(".byte 0xf2, 0x0f, 0x38, 0xf0, 0x06" : "=a"(c32) : "a"(c32), "S"(q) : "memory");
    q++; n--;
  }
  return ~c32;
}
`;

function cpuHasSse42(): boolean {
  try {
    return /^flags\s*:.*\bsse4_2\b/m.test(readFileSync("/proc/cpuinfo", "utf8"));
  } catch {
    return false;
  }
}

type Crc = (data: Uint8Array, seed?: number) => number;

let scratchDir: string | undefined;
let nativeAllowed = true;

/**
 * Where the kernel's C source goes while it compiles (call before first use). Bun's cc puts its
 * headers under $TMPDIR/bun-cc, reading TMPDIR when the process starts: processes that compile
 * are started with TMPDIR pointing into their data directory (see core/node/lifecycle.ts).
 */
export function setCrc32cScratchDir(dir: string): void {
  scratchDir = dir;
}

/** For short-lived processes (the CLI): the portable code is fast enough and compiles nothing. */
export function disableNativeCrc32c(): void {
  nativeAllowed = false;
}

function loadNative(): Crc | null {
  if (!nativeAllowed || process.arch !== "x64" || !cpuHasSse42() || process.env["QSTORA_CRC32C"] === "portable") return null;
  const base = scratchDir ?? tmpdir();
  mkdirSync(base, { recursive: true, mode: 0o700 });
  const dir = mkdtempSync(join(base, "crc-"));
  try {
    const file = join(dir, "crc32c.c");
    writeFileSync(file, kernelSource);
    // The seed and the length go as i32, never u32: Bun 1.4.5's FFI passes a u32 argument of
    // 2^31 or more as 0, and at times smaller ones too, depending on how hot the call site is
    // (crc32c.test.ts). Half of all seeds (a frame header's CRC, a page's seed) have that bit.
    const lib = cc({ source: file, symbols: { qs_crc32c: { args: ["i32", "ptr", "i32"], returns: "i32" } } });
    const fn = lib.symbols.qs_crc32c as (seed: number, p: Uint8Array, n: number) => number;
    const native: Crc = (data, seed = 0) => (data.length === 0 ? seed >>> 0 : data.length > 0x7fffffff ? crc32cPortable(data, seed) : fn(seed | 0, data, data.length) >>> 0);
    // Self-test against the portable oracle before trusting it.
    const three = 3 * crc32cStreamBytes;
    const probe = new Uint8Array(2 * three + 100).map((_, i) => (i * 31 + 7) & 0xff);
    for (const len of [0, 1, 7, 8, 63, 64, 65, 1000, three - 1, three, three + 71, 2 * three + 100]) {
      for (const seed of [0, 0x1234, 0x80000001, 0xfedcba98]) {
        if (native(probe.subarray(0, len), seed) !== crc32cPortable(probe.subarray(0, len), seed)) return null;
      }
    }
    return native;
  } catch {
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let chosen: Crc | undefined;
function implementation(): Crc {
  chosen ??= loadNative() ?? crc32cPortable;
  return chosen;
}

/** CRC-32C of `data`, continuing from `seed` (0 for a fresh CRC). */
export function crc32c(data: Uint8Array, seed = 0): number {
  return (chosen ?? implementation())(data, seed);
}

export function crc32cImplementation(): "sse4.2" | "portable" {
  return implementation() === crc32cPortable ? "portable" : "sse4.2";
}
