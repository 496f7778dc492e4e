// Join tokens (k3s's idea): `QS1<sha256 of the cluster CA certificate>::<id>.<secret>`. The hash
// lets a joining node check the CA it is shown before it sends anything secret; the id names the
// token's record in the metadata store (for list and revoke); the secret is kept there only as
// its SHA-256. Pure: formats, parses and judges; the store and the clock are the caller's.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { QstoraError } from "../util/errors.ts";

export const tokenPrefix = "QS1";
const tokenPattern = /^QS1([0-9a-f]{64})::([a-z0-9]{6})\.([A-Za-z0-9_-]{32})$/;

export interface TokenRecord {
  id: string;
  secretSha256: string;
  createdAt: string;
  /** ISO time after which the token is refused; absent: it never expires. */
  expiresAt?: string;
  description?: string;
}

export interface ParsedToken {
  caFingerprint: string;
  id: string;
  secret: string;
}

const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");

export function newToken(caFingerprint: string, options: { now: Date; ttlSeconds?: number; description?: string }): { token: string; record: TokenRecord } {
  const id = randomBytes(6).toString("hex").slice(0, 6);
  const secret = randomBytes(24).toString("base64url");
  const record: TokenRecord = { id, secretSha256: sha256(secret), createdAt: options.now.toISOString() };
  if (options.ttlSeconds !== undefined && options.ttlSeconds > 0) record.expiresAt = new Date(options.now.getTime() + options.ttlSeconds * 1000).toISOString();
  if (options.description !== undefined) record.description = options.description;
  return { token: `${tokenPrefix}${caFingerprint}::${id}.${secret}`, record };
}

export function parseToken(text: string): ParsedToken {
  const m = tokenPattern.exec(text.trim());
  if (m === null) throw new QstoraError("INVALID_ARGUMENT", "that is not a qstora join token", "Tokens look like QS1<64 hex digits>::<id>.<secret>; make one with `qstora token create` on a cluster node.");
  return { caFingerprint: m[1] as string, id: m[2] as string, secret: m[3] as string };
}

export type TokenVerdict = { ok: true } | { ok: false; reason: "unknown" | "expired" | "wrong-secret" | "wrong-ca" };

/** Judges a presented token against its record and the cluster's CA fingerprint. */
export function judgeToken(token: ParsedToken, record: TokenRecord | undefined, caFingerprint: string, now: Date): TokenVerdict {
  if (token.caFingerprint !== caFingerprint) return { ok: false, reason: "wrong-ca" };
  if (record === undefined) return { ok: false, reason: "unknown" };
  const want = Buffer.from(record.secretSha256, "hex");
  const got = Buffer.from(sha256(token.secret), "hex");
  if (want.length !== got.length || !timingSafeEqual(want, got)) return { ok: false, reason: "wrong-secret" };
  if (record.expiresAt !== undefined && Date.parse(record.expiresAt) <= now.getTime()) return { ok: false, reason: "expired" };
  return { ok: true };
}

const durationUnits: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** "90s", "30m", "24h", "7d"; "0" or "never" for no expiry (returns 0). */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (t === "0" || t === "never") return 0;
  const m = /^(\d+)([smhd])$/.exec(t);
  if (m === null) throw new QstoraError("INVALID_ARGUMENT", `"${text}" is not a duration`, 'Write a number and a unit: 90s, 30m, 24h or 7d ("never" for no expiry).');
  return Number(m[1]) * (durationUnits[m[2] as string] as number);
}
