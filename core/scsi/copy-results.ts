// What a logical unit, as copy manager, remembers of the EXTENDED COPY commands sent to it
// (SPC-4 §6.4, §6.18): per I_T nexus and list identifier, whether the copy is in progress or
// how it ended, for RECEIVE COPY RESULTS. Plain data with named limits; it never copies data and
// never does I/O (core/scsi/commands/extended-copy.ts does).
import { assert } from "../util/assert.ts";
import type { Sense } from "./sense.ts";

/** Copies (records) kept per I_T nexus; the oldest finished one makes room for a new one. */
export const copyRecordsPerNexusMax = 16;
/** I_T nexuses with records per logical unit; beyond that the oldest nexus's records go. */
export const copyNexusesMax = 1024;
/** EXTENDED COPY commands running at once on one copy manager (OPERATING PARAMETERS reports it). */
export const copiesInProgressMax = 16;

export interface CopyRecord {
  readonly listId: number;
  state: "in-progress" | "completed" | "failed";
  segmentsProcessed: number;
  bytesCopied: number;
  /** Kept for RECEIVE COPY RESULTS: false for LIST ID USAGE 10b (dropped when the copy ends). */
  readonly hold: boolean;
  /** How a failed copy ended, for FAILED SEGMENT DETAILS (given out once). */
  failure: { readonly status: number; readonly sense: Sense } | null;
}

export class CopyResultTable {
  private readonly byNexus = new Map<string, Map<number, CopyRecord>>();
  /** Copies under way on this copy manager (any nexus, with or without a record). */
  inProgress = 0;

  get(nexusId: string, listId: number): CopyRecord | undefined {
    return this.byNexus.get(nexusId)?.get(listId);
  }

  /**
   * Starts a record for a copy with a list identifier. "busy" when that list identifier is still
   * in progress for the nexus; "full" when every kept record of the nexus is in progress.
   */
  begin(nexusId: string, listId: number, hold: boolean): CopyRecord | "busy" | "full" {
    assert(Number.isInteger(listId) && listId >= 0 && listId <= 0xff, "list identifier is one byte");
    let records = this.byNexus.get(nexusId);
    if (records === undefined) {
      if (this.byNexus.size >= copyNexusesMax) {
        const oldest = this.byNexus.keys().next().value as string;
        this.byNexus.delete(oldest);
      }
      records = new Map();
      this.byNexus.set(nexusId, records);
    }
    const existing = records.get(listId);
    if (existing !== undefined) {
      if (existing.state === "in-progress") return "busy";
      records.delete(listId);
    }
    if (records.size >= copyRecordsPerNexusMax) {
      const done = [...records.values()].find((r) => r.state !== "in-progress");
      if (done === undefined) return "full";
      records.delete(done.listId);
    }
    const record: CopyRecord = { listId, state: "in-progress", segmentsProcessed: 0, bytesCopied: 0, hold, failure: null };
    records.set(listId, record);
    assert(records.size <= copyRecordsPerNexusMax);
    return record;
  }

  /** The copy ended: a record not to be held is dropped now. */
  finish(nexusId: string, record: CopyRecord): void {
    assert(record.state !== "in-progress", "finish() after the state is set");
    if (record.hold) return;
    const records = this.byNexus.get(nexusId);
    if (records?.get(record.listId) === record) records.delete(record.listId);
  }

  /** Drops one record (FAILED SEGMENT DETAILS was read). */
  discard(nexusId: string, listId: number): void {
    this.byNexus.get(nexusId)?.delete(listId);
  }

  /** I_T nexus loss: its results go (list identifiers belong to one I_T nexus, SPC-4 §6.4.3.2). */
  forget(nexusId: string): void {
    this.byNexus.delete(nexusId);
  }
}
