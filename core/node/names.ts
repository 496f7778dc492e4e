// Validation of names operators type: iSCSI qualified names (RFC 3720 §3.2.6, RFC 3721) and
// LUN names. Pure.
import { QstoraError } from "../util/errors.ts";

const iqnBytesMax = 223; // RFC 3720 §3.2.6.1: an iSCSI name is at most 223 bytes
const label = "[a-z0-9](?:[a-z0-9-]*[a-z0-9])?";
const iqnPattern = new RegExp(`^iqn\\.\\d{4}-(0[1-9]|1[0-2])\\.${label}(?:\\.${label})*(?::[a-z0-9.:_-]+)?$`);
const euiPattern = /^eui\.[0-9a-f]{16}$/;
const naaPattern = /^naa\.(?:[0-9a-f]{16}|[0-9a-f]{32})$/;

/** Returns the name in canonical (lower case) form or throws INVALID_ARGUMENT. */
export function checkIscsiName(name: string, what = "target name"): string {
  const canonical = name.trim().toLowerCase();
  if (canonical.length > iqnBytesMax || !(iqnPattern.test(canonical) || euiPattern.test(canonical) || naaPattern.test(canonical))) {
    throw new QstoraError(
      "INVALID_ARGUMENT",
      `"${name}" is not a valid iSCSI ${what}`,
      "Use the form iqn.YYYY-MM.reversed.domain[:name], e.g. iqn.2026-11.com.example:storage.disk1.",
    );
  }
  return canonical;
}

export function checkLunName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw new QstoraError("INVALID_ARGUMENT", `"${name}" is not a valid LUN name`, "Use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.");
  }
  return name;
}

/** LUN numbers are 0..16383 (SAM-5 flat/peripheral addressing as REPORT LUNS encodes them). */
export const lunNumberMax = 16383;

export function checkLunNumber(text: string | number): number {
  const n = typeof text === "number" ? text : /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > lunNumberMax) {
    throw new QstoraError("INVALID_ARGUMENT", `LUN number "${text}" is not valid`, `Use a number from 0 to ${lunNumberMax}.`);
  }
  return n;
}
