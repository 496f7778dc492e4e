// The MAC transport's keys and tags: both ends derive the same keys only with the right private
// keys; a sealed frame verifies once, in order, and not after any change.
import { describe, expect, test } from "bun:test";
import { randomBytes, X509Certificate } from "node:crypto";
import { FrameDecoder, frameHeaderBytes, type Frame } from "./frame.ts";
import { decodeHello, deriveSessionKeys, frameTagBytes, macAlgorithms, macFrameAuth, type Hello } from "./frame-auth.ts";
import { controlFrame, encodeCbor, messageType } from "./messages.ts";
import { testCluster, testNodeTls } from "./test-certs.ts";

const ca = testCluster("auth-test");
const a = testNodeTls(ca, "node-a", "127.0.0.1");
const b = testNodeTls(ca, "node-b", "127.0.0.1");
const c = testNodeTls(ca, "node-c", "127.0.0.1");
const hello = (cert: string): Hello => ({ cert, nonce: randomBytes(32), mac: "gmac-aes256" });

function decodeOne(bytes: Uint8Array): Frame {
  let out: Frame | undefined;
  const err = new FrameDecoder({ tagBytes: frameTagBytes }).push(bytes, (f) => (out = { ...f, bytes: f.bytes.slice(), tag: f.tag.slice(), payload: f.payload.slice() }));
  expect(err).toBeNull();
  if (out === undefined) throw new Error("no frame");
  return out;
}

describe("deriveSessionKeys()", () => {
  test("client and server derive the same two keys, different from each other", () => {
    const ch = hello(a.certPem);
    const sh = hello(b.certPem);
    const onClient = deriveSessionKeys({ ownKey: a.keyPem, peerCert: new X509Certificate(b.certPem), client: ch, server: sh });
    const onServer = deriveSessionKeys({ ownKey: b.keyPem, peerCert: new X509Certificate(a.certPem), client: ch, server: sh });
    expect(Buffer.from(onClient.clientToServer).equals(Buffer.from(onServer.clientToServer))).toBe(true);
    expect(Buffer.from(onClient.serverToClient).equals(Buffer.from(onServer.serverToClient))).toBe(true);
    expect(Buffer.from(onClient.clientToServer).equals(Buffer.from(onClient.serverToClient))).toBe(false);
  });

  test("someone showing node-a's certificate with another key derives other keys", () => {
    const ch = hello(a.certPem);
    const sh = hello(b.certPem);
    const real = deriveSessionKeys({ ownKey: b.keyPem, peerCert: new X509Certificate(a.certPem), client: ch, server: sh });
    const forged = deriveSessionKeys({ ownKey: c.keyPem, peerCert: new X509Certificate(b.certPem), client: ch, server: sh });
    expect(Buffer.from(real.clientToServer).equals(Buffer.from(forged.clientToServer))).toBe(false);
  });

  test("fresh nonces give fresh keys (no replay across connections)", () => {
    const k = () => deriveSessionKeys({ ownKey: a.keyPem, peerCert: new X509Certificate(b.certPem), client: hello(a.certPem), server: hello(b.certPem) });
    expect(Buffer.from(k().clientToServer).equals(Buffer.from(k().clientToServer))).toBe(false);
  });
});

for (const mac of macAlgorithms) {
  describe(`macFrameAuth(${mac})`, () => {
    const key1 = randomBytes(32);
    const key2 = randomBytes(32);
    const build = (n: number) => controlFrame({ type: messageType.ping, flags: 0, requestId: n }, { from: "x", sentAtMs: n }, frameTagBytes);

    test("frames sealed in order verify in order", () => {
      const tx = macFrameAuth(mac, { sendKey: key1, receiveKey: key2 });
      const rx = macFrameAuth(mac, { sendKey: key2, receiveKey: key1 });
      for (let i = 1; i <= 5; i++) {
        const f = build(i);
        tx.seal(f);
        expect(rx.verify(decodeOne(f))).toBe(true);
      }
    });

    test("a replayed, reordered, altered or wrongly keyed frame fails", () => {
      const tx = macFrameAuth(mac, { sendKey: key1, receiveKey: key2 });
      const f1 = build(1);
      const f2 = build(2);
      tx.seal(f1);
      tx.seal(f2);
      const reordered = macFrameAuth(mac, { sendKey: key2, receiveKey: key1 });
      expect(reordered.verify(decodeOne(f2))).toBe(false);
      const replayed = macFrameAuth(mac, { sendKey: key2, receiveKey: key1 });
      expect(replayed.verify(decodeOne(f1))).toBe(true);
      expect(replayed.verify(decodeOne(f1))).toBe(false);
      const wrongKey = macFrameAuth(mac, { sendKey: key2, receiveKey: key2 });
      expect(wrongKey.verify(decodeOne(f1))).toBe(false);
      const altered = decodeOne(f1);
      altered.tag[0] = (altered.tag[0] as number) ^ 1;
      expect(macFrameAuth(mac, { sendKey: key2, receiveKey: key1 }).verify(altered)).toBe(false);
    });

    test("a payload altered at any byte still decodes (the checksum covers the header alone) and fails its tag", () => {
      const f = build(1);
      macFrameAuth(mac, { sendKey: key1, receiveKey: key2 }).seal(f);
      for (let i = frameHeaderBytes; i < f.byteLength - frameTagBytes; i++) {
        const bad = f.slice();
        bad[i] = (bad[i] as number) ^ 0x20;
        expect(macFrameAuth(mac, { sendKey: key2, receiveKey: key1 }).verify(decodeOne(bad))).toBe(false);
      }
    });
  });
}

describe("decodeHello()", () => {
  test("refuses a short nonce, an unknown MAC and a missing certificate", () => {
    expect(decodeHello(encodeCbor({ cert: a.certPem, nonce: new Uint8Array(31), mac: "gmac-aes256" })).ok).toBe(false);
    expect(decodeHello(encodeCbor({ cert: a.certPem, nonce: new Uint8Array(32), mac: "crc32" })).ok).toBe(false);
    expect(decodeHello(encodeCbor({ nonce: new Uint8Array(32), mac: "gmac-aes256" })).ok).toBe(false);
    expect(decodeHello(encodeCbor({ cert: a.certPem, nonce: new Uint8Array(32), mac: "hmac-sha256" })).ok).toBe(true);
  });
});
