// Big-endian field access for SCSI data (SPC-4 §3.5.2: multi-byte fields are big-endian).
// Pure helpers on Uint8Array; they never allocate and never check bounds beyond the array's own.

export const be16 = (b: Uint8Array, at: number): number => ((b[at] as number) << 8) | (b[at + 1] as number);
export const be32 = (b: Uint8Array, at: number): number => (((b[at] as number) << 24) | ((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number)) >>> 0;
/** A 64-bit field as a number: exact below 2^53, and beyond that still larger than any LUN. */
export const be64 = (b: Uint8Array, at: number): number => be32(b, at) * 2 ** 32 + be32(b, at + 4);

export function putBe16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v;
}
export function putBe32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}
export function putBe64(b: Uint8Array, at: number, v: number): void {
  putBe32(b, at, Math.floor(v / 2 ** 32));
  putBe32(b, at + 4, v >>> 0);
}

/** `data` cut to an allocation length (SPC-4 §4.2.5.6: the device returns at most that much). */
export function cutToAllocation(data: Uint8Array, allocationBytes: number): Uint8Array {
  return data.length > allocationBytes ? data.subarray(0, allocationBytes) : data;
}

/** ASCII text left-aligned and space-padded to `bytes` (SPC-4 §4.4.1). */
export function asciiField(text: string, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes).fill(0x20);
  for (let i = 0; i < Math.min(bytes, text.length); i++) {
    const c = text.charCodeAt(i);
    out[i] = c >= 0x20 && c < 0x7f ? c : 0x20;
  }
  return out;
}
