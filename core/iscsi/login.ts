// Login and text-key negotiation (RFC 7143 §6, §13): the login stage machine and every key's
// result function (declarative, min, max, AND, OR, list choice). Pure: keys and stage fields in,
// the reply and the negotiated parameters out. It never touches a socket, the clock or a
// registry it was not handed, and never throws on initiator input (bad input is a login failure).
import { assert } from "../util/assert.ts";

/** What this target offers or accepts at most; the daemon may lower them. */
export interface TargetLimits {
  /** Our MaxRecvDataSegmentLength: the most the initiator may put in one PDU. */
  readonly recvDataSegmentBytes: number;
  readonly maxBurstBytes: number;
  readonly firstBurstBytes: number;
  readonly maxOutstandingR2T: number;
  readonly defaultTime2Wait: number;
  readonly defaultTime2Retain: number;
  /** Digests we accept, in our order of preference ("None", "CRC32C"). */
  readonly digests: readonly Digest[];
}

export type Digest = "None" | "CRC32C";

export const defaultTargetLimits: TargetLimits = {
  recvDataSegmentBytes: 262144,
  maxBurstBytes: 1 << 20,
  firstBurstBytes: 65536,
  maxOutstandingR2T: 8,
  defaultTime2Wait: 2,
  defaultTime2Retain: 20,
  digests: ["None", "CRC32C"],
};

/** RFC 7143 §13.12: MaxRecvDataSegmentLength (and the burst lengths) lie in 512..2^24-1. */
const segmentBytesMin = 512;
const segmentBytesMax = 16777215;
/** RFC 7143 §13.13, §13.14: DefaultTime2Wait/Retain lie in 0..3600. */
const time2Max = 3600;
/** RFC 7143 §13.17: MaxOutstandingR2T and §13.2 MaxConnections lie in 1..65535. */
const count16Max = 65535;
/** The most text a login or text request may carry in total (across Continue PDUs). */
export const loginTextBytesMax = 65536;
/** RFC 7143 §6.2: the most keys one negotiation may carry (bounds the work per login). */
const keysMax = 256;

export interface SessionParams {
  headerDigest: boolean;
  dataDigest: boolean;
  /** The initiator's MaxRecvDataSegmentLength: the most we may send in one PDU. */
  sendDataSegmentBytes: number;
  /** Ours: the most the initiator may send in one PDU (declared at the operational stage). */
  recvDataSegmentBytes: number;
  maxBurstBytes: number;
  firstBurstBytes: number;
  immediateData: boolean;
  initialR2T: boolean;
  maxOutstandingR2T: number;
  dataPduInOrder: boolean;
  dataSequenceInOrder: boolean;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  errorRecoveryLevel: number;
  maxConnections: number;
}

/** RFC 7143 §13: the values that hold when a key is not negotiated. */
export function defaultSessionParams(): SessionParams {
  return {
    headerDigest: false,
    dataDigest: false,
    sendDataSegmentBytes: 8192,
    recvDataSegmentBytes: 8192,
    maxBurstBytes: 262144,
    firstBurstBytes: 65536,
    immediateData: true,
    initialR2T: true,
    maxOutstandingR2T: 1,
    dataPduInOrder: true,
    dataSequenceInOrder: true,
    defaultTime2Wait: 2,
    defaultTime2Retain: 20,
    errorRecoveryLevel: 0,
    maxConnections: 1,
  };
}

export type KeyValue = readonly [string, string];

/** Parses "key=value\0" pairs (RFC 7143 §6.1). Returns null for text that is not key=value. */
export function parseKeys(data: Uint8Array): KeyValue[] | null {
  const text = new TextDecoder().decode(data);
  const out: KeyValue[] = [];
  for (const item of text.split("\0")) {
    if (item === "") continue;
    const eq = item.indexOf("=");
    if (eq <= 0) return null;
    if (out.length >= keysMax) return null;
    out.push([item.slice(0, eq), item.slice(eq + 1)]);
  }
  return out;
}

export function encodeKeys(pairs: readonly KeyValue[]): Uint8Array {
  return new TextEncoder().encode(pairs.map(([k, v]) => `${k}=${v}\0`).join(""));
}

/** Login stages (RFC 7143 §11.12.3: CSG/NSG). */
export const Stage = { security: 0, operational: 1, fullFeature: 3 } as const;

/** Login response Status-Class/Status-Detail (RFC 7143 §11.13.5). */
export const LoginStatus = {
  initiatorError: [0x02, 0x00],
  authenticationFailure: [0x02, 0x01],
  notFound: [0x02, 0x03],
  targetRemoved: [0x02, 0x04],
  unsupportedVersion: [0x02, 0x05],
  missingParameter: [0x02, 0x07],
  cannotIncludeInSession: [0x02, 0x08],
  sessionDoesNotExist: [0x02, 0x0a],
  sessionTypeNotSupported: [0x02, 0x09],
  invalidDuringLogin: [0x02, 0x0b],
  targetError: [0x03, 0x00],
  outOfResources: [0x03, 0x02],
} as const satisfies Record<string, readonly [number, number]>;
export type LoginFailure = (typeof LoginStatus)[keyof typeof LoginStatus];

/**
 * CHAP secrets of a target (RFC 7143 §12.1.3), handed in by the daemon's registry. With them set
 * the target requires CHAP; `mutual*` lets an initiator ask the target to authenticate itself.
 */
export interface ChapSecrets {
  readonly user: string;
  readonly secret: string;
  readonly mutualUser?: string;
  readonly mutualSecret?: string;
}

export interface LoginTarget {
  readonly iqn: string;
  readonly alias?: string;
  readonly chap?: ChapSecrets;
}

/** CHAP_A values (RFC 1994 / RFC 7143 §12.1.3 MD5 = 5; SHA-256 = 7, registered with IANA for iSCSI). */
const ChapAlgorithm = { md5: 5, sha256: 7 } as const;
/** Challenge bytes we send: at least the digest length (RFC 7143 §12.1.3 recommends so). */
const chapChallengeBytes = { [ChapAlgorithm.md5]: 16, [ChapAlgorithm.sha256]: 32 } as const;
/** The most bytes a CHAP_R or CHAP_C may decode to (bounds the work of a hostile initiator). */
const chapValueBytesMax = 1024;

interface ChapExchange {
  phase: "none" | "offered" | "challenged" | "done";
  algorithm: number;
  id: number;
  challenge: Uint8Array;
}

/** Per-connection login state, kept across Login Request PDUs. */
export interface LoginState {
  readonly limits: TargetLimits;
  readonly portalGroupTag: number;
  params: SessionParams;
  /** Stage the connection is in (its current stage, CSG). */
  stage: number;
  sessionType: "Discovery" | "Normal" | undefined;
  initiatorName: string | undefined;
  initiatorAlias: string | undefined;
  target: LoginTarget | undefined;
  /** Keys the initiator has sent (RFC 7143 §6.2: a key is negotiated once per login). */
  readonly seen: Set<string>;
  /** Our declarations already sent (MaxRecvDataSegmentLength, TargetPortalGroupTag...). */
  readonly declared: Set<string>;
  /** The CHAP exchange, when the target requires it. */
  chap: ChapExchange;
  /** Randomness for CHAP identifiers and challenges (a seeded source in tests). */
  readonly random: (bytes: number) => Uint8Array;
}

const systemRandom = (bytes: number): Uint8Array => crypto.getRandomValues(new Uint8Array(bytes));

export function newLoginState(limits: TargetLimits, portalGroupTag: number, random: (bytes: number) => Uint8Array = systemRandom): LoginState {
  return {
    limits,
    portalGroupTag,
    params: defaultSessionParams(),
    stage: Stage.security,
    sessionType: undefined,
    initiatorName: undefined,
    initiatorAlias: undefined,
    target: undefined,
    seen: new Set(),
    declared: new Set(),
    chap: { phase: "none", algorithm: 0, id: 0, challenge: new Uint8Array(0) },
    random,
  };
}

/** RFC 7143 §6.1: binary values are hex (0x...) or base64 (0b...). Null when malformed or too long. */
export function decodeBinary(value: string): Uint8Array | null {
  if (/^0x[0-9a-f]+$/i.test(value)) {
    let hex = value.slice(2);
    if (hex.length % 2 === 1) hex = `0${hex}`;
    if (hex.length / 2 > chapValueBytesMax) return null;
    return Uint8Array.from(hex.match(/../g) as string[], (h) => Number.parseInt(h, 16));
  }
  if (/^0b[A-Za-z0-9+/]+=*$/.test(value)) {
    if ((value.length - 2) * 0.75 > chapValueBytesMax) return null;
    return new Uint8Array(Buffer.from(value.slice(2), "base64"));
  }
  return null;
}

const hex = (b: Uint8Array): string => `0x${Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")}`;

/** The CHAP response: H(identifier || secret || challenge) (RFC 1994 §4.1). */
export function chapResponse(algorithm: number, id: number, secret: string, challenge: Uint8Array): Uint8Array {
  const h = new Bun.CryptoHasher(algorithm === ChapAlgorithm.sha256 ? "sha256" : "md5");
  h.update(new Uint8Array([id & 0xff]));
  h.update(new TextEncoder().encode(secret));
  h.update(challenge);
  return new Uint8Array(h.digest());
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

type ChapOutcome = { readonly reply: KeyValue[] } | { readonly failure: LoginFailure; readonly reason: string };

/** The CHAP keys of one Login Request (RFC 7143 §12.1.3), for a target that requires CHAP. */
function chapStep(state: LoginState, secrets: ChapSecrets, keys: ReadonlyMap<string, string>): ChapOutcome {
  const c = state.chap;
  const authFail = (reason: string): ChapOutcome => ({ failure: LoginStatus.authenticationFailure, reason });
  if (c.phase === "offered") {
    const offered = keys.get("CHAP_A");
    if (offered === undefined) return authFail("CHAP selected but no CHAP_A sent");
    const algorithms = offered.split(",").map((v) => Number(v));
    const algorithm = algorithms.includes(ChapAlgorithm.sha256) ? ChapAlgorithm.sha256 : algorithms.includes(ChapAlgorithm.md5) ? ChapAlgorithm.md5 : 0;
    if (algorithm === 0) return authFail(`no CHAP algorithm in common (offered ${offered})`);
    c.algorithm = algorithm;
    c.id = (state.random(1)[0] as number) & 0xff;
    c.challenge = state.random(chapChallengeBytes[algorithm]);
    c.phase = "challenged";
    return { reply: [["CHAP_A", String(algorithm)], ["CHAP_I", String(c.id)], ["CHAP_C", hex(c.challenge)]] };
  }
  if (c.phase === "challenged") {
    const name = keys.get("CHAP_N");
    const response = decodeBinary(keys.get("CHAP_R") ?? "");
    if (name === undefined || response === null) return authFail("CHAP_N and CHAP_R expected");
    const expected = chapResponse(c.algorithm, c.id, secrets.secret, c.challenge);
    if (name !== secrets.user || !sameBytes(response, expected)) return authFail(`CHAP authentication failed for user ${name}`);
    const reply: KeyValue[] = [];
    const mutualId = keys.get("CHAP_I");
    const mutualChallenge = keys.get("CHAP_C");
    if (mutualId !== undefined || mutualChallenge !== undefined) {
      if (secrets.mutualUser === undefined || secrets.mutualSecret === undefined) return authFail("mutual CHAP asked for, but the target has no mutual secret");
      const id = number(mutualId ?? "");
      const challenge = decodeBinary(mutualChallenge ?? "");
      if (id === null || id > 0xff || challenge === null || challenge.length === 0) return authFail("bad CHAP_I or CHAP_C for mutual CHAP");
      // A reflected challenge would let an attacker use us to answer our own challenge (RFC 7143 §12.1.3).
      if (sameBytes(challenge, c.challenge)) return authFail("the initiator reflected the target's CHAP challenge");
      reply.push(["CHAP_N", secrets.mutualUser], ["CHAP_R", hex(chapResponse(c.algorithm, id, secrets.mutualSecret, challenge))]);
    }
    c.phase = "done";
    return { reply };
  }
  return { reply: [] };
}

export interface LoginRequest {
  readonly transit: boolean;
  readonly continued: boolean;
  readonly currentStage: number;
  readonly nextStage: number;
  readonly versionMin: number;
  readonly versionMax: number;
  readonly tsih: number;
  readonly keys: readonly KeyValue[];
}

export type LoginStep =
  | { readonly ok: true; readonly transit: boolean; readonly currentStage: number; readonly nextStage: number; readonly reply: KeyValue[]; readonly fullFeature: boolean }
  | { readonly ok: false; readonly status: LoginFailure; readonly reason: string };

const fail = (status: LoginFailure, reason: string): LoginStep => ({ ok: false, status, reason });
const number = (v: string): number | null => (/^(0|[1-9]\d{0,9})$/.test(v) ? Number(v) : null);
const yesNo = (v: string): boolean | null => (v === "Yes" ? true : v === "No" ? false : null);

/** Keys that are "Irrelevant" in a discovery session (RFC 7143 §13: only MaxRecvDataSegmentLength, digests, time keys and ERL apply). */
const normalSessionOnly = new Set(["MaxBurstLength", "FirstBurstLength", "MaxOutstandingR2T", "ImmediateData", "InitialR2T", "DataPDUInOrder", "DataSequenceInOrder", "MaxConnections"]);

/**
 * Answers one key. Returns the reply value (undefined for declarative keys that need none), or
 * a failure. Mutates `state.params` with the negotiated result.
 */
function negotiateKey(state: LoginState, key: string, value: string): { reply?: string } | { failure: LoginFailure; reason: string } {
  const p = state.params;
  const limits = state.limits;
  const discovery = state.sessionType === "Discovery";
  if (discovery && normalSessionOnly.has(key)) return { reply: "Irrelevant" };
  const bad = { failure: LoginStatus.initiatorError, reason: `bad value for ${key}: ${value}` };
  switch (key) {
    case "InitiatorName":
      if (value === "") return bad;
      state.initiatorName = value;
      return {};
    case "InitiatorAlias":
      state.initiatorAlias = value;
      return {};
    case "SessionType":
      if (value !== "Discovery" && value !== "Normal") return { failure: LoginStatus.sessionTypeNotSupported, reason: `session type ${value} not supported` };
      state.sessionType = value;
      return {};
    case "TargetName":
      // Resolved by `loginStep`, which has the registry.
      return {};
    case "AuthMethod": {
      if (state.stage !== Stage.security) return { failure: LoginStatus.initiatorError, reason: "AuthMethod outside the security stage" };
      if (state.target?.chap !== undefined) {
        if (!value.split(",").includes("CHAP")) return { failure: LoginStatus.authenticationFailure, reason: "this target requires CHAP" };
        if (state.chap.phase === "none") state.chap.phase = "offered";
        return { reply: "CHAP" };
      }
      if (!value.split(",").includes("None")) return { failure: LoginStatus.authenticationFailure, reason: "no common AuthMethod (this target offers None)" };
      return { reply: "None" };
    }
    case "HeaderDigest":
    case "DataDigest": {
      const choice = value.split(",").find((d): d is Digest => (d === "None" || d === "CRC32C") && limits.digests.includes(d));
      if (choice === undefined) return { reply: "Reject" };
      if (key === "HeaderDigest") p.headerDigest = choice === "CRC32C";
      else p.dataDigest = choice === "CRC32C";
      return { reply: choice };
    }
    case "MaxRecvDataSegmentLength": {
      const n = number(value);
      if (n === null || n < segmentBytesMin || n > segmentBytesMax) return bad;
      p.sendDataSegmentBytes = n; // declarative: the initiator's receive limit
      return {};
    }
    case "MaxBurstLength":
    case "FirstBurstLength": {
      const n = number(value);
      if (n === null || n < segmentBytesMin || n > segmentBytesMax) return bad;
      if (key === "MaxBurstLength") p.maxBurstBytes = Math.min(n, limits.maxBurstBytes);
      else p.firstBurstBytes = Math.min(n, limits.firstBurstBytes);
      return { reply: String(key === "MaxBurstLength" ? p.maxBurstBytes : p.firstBurstBytes) };
    }
    case "MaxOutstandingR2T": {
      const n = number(value);
      if (n === null || n < 1 || n > count16Max) return bad;
      p.maxOutstandingR2T = Math.min(n, limits.maxOutstandingR2T);
      return { reply: String(p.maxOutstandingR2T) };
    }
    case "MaxConnections": {
      const n = number(value);
      if (n === null || n < 1 || n > count16Max) return bad;
      p.maxConnections = 1; // min(n, 1): one connection per session
      return { reply: "1" };
    }
    case "ImmediateData": {
      const v = yesNo(value);
      if (v === null) return bad;
      p.immediateData = v; // AND with our Yes
      return { reply: v ? "Yes" : "No" };
    }
    case "InitialR2T": {
      const v = yesNo(value);
      if (v === null) return bad;
      p.initialR2T = v; // OR with our No
      return { reply: v ? "Yes" : "No" };
    }
    case "DataPDUInOrder":
    case "DataSequenceInOrder": {
      // OR with our Yes: the result is Yes; we rely on in-order Data-Out.
      if (yesNo(value) === null) return bad;
      return { reply: "Yes" };
    }
    case "DefaultTime2Wait":
    case "DefaultTime2Retain": {
      const n = number(value);
      if (n === null || n > time2Max) return bad;
      if (key === "DefaultTime2Wait") p.defaultTime2Wait = Math.max(n, limits.defaultTime2Wait);
      else p.defaultTime2Retain = Math.min(n, limits.defaultTime2Retain);
      return { reply: String(key === "DefaultTime2Wait" ? p.defaultTime2Wait : p.defaultTime2Retain) };
    }
    case "ErrorRecoveryLevel": {
      const n = number(value);
      if (n === null || n > 2) return bad;
      p.errorRecoveryLevel = 0; // min(n, 0)
      return { reply: "0" };
    }
    case "IFMarker":
    case "OFMarker": {
      // RFC 3720 markers (gone from RFC 7143): AND with our No.
      if (yesNo(value) === null) return bad;
      return { reply: "No" };
    }
    case "IFMarkInt":
    case "OFMarkInt":
      return { reply: "Irrelevant" };
    case "TargetAlias":
    case "TargetAddress":
    case "TargetPortalGroupTag":
      return { failure: LoginStatus.initiatorError, reason: `the initiator may not send ${key}` };
    default:
      return { reply: "NotUnderstood" };
  }
}

/**
 * One Login Request's worth of negotiation: checks the stage transition, answers the keys,
 * resolves the target, and says whether the connection enters full feature phase.
 */
export function loginStep(state: LoginState, request: LoginRequest, lookupTarget: (iqn: string) => LoginTarget | undefined): LoginStep {
  assert(state.stage !== Stage.fullFeature, "login after full feature phase");
  if (request.versionMin > 0) return fail(LoginStatus.unsupportedVersion, `version ${request.versionMin} not supported (this target speaks version 0)`);
  if (request.continued) return fail(LoginStatus.initiatorError, "login text split over several PDUs is not supported");
  if (request.currentStage !== state.stage && !(state.stage === Stage.security && request.currentStage === Stage.operational)) {
    return fail(LoginStatus.initiatorError, `bad current stage ${request.currentStage}`);
  }
  if (request.currentStage === 2 || request.currentStage === Stage.fullFeature) return fail(LoginStatus.initiatorError, `bad current stage ${request.currentStage}`);
  if (request.transit && (request.nextStage <= request.currentStage || request.nextStage === 2)) return fail(LoginStatus.initiatorError, `bad stage transition ${request.currentStage}->${request.nextStage}`);
  if (request.tsih !== 0) return fail(LoginStatus.sessionDoesNotExist, "adding a connection to a session is not supported (MaxConnections=1)");
  state.stage = request.currentStage;

  // Declarations first: they decide what the other keys mean.
  for (const [key, value] of request.keys) {
    if (key === "SessionType" || key === "InitiatorName" || key === "TargetName") {
      const r = negotiateKey(state, key, value);
      if ("failure" in r) return fail(r.failure, r.reason);
    }
  }
  // The target (and so whether CHAP is required) is known before AuthMethod is answered.
  if (state.sessionType !== "Discovery" && state.target === undefined) {
    const name = request.keys.find(([k]) => k === "TargetName")?.[1];
    if (name !== undefined && name !== "") state.target = lookupTarget(name.toLowerCase());
  }
  const chapRequired = state.sessionType !== "Discovery" && state.target?.chap !== undefined;
  const reply: KeyValue[] = [];
  const chapKeys = new Map<string, string>();
  for (const [key, value] of request.keys) {
    if (state.seen.has(key) && key !== "SessionType" && key !== "InitiatorName" && key !== "TargetName") return fail(LoginStatus.initiatorError, `key ${key} sent twice`);
    state.seen.add(key);
    if (key === "SessionType" || key === "InitiatorName" || key === "TargetName") continue;
    if (key.startsWith("CHAP_")) {
      if (!chapRequired || request.currentStage !== Stage.security) return fail(LoginStatus.initiatorError, `${key} without CHAP negotiated`);
      chapKeys.set(key, value);
      continue;
    }
    const r = negotiateKey(state, key, value);
    if ("failure" in r) return fail(r.failure, r.reason);
    if (r.reply !== undefined) reply.push([key, r.reply]);
  }
  if (state.initiatorName === undefined) return fail(LoginStatus.missingParameter, "the initiator sent no InitiatorName");
  state.sessionType ??= "Normal";
  if (state.sessionType === "Normal" && state.target === undefined) {
    const name = request.keys.find(([k]) => k === "TargetName")?.[1];
    if (name === undefined || name === "") return fail(LoginStatus.missingParameter, "a normal session needs a TargetName");
    const target = lookupTarget(name.toLowerCase());
    if (target === undefined) return fail(LoginStatus.notFound, `no target named ${name}`);
    state.target = target;
  }
  let authPending = false;
  if (chapRequired) {
    const secrets = state.target?.chap as ChapSecrets;
    if (request.currentStage !== Stage.security && state.chap.phase !== "done") return fail(LoginStatus.authenticationFailure, "this target requires CHAP");
    if (state.chap.phase === "none" && request.currentStage === Stage.security) return fail(LoginStatus.authenticationFailure, "this target requires CHAP (no AuthMethod offered)");
    const before = state.chap.phase;
    if (chapKeys.size > 0 || before === "challenged") {
      const r = chapStep(state, secrets, chapKeys);
      if ("failure" in r) return fail(r.failure, r.reason);
      reply.push(...r.reply);
    }
    authPending = state.chap.phase !== "done";
  }
  // RFC 7143 §13.9: the target sends TargetPortalGroupTag in its first response of a normal session.
  if (state.sessionType === "Normal" && !state.declared.has("TargetPortalGroupTag")) {
    state.declared.add("TargetPortalGroupTag");
    reply.push(["TargetPortalGroupTag", String(state.portalGroupTag)]);
    if (state.target?.alias !== undefined) reply.push(["TargetAlias", state.target.alias]);
  }
  // Our MaxRecvDataSegmentLength is declared once we are negotiating operational keys.
  const leavingSecurityForFfp = request.transit && request.nextStage === Stage.fullFeature;
  if ((request.currentStage === Stage.operational || leavingSecurityForFfp) && !state.declared.has("MaxRecvDataSegmentLength")) {
    state.declared.add("MaxRecvDataSegmentLength");
    reply.push(["MaxRecvDataSegmentLength", String(state.limits.recvDataSegmentBytes)]);
    state.params.recvDataSegmentBytes = state.limits.recvDataSegmentBytes;
  }
  // RFC 7143 §13.14: FirstBurstLength must not exceed MaxBurstLength.
  if (state.params.firstBurstBytes > state.params.maxBurstBytes) state.params.firstBurstBytes = state.params.maxBurstBytes;

  // Until CHAP completes the target answers with T=0: the initiator stays in the security stage.
  if (!request.transit || authPending) return { ok: true, transit: false, currentStage: request.currentStage, nextStage: 0, reply, fullFeature: false };
  state.stage = request.nextStage;
  return { ok: true, transit: true, currentStage: request.currentStage, nextStage: request.nextStage, reply, fullFeature: request.nextStage === Stage.fullFeature };
}
