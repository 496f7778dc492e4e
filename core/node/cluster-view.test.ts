// The cluster view from records and heartbeats: node rows, pools, metadata members and leader,
// health over the whole cluster (with the metadata role's view of the members), hints.
import { expect, test } from "bun:test";
import { observeHeartbeats, type HeartbeatRecord } from "../cluster/liveness.ts";
import { defaultConfig } from "./config.ts";
import type { MetadataView } from "../control/protocol.ts";
import { clusterHealth, hintsFor, nodeViews, poolViews, type ClusterFacts } from "./cluster-view.ts";
import type { ArchiveRecord, NodeRecord } from "./records.ts";

const t0 = Date.parse("2026-12-01T00:00:00Z");
const limits = { suspectAfterMs: 3000, downAfterMs: 10_000 };
const node = (id: string, extra: Partial<NodeRecord> = {}): NodeRecord => ({ id, name: `node-${id}`, portal: `${id}:3260`, api: "", version: "", startedAt: "", ...extra });
const archive = (id: string, nodeId: string, media: ArchiveRecord["media"]): ArchiveRecord => ({ id, nodeId, path: `/a/${id}`, kind: media === "file" ? "file" : "block", ...(media === undefined ? {} : { media }), sizeBytes: 100, addedAt: "" });
const beat = (nodeId: string, seq: number, archives: HeartbeatRecord["archives"] = []): HeartbeatRecord => ({ nodeId, seq, sentAt: new Date(t0).toISOString(), intervalMs: 1000, startedAt: "s", archives });

const facts: ClusterFacts = {
  nodes: [node("b", { group: "rack2", draining: true, labels: { rack: "r2" } }), node("a"), node("c")],
  archives: [archive("1", "a", "file"), archive("2", "b", "ssd"), archive("3", "c", undefined)],
  pools: [{ name: "fast", media: ["ssd"], createdAt: "" }],
  luns: [],
  members: { mode: "embedded-single", members: [{ id: "a", name: "node-a", url: "https://a:7327" }] },
};
const liveness = observeHeartbeats(new Map(), [beat("a", 1), beat("b", 1, [{ id: "2", state: "online", sizeBytes: 100, writtenBytes: 40, freeBytes: 2 }])], t0);
const self = { nodeId: "a", archives: [{ id: "1", path: "/a/1", kind: "file" as const, media: "file" as const, sizeBytes: 100, reservedBytes: 0, writtenBytes: 5, freeBytes: 95, unitCount: 0, state: "online" as const }] };

test("nodeViews() lists every node by name with its state, group (default: name), flags and archive count", () => {
  const v = nodeViews(facts, liveness, t0 + 500, limits);
  expect(v.map((n) => `${n.name}:${n.state}:${n.group}:${n.archives}:${n.draining}:${n.metadataMember}`)).toEqual(["node-a:up:node-a:1:false:true", "node-b:up:rack2:1:true:false", "node-c:down:node-c:1:false:false"]);
  expect(v[1]?.labels).toEqual({ rack: "r2" });
  expect(v[2]?.heartbeatAgeMs).toBeNull();
});

test("poolViews() always shows the default pool first, and counts a pool's archives by media", () => {
  const p = poolViews(facts, liveness, self);
  expect(p.map((x) => [x.name, x.capacityBytes, x.writtenBytes, x.archives, x.nodes])).toEqual([["default", 300, 45, 3, 3], ["fast", 100, 40, 1, 1]]);
});

test("clusterHealth() judges other nodes' archives from their heartbeats, and not those of down nodes", () => {
  const nodes = nodeViews(facts, liveness, t0 + 500, limits);
  const h = clusterHealth({ facts, nodes, metadata: { backend: "embedded", endpoints: [], mode: "embedded-single", members: [], leader: null }, liveness, self, ioErrors: 0, metadataReachable: true, config: defaultConfig({ name: "a" }) });
  expect(h.checks.map((c) => c.code)).toEqual(["ARCHIVE_FULL", "NODE_DOWN", "NODE_DRAINING"]);
  expect(h.checks[0]?.detail).toEqual(["archive 2 at /a/2 on node-b: 2.0% free"]);
});

test("a node is a metadata member when /qstora/v1/metadata/members lists it; with an external etcd none is", () => {
  expect(nodeViews({ ...facts, members: undefined }, liveness, t0, limits).filter((n) => n.metadataMember)).toEqual([]);
  const ext = { ...facts, members: { mode: "external" as const, members: [{ id: "a", name: "http://e", url: "http://e" }] } };
  expect(nodeViews(ext, liveness, t0, limits).filter((n) => n.metadataMember)).toEqual([]);
});

test("hintsFor() points at health detail, a down node and the next object to create", () => {
  const nodes = nodeViews(facts, liveness, t0 + 500, limits);
  const h = hintsFor({ health: { status: "HEALTH_WARN", checks: [] }, nodes, targets: 1, luns: 0 });
  expect(h[0]).toStartWith("qstora health detail");
  expect(h[1]).toStartWith("qstora node remove node-c");
  expect(h[2]).toStartWith("qstora lun create");
});

test("fewer than a majority of the metadata members reachable is METADATA_NO_QUORUM, naming the others", () => {
  const member = (id: string, reachable: boolean) => ({ id, name: `node-${id}`, url: `https://${id}:7327`, reachable, leader: false, revision: 0 });
  const metadata: MetadataView = { backend: "embedded", endpoints: [], mode: "embedded-raft", members: [member("a", true), member("b", false), member("c", false)], leader: null };
  const h = clusterHealth({ facts, nodes: [], metadata, liveness, self, ioErrors: 0, metadataReachable: true, config: defaultConfig({ name: "a" }) });
  expect(h.checks.find((c) => c.code === "METADATA_NO_QUORUM")?.detail).toEqual(["metadata member node-b does not answer", "metadata member node-c does not answer"]);
  const two = { ...metadata, members: [member("a", true), member("b", true), member("c", false)] };
  expect(clusterHealth({ facts, nodes: [], metadata: two, liveness, self, ioErrors: 0, metadataReachable: true, config: defaultConfig({ name: "a" }) }).checks.map((c) => c.code)).not.toContain("METADATA_NO_QUORUM");
});
