import { expect, test } from "bun:test";
import { judgeNode, observeHeartbeats, heartbeatAgeMs, type HeartbeatRecord, type LivenessState } from "./liveness.ts";
import { seededRng } from "../../test/helpers/rng.ts";

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

// Seeded simulation: nodes beat with jitter, fall silent and come back, under clocks skewed by up
// to an hour; the observer reads the store at random moments. Invariants, once the observer has
// seen a node's heartbeat change: it is never judged down while its last beat is younger than the
// down limit (no false down from skew or read timing), and always down once that beat is older
// than the limit plus the longest gap between reads.
test("liveness simulation: no false down, no missed down, over seeded runs", () => {
  const stepMs = 50;
  const readGapMaxMs = 1500;
  for (let seed = 1; seed <= 60; seed++) {
    const rng = seededRng(seed);
    const rand = (n: number) => rng() % n;
    const nodes = ["a", "b", "c"].map((id) => ({ id, skewMs: rand(7_200_000) - 3_600_000, intervalMs: 500 + rand(1000), nextBeat: rand(1000), seq: 0, silentUntil: 0, lastWrite: -1, changesSeen: 0, lastSeq: -1 }));
    const store = new Map<string, HeartbeatRecord>();
    let state: LivenessState = new Map();
    let nextRead = 0;
    for (let now = 0; now < 120_000; now += stepMs) {
      for (const n of nodes) {
        if (n.silentUntil <= now && rand(2000) === 0) n.silentUntil = now + 1000 + rand(20_000);
        if (now >= n.nextBeat) {
          n.nextBeat = now + n.intervalMs + rand(100);
          if (now >= n.silentUntil) {
            n.seq++;
            n.lastWrite = now;
            store.set(n.id, { ...beat(n.id, n.seq, t0 + now + n.skewMs), intervalMs: n.intervalMs });
          }
        }
      }
      if (now < nextRead) continue;
      nextRead = now + 100 + rand(readGapMaxMs - 100);
      state = observeHeartbeats(state, [...store.values()], t0 + now);
      for (const n of nodes) {
        const seq = state.get(n.id)?.seq ?? -1;
        if (seq !== n.lastSeq) n.changesSeen++;
        n.lastSeq = seq;
        if (n.changesSeen < 2 || n.lastWrite < 0) continue;
        const trueAgeMs = now - n.lastWrite;
        const own = { ...limits, suspectAfterMs: Math.max(limits.suspectAfterMs, 2 * n.intervalMs) };
        const downMs = Math.max(limits.downAfterMs, own.suspectAfterMs + n.intervalMs);
        const verdict = judgeNode(state, n.id, t0 + now, limits);
        if (trueAgeMs < downMs && verdict === "down") throw new Error(`seed ${seed}: ${n.id} judged down ${trueAgeMs} ms after its last beat`);
        if (trueAgeMs >= downMs + readGapMaxMs && verdict !== "down") throw new Error(`seed ${seed}: ${n.id} judged ${verdict} ${trueAgeMs} ms after its last beat`);
      }
    }
  }
});
