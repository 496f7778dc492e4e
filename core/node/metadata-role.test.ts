import { describe, expect, test } from "bun:test";
import { scratchStore } from "../meta/scratch-store.ts";
import { metaKeys } from "../meta/schema.ts";
import type { MetadataMembers } from "../cluster/metadata-members.ts";
import { promoteMetadataMember, readMembers, removeMetadataMember } from "./metadata-role.ts";

describe("removeMetadataMember and promoteMetadataMember on a store", () => {
  const store = scratchStore("qstora-members-");
  const m = (id: string) => ({ id, name: `node-${id}`, url: `https://127.0.0.1:${7000 + id.charCodeAt(0)}` });

  test("removes a dead member while two live ones remain, then refuses to take the group below a live majority, and never removes the last", async () => {
    const meta = store.client();
    const three: MetadataMembers = { mode: "embedded-raft", members: [m("a"), m("b"), m("c")] };
    await meta.put(metaKeys.metadataMembers, JSON.stringify(three));
    for (const id of ["a", "b"]) await meta.put(metaKeys.aliveNode(id), "{}");
    expect((await removeMetadataMember(meta, "c")).members.map((x) => x.id)).toEqual(["a", "b"]);
    // Three members with only one up: removing another would leave [a, b] with one live member.
    await meta.put(metaKeys.metadataMembers, JSON.stringify(three));
    await meta.delete(metaKeys.aliveNode("b"));
    const err = await removeMetadataMember(meta, "c").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "IN_USE" });
    expect((await readMembers(meta))?.doc.members.length).toBe(3);
    // A client (not a member): nothing to change.
    expect((await removeMetadataMember(meta, "x")).changed).toBe(false);
    await meta.put(metaKeys.metadataMembers, JSON.stringify({ mode: "embedded-single", members: [m("a")] }));
    expect(await removeMetadataMember(meta, "a").catch((e: unknown) => e)).toMatchObject({ code: "IN_USE", message: expect.stringContaining("only copy") });
  });

  test("promotion brings a group of two back to three with one live candidate", async () => {
    const meta = store.client();
    await meta.put(metaKeys.metadataMembers, JSON.stringify({ mode: "embedded-raft", members: [m("a"), m("b")] }));
    expect(await promoteMetadataMember(meta, [m("a"), m("d")])).toBe(true);
    expect((await readMembers(meta))?.doc.members.map((x) => x.id)).toEqual(["a", "b", "d"]);
    expect(await promoteMetadataMember(meta, [m("e")])).toBe(false);
  });
});
