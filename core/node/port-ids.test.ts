// Port numbers on a real embedded store: claims made at the same moment by eight nodes get
// eight different numbers, the smallest first; a node claiming again keeps its number.
import { describe, expect, test } from "bun:test";
import { scratchStore } from "../meta/scratch-store.ts";
import { claimPortId, readPortIds } from "./port-ids.ts";

const store = scratchStore("qstora-port-ids-");

describe("claimPortId()", () => {
  test("eight nodes claiming at once get 1..8, each a different one; a second claim returns the same number", async () => {
    const meta = store.client();
    const nodes = Array.from({ length: 8 }, (_, i) => `node-${i}`);
    const ids = await Promise.all(nodes.map((n) => claimPortId(meta, n)));
    expect([...ids].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await Promise.all(nodes.map((n) => claimPortId(meta, n)))).toEqual(ids);
    const read = await readPortIds(meta);
    expect(nodes.map((n) => read.get(n))).toEqual(ids);
  });
});
