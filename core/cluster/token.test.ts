import { expect, test } from "bun:test";
import { judgeToken, newToken, parseDuration, parseToken } from "./token.ts";

const ca = "a".repeat(64);
const now = new Date("2026-11-23T00:00:00Z");

test("a new token parses back and is accepted by its record", () => {
  const { token, record } = newToken(ca, { now, ttlSeconds: 3600 });
  expect(token.startsWith(`QS1${ca}::`)).toBe(true);
  const parsed = parseToken(token);
  expect(parsed.id).toBe(record.id);
  expect(judgeToken(parsed, record, ca, now)).toEqual({ ok: true });
  expect(JSON.stringify(record)).not.toContain(parsed.secret);
});

test("judgeToken() refuses a wrong CA hash, an unknown id, a wrong secret and an expired token", () => {
  const { token, record } = newToken(ca, { now, ttlSeconds: 60 });
  const parsed = parseToken(token);
  expect(judgeToken(parsed, record, "b".repeat(64), now)).toEqual({ ok: false, reason: "wrong-ca" });
  expect(judgeToken(parsed, undefined, ca, now)).toEqual({ ok: false, reason: "unknown" });
  expect(judgeToken({ ...parsed, secret: "x".repeat(32) }, record, ca, now)).toEqual({ ok: false, reason: "wrong-secret" });
  expect(judgeToken(parsed, record, ca, new Date(now.getTime() + 61_000))).toEqual({ ok: false, reason: "expired" });
  expect(judgeToken(parseToken(newToken(ca, { now }).token), newToken(ca, { now }).record, ca, new Date(now.getTime() + 1e12)).ok).toBe(false);
});

test("parseToken() and parseDuration() reject malformed input with a clear error", () => {
  expect(() => parseToken("QS1abc::x.y")).toThrow(/not a qstora join token/);
  expect(parseDuration("24h")).toBe(86400);
  expect(parseDuration("never")).toBe(0);
  expect(() => parseDuration("soon")).toThrow(/not a duration/);
});
