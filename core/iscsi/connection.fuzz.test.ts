// IscsiConnection under hostile input: random bytes and mutated PDUs, before and after login,
// fed whole and split at every byte. A malformed PDU gets a Reject or a closed connection; the
// connection never throws and never stops answering while it stays open. Seeded: a failure
// prints its seed.
import { describe, expect, test } from "bun:test";
import { MemoryBlockDevice, memRegistry } from "../../test/iscsi-mem-target.ts";
import { LunStateTable } from "../scsi/lun-state.ts";
import { silentLogger } from "../util/log.ts";
import type { BlockDevice } from "../volume/block-device.ts";
import { IscsiConnection } from "./connection.ts";
import { defaultTargetLimits, encodeKeys } from "./login.ts";
import { Bhs, Flag, Op, put32 } from "./pdu.ts";
import { SessionTable } from "./session.ts";
import { seededRng } from "../../test/helpers/rng.ts";
import { buildPdu } from "./pdu-fixture.ts";

const iqn = "iqn.2026-11.org.qstora:fuzz";

const rng = seededRng;

const pdu = buildPdu;

const loginPdu = pdu(Op.loginRequest | 0x40, Flag.transit | (1 << 2) | 3, encodeKeys([["InitiatorName", "iqn.2026-11.org.test:fuzz"], ["TargetName", iqn]]), (h) => {
  h.set([0x80, 0, 0, 0x12, 0x34, 0], Bhs.isid);
  put32(h, Bhs.cmdSN, 1);
});

/** Full-feature PDUs to mutate: a READ, a WRITE with immediate data, a NOP-Out, a TMF, a Text. */
function fixtures(): Uint8Array[] {
  const cmd = (cdb: number[], flags: number, edtl: number, data: Uint8Array | null, tag: number) =>
    pdu(Op.scsiCommand, Flag.final | flags, data, (h) => {
      put32(h, Bhs.initiatorTaskTag, tag);
      put32(h, Bhs.cmdSN, 1);
      put32(h, Bhs.expectedDataTransferLength, edtl);
      h.set(cdb, Bhs.cdb);
    });
  return [
    cmd([0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0], Flag.read, 1024, null, 1),
    cmd([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], Flag.write, 512, new Uint8Array(512).fill(7), 2),
    cmd([0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0], Flag.write, 4096, new Uint8Array(512), 3),
    cmd([0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], Flag.write, 1024, new Uint8Array(1024), 4),
    pdu(Op.nopOut | 0x40, Flag.final, new Uint8Array(16).fill(1), (h) => put32(h, Bhs.initiatorTaskTag, 5)),
    pdu(Op.taskManagementRequest | 0x40, Flag.final | 5, null, (h) => put32(h, Bhs.initiatorTaskTag, 6)),
    pdu(Op.textRequest | 0x40, Flag.final, encodeKeys([["SendTargets", "All"]]), (h) => put32(h, Bhs.initiatorTaskTag, 7)),
  ];
}

function connection() {
  const device: BlockDevice = new MemoryBlockDevice({ sizeBytes: 1 << 20 });
  const targets = new Map([[iqn, { luns: new Map<number, BlockDevice>([[0, device]]) }]]);
  let sentBytes = 0;
  let closed = false;
  const conn = new IscsiConnection({
    registry: memRegistry(targets),
    sessions: new SessionTable(),
    portal: { address: "127.0.0.1:3260", portalGroupTag: 1 },
    limits: defaultTargetLimits,
    lunStates: new LunStateTable(),
    transport: { send: (b) => (sentBytes += b.length), close: () => (closed = true) },
    logger: silentLogger,
  });
  return { conn, sent: () => sentBytes, closed: () => closed };
}

function feedSplit(conn: IscsiConnection, bytes: Uint8Array, cut: number): void {
  conn.receive(bytes.subarray(0, cut));
  conn.receive(bytes.subarray(cut));
}

describe("IscsiConnection fuzzed", () => {
  test("random bytes before login close the connection without a throw", () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const next = rng(seed);
      for (let i = 0; i < 200; i++) {
        const c = connection();
        const junk = Uint8Array.from({ length: next() % 600 }, () => next() & 0xff);
        try {
          c.conn.receive(junk);
          c.conn.receive(junk);
        } catch (e) {
          throw new Error(`seed ${seed} iteration ${i}: ${String(e)}`);
        }
      }
    }
  });

  for (const seed of [11, 12, 13]) {
    test(`mutated full-feature PDUs and random bytes never throw; an open connection still answers a NOP (seed ${seed})`, () => {
      const next = rng(seed);
      const base = fixtures();
      for (let i = 0; i < 3000; i++) {
        const c = connection();
        c.conn.receive(loginPdu);
        expect(c.conn.fullFeature).toBe(true);
        const original = base[next() % base.length] as Uint8Array;
        const bytes = original.slice();
        let lengthTouched = false;
        for (let k = next() % 6; k >= 0; k--) {
          const at = next() % bytes.length;
          if (at >= 4 && at < 8) lengthTouched = true; // TotalAHSLength, DataSegmentLength
          bytes[at] = next() & 0xff;
        }
        const junk = i % 5 === 0;
        try {
          if (junk) c.conn.receive(Uint8Array.from({ length: next() % 300 }, () => next() & 0xff));
          else feedSplit(c.conn, bytes, next() % (bytes.length + 1));
        } catch (e) {
          throw new Error(`seed ${seed} iteration ${i} PDU ${Array.from(bytes.subarray(0, 48), (b) => b.toString(16).padStart(2, "0")).join("")}: ${String(e)}`);
        }
        if (!c.conn.closed && !c.closed()) {
          const before = c.sent();
          // An immediate NOP-Out (no CmdSN needed) with a tag: must be answered if the stream is in sync.
          const nop = pdu(Op.nopOut | 0x40, Flag.final, null, (h) => put32(h, Bhs.initiatorTaskTag, 99));
          c.conn.receive(nop);
          // With the lengths intact the stream is still in sync: the NOP must be answered. (A
          // mutated length may leave a partial PDU pending that swallows the NOP as its data.)
          if (!junk && !lengthTouched && !c.conn.closed) expect(c.sent()).toBeGreaterThan(before);
        }
      }
    });
  }

  test("every fixture split at every byte decodes and is answered the same way", () => {
    for (const f of fixtures()) {
      let reference = -1;
      for (let cut = 0; cut <= f.length; cut++) {
        const c = connection();
        c.conn.receive(loginPdu);
        const before = c.sent();
        feedSplit(c.conn, f, cut);
        const answered = c.sent() - before;
        if (reference < 0) reference = answered;
        expect(answered).toBe(reference);
      }
    }
  });
});
