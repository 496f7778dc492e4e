// One server, two portals (two loopback addresses) in one portal group: a session that logs in
// again through the other portal with the same initiator name and ISID reinstates the first (one
// session table), both portals answer with the same portal group tag, and SendTargets through
// either lists both. Loopback only; a tiny raw initiator, no digests.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { silentLogger } from "../util/log.ts";
import { MemoryBlockDevice, memRegistry, memTargetIqn } from "../../test/iscsi-mem-target.ts";
import { encodeKeys, parseKeys } from "./login.ts";
import { Bhs, Flag, Op, bhsBytes, put32 } from "./pdu.ts";
import { RawInitiator as Client, buildPdu } from "./pdu-fixture.ts";
import { startIscsiServer, targetAddresses, type IscsiServer } from "./server.ts";

const hostA = "127.0.0.1";
/** Any 127/8 address is the loopback interface on Linux. */
const hostB = `127.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;


const initiator = "iqn.2026-11.org.test:two-portals";
const isid = [0x80, 0, 0, 0x12, 0x34, 0];

const login = (keys: Array<[string, string]>) =>
  buildPdu(Op.loginRequest | 0x40, Flag.transit | (1 << 2) | 3, encodeKeys([["InitiatorName", initiator], ...keys]), (h) => {
    h.set(isid, Bhs.isid);
    put32(h, Bhs.cmdSN, 1);
  });

function keysOf(answer: Uint8Array): Array<readonly [string, string]> {
  const dataBytes = ((answer[5] as number) << 16) | ((answer[6] as number) << 8) | (answer[7] as number);
  const r = parseKeys(answer.subarray(bhsBytes + (answer[4] as number) * 4, bhsBytes + (answer[4] as number) * 4 + dataBytes));
  if (r === null) throw new Error("bad keys in answer");
  return r;
}

describe("two portals of one portal group", () => {
  let server: IscsiServer;
  let portA = 0;
  let portB = 0;
  beforeAll(async () => {
    const luns = new Map([[0, new MemoryBlockDevice({ sizeBytes: 1 << 20 })]]);
    server = await startIscsiServer({ host: hostA, port: 0, extraPortals: [{ host: hostB, port: 0 }], registry: memRegistry(new Map([[memTargetIqn, { luns }]])), logger: silentLogger });
    [portA, portB] = server.ports as [number, number];
  });
  afterAll(async () => {
    await server.close();
  });

  test("both portals listen; a login through the second reinstates the session begun through the first", async () => {
    expect(server.ports.length).toBe(2);
    const first = new Client();
    await first.connect(hostA, portA);
    first.socket.write(login([["TargetName", memTargetIqn]]));
    const a = await first.next();
    expect(a[36]).toBe(0); // status class: success
    expect(keysOf(a)).toContainEqual(["TargetPortalGroupTag", "1"]);
    expect(server.sessionCount(memTargetIqn)).toBe(1);

    const second = new Client();
    await second.connect(hostB, portB);
    second.socket.write(login([["TargetName", memTargetIqn]]));
    const b = await second.next();
    expect(b[36]).toBe(0);
    expect(keysOf(b)).toContainEqual(["TargetPortalGroupTag", "1"]);
    // Same initiator port, same portal group: the same I_T nexus, so the old session goes.
    expect(await first.untilClosed()).toBe(true);
    expect(server.sessionCount(memTargetIqn)).toBe(1);
    second.socket.end();
  });

  test("SendTargets through either portal lists both, the one asked first", async () => {
    for (const [host, port] of [[hostA, portA], [hostB, portB]] as const) {
      const c = new Client();
      await c.connect(host, port);
      c.socket.write(login([["SessionType", "Discovery"]]));
      expect((await c.next())[36]).toBe(0);
      c.socket.write(
        buildPdu(Op.textRequest | 0x40, Flag.final, encodeKeys([["SendTargets", "All"]]), (h) => {
          put32(h, Bhs.initiatorTaskTag, 7);
          put32(h, Bhs.targetTransferTag, 0xffffffff);
          put32(h, Bhs.cmdSN, 1);
        }),
      );
      const addresses = keysOf(await c.next()).filter(([k]) => k === "TargetAddress").map(([, v]) => v);
      const here = `${host}:${port},1`;
      const other = host === hostA ? `${hostB}:${portB},1` : `${hostA}:${portA},1`;
      expect(addresses).toEqual([here, other]);
      c.socket.end();
    }
  });
});

test("targetAddresses: the arrival portal first, wildcard listeners by the address used, no duplicates", () => {
  const portals = [{ host: "0.0.0.0", port: 3260 }, { host: "10.0.1.5", port: 3260 }, { host: "fd00::5", port: 3261 }];
  expect(targetAddresses(portals, { host: "10.0.0.5", port: 3260 }, 1)).toEqual(["10.0.0.5:3260,1", "10.0.1.5:3260,1", "[fd00::5]:3261,1"]);
  expect(targetAddresses(portals, { host: "10.0.1.5", port: 3260 }, 2)).toEqual(["10.0.1.5:3260,2", "[fd00::5]:3261,2"]);
});
