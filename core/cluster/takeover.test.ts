import { expect, test } from "bun:test";
import { chooseCoordinator, takeoverDue, type TakeoverCandidate } from "./takeover.ts";

const node = (id: string, over: Partial<TakeoverCandidate> = {}): TakeoverCandidate => ({ id, live: true, draining: false, reachable: true, lunUnits: 0, coordinated: 0, ...over });

test("chooseCoordinator() takes a live, reachable node not draining: most of the LUN's units, then fewest LUNs, then lowest id", () => {
  expect(chooseCoordinator([node("c", { lunUnits: 1 }), node("b", { lunUnits: 2 })])).toBe("b");
  expect(chooseCoordinator([node("c", { lunUnits: 2, coordinated: 3 }), node("b", { lunUnits: 2, coordinated: 1 })])).toBe("b");
  expect(chooseCoordinator([node("c"), node("b")])).toBe("b");
  expect(chooseCoordinator([node("b", { live: false, lunUnits: 9 }), node("c", { draining: true, lunUnits: 9 }), node("d", { reachable: false, lunUnits: 9 }), node("e")])).toBe("e");
  expect(chooseCoordinator([node("b", { live: false })])).toBeNull();
});

test("takeoverDue() only after the node was silent, and watched by this node, for the whole delay", () => {
  expect(takeoverDue({ silentMs: 6000, watchedMs: 6000, afterMs: 5000 })).toBe(true);
  expect(takeoverDue({ silentMs: Infinity, watchedMs: 5000, afterMs: 5000 })).toBe(true);
  // A daemon that just started (a whole cluster starting again) gives every node the delay.
  expect(takeoverDue({ silentMs: 60_000, watchedMs: 1000, afterMs: 5000 })).toBe(false);
  expect(takeoverDue({ silentMs: 4000, watchedMs: 60_000, afterMs: 5000 })).toBe(false);
  expect(takeoverDue({ silentMs: null, watchedMs: 60_000, afterMs: 5000 })).toBe(false);
});
