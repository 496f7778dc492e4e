// The SCSI block command set (SPC-4, SBC-3) over a BlockDevice: decodes a CDB, checks it, and
// runs it. Knows nothing of iSCSI. Results are values; a device answer that is a Promise is
// passed through so the caller can keep the synchronous fast path.
import type { BlockDevice, IoResult, MaybePromise } from "../volume/block-device.ts";
import { errorTable, type ErrorCode } from "../util/errors.ts";

/** SAM-5 status codes. */
export const Status = { good: 0x00, checkCondition: 0x02, busy: 0x08, reservationConflict: 0x18, taskSetFull: 0x28 } as const;
/** SPC-4 sense keys (table 27). */
export const SenseKey = { noSense: 0x0, notReady: 0x2, mediumError: 0x3, hardwareError: 0x4, illegalRequest: 0x5, unitAttention: 0x6, dataProtect: 0x7, abortedCommand: 0xb, miscompare: 0xe } as const;
/** Additional sense codes used here (SPC-4 table 28): [ASC, ASCQ]. */
export const Asc = {
  invalidOpcode: [0x20, 0x00],
  lbaOutOfRange: [0x21, 0x00],
  invalidFieldInCdb: [0x24, 0x00],
  lunNotSupported: [0x25, 0x00],
  powerOnReset: [0x29, 0x00],
  parameterListLengthError: [0x1a, 0x00],
  invalidFieldInParameterList: [0x26, 0x00],
} as const;

/** SCSI opcodes (SPC-4, SBC-3). */
export const Opc = {
  testUnitReady: 0x00,
  requestSense: 0x03,
  read6: 0x08,
  write6: 0x0a,
  inquiry: 0x12,
  modeSelect6: 0x15,
  modeSense6: 0x1a,
  startStopUnit: 0x1b,
  preventAllow: 0x1e,
  readCapacity10: 0x25,
  read10: 0x28,
  write10: 0x2a,
  verify10: 0x2f,
  synchronizeCache10: 0x35,
  modeSense10: 0x5a,
  read16: 0x88,
  write16: 0x8a,
  synchronizeCache16: 0x91,
  serviceActionIn16: 0x9e,
  reportLuns: 0xa0,
  maintenanceIn: 0xa3,
  read12: 0xa8,
  write12: 0xaa,
} as const;
const saReadCapacity16 = 0x10; // SBC-3 SERVICE ACTION IN(16) service action

export interface Sense {
  key: number;
  asc: number;
  ascq: number;
  information?: number;
}

export interface ScsiResult {
  status: number;
  sense?: Sense;
  /** Data-In for the initiator (already cut to the CDB's allocation length). */
  data?: Uint8Array;
}

/** What the transport knows about a command's data phase. */
export interface DataOut {
  /** The Data-Out buffer (Expected Data Transfer Length bytes, or fewer if the initiator sent fewer). */
  buffer: Uint8Array;
}

export interface LunContext {
  device: BlockDevice | undefined;
  targetName: string;
  lunNumbers: number[];
  relativePortId: number;
}

export const checkCondition = (key: number, [asc, ascq]: readonly [number, number], information?: number): ScsiResult => ({
  status: Status.checkCondition,
  sense: information === undefined ? { key, asc, ascq } : { key, asc, ascq, information },
});

export function senseFromCode(code: ErrorCode, information?: number): ScsiResult {
  const s = (errorTable[code] as { sense?: { key: number; asc: number; ascq: number } }).sense ?? { key: SenseKey.hardwareError, asc: 0x44, ascq: 0 };
  return checkCondition(s.key, [s.asc, s.ascq], information);
}

/** Fixed-format sense data (SPC-4 §4.5.3), 18 bytes. */
export function encodeSense(s: Sense): Uint8Array {
  const b = new Uint8Array(18);
  b[0] = 0x70 | (s.information !== undefined ? 0x80 : 0); // current error, VALID if INFORMATION set
  b[2] = s.key;
  if (s.information !== undefined) {
    const v = s.information >>> 0;
    b[3] = v >>> 24;
    b[4] = v >>> 16;
    b[5] = v >>> 8;
    b[6] = v;
  }
  b[7] = 10; // additional sense length
  b[12] = s.asc;
  b[13] = s.ascq;
  return b;
}

const be16 = (c: Uint8Array, at: number): number => ((c[at] as number) << 8) | (c[at + 1] as number);
const be32 = (c: Uint8Array, at: number): number => (((c[at] as number) << 24) | ((c[at + 1] as number) << 16) | ((c[at + 2] as number) << 8) | (c[at + 3] as number)) >>> 0;
const be64 = (c: Uint8Array, at: number): number => be32(c, at) * 2 ** 32 + be32(c, at + 4);
function w16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v;
}
function w32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}
function w64(b: Uint8Array, at: number, v: number): void {
  w32(b, at, Math.floor(v / 2 ** 32));
  w32(b, at + 4, v >>> 0);
}

export interface RwCommand {
  /** RDPROTECT/WRPROTECT (bits 7..5 of byte 1): must be 0 without protection information. */
  protect: number;
  write: boolean;
  lba: number;
  blocks: number;
  fua: boolean;
}

/** Decodes READ/WRITE 6/10/12/16; null for other opcodes. */
export function decodeRw(cdb: Uint8Array): RwCommand | null {
  switch (cdb[0]) {
    case Opc.read6:
    case Opc.write6: {
      const blocks = cdb[4] === 0 ? 256 : (cdb[4] as number); // SBC-3 §5.15: 0 means 256 blocks
      return { protect: 0, write: cdb[0] === Opc.write6, lba: (((cdb[1] as number) & 0x1f) << 16) | be16(cdb, 2), blocks, fua: false };
    }
    case Opc.read10:
    case Opc.write10:
      return { protect: (cdb[1] as number) >>> 5, write: cdb[0] === Opc.write10, lba: be32(cdb, 2), blocks: be16(cdb, 7), fua: ((cdb[1] as number) & 0x08) !== 0 };
    case Opc.read12:
    case Opc.write12:
      return { protect: (cdb[1] as number) >>> 5, write: cdb[0] === Opc.write12, lba: be32(cdb, 2), blocks: be32(cdb, 6), fua: ((cdb[1] as number) & 0x08) !== 0 };
    case Opc.read16:
    case Opc.write16:
      return { protect: (cdb[1] as number) >>> 5, write: cdb[0] === Opc.write16, lba: be64(cdb, 2), blocks: be32(cdb, 10), fua: ((cdb[1] as number) & 0x08) !== 0 };
    default:
      return null;
  }
}

/** Bytes of Data-Out a command expects (for the transport's R2T logic). */
export function dataOutBytes(cdb: Uint8Array, blockBytes: number): number {
  const rw = decodeRw(cdb);
  if (rw !== null) return rw.write ? rw.blocks * blockBytes : 0;
  if (cdb[0] === Opc.modeSelect6) return cdb[4] as number;
  return 0;
}

function cut(data: Uint8Array, allocation: number): Uint8Array {
  return data.length > allocation ? data.subarray(0, allocation) : data;
}

const ascii = (s: string, len: number): Uint8Array => new TextEncoder().encode(s.padEnd(len, " ").slice(0, len));

function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, "");
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i++) b[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16) || 0;
  return b;
}

function inquiry(cdb: Uint8Array, ctx: LunContext): ScsiResult {
  const evpd = ((cdb[1] as number) & 0x01) !== 0;
  const page = cdb[2] as number;
  const allocation = be16(cdb, 3);
  if (!evpd) {
    if (page !== 0) return checkCondition(SenseKey.illegalRequest, Asc.invalidFieldInCdb);
    const b = new Uint8Array(96);
    b[0] = ctx.device === undefined ? 0x7f : 0x00; // qualifier 3 / type 0x1f: no LUN here; else direct-access block device
    b[2] = 0x06; // VERSION: SPC-4
    b[3] = 0x12; // HISUP, RESPONSE DATA FORMAT 2
    b[4] = b.length - 5;
    b[7] = 0x02; // CMDQUE
    b.set(ascii("QSTORA", 8), 8);
    b.set(ascii("VIRTUAL-DISK", 16), 16);
    b.set(ascii("0001", 4), 32);
    // Version descriptors (SPC-4 table 151): SAM-5, iSCSI, SPC-4, SBC-3.
    [0x00a0, 0x0960, 0x0460, 0x04c0].forEach((v, i) => w16(b, 58 + i * 2, v));
    return { status: Status.good, data: cut(b, allocation) };
  }
  if (ctx.device === undefined) return checkCondition(SenseKey.illegalRequest, Asc.lunNotSupported);
  const info = ctx.device.info();
  const pageOut = (code: number, body: Uint8Array): ScsiResult => {
    const b = new Uint8Array(4 + body.length);
    b[1] = code;
    w16(b, 2, body.length);
    b.set(body, 4);
    return { status: Status.good, data: cut(b, allocation) };
  };
  const serial = info.uuid.replace(/-/g, "");
  switch (page) {
    case 0x00: // supported VPD pages
      return pageOut(0x00, new Uint8Array([0x00, 0x80, 0x83, 0xb0, 0xb1]));
    case 0x80: // unit serial number
      return pageOut(0x80, ascii(serial, 32));
    case 0x83: {
      // Device identification (SPC-4 §7.8.6).
      const ds: Uint8Array[] = [];
      const designator = (codeSet: number, assocType: number, body: Uint8Array, piv = false): void => {
        const d = new Uint8Array(4 + body.length);
        d[0] = piv ? 0x50 | codeSet : codeSet; // protocol identifier iSCSI (5) when PIV
        d[1] = (piv ? 0x80 : 0) | assocType;
        d[3] = body.length;
        d.set(body, 4);
        ds.push(d);
      };
      // NAA IEEE Registered Extended (NAA 6): a locally administered company id, then the uuid.
      const naa = new Uint8Array(16);
      const u = uuidBytes(info.uuid);
      naa[0] = 0x60 | 0x0; // NAA 6, OUI starts
      naa[1] = 0x01;
      naa[2] = 0x40;
      naa[3] = 0x50 | ((u[0] as number) & 0x0f);
      naa.set(u.subarray(1, 13), 4);
      designator(0x01, 0x03, naa); // binary, LU association, type 3 (NAA)
      const t10 = new Uint8Array(8 + serial.length);
      t10.set(ascii("QSTORA", 8), 0);
      t10.set(new TextEncoder().encode(serial), 8);
      designator(0x02, 0x01, t10); // ASCII, LU, type 1 (T10 vendor id)
      const rel = new Uint8Array(4);
      w16(rel, 2, ctx.relativePortId);
      designator(0x01, 0x14, rel, true); // binary, target port association, type 4 (relative port)
      const name = (s: string): Uint8Array => {
        const raw = new TextEncoder().encode(s);
        const b = new Uint8Array((raw.length + 1 + 3) & ~3); // NUL-terminated, padded to 4
        b.set(raw);
        return b;
      };
      designator(0x03, 0x28, name(ctx.targetName), true); // UTF-8, target device association, type 8 (SCSI name)
      const body = new Uint8Array(ds.reduce((n, d) => n + d.length, 0));
      let at = 0;
      for (const d of ds) {
        body.set(d, at);
        at += d.length;
      }
      return pageOut(0x83, body);
    }
    case 0xb0: {
      // Block limits (SBC-3 §6.5.3).
      const b = new Uint8Array(0x3c);
      w16(b, 2, Math.max(1, 4096 / info.blockBytes)); // optimal transfer length granularity
      w32(b, 4, (1 << 20) / info.blockBytes); // maximum transfer length: 1 MiB
      w32(b, 8, (1 << 20) / info.blockBytes); // optimal transfer length
      return pageOut(0xb0, b);
    }
    case 0xb1: {
      const b = new Uint8Array(0x3c);
      w16(b, 0, 1); // medium rotation rate: non-rotating
      return pageOut(0xb1, b);
    }
    default:
      return checkCondition(SenseKey.illegalRequest, Asc.invalidFieldInCdb);
  }
}

function modeSense(cdb: Uint8Array, device: BlockDevice): ScsiResult {
  const ten = cdb[0] === Opc.modeSense10;
  const dbd = ((cdb[1] as number) & 0x08) !== 0;
  const pc = (cdb[2] as number) >>> 6; // 0 current, 1 changeable, 2 default, 3 saved
  const page = (cdb[2] as number) & 0x3f;
  const subpage = cdb[3] as number;
  const allocation = ten ? be16(cdb, 7) : (cdb[4] as number);
  if (pc === 3) return checkCondition(SenseKey.illegalRequest, [0x39, 0x00]); // SAVING PARAMETERS NOT SUPPORTED
  if (subpage !== 0 && subpage !== 0xff) return checkCondition(SenseKey.illegalRequest, Asc.invalidFieldInCdb);
  const info = device.info();
  const pages: Uint8Array[] = [];
  const changeable = pc === 1;
  if (page === 0x08 || page === 0x3f) {
    const p = new Uint8Array(20); // caching page (SBC-3 §6.4.5)
    p[0] = 0x08;
    p[1] = 0x12;
    if (!changeable && info.writeCache) p[2] = 0x04; // WCE
    pages.push(p);
  }
  if (page === 0x0a || page === 0x3f) {
    const p = new Uint8Array(12); // control page (SPC-4 §7.5.8)
    p[0] = 0x0a;
    p[1] = 0x0a;
    if (!changeable) p[3] = 0x10; // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
    pages.push(p);
  }
  if (page === 0x1c || page === 0x3f) {
    const p = new Uint8Array(12); // informational exceptions control (SPC-4 §7.5.10)
    p[0] = 0x1c;
    p[1] = 0x0a;
    pages.push(p);
  }
  if (pages.length === 0) return checkCondition(SenseKey.illegalRequest, Asc.invalidFieldInCdb);
  const blockDesc = dbd ? new Uint8Array(0) : new Uint8Array(8);
  if (!dbd) {
    const blocks = info.sizeBytes / info.blockBytes;
    w32(blockDesc, 0, blocks > 0xffffffff ? 0xffffffff : blocks);
    w32(blockDesc, 4, info.blockBytes & 0xffffff);
  }
  const header = new Uint8Array(ten ? 8 : 4);
  const bodyLen = blockDesc.length + pages.reduce((n, p) => n + p.length, 0);
  // Device-specific parameter (SBC-3 §6.4.1): DPOFUA, FUA and DPO bits are honoured.
  const deviceSpecific = 0x10;
  if (ten) {
    w16(header, 0, header.length - 2 + bodyLen);
    header[3] = deviceSpecific;
    w16(header, 6, blockDesc.length);
  } else {
    header[0] = header.length - 1 + bodyLen;
    header[2] = deviceSpecific;
    header[3] = blockDesc.length;
  }
  const out = new Uint8Array(header.length + bodyLen);
  out.set(header);
  out.set(blockDesc, header.length);
  let at = header.length + blockDesc.length;
  for (const p of pages) {
    out.set(p, at);
    at += p.length;
  }
  return { status: Status.good, data: cut(out, allocation) };
}

function reportLuns(cdb: Uint8Array, ctx: LunContext): ScsiResult {
  const allocation = be32(cdb, 6);
  if (allocation < 16) return checkCondition(SenseKey.illegalRequest, Asc.invalidFieldInCdb);
  const select = cdb[2] as number;
  if (select > 2 && select !== 0x10 && select !== 0x11 && select !== 0x12) return checkCondition(SenseKey.illegalRequest, Asc.invalidFieldInCdb);
  const luns = select === 1 ? [] : ctx.lunNumbers;
  const b = new Uint8Array(8 + luns.length * 8);
  w32(b, 0, luns.length * 8);
  luns.forEach((n, i) => {
    // SAM-5 §4.7: peripheral addressing for LUNs below 256, flat space addressing above.
    if (n < 256) b[8 + i * 8 + 1] = n;
    else w16(b, 8 + i * 8, 0x4000 | n);
  });
  return { status: Status.good, data: cut(b, allocation) };
}

function readCapacity(cdb: Uint8Array, device: BlockDevice): ScsiResult {
  const info = device.info();
  const lastLba = info.sizeBytes / info.blockBytes - 1;
  if (cdb[0] === Opc.readCapacity10) {
    const b = new Uint8Array(8);
    w32(b, 0, lastLba > 0xffffffff ? 0xffffffff : lastLba);
    w32(b, 4, info.blockBytes);
    return { status: Status.good, data: b };
  }
  const allocation = be32(cdb, 10);
  const b = new Uint8Array(32);
  w64(b, 0, lastLba);
  w32(b, 8, info.blockBytes);
  b[13] = Math.log2(info.physicalBlockBytes / info.blockBytes); // LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT
  return { status: Status.good, data: cut(b, allocation) };
}

const good: ScsiResult = { status: Status.good };

function fromIo(r: IoResult<void>, lba?: number): ScsiResult {
  return r.ok ? good : senseFromCode(r.code, lba);
}

/**
 * Runs a non-read/write command (reads and writes are streamed by the transport through
 * `readBlocks`/`writeBlocks` below). `dataOut` is the Data-Out buffer for commands that take one.
 */
export function execute(cdb: Uint8Array, ctx: LunContext, dataOut: Uint8Array | null): MaybePromise<ScsiResult> {
  const op = cdb[0] as number;
  if (op === Opc.inquiry) return inquiry(cdb, ctx);
  if (op === Opc.reportLuns) return reportLuns(cdb, ctx);
  if (op === Opc.requestSense) {
    const allocation = cdb[4] as number;
    const s = encodeSense({ key: SenseKey.noSense, asc: 0, ascq: 0 });
    return { status: Status.good, data: cut(s, allocation) };
  }
  const device = ctx.device;
  if (device === undefined) return checkCondition(SenseKey.illegalRequest, Asc.lunNotSupported);
  switch (op) {
    case Opc.testUnitReady:
      return good;
    case Opc.readCapacity10:
      return readCapacity(cdb, device);
    case Opc.serviceActionIn16:
      if (((cdb[1] as number) & 0x1f) === saReadCapacity16) return readCapacity(cdb, device);
      return checkCondition(SenseKey.illegalRequest, Asc.invalidFieldInCdb);
    case Opc.modeSense6:
    case Opc.modeSense10:
      return modeSense(cdb, device);
    case Opc.synchronizeCache10:
    case Opc.synchronizeCache16: {
      const info = device.info();
      const lba = op === Opc.synchronizeCache10 ? be32(cdb, 2) : be64(cdb, 2);
      const blocks = op === Opc.synchronizeCache10 ? be16(cdb, 7) : be32(cdb, 10);
      if (lba * info.blockBytes + blocks * info.blockBytes > info.sizeBytes) return checkCondition(SenseKey.illegalRequest, Asc.lbaOutOfRange);
      const r = device.flush();
      return r instanceof Promise ? r.then((x) => fromIo(x)) : fromIo(r);
    }
    case Opc.startStopUnit:
    case Opc.preventAllow:
      return good;
    default:
      void dataOut;
      return checkCondition(SenseKey.illegalRequest, Asc.invalidOpcode);
  }
}

/** Checks a READ/WRITE against the device; returns a failure result, or null when it may run. */
export function checkRw(rw: RwCommand, device: BlockDevice): ScsiResult | null {
  const info = device.info();
  const blocks = info.sizeBytes / info.blockBytes;
  if (rw.protect !== 0) return checkCondition(SenseKey.illegalRequest, Asc.invalidFieldInCdb);
  if (rw.lba + rw.blocks > blocks) return checkCondition(SenseKey.illegalRequest, Asc.lbaOutOfRange);
  return null;
}

export function ioFailureResult(r: { code: ErrorCode; offsetBytes?: number }, blockBytes: number): ScsiResult {
  return senseFromCode(r.code, r.offsetBytes === undefined ? undefined : Math.floor(r.offsetBytes / blockBytes));
}
