// The pure parts of the peer driver: the in-flight table and the reconnect schedule.
import { describe, expect, test } from "bun:test";
import { backoffDelayMs, peerBackoffDefault } from "./backoff.ts";
import { seededRandom01 } from "../util/rng.ts";
import { RequestTable } from "./requests.ts";

describe("RequestTable", () => {
  test("says busy at inflightMax and accepts again once a response settles one", () => {
    const t = new RequestTable<string>(2);
    const a = t.begin("a", 0, 100);
    const b = t.begin("b", 0, 100);
    expect(a.ok && b.ok).toBe(true);
    expect(t.begin("c", 0, 100)).toEqual({ ok: false, reason: "busy" });
    expect(t.size).toBe(2);
    if (!a.ok) throw new Error();
    expect(t.settle(a.requestId)).toBe("a");
    expect(t.begin("c", 0, 100).ok).toBe(true);
  });

  test("correlates a response with its request once; a late or unknown id settles nothing", () => {
    const t = new RequestTable<string>(4);
    const a = t.begin("a", 0, 100);
    if (!a.ok) throw new Error();
    expect(t.settle(a.requestId + 1)).toBeUndefined();
    expect(t.settle(a.requestId)).toBe("a");
    expect(t.settle(a.requestId)).toBeUndefined();
  });

  test("expires exactly the requests past their deadline, and reports the next deadline", () => {
    const t = new RequestTable<string>(4);
    t.begin("short", 0, 10);
    t.begin("long", 0, 50);
    t.begin("mid", 5, 20);
    expect(t.nextDeadlineMs()).toBe(10);
    expect(t.expire(9)).toEqual([]);
    expect(t.expire(10)).toEqual(["short"]);
    expect(t.nextDeadlineMs()).toBe(25);
    expect(t.expire(30)).toEqual(["mid"]);
    expect(t.size).toBe(1);
    expect(t.drain()).toEqual(["long"]);
    expect(t.nextDeadlineMs()).toBeUndefined();
  });

  test("request ids skip 0 and ids still in flight when they wrap around 2^32", () => {
    const t = new RequestTable<number>(3);
    (t as unknown as { lastId: number }).lastId = 0xfffffffe;
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = t.begin(i, 0, 10);
      if (!r.ok) throw new Error();
      ids.push(r.requestId);
    }
    expect(ids).toEqual([0xffffffff, 1, 2]);
    t.settle(1);
    (t as unknown as { lastId: number }).lastId = 0xfffffffe;
    const r = t.begin(9, 0, 10);
    expect(r.ok && r.requestId).toBe(1);
  });

  test("a request without a timeout is a bug", () => {
    expect(() => new RequestTable<number>(1).begin(1, 0, 0)).toThrow();
  });
});

describe("backoffDelayMs()", () => {
  test("doubles its ceiling per attempt up to maxMs, jittered within [ceiling/2, ceiling]", () => {
    const p = { baseMs: 100, maxMs: 1000, factor: 2 };
    expect([0, 1, 2, 3, 4, 10, 500].map((a) => backoffDelayMs(p, a, 0))).toEqual([50, 100, 200, 400, 500, 500, 500]);
    expect([0, 1, 2, 3, 4].map((a) => backoffDelayMs(p, a, 0.999999))).toEqual([100, 200, 400, 800, 1000]);
  });

  test("the same seed gives the same schedule; different seeds spread it", () => {
    const run = (seed: number): number[] => {
      const r = seededRandom01(seed);
      return Array.from({ length: 8 }, (_, a) => backoffDelayMs(peerBackoffDefault, a, r()));
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
    for (let seed = 1; seed < 200; seed++) {
      const r = seededRandom01(seed);
      for (let i = 0; i < 50; i++) {
        const x = r();
        expect(x >= 0 && x < 1).toBe(true);
      }
    }
  });

  test("a random number outside [0, 1) is a bug", () => {
    expect(() => backoffDelayMs(peerBackoffDefault, 0, 1)).toThrow();
  });
});
