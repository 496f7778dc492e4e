// Checks a decoded replication message (a plain map from CBOR, see core/net/messages.ts's
// decodeCbor) against the shapes of types.ts before a unit or the manager sees it. Pure; it
// never throws on what the network brings: a malformed message is a returned reason. Encoding
// needs nothing: every Message is plain data (numbers, strings, arrays, byte strings, maps).

import type { Membership, Message, UnitReport } from "./types.ts";
import { policies } from "./types.ts";

export type Parsed = { readonly ok: true; readonly msg: Message } | { readonly ok: false; readonly reason: string };

type Kind = "lsn" | "num" | "bytes" | "pages" | "membership" | "membership?" | "report" | "reason";

/** Every field of every message type (epoch is common to all). */
const shapes: Record<Message["type"], Record<string, Kind>> = {
  write: { reqId: "lsn", completeBelow: "lsn", page: "lsn", pages: "lsn", data: "bytes" },
  read: { reqId: "lsn", completeBelow: "lsn", page: "lsn", pages: "lsn" },
  flush: { reqId: "lsn", completeBelow: "lsn" },
  "write-done": { reqId: "lsn" },
  "read-done": { reqId: "lsn", data: "bytes" },
  "flush-done": { reqId: "lsn" },
  rejected: { reqId: "lsn", reason: "reason", membership: "membership?" },
  forward: { lsn: "lsn", page: "lsn", pages: "lsn", data: "bytes", commitLsn: "lsn" },
  "forward-ack": { lsn: "lsn" },
  "flush-req": { upToLsn: "lsn" },
  "flush-ack": { durableLsn: "lsn" },
  "lease-req": { sentAt: "num", membership: "membership", commitLsn: "lsn" },
  "lease-grant": { sentAt: "num" },
  "catchup-req": { session: "lsn", commitLsn: "lsn", changedPages: "pages" },
  "catchup-start": { session: "lsn", fromLsn: "lsn", pageCount: "lsn" },
  "catchup-page": { session: "lsn", fromLsn: "lsn", pageCount: "lsn", page: "lsn", seq: "lsn", data: "bytes" },
  "caught-up": { session: "lsn", lsn: "lsn" },
  stale: { membership: "membership?" },
  probe: { fence: "lsn", round: "lsn" },
  "probe-reply": { round: "lsn", report: "report" },
  membership: { membership: "membership" },
  heartbeat: { report: "report" },
};

/** Changed pages a catch-up request may list: a 1 GiB segment of 4 KiB pages. */
export const changedPagesMax = 262_144;

const isLsn = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isStr = (v: unknown): v is string => typeof v === "string" && v.length > 0 && v.length <= 256;
const isMap = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

/** Whether a decoded value is a well-formed membership record (as every message carrying one checks). */
export function isMembership(v: unknown): v is Membership {
  if (!isMap(v)) return false;
  const ids = (x: unknown) => Array.isArray(x) && x.length <= 8 && x.every(isStr);
  return (
    isStr(v.segment) &&
    isLsn(v.epoch) &&
    typeof v.policy === "string" &&
    (policies as readonly string[]).includes(v.policy) &&
    isStr(v.primary) &&
    ids(v.secondaries) &&
    ids(v.inactive) &&
    (v.arbiter === null || isStr(v.arbiter)) &&
    (v.coordinator === undefined || isStr(v.coordinator))
  );
}

function isReport(v: unknown): v is UnitReport {
  if (!isMap(v)) return false;
  return isStr(v.segment) && isStr(v.unit) && isLsn(v.epoch) && isLsn(v.fence) && isLsn(v.lastLsn) && typeof v.consistent === "boolean" && typeof v.serving === "boolean" && typeof v.needsEpoch === "boolean";
}

function fits(kind: Kind, v: unknown): boolean {
  switch (kind) {
    case "lsn":
      return isLsn(v);
    case "num":
      return typeof v === "number" && Number.isFinite(v);
    case "bytes":
      return v instanceof Uint8Array;
    case "pages":
      return Array.isArray(v) && v.length <= changedPagesMax && v.every(isLsn);
    case "membership":
      return isMembership(v);
    case "membership?":
      return v === null || isMembership(v);
    case "report":
      return isReport(v);
    case "reason":
      return v === "stale-epoch" || v === "not-primary" || v === "no-lease" || v === "busy";
  }
}

/** The message a decoded map is, or why it is none. Extra fields are ignored (newer senders). */
export function parseMessage(value: unknown): Parsed {
  if (!isMap(value)) return { ok: false, reason: "not a map" };
  const type = value.type;
  if (typeof type !== "string" || !Object.hasOwn(shapes, type)) return { ok: false, reason: `unknown message type ${JSON.stringify(type)}` };
  if (!isLsn(value.epoch)) return { ok: false, reason: `${type}: epoch missing or not a whole number` };
  const shape = shapes[type as Message["type"]];
  const out: Record<string, unknown> = { type, epoch: value.epoch };
  for (const [field, kind] of Object.entries(shape)) {
    const v = value[field];
    if (!fits(kind, v)) return { ok: false, reason: `${type}: field ${field} is not a ${kind}` };
    out[field] = v;
  }
  // The shapes table above is the type's definition checked field by field.
  return { ok: true, msg: out as unknown as Message };
}
