// `qstora node remove` of a metadata member against a real store: the member leaves the group
// in the transaction that deletes its record (so the manager can't promote it back); the
// last member, or a removal leaving no live majority, is refused with nothing changed.
import { describe, expect, test } from "bun:test";
import { scratchStore } from "../meta/scratch-store.ts";
import { createLogger } from "../util/log.ts";
import type { NodeView } from "../control/protocol.ts";
import type { MetadataMembers } from "../cluster/metadata-members.ts";
import { MembershipOps } from "./membership-ops.ts";
import { readMembers } from "./metadata-role.ts";
import { keys, type NodeRecord } from "./records.ts";

describe("node remove of a metadata member", () => {
  const store = scratchStore("qstora-remove-");
  const logger = createLogger({ sinks: [] });
  const member = (id: string) => ({ id, name: `node-${id}`, url: `https://127.0.0.1:${7000 + id.charCodeAt(0)}` });
  const record = (id: string): NodeRecord => ({ id, name: `node-${id}`, portal: "", api: "", version: "", startedAt: "", metadataUrl: member(id).url });
  /** The liveness the command sees: `up` ids are up, the rest down. */
  const ops = (selfId: string, up: string[]) =>
    new MembershipOps(store.client(), selfId, async () => ["a", "b", "c", "d"].map((id) => ({ id, name: `node-${id}`, state: up.includes(id) ? "up" : "down" }) as NodeView), logger);
  const setUp = async (doc: MetadataMembers, alive: string[]): Promise<void> => {
    const meta = store.client();
    await meta.put(keys.metadataMembers, JSON.stringify(doc));
    for (const id of ["a", "b", "c", "d"]) {
      await meta.put(keys.node(id), JSON.stringify(record(id)));
      if (alive.includes(id)) await meta.put(keys.aliveNode(id), "{}");
      else await meta.delete(keys.aliveNode(id));
    }
  };

  test("a down member of three leaves the group while two live ones remain, and its record goes", async () => {
    const meta = store.client();
    await setUp({ mode: "embedded-raft", members: [member("a"), member("b"), member("c")] }, ["a", "b", "d"]);
    expect(await ops("a", ["a", "b", "d"]).remove("node-c", false)).toMatchObject({ removed: "node-c" });
    expect((await readMembers(meta))?.doc.members.map((m) => m.id)).toEqual(["a", "b"]);
    expect(await meta.get(keys.node("c"))).toBeUndefined();
  });

  test("refused, changing nothing, when the members left would have no live majority", async () => {
    const meta = store.client();
    const three: MetadataMembers = { mode: "embedded-raft", members: [member("a"), member("b"), member("c")] };
    await setUp(three, ["a", "d"]);
    const err = await ops("a", ["a", "d"]).remove("node-c", false).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "IN_USE", message: expect.stringContaining("metadata store") });
    expect((await readMembers(meta))?.doc).toEqual(three);
    expect(await meta.get(keys.node("c"))).toBeDefined();
  });

  test("refused for the last member, even forced; a client goes without touching the group", async () => {
    const meta = store.client();
    const single: MetadataMembers = { mode: "embedded-single", members: [member("a")] };
    await setUp(single, ["b"]);
    const err = await ops("b", ["b"]).remove("node-a", true).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "IN_USE" });
    expect(await meta.get(keys.node("a"))).toBeDefined();
    await ops("b", ["b"]).remove("node-d", false);
    expect((await readMembers(meta))?.doc).toEqual(single);
    expect(await meta.get(keys.node("d"))).toBeUndefined();
  });
});
