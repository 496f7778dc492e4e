// The cluster view from records and heartbeats: node rows, pools, metadata members and leader,
// manager, health over the whole cluster, hints.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedMeta, type EmbeddedMeta } from "../meta/embedded.ts";
import { observeHeartbeats, type HeartbeatRecord } from "../cluster/liveness.ts";
import { defaultConfig } from "./config.ts";
import { clusterHealth, hintsFor, managerView, metadataView, nodeViews, poolViews, type ClusterFacts } from "./cluster-view.ts";
import type { ArchiveRecord, NodeRecord } from "./records.ts";

const t0 = Date.parse("2026-12-01T00:00:00Z");
const limits = { suspectAfterMs: 3000, downAfterMs: 10_000 };
const node = (id: string, extra: Partial<NodeRecord> = {}): NodeRecord => ({ id, name: `node-${id}`, portal: `${id}:3260`, api: "", version: "", startedAt: "", ...extra });
const archive = (id: string, nodeId: string, media: ArchiveRecord["media"]): ArchiveRecord => ({ id, nodeId, path: `/a/${id}`, kind: media === "file" ? "file" : "block", ...(media === undefined ? {} : { media }), sizeBytes: 100, addedAt: "" });
const beat = (nodeId: string, seq: number, archives: HeartbeatRecord["archives"] = []): HeartbeatRecord => ({ nodeId, seq, sentAt: new Date(t0).toISOString(), intervalMs: 1000, startedAt: "s", archives });

const facts: ClusterFacts = {
  nodes: [node("b", { group: "rack2", draining: true, labels: { rack: "r2" } }), node("a", { metadataStore: { clientUrl: "http://x" } }), node("c")],
  archives: [archive("1", "a", "file"), archive("2", "b", "ssd"), archive("3", "c", undefined)],
  pools: [{ name: "fast", media: ["ssd"], createdAt: "" }],
  luns: [],
  members: undefined,
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
  const h = clusterHealth({ facts, nodes, metadata: { backend: "embedded", endpoints: [], mode: "single", members: [], leader: null }, liveness, self, ioErrors: 0, metadataReachable: true, config: defaultConfig({ name: "a" }) });
  expect(h.checks.map((c) => c.code)).toEqual(["ARCHIVE_FULL", "NODE_DOWN", "NODE_DRAINING"]);
  expect(h.checks[0]?.detail).toEqual(["archive 2 at /a/2 on node-b: 2.0% free"]);
});

test("managerView() reads the metadata group's manager as a string or an object", () => {
  expect(managerView(facts)).toBeUndefined();
  expect(managerView({ ...facts, members: { mode: "raft", members: [], manager: "b" } })).toEqual({ nodeId: "b", name: "node-b" });
  expect(managerView({ ...facts, members: { mode: "raft", members: [], manager: { nodeId: "zz" } } })).toEqual({ nodeId: "zz", name: null });
});

test("hintsFor() points at health detail, a down node and the next object to create", () => {
  const nodes = nodeViews(facts, liveness, t0 + 500, limits);
  const h = hintsFor({ health: { status: "HEALTH_WARN", checks: [] }, nodes, targets: 1, luns: 0 });
  expect(h[0]).toStartWith("qstora health detail");
  expect(h[1]).toStartWith("qstora node remove node-c");
  expect(h[2]).toStartWith("qstora lun create");
});

let dir = "";
let embedded: EmbeddedMeta | undefined;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "qstora-view-"));
  embedded = await startEmbeddedMeta({ dir, port: 0 });
});
afterAll(async () => {
  await embedded?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("metadataView() names the single store's node as leader while it answers", async () => {
  const f = { ...facts, nodes: [node("a", { metadataStore: { clientUrl: embedded?.url as string } })] };
  const v = await metadataView(f, defaultConfig({ name: "a" }));
  expect(v).toMatchObject({ mode: "single", leader: "node-a", members: [{ nodeId: "a", name: "node-a", answering: true, leader: true }] });
});

test("metadataView() lists the group's members; a majority not answering is METADATA_NO_QUORUM", async () => {
  const members = { mode: "raft", members: [{ nodeId: "a", clientUrl: embedded?.url as string }, { nodeId: "b", clientUrl: "http://127.0.0.1:1" }, { nodeId: "c", clientUrl: "http://127.0.0.1:2" }] };
  const f = { ...facts, members };
  const v = await metadataView(f, defaultConfig({ name: "a" }));
  expect(v.members.map((m) => `${m.name}:${m.answering}`)).toEqual(["node-a:true", "node-b:false", "node-c:false"]);
  const h = clusterHealth({ facts: f, nodes: [], metadata: v, liveness, self, ioErrors: 0, metadataReachable: true, config: defaultConfig({ name: "a" }) });
  expect(h.checks.find((c) => c.code === "METADATA_NO_QUORUM")?.detail).toEqual(["metadata member node-b does not answer", "metadata member node-c does not answer"]);
});
