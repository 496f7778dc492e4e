import { expect, test } from "bun:test";
import { sharedRead } from "./shared-read.ts";

test("sharedRead: one read per window, shared by its callers; a failed read is not shared", async () => {
  let now = 0;
  let reads = 0;
  let fail = false;
  const read = sharedRead(async () => {
    reads++;
    if (fail) throw new Error("store down");
    return reads;
  }, 250, () => now);
  expect(await Promise.all([read(), read(), read()])).toEqual([1, 1, 1]);
  now = 249;
  expect(await read()).toBe(1);
  now = 250;
  expect(await read()).toBe(2);
  fail = true;
  now = 600;
  await expect(read()).rejects.toThrow("store down");
  fail = false;
  now = 601;
  expect(await read()).toBe(4);
});
