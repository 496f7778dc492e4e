// Certificates for tests and benchmarks of core/net: a cluster CA and node credentials signed
// by it, made the way `qstora init` and `qstora join` make them (core/cluster/ca.ts). Never
// used by the daemon.
import { createClusterCa, newKeyPair, signNodeCertificate, type ClusterCa } from "../cluster/ca.ts";
import type { PeerTls } from "./peer.ts";

export function testCluster(clusterId = "test"): ClusterCa {
  return createClusterCa(clusterId);
}

export function testNodeTls(ca: ClusterCa, name: string, address: string): PeerTls {
  const keys = newKeyPair();
  const publicKeyPem = keys.publicKey.export({ type: "spki", format: "pem" }).toString();
  const certPem = signNodeCertificate(ca, { nodeName: name, publicKeyPem, altNames: [address] });
  return { caPem: ca.certPem, certPem, keyPem: keys.privateKeyPem };
}
