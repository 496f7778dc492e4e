import { expect, test } from "bun:test";
import { checkRedundancy, defaultRedundancy, placeSegment, usableDomains, type PlacementArchive, type PlacementCluster, type PlacementNode } from "./placement.ts";

const GiB = 2 ** 30;
const node = (id: string, extra: Partial<PlacementNode> = {}): PlacementNode => ({ id, faultDomain: null, draining: false, primaries: 0, ...extra });
const archive = (id: string, nodeId: string, usedGiB = 0, extra: Partial<PlacementArchive> = {}): PlacementArchive => ({ id, node: nodeId, sizeBytes: 100 * GiB, usedBytes: usedGiB * GiB, online: true, ...extra });

function cluster(nodes: PlacementNode[], archives: PlacementArchive[]): PlacementCluster {
  return { nodes, archives };
}

test("placeSegment() puts replica:3's units on three different nodes, the emptiest archives", () => {
  const c = cluster([node("a"), node("b"), node("c"), node("d")], [archive("a1", "a", 50), archive("b1", "b", 10), archive("c1", "c", 20), archive("d1", "d", 5)]);
  const r = placeSegment(c, { redundancy: "replica:3", unitBytes: GiB });
  if (!r.ok) throw new Error(r.reason);
  expect(r.units.map((u) => u.archive).sort()).toEqual(["b1", "c1", "d1"]);
  expect(new Set(r.units.map((u) => u.node)).size).toBe(3);
  expect(r.units.filter((u) => u.role === "primary")).toHaveLength(1);
});

test("placeSegment() keeps copies out of one node group even when its archives are emptiest", () => {
  const c = cluster([node("a", { faultDomain: "rack1" }), node("b", { faultDomain: "rack1" }), node("c", { faultDomain: "rack2" }), node("d", { faultDomain: "rack3" })], [archive("a1", "a", 0), archive("b1", "b", 0), archive("c1", "c", 60), archive("d1", "d", 70)]);
  const r = placeSegment(c, { redundancy: "replica:3", unitBytes: GiB });
  if (!r.ok) throw new Error(r.reason);
  expect(r.units.map((u) => u.faultDomain).sort()).toEqual(["group:rack1", "group:rack2", "group:rack3"]);
});

test("placeSegment() on a one-node cluster spreads the copies over different archives", () => {
  const c = cluster([node("solo")], [archive("x", "solo"), archive("y", "solo"), archive("z", "solo")]);
  const r = placeSegment(c, { redundancy: "replica:3", unitBytes: GiB });
  if (!r.ok) throw new Error(r.reason);
  expect(r.units.map((u) => u.archive).sort()).toEqual(["x", "y", "z"]);
});

test("placeSegment() never uses a draining node, an offline archive or one without room", () => {
  const c = cluster(
    [node("a", { draining: true }), node("b"), node("c"), node("d"), node("e")],
    [archive("a1", "a"), archive("b1", "b", 99.5), archive("c1", "c", 0, { online: false }), archive("d1", "d", 30), archive("e1", "e", 40)],
  );
  const r = placeSegment(c, { redundancy: "replica:3", unitBytes: GiB });
  expect(r.ok).toBe(false);
  if (!r.ok) expect(r.reason).toContain("2 fault domain(s)");
  const two = placeSegment(c, { redundancy: "replica:2", unitBytes: GiB });
  if (!two.ok) throw new Error(two.reason);
  expect(two.units.filter((u) => u.role !== "arbiter").map((u) => u.node).sort()).toEqual(["d", "e"]);
});

test("placeSegment() gives replica:2 an arbiter on a third fault domain", () => {
  const c = cluster([node("a"), node("b"), node("c")], [archive("a1", "a"), archive("b1", "b", 1), archive("c1", "c", 2)]);
  const r = placeSegment(c, { redundancy: "replica:2", unitBytes: GiB });
  if (!r.ok) throw new Error(r.reason);
  expect(r.units.map((u) => u.role)).toEqual(["primary", "secondary", "arbiter"]);
  expect(new Set(r.units.map((u) => u.faultDomain)).size).toBe(3);
  expect(r.units.find((u) => u.role === "arbiter")?.node).toBe("c");
});

test("placeSegment() with two fault domains puts replica:2's arbiter beside the secondary, not the primary", () => {
  const c = cluster([node("a"), node("b", { primaries: 5 })], [archive("a1", "a"), archive("b1", "b")]);
  const r = placeSegment(c, { redundancy: "replica:2", unitBytes: GiB });
  if (!r.ok) throw new Error(r.reason);
  const primary = r.units.find((u) => u.role === "primary");
  const arbiter = r.units.find((u) => u.role === "arbiter");
  expect(primary?.node).toBe("a");
  expect(arbiter?.node).toBe("b");
});

test("placeSegment() makes the node with the fewest primaries the primary", () => {
  const c = cluster([node("a", { primaries: 9 }), node("b", { primaries: 2 }), node("c", { primaries: 4 })], [archive("a1", "a"), archive("b1", "b", 10), archive("c1", "c", 20)]);
  const r = placeSegment(c, { redundancy: "replica:3", unitBytes: GiB });
  if (!r.ok) throw new Error(r.reason);
  expect(r.units[0]).toMatchObject({ role: "primary", node: "b" });
});

test("placeSegment() makes the coordinator's copy the primary when one of the chosen copies is on its node", () => {
  const c = cluster([node("a", { primaries: 9 }), node("b", { primaries: 2 }), node("c", { primaries: 4 })], [archive("a1", "a"), archive("b1", "b", 10), archive("c1", "c", 20)]);
  const r = placeSegment(c, { redundancy: "replica:3", unitBytes: GiB, primaryOn: "c" });
  if (!r.ok) throw new Error(r.reason);
  expect(r.units[0]).toMatchObject({ role: "primary", node: "c" });
  // Not among the chosen copies (replica:2 takes the two emptiest): the rule of the fewest primaries.
  const two = placeSegment(c, { redundancy: "replica:2", unitBytes: GiB, primaryOn: "c" });
  if (!two.ok) throw new Error(two.reason);
  expect(two.units.filter((u) => u.role !== "arbiter").map((u) => u.node)).toEqual(["b", "a"]);
});

test("placeSegment() repeated keeps used space and primaries balanced across nodes", () => {
  const nodes = ["a", "b", "c", "d", "e"].map((id) => ({ ...node(id) }));
  const archives = nodes.map((n) => archive(`${n.id}1`, n.id));
  const used = new Map(archives.map((a) => [a.id, 0]));
  const primaries = new Map(nodes.map((n) => [n.id, 0]));
  for (let i = 0; i < 500; i++) {
    const c = cluster(
      nodes.map((n) => ({ ...n, primaries: primaries.get(n.id) ?? 0 })),
      archives.map((a) => ({ ...a, usedBytes: used.get(a.id) ?? 0 })),
    );
    const r = placeSegment(c, { redundancy: "replica:3", unitBytes: 64 * 2 ** 20 });
    if (!r.ok) throw new Error(r.reason);
    for (const u of r.units) used.set(u.archive, (used.get(u.archive) ?? 0) + 64 * 2 ** 20);
    const p = r.units[0];
    if (p === undefined) throw new Error("no primary");
    primaries.set(p.node, (primaries.get(p.node) ?? 0) + 1);
  }
  const u = [...used.values()];
  const p = [...primaries.values()];
  expect(Math.max(...u) - Math.min(...u)).toBeLessThanOrEqual(64 * 2 ** 20);
  expect(Math.max(...p) - Math.min(...p)).toBeLessThanOrEqual(1);
});

test("placeSegment() is deterministic for equal candidates", () => {
  const c = cluster([node("c"), node("a"), node("b")], [archive("c1", "c"), archive("a1", "a"), archive("b1", "b")]);
  expect(placeSegment(c, { redundancy: "replica:3", unitBytes: GiB })).toEqual(placeSegment(c, { redundancy: "replica:3", unitBytes: GiB }));
  const r = placeSegment(c, { redundancy: "replica:3", unitBytes: GiB });
  if (r.ok) expect(r.units[0]?.archive).toBe("a1");
});

test("defaultRedundancy() is replica:3 from three fault domains, else the most the cluster allows, and says so", () => {
  expect(defaultRedundancy(3)).toEqual({ redundancy: "replica:3", message: null });
  expect(defaultRedundancy(7).redundancy).toBe("replica:3");
  const two = defaultRedundancy(2);
  expect(two.redundancy).toBe("replica:2");
  expect(two.message).toContain("only 2 fault domains");
  const one = defaultRedundancy(1);
  expect(one.redundancy).toBe("single");
  expect(one.message).toContain("single copy");
});

test("checkRedundancy() refuses a policy the cluster's fault domains can't hold, saying what is missing", () => {
  expect(checkRedundancy("replica:3", 3)).toEqual({ ok: true });
  expect(checkRedundancy("replica:3-ha", 2)).toEqual({ ok: false, reason: expect.stringContaining("needs 3 fault domains") });
  expect(checkRedundancy("replica:2", 2)).toEqual({ ok: true });
  expect(checkRedundancy("replica:2", 1).ok).toBe(false);
});

test("usableDomains() counts node groups, or archives on a one-node cluster", () => {
  expect(usableDomains(cluster([node("s")], [archive("x", "s"), archive("y", "s")]), GiB)).toEqual(["archive:x", "archive:y"]);
  expect(usableDomains(cluster([node("a", { faultDomain: "r" }), node("b", { faultDomain: "r" })], [archive("a1", "a"), archive("b1", "b")]), GiB)).toEqual(["group:r"]);
});
