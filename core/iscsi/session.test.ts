// CmdSN window arithmetic (RFC 1982 serial numbers) and the session table's reinstatement.
import { describe, expect, test } from "bun:test";
import { CommandWindow, SessionTable, nexusKey, serialLess } from "./session.ts";

describe("CommandWindow", () => {
  test("accepts CmdSN in [ExpCmdSN, MaxCmdSN], ignores the rest, and wraps at 2^32", () => {
    const w = new CommandWindow(4);
    w.reset(0xfffffffe);
    expect(w.maxCmdSN()).toBe(1);
    expect(w.accept(0xfffffffd, false)).toBe(false); // too low
    expect(w.accept(2, false)).toBe(false); // past MaxCmdSN
    expect(w.accept(0xfffffffe, false)).toBe(true);
    expect(w.accept(0xffffffff, false)).toBe(true);
    expect(w.expCmdSN).toBe(0);
    expect(w.accept(0, true)).toBe(true); // immediate: does not advance
    expect(w.expCmdSN).toBe(0);
    expect(serialLess(0xffffffff, 0)).toBe(true);
    expect(serialLess(0, 0xffffffff)).toBe(false);
  });
});

describe("SessionTable", () => {
  test("a new session on the same I_T nexus closes the old one; TSIHs are unique", () => {
    const table = new SessionTable();
    const isid = new Uint8Array([0x80, 0, 0, 1, 2, 3]);
    const closed: string[] = [];
    const a = { tsih: table.allocateTsih()!, nexus: nexusKey("iqn.x:i", isid, "iqn.t"), targetName: "iqn.t", close: () => closed.push("a") };
    table.add(a);
    const b = { tsih: table.allocateTsih()!, nexus: nexusKey("IQN.X:I", isid, "iqn.t"), targetName: "iqn.t", close: () => closed.push("b") };
    expect(b.tsih).not.toBe(a.tsih);
    table.add(b);
    expect(closed).toEqual(["a"]);
    expect(table.count("iqn.t")).toBe(1);
    table.remove(a); // a late close of the old connection leaves the new session alone
    expect(table.count()).toBe(1);
  });
});
