import { describe, expect, test } from "bun:test";
import { scratchStore } from "../meta/scratch-store.ts";
import { metaKeys } from "../meta/schema.ts";
import type { MetadataMembers } from "../cluster/metadata-members.ts";
import type { MetaStore } from "../meta/store.ts";
import { planMemberLeave, promoteMetadataMember, readMembers } from "./metadata-role.ts";

/** Carries out a planned leave on its own; what it leaves for members, or null when none. */
async function leave(meta: MetaStore, id: string): Promise<string[] | null> {
  const plan = await planMemberLeave(meta, id);
  if (plan === null) return null;
  expect((await meta.txn({ compare: plan.compare, success: plan.success })).succeeded).toBe(true);
  return plan.members.map((x) => x.id);
}

describe("planMemberLeave and promoteMetadataMember on a store", () => {
  const store = scratchStore("qstora-members-");
  const m = (id: string) => ({ id, name: `node-${id}`, url: `https://127.0.0.1:${7000 + id.charCodeAt(0)}` });

  test("removes a dead member while two live ones remain, then refuses to take the group below a live majority, and never removes the last", async () => {
    const meta = store.client();
    const three: MetadataMembers = { mode: "embedded-raft", members: [m("a"), m("b"), m("c")] };
    await meta.put(metaKeys.metadataMembers, JSON.stringify(three));
    for (const id of ["a", "b"]) await meta.put(metaKeys.aliveNode(id), "{}");
    expect(await leave(meta, "c")).toEqual(["a", "b"]);
    // Three members with only one up: removing another would leave [a, b] with one live member.
    await meta.put(metaKeys.metadataMembers, JSON.stringify(three));
    await meta.delete(metaKeys.aliveNode("b"));
    const err = await leave(meta, "c").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "IN_USE" });
    expect((await readMembers(meta))?.doc.members.length).toBe(3);
    // A client (not a member): nothing to change.
    expect(await leave(meta, "x")).toBeNull();
    await meta.put(metaKeys.metadataMembers, JSON.stringify({ mode: "embedded-single", members: [m("a")] }));
    expect(await leave(meta, "a").catch((e: unknown) => e)).toMatchObject({ code: "IN_USE", message: expect.stringContaining("only copy") });
  });

  test("promotion brings a group of two back to three with one live candidate", async () => {
    const meta = store.client();
    await meta.put(metaKeys.metadataMembers, JSON.stringify({ mode: "embedded-raft", members: [m("a"), m("b")] }));
    for (const id of ["d", "e"]) await meta.put(metaKeys.node(id), "{}");
    const candidate = async (id: string) => ({ member: m(id), recordKey: metaKeys.node(id), recordRevision: (await meta.get(metaKeys.node(id)))?.modRevision ?? 0 });
    expect(await promoteMetadataMember(meta, [await candidate("a"), await candidate("d")])).toBe(true);
    expect((await readMembers(meta))?.doc.members.map((x) => x.id)).toEqual(["a", "b", "d"]);
    expect(await promoteMetadataMember(meta, [await candidate("e")])).toBe(false);
  });

  test("a candidate whose record went since the manager saw it (a node being removed) is not promoted", async () => {
    const meta = store.client();
    await meta.put(metaKeys.metadataMembers, JSON.stringify({ mode: "embedded-raft", members: [m("a"), m("b")] }));
    await meta.put(metaKeys.node("c"), "{}");
    const seen = { member: m("c"), recordKey: metaKeys.node("c"), recordRevision: (await meta.get(metaKeys.node("c")))?.modRevision ?? 0 };
    await meta.delete(metaKeys.node("c"));
    expect(await promoteMetadataMember(meta, [seen])).toBe(false);
    expect((await readMembers(meta))?.doc.members.map((x) => x.id)).toEqual(["a", "b"]);
  });
});
