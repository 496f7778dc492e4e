import { describe, expect, test } from "bun:test";
import { coalescing } from "./coalesce.ts";

describe("coalescing", () => {
  test("triggers during a run coalesce into one run after it; a failure goes to onError and the next trigger runs again", async () => {
    let runs = 0;
    let release: (() => void) | undefined;
    const errors: unknown[] = [];
    const kick = coalescing(
      () => {
        runs++;
        if (runs === 3) return Promise.reject(new Error("store down"));
        return new Promise<void>((r) => (release = r));
      },
      (e) => errors.push(e),
    );
    kick();
    kick();
    kick();
    expect(runs).toBe(1);
    release?.();
    await Bun.sleep(1);
    expect(runs).toBe(2);
    release?.();
    await Bun.sleep(1);
    expect(runs).toBe(2);
    kick();
    await Bun.sleep(1);
    expect(runs).toBe(3);
    expect(String(errors[0])).toContain("store down");
    kick();
    expect(runs).toBe(4);
  });
});
