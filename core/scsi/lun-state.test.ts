// LunStateTable's task holders: how PREEMPT AND ABORT, CLEAR TASK SET and resets reach the tasks of
// other sessions (abortTasksOf, nexuses), and how a session's end removes them.
import { describe, expect, test } from "bun:test";
import { MemoryBlockDevice } from "../../test/iscsi-mem-target.ts";
import type { BlockDevice } from "../volume/block-device.ts";
import { LunStateTable, UnitAttention, type NexusTasks } from "./lun-state.ts";

function holder(count: number): NexusTasks & { calls: BlockDevice[] } {
  const calls: BlockDevice[] = [];
  return {
    calls,
    abortTasks: (device) => {
      calls.push(device);
      return count;
    },
  };
}

describe("LunStateTable task holders", () => {
  test("abortTasksOf() asks the nexus's holders about this LU and raises COMMANDS CLEARED only when tasks ended", () => {
    const device = new MemoryBlockDevice({ sizeBytes: 1 << 20 });
    const table = new LunStateTable();
    const busy = holder(3);
    const idle = holder(0);
    table.attachNexus("busy", busy);
    table.attachNexus("idle", idle);
    const state = table.get(device);
    expect(state.nexuses().sort()).toEqual(["busy", "idle"]);
    expect(state.abortTasksOf("busy", { attention: true })).toBe(3);
    expect(state.abortTasksOf("idle", { attention: true })).toBe(0);
    expect(state.abortTasksOf("unknown", { attention: true })).toBe(0);
    expect(busy.calls).toEqual([device]);
    expect(state.take("busy")).toEqual(UnitAttention.commandsClearedByAnotherInitiator);
    expect(state.pending("idle")).toBe(false);
    expect(state.abortTasksOf("busy", { attention: false })).toBe(3);
    expect(state.pending("busy")).toBe(false);
  });

  test("two sessions on one nexus id (one initiator port, two targets) are both reached; each end removes only its own", () => {
    const device = new MemoryBlockDevice({ sizeBytes: 1 << 20 });
    const table = new LunStateTable();
    const first = holder(1);
    const second = holder(2);
    table.attachNexus("n", first);
    table.attachNexus("n", second);
    const state = table.get(device);
    expect(state.abortTasksOf("n", { attention: false })).toBe(3);
    table.forgetNexus("n", first);
    expect(state.abortTasksOf("n", { attention: false })).toBe(2);
    table.forgetNexus("n", first); // twice: no effect
    expect(state.nexuses()).toEqual(["n"]);
    table.forgetNexus("n", second);
    expect(state.nexuses()).toEqual([]);
    expect(state.abortTasksOf("n", { attention: true })).toBe(0);
  });
});
