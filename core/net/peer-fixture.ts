// A peer in a process of its own, for tests that SIGKILL it mid-request and for the transport
// benchmark: a peer listener whose "write" handler does what PEER_MODE says ("never" answers,
// "ack"s with a write response, or "echo"es the data back in a read response) and whose ping
// answers. Reads its credentials, address and transport from the environment; prints
// "ready <port>" once listening. Test and benchmark use only.
import { silentLogger } from "../util/log.ts";
import type { Handler } from "./connection.ts";
import { dataStatus, decodeWriteRequest, messageType, readResponseFrame, writeResponseFrame } from "./messages.ts";
import { startPeerServer, type PeerTransport } from "./peer.ts";
import { pingHandler } from "./ping.ts";

const env = (k: string): string => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const never: Handler = () => new Promise<Uint8Array>(() => undefined);
const ack: Handler = (f, { tagBytes }) => {
  const w = decodeWriteRequest(f.payload);
  if (!w.ok) throw new Error(w.reason);
  return writeResponseFrame(f.requestId, { epoch: w.value.epoch, sequence: w.value.sequence, status: dataStatus.ok }, tagBytes);
};
const echo: Handler = (f, { tagBytes }) => {
  const w = decodeWriteRequest(f.payload);
  if (!w.ok) throw new Error(w.reason);
  return readResponseFrame(f.requestId, { epoch: w.value.epoch, status: dataStatus.ok, data: w.value.data }, tagBytes);
};
const mode = process.env["PEER_MODE"] ?? "never";
const server = startPeerServer({
  host: env("PEER_HOST"),
  port: Number(env("PEER_PORT")),
  tls: { caPem: env("PEER_CA"), certPem: env("PEER_CERT"), keyPem: env("PEER_KEY") },
  handlers: new Map([
    [messageType.ping, pingHandler({ nodeId: "fixture", name: "fixture" })],
    [messageType.write, mode === "ack" ? ack : mode === "echo" ? echo : never],
  ]),
  logger: silentLogger,
  transport: JSON.parse(env("PEER_TRANSPORT")) as PeerTransport,
});
process.stdout.write(`ready ${server.port}\n`);
