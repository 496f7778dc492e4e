// The cluster's certificate authority: an ECDSA P-256 key and a self-signed X.509 v3 CA
// certificate made at `qstora init`, and the node certificates it signs at `qstora join`. Node
// crypto signs and verifies but cannot build certificates, so they are assembled here from
// der.ts (RFC 5280). The CA's key never leaves the data directory of the node that made it.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from "node:crypto";
import { assert } from "../util/assert.ts";
import { bitString, bool, contextPrimitive, explicit, integer, octets, oid, sequence, set, time, utf8, type Der } from "./der.ts";

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2", // RFC 5758 §3.2
  commonName: "2.5.4.3",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

export const caValidityDays = 3650;
export const nodeValidityDays = 825;

export interface KeyPair {
  privateKeyPem: string;
  publicKey: KeyObject;
}

export function newKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), publicKey };
}

const name = (cn: string): Der => sequence(set(sequence(oid(OID.commonName), utf8(cn))));

function extension(id: string, critical: boolean, value: Der): Der {
  return critical ? sequence(oid(id), bool(true), octets(value)) : sequence(oid(id), octets(value));
}

function pem(der: Der): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith("\n") ? "" : "\n"}-----END CERTIFICATE-----\n`;
}

function ipBytes(ip: string): Uint8Array | null {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  return m === null ? null : new Uint8Array(m.slice(1, 5).map(Number));
}

interface CertSpec {
  subject: string;
  issuer: string;
  subjectKey: KeyObject;
  signerKeyPem: string;
  isCa: boolean;
  days: number;
  /** IP addresses and DNS names the certificate is good for (node certificates). */
  altNames?: string[];
  now: Date;
}

function buildCertificate(spec: CertSpec): string {
  const algorithm = sequence(oid(OID.ecdsaWithSha256));
  const notAfter = new Date(spec.now.getTime() + spec.days * 86_400_000);
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f; // positive (RFC 5280 §4.1.2.2)
  // keyUsage bits (RFC 5280 §4.2.1.3): digitalSignature = bit 0, keyCertSign = bit 5, cRLSign = bit 6.
  const keyUsage = spec.isCa ? bitString(new Uint8Array([0x86]), 1) : bitString(new Uint8Array([0x80]), 7);
  const extensions: Der[] = [extension(OID.basicConstraints, true, spec.isCa ? sequence(bool(true)) : sequence()), extension(OID.keyUsage, true, keyUsage)];
  if (!spec.isCa) {
    extensions.push(extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth), oid(OID.clientAuth))));
    const names = (spec.altNames ?? []).map((n) => {
      const ip = ipBytes(n);
      return ip === null ? contextPrimitive(2, new TextEncoder().encode(n)) : contextPrimitive(7, ip);
    });
    if (names.length > 0) extensions.push(extension(OID.subjectAltName, false, sequence(...names)));
  }
  const spki = new Uint8Array(spec.subjectKey.export({ type: "spki", format: "der" }));
  const tbs = sequence(explicit(0, integer(new Uint8Array([2]))), integer(serial), algorithm, name(spec.issuer), sequence(time(spec.now), time(notAfter)), name(spec.subject), spki, explicit(3, sequence(...extensions)));
  const signature = sign("sha256", tbs, createPrivateKey(spec.signerKeyPem));
  return pem(sequence(tbs, algorithm, bitString(new Uint8Array(signature))));
}

export interface ClusterCa {
  certPem: string;
  keyPem: string;
}

/** A new self-signed CA for cluster `clusterId`. */
export function createClusterCa(clusterId: string, now = new Date()): ClusterCa {
  const keys = newKeyPair();
  const certPem = buildCertificate({ subject: `qstora cluster ${clusterId} CA`, issuer: `qstora cluster ${clusterId} CA`, subjectKey: keys.publicKey, signerKeyPem: keys.privateKeyPem, isCa: true, days: caValidityDays, now });
  return { certPem, keyPem: keys.privateKeyPem };
}

/** A node certificate for `nodeName` (and its addresses), signed by the CA, for a key the node made. */
export function signNodeCertificate(ca: ClusterCa, options: { nodeName: string; publicKeyPem: string; altNames: string[]; now?: Date }): string {
  const caCert = new X509Certificate(ca.certPem);
  return buildCertificate({ subject: options.nodeName, issuer: caCert.subject.replace(/^CN=/, ""), subjectKey: createPublicKey(options.publicKeyPem), signerKeyPem: ca.keyPem, isCa: false, days: nodeValidityDays, altNames: options.altNames, now: options.now ?? new Date() });
}

/** The CA's fingerprint as join tokens pin it: SHA-256 of the certificate's DER, hex. */
export function caFingerprint(certPem: string): string {
  const cert = new X509Certificate(certPem);
  const hex = createHash("sha256").update(cert.raw).digest("hex");
  assert(hex.length === 64);
  return hex;
}
