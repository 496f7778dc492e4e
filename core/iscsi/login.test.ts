// Login negotiation: stage transitions, each key's result function, declarations and failures.
import { describe, expect, test } from "bun:test";
import { LoginStatus, Stage, defaultTargetLimits, encodeKeys, loginStep, newLoginState, parseKeys, type KeyValue, type LoginRequest } from "./login.ts";

const iqn = "iqn.2026-11.org.qstora:t";
const lookup = (name: string) => (name === iqn ? { iqn, alias: "disk" } : undefined);

function request(keys: KeyValue[], fields: Partial<LoginRequest> = {}): LoginRequest {
  return { transit: true, continued: false, currentStage: Stage.operational, nextStage: Stage.fullFeature, versionMin: 0, versionMax: 0, tsih: 0, keys, ...fields };
}

const reply = (step: ReturnType<typeof loginStep>): Map<string, string> => {
  if (!step.ok) throw new Error(`login failed: ${step.reason}`);
  return new Map(step.reply);
};

describe("loginStep()", () => {
  test("security then operational stage: AuthMethod=None, then full feature phase with declarations", () => {
    const state = newLoginState(defaultTargetLimits, 7);
    const first = loginStep(state, request([["InitiatorName", "iqn.x:i"], ["TargetName", iqn], ["AuthMethod", "CHAP,None"]], { currentStage: Stage.security, nextStage: Stage.operational }), lookup);
    const r1 = reply(first);
    expect(r1.get("AuthMethod")).toBe("None");
    expect(r1.get("TargetPortalGroupTag")).toBe("7");
    expect(r1.get("TargetAlias")).toBe("disk");
    expect(first.ok && first.transit && !first.fullFeature).toBe(true);
    const second = loginStep(state, request([["MaxRecvDataSegmentLength", "16384"], ["MaxBurstLength", "16776192"], ["FirstBurstLength", "262144"], ["MaxOutstandingR2T", "32"], ["ImmediateData", "Yes"], ["InitialR2T", "No"], ["DefaultTime2Wait", "0"], ["DefaultTime2Retain", "60"], ["ErrorRecoveryLevel", "2"], ["MaxConnections", "4"], ["DataPDUInOrder", "No"], ["HeaderDigest", "CRC32C,None"], ["DataDigest", "None"]]), lookup);
    const r2 = reply(second);
    expect(second.ok && second.fullFeature).toBe(true);
    expect(r2.get("MaxRecvDataSegmentLength")).toBe(String(defaultTargetLimits.recvDataSegmentBytes)); // ours, declared
    expect(r2.get("MaxBurstLength")).toBe(String(defaultTargetLimits.maxBurstBytes)); // min
    expect(r2.get("FirstBurstLength")).toBe(String(defaultTargetLimits.firstBurstBytes)); // min
    expect(r2.get("MaxOutstandingR2T")).toBe(String(defaultTargetLimits.maxOutstandingR2T));
    expect(r2.get("InitialR2T")).toBe("No"); // OR with our No
    expect(r2.get("ImmediateData")).toBe("Yes"); // AND with our Yes
    expect(r2.get("DefaultTime2Wait")).toBe("2"); // max
    expect(r2.get("DefaultTime2Retain")).toBe("20"); // min
    expect(r2.get("ErrorRecoveryLevel")).toBe("0");
    expect(r2.get("MaxConnections")).toBe("1");
    expect(r2.get("DataPDUInOrder")).toBe("Yes"); // OR with our Yes
    expect(r2.get("HeaderDigest")).toBe("CRC32C"); // the initiator's first choice we support
    expect(r2.get("DataDigest")).toBe("None");
    expect(state.params.sendDataSegmentBytes).toBe(16384);
    expect(state.params.headerDigest).toBe(true);
    expect(state.params.initialR2T).toBe(false);
  });

  test("a digest list without anything we accept is answered Reject", () => {
    const state = newLoginState({ ...defaultTargetLimits, digests: ["None"] }, 1);
    const r = reply(loginStep(state, request([["InitiatorName", "iqn.x:i"], ["TargetName", iqn], ["HeaderDigest", "CRC32C"]]), lookup));
    expect(r.get("HeaderDigest")).toBe("Reject");
    expect(state.params.headerDigest).toBe(false);
  });

  test("FirstBurstLength never exceeds MaxBurstLength", () => {
    const state = newLoginState(defaultTargetLimits, 1);
    reply(loginStep(state, request([["InitiatorName", "iqn.x:i"], ["TargetName", iqn], ["MaxBurstLength", "4096"], ["FirstBurstLength", "65536"]]), lookup));
    expect(state.params.maxBurstBytes).toBe(4096);
    expect(state.params.firstBurstBytes).toBe(4096);
  });

  test("a discovery session answers normal-session keys Irrelevant and needs no TargetName", () => {
    const state = newLoginState(defaultTargetLimits, 1);
    const r = reply(loginStep(state, request([["InitiatorName", "iqn.x:i"], ["SessionType", "Discovery"], ["MaxBurstLength", "4096"], ["InitialR2T", "Yes"], ["MaxRecvDataSegmentLength", "4096"]]), lookup));
    expect(r.get("MaxBurstLength")).toBe("Irrelevant");
    expect(r.get("InitialR2T")).toBe("Irrelevant");
    expect(r.has("TargetPortalGroupTag")).toBe(false);
    expect(state.params.sendDataSegmentBytes).toBe(4096);
  });

  test("unknown keys are NotUnderstood", () => {
    const state = newLoginState(defaultTargetLimits, 1);
    const r = reply(loginStep(state, request([["InitiatorName", "iqn.x:i"], ["TargetName", iqn], ["X-com.example.Foo", "1"], ["Bogus", "2"]]), lookup));
    expect(r.get("X-com.example.Foo")).toBe("NotUnderstood");
    expect(r.get("Bogus")).toBe("NotUnderstood");
  });

  const failures: Array<[string, KeyValue[], Partial<LoginRequest>, readonly [number, number]]> = [
    ["an unknown target", [["InitiatorName", "iqn.x:i"], ["TargetName", "iqn.2026-11.org.qstora:nope"]], {}, LoginStatus.notFound],
    ["no InitiatorName", [["TargetName", iqn]], {}, LoginStatus.missingParameter],
    ["no TargetName in a normal session", [["InitiatorName", "iqn.x:i"]], {}, LoginStatus.missingParameter],
    ["no common AuthMethod", [["InitiatorName", "iqn.x:i"], ["TargetName", iqn], ["AuthMethod", "CHAP"]], { currentStage: Stage.security, nextStage: Stage.operational }, LoginStatus.authenticationFailure],
    ["a MaxRecvDataSegmentLength below 512", [["InitiatorName", "iqn.x:i"], ["TargetName", iqn], ["MaxRecvDataSegmentLength", "100"]], {}, LoginStatus.initiatorError],
    ["a non-numeric MaxBurstLength", [["InitiatorName", "iqn.x:i"], ["TargetName", iqn], ["MaxBurstLength", "lots"]], {}, LoginStatus.initiatorError],
    ["a bad ImmediateData", [["InitiatorName", "iqn.x:i"], ["TargetName", iqn], ["ImmediateData", "Maybe"]], {}, LoginStatus.initiatorError],
    ["TargetPortalGroupTag from the initiator", [["InitiatorName", "iqn.x:i"], ["TargetName", iqn], ["TargetPortalGroupTag", "1"]], {}, LoginStatus.initiatorError],
    ["a backwards stage transition", [["InitiatorName", "iqn.x:i"], ["TargetName", iqn]], { currentStage: Stage.operational, nextStage: Stage.security }, LoginStatus.initiatorError],
    ["a version above 0", [["InitiatorName", "iqn.x:i"], ["TargetName", iqn]], { versionMin: 1, versionMax: 1 }, LoginStatus.unsupportedVersion],
    ["a second connection (TSIH set)", [["InitiatorName", "iqn.x:i"], ["TargetName", iqn]], { tsih: 5 }, LoginStatus.sessionDoesNotExist],
    ["an unknown session type", [["InitiatorName", "iqn.x:i"], ["SessionType", "Weird"]], {}, LoginStatus.sessionTypeNotSupported],
  ];
  for (const [what, keys, fields, status] of failures) {
    test(`fails the login for ${what}`, () => {
      const step = loginStep(newLoginState(defaultTargetLimits, 1), request(keys, fields), lookup);
      expect(step.ok).toBe(false);
      if (!step.ok) expect(step.status.join("/")).toBe(status.join("/"));
    });
  }

  test("a key sent twice fails the login", () => {
    const state = newLoginState(defaultTargetLimits, 1);
    reply(loginStep(state, request([["InitiatorName", "iqn.x:i"], ["TargetName", iqn], ["AuthMethod", "None"]], { currentStage: Stage.security, nextStage: Stage.operational }), lookup));
    const step = loginStep(state, request([["AuthMethod", "None"]]), lookup);
    expect(step.ok).toBe(false);
  });

  test("a step without transit stays in its stage", () => {
    const state = newLoginState(defaultTargetLimits, 1);
    const step = loginStep(state, request([["InitiatorName", "iqn.x:i"], ["TargetName", iqn]], { transit: false, currentStage: Stage.security, nextStage: 0 }), lookup);
    expect(step.ok && !step.transit && !step.fullFeature).toBe(true);
    expect(state.stage).toBe(Stage.security);
  });
});

describe("parseKeys()/encodeKeys()", () => {
  test("round-trip key=value pairs, values with = and empty values", () => {
    const pairs: KeyValue[] = [["A", "1"], ["TargetAddress", "127.0.0.1:3260,1"], ["B", "x=y"], ["SendTargets", ""]];
    expect(parseKeys(encodeKeys(pairs))).toEqual(pairs);
  });
  test("reject text that is not key=value", () => {
    expect(parseKeys(new TextEncoder().encode("novalue\0"))).toBeNull();
    expect(parseKeys(new TextEncoder().encode("=x\0"))).toBeNull();
  });
});
