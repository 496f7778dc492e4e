// CHAP in the login state machine (RFC 7143 §12.1.3): MD5 and SHA-256, one-way and mutual; a
// wrong response, a missing CHAP and a reflected challenge are refused with AUTHENTICATION FAILURE.
import { describe, expect, test } from "bun:test";
import { LoginStatus, Stage, chapResponse, decodeBinary, defaultTargetLimits, loginStep, newLoginState, type ChapSecrets, type KeyValue, type LoginRequest } from "./login.ts";

const iqn = "iqn.2026-11.org.qstora:t";
const secrets: ChapSecrets = { user: "alice", secret: "s3cret-secret", mutualUser: "target", mutualSecret: "mutual-secret1" };
const lookup = (name: string) => (name === iqn ? { iqn, chap: secrets } : undefined);
const seeded = () => {
  let n = 7;
  return (bytes: number) => Uint8Array.from({ length: bytes }, () => (n = (n * 73 + 11) & 0xff));
};
const security = (keys: KeyValue[], transit = true): LoginRequest => ({ transit, continued: false, currentStage: Stage.security, nextStage: Stage.operational, versionMin: 0, versionMax: 0, tsih: 0, keys });
const hex = (b: Uint8Array) => `0x${Buffer.from(b).toString("hex")}`;

function start(algorithms: string) {
  const state = newLoginState(defaultTargetLimits, 1, seeded());
  const first = loginStep(state, security([["InitiatorName", "iqn.x:i"], ["TargetName", iqn], ["AuthMethod", "CHAP,None"]]), lookup);
  if (!first.ok) throw new Error(first.reason);
  expect(new Map(first.reply).get("AuthMethod")).toBe("CHAP");
  expect(first.transit).toBe(false);
  const second = loginStep(state, security([["CHAP_A", algorithms]], false), lookup);
  if (!second.ok) throw new Error(second.reason);
  const r = new Map(second.reply);
  return { state, algorithm: Number(r.get("CHAP_A")), id: Number(r.get("CHAP_I")), challenge: decodeBinary(r.get("CHAP_C") ?? "") as Uint8Array };
}

describe("CHAP", () => {
  test("MD5 one-way: the right response passes the security stage, a wrong one fails", () => {
    const c = start("5");
    expect(c.algorithm).toBe(5);
    expect(c.challenge.length).toBe(16);
    const ok = loginStep(c.state, security([["CHAP_N", "alice"], ["CHAP_R", hex(chapResponse(5, c.id, "s3cret-secret", c.challenge))]]), lookup);
    expect(ok.ok && ok.transit).toBe(true);
    const bad = start("5");
    const r = loginStep(bad.state, security([["CHAP_N", "alice"], ["CHAP_R", hex(chapResponse(5, bad.id, "wrong-secret1", bad.challenge))]]), lookup);
    expect(r.ok ? "ok" : r.status).toEqual(LoginStatus.authenticationFailure);
  });

  test("SHA-256 is chosen when offered; mutual CHAP answers with the target's name and response", () => {
    const c = start("7,5");
    expect(c.algorithm).toBe(7);
    expect(c.challenge.length).toBe(32);
    const mine = Uint8Array.from({ length: 32 }, (_, i) => i);
    const step = loginStep(c.state, security([["CHAP_N", "alice"], ["CHAP_R", hex(chapResponse(7, c.id, "s3cret-secret", c.challenge))], ["CHAP_I", "9"], ["CHAP_C", hex(mine)]]), lookup);
    if (!step.ok) throw new Error(step.reason);
    const r = new Map(step.reply);
    expect(r.get("CHAP_N")).toBe("target");
    expect(decodeBinary(r.get("CHAP_R") ?? "")).toEqual(chapResponse(7, 9, "mutual-secret1", mine));
  });

  test("a reflected challenge, no CHAP at all, and skipping the security stage are refused", () => {
    const c = start("5");
    const reflected = loginStep(c.state, security([["CHAP_N", "alice"], ["CHAP_R", hex(chapResponse(5, c.id, "s3cret-secret", c.challenge))], ["CHAP_I", String(c.id)], ["CHAP_C", hex(c.challenge)]]), lookup);
    expect(reflected.ok ? "ok" : reflected.status).toEqual(LoginStatus.authenticationFailure);
    const none = loginStep(newLoginState(defaultTargetLimits, 1, seeded()), security([["InitiatorName", "iqn.x:i"], ["TargetName", iqn], ["AuthMethod", "None"]]), lookup);
    expect(none.ok ? "ok" : none.status).toEqual(LoginStatus.authenticationFailure);
    const skip = loginStep(newLoginState(defaultTargetLimits, 1, seeded()), { ...security([["InitiatorName", "iqn.x:i"], ["TargetName", iqn]]), currentStage: Stage.operational, nextStage: Stage.fullFeature }, lookup);
    expect(skip.ok ? "ok" : skip.status).toEqual(LoginStatus.authenticationFailure);
  });
});
