// A tiny WebAssembly binary writer: LEB128, the few sections a kernel module needs (type, import
// of a memory, function, export, code) and the opcodes the erasure-coding kernel uses.
// Pure and deterministic: the same calls always give the same bytes (a test compares the checked-in
// module with a fresh build). It must never grow into a general assembler: add only what a kernel uses.
// Encodings from the WebAssembly Core Specification 2.0, chapter 5 "Binary Format".

import { assert } from "../../util/assert.ts";

/** "\0asm" then version 1 (spec 5.5.16 "Modules"). */
const moduleHeader = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/** Section ids (spec 5.5.2). */
const sectionType = 1;
const sectionImport = 2;
const sectionFunction = 3;
const sectionExport = 7;
const sectionCode = 10;

/** Value types (spec 5.3.1). */
export const valI32 = 0x7f;
export const valV128 = 0x7b;
export type ValueType = typeof valI32 | typeof valV128;

/** Function type marker (spec 5.3.6), import/export kinds (spec 5.5.5, 5.5.10). */
const funcTypeMarker = 0x60;
const kindFunction = 0x00;
const kindMemory = 0x02;

/** Control and variable instructions (spec 5.4.1, 5.4.4), numeric (spec 5.4.7). */
export const op = {
  block: 0x02,
  loop: 0x03,
  brIf: 0x0d,
  end: 0x0b,
  return: 0x0f,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  i32Const: 0x41,
  i32Eqz: 0x45,
  i32LtU: 0x49,
  i32Add: 0x6a,
  i32Shl: 0x74,
  /** Block type "no result" (spec 5.4.1 blocktype). */
  blockEmpty: 0x40,
} as const;

/** SIMD instructions: prefix 0xfd then the sub-opcode as an unsigned LEB128 (spec 5.4.8). */
const simdPrefix = 0xfd;
export const simd = {
  v128Load: 0x00,
  v128Store: 0x0b,
  v128Const: 0x0c,
  i8x16Swizzle: 0x0e,
  i8x16Splat: 0x0f,
  v128And: 0x4e,
  v128Xor: 0x51,
  i8x16ShrU: 0x6d,
  i16x8ShrU: 0x8d,
  /** Relaxed SIMD proposal (Wasm 3.0): i8x16.relaxed_swizzle, out-of-range lanes unspecified. */
  i8x16RelaxedSwizzle: 0x100,
} as const;

export function unsignedLeb128(value: number): number[] {
  assert(Number.isInteger(value) && value >= 0 && value <= 0xffffffff);
  const out: number[] = [];
  let v = value;
  do {
    let byte = v & 0x7f;
    v = Math.floor(v / 128);
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

export function signedLeb128(value: number): number[] {
  assert(Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff);
  const out: number[] = [];
  let v = value;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function utf8Name(name: string): number[] {
  const bytes = Array.from(new TextEncoder().encode(name));
  return [...unsignedLeb128(bytes.length), ...bytes];
}

function vector(items: readonly (readonly number[])[]): number[] {
  return [...unsignedLeb128(items.length), ...items.flat()];
}

function section(id: number, body: readonly number[]): number[] {
  return [id, ...unsignedLeb128(body.length), ...body];
}

/** Instruction sequence builder for one function body. */
export class Code {
  readonly bytes: number[] = [];

  emit(...bytes: number[]): this {
    for (const b of bytes) {
      assert(Number.isInteger(b) && b >= 0 && b < 256);
      this.bytes.push(b);
    }
    return this;
  }
  localGet(index: number): this {
    return this.emit(op.localGet, ...unsignedLeb128(index));
  }
  localSet(index: number): this {
    return this.emit(op.localSet, ...unsignedLeb128(index));
  }
  localTee(index: number): this {
    return this.emit(op.localTee, ...unsignedLeb128(index));
  }
  i32Const(value: number): this {
    return this.emit(op.i32Const, ...signedLeb128(value));
  }
  /** Memory access immediate: alignment exponent then offset (spec 5.4.6 memarg). */
  i32Load(offset: number): this {
    return this.emit(op.i32Load, 2, ...unsignedLeb128(offset));
  }
  simd(sub: number): this {
    return this.emit(simdPrefix, ...unsignedLeb128(sub));
  }
  v128Load(offset: number): this {
    return this.simd(simd.v128Load).emit(4, ...unsignedLeb128(offset));
  }
  v128Store(offset: number): this {
    return this.simd(simd.v128Store).emit(4, ...unsignedLeb128(offset));
  }
  v128ConstSplat(byte: number): this {
    assert(byte >= 0 && byte < 256);
    return this.simd(simd.v128Const).emit(...new Array<number>(16).fill(byte));
  }
}

export interface FunctionSpec {
  readonly exportName: string;
  readonly params: readonly ValueType[];
  /** Locals after the parameters, in order. */
  readonly locals: readonly ValueType[];
  readonly body: Code;
}

/**
 * A module importing one memory as env.memory (at least `memoryPagesMin` pages) and exporting the
 * given functions, each of type (params) -> (). One type entry per distinct parameter list.
 */
export function emitModule(functions: readonly FunctionSpec[], memoryPagesMin: number): Uint8Array {
  const typeKeys: string[] = [];
  const types: number[][] = [];
  const typeIndex = functions.map((f) => {
    const key = f.params.join(",");
    let at = typeKeys.indexOf(key);
    if (at < 0) {
      at = typeKeys.length;
      typeKeys.push(key);
      types.push([funcTypeMarker, ...unsignedLeb128(f.params.length), ...f.params, 0]);
    }
    return at;
  });
  const memoryImport = [...utf8Name("env"), ...utf8Name("memory"), kindMemory, 0x00, ...unsignedLeb128(memoryPagesMin)];
  const exports = functions.map((f, i) => [...utf8Name(f.exportName), kindFunction, ...unsignedLeb128(i)]);
  const bodies = functions.map((f) => {
    // Locals are run-length encoded: (count, type) pairs (spec 5.5.13).
    const groups: number[][] = [];
    let i = 0;
    while (i < f.locals.length) {
      let j = i;
      while (j < f.locals.length && f.locals[j] === f.locals[i]) j++;
      groups.push([...unsignedLeb128(j - i), f.locals[i]!]);
      i = j;
    }
    const body = [...vector(groups), ...f.body.bytes, op.end];
    return [...unsignedLeb128(body.length), ...body];
  });
  const bytes = [
    ...moduleHeader,
    ...section(sectionType, vector(types)),
    ...section(sectionImport, vector([memoryImport])),
    ...section(sectionFunction, vector(typeIndex.map((t) => unsignedLeb128(t)))),
    ...section(sectionExport, vector(exports)),
    ...section(sectionCode, vector(bodies)),
  ];
  return new Uint8Array(bytes);
}
