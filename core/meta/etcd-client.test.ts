import { describe, expect, test } from "bun:test";
import { decodeKvs, decodeWatchEvents, encodeBase64, EtcdClient, LineSplitter } from "./etcd-client.ts";
import { prefixRangeEnd } from "./store.ts";

const b = encodeBase64;

describe("etcd JSON decoding", () => {
  test("decodeKvs() reads etcd's string int64s and antietcd's numbers alike, sorts, and drops keys outside the request", () => {
    const etcd = [
      { key: b("/q/d/b"), value: b("2"), mod_revision: "7", create_revision: "3", version: "2", lease: "0" },
      { key: b("/q/d/a"), value: b("é"), mod_revision: "5", lease: "694d77aa9e3a2f0a" },
    ];
    expect(decodeKvs(etcd, { key: "/q/d/", prefix: true })).toEqual([
      { key: "/q/d/a", value: "é", modRevision: 5, lease: "694d77aa9e3a2f0a" },
      { key: "/q/d/b", value: "2", modRevision: 7 },
    ]);
    // antietcd includes the directory's own key in a directory range: not ours.
    const anti = [{ key: b("/q/d"), value: b("x"), mod_revision: 2 }, { key: b("/q/d/c"), mod_revision: 9 }];
    expect(decodeKvs(anti, { key: "/q/d/", prefix: true })).toEqual([{ key: "/q/d/c", value: "", modRevision: 9 }]);
    expect(decodeKvs(undefined, { key: "/q/x", prefix: false })).toEqual([]);
  });

  test("decodeKvs() refuses a malformed revision with an INTERNAL error", () => {
    expect(() => decodeKvs([{ key: b("/q/a"), mod_revision: "x" }], { key: "/q/a", prefix: false })).toThrow(expect.objectContaining({ code: "INTERNAL" }));
  });

  test("decodeWatchEvents() defaults the omitted type to PUT, gives snapshot DELETEs the header revision, filters and orders", () => {
    const raw = [
      { type: "DELETE", kv: { key: b("/q/w/gone") } },
      { kv: { key: b("/q/w/b"), value: b("2"), mod_revision: "8" } },
      { kv: { key: b("/q/other"), value: b("x"), mod_revision: "6" } },
      { type: "PUT", kv: { key: b("/q/w/a"), value: b("1"), mod_revision: 4 } },
    ];
    expect(decodeWatchEvents(raw, "/q/w/", 9)).toEqual([
      { type: "PUT", key: "/q/w/a", value: "1", modRevision: 4 },
      { type: "PUT", key: "/q/w/b", value: "2", modRevision: 8 },
      { type: "DELETE", key: "/q/w/gone", modRevision: 9 },
    ]);
  });

  test("LineSplitter yields whole lines whatever the chunking, multi-byte characters included", () => {
    const text = `${JSON.stringify({ result: { v: "é✓" } })}\n${JSON.stringify({ result: { n: 2 } })}\n`;
    const bytes = new TextEncoder().encode(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const s = new LineSplitter(1024);
      const lines = [...s.push(bytes.subarray(0, cut)), ...s.push(bytes.subarray(cut))];
      expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([{ result: { v: "é✓" } }, { result: { n: 2 } }]);
    }
  });

  test("LineSplitter refuses a line longer than its maximum", () => {
    const s = new LineSplitter(8);
    expect(() => s.push(new TextEncoder().encode("0123456789"))).toThrow(expect.objectContaining({ code: "INTERNAL" }));
  });

  test("prefixRangeEnd() is the directory form both backends accept", () => {
    expect(prefixRangeEnd("/qstora/v1/nodes/")).toBe("/qstora/v1/nodes0");
    expect(() => prefixRangeEnd("/qstora/v1/nodes")).toThrow();
  });

  test("the client refuses endpoints that are not http:// URLs", () => {
    expect(() => new EtcdClient(["https://10.0.0.1:2379"])).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => new EtcdClient([])).toThrow();
  });
});
