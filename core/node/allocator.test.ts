import { describe, expect, test } from "bun:test";
import { daemonAllocatorEnv, execWithAllocatorEnv, missingAllocatorEnv } from "./allocator.ts";

describe("allocator settings", () => {
  test("only what the environment lacks is added; the operator's own value wins", () => {
    expect(missingAllocatorEnv({})).toEqual({ ...daemonAllocatorEnv });
    expect(missingAllocatorEnv({ MIMALLOC_PURGE_DELAY: "10" })).toEqual({});
  });

  test("nothing missing: returns at once without replacing the process", () => {
    expect(execWithAllocatorEnv(["/bin/false"], { ...daemonAllocatorEnv })).toBeNull();
  });

  test("replaces the process in place (same pid) with the settings and the rest of the environment", () => {
    const script = `import { execWithAllocatorEnv } from ${JSON.stringify(`${import.meta.dir}/allocator.ts`)};
      console.log("before " + process.pid);
      const failed = execWithAllocatorEnv(["/bin/sh", "-c", "echo after $$ $MIMALLOC_PURGE_DELAY $KEPT"], { PATH: process.env.PATH, KEPT: "kept" });
      console.log("failed " + failed);`;
    const r = Bun.spawnSync([process.execPath, "-e", script], { env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" } });
    const lines = r.stdout.toString().trim().split("\n");
    const pid = lines[0]?.split(" ")[1];
    expect(lines).toEqual([`before ${pid}`, `after ${pid} ${daemonAllocatorEnv["MIMALLOC_PURGE_DELAY"]} kept`]);
  });
});
