// Login and text key negotiation (RFC 7143 §6, §13). Pure: text in, text and settings out.
// Values the target offers are its own limits; results follow each key's rule (min, max, OR,
// AND, list choice). Unknown keys get "NotUnderstood"; a key the initiator may not send gets
// "Irrelevant" or fails the login.

export const targetLimits = {
  maxRecvDataSegmentLength: 262144, // what we accept in one PDU
  maxBurstLength: 1 << 20,
  firstBurstLength: 65536,
  maxOutstandingR2T: 8,
  defaultTime2Wait: 2,
  defaultTime2Retain: 20,
} as const;

export interface SessionParams {
  headerDigest: boolean;
  dataDigest: boolean;
  /** The initiator's MaxRecvDataSegmentLength: the most we may send in one PDU. */
  sendDataBytesMax: number;
  /** Ours: the most the initiator may send in one PDU. */
  recvDataBytesMax: number;
  maxBurstLength: number;
  firstBurstLength: number;
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

/** RFC 7143 §13: the defaults before negotiation. */
export function defaultParams(): SessionParams {
  return {
    headerDigest: false,
    dataDigest: false,
    sendDataBytesMax: 8192,
    recvDataBytesMax: 8192,
    maxBurstLength: 262144,
    firstBurstLength: 65536,
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

export function parseKeys(data: Uint8Array): Array<[string, string]> {
  const text = new TextDecoder().decode(data);
  const out: Array<[string, string]> = [];
  for (const item of text.split("\0")) {
    if (item === "") continue;
    const eq = item.indexOf("=");
    if (eq <= 0) out.push([item, ""]);
    else out.push([item.slice(0, eq), item.slice(eq + 1)]);
  }
  return out;
}

export function encodeKeys(pairs: Array<[string, string]>): Uint8Array {
  return new TextEncoder().encode(pairs.map(([k, v]) => `${k}=${v}\0`).join(""));
}

export interface NegotiationState {
  params: SessionParams;
  declared: Map<string, string>; // InitiatorName, SessionType, TargetName, ...
}

const num = (v: string): number | null => (/^\d+$/.test(v) ? Number(v) : null);

/**
 * Answers one batch of keys. Returns the response keys, or an error reason when the login must
 * fail (a value out of range, a key the stage does not allow).
 */
export function negotiate(state: NegotiationState, keys: Array<[string, string]>, stage: "security" | "operational", discovery: boolean): { reply: Array<[string, string]>; error?: string } {
  const reply: Array<[string, string]> = [];
  const p = state.params;
  for (const [key, value] of keys) {
    switch (key) {
      case "InitiatorName":
      case "InitiatorAlias":
      case "SessionType":
      case "TargetName":
        state.declared.set(key, value);
        break;
      case "AuthMethod": {
        const offered = value.split(",");
        if (!offered.includes("None")) return { reply, error: "only AuthMethod=None is configured" };
        reply.push([key, "None"]);
        break;
      }
      case "HeaderDigest":
      case "DataDigest": {
        const offered = value.split(",");
        const choice = offered.find((o) => o === "None" || o === "CRC32C");
        if (choice === undefined) reply.push([key, "Reject"]);
        else {
          reply.push([key, choice]);
          if (key === "HeaderDigest") p.headerDigest = choice === "CRC32C";
          else p.dataDigest = choice === "CRC32C";
        }
        break;
      }
      case "MaxRecvDataSegmentLength": {
        const n = num(value);
        if (n === null || n < 512 || n > 16777215) return { reply, error: `bad ${key}` };
        p.sendDataBytesMax = n; // declarative: the initiator's receive limit
        break;
      }
      case "MaxBurstLength":
      case "FirstBurstLength": {
        const n = num(value);
        if (n === null || n < 512 || n > 16777215) return { reply, error: `bad ${key}` };
        if (discovery) {
          reply.push([key, "Irrelevant"]);
          break;
        }
        const mine = key === "MaxBurstLength" ? targetLimits.maxBurstLength : targetLimits.firstBurstLength;
        const v = Math.min(n, mine);
        if (key === "MaxBurstLength") p.maxBurstLength = v;
        else p.firstBurstLength = v;
        reply.push([key, String(v)]);
        break;
      }
      case "MaxOutstandingR2T": {
        const n = num(value);
        if (n === null || n < 1 || n > 65535) return { reply, error: `bad ${key}` };
        p.maxOutstandingR2T = Math.min(n, targetLimits.maxOutstandingR2T);
        reply.push([key, discovery ? "Irrelevant" : String(p.maxOutstandingR2T)]);
        break;
      }
      case "ImmediateData":
      case "DataPDUInOrder":
      case "DataSequenceInOrder":
      case "IFMarker":
      case "OFMarker": {
        if (value !== "Yes" && value !== "No") return { reply, error: `bad ${key}` };
        // AND rule; we accept Yes for ImmediateData and insist on in-order delivery; markers off.
        const ours = key === "IFMarker" || key === "OFMarker" ? "No" : value;
        const result = value === "Yes" && ours === "Yes" ? "Yes" : "No";
        if (key === "ImmediateData") p.immediateData = result === "Yes";
        reply.push([key, discovery && key !== "IFMarker" && key !== "OFMarker" ? "Irrelevant" : key === "DataPDUInOrder" || key === "DataSequenceInOrder" ? "Yes" : result]);
        break;
      }
      case "InitialR2T": {
        if (value !== "Yes" && value !== "No") return { reply, error: `bad ${key}` };
        p.initialR2T = value === "Yes"; // OR rule with our "No"
        reply.push([key, discovery ? "Irrelevant" : value]);
        break;
      }
      case "DefaultTime2Wait":
      case "DefaultTime2Retain": {
        const n = num(value);
        if (n === null || n > 3600) return { reply, error: `bad ${key}` };
        const v = key === "DefaultTime2Wait" ? Math.max(n, targetLimits.defaultTime2Wait) : Math.min(n, targetLimits.defaultTime2Retain);
        if (key === "DefaultTime2Wait") p.defaultTime2Wait = v;
        else p.defaultTime2Retain = v;
        reply.push([key, String(v)]);
        break;
      }
      case "ErrorRecoveryLevel":
        p.errorRecoveryLevel = 0;
        reply.push([key, "0"]);
        break;
      case "MaxConnections":
        p.maxConnections = 1;
        reply.push([key, "1"]);
        break;
      case "TargetAlias":
      case "TargetAddress":
      case "TargetPortalGroupTag":
        return { reply, error: `the initiator may not send ${key}` };
      default:
        if (key.startsWith("X-") || key.startsWith("X#")) reply.push([key, "NotUnderstood"]);
        else reply.push([key, "NotUnderstood"]);
    }
  }
  if (stage === "operational" && !state.declared.has("InitiatorName")) return { reply, error: "missing InitiatorName" };
  return { reply };
}
