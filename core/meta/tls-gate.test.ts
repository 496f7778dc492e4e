import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { createClusterCa, newKeyPair, signNodeCertificate, type ClusterCa } from "../cluster/ca.ts";
import { startEmbeddedMeta, type EmbeddedMeta } from "./embedded.ts";
import { EtcdClient } from "./etcd-client.ts";
import { certificateSignedBy, startTlsGate, type TlsGate } from "./tls-gate.ts";

function nodeCert(ca: ClusterCa, address: string): { certPem: string; keyPem: string } {
  const keys = newKeyPair();
  return { keyPem: keys.privateKeyPem, certPem: signNodeCertificate(ca, { nodeName: "n", publicKeyPem: keys.publicKey.export({ type: "spki", format: "pem" }).toString(), altNames: [address] }) };
}

describe("the metadata gate", () => {
  const host = `127.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}.7`;
  const ca = createClusterCa("gate-test");
  const other = createClusterCa("other");
  const server = nodeCert(ca, host);
  const dir = mkdtempSync(join(tmpdir(), "qstora-gate-"));
  let store: EmbeddedMeta;
  let gate: TlsGate;
  beforeAll(async () => {
    store = await startEmbeddedMeta({ dir, port: 0, socketPath: join(dir, "s.sock") });
    gate = startTlsGate({ host, port: 0, certPem: server.certPem, keyPem: server.keyPem, caPem: ca.certPem, backend: { unix: join(dir, "s.sock") } });
  });
  afterAll(async () => {
    gate.stop();
    await store.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("passes requests and watches of a client with a certificate of the cluster CA", async () => {
    const mine = nodeCert(ca, "127.0.0.1");
    const client = new EtcdClient({ endpoints: [gate.url], tls: { caPem: ca.certPem, ...mine }, flavor: "antietcd" });
    const seen: string[] = [];
    const w = client.watch("/qstora/t/", { fromRevision: 1, onCompacted: () => undefined }, (events) => seen.push(...events.map((e) => e.key)));
    for (let i = 0; i < 20; i++) await client.put(`/qstora/t/k${i}`, "v");
    expect((await client.list("/qstora/t/")).length).toBe(20);
    for (let i = 0; i < 50 && seen.length < 20; i++) await Bun.sleep(50);
    expect(seen.length).toBe(20);
    w.cancel();
    await client.close();
  });

  test("refuses a client with no certificate, or one from another CA, before forwarding anything", async () => {
    const post = (tls: Record<string, string>) =>
      fetch(`${gate.url}/v3/kv/range`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key: btoa("/qstora/t/k1") }), tls: { ca: ca.certPem, ...tls }, signal: AbortSignal.timeout(3000) }).then(
        (r) => `HTTP ${r.status}`,
        () => "refused",
      );
    expect(await post({})).toBe("refused");
    const foreign = nodeCert(other, "127.0.0.1");
    expect(await post({ cert: foreign.certPem, key: foreign.keyPem })).toBe("refused");
    const mine = nodeCert(ca, "127.0.0.1");
    expect(await post({ cert: mine.certPem, key: mine.keyPem })).toBe("HTTP 200");
  });

  test("certificateSignedBy checks issuer, signature and dates", () => {
    const caCert = new X509Certificate(ca.certPem);
    expect(certificateSignedBy(new X509Certificate(nodeCert(ca, "127.0.0.1").certPem).raw, caCert)).toBe(true);
    expect(certificateSignedBy(new X509Certificate(nodeCert(other, "127.0.0.1").certPem).raw, caCert)).toBe(false);
    expect(certificateSignedBy(new X509Certificate(nodeCert(ca, "127.0.0.1").certPem).raw, caCert, new Date("2099-01-01"))).toBe(false);
    expect(certificateSignedBy(new Uint8Array([1, 2, 3]), caCert)).toBe(false);
  });
});
