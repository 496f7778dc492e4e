import { expect, test } from "bun:test";
import { judgeNode, observeHeartbeats, heartbeatAgeMs, type HeartbeatRecord, type LivenessState } from "./liveness.ts";

const limits = { suspectAfterMs: 3_000, downAfterMs: 10_000 };
const t0 = Date.parse("2026-12-01T00:00:00Z");
const beat = (nodeId: string, seq: number, sentMs: number, startedAt = "s1"): HeartbeatRecord => ({ nodeId, seq, sentAt: new Date(sentMs).toISOString(), intervalMs: 1000, startedAt, archives: [] });
const empty: LivenessState = new Map();

test("judgeNode() says up while the heartbeat changes, suspect then down as it stays the same", () => {
  let s = observeHeartbeats(empty, [beat("a", 1, t0)], t0);
  expect(judgeNode(s, "a", t0, limits)).toBe("up");
  s = observeHeartbeats(s, [beat("a", 2, t0 + 1000)], t0 + 1000);
  expect(judgeNode(s, "a", t0 + 3999, limits)).toBe("up");
  expect(judgeNode(s, "a", t0 + 4000, limits)).toBe("suspect");
  s = observeHeartbeats(s, [beat("a", 2, t0 + 1000)], t0 + 9000);
  expect(judgeNode(s, "a", t0 + 10_999, limits)).toBe("suspect");
  expect(judgeNode(s, "a", t0 + 11_000, limits)).toBe("down");
  s = observeHeartbeats(s, [beat("a", 3, t0 + 12_000)], t0 + 12_000);
  expect(judgeNode(s, "a", t0 + 12_000, limits)).toBe("up");
});

test("observeHeartbeats() ignores the sender's clock once a node has been seen (skew does not matter)", () => {
  // The sender's clock is an hour behind: its first beat is judged old, then each change counts on ours.
  const skew = -3_600_000;
  let s = observeHeartbeats(empty, [beat("a", 7, t0 + skew)], t0);
  expect(judgeNode(s, "a", t0, limits)).toBe("down");
  s = observeHeartbeats(s, [beat("a", 8, t0 + 1000 + skew)], t0 + 1000);
  expect(judgeNode(s, "a", t0 + 1000, limits)).toBe("up");
  expect(heartbeatAgeMs(s, "a", t0 + 2500)).toBe(1500);
});

test("observeHeartbeats() never places a first sighting in the observer's future", () => {
  const s = observeHeartbeats(empty, [beat("a", 1, t0 + 60_000)], t0);
  expect(heartbeatAgeMs(s, "a", t0)).toBe(0);
  expect(judgeNode(s, "a", t0 + 3000, limits)).toBe("suspect");
});

test("a node whose heartbeat key is gone is down; one never seen is down", () => {
  let s = observeHeartbeats(empty, [beat("a", 1, t0), beat("b", 1, t0)], t0);
  s = observeHeartbeats(s, [beat("a", 2, t0 + 1000)], t0 + 1000);
  expect(judgeNode(s, "b", t0 + 1000, limits)).toBe("down");
  expect(judgeNode(s, "zzz", t0 + 1000, limits)).toBe("down");
  expect(heartbeatAgeMs(s, "b", t0 + 1000)).toBeNull();
});

test("a restarted node (new startedAt, seq back to 1) counts as a change", () => {
  let s = observeHeartbeats(empty, [beat("a", 5, t0)], t0);
  s = observeHeartbeats(s, [beat("a", 5, t0, "s2")], t0 + 5000);
  expect(judgeNode(s, "a", t0 + 5000, limits)).toBe("up");
});

test("judgeNode() gives a node that beats slowly at least two of its intervals before suspecting it", () => {
  const slow = { ...beat("a", 1, t0), intervalMs: 5000 };
  const s = observeHeartbeats(empty, [slow], t0);
  expect(judgeNode(s, "a", t0 + 9_999, limits)).toBe("up");
  expect(judgeNode(s, "a", t0 + 10_000, limits)).toBe("suspect");
  expect(judgeNode(s, "a", t0 + 15_000, limits)).toBe("down");
});

test("judgeNode() asserts sensible limits", () => {
  expect(() => judgeNode(empty, "a", t0, { suspectAfterMs: 5000, downAfterMs: 5000 })).toThrow();
});
