import { expect, test } from "bun:test";
import { ackRuleOf, advanceCommit, mayDegrade } from "./policy.ts";

const commit = (policy: "replica:2" | "replica:3" | "replica:3-ha", primaryLsn: number, secondaries: number[], required: number[] = [], commitLsn = 0) =>
  advanceCommit({ rule: ackRuleOf(policy), commitLsn, primaryLsn, secondaries, required });

test("advanceCommit() for replica:2 and replica:3-ha needs every active secondary; with none recorded, the primary alone", () => {
  expect(commit("replica:2", 10, [7])).toBe(7);
  expect(commit("replica:3-ha", 10, [9, 4])).toBe(4);
  expect(commit("replica:2", 10, [])).toBe(10);
  expect(commit("replica:3-ha", 3, [9, 9])).toBe(3);
});

test("advanceCommit() for replica:3 needs the primary and one secondary, and never commits with no secondary recorded", () => {
  expect(commit("replica:3", 10, [4, 8])).toBe(8);
  expect(commit("replica:3", 6, [4, 8])).toBe(6);
  expect(commit("replica:3", 10, [], [], 2)).toBe(2);
});

test("advanceCommit() holds back for a joiner about to be recorded, and never goes back", () => {
  expect(commit("replica:3", 10, [9, 9], [5])).toBe(5);
  expect(commit("replica:2", 10, [1], [], 6)).toBe(6);
});

test("mayDegrade() lets replica:2 and 3-ha drop to the primary alone, replica:3 to one secondary", () => {
  expect(mayDegrade("replica:2", 1)).toBe(true);
  expect(mayDegrade("replica:3-ha", 1)).toBe(true);
  expect(mayDegrade("replica:3", 2)).toBe(true);
  expect(mayDegrade("replica:3", 1)).toBe(false);
});
