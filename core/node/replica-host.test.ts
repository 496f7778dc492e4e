import { expect, test } from "bun:test";
import { coordinatorHold } from "./replica-host.ts";

const placement = (coordinator?: string): { segment: string; coordinator: string | undefined } => ({ segment: "v/0", coordinator });

test("coordinatorHold() holds only a primary on its LUN's coordinator node while that node is silent", () => {
  const base = { coordinatorName: "node-a", holdAfterMs: 1500 };
  const held = coordinatorHold({ ...base, ...placement("A"), primaryNode: "A", silentMs: 2100 });
  expect(held).toContain("coordinator node node-a");
  expect(held).toContain("has not heartbeated for 2.1 s");
  expect(coordinatorHold({ ...base, ...placement("A"), primaryNode: "A", silentMs: Infinity })).toContain("has no live heartbeat");
  // Heartbeating: the unit alone died, fail it over.
  expect(coordinatorHold({ ...base, ...placement("A"), primaryNode: "A", silentMs: 900 })).toBeNull();
  // The primary is elsewhere already, or the placement predates the field, or the node was removed.
  expect(coordinatorHold({ ...base, ...placement("A"), primaryNode: "B", silentMs: 9000 })).toBeNull();
  expect(coordinatorHold({ ...base, ...placement(), primaryNode: "A", silentMs: 9000 })).toBeNull();
  expect(coordinatorHold({ ...base, ...placement("A"), primaryNode: "A", silentMs: null })).toBeNull();
});
