// The contract between the SCSI layer (above) and a LUN's storage (below).
// The SCSI layer sees a LUN as a BlockDevice; core/volume implements it over archives
// (and, later, over replicated or erasure-coded segments). This file holds types only.
//
// Results are returned as values, not thrown: an I/O outcome is an expected result (house style,
// errors kind 2). A method may answer synchronously (the fast path: page-cache hits served inline,
// see the design's "data path on Bun") or with a Promise when it has to wait (disk, network);
// callers check `instanceof Promise` and must handle both.
import type { ErrorCode } from "../util/errors.ts";

export interface IoFailure {
  readonly ok: false;
  /** A code from core/util/errors.ts; its SCSI sense is in the error table. */
  readonly code: ErrorCode;
  readonly message: string;
  /** For MEDIUM_ERROR: the byte offset (from LUN start) of the first bad byte, for sense INFORMATION. */
  readonly offsetBytes?: number;
}
export interface IoOk<T> {
  readonly ok: true;
  readonly value: T;
}
export type IoResult<T> = IoOk<T> | IoFailure;
export type MaybePromise<T> = T | Promise<T>;

export interface BlockDeviceInfo {
  /** Stable identity: 16 bytes used for the NAA designator (VPD 0x83) and serial (VPD 0x80). */
  readonly uuid: string;
  readonly name: string;
  readonly sizeBytes: number;
  /** Logical block size presented to initiators (512 or 4096). */
  readonly blockBytes: number;
  /** Physical block (page) size, for READ CAPACITY 16's LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT. */
  readonly physicalBlockBytes: number;
  /** Write-back cache enabled (MODE SENSE caching page WCE). */
  readonly writeCache: boolean;
  readonly thin: boolean;
}

export interface BlockDevice {
  info(): BlockDeviceInfo;
  /**
   * The LUN can be given to another node while a command runs (a replicated LUN taken over,
   * core/cluster/takeover.ts): the session then hands the command whole (a copy of its Data-Out,
   * handed over) so that it can send it there if the device answers NOT READY, ASYMMETRIC ACCESS
   * STATE TRANSITION. Absent: false.
   */
  readonly movable?: boolean;
  /**
   * Reads `lengthBytes` at `offsetBytes` (both multiples of blockBytes, inside the device).
   * The returned buffer is owned by the caller until the next call on this device.
   */
  read(offsetBytes: number, lengthBytes: number): MaybePromise<IoResult<Uint8Array>>;
  /**
   * Writes `data` at `offsetBytes`. `data` is a view valid only during the call (copy to keep),
   * unless it was handed over (core/util/handover.ts): then it may be kept as it is.
   * With `fua`, returns only when the data is durable (Force Unit Access).
   */
  write(offsetBytes: number, data: Uint8Array, options: { fua: boolean }): MaybePromise<IoResult<void>>;
  /** Makes every acknowledged write durable (SYNCHRONIZE CACHE). */
  flush(): MaybePromise<IoResult<void>>;
  /** Deallocates a range (UNMAP); reads of it return zeros afterwards. Optional until issue 3. */
  unmap?(offsetBytes: number, lengthBytes: number): MaybePromise<IoResult<void>>;
  /**
   * GET LBA STATUS: whether the bytes from `offsetBytes` are mapped or deallocated, and for how
   * long that holds (at most `lengthBytes`, at least one block). Optional: without it every
   * block reports mapped.
   */
  mappingAt?(offsetBytes: number, lengthBytes: number): MaybePromise<IoResult<{ mapped: boolean; lengthBytes: number }>>;
  /**
   * MODE SELECT changed the caching page's WCE: keep it (saved per LUN) so info().writeCache
   * reports it from now on, also after a restart. Optional: without it the setting lasts until
   * the process ends.
   */
  setWriteCache?(enabled: boolean): MaybePromise<IoResult<void>>;
}
