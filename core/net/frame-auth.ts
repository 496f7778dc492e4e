// Authenticated frames over plain TCP: the hello exchange that proves each end is a node of the
// cluster, the per-connection keys it derives, and the tag that seals every frame after it.
// Pure apart from node:crypto: no sockets, no clock (validity times come in as arguments).
//
// Why not TLS: see docs/ARCHITECTURE.md ("Node-to-node transport"); in short, Bun 1.3's TLS
// drops connections that carry bulk data both ways at once and does not itself refuse a bad
// peer certificate, and an unencrypted MAC costs less per MiB.
//
// The exchange, one frame each way (type `hello`, CBOR, no tag):
//   client -> server  { cert: node.pem, nonce: 32 random bytes, mac }
//   server -> client  { cert: node.pem, nonce: 32 random bytes, mac }
// Each end checks the other's certificate against the cluster CA (peer.ts's
// judgePeerCertificate), then both compute
//   shared = ECDH(own node key, peer certificate's public key)           (P-256, static-static)
//   keys   = HKDF-SHA256(shared, salt = clientNonce ‖ serverNonce,
//                        info = "qstora-net v1 " ‖ mac ‖ SHA-256(clientCert) ‖ SHA-256(serverCert), 64)
// and use the first 32 bytes for client-to-server frames, the last 32 for server-to-client.
// Only the holder of a certificate's private key can compute the keys, so the first frame
// that verifies proves the peer's identity; fresh nonces make fresh keys, so frames can't be
// replayed into another connection; the sequence number in every tag stops replay, loss and
// reordering within one. Frames are authenticated, not encrypted: the cluster network is
// trusted for confidentiality (the data is the initiators' anyway, iSCSI carries it in clear).
import { createCipheriv, createHash, createHmac, createPrivateKey, diffieHellman, hkdfSync, X509Certificate, type KeyObject } from "node:crypto";
import { assert } from "../util/assert.ts";
import type { FrameAuth } from "./connection.ts";
import type { Frame } from "./frame.ts";
import { decodeCbor, type Decoded } from "./messages.ts";

/** The MACs a connection may use; the client proposes, the server must agree. */
export const macAlgorithms = ["gmac-aes256", "hmac-sha256"] as const;
export type MacAlgorithm = (typeof macAlgorithms)[number];
/** What nodes use: GMAC runs on AES-NI and carry-less multiply, ≈9× HMAC-SHA-256 without SHA-NI (PERFORMANCE.md). */
export const macAlgorithmDefault: MacAlgorithm = "gmac-aes256";

export const helloNonceBytes = 32;
export const frameTagBytes = 16;
/** A hello carries a certificate (≈600 bytes) and a nonce; anything far larger is not one. */
export const helloPayloadBytesMax = 16 << 10;

export interface Hello {
  cert: string;
  nonce: Uint8Array;
  mac: MacAlgorithm;
}

export function decodeHello(payload: Uint8Array): Decoded<Hello> {
  const d = decodeCbor(payload);
  if (!d.ok) return d;
  const { cert, nonce, mac } = d.value;
  if (typeof cert !== "string" || cert.length > helloPayloadBytesMax) return { ok: false, reason: "hello without a certificate" };
  if (!(nonce instanceof Uint8Array) || nonce.byteLength !== helloNonceBytes) return { ok: false, reason: `hello nonce is not ${helloNonceBytes} bytes` };
  if (typeof mac !== "string" || !(macAlgorithms as readonly string[]).includes(mac)) return { ok: false, reason: `hello proposes an unknown MAC ${String(mac)}` };
  return { ok: true, value: { cert, nonce, mac: mac as MacAlgorithm } };
}

export interface SessionKeys {
  clientToServer: Uint8Array;
  serverToClient: Uint8Array;
}

/** The two direction keys of one connection (see the header). Same inputs, same keys on both ends. */
export function deriveSessionKeys(options: { ownKey: KeyObject | string; peerCert: X509Certificate; client: Hello; server: Hello }): SessionKeys {
  const { client, server } = options;
  assert(client.mac === server.mac, "both hellos name the same MAC");
  assert(client.nonce.byteLength === helloNonceBytes);
  assert(server.nonce.byteLength === helloNonceBytes);
  const privateKey = typeof options.ownKey === "string" ? createPrivateKey(options.ownKey) : options.ownKey;
  const shared = diffieHellman({ privateKey, publicKey: options.peerCert.publicKey });
  const salt = Buffer.concat([client.nonce, server.nonce]);
  const certHash = (pem: string): Buffer => createHash("sha256").update(new X509Certificate(pem).raw).digest();
  const info = Buffer.concat([Buffer.from(`qstora-net v1 ${client.mac} `), certHash(client.cert), certHash(server.cert)]);
  const okm = new Uint8Array(hkdfSync("sha256", shared, salt, info, 64));
  return { clientToServer: okm.slice(0, 32), serverToClient: okm.slice(32, 64) };
}

/** GCM's 96-bit nonce from a frame counter: 4 zero bytes, then the counter (keys differ per direction). */
function counterNonce(sequence: number): Buffer {
  assert(Number.isSafeInteger(sequence) && sequence >= 0);
  const iv = Buffer.alloc(12);
  iv.writeUInt32BE(Math.floor(sequence / 2 ** 32), 4);
  iv.writeUInt32BE(sequence >>> 0, 8);
  return iv;
}

function tagOf(mac: MacAlgorithm, key: Uint8Array, sequence: number, bytes: Uint8Array): Uint8Array {
  if (mac === "gmac-aes256") {
    // AES-GCM with everything as additional data and no plaintext: GMAC.
    const c = createCipheriv("aes-256-gcm", key, counterNonce(sequence), { authTagLength: frameTagBytes });
    c.setAAD(bytes);
    c.final();
    return c.getAuthTag();
  }
  const h = createHmac("sha256", key);
  h.update(counterNonce(sequence));
  h.update(bytes);
  return h.digest().subarray(0, frameTagBytes);
}

/** Constant-time comparison (the tag must not leak how many bytes matched). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let diff = 0;
  for (let i = 0; i < a.byteLength; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

/**
 * Seals outgoing frames with `sendKey` and verifies incoming ones with `receiveKey`, each
 * direction counting its frames from 0. A frame that fails is the end of the connection.
 */
export function macFrameAuth(mac: MacAlgorithm, keys: { sendKey: Uint8Array; receiveKey: Uint8Array }): FrameAuth {
  assert(keys.sendKey.byteLength === 32);
  assert(keys.receiveKey.byteLength === 32);
  let sent = 0;
  let received = 0;
  return {
    tagBytes: frameTagBytes,
    seal(frame: Uint8Array): void {
      assert(frame.byteLength >= frameTagBytes);
      const body = frame.subarray(0, frame.byteLength - frameTagBytes);
      frame.set(tagOf(mac, keys.sendKey, sent++, body), body.byteLength);
    },
    verify(frame: Frame): boolean {
      return sameBytes(tagOf(mac, keys.receiveKey, received++, frame.bytes), frame.tag);
    },
  };
}
