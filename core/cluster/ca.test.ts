import { expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { caFingerprint, createClusterCa, newKeyPair, signNodeCertificate } from "./ca.ts";

test("createClusterCa() makes a self-signed v3 CA certificate that node crypto accepts", () => {
  const ca = createClusterCa("11111111-2222-4333-8444-555555555555");
  const cert = new X509Certificate(ca.certPem);
  expect(cert.ca).toBe(true);
  expect(cert.subject).toBe("CN=qstora cluster 11111111-2222-4333-8444-555555555555 CA");
  expect(cert.verify(cert.publicKey)).toBe(true);
  expect(new Date(cert.validTo).getTime()).toBeGreaterThan(Date.now() + 3000 * 86_400_000);
  expect(caFingerprint(ca.certPem)).toMatch(/^[0-9a-f]{64}$/);
});

test("signNodeCertificate() issues a leaf for the node's key and addresses, verified by the CA", () => {
  const ca = createClusterCa("c1");
  const node = newKeyPair();
  const pem = signNodeCertificate(ca, { nodeName: "node-2", publicKeyPem: node.publicKey.export({ type: "spki", format: "pem" }).toString(), altNames: ["127.0.0.2", "node-2.local"] });
  const leaf = new X509Certificate(pem);
  const caCert = new X509Certificate(ca.certPem);
  expect(leaf.ca).toBe(false);
  expect(Boolean(leaf.checkIssued(caCert))).toBe(true); // Bun answers with the issuer, Node with true
  expect(leaf.verify(caCert.publicKey)).toBe(true);
  expect(leaf.checkIP("127.0.0.2")).toBe("127.0.0.2");
  expect(leaf.checkHost("node-2.local")).toBe("node-2.local");
  expect(leaf.verify(new X509Certificate(createClusterCa("other").certPem).publicKey)).toBe(false);
});
