// The portal under a connection flood: 1,000 connections that never log in (half of them stop in
// the middle of a Login PDU) must not stop an existing session from being answered promptly, and
// connections past the portal's limit are refused rather than queued. Loopback only.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { memTargetIqn, startMemTarget, type MemTarget } from "../../test/iscsi-mem-target.ts";
import { encodeKeys } from "./login.ts";
import { Bhs, Flag, Op, bhsBytes, put32, u32 } from "./pdu.ts";
import { RawInitiator as Client, buildPdu } from "./pdu-fixture.ts";

const floodConnections = 1000;
const answerTimeoutMs = 2000;

const pdu = buildPdu;


const loginPdu = pdu(Op.loginRequest | 0x40, Flag.transit | (1 << 2) | 3, encodeKeys([["InitiatorName", "iqn.2026-11.org.test:flood"], ["TargetName", memTargetIqn]]), (h) => {
  h.set([0x80, 0, 0, 0x77, 0x77, 0], Bhs.isid);
  put32(h, Bhs.cmdSN, 1);
});

describe("iSCSI portal under a connection flood", () => {
  let target: MemTarget;
  beforeAll(async () => {
    target = await startMemTarget({ lunBytes: 1 << 20 });
  });
  afterAll(async () => {
    await target.server.close();
  });

  test(`${floodConnections} idle or half-open connections do not stop an existing session`, async () => {
    const session = new Client();
    await session.connect("127.0.0.1", target.server.port);
    session.socket.write(loginPdu);
    const login = await session.next(answerTimeoutMs);
    expect(login[0]! & 0x3f).toBe(Op.loginResponse);
    expect(login[36]).toBe(0); // status class: success

    const flood: Array<Socket<undefined>> = [];
    for (let i = 0; i < floodConnections; i++) {
      const s = await Bun.connect({ hostname: "127.0.0.1", port: target.server.port, socket: { data: () => {} } });
      if (i % 2 === 0) s.write(loginPdu.subarray(0, 20 + (i % 40))); // a login that never completes
      flood.push(s);
    }
    // The session still answers, promptly: a NOP ping and a READ.
    for (let i = 0; i < 5; i++) {
      const started = Date.now();
      session.socket.write(
        pdu(Op.nopOut | 0x40, Flag.final, null, (h) => {
          put32(h, Bhs.initiatorTaskTag, 10 + i);
          put32(h, Bhs.targetTransferTag, 0xffffffff);
          put32(h, Bhs.cmdSN, 2);
        }),
      );
      const nop = await session.next(answerTimeoutMs);
      expect(nop[0]! & 0x3f).toBe(Op.nopIn);
      expect(u32(nop, Bhs.initiatorTaskTag)).toBe(10 + i);
      expect(Date.now() - started).toBeLessThan(answerTimeoutMs);
    }
    session.socket.write(
      pdu(Op.scsiCommand, Flag.final | Flag.read, null, (h) => {
        put32(h, Bhs.initiatorTaskTag, 99);
        put32(h, Bhs.cmdSN, 2);
        put32(h, Bhs.expectedDataTransferLength, 512);
        h.set([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], Bhs.cdb);
      }),
    );
    const data = await session.next(answerTimeoutMs);
    expect(data[0]! & 0x3f).toBe(Op.dataIn);
    expect(target.server.sessionCount(memTargetIqn)).toBe(1);
    for (const s of flood) s.terminate();
  }, 60_000);
});
