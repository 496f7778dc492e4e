// The ping exchange: a node asks a peer who it is and measures the round trip. Used for
// `qstora status` (transport reachability and RTT) and by tests; it touches no socket itself.
import { frameFlags } from "./frame.ts";
import type { Handler, RequestSpec } from "./connection.ts";
import { controlFrame, decodePingRequest, decodePingResponse, errorFrame, messageType, type PingResponse } from "./messages.ts";

/** Answers pings with this node's id and name. */
export function pingHandler(self: { nodeId: string; name: string }): Handler {
  return (frame, { tagBytes }) => {
    const req = decodePingRequest(frame.payload);
    if (!req.ok) return errorFrame(frame.requestId, { code: "bad-message", message: req.reason }, tagBytes);
    return controlFrame({ type: messageType.ping, flags: frameFlags.response, requestId: frame.requestId }, { nodeId: self.nodeId, name: self.name, sentAtMs: req.value.sentAtMs }, tagBytes);
  };
}

/** A ping request from node `from`; the response's sentAtMs is this request's own clock reading. */
export function pingRequest(from: string, timeoutMs?: number): RequestSpec<PingResponse> {
  const sentAtMs = Date.now();
  return {
    build: (requestId, tagBytes) => controlFrame({ type: messageType.ping, flags: 0, requestId }, { from, sentAtMs }, tagBytes),
    decode: (frame) => decodePingResponse(frame.payload),
    responseType: messageType.ping,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  };
}
