// The requests a connection has in flight: request ids, correlation of responses, the per-peer
// in-flight limit and each request's deadline. Pure: the driver passes the time in and carries
// out what comes back (resolve a waiter, fail the expired). Never grows past `inflightMax`: a
// full table says "busy" and the caller must push back.
import { assert } from "../util/assert.ts";

/** Requests in flight on one peer connection unless the caller chooses otherwise. */
export const inflightRequestsMaxDefault = 64;

export type BeginResult = { ok: true; requestId: number; deadlineMs: number } | { ok: false; reason: "busy" };

interface Entry<T> {
  value: T;
  deadlineMs: number;
}

export class RequestTable<T> {
  readonly inflightMax: number;
  private readonly entries = new Map<number, Entry<T>>();
  private lastId = 0;

  constructor(inflightMax = inflightRequestsMaxDefault) {
    assert(Number.isInteger(inflightMax) && inflightMax > 0 && inflightMax < 2 ** 31);
    this.inflightMax = inflightMax;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Registers a request; its id is never 0 and never one still in flight. */
  begin(value: T, nowMs: number, timeoutMs: number): BeginResult {
    assert(timeoutMs > 0, "every request has a timeout");
    if (this.entries.size >= this.inflightMax) return { ok: false, reason: "busy" };
    // Ids wrap at 2^32; skipping the ones in use ends within inflightMax + 1 steps.
    let id = this.lastId;
    do id = id === 0xffffffff ? 1 : id + 1;
    while (this.entries.has(id));
    this.lastId = id;
    const deadlineMs = nowMs + timeoutMs;
    this.entries.set(id, { value, deadlineMs });
    assert(this.entries.size <= this.inflightMax);
    return { ok: true, requestId: id, deadlineMs };
  }

  /** The request a response answers, removed; undefined for an id not in flight (late or bogus). */
  settle(requestId: number): T | undefined {
    const e = this.entries.get(requestId);
    if (e === undefined) return undefined;
    this.entries.delete(requestId);
    return e.value;
  }

  /** Removes and returns the requests whose deadline is at or before `nowMs`. */
  expire(nowMs: number): T[] {
    const out: T[] = [];
    for (const [id, e] of this.entries) {
      if (e.deadlineMs <= nowMs) {
        this.entries.delete(id);
        out.push(e.value);
      }
    }
    return out;
  }

  /** The earliest deadline in flight (for the driver's one timer), or undefined when empty. */
  nextDeadlineMs(): number | undefined {
    let min: number | undefined;
    for (const e of this.entries.values()) if (min === undefined || e.deadlineMs < min) min = e.deadlineMs;
    return min;
  }

  /** Removes and returns every request (the connection is gone). */
  drain(): T[] {
    const out = Array.from(this.entries.values(), (e) => e.value);
    this.entries.clear();
    return out;
  }
}
