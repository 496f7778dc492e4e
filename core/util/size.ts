// Parsing and printing of byte sizes with binary suffixes (K, M, G, T, P = powers of 1024).
// Pure; never touches I/O.
import { QstoraError } from "./errors.ts";

const suffixShift: Record<string, number> = { "": 0, B: 0, K: 10, M: 20, G: 30, T: 40, P: 50 };

/** Parses "1G", "512M", "4096", "1.5G" (rounded down to a byte). Throws INVALID_ARGUMENT. */
export function parseSize(text: string, what = "size"): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([bBkKmMgGtTpP]?)(?:i?[bB])?\s*$/.exec(text);
  if (!m) {
    throw new QstoraError("INVALID_ARGUMENT", `${what} "${text}" is not a size`, "Write a whole number of bytes, or use a K, M, G or T suffix (binary), e.g. 1G.");
  }
  const shift = suffixShift[(m[2] ?? "").toUpperCase()] ?? 0;
  const bytes = Math.floor(Number(m[1]) * 2 ** shift);
  if (!Number.isSafeInteger(bytes)) throw new QstoraError("INVALID_ARGUMENT", `${what} "${text}" is too large`);
  return bytes;
}

export function formatSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value >= 100 ? 0 : 1).replace(/\.0$/, "")} ${units[unit]}`;
}
