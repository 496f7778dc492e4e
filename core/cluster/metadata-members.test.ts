import { describe, expect, test } from "bun:test";
import { completePending, majority, placeJoiner, planMemberRemoval, planPromotion, singleMembers, externalMembers, type MetadataMember, type MetadataMembers } from "./metadata-members.ts";

const m = (id: string): MetadataMember => ({ id, name: `node-${id}`, url: `https://127.0.0.${id.charCodeAt(0) - 96}:7327` });
const now = new Date("2026-12-01T08:00:00Z");

describe("placeJoiner", () => {
  test("the second node becomes a pending member of the single store; the group of two forms on completePending", () => {
    const p = placeJoiner(singleMembers(m("a")), m("b"), now);
    expect(p.role).toBe("member");
    if (p.role !== "member") return;
    expect(p.next.mode).toBe("embedded-single");
    expect(p.next.members.map((x) => x.id)).toEqual(["a"]);
    expect(p.next.pending?.id).toBe("b");
    expect(p.group.map((x) => x.id)).toEqual(["a", "b"]);
    const two = completePending(p.next);
    expect(two).toEqual({ mode: "embedded-raft", members: [m("a"), m("b")] });
  });

  test("a join while a member is pending is refused until the pending one times out", () => {
    const p = placeJoiner(singleMembers(m("a")), m("b"), now);
    if (p.role !== "member") throw new Error("expected member");
    expect(placeJoiner(p.next, m("c"), new Date(now.getTime() + 5_000)).role).toBe("busy");
    const late = placeJoiner(p.next, m("c"), new Date(now.getTime() + 10 * 60_000));
    expect(late.role).toBe("member");
    if (late.role === "member") expect(late.next.pending?.id).toBe("c");
  });

  test("the third node is added directly; later nodes are clients of every member", () => {
    const two: MetadataMembers = { mode: "embedded-raft", members: [m("a"), m("b")] };
    const p = placeJoiner(two, m("c"), now);
    expect(p.role).toBe("member");
    if (p.role !== "member") return;
    expect(p.next.members.map((x) => x.id)).toEqual(["a", "b", "c"]);
    const q = placeJoiner(p.next, m("d"), now);
    expect(q).toEqual({ role: "client", endpoints: [m("a").url, m("b").url, m("c").url] });
  });

  test("with an external etcd every joiner is a client of its endpoints", () => {
    expect(placeJoiner(externalMembers(["http://10.0.0.1:2379"]), m("b"), now)).toEqual({ role: "client", endpoints: ["http://10.0.0.1:2379"] });
  });

  test("every change of the group is one member at a time", () => {
    let doc: MetadataMembers = singleMembers(m("a"));
    for (const id of ["b", "c", "d", "e"]) {
      const p = placeJoiner(doc, m(id), now);
      if (p.role !== "member") continue;
      const next = p.next.pending === undefined ? p.next : completePending(p.next);
      expect(Math.abs(next.members.length - doc.members.length)).toBeLessThanOrEqual(1);
      doc = next;
    }
    expect(doc.members.length).toBe(3);
  });
});

describe("planMemberRemoval", () => {
  const three: MetadataMembers = { mode: "embedded-raft", members: [m("a"), m("b"), m("c")] };
  test("refuses to remove the last member", () => {
    const r = planMemberRemoval(singleMembers(m("a")), "a", new Set(["a"]));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe("last-member");
  });
  test("removes a dead member while the other two are up", () => {
    const r = planMemberRemoval(three, "c", new Set(["a", "b"]));
    expect(r).toEqual({ ok: true, changed: true, next: { mode: "embedded-raft", members: [m("a"), m("b")] } });
  });
  test("refuses when the members left that are up are not a majority", () => {
    const r = planMemberRemoval(three, "c", new Set(["a"]));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe("quorum");
  });
  test("a client's removal changes nothing", () => {
    expect(planMemberRemoval(three, "x", new Set())).toEqual({ ok: true, changed: false, next: three });
  });
  test("promotion adds one live candidate to a group of two, none to a group of three", () => {
    const two: MetadataMembers = { mode: "embedded-raft", members: [m("a"), m("b")] };
    const plan = planPromotion(two, [m("a"), m("d"), m("e")]);
    expect(plan?.next.members.map((x) => x.id)).toEqual(["a", "b", "d"]);
    expect(plan?.chosen).toBe(1);
    expect(planPromotion(three, [m("d")])).toBeNull();
    expect(planPromotion(singleMembers(m("a")), [m("d")])).toBeNull();
  });
  test("majority", () => {
    expect([1, 2, 3, 4, 5].map(majority)).toEqual([1, 2, 2, 3, 3]);
  });
});
