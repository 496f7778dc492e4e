// MODE SENSE(6) and MODE SENSE(10) (SPC-4 §6.11, §6.12) with the caching page (SBC-3 §6.4.5),
// the control page (SPC-4 §7.5.8) and the informational exceptions control page (SPC-4 §7.5.10).
// and MODE SELECT(6/10) (SPC-4 §6.9, §6.10), which may change only the caching page's WCE and
// RCD. Pure: builds and parses bytes; the caller applies a change and raises the unit attention.
import type { BlockDeviceInfo } from "../../volume/block-device.ts";
import { cutToAllocation, putBe16, putBe32, putBe64 } from "../bytes.ts";
import { Asc, Status, illegalRequest, type ScsiResult } from "../sense.ts";
import type { ModeSenseCommand } from "../cdb.ts";

/** SPC-4 §6.11 PAGE CONTROL field. */
export const PageControl = { current: 0, changeable: 1, default: 2, saved: 3 } as const;
/** Page codes. */
export const ModePage = { caching: 0x08, control: 0x0a, informationalExceptions: 0x1c, all: 0x3f } as const;
/** SUBPAGE CODE FFh: all subpages (we have only subpage 0). */
const allSubpages = 0xff;
/** SBC-3 §6.4.1 DEVICE-SPECIFIC PARAMETER: DPOFUA (bit 4), the DPO and FUA bits are supported. */
const deviceSpecificDpoFua = 0x10;
/** SBC-3 §6.4.5: caching page length 12h, WCE is byte 2 bit 2. */
const cachingPageLength = 0x12;
const cachingWce = 0x04;
const cachingRcd = 0x01;
/** Bit 6 of a page's first byte: SPF, the sub-page format (SPC-4 §7.5.7). */
const subpageFormat = 0x40;
/** Bit 7 of a page's first byte: PS, parameters savable; ignored in MODE SELECT (SPC-4 §7.5.7). */
const pageSavable = 0x80;
/** SPC-4 §7.5.8: control page length 0Ah; QUEUE ALGORITHM MODIFIER 1 (unrestricted reordering) in byte 3. */
const controlPageLength = 0x0a;
const controlUnrestrictedReordering = 0x10;
/** SPC-4 §7.5.10: informational exceptions control page length 0Ah. */
const informationalExceptionsPageLength = 0x0a;
/** SBC-3 §6.4.2: short (8-byte) and long (16-byte, LONGLBA) block descriptors. */
const shortBlockDescriptorBytes = 8;
const longBlockDescriptorBytes = 16;

export type { ModeSenseCommand } from "../cdb.ts";

/** The caching settings MODE SELECT may change. */
export interface CacheSettings {
  readonly writeCache: boolean;
  readonly readCacheDisabled: boolean;
}

function cachingPage(cache: CacheSettings, pageControl: number): Uint8Array {
  const p = new Uint8Array(2 + cachingPageLength);
  p[0] = ModePage.caching | pageSavable;
  p[1] = cachingPageLength;
  if (pageControl === PageControl.changeable) p[2] = cachingWce | cachingRcd;
  else if (pageControl === PageControl.default) p[2] = cachingWce;
  else p[2] = (cache.writeCache ? cachingWce : 0) | (cache.readCacheDisabled ? cachingRcd : 0);
  return p;
}

function controlPage(pageControl: number): Uint8Array {
  const p = new Uint8Array(2 + controlPageLength);
  p[0] = ModePage.control;
  p[1] = controlPageLength;
  if (pageControl !== PageControl.changeable) p[3] = controlUnrestrictedReordering;
  return p;
}

function informationalExceptionsPage(): Uint8Array {
  const p = new Uint8Array(2 + informationalExceptionsPageLength);
  p[0] = ModePage.informationalExceptions;
  p[1] = informationalExceptionsPageLength;
  return p;
}

export function modeSense(command: ModeSenseCommand, info: BlockDeviceInfo, cache: CacheSettings = { writeCache: info.writeCache, readCacheDisabled: false }): ScsiResult {
  if (command.subpage !== 0 && command.subpage !== allSubpages) return illegalRequest(Asc.invalidFieldInCdb);
  const pages: Uint8Array[] = [];
  void Asc.savingParametersNotSupported; // saved values are the current ones: the daemon keeps them
  const all = command.page === ModePage.all;
  if (all || command.page === ModePage.caching) pages.push(cachingPage(cache, command.pageControl));
  if (all || command.page === ModePage.control) pages.push(controlPage(command.pageControl));
  if (all || command.page === ModePage.informationalExceptions) pages.push(informationalExceptionsPage());
  if (pages.length === 0) return illegalRequest(Asc.invalidFieldInCdb);

  const blocks = Math.floor(info.sizeBytes / info.blockBytes);
  let descriptor = new Uint8Array(0);
  if (!command.disableBlockDescriptors) {
    if (command.longLba) {
      descriptor = new Uint8Array(longBlockDescriptorBytes);
      putBe64(descriptor, 0, blocks);
      putBe32(descriptor, 12, info.blockBytes);
    } else {
      descriptor = new Uint8Array(shortBlockDescriptorBytes);
      putBe32(descriptor, 0, Math.min(blocks, 0xffffffff)); // FFFFFFFFh: too many to say here
      putBe32(descriptor, 4, info.blockBytes & 0xffffff); // byte 4 is DENSITY CODE 0
    }
  }
  const headerBytes = command.tenByte ? 8 : 4;
  const pageBytes = pages.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(headerBytes + descriptor.length + pageBytes);
  if (command.tenByte) {
    putBe16(out, 0, out.length - 2); // MODE DATA LENGTH excludes itself
    out[3] = deviceSpecificDpoFua;
    if (descriptor.length === longBlockDescriptorBytes) out[4] = 0x01; // LONGLBA
    putBe16(out, 6, descriptor.length);
  } else {
    out[0] = Math.min(out.length - 1, 0xff);
    out[2] = deviceSpecificDpoFua;
    out[3] = descriptor.length;
  }
  out.set(descriptor, headerBytes);
  let at = headerBytes + descriptor.length;
  for (const p of pages) {
    out.set(p, at);
    at += p.length;
  }
  return { status: Status.good, data: cutToAllocation(out, command.allocationBytes) };
}

export type ModeSelectOutcome = { readonly ok: true; readonly cache: CacheSettings } | { readonly ok: false; readonly result: ScsiResult };

/**
 * Parses a MODE SELECT parameter list against the current settings: the caching page may change
 * WCE and RCD; every other page must repeat the values MODE SENSE reports (SPC-4 §6.9: a change
 * to a field that is not changeable is INVALID FIELD IN PARAMETER LIST).
 */
export function modeSelect(command: { tenByte: boolean; pageFormat: boolean; parameterBytes: number }, data: Uint8Array | null, cache: CacheSettings): ModeSelectOutcome {
  const fail = (result: ScsiResult): ModeSelectOutcome => ({ ok: false, result });
  if (command.parameterBytes === 0) return { ok: true, cache };
  if (!command.pageFormat) return fail(illegalRequest(Asc.invalidFieldInCdb));
  const p = data ?? new Uint8Array(0);
  const headerBytes = command.tenByte ? 8 : 4;
  if (p.length < headerBytes || command.parameterBytes < headerBytes) return fail(illegalRequest(Asc.parameterListLengthError));
  const descriptorBytes = command.tenByte ? (((p[6] as number) << 8) | (p[7] as number)) : (p[3] as number);
  let at = headerBytes + descriptorBytes;
  if (at > p.length) return fail(illegalRequest(Asc.parameterListLengthError));
  let next = cache;
  while (at < p.length) {
    const code = (p[at] as number) & 0x3f;
    const spf = ((p[at] as number) & subpageFormat) !== 0;
    if (at + 2 > p.length) return fail(illegalRequest(Asc.parameterListLengthError));
    const length = spf ? (((p[at + 2] as number) << 8) | (p[at + 3] as number)) + 4 : (p[at + 1] as number) + 2;
    if (at + length > p.length) return fail(illegalRequest(Asc.parameterListLengthError));
    const page = p.subarray(at, at + length);
    if (spf && page[1] !== 0) return fail(illegalRequest(Asc.invalidFieldInParameterList));
    let expected: Uint8Array;
    if (code === ModePage.caching && !spf) {
      if (length !== 2 + cachingPageLength) return fail(illegalRequest(Asc.invalidFieldInParameterList));
      const flags = page[2] as number;
      next = { writeCache: (flags & cachingWce) !== 0, readCacheDisabled: (flags & cachingRcd) !== 0 };
      expected = cachingPage(next, PageControl.current);
    } else if (code === ModePage.control && !spf) expected = controlPage(PageControl.current);
    else if (code === ModePage.informationalExceptions && !spf) expected = informationalExceptionsPage();
    else return fail(illegalRequest(Asc.invalidFieldInParameterList));
    if (expected.length !== page.length) return fail(illegalRequest(Asc.invalidFieldInParameterList));
    for (let i = 1; i < page.length; i++) if (page[i] !== expected[i]) return fail(illegalRequest(Asc.invalidFieldInParameterList));
    if ((((page[0] as number) ^ (expected[0] as number)) & 0x7f) !== 0) return fail(illegalRequest(Asc.invalidFieldInParameterList));
    at += length;
  }
  return { ok: true, cache: next };
}
