// A peer in a process of its own, for tests that SIGKILL it mid-request: a TLS peer listener
// whose "write" handler never answers and whose ping answers. Reads its credentials and address
// from the environment; prints "ready <port>" once listening. Test use only.
import { silentLogger } from "../util/log.ts";
import type { Handler } from "./connection.ts";
import { messageType } from "./messages.ts";
import { startPeerServer, type PeerTransport } from "./peer.ts";
import { pingHandler } from "./ping.ts";

const env = (k: string): string => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const never: Handler = () => new Promise<Uint8Array>(() => undefined);
const server = startPeerServer({
  host: env("PEER_HOST"),
  port: Number(env("PEER_PORT")),
  tls: { caPem: env("PEER_CA"), certPem: env("PEER_CERT"), keyPem: env("PEER_KEY") },
  handlers: new Map([
    [messageType.ping, pingHandler({ nodeId: "fixture", name: "fixture" })],
    [messageType.write, never],
  ]),
  logger: silentLogger,
  transport: JSON.parse(env("PEER_TRANSPORT")) as PeerTransport,
});
process.stdout.write(`ready ${server.port}\n`);
