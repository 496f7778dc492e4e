// The membership store, one suite run on both implementations (in memory; over the embedded
// metadata store through the etcd client): creation, compare-and-swap by epoch, conflicts that
// carry the current record, and a retried record that the store had applied counts as applied.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomLoopback } from "../../test/helpers/node.ts";
import { startEmbeddedMeta, type EmbeddedMeta } from "../meta/embedded.ts";
import { EtcdClient } from "../meta/etcd-client.ts";
import { MemoryMembershipStore, MetaMembershipStore, type MembershipStore } from "./record-store.ts";
import type { Membership } from "./types.ts";

const m1: Membership = { segment: "lun/s9", epoch: 1, policy: "replica:3", primary: "a", secondaries: ["b", "c"], inactive: [], arbiter: null };
const m2: Membership = { ...m1, epoch: 2, secondaries: ["b"], inactive: ["c"] };
const m2other: Membership = { ...m1, epoch: 2, primary: "b", secondaries: [], inactive: ["a", "c"] };

function membershipStoreSuite(name: string, make: () => MembershipStore) {
  describe(`membership store: ${name}`, () => {
    test("a record is created from epoch 0, replaced by CAS from its epoch, and a stale CAS gets the current record", async () => {
      const s = make();
      expect(await s.load(m1.segment)).toBeNull();
      expect(await s.cas(0, m1)).toEqual({ outcome: "applied" });
      expect(await s.load(m1.segment)).toEqual(m1);
      expect(await s.cas(1, m2)).toEqual({ outcome: "applied" });
      expect(await s.cas(1, m2other)).toEqual({ outcome: "conflict", current: m2 });
      expect(await s.load(m1.segment)).toEqual(m2);
    });

    test("a retried record that the store applied before counts as applied", async () => {
      const s = make();
      const seg = { ...m1, segment: "lun/s10" };
      expect(await s.cas(0, seg)).toEqual({ outcome: "applied" });
      expect(await s.cas(1, { ...m2, segment: "lun/s10" })).toEqual({ outcome: "applied" });
      expect(await s.cas(1, { ...m2, segment: "lun/s10" })).toEqual({ outcome: "applied" });
    });
  });
}

membershipStoreSuite("memory", () => new MemoryMembershipStore());

let dir = "";
let embedded: EmbeddedMeta | undefined;
let client: EtcdClient | undefined;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "qstora-records-"));
  embedded = await startEmbeddedMeta({ dir, host: randomLoopback(), port: 0 });
  client = new EtcdClient([embedded.url]);
});
afterAll(async () => {
  await client?.close();
  await embedded?.stop();
  rmSync(dir, { recursive: true, force: true });
});
let round = 0;
membershipStoreSuite("embedded metadata store", () => {
  // Each test its own key space: the store outlives the tests.
  const c = client as EtcdClient;
  const prefix = `r${round++}-`;
  const s = new MetaMembershipStore(c);
  const strip = (m: Membership): Membership => ({ ...m, segment: m.segment.slice(prefix.length) });
  return {
    load: (segment) => s.load(prefix + segment).then((m) => (m === null ? null : strip(m))),
    cas: (e, m) => s.cas(e, { ...m, segment: prefix + m.segment }).then((o) => (o.outcome === "conflict" ? { ...o, current: strip(o.current) } : o)),
  };
});

test("the in-memory store, unreachable, reports unknown outcomes and failed loads", async () => {
  const s = new MemoryMembershipStore();
  s.reachable = false;
  expect(await s.cas(0, m1)).toEqual({ outcome: "unknown" });
  await expect(s.load(m1.segment)).rejects.toThrow();
});
